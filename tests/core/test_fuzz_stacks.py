"""Property test: thousands of random layer stacks, with Residual and Parallel blocks (every merge,
random concat dims, identity branches). Each one either builds and a real forward pass gives
exactly the inferred shape of every row (blocks and branches included), or inference reports the project's own LayerError
naming a layer of the stack. No other exception ever escapes."""
from __future__ import annotations

import os

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from workbench.model import build, catalog
from workbench.errors import LayerError
from workbench.model.spec import LayerSpec, ModelSpec

KINDS = [k for k in catalog.KINDS if not k.composite]
EXAMPLES = int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "3000"))
_counter = iter(range(10**9))


def _value(draw, p):
    small = lambda lo=0, hi=6: draw(st.integers(max(lo, int(p.min or 0)), hi))  # noqa: E731
    if p.kind == "int":
        if p.name in ("dim", "start_dim", "end_dim"):
            return draw(st.integers(-3, 3))
        return small(1 if p.min else 0, 9)
    if p.kind == "float":
        hi = p.max if p.max is not None else 2.0
        return draw(st.floats(p.min or 0.0, min(hi, 2.0)))
    if p.kind == "bool":
        return draw(st.booleans())
    if p.kind == "choice":
        return draw(st.sampled_from(p.choices))
    if p.kind == "ints":
        if p.words and draw(st.integers(0, 5)) == 0:
            return draw(st.sampled_from(p.words))
        if p.dims > 1 and draw(st.booleans()):
            return [small() for _ in range(p.dims)]
        return small()
    if p.kind == "shape":
        return draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    return "none"


@st.composite
def layer(draw, depth=0):
    if depth == 0 and draw(st.integers(0, 9)) == 0:
        children = draw(st.lists(layer(depth=1), min_size=1, max_size=3))
        proj = draw(st.sampled_from(["none", "auto"]))
        return LayerSpec(f"l{next(_counter)}", "Residual", {"projection": proj}, layers=children)
    if depth == 0 and draw(st.integers(0, 6)) == 0:
        return draw(parallel())
    kind = draw(st.sampled_from(KINDS))
    args = {}
    for p in kind.params:
        if p.name == "dim_feedforward":
            args[p.name] = draw(st.integers(1, 16))
        elif p.infer is not None:
            if draw(st.integers(0, 7)) == 0:  # sometimes give an input size, maybe a wrong one
                args[p.name] = [draw(st.integers(1, 9))] if p.kind == "shape" else draw(st.integers(1, 9))
        elif p.required or draw(st.booleans()):
            args[p.name] = _value(draw, p)
    if kind.tokens:
        args["padding_idx"] = None
    return LayerSpec(f"l{next(_counter)}", kind.name, args, frozen=draw(st.booleans()))


_KEEPS_SHAPE = [k for k in KINDS if k.category == "Activation" and not k.params]  # so some merges fit


@st.composite
def branch_layer(draw):
    if draw(st.booleans()):
        return LayerSpec(f"l{next(_counter)}", draw(st.sampled_from(_KEEPS_SHAPE)).name)
    return draw(layer(depth=1))


@st.composite
def parallel(draw):
    """A Parallel of 2-3 branches of 0-2 layers (empty: the identity), any merge, any dim."""
    branches = [LayerSpec(f"l{next(_counter)}", "Branch", frozen=draw(st.booleans()),
                          layers=draw(st.lists(branch_layer(), max_size=2)))
                for _ in range(draw(st.integers(2, 3)))]
    args = {"merge": draw(st.sampled_from(catalog.MERGES))}
    if draw(st.booleans()):
        args["dim"] = draw(st.integers(-3, 3))
    return LayerSpec(f"l{next(_counter)}", "Parallel", args, frozen=draw(st.booleans()), layers=branches)


@st.composite
def stacks(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 10)) for _ in range(rank))
    dtype = "int64" if draw(st.integers(0, 9)) == 0 else "float32"
    layers = draw(st.lists(layer(), min_size=1, max_size=6))
    return ModelSpec(shape, layers, dtype)


def _ids(spec):
    return {layer.id for _, layer in spec.walk()}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(stacks())
def test_random_stack_builds_and_matches_or_names_a_layer(spec):
    info = build.infer(spec)  # must never raise
    event("builds" if info.ok else "rejected")
    if any(layer.type == "Parallel" for _, layer in spec.walk()):
        event("with a Parallel: " + ("builds" if info.ok else "rejected"))
    if not info.ok:
        err = info.error
        assert isinstance(err, LayerError)
        assert err.layer_id in _ids(spec) and f"'{err.layer_id}'" in str(err)
        try:
            build.build_model(spec)
        except LayerError:
            return
        raise AssertionError("build_model accepted a stack that inference rejected")
    model = build.build_model(spec).eval()
    seen = {}
    for path, _ in spec.walk():
        model.get_submodule(path).register_forward_hook(
            lambda m, i, o, path=path: seen.__setitem__(path, tuple(o.shape[1:])))
    with torch.no_grad():
        out = model(build.example_input(spec, batch=2))
    assert tuple(out.shape[1:]) == info.output_shape
    for row in info.rows():
        assert seen[row.path] == row.out_shape, \
            f"{row.path} ({row.type}): inferred {row.out_shape}, real {seen[row.path]}"
    total, trainable = build.param_count(model)
    assert (total, trainable) == (info.total_params, info.trainable_params)
