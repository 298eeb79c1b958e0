"""The stack's Qt item model: a thin adapter over the document's ``ModelSpec``.

Rows are layers (Residual blocks hold their nested layers, backbones their stages as child
rows). A Parallel's child rows are first its drawing (``Strip`` rows: the branches side by side,
painted by ``ui.editor.branch_strip``; their count follows its longest branch, kept in step
after each structural change by ``_sync_strips``), then its Branch rows, each holding its layers.
Reads come from the spec and the document's inference; every write (drop, move, freeze check,
rename) becomes a call to the document, which pushes an undo command. The model never changes
the spec itself; it mirrors the document's begin/end signals.
"""
from __future__ import annotations

import json

from PySide6.QtCore import QAbstractItemModel, QMimeData, QModelIndex, Qt, Signal

from workbench.insight import latency as latency_words
from workbench.model import catalog
from workbench.model.backbones import stage_names
from workbench.errors import WorkbenchError
from workbench.model.spec import LayerSpec, nesting_problem

from ui.editor.stack_cells import (
    ARGS, BAR_ROLE, CHANGED_ROLES, COLUMNS, COST_COLUMNS, FROZEN, HEADER_TIPS, ID, LATENCY, MACS, MEMORY, PARAMS,
    POS, RANK_ROLE, SHAPE, TYPE, Stage, Strip, freeze_box, key_args_text, layer_cells, stage_cells,
    strip_cells, strip_rows)

# the column constants are part of this model's interface (the view and tests use them from here)
__all__ = ["ARGS", "BAR_ROLE", "COLUMNS", "COST_COLUMNS", "FROZEN", "ID", "LATENCY", "MACS", "MEMORY", "PARAMS",
           "POS", "RANK_ROLE", "SHAPE", "TYPE", "MIME_LAYER", "MIME_ROWS", "StackModel", "key_args_text"]

MIME_LAYER = "application/x-workbench-layer"  # {"type": "Conv2d"} from the palette
MIME_ROWS = "application/x-workbench-rows"  # ["conv1", "relu1"]: rows moved within the stack


def _column_flags(kind: str, column: int) -> Qt.ItemFlag:
    flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
    if kind == "strip":  # the drawing: painted and hit by the view, never a cell of its own
        return Qt.ItemFlag.NoItemFlags
    if column == FROZEN:  # a check box; the model takes it away where freeze_box says so
        flags |= Qt.ItemFlag.ItemIsUserCheckable
    if kind == "stage":
        return flags
    flags |= Qt.ItemFlag.ItemIsDragEnabled
    if column == ID:
        flags |= Qt.ItemFlag.ItemIsEditable
    if kind == "block":
        flags |= Qt.ItemFlag.ItemIsDropEnabled
    return flags


# item flags per row kind (a backbone stage, a block that holds layers, any other layer, a row of a
# Parallel's drawing) and column
_FLAGS = {kind: [_column_flags(kind, col) for col in range(len(COLUMNS))]
          for kind in ("stage", "block", "layer", "strip")}


class StackModel(QAbstractItemModel):
    message = Signal(str)  # an edit was refused: say why (status bar)
    dropped = Signal(list)  # ids of layers a drop created or moved: select them

    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.doc = doc
        self._nodes: dict[int, LayerSpec] = {}  # key -> parent layer of an index's row
        self._keys: dict[int, int] = {}  # id(layer) -> key
        self._parents: dict[int, tuple[LayerSpec | None, int]] | None = None
        self._move_is_reset = False
        self._cells: dict[tuple[int, int], list[dict]] = {}  # (parent key, row) -> per column role -> value
        self._strips: dict[int, tuple[LayerSpec, int]] = {}  # id(Parallel) -> (it, drawing rows the view has)
        doc.layersAboutToBeInserted.connect(
            lambda p, a, b: self.beginInsertRows(self.index_of(p), a + self._offset(p), b + self._offset(p)))
        doc.layersInserted.connect(lambda *_: self._end(self.endInsertRows))
        doc.layersAboutToBeRemoved.connect(
            lambda p, a, b: self.beginRemoveRows(self.index_of(p), a + self._offset(p), b + self._offset(p)))
        doc.layersRemoved.connect(lambda *_: self._end(self.endRemoveRows))
        doc.layerAboutToBeMoved.connect(self._begin_move)
        doc.layerMoved.connect(self._end_move)
        doc.aboutToReset.connect(self.beginResetModel)
        doc.reset.connect(self._end_reset)
        doc.changed.connect(self._refresh)
        doc.costs.updated.connect(self._refresh)  # the cost columns' figures arrive after the edit
        doc.costs.latencyChanged.connect(self._refresh)
        doc.costs.latencyChanged.connect(  # its tooltip names the slowest rows
            lambda: self.headerDataChanged.emit(Qt.Orientation.Horizontal, LATENCY, LATENCY))

    # ------------------------------------------------------------ mirroring the document
    def _end(self, end) -> None:
        self._parents = None
        self._cells.clear()
        end()
        self._sync_strips()

    def _offset(self, parent_id: str | None) -> int:
        """Rows before a parent's first layer row: a Parallel's drawing."""
        if parent_id is None:
            return 0
        parent = self.doc.spec.find(parent_id)
        return self._strip_count(parent) if parent is not None and parent.type == "Parallel" else 0

    def _strip_count(self, parallel: LayerSpec) -> int:
        """The drawing rows the views know a Parallel to have (first asked: as many as it needs)."""
        known = self._strips.get(id(parallel))
        if known is None:
            known = self._strips[id(parallel)] = (parallel, strip_rows(parallel))
        return known[1]

    def parallels(self) -> list[LayerSpec]:
        """Every Parallel block of the model (each has a drawing)."""
        return [layer for _, layer in self.doc.spec.walk() if layer.type == "Parallel"]

    def strip_count(self, parallel: LayerSpec) -> int:
        """The rows of a Parallel's drawing (its first child rows)."""
        return self._strip_count(parallel)

    def has_strips(self) -> bool:
        """Whether any Parallel's drawing has been shown."""
        return bool(self._strips)

    def _sync_strips(self) -> None:
        """After a structural change: a Parallel whose longest branch grew or shrank gets drawing
        rows added or taken away (at the end of its drawing), as ordinary row inserts and removals."""
        if not self._strips:
            return
        alive = {id(layer): layer for _, layer in self.doc.spec.walk() if layer.type == "Parallel"}
        self._strips = {key: known for key, known in self._strips.items() if key in alive}
        for key, (parallel, have) in list(self._strips.items()):
            want = strip_rows(parallel)
            if want == have:
                continue
            index = self.index_of(parallel.id)
            if want > have:
                self.beginInsertRows(index, have, want - 1)
                self._strips[key] = (parallel, want)
                self._parents, self._cells = None, {}
                self.endInsertRows()
            else:
                self.beginRemoveRows(index, want, have - 1)
                self._strips[key] = (parallel, want)
                self._parents, self._cells = None, {}
                self.endRemoveRows()

    def _begin_move(self, src, row, dst, dst_row) -> None:
        ok = self.beginMoveRows(self.index_of(src), row + self._offset(src), row + self._offset(src),
                                self.index_of(dst), dst_row + self._offset(dst))
        self._move_is_reset = not ok
        if not ok:
            self.beginResetModel()

    def _end_move(self) -> None:
        self._end(self.endResetModel if self._move_is_reset else self.endMoveRows)

    def _end_reset(self) -> None:
        self._nodes.clear()
        self._keys.clear()
        self._strips.clear()
        self._end(self.endResetModel)

    def _refresh(self) -> None:
        """After an edit: recompute the rows a view has asked for (the only ones on record) and
        report just those whose cells changed. An argument edit changes one or two rows (the
        layer and the next one's parameters), so a view repaints those, not every row on screen;
        rows never shown are computed when a view first asks. Only the span of columns that changed
        is reported (the cost figures arrive after an edit and touch only the cost columns). Structure
        changes (insert, remove, move, reset) clear the record and make views lay out and repaint anyway."""
        for (parent_key, row), old in list(self._cells.items()):
            index = self.createIndex(row, 0, parent_key)
            new = self._row_cells(self.node(index))
            if new != old:
                self._cells[(parent_key, row)] = new
                changed = [col for col in range(len(COLUMNS)) if new[col] != old[col]]
                # just the changed columns: cost figures arriving must not reset a Layer cell being renamed
                self.dataChanged.emit(index.siblingAtColumn(changed[0]), index.siblingAtColumn(changed[-1]),
                                      CHANGED_ROLES)

    def keep_cells(self, indexes) -> None:
        """Forget the cells of rows other than ``indexes`` (the rows on screen, which the view
        gives after a scroll), so an edit recomputes a screenful of rows, not every row ever
        shown; a forgotten row is computed afresh when a view asks for it again."""
        keep = {(i.internalId(), i.row()) for i in indexes}
        self._cells = {key: cells for key, cells in self._cells.items() if key in keep}

    # ------------------------------------------------------------ tree structure
    def _key(self, layer: LayerSpec | None) -> int:
        if layer is None:
            return 0
        key = self._keys.get(id(layer))
        if key is None:
            key = self._keys[id(layer)] = len(self._keys) + 1
            self._nodes[key] = layer
        return key

    def node(self, index: QModelIndex) -> LayerSpec | Stage | Strip | None:
        if not index.isValid():
            return None
        owner = self._nodes.get(index.internalId())
        if owner is None:
            return self.doc.spec.layers[index.row()]
        if owner.type == "Parallel":
            drawing = self._strip_count(owner)
            row = index.row()
            return Strip(owner, row) if row < drawing else owner.layers[row - drawing]
        if catalog.nests(owner.type):
            return owner.layers[index.row()]
        return Stage(owner, stage_names(owner.type)[index.row()])

    def _child_count(self, node) -> int:
        if node is None:
            return len(self.doc.spec.layers)
        if isinstance(node, (Stage, Strip)):
            return 0
        if node.type == "Parallel":
            return self._strip_count(node) + len(node.layers)
        if catalog.nests(node.type):
            return len(node.layers)
        return len(stage_names(node.type)) if node.type in catalog.BACKBONES else 0

    def rowCount(self, parent=QModelIndex()) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return self._child_count(self.node(parent))

    def columnCount(self, parent=QModelIndex()) -> int:
        return len(COLUMNS)

    def index(self, row, column, parent=QModelIndex()) -> QModelIndex:
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        return self.createIndex(row, column, self._key(self.node(parent)))

    def parent(self, index=QModelIndex()) -> QModelIndex:
        if not index.isValid():
            return QModelIndex()
        owner = self._nodes.get(index.internalId())
        if owner is None:
            return QModelIndex()
        if self._parents is None:
            self._parents = {}
            self._map(None, self.doc.spec.layers)
        grand, row = self._parents[id(owner)]
        return self.createIndex(row, 0, self._key(grand))

    def _map(self, parent: LayerSpec | None, layers: list[LayerSpec]) -> None:
        offset = self._strip_count(parent) if parent is not None and parent.type == "Parallel" else 0
        for row, layer in enumerate(layers):
            self._parents[id(layer)] = (parent, row + offset)
            self._map(layer, layer.layers)

    def index_of(self, layer_id: str | None, column: int = 0) -> QModelIndex:
        if layer_id is None:
            return QModelIndex()
        parent, row = self.doc.locate(layer_id)
        return self.index(row + self._offset(parent), column, self.index_of(parent))

    def strip_index(self, parallel_id: str, row: int) -> QModelIndex:
        """Row ``row`` of a Parallel's drawing."""
        return self.index(row, 0, self.index_of(parallel_id))

    def layer_id(self, index: QModelIndex) -> str | None:
        node = self.node(index)
        return node.id if isinstance(node, LayerSpec) else None

    # ------------------------------------------------------------ display
    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            latency = self.doc.costs.latency
            if section == LATENCY and latency is not None:
                return f"{HEADER_TIPS[LATENCY]}<br>{latency_words.top_text(latency)}"
            return HEADER_TIPS.get(section)
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        """Cells are computed once per row after each change (a repaint asks ~1500 times)."""
        if not index.isValid():
            return None
        return self._row(index)[index.column()].get(int(role))

    def _row(self, index: QModelIndex) -> list[dict]:
        key = (index.internalId(), index.row())
        row = self._cells.get(key)
        if row is None:
            row = self._cells[key] = self._row_cells(self.node(index))
        return row

    def _row_cells(self, node) -> list[dict]:
        """Every column's {role: value} for one row."""
        if isinstance(node, Stage):
            return stage_cells(self.doc, node)
        if isinstance(node, Strip):
            return strip_cells(self.doc, node)
        return layer_cells(self.doc, node, self.doc.layer_info(node.id))

    def flags(self, index):
        """From a table, not the cell cache: a view asks every row's flags (``expandAll``), and
        only rows on screen should cost their cells."""
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        node = self.node(index)
        kind = ("stage" if isinstance(node, Stage) else "strip" if isinstance(node, Strip)
                else "block" if catalog.nests(node.type) else "layer")
        flags = _FLAGS[kind][index.column()]
        if index.column() == FROZEN and freeze_box(self.doc, node) != "box":
            flags &= ~Qt.ItemFlag.ItemIsUserCheckable
        return flags

    # ------------------------------------------------------------ edits go to the document
    def setData(self, index, value, role=Qt.ItemDataRole.EditRole) -> bool:
        node = self.node(index)
        try:
            if role == Qt.ItemDataRole.CheckStateRole and index.column() == FROZEN:
                if freeze_box(self.doc, node) != "box":
                    return False
                frozen = Qt.CheckState(value) == Qt.CheckState.Checked
                if isinstance(node, Stage):
                    self.doc.set_stage_frozen(node.layer.id, node.name, frozen)
                else:
                    self.doc.set_frozen(node.id, frozen)
                return True
            if role == Qt.ItemDataRole.EditRole and index.column() == ID and isinstance(node, LayerSpec):
                self.doc.rename(node.id, str(value))
                return True
        except WorkbenchError as exc:
            self.message.emit(str(exc))
        return False

    def shift(self, layer_ids: list[str], step: int) -> list[str]:
        """Move layers one row up (step -1) or down (+1) among their siblings as one undoable
        edit; returns the ids moved ([] when nothing moved; a refusal is said as a message)."""
        ids = self.doc.outermost([i for i in layer_ids if self.doc.spec.find(i)])
        if not ids:
            return []
        parents = {self.doc.locate(i)[0] for i in ids}
        if len(parents) > 1:
            self.message.emit("select layers of one block to move them together")
            return []
        parent = parents.pop()
        siblings = [s.id for s in self.doc.layers_in(parent)]
        rows = sorted(siblings.index(i) for i in ids)
        if (step < 0 and rows[0] == 0) or (step > 0 and rows[-1] == len(siblings) - 1):
            return []  # at the top or bottom already
        before = rows[0] - 1 if step < 0 else rows[-1] + 2
        ordered = [siblings[r] for r in rows]
        try:
            return ordered if self.doc.move(ordered, parent, before if before < len(siblings) else None) else []
        except WorkbenchError as exc:
            self.message.emit(str(exc))
            return []

    def supportedDropActions(self):
        return Qt.DropAction.CopyAction | Qt.DropAction.MoveAction

    def supportedDragActions(self):
        return Qt.DropAction.MoveAction

    def mimeTypes(self):
        return [MIME_LAYER, MIME_ROWS]

    def mimeData(self, indexes):
        ids = []
        for index in sorted(indexes, key=lambda i: self.order_key(i)):
            layer_id = self.layer_id(index)
            if layer_id and layer_id not in ids:
                ids.append(layer_id)
        data = QMimeData()
        data.setData(MIME_ROWS, json.dumps(ids).encode())
        data.setText("\n".join(ids))
        return data

    def order_key(self, index: QModelIndex) -> list[int]:
        path = []
        while index.isValid():
            path.insert(0, index.row())
            index = index.parent()
        return path

    def _drop_parent(self, parent: QModelIndex) -> tuple[bool, str | None]:
        node = self.node(parent)
        if node is None:
            return True, None
        return isinstance(node, LayerSpec) and catalog.nests(node.type), getattr(node, "id", None)

    def canDropMimeData(self, data, action, row, column, parent) -> bool:
        ok, parent_id = self._drop_parent(parent)
        if not ok:
            return False
        parent_type = self.doc.spec.find(parent_id).type if parent_id else None
        if data.hasFormat(MIME_LAYER):
            try:
                type_name = json.loads(bytes(data.data(MIME_LAYER)).decode())["type"]
            except (ValueError, KeyError, TypeError):
                return False
            return nesting_problem(LayerSpec("new", str(type_name)), parent_type) is None
        if data.hasFormat(MIME_ROWS):
            ids = [i for i in json.loads(bytes(data.data(MIME_ROWS)).decode() or "[]") if self.doc.spec.find(i)]
            if any(nesting_problem(self.doc.spec.find(i), parent_type) for i in ids):
                return False  # a layer straight into a Parallel, a Branch out of one
            return parent_id is None or not any(self.doc.is_inside(parent_id, i) for i in ids)
        return False

    def dropMimeData(self, data, action, row, column, parent) -> bool:
        if action == Qt.DropAction.IgnoreAction or not self.canDropMimeData(data, action, row, column, parent):
            return False
        parent_id = self._drop_parent(parent)[1]
        at = max(0, row - self._offset(parent_id)) if row >= 0 else None
        try:
            if data.hasFormat(MIME_LAYER):
                type_name = json.loads(bytes(data.data(MIME_LAYER)).decode())["type"]
                self.dropped.emit([self.doc.insert_kind(type_name, parent_id, at)])
                return True
            ids = [i for i in json.loads(bytes(data.data(MIME_ROWS)).decode()) if self.doc.spec.find(i)]
            if ids and self.doc.move(ids, parent_id, at):
                self.dropped.emit(ids)
        except (WorkbenchError, ValueError, KeyError) as exc:
            self.message.emit(str(exc))
        return False  # a move is done; True would make the view delete the source rows
