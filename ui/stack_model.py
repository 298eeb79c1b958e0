"""The stack's Qt item model: a thin adapter over the document's ``ModelSpec``.

Rows are layers (Residual blocks hold their nested layers, backbones their stages as child
rows). Reads come from the spec and the document's inference; every write (drop, move,
freeze check, rename) becomes a call to the document, which pushes an undo command. The
model never changes the spec itself; it mirrors the document's begin/end signals.
"""
from __future__ import annotations

import json
from html import escape
from dataclasses import dataclass

from PySide6.QtCore import QAbstractItemModel, QMimeData, QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from workbench import catalog
from workbench.backbones import stage_names
from workbench.errors import WorkbenchError
from workbench.shapes import fmt
from workbench.spec import LayerSpec

from . import icons

MIME_LAYER = "application/x-workbench-layer"  # {"type": "Conv2d"} from the palette
MIME_ROWS = "application/x-workbench-rows"  # ["conv1", "relu1"]: rows moved within the stack
# The id is logical column 0 (the tree column: it indents nested rows and keeps Qt's model
# checks meaningful); the view shows the position column first.
COLUMNS = ("Layer", "#", "Type", "Arguments", "Output shape", "Params", "Freeze")
ID, POS, TYPE, ARGS, SHAPE, PARAMS, FROZEN = range(len(COLUMNS))
_HEADER_TIPS = {
    POS: "Position in the stack (3.2: second layer inside block 3)",
    ARGS: "Key arguments (abbreviated: out = out_channels / out_features, k = kernel_size, s = stride, "
          "pad = padding); hover a row or open the inspector for all of them",
    SHAPE: "Output shape of each row for one example (the batch dimension is left out)",
    PARAMS: "Parameters each row learns; grey: frozen",
    FROZEN: "Frozen layers keep their weights while training (also mid-run)",
}


@dataclass(frozen=True)
class Stage:
    """A backbone stage shown as a child row."""

    layer: LayerSpec
    name: str


def short(value) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value)) if value and len(set(value)) > 1 else str(value[0] if value else "")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# short names for the Arguments column only (the inspector and tooltips use the full names)
_ABBREV = {"out_channels": "out", "out_features": "out", "kernel_size": "k", "stride": "s", "padding": "pad",
           "dilation": "dil", "hidden_size": "hidden", "num_embeddings": "vocab", "embedding_dim": "dim",
           "negative_slope": "slope", "unflattened_size": "size", "output_size": "size",
           "dim_feedforward": "ff", "num_groups": "groups"}


def key_args_text(layer: LayerSpec) -> str:
    kind = catalog.kind(layer.type)
    keys = kind.key_args if kind else ()
    return ", ".join(f"{_ABBREV.get(k, k)}={short(layer.args[k])}" for k in keys if k in layer.args)


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
        doc.layersAboutToBeInserted.connect(lambda p, a, b: self.beginInsertRows(self.index_of(p), a, b))
        doc.layersInserted.connect(lambda *_: self._end(self.endInsertRows))
        doc.layersAboutToBeRemoved.connect(lambda p, a, b: self.beginRemoveRows(self.index_of(p), a, b))
        doc.layersRemoved.connect(lambda *_: self._end(self.endRemoveRows))
        doc.layerAboutToBeMoved.connect(self._begin_move)
        doc.layerMoved.connect(self._end_move)
        doc.aboutToReset.connect(self.beginResetModel)
        doc.reset.connect(self._end_reset)
        doc.changed.connect(self._refresh)

    # ------------------------------------------------------------ mirroring the document
    def _end(self, end) -> None:
        self._parents = None
        end()

    def _begin_move(self, src, row, dst, dst_row) -> None:
        ok = self.beginMoveRows(self.index_of(src), row, row, self.index_of(dst), dst_row)
        self._move_is_reset = not ok
        if not ok:
            self.beginResetModel()

    def _end_move(self) -> None:
        self._end(self.endResetModel if self._move_is_reset else self.endMoveRows)

    def _end_reset(self) -> None:
        self._nodes.clear()
        self._keys.clear()
        self._end(self.endResetModel)

    def _refresh(self, parent: QModelIndex = QModelIndex()) -> None:
        rows = self.rowCount(parent)
        if rows:
            self.dataChanged.emit(self.index(0, 0, parent), self.index(rows - 1, len(COLUMNS) - 1, parent))
        for row in range(rows):
            child = self.index(row, 0, parent)
            if self.rowCount(child):
                self._refresh(child)

    # ------------------------------------------------------------ tree structure
    def _key(self, layer: LayerSpec | None) -> int:
        if layer is None:
            return 0
        key = self._keys.get(id(layer))
        if key is None:
            key = self._keys[id(layer)] = len(self._keys) + 1
            self._nodes[key] = layer
        return key

    def node(self, index: QModelIndex) -> LayerSpec | Stage | None:
        if not index.isValid():
            return None
        owner = self._nodes.get(index.internalId())
        if owner is None:
            return self.doc.spec.layers[index.row()]
        if owner.type == "Residual":
            return owner.layers[index.row()]
        return Stage(owner, stage_names(owner.type)[index.row()])

    def _child_count(self, node) -> int:
        if node is None:
            return len(self.doc.spec.layers)
        if isinstance(node, Stage):
            return 0
        if node.type == "Residual":
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
        for row, layer in enumerate(layers):
            self._parents[id(layer)] = (parent, row)
            self._map(layer, layer.layers)

    def index_of(self, layer_id: str | None, column: int = 0) -> QModelIndex:
        if layer_id is None:
            return QModelIndex()
        parent, row = self.doc.locate(layer_id)
        return self.index(row, column, self.index_of(parent))

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
            return _HEADER_TIPS.get(section)
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        node = self.node(index)
        if node is None:
            return None
        if isinstance(node, Stage):
            return self._stage_data(node, index.column(), role)
        return self._layer_data(node, self.doc.layer_info(node.id), index.column(), role)

    def _layer_data(self, layer: LayerSpec, info, col: int, role):
        role_ = Qt.ItemDataRole
        error = info.error if info else None
        known = info is not None and info.out_shape is not None
        frozen = bool(info and info.params and not info.trainable)
        if role == role_.DisplayRole or (role == role_.EditRole and col == ID):
            return {POS: info.position if info else "", ID: layer.id, TYPE: layer.type,
                    ARGS: key_args_text(layer),
                    SHAPE: "error" if error else fmt(info.out_shape) if known else "unknown",
                    PARAMS: f"{info.params:,}" if info and info.params is not None else "",
                    }.get(col)
        if role == role_.DecorationRole:
            if col == ID and error:
                return icons.error_icon()
            if col == TYPE:
                return icons.type_badge(layer.type)
            if col == PARAMS and frozen:
                return icons.frozen_icon()
        elif role == role_.CheckStateRole and col == FROZEN:
            return Qt.CheckState.Checked if layer.frozen else Qt.CheckState.Unchecked
        elif role == role_.BackgroundRole and error:
            return QBrush(QColor(icons.ERROR_BACKGROUND))
        elif role == role_.ForegroundRole:
            if col == SHAPE and error:
                return QBrush(QColor(icons.ERROR_COLOR))
            if (col == SHAPE and not known) or (col == PARAMS and frozen) or col == POS:
                return QBrush(QColor(icons.MUTED_COLOR))
        elif role == role_.TextAlignmentRole and col == PARAMS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif role == role_.ToolTipRole:
            return self._tooltip(layer, info) if col != FROZEN else _HEADER_TIPS[FROZEN]
        return None

    def _tooltip(self, layer: LayerSpec, info) -> str:
        head = f"<b>{escape(layer.id)}</b> ({escape(layer.type)})"
        if info is None:
            return head
        if info.error is not None:
            fix = f"<br><b>Fix:</b> {escape(info.error.fix)}" if info.error.fix else ""
            return f"{head} cannot work here.<br><b>Problem:</b> {escape(info.error.problem)}{fix}"
        if info.out_shape is None:
            first = self.doc.info.error
            where = f"layer '{first.layer_id}' (row {first.position})" if first else "a layer above"
            return f"{head}: output shape unknown, because {escape(where)} has a problem. Fix that row first."
        kind = catalog.kind(layer.type)
        args = ", ".join(f"{k}={short(v)}" for k, v in info.args.items())
        lines = [f"{head}: {escape(kind.help) if kind else ''}",
                 f"input {fmt(info.in_shape)} &rarr; output {fmt(info.out_shape)}",
                 f"{info.params or 0:,} parameters ({info.trainable or 0:,} trainable)"]
        if args:
            lines.append(f"arguments: {escape(args)}")
        return "<br>".join(lines)

    def _stage_data(self, stage: Stage, col: int, role):
        info = self.doc.layer_info(stage.layer.id)
        stage_info = next((s for s in (info.stages if info else []) if s.name == stage.name), None)
        frozen = stage.name in stage.layer.frozen_stages
        if role == Qt.ItemDataRole.DisplayRole:
            if col == ID:
                return stage.name
            if col == TYPE:
                return "stage"
            if col == PARAMS and stage_info is not None:
                return f"{stage_info.params:,}"
        if role == Qt.ItemDataRole.CheckStateRole and col == FROZEN:
            return Qt.CheckState.Checked if frozen else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ForegroundRole and (col == TYPE or (col == PARAMS and frozen)):
            return QBrush(QColor(icons.MUTED_COLOR))
        if role == Qt.ItemDataRole.TextAlignmentRole and col == PARAMS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Stage {stage.name} of {stage.layer.id}: freeze it to keep its pretrained weights"
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        node = self.node(index)
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == FROZEN:
            flags |= Qt.ItemFlag.ItemIsUserCheckable
        if isinstance(node, Stage):
            return flags
        flags |= Qt.ItemFlag.ItemIsDragEnabled
        if index.column() == ID:
            flags |= Qt.ItemFlag.ItemIsEditable
        if node.type == "Residual":
            flags |= Qt.ItemFlag.ItemIsDropEnabled
        return flags

    # ------------------------------------------------------------ edits go to the document
    def setData(self, index, value, role=Qt.ItemDataRole.EditRole) -> bool:
        node = self.node(index)
        try:
            if role == Qt.ItemDataRole.CheckStateRole and index.column() == FROZEN:
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

    def supportedDropActions(self):
        return Qt.DropAction.CopyAction | Qt.DropAction.MoveAction

    def supportedDragActions(self):
        return Qt.DropAction.MoveAction

    def mimeTypes(self):
        return [MIME_LAYER, MIME_ROWS]

    def mimeData(self, indexes):
        ids = []
        for index in sorted(indexes, key=lambda i: self._order(i)):
            layer_id = self.layer_id(index)
            if layer_id and layer_id not in ids:
                ids.append(layer_id)
        data = QMimeData()
        data.setData(MIME_ROWS, json.dumps(ids).encode())
        data.setText("\n".join(ids))
        return data

    def _order(self, index: QModelIndex) -> list[int]:
        path = []
        while index.isValid():
            path.insert(0, index.row())
            index = index.parent()
        return path

    def _drop_parent(self, parent: QModelIndex) -> tuple[bool, str | None]:
        node = self.node(parent)
        if node is None:
            return True, None
        return isinstance(node, LayerSpec) and node.type == "Residual", getattr(node, "id", None)

    def canDropMimeData(self, data, action, row, column, parent) -> bool:
        ok, parent_id = self._drop_parent(parent)
        if not ok:
            return False
        if data.hasFormat(MIME_LAYER):
            return True
        if data.hasFormat(MIME_ROWS):
            ids = json.loads(bytes(data.data(MIME_ROWS)).decode() or "[]")
            return parent_id is None or not any(self.doc.is_inside(parent_id, i) for i in ids if self.doc.spec.find(i))
        return False

    def dropMimeData(self, data, action, row, column, parent) -> bool:
        if action == Qt.DropAction.IgnoreAction or not self.canDropMimeData(data, action, row, column, parent):
            return False
        parent_id = self._drop_parent(parent)[1]
        at = row if row >= 0 else None
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
