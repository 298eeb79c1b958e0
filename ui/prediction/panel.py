"""The Prediction dock: drop or open an image file, paste a table row, or pick a validation
sample, and see the trained model's class probabilities as bars.

The model is the one File > Export would use (``window.trained_model()``: the last run's, a
paused run's copy, or weights loaded in Export), or weights loaded here (Load Weights...)
until the next run ends. While a run is going on the model is not read: its weights change
under the engine thread; a paused run hands a copy (as Export gets it). Without a trained
model the panel says so rather than predicting with random weights.

Everything slow runs on a worker (``ui.common.workers``): reading the data (once per data
settings, kept for the next predictions), decoding the image, loading a weights file and
running the model (``workbench.training.predict``). One job at a time; a request made while
one runs replaces any other waiting request and starts when it ends.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from workbench.data.bundle import DataBundle, load_data
from workbench.data.sources.images import IMAGE_SUFFIXES
from workbench.errors import WorkbenchError
from workbench.training import predict as prediction

from ui.common.pictures import image_pixmap
from ui.common.probability_bars import ProbabilityBars
from ui.common.workers import Worker, start_worker

THUMB = 56  # the example's picture, pixels a side
NO_MODEL = "No trained model yet: train the model (F5) or load weights to see predictions."
RUNNING = "Training is running: pause it (F6) to predict with what it has learned so far."


# ---------------------------------------------------------------- questions (tests replace these)
def choose_image(parent, folder: str) -> str | None:
    patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
    path, _ = QFileDialog.getOpenFileName(parent, "Predict an image", folder,
                                          f"Images ({patterns});;All files (*)")
    return path or None


def choose_weights(parent, folder: str) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Load weights for predictions", folder,
                                          "Weights and checkpoints (*.ckpt *.pth *.pt *.safetensors *.bin);;"
                                          "All files (*)")
    return path or None


# ---------------------------------------------------------------- the jobs (worker threads)
@dataclass(frozen=True)
class Request:
    kind: str  # "image", "row" or "sample"
    value: object  # the path, the text, the index


@dataclass
class Answer:
    bundle: DataBundle
    key: str
    example: prediction.Example
    result: prediction.Prediction | None  # None: no model to ask


def data_key(settings) -> str:
    return json.dumps(settings.to_dict(), sort_keys=True, default=str)


def predict_job(request: Request, settings, bundle: DataBundle | None, model, loss: str) -> Answer:
    """Read the data if needed, make the input, run the model (a worker thread)."""
    key = data_key(settings)
    if bundle is None:
        bundle = load_data(settings)
    make = {"image": prediction.image_example, "row": prediction.row_example,
            "sample": prediction.sample_example}[request.kind]
    example = make(bundle, request.value)
    result = prediction.predict(model, example, bundle.task, loss) if model is not None else None
    return Answer(bundle, key, example, result)


def load_job(spec, path: str):
    return prediction.model_from_weights(spec, path)


# ---------------------------------------------------------------- the panel
class PredictionPanel(QWidget):
    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.main_window = window
        self.doc = window.doc
        self._bundle: DataBundle | None = None
        self._bundle_key: str | None = None
        self._loaded = None  # (model, file name, weights_key) loaded with Load Weights...
        self._job: Worker | None = None
        self._load_job: Worker | None = None
        self._waiting: Request | None = None  # asked while a job ran
        self._last: Request | None = None  # predicted again when the model changes
        self._shown_once = False
        self.on_screen = False  # the dock's tab is in front (set_on_screen)
        self._closed = False  # after shutdown() no job starts
        self.setAcceptDrops(True)

        self.model_label = QLabel(wordWrap=True, objectName="muted")
        self.load_button = QPushButton("Load Weights…")
        self.load_button.setToolTip("Predict with a .pth / .safetensors file or a training checkpoint (.ckpt) "
                                    "of this model")
        self.trained_button = QPushButton("Use Trained")
        self.trained_button.setToolTip("Predict with the model of the last training run again")
        self.open_button = QPushButton("Open Image…")
        self.open_button.setToolTip("Predict the class of an image file (or drop one on this panel)")
        drop_hint = QLabel("or drop an image file here", objectName="muted")
        self.row_edit = QLineEdit()
        self.row_edit.setClearButtonEnabled(True)
        self.row_edit.setAcceptDrops(False)  # a file dropped on the field is an image to predict, not text
        self.row_button = QPushButton("Predict")
        self.row_button.setToolTip("Predict the pasted row (Enter)")
        self.sample_spin = QSpinBox()
        self.sample_spin.setRange(0, 0)
        self.sample_spin.setKeyboardTracking(False)  # typing 123 asks once, not for 1, 12, 123
        self.sample_spin.findChild(QLineEdit).setAcceptDrops(False)
        self.sample_spin.setToolTip("A validation example by its position in the validation set")
        self.sample_range = QLabel("", objectName="muted")
        self.thumb = QLabel()
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setFrameShape(QFrame.Shape.StyledPanel)
        self.example_text = QLabel("", wordWrap=True)
        self.title = QLabel("", wordWrap=True)
        self.message = QLabel("", wordWrap=True, objectName="problem")
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        self.bars = ProbabilityBars()

        left = QVBoxLayout()
        left.setSpacing(4)
        left.addWidget(self.model_label)
        row = QHBoxLayout()
        row.addWidget(self.load_button)
        row.addWidget(self.trained_button)
        row.addStretch(1)
        left.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(drop_hint, 1)
        left.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.row_edit, 1)
        row.addWidget(self.row_button)
        left.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("Validation sample"))
        row.addWidget(self.sample_spin)
        row.addWidget(self.sample_range, 1)
        left.addLayout(row)
        left.addStretch(1)
        left_box = QWidget()
        left_box.setLayout(left)
        left_box.setMaximumWidth(380)
        left_box.setMinimumWidth(280)

        body = QHBoxLayout()
        body.addWidget(self.thumb, 0, Qt.AlignmentFlag.AlignTop)
        body.addWidget(self.bars, 1)
        right = QVBoxLayout()
        right.setSpacing(4)
        right.addWidget(self.title)
        right.addWidget(self.example_text)
        right.addWidget(self.message)
        right.addLayout(body, 1)
        self.example_text.hide()

        right_box = QWidget()
        right_box.setLayout(right)
        right_box.setMaximumWidth(900)  # a bar across a 1920 px screen is hard to read against its name
        right.setContentsMargins(0, 0, 0, 0)
        left.setContentsMargins(0, 0, 0, 0)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(12)
        layout.addWidget(left_box)
        layout.addWidget(right_box, 1)
        layout.addStretch(0)

        self.load_button.clicked.connect(self.load_weights)
        self.trained_button.clicked.connect(self.use_trained)
        self.open_button.clicked.connect(self.open_image)
        self.row_edit.returnPressed.connect(self.predict_row)
        self.row_button.clicked.connect(self.predict_row)
        self.sample_spin.valueChanged.connect(self.predict_sample)
        self.sample_spin.findChild(QLineEdit).returnPressed.connect(self._sample_entered)
        self.doc.lockChanged.connect(self._lock_changed)
        self.doc.reset.connect(self._project_replaced)
        self.doc.changed.connect(self._model_edited)
        self._show_data_hints()
        self.show_model_source()

    # ------------------------------------------------------------ the model
    def _loaded_model(self):
        """Weights loaded here, while they still fit the model in the editor."""
        if self._loaded is not None and self._loaded[2] != prediction.weights_key(self.doc.spec):
            self._loaded = None
        return self._loaded

    def model_for_prediction(self):
        """(model or None, why there is none)."""
        loaded = self._loaded_model()
        if loaded is not None:
            return loaded[0], ""
        try:
            model = self.main_window.trained_model()
        except WorkbenchError:  # a run is going on and not paused: its weights are changing
            return None, RUNNING
        return model, ("" if model is not None else NO_MODEL)

    def show_model_source(self) -> None:
        loaded = self._loaded_model()
        self.trained_button.setVisible(loaded is not None)
        if loaded is not None:
            text = f"Model: weights from <b>{_escape(loaded[1])}</b>."
        elif self.doc.edit_lock:
            text = "Model: the running training's (pause it, F6, to predict with what it has learned so far)."
        else:
            try:
                trained = self.main_window.trained_model() is not None
            except WorkbenchError:
                trained = False
            text = "Model: the last training run's." if trained else "Model: none trained yet."

        self.model_label.setText(text)

    def load_weights(self) -> None:
        path = choose_weights(self, self._weights_folder())
        if path:
            self.load_weights_from(path)

    def load_weights_from(self, path: str) -> None:
        if self._load_job is not None or self._closed:
            return
        if self.doc.info.error is not None:
            self._fail(f"The model cannot be built yet: {self.doc.info.error}")
            return
        spec = self.doc.spec.copy()
        key = prediction.weights_key(spec)
        self.model_label.setText(f"Loading {_escape(path)}…")
        self._load_job = start_worker(load_job, spec, path, name="prediction-weights",
                                      returned=lambda model: self._weights_ready(model, path, key),
                                      errored=self._weights_failed, finished=self._load_ended)

    def _weights_ready(self, model, path: str, key: str) -> None:
        self._loaded = (model, Path(path).name, key)
        self.main_window.say(f"Predictions use the weights from {path} (Use Trained goes back to the trained model)")
        self.show_model_source()
        self._again()

    def _weights_failed(self, exc) -> None:
        self.show_model_source()
        self._fail(_message(exc))

    def _load_ended(self) -> None:
        self._load_job = None

    def use_trained(self) -> None:
        self._loaded = None
        self.show_model_source()
        self._again()

    def _weights_folder(self) -> str:
        runs = [r["dir"] for r in reversed(self.doc.project.runs) if r.get("dir")]
        if runs:
            return runs[0]
        root = self.doc.project.run_folder()
        return str(root) if root.is_dir() else ""

    # ------------------------------------------------------------ inputs
    def open_image(self) -> None:
        path = choose_image(self, str(self.doc.path.parent) if self.doc.path else "")
        if path:
            self.predict_image(path)

    def predict_image(self, path: str) -> None:
        self.request(Request("image", path))

    def predict_row(self) -> None:
        self.request(Request("row", self.row_edit.text()))

    def predict_sample(self, index: int | None = None) -> None:
        if index is not None and self.sample_spin.minimum() <= index <= self.sample_spin.maximum():
            self.sample_spin.blockSignals(True)  # the box shows the sample asked for
            self.sample_spin.setValue(int(index))
            self.sample_spin.blockSignals(False)
        self.request(Request("sample", self.sample_spin.value() if index is None else int(index)))

    def _sample_entered(self) -> None:
        """Enter in the sample box shows that sample again (after an image or a row)."""
        wanted = Request("sample", self.sample_spin.value())
        if self._last != wanted and self._waiting != wanted:
            self.request(wanted)

    def dragEnterEvent(self, event) -> None:
        if _local_files(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if _local_files(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        files = _local_files(event.mimeData())
        if not files:
            return
        event.acceptProposedAction()
        self.predict_image(files[0])
        if len(files) > 1:
            self.main_window.say(f"Predicting {files[0]}; drop one file at a time")

    # ------------------------------------------------------------ running a request
    def request(self, request: Request) -> None:
        if self._closed:
            return
        if self._job is not None:
            self._waiting = request
            return
        self._last = request
        model, why = self.model_for_prediction()
        settings = self.doc.project.data
        bundle = self._bundle if self._bundle_key == data_key(settings) else None
        loss = self.doc.project.training.loss
        self._fail("")
        self.title.setText(f"Predicting {_what(request)}…" if model is not None else f"Reading {_what(request)}…")
        self._job = start_worker(predict_job, request, settings, bundle, model, loss, name="prediction",
                                 returned=lambda answer: self._answered(answer, why),
                                 errored=self._failed, finished=self._ended)

    def _answered(self, answer: Answer, why: str) -> None:
        self._bundle, self._bundle_key = answer.bundle, answer.key
        self._set_sample_range(answer.bundle)
        ex, result = answer.example, answer.result
        if ex.image is not None:
            self.thumb.setPixmap(image_pixmap(ex.image, THUMB))
            self.thumb.show()
        else:
            self.thumb.clear()
            self.thumb.hide()
        task = answer.bundle.task
        true = _true_text(ex, task)
        self.example_text.setText(f"Input as the model sees it (scaled): {ex.text}" if ex.text else "")
        self.example_text.setVisible(bool(ex.text))
        if result is None:
            self.title.setText(f"<b>{_escape(ex.what)}</b>{true}")
            self.bars.set_classes([], None)
            self._fail(why)
            return
        if result.value is not None:
            self.title.setText(f"<b>{_escape(ex.what)}</b>: predicted value <b>{result.value:.4g}</b>{true}")
            self.bars.set_classes([], None)
            return
        top, p = result.classes[0]
        self.title.setText(f"<b>{_escape(ex.what)}</b>: <b>{_escape(top)}</b> ({100 * p:.1f}%){true}")
        self.bars.set_classes(result.classes, result.true_name)
        self._say_shown()

    def _say_shown(self) -> None:
        n, total = self.bars.shown(), len(self.bars.classes)
        self.bars.setToolTip(f"top {n} of {total} classes" if n < total else f"all {total} classes")

    def _failed(self, exc) -> None:
        self.title.setText("")
        self.bars.set_classes([], None)
        self._fail(_message(exc))

    def _fail(self, text: str) -> None:
        self.message.setText(text or "")
        self.message.setVisible(bool(text))

    def _ended(self) -> None:
        self._job = None
        if self._waiting is not None:
            request, self._waiting = self._waiting, None
            self.request(request)

    def _again(self) -> None:
        """The model changed: ask the last question again."""
        if self._last is not None:
            self.request(self._last)

    def _set_sample_range(self, bundle: DataBundle) -> None:
        n = len(bundle.val) if bundle.val is not None else 0
        self.sample_spin.blockSignals(True)
        self.sample_spin.setRange(0, max(0, n - 1))
        self.sample_spin.blockSignals(False)
        self.sample_spin.setEnabled(n > 0)
        self.sample_range.setText(f"of 0 to {n - 1}" if n else "no validation data")

    def _show_data_hints(self) -> None:
        shape = tuple(self.doc.spec.input_shape)
        count = 1
        for s in shape:
            count *= int(s)
        self.row_edit.setPlaceholderText(f"Paste a row: {count} numbers")
        self.row_edit.setToolTip(f"{count} numbers separated by commas, tabs or spaces (for table data: the "
                                 "features, without the target column); Enter predicts")

    # ------------------------------------------------------------ the document
    def _lock_changed(self, reason: str) -> None:
        if reason:
            self.show_model_source()
        else:  # a run ended: the dock keeps its model once its own handler is done
            QTimer.singleShot(0, self._run_ended)

    def _run_ended(self) -> None:
        self._loaded = None  # the newest weights are the run's
        self.show_model_source()
        self._again()

    def _project_replaced(self) -> None:
        self._loaded = None
        self._bundle = self._bundle_key = None
        self._last = self._waiting = None
        self.title.setText("")
        self.example_text.setText("")
        self.thumb.clear()
        self.bars.set_classes([], None)
        self._fail("")
        self.sample_spin.blockSignals(True)
        self.sample_spin.setRange(0, 0)
        self.sample_spin.blockSignals(False)
        self.sample_range.setText("")
        self._show_data_hints()
        self.show_model_source()
        self._shown_once = False
        if self.on_screen:  # the new project's first sample, as when the panel first shows
            self.set_on_screen(True)

    def _model_edited(self) -> None:
        self._show_data_hints()
        if not self.doc.edit_lock:
            self.show_model_source()

    # ------------------------------------------------------------ life cycle
    def set_on_screen(self, visible: bool) -> None:
        """The dock's tab came forward (True) or went behind another one (False); the first
        time, the data is read and sample 0 shown. (A dock behind a tab still counts as
        visible to Qt, so this follows ``QDockWidget.visibilityChanged``.)"""
        self.on_screen = visible
        if visible:  # which model is said now, not when the end of a run was last handled
            self.show_model_source()
        if visible and not self._shown_once:
            self._shown_once = True
            self.predict_sample()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.bars.classes:
            self._say_shown()

    def busy(self) -> bool:
        return self._job is not None or self._load_job is not None or self._waiting is not None

    def wait(self, timeout_s: float = 60.0) -> bool:
        """Finish the jobs running and queued now (tests); False if one is still running."""
        for _ in range(3):
            for job in (self._load_job, self._job):
                if job is not None and not job.wait(timeout_s):
                    return False
        return not self.busy()

    def shutdown(self) -> None:
        self._closed = True
        for job in (self._job, self._load_job):
            if job is not None:
                job.quit()
                job.wait(30.0)
        self._waiting = None


def _local_files(mime) -> list[str]:
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []


def _what(request: Request) -> str:
    if request.kind == "image":
        return Path(str(request.value)).name
    return "the row" if request.kind == "row" else f"validation sample {request.value}"


def _true_text(example: prediction.Example, task) -> str:
    if example.true is None:
        return ""
    if task.is_classification:
        names = list(task.class_names)
        name = names[int(example.true)] if 0 <= int(example.true) < len(names) else str(example.true)
        return f"; true: <b>{_escape(name)}</b>"
    return f"; true: <b>{float(example.true):.4g}</b>"


def _message(exc) -> str:
    if isinstance(exc, WorkbenchError):
        return str(exc)
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"Prediction failed: {type(exc).__name__}{': ' + first if first else ''}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
