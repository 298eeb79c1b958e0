"""The CSV Columns dialog (the "…" button beside the Target column box): each column of the file with
its detected type, a type box (detected, numeric, categorical, ignore) and a target button; the
task (auto shows what it detects) and what missing cells become. Every change goes through the
settings form (``set_value``, ``set_column_type``), so it is one undoable ``SetSetting`` saved in the project file
(``data.columns``, ``data.target``, ``data.task``, ``data.missing``). The file is read on a
worker (``workbench.data.sources.tables.column_report``); a file that cannot be read says why."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                               QHeaderView, QLabel, QRadioButton, QTableWidget, QTableWidgetItem, QVBoxLayout)

from workbench.data.sources import tables
from workbench.project.settings import COLUMN_TYPES, MISSING_RULES, TASKS

from ui.common.workers import Worker, start_worker

DETECTED = "detected"  # the type box's first entry: the column is not in data.columns
MISSING_TEXT = {"mean": "mean (numbers: training mean; text: its own category)",
                "mode": "mode (most common value in the training rows)",
                "drop": "drop (leave out rows with a missing cell)"}
NAME, FOUND, TYPE, TARGET = range(4)  # table columns


class CsvColumnsDialog(QDialog):
    """Column types, target, task and missing values of the project's CSV file."""

    def __init__(self, form):
        super().__init__(form)
        self.form = form
        self.setObjectName("csvColumns")
        self.setWindowTitle("CSV Columns")
        self.report: list[tables.ColumnReport] = []
        self._read_of: str | None = None
        self._job: Worker | None = None
        self._closed = False
        self.title = QLabel(objectName="csvColumnsTitle")
        self.title.setWordWrap(True)
        self.table = QTableWidget(0, 4, objectName="csvColumnsTable")
        self.table.setHorizontalHeaderLabels(["Column", "Detected", "Type", "Target"])
        self.table.verticalHeader().hide()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.targets = QButtonGroup(self)
        self.targets.setExclusive(True)
        self.targets.idClicked.connect(self._target_clicked)
        self.types: dict[str, QComboBox] = {}
        self.task_box = QComboBox(objectName="csvTask")
        for task in TASKS:
            self.task_box.addItem(task, task)
        self.task_box.activated.connect(lambda i: self.form.set_value("data", "task", self.task_box.itemData(i)))
        self.missing_box = QComboBox(objectName="csvMissing")
        for rule in MISSING_RULES:
            self.missing_box.addItem(MISSING_TEXT[rule], rule)
        self.missing_box.activated.connect(
            lambda i: self.form.set_value("data", "missing", self.missing_box.itemData(i)))
        self.problem = QLabel(objectName="csvColumnsProblem")
        self.problem.setWordWrap(True)
        self.problem.hide()
        options = QFormLayout()
        options.addRow("Task", self.task_box)
        options.addRow("Missing cells", self.missing_box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        column = QVBoxLayout(self)
        column.addWidget(self.title)
        column.addWidget(self.table, 1)
        column.addLayout(options)
        column.addWidget(self.problem)
        column.addWidget(buttons)
        self.resize(560, 420)
        self.refresh()

    @property
    def data(self):
        return self.form.project.data

    # ------------------------------------------------------------ model -> dialog
    def refresh(self) -> None:
        """Show the project's settings; read the file again when data.path changed."""
        if self.data.path != self._read_of:
            self._read()
        self._fill()

    def _read(self) -> None:
        if self._job is not None or self._closed:
            return  # its end looks again
        self._read_of = self.data.path
        self.report = []
        if not self._read_of:
            return
        self.title.setText(f"Reading {self._read_of}…")
        self._job = start_worker(tables.column_report, self._read_of, name="csv-columns", returned=self._got,
                                 errored=self._failed, finished=self._read_done)

    def _got(self, report: list) -> None:
        self.report = list(report)
        self._say("")
        self._fill()

    def _failed(self, exc: Exception) -> None:
        self.report = []
        self._say(str(exc))
        self._fill()

    def _read_done(self) -> None:
        self._job = None
        if self.data.path != self._read_of:
            self._read()

    def _say(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))

    def _fill(self) -> None:
        data = self.data
        columns = data.columns or {}
        target = data.target if data.target is not None else (self.report[-1].name if self.report else None)
        self.title.setText(f"<b>{data.path or 'no file'}</b>: {len(self.report)} columns. The target is what the "
                           "model learns; the other columns are its inputs (text one-hot encoded).")
        if [self.table.item(r, NAME).text() for r in range(self.table.rowCount())] != [c.name for c in self.report]:
            self._build_rows()
        for row, col in enumerate(self.report):
            box = self.types[col.name]
            box.blockSignals(True)
            box.setCurrentIndex(max(0, box.findData(columns.get(col.name, DETECTED))))
            box.blockSignals(False)
            box.setEnabled(col.name != target)
            self.targets.button(row).setChecked(col.name == target)
        self.task_box.setCurrentIndex(self.task_box.findData(data.task))
        found = next((c for c in self.report if c.name == target), None)
        self.task_box.setItemText(0, f"auto ({found.as_target})" if found is not None else "auto")
        self.missing_box.setCurrentIndex(self.missing_box.findData(data.missing))

    def _build_rows(self) -> None:
        for button in self.targets.buttons():
            self.targets.removeButton(button)
        self.types = {}
        self.table.setRowCount(len(self.report))
        for row, col in enumerate(self.report):
            self.table.setItem(row, NAME, QTableWidgetItem(col.name))
            found = col.detected + (f", {col.missing} missing" if col.missing else "")
            item = QTableWidgetItem(found)
            item.setToolTip(f"{col.distinct} different values; as the target: {col.as_target}")
            self.table.setItem(row, FOUND, item)
            box = QComboBox(objectName=f"csvType_{row}")
            box.addItem(f"{DETECTED} ({col.detected})", DETECTED)
            for kind in COLUMN_TYPES:
                box.addItem(kind, kind)
            box.activated.connect(lambda i, name=col.name, b=box: self._type_chosen(name, b.itemData(i)))
            self.types[col.name] = box
            self.table.setCellWidget(row, TYPE, box)
            radio = QRadioButton(objectName=f"csvTarget_{row}")
            radio.setToolTip(f"Predict {col.name!r}")
            self.targets.addButton(radio, row)
            self.table.setCellWidget(row, TARGET, radio)
        self.table.resizeColumnsToContents()

    # ------------------------------------------------------------ dialog -> model
    def _type_chosen(self, name: str, kind: str) -> None:
        self.form.set_column_type(name, None if kind == DETECTED else kind)

    def _target_clicked(self, row: int) -> None:
        if 0 <= row < len(self.report):
            self.form.set_value("data", "target", self.report[row].name)

    def choose_type(self, name: str, kind: str) -> None:
        """Pick ``kind`` (or DETECTED) in a column's type box, as a click would (tests)."""
        box = self.types[name]
        box.setCurrentIndex(box.findData(kind))
        box.activated.emit(box.currentIndex())

    def choose_target(self, name: str) -> None:
        """Click a column's target button (tests)."""
        row = next(i for i, c in enumerate(self.report) if c.name == name)
        self.targets.button(row).click()

    def shutdown(self) -> None:
        self._closed = True
        if self._job is not None:
            self._job.quit()
            self._job.wait()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.shutdown()
        super().closeEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if event.key() == Qt.Key.Key_Escape:
            self.close()
            return
        super().keyPressEvent(event)
