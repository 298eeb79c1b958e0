"""What each layer costs in one forward pass: FLOPs and the activations autograd saves for backward.

Both are read from one forward pass of the layer alone on the ``meta`` device (no memory, no
arithmetic): ``torch.utils.flop_counter.FlopCounterMode`` counts the FLOPs of the operations
it knows (convolutions, matrix products, attention), and ``torch.autograd.graph.
saved_tensors_hooks`` sees every tensor the forward keeps for the backward. A layer's result is
cached by (type, resolved arguments, input shape, dtype, catalog version), as inference caches
its shapes, so an edit re-measures only the rows whose layer or input changed.

Saved tensors are split into the layer's input, its output and the rest (BatchNorm's
statistics, MaxPool's indices, Dropout's mask): a tensor one layer outputs and the next saves
as its input is one tensor and is counted once, and so is a view (Flatten's output is its
input). The model's input batch is always counted: it lives for the whole step. Parameters
(and views of them, such as Linear's transposed weight) are not activations and are left out;
a parameter shared by two modules is counted once (``module_costs``).

MACs are half of FlopCounterMode's FLOPs (it counts a multiply-add as two FLOPs).

A frozen layer is measured with its weights not requiring gradients: where nothing before it
learns either, autograd keeps nothing for it, so a frozen beginning adds no activations. Layers
are built on meta without their initialisers (``build.meta_device``). The cache is shared by
threads (the window's cost job, the engine's fit note) under one lock; a measurement runs
outside it.
"""
from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from workbench.model import build, catalog
from workbench.model.backbones import build_backbone
from workbench.model.spec import LayerSpec, ModelSpec

Shape = tuple[int, ...]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_PROBE_BATCH = 2  # BatchNorm refuses a batch of 1 in training mode; figures are divided back to one example
_CACHE: "OrderedDict[tuple, LayerCost]" = OrderedDict()
_CACHE_SIZE = 8192
_ARGS_TEXT: dict[int, tuple[dict, str]] = {}
_LOCK = threading.Lock()  # the window's cost job and the engine's fit note may measure at once


@dataclass(frozen=True)
class LayerCost:
    """One leaf layer at one input, per example. Bytes are in the dtype it was measured in."""

    flops: int
    in_bytes: int
    out_bytes: int
    saves_input: bool
    saves_output: bool
    output_is_input: bool  # the output is a view of the input (Flatten, Identity): one tensor
    other_saved: int  # bytes saved for backward that are neither the input nor the output

    @property
    def macs(self) -> int:
        return self.flops // 2


@dataclass
class RowCost:
    """One row of the stack (a Residual, Parallel or Branch sums its nested rows). ``activations`` are the bytes per
    example this row adds to what the backward pass keeps: its output when anything saves it,
    and what it saves besides its input and output."""

    path: str
    flops: int = 0
    activations: int = 0
    held: int = 0  # bytes per example the backward pass holds until it is past this row
    peak_transient: int = 0  # bytes per example live while backward passes this row: grad in + grad out

    @property
    def macs(self) -> int:
        return self.flops // 2


@dataclass
class ModelCosts:
    """Per-row costs (by module path) and totals, per example; ``complete`` is False when a row
    has a problem, so the rows after it are unknown."""

    dtype: str
    rows: dict[str, RowCost] = field(default_factory=dict)
    input_bytes: int = 0
    complete: bool = True

    @property
    def flops(self) -> int:
        return sum(r.flops for p, r in self.rows.items() if "." not in p)

    @property
    def macs(self) -> int:
        return self.flops // 2

    @property
    def activations(self) -> int:
        """Bytes per example kept for backward, the input batch included."""
        return self.input_bytes + sum(r.activations for p, r in self.rows.items() if "." not in p)

    @property
    def peak_activations(self) -> int:
        """Bytes per example of activations at the worst moment of a training step: while the
        backward pass goes through a row, what the rows up to it saved is still held, and so are
        the gradients of its output and its input. (The forward's end holds all saved bytes.)"""
        held, peak = self.input_bytes, self.activations
        for path, row in self.rows.items():
            if "." in path:
                continue
            held += row.held
            peak = max(peak, held + row.peak_transient)
        return peak


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
        _ARGS_TEXT.clear()


def element_size(dtype: str) -> int:
    return torch.empty((), dtype=DTYPES[dtype]).element_size()


def costs(spec: ModelSpec, info: build.ModelInfo | None = None, dtype: str = "float32") -> ModelCosts:
    """Per-row FLOPs and saved activations of ``spec`` (its inference ``info`` when at hand)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    info = build.infer(spec) if info is None else info
    size = 8 if spec.input_dtype == "int64" else element_size(dtype)
    out = ModelCosts(dtype, input_bytes=_numel(spec.input_shape) * size)
    _Walk(out, dtype).chain(spec.layers, info.layers, _Group(out.input_bytes),
                            "int64" if spec.input_dtype == "int64" else "float", False)
    return out


class _Group:
    """One activation tensor and its views: counted once, when anything saves it. ``holder`` is
    the first row that saves it: the backward pass frees it once it is past that row."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.holder: RowCost | None = None
        self.producer: RowCost | None = None


class _Walk:
    """One pass over the rows in forward order, tensor by tensor."""

    def __init__(self, out: ModelCosts, dtype: str):
        self.out, self.dtype = out, dtype

    def chain(self, layers: list[LayerSpec], infos: list[build.LayerInfo], group: _Group, in_kind: str,
              grad: bool) -> tuple[_Group, bool] | None:
        """Walk one list of rows from the tensor ``group``; ``in_kind`` is "int64" while it holds
        token ids, ``grad`` whether it needs a gradient (something before it learns)."""
        produced: list[_Group] = []
        for layer, info in zip(layers, infos):
            if info.error is not None or info.out_shape is None or info.in_shape is None:
                self.out.complete = False
                return None
            row = self.out.rows[info.path] = RowCost(info.path)
            if layer.type in ("Parallel", "Branch"):
                merged = self.block(layer, info, group, in_kind, grad, row)
                if merged is None:
                    return None
                new, grad = merged
            elif layer.type == "Residual":
                body = self.chain(layer.layers, info.children, group, in_kind, grad)
                if body is None:
                    return None
                body_out, body_grad = body
                for child in info.children:  # a Residual's row holds what its nested rows hold
                    nested = self.out.rows[child.path]
                    row.flops += nested.flops
                    row.activations += nested.activations
                    row.held += nested.held
                if info.in_shape != info.out_shape:
                    learns = bool(info.trainable)  # a frozen block's projection learns nothing
                    kind = info.args.get("projection", "auto")
                    proj = _cost(("projection", info.in_shape, info.out_shape, kind), info.in_shape, "float",
                                 self.dtype, grad, lambda: build.projection(info.in_shape, info.out_shape, kind),
                                 learns)
                    row.flops += proj.flops
                    row.held += proj.other_saved
                    row.activations += proj.other_saved
                    if proj.saves_input:
                        self.save(group, row)
                    body_grad = body_grad or learns
                new = _Group(body_out.nbytes)  # x + f(x): the sum is a new tensor, and an add saves nothing
                grad = body_grad or grad
                row.peak_transient = max([(group.nbytes if grad else 0) + new.nbytes] +
                                         [self.out.rows[c.path].peak_transient for c in info.children])
            else:
                learns = bool(info.trainable)  # a frozen layer keeps no input for its weights' gradients
                cost = _cost(_key(layer, info), info.in_shape, in_kind, self.dtype, grad,
                             lambda: _meta_module(layer, info), learns)
                row.flops = cost.flops
                row.held += cost.other_saved
                row.activations += cost.other_saved
                if cost.saves_input:
                    self.save(group, row)
                new = group if cost.output_is_input else _Group(cost.out_bytes)
                if cost.saves_output:
                    self.save(new, row)
                out_grad = grad or learns
                row.peak_transient = (cost.in_bytes if grad else 0) + (cost.out_bytes if out_grad else 0)
                grad = out_grad
                if layer.type == "Embedding":
                    in_kind = "float"
            if new is not group:
                new.producer = row
                produced.append(new)
            group = new
        for g in produced:  # the rows after each producer have had their say on saving its output
            if g.holder is not None:
                g.producer.activations += g.nbytes
        return group, grad

    def block(self, layer: LayerSpec, info: build.LayerInfo, group: _Group, in_kind: str, grad: bool,
              row: RowCost) -> tuple[_Group, bool] | None:
        """A Branch (its rows in a chain) or a Parallel (every branch from ``group``, then the
        merge: a new tensor; ``mul`` saves its inputs for the backward pass)."""
        if layer.type == "Branch":
            body = self.chain(layer.layers, info.children, group, in_kind, grad)
            if body is None:
                return None
            self.nested(row, info)
            row.peak_transient = max([0] + [self.out.rows[c.path].peak_transient for c in info.children])
            return body
        outs = []
        for branch, branch_info in zip(layer.layers, info.children):
            branch_row = self.out.rows[branch_info.path] = RowCost(branch_info.path)
            body = self.block(branch, branch_info, group, in_kind, grad, branch_row)
            if body is None:
                return None
            outs.append(body)
        self.nested(row, info)
        out_grad = grad or any(g for _, g in outs)
        new = _Group(_numel(info.out_shape) * element_size(self.dtype))
        if layer.args.get("merge") == "mul" and out_grad:
            for out_group, _ in outs:
                self.save(out_group, row)
        row.peak_transient = max([(group.nbytes if grad else 0) + new.nbytes] +
                                 [self.out.rows[c.path].peak_transient for c in info.children])
        return new, out_grad

    def nested(self, row: RowCost, info: build.LayerInfo) -> None:
        """A block's row holds what its nested rows hold."""
        for child in info.children:
            nested = self.out.rows[child.path]
            row.flops += nested.flops
            row.activations += nested.activations
            row.held += nested.held

    @staticmethod
    def save(group: _Group, row: RowCost) -> None:
        if group.holder is None and group.producer is not None:
            group.holder = row
            row.held += group.nbytes


def _key(layer: LayerSpec, info: build.LayerInfo) -> tuple:
    return (layer.type, _args_text(info.args), tuple(info.in_shape))


def _args_text(args: dict) -> str:
    """The canonical text of resolved arguments. Inference hands every row the arguments dict of
    its cached layer result, so the text is kept per dict object (held here, so its id is not
    reused) and a walk over unchanged rows makes no text at all."""
    found = _ARGS_TEXT.get(id(args))
    if found is not None and found[0] is args:
        return found[1]
    text = repr(sorted(args.items()))
    with _LOCK:
        _ARGS_TEXT[id(args)] = (args, text)
        if len(_ARGS_TEXT) > _CACHE_SIZE:
            del _ARGS_TEXT[next(iter(_ARGS_TEXT))]
    return text


def _meta_module(layer: LayerSpec, info: build.LayerInfo) -> nn.Module:
    if layer.type in catalog.BACKBONES:
        return build_backbone(layer.type, pool=info.args.get("pool", True), meta=True)
    with build.meta_device(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return catalog.kind(layer.type).factory(info.args)


def _cost(key: tuple, shape: Shape, in_kind: str, dtype: str, grad: bool, make, learns: bool = True) -> LayerCost:
    full = key + (in_kind, dtype, grad, learns, catalog.version())
    with _LOCK:
        cost = _CACHE.get(full)
        if cost is not None:
            _CACHE.move_to_end(full)
            return cost
    cost = measure(make(), shape, dtype, integer_input=in_kind == "int64", input_grad=grad, learns=learns)
    with _LOCK:
        _CACHE[full] = cost
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return cost


def measure(module: nn.Module, shape: Shape, dtype: str = "float32", integer_input: bool = False,
            input_grad: bool = True, learns: bool = True) -> LayerCost:
    """One module's forward cost per example, measured on the meta device in training mode;
    ``input_grad``: whether its input needs a gradient (it does after any layer that learns);
    ``learns``: whether its weights do (False: frozen)."""
    module = module.to(device="meta", dtype=DTYPES[dtype]).train()
    if not learns:
        module.requires_grad_(False)
    if integer_input:
        x = torch.zeros((_PROBE_BATCH,) + tuple(shape), dtype=torch.long, device="meta")
    else:
        x = torch.empty((_PROBE_BATCH,) + tuple(shape), dtype=DTYPES[dtype], device="meta",
                        requires_grad=input_grad)
    saved: list[torch.Tensor] = []
    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append(t) or t, lambda t: t):
        y = module(x)
    # a tensor and its views share one storage; Python gives a storage one object while it is
    # referenced, so every storage object compared is kept in a list until the end
    stores = [t.untyped_storage() for t in [*module.parameters(), *module.buffers()]]
    weights = {id(store) for store in stores}
    x_store, y_store = x.untyped_storage(), y.untyped_storage()
    saves_in = saves_out = False
    other: dict[int, int] = {}
    for t in saved:
        store = t.untyped_storage()
        stores.append(store)
        if id(store) in weights:
            continue
        if store is x_store:
            saves_in = True
        elif store is y_store:
            saves_out = True
        else:
            other[id(store)] = store.nbytes()
    n = _PROBE_BATCH
    return LayerCost(counter.get_total_flops() // n, x.numel() * x.element_size() // n,
                     y.numel() * y.element_size() // n, saves_in, saves_out, y_store is x_store,
                     sum(other.values()) // n)


def module_costs(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(forward FLOPs, parameters) of a whole module for the batch ``x``, measured by
    FlopCounterMode as one run; a parameter shared between modules is counted once."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops(), sum(p.numel() for p in model.parameters())


def _numel(shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


__all__ = ["LayerCost", "RowCost", "ModelCosts", "costs", "measure", "module_costs", "clear_cache",
           "element_size", "DTYPES"]
