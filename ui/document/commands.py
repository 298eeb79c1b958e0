"""Every model edit as a ``QUndoCommand`` (orange-canvas style).

Each command records what it needs to undo itself (positions, old values) and changes the
project only through the document's small mutators (``apply_insert``, ``apply_remove``,
``apply_move``, ``apply_update``), so the item model, the inspector and a training run all
hear about it.
The document's edit methods (``ProjectDocument.insert_kind`` etc.) create and push these.
"""
from __future__ import annotations

import time

from PySide6.QtGui import QUndoCommand

from workbench.model.backbones import stage_names
from workbench.model.shapes import fmt

UNSET = object()  # an argument that is not given (inferred or defaulted)
MERGE_WINDOW_S = 1.5  # edits of one field closer than this undo as one step (typing, spinning)


def _show(value) -> str:
    if value is UNSET:
        return "default"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(map(str, value)) + ")"
    return repr(value) if isinstance(value, str) else str(value)


class InsertLayers(QUndoCommand):
    def __init__(self, doc, parent_id, row, layers, text):
        super().__init__(text)
        self.doc, self.parent_id, self.row, self.layers = doc, parent_id, row, list(layers)

    def redo(self):
        self.doc.apply_insert(self.parent_id, self.row, self.layers)

    def undo(self):
        for offset in reversed(range(len(self.layers))):
            self.doc.apply_remove(self.parent_id, self.row + offset)


class RemoveLayers(QUndoCommand):
    def __init__(self, doc, layer_ids, text):
        super().__init__(text)
        self.doc, self.layer_ids = doc, list(layer_ids)
        self.removed: list[tuple] = []

    def redo(self):
        self.removed = []
        for layer_id in self.layer_ids:
            parent, row = self.doc.locate(layer_id)
            self.removed.append((parent, row, self.doc.apply_remove(parent, row)))

    def undo(self):
        for parent, row, layer in reversed(self.removed):
            self.doc.apply_insert(parent, row, [layer])


class MoveLayer(QUndoCommand):
    """Move one layer to just before ``anchor_id`` in ``parent_id`` (None: to the end)."""

    def __init__(self, doc, layer_id, parent_id, anchor_id, text=""):
        super().__init__(text or f"Move '{layer_id}'")
        self.doc, self.layer_id, self.parent_id, self.anchor_id = doc, layer_id, parent_id, anchor_id
        self.origin: tuple = (None, 0)

    def redo(self):
        self.origin = self.doc.locate(self.layer_id)
        rest = [s.id for s in self.doc.layers_in(self.parent_id) if s.id != self.layer_id]
        index = rest.index(self.anchor_id) if self.anchor_id is not None else len(rest)
        self.doc.apply_move(self.layer_id, self.parent_id, index)

    def undo(self):
        self.doc.apply_move(self.layer_id, *self.origin)


class SetValue(QUndoCommand):
    """Set one value from ``old`` to ``new``; quick successive edits of the same value (same
    command type and ``key``) merge into one step, and an edit back to ``old`` disappears.
    Subclasses give ``ID`` (Qt merges only equal ids), ``label()`` and ``apply(value)``."""

    ID = -1

    def __init__(self, key: tuple, old, new):
        super().__init__()
        self.key, self.old, self.new = key, old, new
        self.stamp = time.monotonic()
        self.setText(self.label())

    def label(self) -> str:
        raise NotImplementedError

    def apply(self, value) -> None:
        raise NotImplementedError

    def id(self) -> int:
        return self.ID

    def mergeWith(self, other) -> bool:
        if type(other) is not type(self) or other.key != self.key or other.stamp - self.stamp > MERGE_WINDOW_S:
            return False
        self.new, self.stamp = other.new, other.stamp
        self.setText(self.label())
        if self.new == self.old:
            self.setObsolete(True)
        return True

    def redo(self) -> None:
        self.apply(self.new)

    def undo(self) -> None:
        self.apply(self.old)


class SetArg(SetValue):
    """Set or clear one constructor argument; quick successive edits of it merge."""

    ID = 1

    def __init__(self, doc, layer_id, name, value):
        self.doc, self.layer_id, self.name = doc, layer_id, name
        super().__init__((layer_id, name), doc.spec.find(layer_id).args.get(name, UNSET), value)

    def label(self) -> str:
        return f"Set {self.layer_id}.{self.name} to {_show(self.new)}"

    def apply(self, value) -> None:
        args = self.doc.spec.find(self.layer_id).args
        if value is UNSET:
            args.pop(self.name, None)
        else:
            args[self.name] = value
        self.doc.apply_update(self.layer_id)


class SetFrozen(QUndoCommand):
    """Freeze or unfreeze a layer, or one stage of a backbone (``stage``)."""

    def __init__(self, doc, layer_id, stage, frozen):
        verb = "Freeze" if frozen else "Unfreeze"
        super().__init__(f"{verb} '{layer_id}.{stage}'" if stage else f"{verb} '{layer_id}'")
        self.doc, self.layer_id, self.stage, self.frozen = doc, layer_id, stage, frozen

    def _apply(self, frozen):
        layer = self.doc.spec.find(self.layer_id)
        path = next(p for p, layer_ in self.doc.spec.walk() if layer_ is layer)
        if self.stage is None:
            layer.frozen = frozen
        else:
            stages = set(layer.frozen_stages) - {self.stage}
            if frozen:
                stages.add(self.stage)
            layer.frozen_stages = [s for s in stage_names(layer.type) if s in stages]
            path = f"{path}.{self.stage}"
        self.doc.apply_update(self.layer_id, path, frozen)

    def redo(self):
        self._apply(self.frozen)

    def undo(self):
        self._apply(not self.frozen)


class RenameLayer(QUndoCommand):
    def __init__(self, doc, old_id, new_id):
        super().__init__(f"Rename '{old_id}' to '{new_id}'")
        self.doc, self.old_id, self.new_id = doc, old_id, new_id

    def _apply(self, src, dst):
        self.doc.spec.find(src).id = dst
        self.doc.apply_update(dst)

    def redo(self):
        self._apply(self.old_id, self.new_id)

    def undo(self):
        self._apply(self.new_id, self.old_id)


class SetInput(QUndoCommand):
    """Change the model's input shape or dtype (every shape below follows)."""

    def __init__(self, doc, shape, dtype):
        super().__init__(f"Set input to {fmt(shape)} {dtype}")
        self.doc, self.new = doc, (tuple(shape), dtype)
        self.old = (tuple(doc.spec.input_shape), doc.spec.input_dtype)

    def _apply(self, value):
        self.doc.spec.input_shape, self.doc.spec.input_dtype = value
        self.doc.apply_update(None)

    def redo(self):
        self._apply(self.new)

    def undo(self):
        self._apply(self.old)
