"""One-click fixes: the mechanical edit that cures a layer problem, as plain data.

A ``Remedy`` has a ``label`` a person reads on a button ("Insert Flatten before 'fc'") and
the ``edits`` that make the fix: set arguments of a layer (``SetArgs``), insert a layer
before another (``InsertLayer``), remove a layer (``RemoveLayer``) or set the model input
(``SetInput``). Remedies are computed from inference (the real incoming shape), never
guessed; a problem gets one only where the fix is mechanical and unambiguous. Text stays
where it was (``LayerError.fix``, ``shapes.Bad.fix``); the remedy travels beside it.

Shape rules do not know the id of the layer they judge, so they build remedies whose
layer is ``HERE``; ``Remedy.at(layer_id)`` binds them once the layer is known (build.py).
``apply`` makes the edits on a copy of a ``ModelSpec`` (the window makes the same edit through
its undo commands).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Union

HERE = ""  # the layer the problem is about, until ``Remedy.at`` names it


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
    return str(value)


@dataclass(frozen=True)
class SetArgs:
    """Set constructor arguments of one layer (``args``: (name, value) pairs)."""

    layer: str
    args: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class InsertLayer:
    """Insert a new layer of ``type`` (with ``args``) just before layer ``before``, in its block."""

    before: str
    type: str
    args: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class RemoveLayer:
    layer: str


@dataclass(frozen=True)
class SetInput:
    """Set the model input shape (and dtype, when given)."""

    shape: tuple[int, ...]
    dtype: str | None = None


Edit = Union[SetArgs, InsertLayer, RemoveLayer, SetInput]


@dataclass(frozen=True)
class Remedy:
    label: str  # what the button says; "{layer}" stands for the layer's id until ``at``
    edits: tuple[Edit, ...]

    def at(self, layer_id: str) -> "Remedy":
        """This remedy with ``HERE`` bound to ``layer_id``."""
        def bind(edit: Edit) -> Edit:
            if isinstance(edit, (SetArgs, RemoveLayer)) and edit.layer == HERE:
                return replace(edit, layer=layer_id)
            if isinstance(edit, InsertLayer) and edit.before == HERE:
                return replace(edit, before=layer_id)
            return edit
        return Remedy(self.label.replace("{layer}", layer_id), tuple(bind(e) for e in self.edits))

    def layers(self) -> set[str]:
        """The ids of the layers the edits need (all must exist for the remedy to apply)."""
        out = set()
        for edit in self.edits:
            if isinstance(edit, (SetArgs, RemoveLayer)):
                out.add(edit.layer)
            elif isinstance(edit, InsertLayer):
                out.add(edit.before)
        return out


# ---------------------------------------------------------------- making remedies

def set_args(layer: str = HERE, **args: Any) -> Remedy:
    """'Set in_features to 1024' (of the layer with the problem, or of ``layer``)."""
    where = "" if layer == HERE else f" of '{layer}'"
    what = ", ".join(f"{name}{where} to {_fmt(value)}" for name, value in args.items())
    return Remedy(f"Set {what}", (SetArgs(layer, tuple(args.items())),))


def insert_before(layer_type: str, layer: str = HERE, **args: Any) -> Remedy:
    """'Insert Flatten before 'fc''."""
    return Remedy(f"Insert {layer_type} before '{{layer}}'" if layer == HERE else
                  f"Insert {layer_type} before '{layer}'", (InsertLayer(layer, layer_type, tuple(args.items())),))


def remove(layer: str) -> Remedy:
    return Remedy(f"Remove '{layer}'", (RemoveLayer(layer),))


def match_input(shape: tuple[int, ...], dtype: str | None = None, what: str = "the data") -> Remedy:
    """'Match the model input to the data (1, 8, 8)'."""
    detail = _fmt(tuple(shape)) if dtype is None else f"{_fmt(tuple(shape))} {dtype}"
    return Remedy(f"Match the model input to {what} {detail}", (SetInput(tuple(shape), dtype),))


def also(first: Remedy, then: Remedy) -> Remedy:
    """One remedy doing both (``first``'s label): e.g. insert Flatten and correct in_features."""
    return Remedy(first.label, first.edits + then.edits)


# ---------------------------------------------------------------- applying to a spec

def apply(remedy: Remedy, spec):
    """A copy of ``spec`` (a ``spec.ModelSpec``, not imported here: the shape rules make
    remedies, and the spec module sits above them) with the remedy's edits made; KeyError
    when a layer it names is gone."""
    out = spec.copy()
    for edit in remedy.edits:
        if isinstance(edit, SetArgs):
            layer = _find(out, edit.layer)
            layer.args.update(dict(edit.args))
        elif isinstance(edit, InsertLayer):
            siblings, row = _place(out.layers, edit.before)
            fresh = replace(siblings[row], id=out.unique_id(edit.type), type=edit.type, args=dict(edit.args),
                            frozen=False, layers=[], frozen_stages=[])  # a new LayerSpec
            siblings.insert(row, fresh)
        elif isinstance(edit, RemoveLayer):
            siblings, row = _place(out.layers, edit.layer)
            siblings.pop(row)
        elif isinstance(edit, SetInput):
            out.input_shape = tuple(edit.shape)
            out.input_dtype = edit.dtype or out.input_dtype
    return out


def _find(spec, layer_id: str):
    layer = spec.find(layer_id)
    if layer is None:
        raise KeyError(layer_id)
    return layer


def _place(layers: list, layer_id: str) -> tuple[list, int]:
    """The list holding a layer (top level or a block's), and its row there."""
    for row, layer in enumerate(layers):
        if layer.id == layer_id:
            return layers, row
        if layer.layers:
            try:
                return _place(layer.layers, layer_id)
            except KeyError:
                pass
    raise KeyError(layer_id)
