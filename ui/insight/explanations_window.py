"""The explanations window: a confusion-matrix cell's validation samples (true class i
predicted as j) as a paged gallery beside the explanation of the sample clicked.

The model is the one File > Export and the Prediction dock use (``window.trained_model()``:
the last run's, a paused run's copy, or weights loaded in Export). **While a run trains, the
window does not read the model** (its weights change under the engine thread): it says the
samples come when the run ends (or when it is paused, F6), and fills itself when it does.

Every slow step runs on a worker (``ui.common.workers``), one at a time, the latest request
waiting while one runs: reading the data (kept for the next cell while the data settings are
the same), predicting the whole validation part once per model (``explain.
validation_predictions``; each cell is then a filter), a page's thumbnails, and one sample's
explanation (``explain.explain``: Captum on a private copy of the model). The matrix shown
in the Evaluation tab is an epoch's; where the model now puts another number of samples in
the cell (a run stopped mid-epoch, weights loaded since), the window says both counts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDialog, QLabel, QSplitter, QVBoxLayout

from workbench.data.bundle import DataBundle, load_data
from workbench.errors import WorkbenchError
from workbench.insight import explain

from ui.common.workers import Worker, start_worker
from ui.insight.explanation_view import ExplanationView
from ui.insight.gallery import CellGallery

RUNNING = ("Training is running: the samples and their explanations come when the run ends "
           "(or pause it, F6, to look at what it has learned so far).")
NO_MODEL = "No trained model yet: train the model (F5) or load weights in File > Export to explain its predictions."


# ---------------------------------------------------------------- the jobs (worker threads)
@dataclass(frozen=True)
class Cell:
    true: int
    predicted: int
    names: tuple[str, ...]
    count: int | None  # what the Evaluation tab's matrix counted, when it is known
    epoch: int | None

    def label(self) -> str:
        def name(i: int) -> str:
            return self.names[i] if 0 <= i < len(self.names) else str(i)
        return f"true {name(self.true)}, predicted {name(self.predicted)}"


@dataclass
class CellAnswer:
    bundle: DataBundle
    key: str
    predictions: explain.ValidationPredictions
    indices: list[int]


def data_key(settings) -> str:
    return json.dumps(settings.to_dict(), sort_keys=True, default=str)


def cell_job(cell: Cell, settings, bundle: DataBundle | None, model, loss, predictions) -> CellAnswer:
    """Read the data if needed, predict the validation part if needed, list the cell."""
    key = data_key(settings)
    if bundle is None:
        bundle = load_data(settings)
    if predictions is None:
        predictions = explain.validation_predictions(model, bundle, loss)
    return CellAnswer(bundle, key, predictions, explain.cell_samples(predictions, cell.true, cell.predicted))


def page_job(bundle: DataBundle, predictions, first: int, indices: list[int]) -> tuple[int, list]:
    return first, explain.thumbnails(bundle, predictions, indices)


def explain_job(model, bundle: DataBundle, index: int, loss) -> explain.Explanation:
    return explain.explain(model, bundle, index, loss)


# ---------------------------------------------------------------- the window
class ExplanationsWindow(QDialog):
    def __init__(self, window, parent=None):
        super().__init__(parent if parent is not None else window)
        self.main_window = window
        self.doc = window.doc
        self.setWindowTitle("Explanations")
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.cell: Cell | None = None
        self._model = None  # the model the cached predictions are of
        self._predictions: explain.ValidationPredictions | None = None
        self._bundle: DataBundle | None = None
        self._bundle_key: str | None = None
        self._job: Worker | None = None
        self._waiting: dict = {}  # kind -> value, asked while a job ran (the latest of each kind)
        self._closed = False
        self.title = QLabel("", wordWrap=True, objectName="evalTitle")
        self.message = QLabel("", wordWrap=True, objectName="problem")
        self.message.hide()
        self.gallery = CellGallery()
        self.view = ExplanationView()
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.gallery)
        split.addWidget(self.view)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        self.split = split
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.title)
        layout.addWidget(self.message)
        layout.addWidget(split, 1)
        self.gallery.pageWanted.connect(self._page_wanted)
        self.gallery.sampleClicked.connect(self.explain_sample)
        self.doc.lockChanged.connect(self._lock_changed)
        self.doc.reset.connect(self._project_replaced)
        window.add_shutdown_hook(self.shutdown)
        self.fit_to_screen()

    def fit_to_screen(self) -> None:
        """Most of the window's screen, at most 1200 x 800."""
        screen = self.main_window.screen().availableGeometry()
        self.resize(min(1200, int(screen.width() * 0.85)), min(800, int(screen.height() * 0.85)))

    # ------------------------------------------------------------ requests
    def show_cell(self, true: int, predicted: int, names: list[str], count: int | None = None,
                  epoch: int | None = None) -> None:
        """Open the window on a cell of the confusion matrix (row ``true``, column ``predicted``)."""
        self.cell = Cell(int(true), int(predicted), tuple(names), count, epoch)
        self.title.setText(f"<b>{self.cell.label()}</b>")
        self.gallery.set_indices([])
        self.view.show_explanation(None)
        self.show()
        self.raise_()
        self.activateWindow()
        self._request("cell", self.cell)

    def explain_sample(self, index: int) -> None:
        if self._bundle is None or self._model is None:
            return
        self.view.how.setText(f"Explaining validation sample {index}…")
        self._request("explain", index)

    def _page_wanted(self, first: int, last: int) -> None:
        if self._bundle is not None and self._predictions is not None:
            self._request("page", (first, self.gallery.indices[first:last]))

    def _request(self, kind: str, value) -> None:
        if self._closed:
            return
        if self._job is not None:
            if kind == "cell":  # a new cell: its own pages and clicks follow
                self._waiting.clear()
            self._waiting[kind] = value
            return
        if kind == "cell":
            self._start_cell(value)
        elif kind == "page":
            first, indices = value
            self._job = start_worker(page_job, self._bundle, self._predictions, first, indices, name="gallery-page",
                                     returned=lambda answer: self.gallery.show_page(*answer),
                                     errored=self._failed, finished=self._ended)
        else:
            self._job = start_worker(explain_job, self._model, self._bundle, int(value), self._loss(),
                                     name="explain", returned=self._explained, errored=self._explain_failed,
                                     finished=self._ended)

    def _loss(self):
        return self.doc.project.training.loss

    def _start_cell(self, cell: Cell) -> None:
        self._say("")
        try:
            model = self.main_window.trained_model()
        except WorkbenchError:  # a run is going on and not paused
            model, why = None, RUNNING
        else:
            why = NO_MODEL if model is None else ""
        if model is None:
            self._model = self._predictions = None
            self.gallery.set_indices([])
            self._say(why, error=False)
            return
        if model is not self._model:
            self._model, self._predictions = model, None
        settings = self.doc.project.data
        bundle = self._bundle if self._bundle_key == data_key(settings) else None
        if bundle is None:
            self._predictions = None
        self.gallery.where.setText("Predicting the validation samples…")
        self._job = start_worker(cell_job, cell, settings, bundle, model, self._loss(), self._predictions,
                                 name="explanations-cell", returned=lambda answer: self._cell_ready(cell, answer),
                                 errored=self._failed, finished=self._ended)

    # ------------------------------------------------------------ answers
    def _cell_ready(self, cell: Cell, answer: CellAnswer) -> None:
        self._bundle, self._bundle_key, self._predictions = answer.bundle, answer.key, answer.predictions
        if cell != self.cell:
            return
        n = len(answer.indices)
        text = f"<b>{cell.label()}</b>: {n} validation sample{'s' if n != 1 else ''}"
        if cell.count is not None and cell.count != n:
            when = f"epoch {cell.epoch}'s" if cell.epoch is not None else "the"
            text += (f" with the model now (the matrix of {when} evaluation counted {cell.count}; the weights have "
                     "changed since)")
        self.title.setText(text)
        self.gallery.set_indices(answer.indices)
        if not n:
            self._say("No validation sample is in this cell.", error=False)

    def _explained(self, ex: explain.Explanation) -> None:
        self.view.show_explanation(ex)

    def _explain_failed(self, exc) -> None:
        self.view.show_explanation(None)
        self._say(_message(exc))

    def _failed(self, exc) -> None:
        self.gallery.where.setText("")
        self._say(_message(exc))

    def _say(self, text: str, error: bool = True) -> None:
        self.message.setObjectName("problem" if error else "muted")
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _ended(self) -> None:
        self._job = None
        for kind in ("cell", "page", "explain"):
            if kind in self._waiting:
                self._request(kind, self._waiting.pop(kind))
                return

    # ------------------------------------------------------------ the document
    def _lock_changed(self, reason: str) -> None:
        """A run started (its model is not read) or ended (its model is the newest): the cell
        open is shown again, after the dock has kept the run's model."""
        self._model = self._predictions = None
        if self.isVisible() and self.cell is not None:
            QTimer.singleShot(0, self._again)

    def _again(self) -> None:
        if self.cell is not None and self.isVisible():
            cell = self.cell
            self.cell = Cell(cell.true, cell.predicted, cell.names, None, None)  # the epoch's count is old now
            self.gallery.set_indices([])
            self.view.show_explanation(None)
            self._request("cell", self.cell)

    def _project_replaced(self) -> None:
        self._model = self._predictions = self._bundle = self._bundle_key = None
        self.cell = None
        self.hide()

    def shutdown(self) -> None:
        self._closed = True
        self._waiting.clear()
        if self._job is not None:
            self._job.quit()
            self._job.wait()


def _message(exc) -> str:
    if isinstance(exc, WorkbenchError):
        return str(exc)
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
