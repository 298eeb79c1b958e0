"""The data and training settings of the project as a form, every change undoable.

Fields come from the ``Param``s of the typed settings (``workbench.project.settings``;
ui.editor.fields builds them), so bounds and help match what the project file accepts. A
change pushes ``SetSetting`` on the document's undo stack (quick successive edits of one
field merge), which replaces the project's ``data`` / ``training`` settings with a copy
holding the new value (``Project.set_setting``) and emits ``SettingsForm.changed``. The device
list offers only devices that exist here (asking the driver for a count creates no CUDA
context); mixed precision is offered only where CUDA is.

The optimiser, schedule and loss choices each have a "…" button that opens ``ArgumentsDialog``:
that choice's own arguments (``arguments_of``: an optimiser's read from its constructor, with
torch's default for that type as the grey placeholder; the schedule's and loss's from
``SCHEDULE_ARGS`` / ``LOSS_ARGS``), ``lr_scale`` and class weights as text; every change is an
undoable ``SetSetting``. Early stopping is a box (on / off) with the same "…" button for its
metric, mode, patience, min_delta and restore_best (a mode against the metric's direction is
refused there, as the project file refuses it). Choosing another optimiser or schedule replaces
its whole section, and another loss its ``loss_options``, dropping the arguments the new choice does not take, so the
project stays one that loads. The type boxes show about ten letters (the lists the whole names),
so the form keeps its width at 1024 px.

For a source that needs a file or folder, Path says which to pick (not "default"); for CSV the
Target column box lists the columns of the file's header, read on a background thread
(``workbench.data.sources.tables.columns``), and also takes a typed name; its "…" button opens
``ui.training.csv_columns.CsvColumnsDialog`` (column types, target, task, missing cells). ``shutdown()`` awaits
that read (the panel calls it). The "…" beside Validation opens ``ui.training.split_dialog``: the
test share (data.test_fraction) and separate validation / test files.
"""
from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import torch
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QGridLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QToolButton, QVBoxLayout, QWidget)

from workbench.data.sources import tables
from workbench.insight.costs import batch_hint, breakdown
from workbench.project.project_file import lr_scale_problems
from workbench.errors import Problem
from workbench.project.settings import (LOSS_ARGS, PATH_SOURCES, SCHEDULE_ARGS, WARMUP_ARGS, DataSettings,
                                        EarlyStoppingSettings, LossSettings, OptimizerSettings, ScheduleSettings,
                                        Settings, TrainingSettings,
                                        check_lr_scale, check_weights, optimizer_arguments, path_kind)

from ui.common import theme
from ui.common.value_menu import ValueMenu
from ui.common.workers import Worker, start_worker

from ui.document.commands import UNSET, SetValue
from ui.editor.fields import Field, format_value, make_field
from ui.training.csv_columns import CsvColumnsDialog
from ui.training.split_dialog import SplitDialog

SECTIONS = {"data": DataSettings.params(), "training": TrainingSettings.params(),
            "optimizer": OptimizerSettings.params(), "schedule": ScheduleSettings.params(),
            "loss_options": LossSettings.params(), "early_stopping": EarlyStoppingSettings.params()}
# (section, name, label, row, column) of the compact two-pair grid the form shows
ROWS = (("data", "source", "Data", 0, 0), ("data", "batch_size", "Batch size", 0, 1),
        ("data", "path", "Path", 1, 0), ("data", "target", "Target column", 2, 0),
        ("data", "val_fraction", "Validation", 3, 0),
        ("training", "epochs", "Epochs", 3, 1), ("optimizer", "type", "Optimizer", 4, 0),
        ("optimizer", "lr", "Learning rate", 4, 1), ("schedule", "type", "Schedule", 5, 0),
        ("training", "seed", "Seed", 5, 1), ("training", "device", "Device", 6, 0),
        ("training", "amp", "Mixed precision", 6, 1), ("training", "loss", "Loss", 7, 0),
        ("early_stopping", "enabled", "Early stopping", 7, 1))
WIDE = {("data", "path"), ("data", "target")}  # rows spanning both column pairs
# the choices whose own arguments a "…" button next to them edits: form key -> arguments section
ARGUMENTS = {("optimizer", "type"): "optimizer", ("schedule", "type"): "schedule", ("training", "loss"): "loss_options",
             ("early_stopping", "enabled"): "early_stopping"}
CUSTOM_TEXT = {"lr_scale": "layer=factor, ... e.g. backbone=0.1", "weight": "one number per class, e.g. 1, 2, 1",
               "pos_weight": "one number per output (or one for all)"}
LAST_COLUMN = "(the last column)"  # the target box's first entry: data.target unset


def setting_name(section: str, name: str) -> str:
    """The project's dotted name of a form field: ('optimizer', 'lr') -> 'training.optimizer.lr'."""
    return f"{section}.{name}" if section in ("data", "training") else f"training.{section}.{name}"


class SetSetting(SetValue):
    """Set one data or training setting; quick successive edits of it merge."""

    ID = 51

    def __init__(self, form: "SettingsForm", section: str, name: str, value):
        self.form, self.section, self.name = form, section, name
        super().__init__((section, name), form.project.setting(setting_name(section, name)), value)

    def label(self) -> str:
        if isinstance(self.new, Settings):  # a whole section: a type change drops the arguments it does not take
            kind = getattr(self.new, "type", None)
            return f"Set training.{self.name}" + (f" to {kind}" if kind else "")
        return f"Set {self.section}.{self.name} to {format_value(self.new) or 'default'}"

    def apply(self, value) -> None:
        self.form.apply_value(self.section, self.name, value)


class SetColumnType(SetSetting):
    """Set one CSV column's type in data.columns (the CSV Columns dialog): quick edits of the same
    column merge, edits of two columns are two steps."""

    ID = 52

    def __init__(self, form: "SettingsForm", column: str, columns: dict | None):
        self.column = column
        super().__init__(form, "data", "columns", columns)
        self.key = ("data", "columns", column)

    def label(self) -> str:
        return f"Set CSV column {self.column!r} to {(self.new or {}).get(self.column, 'detected')}"


def devices_here() -> list[tuple[str, str]]:
    """(value, label) of the devices this machine has."""
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    best = "cuda:0" if cuda else ("mps" if has_mps else "cpu")
    out = [("auto", f"auto ({best})"), ("cpu", "cpu")]
    out += [(f"cuda:{i}", f"cuda:{i}") for i in range(cuda)]
    if has_mps:
        out.append(("mps", "mps (Apple GPU)"))
    return out


def choose_data_path(parent, source: str, start: str) -> str | None:
    """Ask for a data folder or CSV file (tests replace this)."""
    if source == "csv":
        path, _ = QFileDialog.getOpenFileName(parent, "CSV table", start, "CSV files (*.csv);;All files (*)")
    else:
        path = QFileDialog.getExistingDirectory(parent, "Data folder", start)
    return path or None


class SettingsForm(QWidget):
    changed = Signal(str, str)  # section, name (after any change, undo and redo included)

    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.fields: dict[tuple[str, str], Field] = {}
        self.labels: dict[tuple[str, str], QLabel] = {}
        self.cuda = torch.cuda.is_available()
        self._rows: dict[tuple[str, str], tuple[QLabel, QWidget]] = {}
        self.arg_buttons: dict[str, QToolButton] = {}
        self.arguments: ArgumentsDialog | None = None  # the open Args... form
        self.csv_columns: CsvColumnsDialog | None = None  # the open CSV Columns… dialog
        self.split_dialog: SplitDialog | None = None  # the open test split and separate files dialog
        self.columns: list[str] = []  # the CSV header's column names (read off the UI thread)
        self._columns_of: str | None = None  # the CSV file they were read from (or are being read from)
        self._header_job: Worker | None = None
        self._closed = False
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(3)
        self.grid.setColumnStretch(1, 1)
        self.grid.setColumnStretch(3, 1)
        self.columns_shown = 2
        self.value_menu = ValueMenu(self)  # a field's right-click menu: entries from parts above (Sweep this value…)
        for section, name, label, row, column in ROWS:
            self._add(section, name, label, row, column)
        doc.reset.connect(self.refresh)
        doc.costs.updated.connect(self._show_fit)
        self.refresh()
        self._show_fit()

    @property
    def project(self):
        return self.doc.project

    # ------------------------------------------------------------ building
    def _param(self, section: str, name: str):
        return next(p for p in SECTIONS[section] if p.name == name)

    def _add(self, section: str, name: str, text: str, row: int, column: int) -> None:
        key = (section, name)
        if key == ("training", "device"):
            widget = self.device_box = QComboBox(objectName="field_device")
            widget.setToolTip("Where the model trains: only the devices found on this machine are offered")
            widget.activated.connect(lambda i: self.set_value("training", "device", widget.itemData(i)))
        elif key == ("data", "target"):
            widget = self.target_box = QComboBox(objectName="field_data_target")
            widget.setEditable(True)
            widget.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
            widget.setToolTip("The CSV column the model learns to predict (the other columns are its inputs); "
                              "pick one from the file's header or type its name")
            widget.activated.connect(self._target_edited)
            widget.lineEdit().editingFinished.connect(self._target_edited)
            # "…" like the arguments buttons: a word would be cut off beside Target column at 1024 px
            columns = QToolButton(objectName="csvColumnsButton", text="…")
            columns.setToolTip("CSV Columns…: each column's type (numeric, categorical, ignore), the target, "
                               "classification or regression, and what missing cells become")
            columns.clicked.connect(self.edit_csv_columns)
            holder = QWidget()
            line = QHBoxLayout(holder)
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(widget, 1)
            line.addWidget(columns)
            widget = holder
        else:
            field = make_field(self._param(section, name))
            field.widget.setObjectName(f"field_{section}_{name}")
            field.edited.connect(lambda value, k=key: self.set_value(k[0], k[1], value))
            self.fields[key] = field
            widget = field.widget
        if key in ARGUMENTS:  # the choice's own arguments, in a small form of their own
            # a long name (CosineAnnealingWarmRestarts) must not widen the form: the box shows
            # about 12 letters, its list the whole names
            if isinstance(widget, QComboBox):
                widget.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
                widget.setMinimumContentsLength(10)
                widget.view().setMinimumWidth(widget.view().sizeHintForColumn(0) + 24)
            button = QToolButton(objectName=f"args_{ARGUMENTS[key]}", text="…")
            button.clicked.connect(lambda _=False, section=ARGUMENTS[key]: self.edit_arguments(section))
            self.arg_buttons[ARGUMENTS[key]] = button
            holder = QWidget()
            line = QHBoxLayout(holder)
            line.setContentsMargins(0, 0, 0, 0)
            line.setSpacing(2)
            line.addWidget(widget, 1)
            line.addWidget(button)
            widget = holder
        if key == ("data", "path"):
            browse = QPushButton("Browse...", objectName="browseData")
            browse.clicked.connect(self.browse)
            holder = QWidget()
            line = QHBoxLayout(holder)
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(widget, 1)
            line.addWidget(browse)
            widget = holder
        if key == ("data", "val_fraction"):  # test split and separate validation / test files (evaluation)
            button = QToolButton(objectName="split_settings", text="…")
            button.setToolTip("Test split and separate validation / test files")
            button.clicked.connect(lambda _=False: self.edit_split())
            holder = QWidget()
            line = QHBoxLayout(holder)
            line.setContentsMargins(0, 0, 0, 0)
            line.setSpacing(2)
            line.addWidget(widget, 1)
            line.addWidget(button)
            widget = holder
        if key == ("data", "batch_size"):  # the largest batch that fits, from the memory forecast
            self.batch_fit = QLabel(objectName="batchFit")
            holder = QWidget()
            line = QHBoxLayout(holder)
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(widget, 1)
            line.addWidget(self.batch_fit)
            widget = holder
        if key == ("training", "amp") and not self.cuda:
            self.fields[key].widget.setToolTip("Mixed precision needs a CUDA GPU; there is none here")
        label = QLabel(text)
        label.setBuddy(widget)
        if key in self.fields:
            self.value_menu.watch(self.fields[key].widget, self.fields[key].param, lambda: setting_name(*key), label)
        self.labels[key] = label
        self._rows[key] = (label, widget)
        self._place(key, row, column)

    def _place(self, key: tuple[str, str], row: int, column: int) -> None:
        label, widget = self._rows[key]
        if self.columns_shown == 2:
            self.grid.addWidget(label, row, 2 * column)
            self.grid.addWidget(widget, row, 2 * column + 1, 1, 3 if key in WIDE else 1)
        else:  # one label / field pair a row, in reading order
            index = sorted((r, c) for *_, r, c in ROWS).index((row, column))
            self.grid.addWidget(label, index, 0)
            self.grid.addWidget(widget, index, 1)

    def set_columns(self, columns: int) -> None:
        """Two label / field pairs a row (wide), or one (narrow: the form then fits in about
        half the width instead of scrolling sideways)."""
        if columns == self.columns_shown:
            return
        self.columns_shown = columns
        for label, widget in self._rows.values():
            self.grid.removeWidget(label)
            self.grid.removeWidget(widget)
        for section, name, _text, row, column in ROWS:
            self._place((section, name), row, column)
        self.grid.setColumnStretch(3, 1 if columns == 2 else 0)
        self.grid.invalidate()
        self.updateGeometry()  # layouts around the form measure it again

    # ------------------------------------------------------------ model -> form
    def refresh(self) -> None:
        for (section, name), field in self.fields.items():
            field.show_value(self.project.setting(setting_name(section, name)))
        self._fill_devices()
        source = self.project.data.source
        self._show_row(("data", "path"), source in PATH_SOURCES)
        if source in PATH_SOURCES:  # say what to pick, never "default": there is no default file
            _title, what, holds = path_kind(source)
            self.fields[("data", "path")].widget.setPlaceholderText(f"pick a {what} with Browse... ({holds})")
        self._show_row(("data", "target"), source == "csv")
        if source == "csv":
            self._read_columns()
        self._fill_targets()
        self._show_row(("training", "amp"), self.cuda)
        for section, button in self.arg_buttons.items():
            title, params, customs = arguments_of(self.project.training, section)
            given = [f"{name}={format_value(self.project.setting(setting_name(section, name)))}"
                     for name in [p.name for p in params] + customs if self._is_set(section, name)]
            button.setEnabled(bool(params or customs))
            button.setToolTip(f"The arguments of {title}: " + (", ".join(given) if given else "torch's defaults")
                              if params or customs else f"{title} takes no arguments")
        if self.arguments is not None:
            self.arguments.refresh()
        if self.csv_columns is not None:
            self.csv_columns.refresh()

    def _show_fit(self) -> None:
        """'≤ N' beside the batch size (the largest that fits; the device and figures in its
        tooltip), '> N fits' in the warning colour when the batch is too big."""
        report = self.doc.costs.report
        text, sentence = batch_hint(report) if report is not None else ("", "")
        self.batch_fit.setText(text)
        self.batch_fit.setToolTip(f"{sentence}\n\n{breakdown(report)}" if report is not None else "")
        too_big = report is not None and report.fits is False
        self.batch_fit.setStyleSheet(f"color: {theme.BAD if too_big else theme.MUTED_TEXT}")

    def _show_row(self, key, visible: bool) -> None:
        for widget in self._rows[key]:
            widget.setVisible(visible)

    def _read_columns(self) -> None:
        """Read the CSV header on a background thread when the file changed."""
        path = self.project.data.path
        if path == self._columns_of or self._header_job is not None or self._closed:
            return  # read already, or a read is running (its end looks again)
        self._columns_of = path
        if not path:
            self.columns = []
            return
        self._header_job = start_worker(tables.columns, path, name="csv-header", returned=self._got_columns,
                                        errored=lambda exc: self._got_columns([], exc),
                                        finished=self._header_read)

    def _got_columns(self, columns: list[str], problem: Exception | None = None) -> None:
        self.columns = list(columns)
        note = f"\n\nThe file's header could not be read: {problem}" if problem else ""
        self.target_box.setToolTip("The CSV column the model learns to predict (the other columns are its "
                                   f"inputs); pick one from the file's header or type its name{note}")
        self._fill_targets()

    def _header_read(self) -> None:
        self._header_job = None
        if self.project.data.source == "csv" and self.project.data.path != self._columns_of:
            self._read_columns()  # the path changed while the old file was read

    def _fill_targets(self) -> None:
        box, current = self.target_box, self.project.data.target
        if box.lineEdit().hasFocus() and box.currentText().strip() == (current or ""):
            return  # the user is typing this name: leave their text alone
        box.blockSignals(True)
        box.clear()
        box.addItem(LAST_COLUMN, None)
        for name in self.columns:
            box.addItem(name, name)
        if current is not None and box.findData(current) < 0:  # typed, or not in this file
            box.addItem(current, current)
        box.setCurrentIndex(max(0, box.findData(current)) if current is not None else 0)
        box.blockSignals(False)

    def _target_edited(self, *_) -> None:
        text = self.target_box.currentText().strip()
        index = self.target_box.findText(text)
        value = self.target_box.itemData(index) if index >= 0 else (text or None)
        self.set_value("data", "target", value)

    def shutdown(self) -> None:
        """Await the header read (the window is closing)."""
        self._closed = True
        if self.csv_columns is not None:
            self.csv_columns.shutdown()
        if self._header_job is not None:
            self._header_job.quit()
            self._header_job.wait()

    def _fill_devices(self) -> None:
        box, current = self.device_box, self.project.training.device
        box.blockSignals(True)
        box.clear()
        for value, label in devices_here():
            box.addItem(label, value)
        if box.findData(current) < 0:  # a project from another machine: keep it, say it is missing
            box.addItem(f"{current} (not on this machine)", current)
        box.setCurrentIndex(box.findData(current))
        box.blockSignals(False)

    def _is_set(self, section: str, name: str) -> bool:
        value = self.project.setting(setting_name(section, name))
        param = next((p for p in SECTIONS[section] if p.name == name), None)
        return bool(value) if param is None else value != param.default

    def edit_arguments(self, section: str) -> "ArgumentsDialog":
        """Open the small form of the chosen optimiser's, schedule's or loss's own arguments."""
        if self.arguments is not None:
            self.arguments.close()
        self.arguments = ArgumentsDialog(self, section)
        self.arguments.finished.connect(lambda _r, d=self.arguments: self._arguments_closed(d))
        self.arguments.show()
        return self.arguments

    def edit_csv_columns(self) -> CsvColumnsDialog:
        """Open the CSV Columns dialog (column types, target, task, missing cells)."""
        if self.csv_columns is not None:
            self.csv_columns.close()
        self.csv_columns = dialog = CsvColumnsDialog(self)
        dialog.finished.connect(lambda _r: self._csv_columns_closed(dialog))
        dialog.show()
        return dialog

    def _csv_columns_closed(self, dialog) -> None:
        if self.csv_columns is dialog:
            self.csv_columns = None

    def edit_split(self) -> SplitDialog:
        """Open the test split and separate files dialog (the "…" beside Validation)."""
        if self.split_dialog is not None:
            self.split_dialog.close()
        self.split_dialog = SplitDialog(self)
        self.split_dialog.show()
        return self.split_dialog

    def _arguments_closed(self, dialog) -> None:
        if self.arguments is dialog:
            self.arguments = None

    # ------------------------------------------------------------ form -> model
    def set_value(self, section: str, name: str, value) -> None:
        if value is UNSET:  # an emptied optional field (the data path)
            value = None
        training = self.project.training
        if (section, name) == ("optimizer", "type") and value != training.optimizer.type:
            self.doc.undo_stack.push(SetSetting(self, "training", "optimizer", training.optimizer.for_type(value)))
            return
        if (section, name) == ("schedule", "type") and value != training.schedule.type:
            old = training.schedule
            new = ScheduleSettings(type=value, warmup_epochs=old.warmup_epochs,
                                   warmup_start_factor=old.warmup_start_factor, monitor=old.monitor)
            self.doc.undo_stack.push(SetSetting(self, "training", "schedule", new))
            return
        if (section, name) == ("training", "loss") and value != training.loss:
            keep = {n: v for n, v in training.loss_options.to_dict().items() if n in LOSS_ARGS.get(value, ())}
            self.doc.undo_stack.beginMacro(f"Set training.loss to {value}")
            self.doc.undo_stack.push(SetSetting(self, "training", "loss_options", LossSettings(**keep)))
            self.doc.undo_stack.push(SetSetting(self, "training", "loss", value))
            self.doc.undo_stack.endMacro()
            return
        if name in CUSTOM_TEXT:  # checked by the caller (ArgumentsDialog)
            if self.project.setting(setting_name(section, name)) != value:
                self.doc.undo_stack.push(SetSetting(self, section, name, value))
            return
        if name != "device":
            value, err = self._param(section, name).check(value)
            if err:  # the fields' own bounds normally prevent this
                self.refresh()
                return
        if self.project.setting(setting_name(section, name)) == value:
            return
        self.doc.undo_stack.push(SetSetting(self, section, name, value))

    def set_column_type(self, column: str, kind: str | None) -> None:
        """One CSV column's type in data.columns (None: detected), as one undoable step."""
        columns = dict(self.project.data.columns or {})
        if kind is None:
            columns.pop(column, None)
        else:
            columns[column] = kind
        if columns != (self.project.data.columns or {}):
            self.doc.undo_stack.push(SetColumnType(self, column, columns or None))

    def apply_value(self, section: str, name: str, value) -> None:
        self.project.set_setting(setting_name(section, name), value)
        self.refresh()
        self.changed.emit(section, name)

    def browse(self) -> None:
        data = self.project.data
        # the data's folder, else the project's; else Qt's last visited folder (an empty start)
        start = str(Path(data.path).expanduser().parent) if data.path else (str(self.doc.path.parent)
                                                                            if self.doc.path else "")
        path = choose_data_path(self, data.source, start)
        if path:
            self.set_value("data", "path", path)


def arguments_of(training: TrainingSettings, section: str) -> tuple[str, list, list[str]]:
    """(the choice in words, the Params of its arguments, the names of its table / list arguments)
    for the Args... form of ``section``: optimizer, schedule or loss_options. An optimiser's Params
    show torch's default for that type."""
    if section == "optimizer":
        kind = training.optimizer.type
        taken = optimizer_arguments(kind)
        own = {p.name: p for p in OptimizerSettings.params()}
        params = [dataclasses.replace(own[name], default=default, nullable=own[name].kind != "bool",
                                      help=f"{own[name].help} ({kind}'s default: {format_value(default)})")
                  for name, default in taken.items() if name != "lr"]  # in the constructor's order
        return kind, params, ["lr_scale"]
    if section == "schedule":
        kind = training.schedule.type
        names = SCHEDULE_ARGS[kind] + WARMUP_ARGS
        defaults = scheduler_defaults(kind)
        return (kind if kind != "none" else "a constant rate"), \
            [dataclasses.replace(p, default=defaults[p.name]) if p.default is None and defaults.get(p.name) is not None
             else p for p in ScheduleSettings.params() if p.name in names], []
    if section == "early_stopping":
        return "Early stopping", [p for p in EarlyStoppingSettings.params() if p.name != "enabled"], []
    names = LOSS_ARGS.get(training.loss, ())
    return training.loss, [p for p in LossSettings.params() if p.name in names], \
        [n for n in ("weight", "pos_weight") if n in names]


def scheduler_defaults(kind: str) -> dict:
    """torch's defaults of a scheduler's arguments, read from its constructor (shown in grey)."""
    scheduler = getattr(torch.optim.lr_scheduler, kind, None)
    if scheduler is None:
        return {}
    return {name: p.default for name, p in inspect.signature(scheduler.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty and isinstance(p.default, (int, float, str))}


def parse_custom(name: str, text: str):
    """The text of a table / list argument -> (value, error)."""
    text = text.strip()
    if name == "lr_scale":
        table = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, eq, number = part.partition("=")
            try:
                table[key.strip()] = float(number) if eq else None
            except ValueError:
                return None, f"lr_scale: {part!r} is not layer=factor"
        return check_lr_scale(table, name)
    if not text:
        return None, None
    try:
        numbers = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        return None, f"{name} must be numbers separated by commas, got {text!r}"
    return check_weights(numbers, name)


def custom_text(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={format_value(v)}" for k, v in value.items())
    return format_value(value)


class ArgumentsDialog(QDialog):
    """The chosen optimiser's, schedule's or loss's own arguments (Args... next to the choice):
    one field per argument of that choice, generated from its Params (empty: torch's default,
    shown in grey); every change is an undoable edit of the project, like the form's."""

    def __init__(self, form: SettingsForm, section: str):
        super().__init__(form)
        self.form, self.section = form, section
        self.setObjectName(f"arguments_{section}")
        self.fields: dict[str, Field] = {}
        self.texts: dict[str, QLineEdit] = {}
        self.problem = QLabel(objectName="argumentsProblem")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.grid = QFormLayout()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        column = QVBoxLayout(self)
        self.title = QLabel()
        column.addWidget(self.title)
        column.addLayout(self.grid)
        column.addWidget(self.problem)
        column.addWidget(buttons)
        self._kind = None
        self.refresh()

    def refresh(self) -> None:
        """Show the current values; a changed choice (undo, or the form) rebuilds the fields."""
        title, params, customs = arguments_of(self.form.project.training, self.section)
        kind = (title, tuple(p.name for p in params), tuple(customs))
        if kind != self._kind:
            self._kind = kind
            while self.grid.rowCount():
                self.grid.removeRow(0)
            self.fields, self.texts = {}, {}
            self.setWindowTitle(f"{title}: arguments")
            self.title.setText(f"<b>{title}</b>" + ("" if params or customs else ": no arguments")
                               + ("<br>Empty fields take torch's default." if self.section == "optimizer" else ""))
            for p in params:
                field = make_field(p)
                field.edited.connect(lambda value, n=p.name: self._edited(n, value))
                field.invalid.connect(self._say)
                self.fields[p.name] = field
                self.grid.addRow(p.name, field.widget)
            for name in customs:
                line = QLineEdit(objectName=f"field_{name}")
                line.setPlaceholderText(CUSTOM_TEXT[name])
                line.setToolTip(CUSTOM_TEXT[name])
                line.editingFinished.connect(lambda n=name: self._custom_edited(n))
                self.texts[name] = line
                self.grid.addRow(name, line)
        for name, field in self.fields.items():
            value = self.form.project.setting(setting_name(self.section, name))
            field.show_value(UNSET if value is None else value)  # None: torch's default, shown as such
        for name, line in self.texts.items():
            if not line.hasFocus():
                line.setText(custom_text(self.form.project.setting(setting_name(self.section, name))))

    def _say(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))

    def _edited(self, name: str, value) -> None:
        self._say("")
        if self.section == "optimizer" and value == optimizer_arguments(self.form.project.training.optimizer.type).get(
                name, object()):
            value = None  # torch's default: left out of the file
        if self.section == "early_stopping":
            problem = early_stopping_problem(self.form.project.training.early_stopping, name, value)
            if problem:
                self._say(problem)
                self.refresh()
                return
        self.form.set_value(self.section, name, value)

    def _custom_edited(self, name: str) -> None:
        value, err = parse_custom(name, self.texts[name].text())
        if err is None and name == "lr_scale":
            training = self.form.project.training.with_value("optimizer.lr_scale", value)
            err = "; ".join(p.message for p in lr_scale_problems(self.form.doc.spec, training)) or None
        self._say(err or "")
        if err is None:
            self.form.set_value(self.section, name, value)


def early_stopping_problem(current: EarlyStoppingSettings, name: str, value) -> str:
    """What the project file would refuse in ``training.early_stopping`` with ``name`` set to
    ``value`` (a mode against the metric's direction), or ''."""
    problems: list[Problem] = []
    EarlyStoppingSettings.from_json({**current.to_json(), name: value}, "training.early_stopping", problems)
    return "; ".join(f"{p.path.split('.')[-1]}: {p.message}" for p in problems)
