"""The stack view: the layer table in the centre of the window.

A ``QTreeView`` over ``StackModel``. It takes drops from the palette and its own rows
(the model turns them into undoable document edits), keeps the dropped rows selected, and
offers Delete / Duplicate / Freeze / Rename through actions the window gives it.
"""
from __future__ import annotations

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QPoint, Qt, Signal
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeView

from ui.editor.stack_model import ARGS, COLUMNS, FROZEN, ID, PARAMS, POS, SHAPE, TYPE, StackModel

_WIDTHS = {POS: 36, ID: 112, TYPE: 132, SHAPE: 104, PARAMS: 112, FROZEN: 54}


class StackView(QTreeView):
    currentLayerChanged = Signal(object)  # layer id or None

    def __init__(self, model: StackModel, parent=None):
        super().__init__(parent)
        self.setObjectName("stack")
        self.setModel(model)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)
        self.setAllColumnsShowFocus(True)
        self.setExpandsOnDoubleClick(False)
        self.setIndentation(14)
        self.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed
                             | QAbstractItemView.EditTrigger.SelectedClicked)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        header = self.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(40)
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            if col in _WIDTHS:
                self.setColumnWidth(col, _WIDTHS[col])
        header.setSectionResizeMode(ARGS, QHeaderView.ResizeMode.Stretch)
        header.moveSection(header.visualIndex(POS), 0)  # position first, then the (tree) id column
        model.dropped.connect(self.select_ids)
        model.rowsInserted.connect(lambda parent, *_: self.expand(parent) if parent.isValid() else None)
        model.modelReset.connect(self.expandAll)
        for signal in (model.rowsInserted, model.rowsRemoved, model.rowsMoved, model.modelReset):
            signal.connect(self._decorate_root)
        self.selectionModel().currentRowChanged.connect(lambda *_: self._emit_current())
        # rows scrolled out of sight drop their cached cells: an edit refreshes what is on screen
        self.verticalScrollBar().valueChanged.connect(lambda *_: model.keep_cells(list(self._visible_indexes())))
        self.expandAll()
        self._decorate_root()

    def _decorate_root(self, *_) -> None:
        """Room for expand arrows only while some row has children (a block or a backbone)."""
        model = self.stack_model
        self.setRootIsDecorated(any(model.rowCount(model.index(r, 0)) for r in range(model.rowCount())))

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.stack_model.rowCount() == 0:  # say what to do instead of showing a blank table
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter,
                             "Drag layers here from the Layers palette\n(or double-click one there)")
            painter.end()

    def dataChanged(self, top_left, bottom_right, roles=()) -> None:
        """Refresh only the rows on screen: QTreeView walks every row of a changed range, and
        after each edit the model reports the whole stack (shapes below the edit move)."""
        if top_left.row() == bottom_right.row() or top_left.parent() != bottom_right.parent():
            super().dataChanged(top_left, bottom_right, list(roles))
            return
        parent, first, last = top_left.parent(), top_left.row(), bottom_right.row()
        rows = [i.row() for i in self._visible_indexes() if i.parent() == parent and first <= i.row() <= last]
        if rows:
            super().dataChanged(top_left.siblingAtRow(min(rows)), bottom_right.siblingAtRow(max(rows)), list(roles))

    def _visible_indexes(self):
        index = self.indexAt(QPoint(1, 1))
        height = self.viewport().height()
        while index.isValid() and self.visualRect(index).top() < height:
            yield index
            index = self.indexBelow(index)

    @property
    def stack_model(self) -> StackModel:
        return self.model()

    def _emit_current(self) -> None:
        self.currentLayerChanged.emit(self.current_id())

    def current_id(self) -> str | None:
        """The layer the inspector shows (a stage row counts as its backbone)."""
        index = self.currentIndex()
        node = self.stack_model.node(index)
        if node is None:
            return None
        return node.layer.id if hasattr(node, "layer") else node.id

    def selected_ids(self) -> list[str]:
        rows = self.selectionModel().selectedRows()
        ordered = sorted(rows, key=self.stack_model.order_key)
        ids = [self.stack_model.layer_id(i) for i in ordered]
        return [i for i in ids if i]

    def select_ids(self, ids: list[str]) -> None:
        model = self.stack_model
        selection = QItemSelection()
        last = None
        for layer_id in ids:
            if model.doc.spec.find(layer_id) is None:
                continue
            last = model.index_of(layer_id)
            selection.select(last, model.index_of(layer_id, len(COLUMNS) - 1))
        if last is None:
            return
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.selectionModel().setCurrentIndex(last, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.selectionModel().select(selection, flags)
        self.scrollTo(last)
        self._emit_current()

    def first_error_row(self) -> str | None:
        error = self.stack_model.doc.info.error
        return error.layer_id if error else None
