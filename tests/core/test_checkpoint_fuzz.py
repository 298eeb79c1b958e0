"""Fuzz: checkpoints with entries deleted or replaced by values of any kind (issue 12, "prove
it"). Each mutated checkpoint goes through checkpoint.load, then what a resume does with it
(TrainingState.load_state_dict, set_rng_state) and one training step. The only outcomes
allowed are success and a WorkbenchError naming the file."""
from __future__ import annotations

import io
import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import WorkbenchError
from workbench.training import checkpoint
from workbench.training.state import RunShape, TrainingState, rng_state, set_rng_state

# per setup: 1,400 mutated checkpoints a run, about 30 s on two cores (WORKBENCH_FUZZ_SCALE=N: N times more)
EXAMPLES = 700 * int(os.environ.get("WORKBENCH_FUZZ_SCALE", "1"))


def make_state(kind: str) -> TrainingState:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    if kind == "adam-step":
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        sched, per_step = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5), False
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        sched, per_step = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=20), True
    shape = RunShape(epochs=2, steps_per_epoch=10, batch_size=4, world_size=1,
                     spec={"input": {"shape": [3]}, "layers": []}, task={"train_size": 40})
    return TrainingState(model, opt, sched, per_step, None, shape)


def one_step(state: TrainingState) -> None:
    state.optimizer.zero_grad()
    state.model(torch.ones(2, 3)).sum().backward()
    state.optimizer.step()
    state.scheduler.step()
    state.position.step += 1  # as the engine counts them


def base_checkpoint(kind: str) -> dict:
    state = make_state(kind)
    for _ in range(3):  # optimizer and schedule states with something in them
        one_step(state)
    return {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, **state.state_dict()}


BASES = {kind: base_checkpoint(kind) for kind in ("adam-step", "sgd-onecycle")}


def paths(obj, prefix=()):
    """Every place inside the checkpoint (dict keys and list indices; not inside tensors)."""
    out = []
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, (list, tuple)):
        items = list(enumerate(obj))
    else:
        return out
    for key, value in items:
        out.append(prefix + (key,))
        out.extend(paths(value, prefix + (key,)))
    return out


DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8,
          torch.int8, torch.bool, torch.complex64]


@st.composite
def tensors(draw):
    shape = draw(st.lists(st.integers(0, 5), max_size=3))
    dtype = draw(st.sampled_from(DTYPES))
    kind = draw(st.sampled_from(["plain", "plain", "meta", "sparse", "expanded"]))
    if kind == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    t = torch.zeros(shape, dtype=dtype)
    if kind == "sparse" and t.dim() > 0 and dtype not in (torch.bool,):
        return t.to_sparse()
    if kind == "expanded":
        return torch.zeros(1, dtype=dtype).expand(2 ** 20, 2 ** 20)
    return t


values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(), st.text(max_size=6),
              tensors()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3),
                            st.tuples(inner, inner)),
    max_leaves=5)


def mutate(base: dict, edits) -> dict:
    import copy

    state = copy.deepcopy(base)
    for pick, action, value in edits:
        places = paths(state)
        if not places:
            break
        place = places[pick % len(places)]
        parent = state
        for key in place[:-1]:
            parent = parent[key]
        key = place[-1]
        if isinstance(parent, tuple):
            continue
        if action == "delete" and isinstance(parent, dict):
            del parent[key]
        elif action == "negate" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            parent[key] = -parent[key] - 1
        else:
            parent[key] = value
    return state


def resume(path, kind: str) -> None:
    saved = checkpoint.load(path)
    state = make_state(kind)
    state.load_state_dict(saved, source=str(path))
    before = rng_state()
    try:
        set_rng_state(saved["rng"])
        one_step(state)
    finally:
        set_rng_state(before)


@pytest.mark.parametrize("kind", list(BASES))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
@given(edits=st.lists(st.tuples(st.integers(0, 10 ** 6), st.sampled_from(["delete", "replace", "negate"]), values),
                      min_size=1, max_size=3))
def test_mutated_checkpoints_load_resume_and_step_or_say_what_is_wrong(tmp_path_factory, kind, edits):
    path = tmp_path_factory.getbasetemp() / f"fuzz-{kind}.ckpt"
    buf = io.BytesIO()
    torch.save(mutate(BASES[kind], edits), buf)
    path.write_bytes(buf.getvalue())
    try:
        resume(path, kind)
    except WorkbenchError as exc:
        assert str(path) in str(exc) or "checkpoint" in str(exc), exc


def test_the_unchanged_checkpoints_resume(tmp_path):
    for kind, base in BASES.items():
        torch.save(base, tmp_path / "c.ckpt")
        resume(tmp_path / "c.ckpt", kind)
    assert math.isfinite(float(BASES["adam-step"]["optimizer"]["param_groups"][0]["lr"]))
