"""The steps of one augmentation pipeline as a Qt list model, reordered by drag and drop.

The model only shows the steps it is given (``set_steps``) and never changes them itself: a
drop emits ``moveRequested(from_row, to_row)`` and the Augmentation dock makes the move an
undoable edit of the project, which then gives the model its new steps.
"""
from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QByteArray, QMimeData, QModelIndex, Qt, Signal

from PySide6.QtGui import QColor

from workbench.data import augment

from ui.common import theme

MIME = "application/x-workbench-augment-step"


class StepsModel(QAbstractListModel):
    moveRequested = Signal(int, int)  # from row, to row (the row the step ends on)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.steps: list[dict] = []
        self.problem_row: int | None = None  # the step a pipeline error names (shown in red)

    def set_steps(self, steps: list[dict], problem_row: int | None = None) -> None:
        self.beginResetModel()
        self.steps = [dict(s) for s in steps]
        self.problem_row = problem_row
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.steps)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.steps):
            return None
        step = self.steps[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{index.row() + 1}. {augment.step_text(step)}"
        if role == Qt.ItemDataRole.ToolTipRole:
            kind = augment.catalog().get(step.get("type"))
            return augment.step_text(step) + (f"\n{kind.help}" if kind else "")
        if role == Qt.ItemDataRole.ForegroundRole and index.row() == self.problem_row:
            return QColor(theme.ERROR)
        return None

    def flags(self, index):
        base = Qt.ItemFlag.ItemIsEnabled
        if not index.isValid():
            return base | Qt.ItemFlag.ItemIsDropEnabled
        return base | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled

    def supportedDropActions(self):
        return Qt.DropAction.MoveAction

    def supportedDragActions(self):
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [MIME]

    def mimeData(self, indexes) -> QMimeData:
        mime = QMimeData()
        rows = sorted({i.row() for i in indexes if i.isValid()})
        mime.setData(MIME, QByteArray(str(rows[0] if rows else -1).encode()))
        return mime

    def canDropMimeData(self, mime, action, row, column, parent) -> bool:
        return mime is not None and mime.hasFormat(MIME)

    def dropMimeData(self, mime, action, row, column, parent) -> bool:
        """Ask for the move; return False so the view removes nothing itself."""
        if mime is None or not mime.hasFormat(MIME):
            return False
        try:
            source = int(bytes(mime.data(MIME).data()).decode())
        except ValueError:
            return False
        if not 0 <= source < len(self.steps):
            return False
        if parent.isValid():  # dropped onto a row: before it
            row = parent.row()
        if row < 0:
            row = len(self.steps)
        target = row - 1 if row > source else row  # where the step ends once taken out
        if target != source:
            self.moveRequested.emit(source, target)
        return False
