"""The stack view: the layer table in the centre of the window.

A ``QTreeView`` over ``StackModel``. It takes drops from the palette and its own rows
(the model turns them into undoable document edits), keeps the dropped rows selected, and
offers Delete / Duplicate / Freeze / Rename / Move through actions the window gives it, and
its own ``fix_action`` (Edit > Apply Fix, Ctrl+., first in a row's context menu): "Fix: Insert
Flatten before 'fc'" makes the current row's one-click fix (``ProjectDocument.remedy_for``) as
one undoable edit; the error row's tooltip names the fix.

Selection, current row and inspector are one thing: the layer the inspector shows
(``current_id``) is always a selected row, keyboard moves select the row they land on, and
with nothing selected the inspector shows the model input, so Delete removes what is shown.

Columns are sized from their contents (``fit_columns``): every column gets what its widest
text needs; a narrow view takes the room from Arguments first (it elides, the tooltip has
them all), then Type, then Layer, so Output shape, Params and Freeze stay in view; a wide
view shares the extra room among the text columns. After an edit they re-fit once edits pause
(``FIT_AFTER_EDIT_MS``), outside the edit's frame.

The cost columns (MACs, Memory, Latency: ``ProjectDocument.costs``) come after Freeze. The
header's context menu shows or hides each (remembered in the settings, ``remember_columns``);
left on "as room allows" (the default) a cost column shows only when the view has room for it
with Layer, Output shape and Params at full width, so a narrow window keeps the layer names
readable and a wide one shows the costs. Latency shows once View > Profile Layers has measured
the model (whatever the width: it was just asked for), as a bar per row (``LatencyBar``; the
three slowest rows stronger).

A Parallel block shows its branches side by side in the rows under its own (``ui.editor.branch_strip``:
one column per branch with its layers and their shapes, then the merge). Those rows span the
columns; a click on a box selects that layer (and a drag from it moves it), a drop on a column
goes into that branch, and hovering a box shows the layer's tooltip.
"""
from __future__ import annotations

import json
from typing import Callable

from PySide6.QtCore import (QEvent, QItemSelection, QItemSelectionModel, QModelIndex, QPoint, QRect, QSettings, Qt,
                            QTimer, Signal)
from PySide6.QtGui import QAction, QColor, QKeySequence, QPainter, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QHeaderView, QMenu, QStyle, QStyledItemDelegate,
                               QStyleOptionViewItem, QToolTip, QTreeView)

from workbench.model import catalog
from workbench.model.backbones import stage_names
from workbench.errors import WorkbenchError
from workbench.model.shapes import fmt

from ui.common import theme
from ui.editor.branch_strip import StripPainter, Target, hit
from ui.editor.stack_model import (ARGS, BAR_ROLE, COLUMNS, COST_COLUMNS, FROZEN, ID, LATENCY, MACS, MEMORY, PARAMS,
                                   POS, RANK_ROLE, SHAPE, TYPE, StackModel, key_args_text)
from ui.editor.stack_cells import Stage, Strip, cost_texts, tooltip

_PAD = 12  # a cell's margins and focus frame around its text (Qt's are 2 x 3 px, plus slack)
_HEADER_PAD = 14  # a header section's margins around its title
_SHARE = (ID, TYPE, ARGS, SHAPE, PARAMS)  # columns that share a wide view's extra room
_BAR_ROOM = 40  # pixels a Latency cell has besides its time: the bar, and the rank (#1) of the three slowest
COLUMNS_KEY = "stack/cost_columns"  # the settings entry: {"MACs": true, "Memory": false, ...}; missing: as room allows
FIT_AFTER_EDIT_MS = 120  # the columns re-fit this long after the last edit (see __init__)


class LatencyBar(QStyledItemDelegate):
    """A Latency cell: a bar as long as the row's share of the slowest row's time, the time
    written over it at the right; the three slowest rows' bars stronger, their rank (#1) at the left."""

    def paint(self, painter, option, index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        text, opt.text = opt.text, ""
        style = opt.widget.style() if opt.widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        fraction = index.data(BAR_ROLE)
        painter.save()
        if fraction:
            bar = opt.rect.adjusted(3, 3, -3, -3)
            bar.setWidth(max(2, round(bar.width() * min(1.0, fraction))))
            painter.fillRect(bar, QColor(theme.LATENCY_TOP if index.data(RANK_ROLE) else theme.LATENCY_BAR))
        painter.setPen(opt.palette.color(QPalette.ColorRole.Text))  # selected rows are a light tint here
        inner = opt.rect.adjusted(4, 0, -4, 0)
        painter.drawText(inner, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), text)
        rank = index.data(RANK_ROLE)
        if rank:  # the three slowest rows say so: #1, #2, #3
            font = painter.font()
            font.setBold(True)
            painter.setFont(font)
            painter.drawText(inner, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), f"#{rank}")
        painter.restore()


class StackView(QTreeView):
    currentLayerChanged = Signal(object)  # layer id or None

    def __init__(self, model: StackModel, parent=None, settings: Callable[[], QSettings] | None = None):
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
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
        header.moveSection(header.visualIndex(POS), 0)  # position first, then the (tree) id column
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._header_menu)
        self.setItemDelegateForColumn(LATENCY, LatencyBar(self))
        # a Parallel's drawing rows span the columns, painted by the tree column's delegate, set
        # only while the model has a Parallel (``_span_strips``): other stacks paint as before
        self.strips = StripPainter(self)
        self._strip_press: tuple[QPoint, str] | None = None  # a press on a layer box of a drawing
        self._settings = settings
        self._column_choice: dict[int, bool] = {}  # a cost column shown (True) or hidden (False) by hand
        self._read_column_choice()
        self._fitting = False
        self._deepest_indent = 0  # set by column_needs
        self._widths_font, self._text_widths = None, {}
        self._user_sized = False  # a column dragged by hand: stop sizing them
        header.sectionResized.connect(self._section_resized)
        self._shown: str | None = None  # the layer last announced to the inspector
        self._busy = 0  # inside a structural change of the model
        model.dropped.connect(self.select_ids)
        model.rowsInserted.connect(self._expand_inserted)
        model.modelReset.connect(self.expandAll)
        for signal in (model.rowsInserted, model.rowsRemoved, model.rowsMoved, model.modelReset):
            signal.connect(self._decorate_root)
            signal.connect(self._span_strips)
        # the document's signals bracket the model's (and the selection model's) own handling
        doc = model.doc
        for start in (doc.layersAboutToBeRemoved, doc.layerAboutToBeMoved, doc.aboutToReset):
            start.connect(self._change_starts)
        for end in (doc.layersRemoved, doc.layerMoved, doc.reset):
            end.connect(self._change_ends)
        # after an edit the columns re-fit once edits pause, outside the edit's frame: measuring every
        # row's texts took ~1.2 ms of a 200-layer stack's edit (bench_stack_edit), and spin-box
        # arrows held down edit many times a second
        self._fit_timer = QTimer(self, singleShot=True, interval=FIT_AFTER_EDIT_MS)
        self._fit_timer.timeout.connect(self.fit_columns)
        model.doc.changed.connect(self._fit_timer.start)
        model.doc.costs.updated.connect(self.fit_columns)
        model.doc.costs.latencyChanged.connect(self.fit_columns)
        self.selectionModel().currentRowChanged.connect(lambda *_: None if self._busy else self._emit_current(False))
        self.selectionModel().selectionChanged.connect(self._selection_changed)
        self.selectionModel().selectionChanged.connect(  # the drawings mark the selected layers' boxes
            lambda *_: self.viewport().update() if model.has_strips() else None)
        # rows scrolled out of sight drop their cached cells: an edit refreshes what is on screen
        self.verticalScrollBar().valueChanged.connect(lambda *_: model.keep_cells(list(self._visible_indexes())))
        self.fix_action = QAction("Apply Fix", self)
        self.fix_action.setShortcut(QKeySequence("Ctrl+."))
        self.fix_action.setStatusTip("Make the selected problem's one-click fix (one undoable edit)")
        self.fix_action.triggered.connect(self.apply_fix)
        self.add_branch_action = QAction("Add Branch", self)
        self.add_branch_action.setStatusTip("Add an empty branch (the identity) to the selected Parallel block")
        self.add_branch_action.triggered.connect(self.add_branch)
        self.remove_branch_action = QAction("Remove Branch", self)
        self.remove_branch_action.setStatusTip("Remove the selected branch with its layers (a Parallel keeps two)")
        self.remove_branch_action.triggered.connect(self.remove_branch)
        separator = QAction(self)
        separator.setSeparator(True)
        # first in the context menu; the branch actions show only on a Parallel or Branch row
        self.addActions([self.fix_action, self.add_branch_action, self.remove_branch_action, separator])
        self.currentLayerChanged.connect(self._sync_branch_actions)
        self.currentLayerChanged.connect(self._sync_fix)
        doc.changed.connect(self._sync_fix)
        doc.fitChanged.connect(self._sync_fix)
        doc.lockChanged.connect(self._sync_fix)
        self._sync_branch_actions()
        self.expandAll()
        self._decorate_root()
        self._span_strips()
        self.fit_columns()
        self._sync_fix()

    # ------------------------------------------------------------ a Parallel's drawing (branch_strip)
    def _span_strips(self, *_) -> None:
        """A Parallel's drawing rows span every column (one picture across the row), painted by
        ``strips`` as the tree column's delegate while there is a Parallel."""
        model = self.stack_model
        parallels = model.parallels()
        if bool(parallels) != (self.itemDelegateForColumn(ID) is self.strips):
            self.setItemDelegateForColumn(ID, self.strips if parallels else None)
        for parallel in parallels:
            parent = model.index_of(parallel.id)
            for row in range(model.strip_count(parallel)):
                if not self.isFirstColumnSpanned(row, parent):
                    self.setFirstColumnSpanned(row, parent, True)

    def strip_area(self, index: QModelIndex, rect: QRect) -> QRect:
        """The part of a drawing row the branches take: from where its nested rows' names start."""
        depth = 0
        parent = index.parent()
        while parent.isValid():
            depth += 1
            parent = parent.parent()
        left = self.header().sectionViewportPosition(ID) + self.indentation() * (depth + self.rootIsDecorated())
        return QRect(left, rect.top(), max(0, rect.right() - left), rect.height())

    def strip_at(self, pos: QPoint) -> tuple[Target, object] | None:
        """(drop target, layer box or None) of a drawing row under ``pos`` (viewport coordinates)."""
        index = self.indexAt(pos)
        node = self.stack_model.node(index)
        if not isinstance(node, Strip):
            return None
        rect = self.visualRect(index)
        return hit(node, self.strip_area(index, rect), pos.x(), pos.y())

    def _show_strip_target(self, target: Target | None) -> None:
        if target != self.strips.target:
            self.strips.target = target
            self.viewport().update()

    def dragMoveEvent(self, event) -> None:
        found = self.strip_at(event.position().toPoint())
        if found is None:
            self._show_strip_target(None)
            super().dragMoveEvent(event)
            return
        target = found[0]
        model = self.stack_model
        if model.canDropMimeData(event.mimeData(), event.dropAction(), target.at, 0, model.index_of(target.branch)):
            self._show_strip_target(target)
            event.acceptProposedAction()
        else:
            self._show_strip_target(None)
            event.ignore()

    def dragLeaveEvent(self, event) -> None:
        self._show_strip_target(None)
        super().dragLeaveEvent(event)

    def dropEvent(self, event) -> None:
        found = self.strip_at(event.position().toPoint())
        self._show_strip_target(None)
        if found is None:
            super().dropEvent(event)
            return
        target = found[0]
        model = self.stack_model
        # as QAbstractItemView does: accepted only when the model says so (a move returns False,
        # so the view that started the drag never removes the moved rows itself)
        if model.dropMimeData(event.mimeData(), event.dropAction(), target.at, 0, model.index_of(target.branch)):
            event.acceptProposedAction()
        self.stopAutoScroll()
        self.setState(QAbstractItemView.State.NoState)
        self.viewport().update()

    def mousePressEvent(self, event) -> None:
        """A click on a drawing selects what it shows: a layer box, a branch's name (its Branch
        row), the merge (the Parallel row)."""
        pos = event.position().toPoint()
        found = self.strip_at(pos)
        if found is None:
            self._strip_press = None
            super().mousePressEvent(event)
            return
        target, layer = found
        model = self.stack_model
        strip = model.node(self.indexAt(pos))
        chosen = layer.id if layer is not None else target.branch if strip.row == 0 else target.parallel
        self.select_ids([chosen])
        self._strip_press = (pos, chosen) if layer is not None and event.button() == Qt.MouseButton.LeftButton \
            else None
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        press = self._strip_press
        if press is not None and event.buttons() & Qt.MouseButton.LeftButton:
            if (event.position().toPoint() - press[0]).manhattanLength() >= QApplication.startDragDistance():
                self._strip_press = None
                self.startDrag(Qt.DropAction.MoveAction)  # the box's layer, selected on the press
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._strip_press is not None:
            self._strip_press = None
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def viewportEvent(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            found = self.strip_at(event.pos())
            if found is not None:
                target, layer = found
                doc = self.stack_model.doc
                strip = self.stack_model.node(self.indexAt(event.pos()))
                shown = doc.spec.find(layer.id if layer is not None else target.branch if strip.row == 0
                                      else target.parallel)
                QToolTip.showText(event.globalPos(), tooltip(doc, shown, doc.layer_info(shown.id)), self.viewport())
                return True
        return super().viewportEvent(event)

    def _expand_inserted(self, parent, first: int, last: int) -> None:
        """New rows show their nested rows (a block pasted or undone back), and a block shows a
        row dropped into it."""
        if parent.isValid():
            self.expand(parent)
        for row in range(first, last + 1):
            index = self.stack_model.index(row, 0, parent)
            if self.stack_model.rowCount(index):
                self.expandRecursively(index)

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

    # ------------------------------------------------------------ selection = current row = inspector
    def _emit_current(self, force: bool = True) -> None:
        shown = self.current_id()
        if force or shown != self._shown:
            self._shown = shown
            self.currentLayerChanged.emit(shown)

    def _shown_index(self) -> QModelIndex:
        """The current row when it is selected, else the last selected row, else none."""
        selection = self.selectionModel()
        current = self.currentIndex()
        if current.isValid() and selection.isRowSelected(current.row(), current.parent()):
            return current.siblingAtColumn(0)
        rows = selection.selectedRows()
        return max(rows, key=self.stack_model.order_key) if rows else QModelIndex()

    def current_id(self) -> str | None:
        """The layer the inspector shows and the edits act on: always a selected row (a stage
        row counts as its backbone); None with nothing selected (the inspector shows the input)."""
        node = self.stack_model.node(self._shown_index())
        if node is None:
            return None
        return node.layer.id if hasattr(node, "layer") else node.id

    def _selection_changed(self, *_) -> None:
        if not self._busy:
            self._follow_selection()
            self._emit_current(False)

    def _follow_selection(self) -> None:
        """Move the current row (the focus frame, where keys act) onto the selection."""
        shown, current = self._shown_index(), self.currentIndex()
        if shown.isValid() and shown != current.siblingAtColumn(0):
            self.selectionModel().setCurrentIndex(shown, QItemSelectionModel.SelectionFlag.NoUpdate)

    def _change_starts(self, *_) -> None:
        self._busy += 1

    def _change_ends(self, *_) -> None:
        """After rows went away (a delete, an undo from History) Qt has moved the current row
        to a neighbour: select it, so the inspector and Delete act on the row that shows."""
        self._busy = max(0, self._busy - 1)
        if self._busy:
            return
        current = self.currentIndex()
        if current.isValid() and not self.selectionModel().hasSelection():
            self.selectionModel().select(current, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                         | QItemSelectionModel.SelectionFlag.Rows)
        self._follow_selection()
        self._emit_current(False)

    def selectionCommand(self, index, event=None):
        """A key that moves the current row selects it (Ctrl+Home as well as Down), so the
        highlighted row is always the one the inspector shows; Shift extends, Ctrl+Space toggles."""
        if (event is not None and event.type() == QEvent.Type.KeyPress
                and not event.modifiers() & Qt.KeyboardModifier.ShiftModifier and event.key() != Qt.Key.Key_Space):
            return QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        return super().selectionCommand(index, event)

    def move_selected(self, step: int) -> None:
        """Move the selected layers one row up (-1) or down (+1), keeping them selected."""
        moved = self.stack_model.shift(self.selected_ids(), step)
        if moved:
            self.select_ids(moved)

    # ------------------------------------------------------------ column widths
    def _section_resized(self, *_) -> None:
        if not self._fitting:
            self._user_sized = True

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit_columns()

    def column_needs(self) -> tuple[dict[int, int], dict[int, int]]:
        """(cells, titles): the width each column's widest cell (text, icon, indentation) needs,
        from the document (not the cell cache, which holds only the rows on screen), and the
        width its header title needs."""
        fm, header_fm = self.fontMetrics(), self.header().fontMetrics()
        icon = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize) + 6
        doc = self.stack_model.doc
        titles = {col: header_fm.horizontalAdvance(COLUMNS[col]) + _HEADER_PAD for col in range(len(COLUMNS))}
        need = {col: 0 for col in range(len(COLUMNS))}
        need[FROZEN] = icon + _PAD  # the check box
        self._deepest_indent = 0  # the indentation of the most nested row (its name starts there)
        step = self.indentation()
        root = step if self.rootIsDecorated() else 0

        if self._widths_font != self.font() or len(self._text_widths) > 20000:  # cached per font:
            self._widths_font, self._text_widths = self.font(), {}  # most texts repeat between edits
        known = self._text_widths

        def widen(col: int, text: str, extra: int = 0) -> None:
            width = known.get(text)
            if width is None:
                width = known[text] = fm.horizontalAdvance(text)
            if width + extra + _PAD > need[col]:
                need[col] = width + extra + _PAD

        def visit(layers, depth: int) -> None:
            for layer in layers:
                info = doc.layer_info(layer.id)
                indent = root + depth * step
                self._deepest_indent = max(self._deepest_indent, indent)
                widen(ID, layer.id, indent + (icon if info is not None and info.error else 0))
                widen(TYPE, layer.type, icon)
                widen(ARGS, key_args_text(layer))
                if info is not None:
                    widen(POS, info.position)
                    widen(SHAPE, "error" if info.error else fmt(info.out_shape) if info.out_shape else "unknown")
                    if info.params is not None:
                        widen(PARAMS, f"{info.params:,}", icon)
                    macs, memory, latency = cost_texts(doc.costs, info.path)
                    widen(MACS, macs)
                    widen(MEMORY, memory)
                    widen(LATENCY, latency, _BAR_ROOM)
                if layer.type in catalog.BACKBONES:
                    for name in stage_names(layer.type):
                        widen(ID, name, indent + step)
                visit(layer.layers, depth + 1)
        visit(doc.spec.layers, 0)
        for col in COST_COLUMNS:  # before the figures arrive: room for a typical one
            need[col] = max(need[col], fm.horizontalAdvance("888.8M") + _PAD)
        return need, titles

    def fit_columns(self) -> None:
        """Size the columns to the view (see the module docstring); stops once the user drags
        a column. A narrow view gives way in this order: Arguments (down to a few letters),
        Type (to its badge and a few letters), the titles of Output shape and Params (their
        cells still fit), Layer (to a short name on the most nested row), Type (to its badge), Arguments
        (to a sliver), Layer (to a short name on a top-level row)."""
        cells, titles = self.column_needs()
        widths = {col: max(cells[col], titles[col]) for col in cells}
        fm = self.fontMetrics()
        icon = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize) + 6
        shown = self._shown_costs(widths, icon + fm.horizontalAdvance("Conv") + _PAD)
        self._fitting = True
        try:
            for col in COST_COLUMNS:
                if self.isColumnHidden(col) == (col in shown):
                    self.setColumnHidden(col, col not in shown)
        finally:
            self._fitting = False
        if self._user_sized:
            return
        for col in COST_COLUMNS:
            if col not in shown:
                del widths[col]
        over = sum(widths.values()) - self.viewport().width()
        name_floor = min(cells[ID], self._deepest_indent + fm.horizontalAdvance("conv2d") + _PAD)
        steps = ((ARGS, 56), (TYPE, icon + fm.horizontalAdvance("Conv") + _PAD), (SHAPE, cells[SHAPE]),
                 (PARAMS, cells[PARAMS]), *((col, cells[col]) for col in COST_COLUMNS if col in shown),
                 (FROZEN, cells[FROZEN]), (ID, name_floor), (TYPE, icon + _PAD),
                 (ARGS, 24), (ID, fm.horizontalAdvance("conv2d") + _PAD))
        for col, floor in steps:
            if over <= 0:
                break
            cut = max(0, min(over, widths[col] - floor))
            widths[col] -= cut
            over -= cut
        if over < 0:  # room to spare: shared, not all given to one column
            share, rest = divmod(-over, len(_SHARE))
            for n, col in enumerate(_SHARE):
                widths[col] += share + (1 if n < rest else 0)
        self._fitting = True
        try:
            for col, width in widths.items():
                if self.header().sectionSize(col) != width:
                    self.header().resizeSection(col, width)
        finally:
            self._fitting = False

    # ------------------------------------------------------------ cost columns shown or hidden
    def _shown_costs(self, widths: dict[int, int], type_floor: int) -> set[int]:
        """The cost columns to show: those chosen by hand; Latency once measured (Profile was just
        asked for); and MACs, then Memory, where they fit beside the other columns with only
        Arguments and Type narrowed."""
        shown = {col for col in COST_COLUMNS if self._column_choice.get(col)}
        room = self.viewport().width() - sum(widths[c] for c in widths if c not in COST_COLUMNS)
        room += max(0, widths[ARGS] - 56) + max(0, widths[TYPE] - type_floor) - sum(widths[c] for c in shown)
        auto = [col for col in (LATENCY, MACS, MEMORY) if col not in self._column_choice]
        for col in auto:
            if col == LATENCY:  # shown once measured (just asked for), else empty: hidden
                if self.stack_model.doc.costs.latency is not None:
                    shown.add(col)
                    room -= widths[col]
                continue
            if widths[col] <= room:
                shown.add(col)
                room -= widths[col]
        return shown

    def column_choice(self, col: int) -> bool | None:
        """True / False: shown / hidden by hand; None: as room allows."""
        return self._column_choice.get(col)

    def set_column_choice(self, col: int, shown: bool | None) -> None:
        """Show (True) or hide (False) a cost column, or leave it to the room (None); remembered."""
        if shown is None:
            self._column_choice.pop(col, None)
        else:
            self._column_choice[col] = shown
        if self._settings is not None:
            self._settings().setValue(COLUMNS_KEY, json.dumps({COLUMNS[c]: v for c, v in self._column_choice.items()}))
        self.fit_columns()

    def _read_column_choice(self) -> None:
        if self._settings is None:
            return
        try:
            saved = json.loads(str(self._settings().value(COLUMNS_KEY, "{}") or "{}"))
        except ValueError:
            saved = {}
        names = {COLUMNS[c]: c for c in COST_COLUMNS}
        self._column_choice = ({names[k]: v for k, v in saved.items() if k in names and isinstance(v, bool)}
                               if isinstance(saved, dict) else {})

    def header_menu(self) -> QMenu:
        """The header's context menu: each cost column shown, hidden or as room allows."""
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        for col in COST_COLUMNS:
            action = menu.addAction(COLUMNS[col])
            action.setCheckable(True)
            action.setChecked(not self.isColumnHidden(col))
            action.setToolTip(self.stack_model.headerData(col, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole))
            action.toggled.connect(lambda on, c=col: self.set_column_choice(c, on))
        menu.addSeparator()
        auto = menu.addAction("Cost Columns as Room Allows")
        auto.setToolTip("Show the cost columns only while the stack has room for them beside the layer names")
        auto.setEnabled(bool(self._column_choice))
        auto.triggered.connect(self._columns_by_room)
        return menu

    def _columns_by_room(self) -> None:
        self._column_choice.clear()
        self.set_column_choice(MACS, None)

    def _header_menu(self, pos: QPoint) -> None:
        self.header_menu().exec(self.header().mapToGlobal(pos))

    def selected_ids(self) -> list[str]:
        rows = self.selectionModel().selectedRows()
        ordered = sorted(rows, key=self.stack_model.order_key)
        ids = [self.stack_model.layer_id(i) for i in ordered]
        return [i for i in ids if i]

    def selected_stages(self) -> list[Stage]:
        """The selected backbone stage rows (parts of a layer, not layers of their own)."""
        nodes = (self.stack_model.node(i) for i in self.selectionModel().selectedRows())
        return [n for n in nodes if isinstance(n, Stage)]

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

    # ------------------------------------------------------------ branches
    def _sync_branch_actions(self, *_) -> None:
        layer = self.stack_model.doc.spec.find(self.current_id() or "")
        kind = layer.type if layer is not None else None
        self.add_branch_action.setVisible(kind in ("Parallel", "Branch"))
        self.remove_branch_action.setVisible(kind == "Branch")

    def add_branch(self) -> None:
        """Add an empty branch to the current Parallel (or to the Parallel of the current Branch)."""
        doc = self.stack_model.doc
        current = self.current_id()
        layer = doc.spec.find(current or "")
        if layer is None or layer.type not in ("Parallel", "Branch"):
            return
        parallel = current if layer.type == "Parallel" else doc.locate(current)[0]
        try:
            self.select_ids([doc.add_branch(parallel)])
        except WorkbenchError as exc:
            self.stack_model.message.emit(str(exc))

    def remove_branch(self) -> None:
        doc = self.stack_model.doc
        current = self.current_id()
        layer = doc.spec.find(current or "")
        if layer is None or layer.type != "Branch":
            return
        parallel = doc.locate(current)[0]
        try:
            doc.remove_branch(current)
        except WorkbenchError as exc:
            self.stack_model.message.emit(str(exc))
            return
        self.select_ids([parallel])

    # ------------------------------------------------------------ one-click fixes
    def current_remedy(self):
        """The one-click fix of the row the inspector shows (or of the model input)."""
        return self.stack_model.doc.remedy_for(self.current_id())

    def _sync_fix(self, *_) -> None:
        remedy = self.current_remedy()
        self.fix_action.setText(f"Fix: {remedy.label}" if remedy else "Apply Fix")
        self.fix_action.setEnabled(remedy is not None and not self.stack_model.doc.edit_lock)

    def apply_fix(self) -> None:
        """Make the current row's one-click fix; a refusal (a run locks the model) is said."""
        remedy = self.current_remedy()
        if remedy is None:
            return
        try:
            self.stack_model.doc.apply_remedy(remedy)
        except WorkbenchError as exc:
            self.stack_model.message.emit(str(exc))

    def first_error_row(self) -> str | None:
        error = self.stack_model.doc.info.error
        return error.layer_id if error else None
