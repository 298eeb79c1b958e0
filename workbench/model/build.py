"""Spec -> nn.Module, and per-layer shape / parameter inference without real weights.

Inference uses each kind's closed-form rule (catalog ``LayerKind.shape``, see shapes.py) and,
for backbones and kinds without a rule, a forward pass on the ``meta`` device. Results are
cached by (layer JSON, input shape, dtype, catalog version), so an edit only
re-infers the rows whose layer or input changed; everything below an unchanged shape is a
cache hit. Nothing here allocates real weights until ``build_model``.

A problem becomes a ``LayerError`` on the row: what is wrong, the fix in words and, where the
fix is mechanical, a ``remedies.Remedy`` (the one-click fix), offered only when making it
cures the layer (``_cures``).

Blocks: a Residual runs its body on x and adds x; a Parallel runs each of its Branch rows on
the same input and merges their outputs (``shapes.merge``: concat along a dim, add, mean, or
mul with broadcasting), an error on the Parallel row naming the branch that does not fit; a
Branch is a chain of layers (none: the identity). Only leaves are cached; a block re-walks its
rows, which are cache hits when unchanged. ``spec.nesting_problem`` (a Branch only directly in
a Parallel, a Parallel of two or more Branch rows) is checked here too, for specs made in code.

Inference refuses a layer nested deeper than ``spec.MAX_DEPTH`` (a spec made in code or in the
window, not only one read from a file), and ``memory_problem`` compares what the model needs
(parameters, and the activations of a small batch) with the machine's memory, so a model too
big to ever build is refused with the figures before anything allocates.
"""
from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from workbench.model import catalog, custom, remedies, shapes
from workbench.model.backbones import Backbone, build_backbone, size_rule, stage_names
from workbench.errors import LayerError, WorkbenchError, layer_label
from workbench.model.params import REQUIRED
from workbench.model.spec import MAX_DEPTH, LayerSpec, ModelSpec, nesting_problem

Shape = tuple[int, ...]
_CACHE: "OrderedDict[tuple, _Leaf]" = OrderedDict()
_CACHE_SIZE = 8192
_TOKEN_OK = {"Embedding", "Identity", "Flatten", "Unflatten"}


@dataclass(frozen=True)
class StageInfo:
    name: str
    params: int
    frozen: bool


@dataclass
class LayerInfo:
    """What inference knows of one row. ``out_shape`` is None when it is unknown."""

    id: str
    type: str
    path: str
    position: str
    in_shape: Shape | None
    out_shape: Shape | None = None
    params: int | None = None
    trainable: int | None = None
    args: dict = field(default_factory=dict)
    error: LayerError | None = None
    advice: list[str] = field(default_factory=list)  # works, but probably not what was meant
    children: list["LayerInfo"] = field(default_factory=list)
    stages: list[StageInfo] = field(default_factory=list)


@dataclass
class ModelInfo:
    input_shape: Shape
    input_dtype: str
    layers: list[LayerInfo]
    output_shape: Shape | None
    total_params: int
    trainable_params: int
    buffer_values: int = 0

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def size_mb(self) -> float:
        return (self.total_params + self.buffer_values) * 4 / 2**20

    def rows(self) -> list[LayerInfo]:
        """Every row, nested ones included, in display order."""
        out: list[LayerInfo] = []

        def visit(infos: list[LayerInfo]) -> None:
            for info in infos:
                out.append(info)
                visit(info.children)
        visit(self.layers)
        return out

    @property
    def error(self) -> LayerError | None:
        return next((r.error for r in self.rows() if r.error is not None), None)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Leaf:
    """Cached result for one leaf layer (not a block) at one input."""

    args: dict
    out_shape: Shape | None
    out_dtype: str
    params: int
    buffers: int
    stages: tuple[StageInfo, ...] = ()
    advice: tuple[str, ...] = ()
    problem: str = ""
    fix: str = ""
    remedy: remedies.Remedy | None = None  # the one-click fix, for remedies.HERE


# ---------------------------------------------------------------- inference

def clear_cache() -> None:
    """Forget every cached layer result (benchmarks measure a cold start with it)."""
    _CACHE.clear()


def infer(spec: ModelSpec) -> ModelInfo:
    """Shapes and parameter counts for every row; problems are recorded, never raised."""
    acc = {"buffers": 0}
    infos, out, _ = _infer_list(spec.layers, tuple(spec.input_shape), spec.input_dtype, "", "", False, acc)
    total = sum(i.params or 0 for i in infos)
    trainable = sum(i.trainable or 0 for i in infos)
    return ModelInfo(tuple(spec.input_shape), spec.input_dtype, infos, out, total, trainable, acc["buffers"])


def check(spec: ModelSpec) -> ModelInfo:
    """Like infer, but raise the first LayerError."""
    info = infer(spec)
    if info.error is not None:
        raise info.error
    return info


def _infer_list(layers, shape, dtype, pos_prefix, path_prefix, parent_frozen, acc, depth=1, parent=None):
    infos: list[LayerInfo] = []
    for i, layer in enumerate(layers):
        pos, path = f"{pos_prefix}{i + 1}", f"{path_prefix}{layer.id}"
        if shape is None:
            infos.append(_unknown(layer, pos, path, depth))
            continue
        info, shape, dtype = _infer_one(layer, shape, dtype, pos, path, parent_frozen, acc, depth, parent)
        infos.append(info)
    return infos, shape, dtype


def _infer_one(layer, shape, dtype, pos, path, parent_frozen, acc, depth, parent):
    """One row at one input (``parent``: the kind holding it, None at the top level)."""
    frozen = parent_frozen or layer.frozen
    misplaced = nesting_problem(layer, parent)
    if depth > MAX_DEPTH or misplaced:
        info = _unknown(layer, pos, path, depth)
        info.in_shape = shape
        info.error = (LayerError(layer.id, layer.type, pos, *misplaced) if misplaced else
                      LayerError(layer.id, layer.type, pos, f"nested {depth} levels deep; layers nest at most "
                                 f"{MAX_DEPTH} deep", "move it out of its block"))
        return info, None, dtype
    if layer.type == "Residual":
        return _infer_residual(layer, shape, dtype, pos, path, frozen, acc, depth)
    if layer.type == "Parallel":
        return _infer_parallel(layer, shape, dtype, pos, path, frozen, acc, depth)
    if layer.type == "Branch":
        return _infer_branch(layer, shape, dtype, pos, path, frozen, acc, depth)
    return _infer_leaf(layer, shape, dtype, pos, path, frozen, acc)


def _unknown(layer: LayerSpec, pos: str, path: str, depth: int = 1) -> LayerInfo:
    step = catalog.child_prefix(layer.type)
    children = ([_unknown(c, f"{pos}.{j + 1}", f"{path}{step}{c.id}", depth + 1) for j, c in enumerate(layer.layers)]
                if depth < MAX_DEPTH else [])
    return LayerInfo(layer.id, layer.type, path, pos, None, children=children)


def _infer_leaf(layer, shape, dtype, pos, path, frozen, acc):
    key = (layer.key(), shape, dtype, catalog.version(), custom.stamp(layer.args) if layer.type == custom.NAME else ())
    leaf = _CACHE.get(key)
    if leaf is None:
        leaf = _compute_leaf(layer, shape, dtype)
        _CACHE[key] = leaf
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    info = LayerInfo(layer.id, layer.type, path, pos, shape, leaf.out_shape, leaf.params, 0, leaf.args)
    if leaf.problem:
        remedy = leaf.remedy.at(layer.id) if leaf.remedy is not None else None
        info.error = LayerError(layer.id, layer.type, pos, leaf.problem, leaf.fix, remedy=remedy)
        info.params = info.trainable = None
        return info, None, dtype
    stages = [replace(s, frozen=s.frozen or frozen) for s in leaf.stages]
    info.stages = stages
    info.advice = list(leaf.advice)
    info.trainable = 0 if frozen else leaf.params - sum(s.params for s in stages if s.frozen)
    acc["buffers"] += leaf.buffers
    return info, leaf.out_shape, leaf.out_dtype


def _compute_leaf(layer: LayerSpec, shape: Shape, dtype: str) -> _Leaf:
    try:
        return _leaf(layer, shape, dtype)
    except shapes.Bad as bad:
        remedy = bad.remedy if bad.remedy is not None and _cures(bad.remedy, layer, shape, dtype) else None
        return _Leaf(dict(layer.args), None, dtype, 0, 0, problem=bad.problem, fix=bad.fix, remedy=remedy)
    except Exception as exc:  # torch's own check: keep its words, name the layer
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _Leaf(dict(layer.args), None, dtype, 0, 0,
                     problem=f"cannot take input {shapes.fmt(shape)}: {msg}",
                     fix="check its arguments against the input shape")


def _cures(remedy: remedies.Remedy, layer: LayerSpec, shape: Shape, dtype: str) -> bool:
    """Whether the remedy's edits, made where the layer stands, leave the layer without a
    problem: a remedy is offered only when it works (edits of other layers are not judged here)."""
    try:
        for edit in remedy.edits:
            if isinstance(edit, remedies.SetArgs) and edit.layer == remedies.HERE:
                layer = replace(layer, args={**layer.args, **dict(edit.args)})
            elif isinstance(edit, remedies.InsertLayer) and edit.before == remedies.HERE:
                before = _leaf(LayerSpec("fix", edit.type, dict(edit.args)), shape, dtype)
                shape, dtype = before.out_shape, before.out_dtype
        _leaf(layer, shape, dtype)
    except Exception:  # noqa: BLE001 - any failure means the remedy does not cure it
        return False
    return True


def _leaf(layer: LayerSpec, shape: Shape, dtype: str) -> _Leaf:
    kind = catalog.kind(layer.type)
    if kind is None:
        raise shapes.Bad(f"unknown layer type {layer.type!r}", "pick a layer from the palette")
    _check_input(kind, shape, dtype, layer.args)
    args = _resolve_args(kind, layer, shape)
    if layer.type in catalog.BACKBONES:
        return _backbone_leaf(layer, args, shape)
    if layer.type == custom.NAME:
        return _custom_leaf(layer, args, shape, dtype)
    out = kind.shape(args, shape) if kind.shape is not None else None  # friendlier words than torch's checks
    notes = tuple(shapes.advice(layer.type, args))
    with meta_device(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's construction warnings are in `notes`
        module = kind.factory(args)
        if out is None:
            out = _meta_forward(module, shape, dtype)
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers() if b.is_floating_point())
    out_dtype = "float32" if kind.tokens else dtype
    return _Leaf(args, tuple(out), out_dtype, params, buffers, advice=notes)


def _backbone_leaf(layer: LayerSpec, args: dict, shape: Shape) -> _Leaf:
    if shape[0] != 3:
        raise shapes.Bad(f"{layer.type} expects 3-channel (RGB) images but receives {shapes.fmt(shape)}",
                         "set the input to 3 channels, or insert Conv2d(out_channels=3, kernel_size=1) before it")
    rule, size = size_rule(layer.type)
    if rule == "exact" and tuple(shape[1:]) != (size, size):
        raise shapes.Bad(f"{layer.type} needs 3x{size}x{size} input but receives {shapes.fmt(shape)}",
                         f"set the input to 3x{size}x{size}, or add Upsample(size=[{size}, {size}]) before it",
                         remedies.insert_before("Upsample", size=[size, size]))
    if min(shape[1:]) < size:
        raise shapes.Bad(f"{layer.type} downsamples the image; a {shape[1]}x{shape[2]} image is too small",
                         f"use images of at least {size}x{size} (224x224 is what it was trained on), or add "
                         f"Upsample(size=[{size}, {size}]) before it")
    net = build_backbone(layer.type, pool=args.get("pool", True), meta=True)
    try:
        out = _meta_forward(net, shape, "float32")
    except Exception as exc:  # noqa: BLE001 - torch's words, said on the row with the fix
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise shapes.Bad(f"{layer.type} cannot take input {shapes.fmt(shape)}: {msg}",
                         "set the input to 3x224x224 (the size it was trained on)") from None
    stages = tuple(StageInfo(n, sum(p.numel() for p in getattr(net, n).parameters()), n in layer.frozen_stages)
                   for n in stage_names(layer.type))
    params = sum(p.numel() for p in net.parameters())
    buffers = sum(b.numel() for b in net.buffers() if b.is_floating_point())
    return _Leaf(args, tuple(out), "float32", params, buffers, stages)


def _custom_leaf(layer: LayerSpec, args: dict, shape: Shape, dtype: str) -> _Leaf:
    """A Custom layer (custom.py): its named children are its freezable parts, like stages."""
    got = custom.infer(args, shape, dtype, layer.frozen_stages)
    stages = tuple(StageInfo(name, params, name in layer.frozen_stages) for name, params in got.parts)
    return _Leaf(args, got.out_shape, dtype, got.params, got.buffers, stages, advice=got.advice)


class _SkipMetaInit(TorchFunctionMode):
    """``torch.nn.init`` functions do nothing to a meta tensor (there are no values to fill):
    a module's ``reset_parameters`` on meta still walks torch's dispatch for every weight, about
    half the time of building a Conv2d. Function modes are per thread; other tensors pass."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


@contextlib.contextmanager
def meta_device():
    """Modules built inside are on the meta device, without running their initialisers."""
    with torch.device("meta"), _SkipMetaInit():
        yield


def _meta_forward(module: nn.Module, shape: Shape, dtype: str) -> Shape:
    module = module.to("meta").eval()
    if dtype == "int64":
        x = torch.empty((2,) + tuple(shape), dtype=torch.long, device="meta")
    else:
        x = torch.empty((2,) + tuple(shape), device="meta")
    with torch.no_grad():
        return tuple(module(x).shape[1:])


def _check_input(kind: catalog.LayerKind, shape: Shape, dtype: str, given: dict) -> None:
    if dtype == "int64" and kind.name not in _TOKEN_OK and not kind.tokens:
        raise shapes.Bad(f"receives integer token ids {shapes.fmt(shape)} but needs float values",
                         "put an Embedding first, or set the model input dtype to float32")
    if kind.tokens and dtype != "int64":
        raise shapes.Bad("needs integer token ids but the input is float32",
                         f"set the model input dtype to int64 (token data), or remove the {kind.name}")
    rank = len(shape)
    if kind.name == "Linear" and rank >= 3:
        remedy = remedies.insert_before("Flatten")
        flat = _numel(shape)
        if "in_features" in given and given["in_features"] != flat:  # Flatten alone would not cure it
            remedy = remedies.also(remedy, remedies.set_args(in_features=flat))
        raise shapes.Bad(f"receives a {rank}-D feature map {shapes.fmt(shape)}",
                         "insert Flatten before it to turn the map into a vector", remedy)
    if kind.ranks and rank not in kind.ranks:
        raise shapes.Bad(f"needs input shaped {kind.rank_hint} but receives {shapes.fmt(shape)}",
                         _rank_fix(kind, shape))


def _rank_fix(kind: catalog.LayerKind, shape: Shape) -> str:
    want = max(kind.ranks or (0,))
    if kind.name == "BatchNorm2d" and len(shape) < 3:
        return "use BatchNorm1d for vectors and sequences"
    if kind.name in ("BatchNorm1d", "GroupNorm") and len(shape) == 3:
        return "use BatchNorm2d for images"
    if len(shape) < want:
        return (f"insert Unflatten before it to reshape {shapes.fmt(shape)} into {kind.rank_hint}, "
                "or change the model input shape")
    return f"insert Flatten or a pooling layer before it to reach {kind.rank_hint}"


def _resolve_args(kind: catalog.LayerKind, layer: LayerSpec, shape: Shape) -> dict:
    """Fill inferred input sizes; a given one that disagrees with the input is an error."""
    args = {p.name: p.default for p in kind.params if p.default is not REQUIRED and p.infer is None}
    args.update(layer.args)  # catalog defaults are torch's, except where torch's warns (Softmax dim)
    for p in kind.params:
        if p.infer is None:
            continue
        derived = p.infer(shape)
        if p.name not in args:
            args[p.name] = derived
        elif p.name != "normalized_shape" and args[p.name] != derived:
            raise shapes.Bad(f"{p.name} is {args[p.name]} but the input {shapes.fmt(shape)} has {derived}",
                             f"remove {p.name} to infer it, or set it to {derived}",
                             remedies.set_args(**{p.name: derived}))
    missing = [p.name for p in kind.params if p.required and p.name not in args]
    if missing:
        raise shapes.Bad(f"needs {', '.join(missing)}", f"set {missing[0]} in the inspector")
    return args


def _infer_residual(layer, shape, dtype, pos, path, frozen, acc, depth):
    children, out, out_dtype = _infer_list(layer.layers, shape, dtype, f"{pos}.", f"{path}.body.", frozen, acc,
                                           depth + 1, "Residual")
    info = LayerInfo(layer.id, layer.type, path, pos, shape, None, None, None, dict(layer.args), children=children)
    if out is None:
        return info, None, dtype
    body = sum(c.params for c in children)
    proj_params = 0
    if out != shape or out_dtype != dtype:
        if layer.args.get("projection", "none") == "none":
            info.error = LayerError(
                layer.id, layer.type, pos,
                f"its layers change the shape from {shapes.fmt(shape)} to {shapes.fmt(out)}, so x + f(x) "
                "cannot be added", "set projection to 'auto', or make the last nested layer output "
                f"{shapes.fmt(shape)}", remedy=_projection_remedy(layer.id, shape, out, dtype, out_dtype))
            return info, None, dtype
        try:
            with torch.device("meta"):
                proj_params = sum(p.numel() for p in projection(shape, out, layer.args["projection"]).parameters())
        except shapes.Bad as bad:
            info.error = LayerError(layer.id, layer.type, pos, bad.problem, bad.fix)
            return info, None, dtype
    info.out_shape = out
    info.params = body + proj_params
    info.trainable = sum(c.trainable for c in children) + (0 if frozen else proj_params)
    return info, out, out_dtype


def _infer_branch(layer, shape, dtype, pos, path, frozen, acc, depth):
    """A Branch: its layers in a chain from the Parallel's input (none: the identity)."""
    children, out, out_dtype = _infer_list(layer.layers, shape, dtype, f"{pos}.", f"{path}.", frozen, acc,
                                           depth + 1, "Branch")
    info = LayerInfo(layer.id, layer.type, path, pos, shape, None, None, None, {}, children=children)
    if out is None:
        return info, None, dtype
    info.out_shape = out
    info.params = sum(c.params for c in children)
    info.trainable = sum(c.trainable for c in children)
    return info, out, out_dtype


def _infer_parallel(layer, shape, dtype, pos, path, frozen, acc, depth):
    """A Parallel: every Branch from the same input, their outputs merged (shapes.merge)."""
    args = {"merge": layer.args.get("merge", "concat"), "dim": layer.args.get("dim", 1)}
    branches, outputs = [], []
    for j, branch in enumerate(layer.layers):
        info, out, out_dtype = _infer_one(branch, shape, dtype, f"{pos}.{j + 1}", f"{path}.{branch.id}", frozen,
                                          acc, depth + 1, "Parallel")
        branches.append(info)
        outputs.append((branch.id, out, out_dtype))
    info = LayerInfo(layer.id, layer.type, path, pos, shape, None, None, None, args, children=branches)
    few = nesting_problem(None, None, len(layer.layers))
    if few:
        info.error = LayerError(layer.id, layer.type, pos, *few)
        return info, None, dtype
    if any(out is None for _, out, _ in outputs):
        return info, None, dtype
    try:
        out, out_dtype, notes = shapes.merge(args["merge"], args["dim"], outputs)
    except shapes.Bad as bad:
        info.error = LayerError(layer.id, layer.type, pos, bad.problem, bad.fix)
        return info, None, dtype
    info.out_shape = out
    info.advice = notes
    info.params = sum(b.params for b in branches)
    info.trainable = sum(b.trainable for b in branches)
    return info, out, out_dtype


def _projection_remedy(layer_id: str, src: Shape, dst: Shape, dtype: str, out_dtype: str) -> remedies.Remedy | None:
    """'Set projection to auto', where a projection can map ``src`` to ``dst``."""
    if dtype != out_dtype:
        return None
    try:
        with torch.device("meta"):
            projection(src, dst)
    except shapes.Bad:
        return None
    return remedies.set_args(projection="auto").at(layer_id)


def projection(src: Shape, dst: Shape, kind: str = "auto") -> nn.Module:
    """The shortcut that maps x to f(x)'s shape: Linear for vectors/sequences, 1x1 conv for maps;
    ``kind`` 'conv_bn' is the 1x1 conv followed by BatchNorm2d (ResNet's downsample)."""
    if kind == "conv_bn":
        if len(src) == len(dst) == 3:
            conv = projection(src, dst)
            return nn.Sequential(conv, nn.BatchNorm2d(dst[0]))
        raise shapes.Bad(f"projection 'conv_bn' needs image feature maps but maps {shapes.fmt(src)} to "
                         f"{shapes.fmt(dst)}", "set projection to 'auto'")
    if len(src) == len(dst) == 1 or (len(src) == len(dst) == 2 and src[0] == dst[0]):
        return nn.Linear(src[-1], dst[-1], bias=False)
    if len(src) == len(dst) == 3:
        for s in range(1, max(src[1:]) + 1):
            if all((src[i] - 1) // s + 1 == dst[i] for i in (1, 2)):
                return nn.Conv2d(src[0], dst[0], 1, stride=s, bias=False)
    raise shapes.Bad(f"no projection maps {shapes.fmt(src)} to {shapes.fmt(dst)}",
                     "keep the rank the same and change size by a whole stride")


# ---------------------------------------------------------------- memory

EXAMPLE_BATCH = 2  # the batch memory_problem sizes activations for (export's example input is as large)


def memory_need(info: ModelInfo, batch: int = EXAMPLE_BATCH) -> tuple[int, int]:
    """Bytes the model needs at least: (parameters and buffers, float32; the input and every
    layer's output for ``batch`` examples). Backbones' inner activations are not counted."""
    weights = (info.total_params + info.buffer_values) * 4
    per_example = _numel(info.input_shape) * (8 if info.input_dtype == "int64" else 4)
    per_example += sum(_numel(r.out_shape) * 4 for r in info.rows() if r.out_shape)
    return weights, per_example * batch


def machine_memory() -> int:
    """Bytes of memory in this machine (all of it: what a model may ever use here)."""
    import psutil

    return psutil.virtual_memory().total


def memory_problem(info: ModelInfo, batch: int = EXAMPLE_BATCH, available: int | None = None) -> str | None:
    """Why this model can never be built and run here, with the figures; None when it can."""
    weights, activations = memory_need(info, batch)
    available = machine_memory() if available is None else available
    if weights + activations <= available:
        return None
    rows = [r for r in info.rows() if not r.children]
    if weights >= activations:
        big = max(rows, key=lambda r: r.params or 0)
        culprit = f"the largest layer is {layer_label(big.id, big.type, big.position)} with {big.params:,} parameters"
    else:
        big = max(rows, key=lambda r: _numel(r.out_shape) if r.out_shape else 0, default=None)
        culprit = (f"the largest output is {shapes.fmt(big.out_shape)} per example, of "
                   f"{layer_label(big.id, big.type, big.position)}" if big is not None and big.out_shape else
                   f"the input {shapes.fmt(info.input_shape)} alone is too large")
    return (f"the model needs {human_bytes(weights + activations)} of memory ({human_bytes(weights)} for its "
            f"{info.total_params:,} parameters, {human_bytes(activations)} for the activations of a batch of "
            f"{batch}), but this machine has {human_bytes(available)}; {culprit}: make the model or its "
            "input smaller")


def check_memory(info: ModelInfo, batch: int = EXAMPLE_BATCH) -> None:
    """Raise a WorkbenchError with ``memory_problem``'s figures when the model cannot fit here."""
    problem = memory_problem(info, batch)
    if problem:
        raise WorkbenchError(problem)


def human_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disks and `df -H` count)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def _numel(shape: Shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


# ---------------------------------------------------------------- building

class Residual(nn.Module):
    """x + body(x), with ``proj`` mapping x to body(x)'s shape (Identity when they match)."""

    def __init__(self, body: nn.Sequential, proj: nn.Module | None = None):
        super().__init__()
        self.body = body
        self.proj = proj if proj is not None else nn.Identity()

    def forward(self, x):
        return self.proj(x) + self.body(x)


def build_model(spec: ModelSpec) -> nn.Sequential:
    """A real module whose named children are the layer ids; frozen flags applied. A model too
    large for this machine's memory is refused before any weight is allocated."""
    info = check(spec)
    check_memory(info)
    model = nn.Sequential(OrderedDict(_make_list(spec.layers, info.layers)))
    apply_frozen(model, spec)
    return model


def _make_list(layers: list[LayerSpec], infos: list[LayerInfo]):
    return [(layer.id, _make(layer, info)) for layer, info in zip(layers, infos)]


class Parallel(nn.Module):
    """Every branch (an ``nn.Sequential``; an empty one is the identity) on the same input, the
    outputs merged: ``concat`` along ``dim``, ``add``, ``mean`` or ``mul`` (which broadcasts).
    The branches are the children, by id."""

    def __init__(self, branches: "OrderedDict[str, nn.Module]", merge: str = "concat", dim: int = 1):
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)
        self.merge = merge
        self.dim = dim

    def forward(self, x):
        outs = [branch(x) for branch in self.children()]
        if self.merge == "concat":
            return torch.cat(outs, dim=self.dim)
        out = outs[0]
        for other in outs[1:]:
            out = out * other if self.merge == "mul" else out + other
        return out / len(outs) if self.merge == "mean" else out


def _make(layer: LayerSpec, info: LayerInfo) -> nn.Module:
    if layer.type == "Parallel":
        branches = OrderedDict((b.id, nn.Sequential(OrderedDict(_make_list(b.layers, bi.children))))
                               for b, bi in zip(layer.layers, info.children))
        return Parallel(branches, info.args["merge"], info.args["dim"])
    if layer.type == "Residual":
        body = nn.Sequential(OrderedDict(_make_list(layer.layers, info.children)))
        proj = (projection(info.in_shape, info.out_shape, info.args.get("projection", "auto"))
                if info.in_shape != info.out_shape else None)
        return Residual(body, proj)
    if layer.type in catalog.BACKBONES:
        return build_backbone(layer.type, info.args.get("weights", "none"), info.args.get("pool", True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # already shown as the row's advice
        return catalog.kind(layer.type).factory(info.args)


def frozen_paths(spec: ModelSpec) -> list[str]:
    """Module paths that the spec marks frozen (layers and backbone stages)."""
    out = []
    for path, layer in spec.walk():
        if layer.frozen:
            out.append(path)
        out.extend(f"{path}.{stage}" for stage in layer.frozen_stages)
    return out


def apply_frozen(model: nn.Module, spec: ModelSpec) -> None:
    for p in model.parameters():
        p.requires_grad_(True)
    for path in frozen_paths(spec):
        for p in model.get_submodule(path).parameters():
            p.requires_grad_(False)


def param_count(model: nn.Module) -> tuple[int, int]:
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def example_input(spec: ModelSpec, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A real input batch for the spec (token ids below the first Embedding's vocabulary)."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch,) + tuple(spec.input_shape)
    if spec.input_dtype == "int64":
        emb = next((row for _, row in spec.walk() if getattr(catalog.kind(row.type), "tokens", False)), None)
        high = emb.args.get("num_embeddings", 2) if emb else 2
        return torch.randint(0, high, shape, generator=g)
    return torch.randn(shape, generator=g)


def warm_up() -> None:
    """Load the meta kernels once (the first inference costs ~1 s); call off the UI thread. The
    padding row is a meta forward of a kind without a closed-form rule: the first one in a process
    loads torch's Python meta kernels (~1 s), which an edit must not wait for. (Kinds whose meta
    forward would import torch's decompositions and sympy, 2-5 s and 150 MB, such as bilinear
    upsampling and PReLU, have closed-form rules instead.)"""
    spec = ModelSpec((1, 8, 8), [LayerSpec("c", "Conv2d", {"out_channels": 2, "kernel_size": 3}),
                                 LayerSpec("p", "ReflectionPad2d", {"padding": 1}),
                                 LayerSpec("f", "Flatten"), LayerSpec("l", "Linear", {"out_features": 2})])
    infer(spec)


__all__ = ["infer", "check", "build_model", "memory_need", "memory_problem", "check_memory", "human_bytes",
           "machine_memory", "EXAMPLE_BATCH", "ModelInfo", "LayerInfo", "StageInfo", "Residual", "Parallel", "Backbone",
           "frozen_paths", "apply_frozen", "param_count", "example_input", "warm_up"]
