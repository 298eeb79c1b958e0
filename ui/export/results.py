"""The export dialog's result panel: one row per exported file with its size, the time it
took and how closely it reproduces the model."""
from __future__ import annotations

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from workbench.export.base import ExportResult, human_size, human_time
from workbench.export.registry import FORMATS

from ui.common import theme

COLUMNS = ("Format", "File", "Size", "Export time", "Verification", "Max abs diff", "Max rel diff", "Batch sizes")


class ResultTable(QTableWidget):
    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("exportResults")
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)
        self.setWordWrap(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.horizontalHeader()
        for i in range(len(COLUMNS)):
            header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)

    def clear_rows(self) -> None:
        self.setRowCount(0)

    def add_result(self, r: ExportResult) -> None:
        row = self.rowCount()
        self.insertRow(row)
        v = r.verification
        name = FORMATS[r.format].title.split(" (")[0] if r.format in FORMATS else r.format
        if not r.ok:
            cells = [name, r.path.name, "", "", "failed", "", "", ""]
        elif v is None:
            cells = [name, r.path.name, human_size(r.size_bytes), human_time(r.seconds), "not verified",
                     "", "", ""]
        else:
            cells = [name, r.path.name, human_size(r.size_bytes), human_time(r.seconds),
                     f"{'passed' if v.passed else 'FAILED'} ({human_time(v.seconds)})", f"{v.max_abs:.3g}",
                     f"{v.max_rel:.3g}", ", ".join(map(str, v.batch_sizes))]
        tip = r.error or (f"{r.path}\n{v.summary()}" + "".join(f"\n{n}" for n in v.notes) if v else str(r.path))
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(tip)
            if col == 4:
                good = r.ok and (v is None or v.passed)
                item.setForeground(QBrush(QColor(theme.GOOD if good and v else
                                                 theme.MUTED if good else theme.ERROR)))
            self.setItem(row, col, item)

    def texts(self, row: int) -> list[str]:
        return [self.item(row, c).text() for c in range(self.columnCount())]
