"""The export dialog: pick a format (each says who loads it), its options and a path; export
off the UI thread; read how closely the file reproduces the model.

Opened by the main window as ``ExportDialog(project, model, parent)``; ``model`` is the live
module (trained weights) or None, then it is built from ``project.model``. Exports work on a
copy taken when the button is pressed, so training may go on. "Open weights..." loads a
.pth / .safetensors into the model, checked key by key.
"""
from __future__ import annotations

import copy
import re
import traceback
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton,
                               QRadioButton, QSpinBox, QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from workbench.model import build, weights
from workbench.export import exporter as export
from workbench.export.base import OPSET_RANGE
from workbench.errors import WorkbenchError
from workbench.export.python_source import class_name
from workbench.model.shapes import fmt

from ui.common import theme
from ui.common.workers import Worker, start_worker
from ui.export.results import ResultTable

_MODES = {"auto": "Auto: trace, or script when tracing warns", "trace": "Trace (records one run)",
          "script": "Script (compiles the Python code)"}


class JobReport(QObject):
    """What a running job reports, emitted from its thread and received on the UI thread."""

    progress = Signal(str)  # a stage: "[2/6] ONNX: verifying"
    logged = Signal(str)  # a log line


def _export_one(model, spec, fmt_key: str, target: Path, options, log, progress) -> list[export.ExportResult]:
    return [export.export(model, spec, fmt_key, target, options, log=log, progress=progress)]


def _read_weights(model, path: str) -> tuple[weights.Weights, weights.WeightsReport]:
    """The weights in ``path`` and how they fit ``model`` (read only: nothing is copied in)."""
    loaded = weights.read(path)
    return loaded, weights.check(model, loaded.state_dict, loaded.source)


def _muted(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {theme.MUTED};")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class ExportDialog(QDialog):
    exportFinished = Signal(list)  # [ExportResult], after the worker thread has stopped
    weightsLoaded = Signal(str)  # path of a weights file now in the model

    def __init__(self, project, model=None, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Export {project.name}")
        self.project = project
        self.spec = project.model
        self.model = model if model is not None else build.build_model(project.model)
        self.job: Worker | None = None
        self.report = JobReport(self)
        self.results: list[export.ExportResult] = []
        self.error = ""
        folder = project.path.parent if project.path else Path.cwd()
        stem = project.path.stem if project.path else re.sub(r"\W+", "_", project.name).strip("_")
        self._folder, self._stem = folder, (stem.lower() or "model")
        self._build()
        self.formats.button(0).setChecked(True)
        self._format_changed()
        self.resize(920, 780)

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setSpacing(10)
        root.addWidget(self._summary())
        middle = QHBoxLayout()
        middle.addWidget(self._format_box(), 3)
        middle.addWidget(self._options_box(), 2)
        root.addLayout(middle)
        path_row = QHBoxLayout()
        path_row.addWidget(QLabel("Save to:"))
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("exportPath")
        path_row.addWidget(self.path_edit, 1)
        self.browse_button = QPushButton("Browse...")
        self.browse_button.clicked.connect(self._browse)
        path_row.addWidget(self.browse_button)
        root.addLayout(path_row)
        progress_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # showing it must not shift the dialog
        self.progress.setSizePolicy(policy)
        self.progress.setVisible(False)
        self.status = QLabel("Choose a format and where to save it.")
        self.status.setWordWrap(True)
        progress_row.addWidget(self.status, 1)
        progress_row.addWidget(self.progress)
        root.addLayout(progress_row)
        self.tabs = QTabWidget()
        self.table = ResultTable()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.tabs.addTab(self.table, "Result")
        self.tabs.addTab(self.log, "Log")
        self.report.progress.connect(self._on_progress)
        self.report.logged.connect(self.log.appendPlainText)
        root.addWidget(self.tabs, 1)
        root.addLayout(self._buttons())

    def _summary(self) -> QWidget:
        info = build.infer(self.spec)
        total, trainable = build.param_count(self.model)
        dtype = "" if self.spec.input_dtype == "float32" else f" {self.spec.input_dtype}"
        n = len(info.rows())
        text = (f"<b>{self.project.name}</b> &nbsp; input {fmt(self.spec.input_shape)}{dtype} &rarr; output "
                f"{fmt(info.output_shape) if info.output_shape else '?'} &nbsp;&middot;&nbsp; {total:,} parameters "
                f"({trainable:,} trainable) &nbsp;&middot;&nbsp; {info.size_mb:.2f} MB &nbsp;&middot;&nbsp; "
                f"{n} layer{'s' if n != 1 else ''}")
        self.summary = QLabel(text)
        self.summary.setObjectName("exportSummary")
        self.summary.setWordWrap(True)
        return self.summary

    def _format_box(self) -> QGroupBox:
        box = QGroupBox("Format")
        grid = QVBoxLayout(box)
        grid.setSpacing(2)
        self.formats = QButtonGroup(self)
        self.format_keys = list(export.FORMATS)
        for i, f in enumerate(export.FORMATS.values()):
            radio = QRadioButton(f.title + ("  (deprecated upstream)" if f.deprecated else ""))
            self.formats.addButton(radio, i)
            grid.addWidget(radio)
            who = _muted(f.loads)
            who.setContentsMargins(22, 0, 0, 6)
            grid.addWidget(who)
        grid.addStretch(1)
        self.formats.idToggled.connect(self._format_toggled)
        return box

    def _options_box(self) -> QGroupBox:
        box = QGroupBox("Options")
        col = QVBoxLayout(box)
        self.pages = QStackedWidget()
        self.include_spec = {k: QCheckBox("Store the model description in the file") for k in ("state_dict",
                                                                                              "safetensors")}
        self.dynamic = {k: QCheckBox("Any batch size (dynamic batch axis)") for k in ("onnx", "pt2")}
        for pair in (self.dynamic, self.include_spec):  # one setting each, shown on two pages
            first, second = pair.values()
            first.toggled.connect(second.setChecked)
            second.toggled.connect(first.setChecked)
        self.mode = QComboBox()
        for key, text in _MODES.items():
            self.mode.addItem(text, key)
        self.opset = QSpinBox()
        self.opset.setRange(*OPSET_RANGE)
        self.opset.setValue(export.ExportOptions.opset)
        self.opset.setMaximumWidth(90)
        self.opset.setToolTip("ONNX operator set: 18 is written natively; others are converted, which may "
                              "not work for every model (the log says so)")
        self.class_edit = QLineEdit()
        self.class_edit.setPlaceholderText(class_name(self.project.name))
        self.custom_code = QComboBox()  # a Custom layer's own file: beside the .py, or imported where it is
        self.custom_code.setObjectName("customCode")
        self.custom_code.addItem("Copy beside the .py", "copy")
        self.custom_code.addItem("Import from where it is", "import")
        self.custom_code.setToolTip("How the .py gets the classes of Custom layers: a copy of each file next to it "
                                    "(moves with it), or an import of the file at its absolute path")
        pages = {
            "state_dict": [self.include_spec["state_dict"],
                           _muted("Load with torch.load(path, weights_only=True)['state_dict']. Unticked, the "
                                  "file is a plain state_dict for model.load_state_dict.")],
            "safetensors": [self.include_spec["safetensors"],
                            _muted("The description goes into the file's text metadata; tensors stay plain.")],
            "torchscript": [("Mode", self.mode), self._warning(export.FORMATS["torchscript"].deprecated + ".")],
            "onnx": [("Opset", self.opset), self.dynamic["onnx"],
                     _muted("One self-contained file; weights over 2 GB go to a .onnx.data file beside it.")],
            "pt2": [self.dynamic["pt2"]],
            "python": [("Class name", self.class_edit),
                       *([("Custom layers", self.custom_code)] if any(
                           layer.type == "Custom" for _, layer in self.project.model.walk()) else []),
                       _muted("The file holds code only: load weights with load_model('<name>.safetensors').")],
        }
        for key in self.format_keys:
            page = QWidget()
            form = QFormLayout(page)
            form.setContentsMargins(0, 0, 0, 0)
            for item in pages[key]:
                if isinstance(item, tuple):
                    form.addRow(item[0], item[1])
                else:
                    form.addRow(item)
            self.pages.addWidget(page)
        for box_ in [*self.include_spec.values(), *self.dynamic.values()]:
            box_.setChecked(True)
        col.addWidget(self.pages)
        col.addStretch(1)
        self.verify = QCheckBox("Verify the exported file (recommended)")
        self.verify.setChecked(True)
        self.verify_how = _muted()
        col.addWidget(self.verify)
        col.addWidget(self.verify_how)
        return box

    @staticmethod
    def _warning(text: str) -> QLabel:
        label = QLabel(f"\u26a0 {text}")
        label.setWordWrap(True)
        label.setStyleSheet(f"color: {theme.WARNING};")
        return label

    def _buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.weights_button = QPushButton("Open weights...")
        self.weights_button.setToolTip("Load a .pth / .safetensors file (an export, a state_dict or a training "
                                       "checkpoint) into this model, checked key by key")
        self.weights_button.clicked.connect(self._choose_weights)
        self.all_button = QPushButton("Export all formats...")
        self.all_button.setToolTip("Write every format into one folder, each verified")
        self.all_button.clicked.connect(self._choose_folder)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self._export_clicked)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        row.addWidget(self.weights_button)
        row.addStretch(1)
        for b in (self.all_button, self.export_button, self.close_button):
            row.addWidget(b)
        return row

    # ------------------------------------------------------------ state
    @property
    def format(self) -> str:
        return self.format_keys[max(self.formats.checkedId(), 0)]

    def select_format(self, key: str) -> None:
        self.formats.button(self.format_keys.index(key)).setChecked(True)

    def _format_toggled(self, _id: int, on: bool) -> None:
        if on:
            self._format_changed()

    def _format_changed(self) -> None:
        f = export.FORMATS[self.format]
        self.pages.setCurrentIndex(self.format_keys.index(f.key))
        self.verify_how.setText(f"Verified by: {f.verified}.")
        self.export_button.setText(f"Export {f.title.split(' (')[0]}")
        text = self.path_edit.text().strip()
        path = Path(text) if text else self._folder / self._stem
        if path.name in ("", ".", ".."):  # a folder typed in: the default name inside it
            path = path / self._stem
        if path.suffix.lower() in {g.suffix for g in export.FORMATS.values()}:
            path = path.with_suffix("")
        self.path_edit.setText(str(path.with_name(path.name + f.suffix)))

    def options(self) -> export.ExportOptions:
        """The settings as plain data, copied before any thread starts."""
        return export.ExportOptions(
            opset=self.opset.value(), dynamic_batch=self.dynamic["onnx"].isChecked(),
            torchscript_mode=self.mode.currentData(), include_spec=self.include_spec["state_dict"].isChecked(),
            verify=self.verify.isChecked(), class_name=self.class_edit.text().strip(), name=self.project.name,
            custom_code=self.custom_code.currentData())

    def busy(self) -> bool:
        return self.job is not None

    # ------------------------------------------------------------ actions
    def _browse(self) -> None:
        f = export.FORMATS[self.format]
        path, _ = QFileDialog.getSaveFileName(self, f"Export as {f.title}", self.path_edit.text(),
                                              f"{f.title} (*{f.suffix})")
        if path:
            self.path_edit.setText(str(export.target_path(path, f.key)) if Path(path).suffix in ("", f.suffix)
                                   else path)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export every format into", str(self._folder))
        if folder:
            self.export_all_to(folder)

    def _export_clicked(self) -> None:
        self.export_to(self.path_edit.text())

    def export_to(self, path: str) -> None:
        fmt_key, options, spec = self.format, self.options(), self.spec.copy()
        model = copy.deepcopy(self.model)
        try:
            target = export.target_path(path.strip() or self._folder / self._stem, fmt_key)
        except WorkbenchError as exc:  # a wrong extension: say it here, nothing to run
            self._show_error(str(exc))
            self.exportFinished.emit([])
            return
        self.path_edit.setText(str(target))
        self._start(f"Exporting {export.FORMATS[fmt_key].title}", 0, self._export_done, self._export_failed,
                    _export_one, model, spec, fmt_key, target, options, log=self.report.logged.emit,
                    progress=self.report.progress.emit)

    def export_all_to(self, folder: str) -> None:
        options, spec, model, stem = self.options(), self.spec.copy(), copy.deepcopy(self.model), self._stem
        self._start(f"Exporting every format into {folder}", len(export.FORMATS), self._export_done,
                    self._export_failed, export.export_all, model, spec, folder, stem, options=options,
                    log=self.report.logged.emit, progress=self.report.progress.emit)

    def _start(self, what: str, steps: int, returned, failed, fn, *args, **kwargs) -> None:
        """Run ``fn(*args, **kwargs)`` off the UI thread; ``returned(result)`` or ``failed(message)``
        follow on the UI thread once its thread has ended."""
        if self.busy():
            return
        self.error = ""
        self.results = []
        self.table.clear_rows()
        self.log.appendPlainText(f"--- {what}")
        self.status.setStyleSheet("")
        self.status.setText(what + "...")
        self.progress.setRange(0, steps)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self._set_enabled(False)
        self.job = start_worker(fn, *args, name="export", returned=partial(self._returned, returned),
                                errored=partial(self._errored, failed), **kwargs)

    def _job_ended(self) -> None:
        self.job = None
        self.progress.setVisible(False)
        self._set_enabled(True)

    def _returned(self, handler, result) -> None:
        self._job_ended()
        handler(result)

    def _errored(self, handler, exc: Exception) -> None:
        self._job_ended()
        if isinstance(exc, WorkbenchError):
            handler(str(exc))
            return
        self.log.appendPlainText("".join(traceback.format_exception(exc)))  # a bug: its traceback in Log
        handler(f"unexpected error: {type(exc).__name__}: {exc}")

    def _on_progress(self, stage: str) -> None:
        self.status.setText(stage + "...")
        step = re.match(r"\[(\d+)/\d+\]", stage)
        if step and self.progress.maximum():
            self.progress.setValue(int(step.group(1)) - 1)

    def _export_done(self, results: list[export.ExportResult]) -> None:
        self.results = results or []
        for r in self.results:
            self.table.add_result(r)
        failed = [r for r in self.results if not r.ok]
        if failed:
            self._show_error(f"{len(failed)} of {len(self.results)} failed. " + failed[0].error)
        else:
            done = self.results[0] if len(self.results) == 1 else None
            self.status.setStyleSheet(f"color: {theme.GOOD};")
            self.status.setText(f"&#10004; Wrote {done.path}" if done else
                                f"&#10004; Wrote {len(self.results)} files into {self.results[0].path.parent}")
            self.status.setTextFormat(Qt.TextFormat.RichText)
        self.exportFinished.emit(self.results)

    def _export_failed(self, message: str) -> None:
        self._show_error(message)
        self.exportFinished.emit([])

    def _show_error(self, text: str) -> None:
        self.error = text
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setStyleSheet(f"color: {theme.ERROR};")
        self.status.setText("\u2716 " + text)
        self.log.appendPlainText(f"error: {text}")

    def _set_enabled(self, on: bool) -> None:
        for w in (self.export_button, self.all_button, self.weights_button, self.close_button, self.path_edit,
                  self.browse_button, self.pages, self.verify):
            w.setEnabled(on)
        for b in self.formats.buttons():
            b.setEnabled(on)

    # ------------------------------------------------------------ open weights
    def _choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open weights", str(self._folder),
                                              "Weights (*.pth *.pt *.safetensors *.ckpt *.bin);;All files (*)")
        if path:
            self.open_weights(path)

    def open_weights(self, path: str) -> None:
        """Read and check the file off the UI thread; copy the tensors in when they fit."""
        self._start(f"Reading weights from {path}", 0, partial(self._weights_read, path), self._weights_failed,
                    _read_weights, self.model, path)

    def _weights_failed(self, message: str) -> None:
        self._show_error(message)
        self.weightsLoaded.emit("")

    def _weights_read(self, path: str, read: tuple[weights.Weights, weights.WeightsReport]) -> None:
        loaded, report = read
        only_fitting = False
        if not report.ok:
            self.log.appendPlainText(report.describe(limit=50))
            if not report.matched or not self.ask_partial(report):
                self._show_error(f"{Path(path).name} does not fit this model; nothing was loaded (see Log).")
                self.weightsLoaded.emit("")
                return
            only_fitting = True
        try:
            report = weights.load_into(self.model, loaded, partial=only_fitting)
        except WorkbenchError as exc:  # a tensor that cannot be converted to the model's type: nothing loaded
            self._show_error(str(exc))
            self.weightsLoaded.emit("")
            return
        self.log.appendPlainText(report.describe())
        self.status.setStyleSheet(f"color: {theme.GOOD};")
        self.status.setText(f"Loaded {len(report.matched)} of {report.total} tensors from {Path(path).name}")
        self.weightsLoaded.emit(path)

    def ask_partial(self, report: weights.WeightsReport) -> bool:
        box = QMessageBox(QMessageBox.Icon.Warning, "Weights do not fit",
                          f"{len(report.matched)} of {report.total} tensors fit this model.", parent=self)
        box.setInformativeText("Load only the tensors that fit? The others keep their current values.")
        box.setDetailedText(report.describe(limit=200))
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        return box.exec() == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------ closing
    def done(self, code: int) -> None:
        if self.busy():  # an export cannot be cut off half-way; it ends on its own
            self.status.setText("Still working: the dialog closes when it is done.")
            return
        super().done(code)

    def closeEvent(self, event) -> None:
        if self.busy():
            event.ignore()
            return
        super().closeEvent(event)
