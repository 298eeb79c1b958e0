"""How long each row of the stack takes to train: forward and backward time per layer, measured
on a device with ``torch.profiler``.

``profile(spec, batch, device)`` builds the model with real (random) weights on the device and
runs forward + backward on an example batch: ``warmup`` steps first (kernel selection, caches,
lazy CUDA set-up), then ``repeats`` steps inside ``torch.profiler.profile``. Module hooks open a
``record_function`` range around every row's forward (forward pre-hook to forward hook) and
backward (full backward pre-hook, when the gradient of its output is ready, to full backward
hook, when the gradient of its input is); a row's time is the median of its ranges over the
repeats. On CUDA each hook synchronises the device first, so a range holds its kernels' run
time rather than their launch (the whole step runs a little slower than unhooked; the
figures rank layers, they are not a step-time benchmark).

Details that keep the figures honest:
- the input batch requires a gradient, so the first layer's backward (its weight gradients
  are computed with its input's) is inside its range;
- ``inplace`` activations run out of place: backward hooks cannot wrap an output modified in
  place, and the copy it saves is negligible next to the layers that matter;
- the loss is the mean of the output (the loss function's own time is not a layer's);
- a nested row's time is inside its block's row too: ``top`` ranks only rows without nested rows.

Nothing here touches the project: the model is built from the spec, so a caller may profile
while the user edits (the window profiles a copy of the spec).
"""
from __future__ import annotations

import statistics
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile as torch_profile, record_function

from workbench.errors import WorkbenchError
from workbench.model import build
from workbench.model.spec import ModelSpec
from workbench.training.loop import resolve_device

_FORWARD, _BACKWARD = "workbench.forward:", "workbench.backward:"


class Stopped(WorkbenchError):
    """The caller's ``stop()`` said to stop before the measurement ended."""


@dataclass(frozen=True)
class LayerLatency:
    """Median milliseconds of one row per training step at the report's batch."""

    path: str
    forward_ms: float
    backward_ms: float

    @property
    def total_ms(self) -> float:
        return self.forward_ms + self.backward_ms


@dataclass(frozen=True)
class LatencyReport:
    device: str
    batch: int
    repeats: int
    layers: dict[str, LayerLatency]  # module path -> times, rows in forward order
    step_ms: float  # median forward + backward of the whole model (hooks included)

    def leaves(self) -> list[LayerLatency]:
        """Rows without nested rows (a block's time is the sum of its rows and the addition)."""
        paths = list(self.layers)
        return [self.layers[p] for p in paths if not any(q.startswith(p + ".") for q in paths)]

    def top(self, n: int = 3) -> list[LayerLatency]:
        """The ``n`` slowest rows (forward + backward), slowest first."""
        return sorted(self.leaves(), key=lambda t: -t.total_ms)[:n]

    def longest_ms(self) -> float:
        return max((t.total_ms for t in self.layers.values()), default=0.0)

    def share(self, path: str) -> float:
        """A row's time as a fraction of the whole step."""
        t = self.layers.get(path)
        return 0.0 if t is None or self.step_ms <= 0 else t.total_ms / self.step_ms

    def to_dict(self) -> dict:
        return {"device": self.device, "batch": self.batch, "repeats": self.repeats, "step_ms": self.step_ms,
                "layers": {p: {"forward_ms": t.forward_ms, "backward_ms": t.backward_ms}
                           for p, t in self.layers.items()}}


def profile(spec: ModelSpec, batch: int = 32, device: str = "cpu", warmup: int = 2, repeats: int = 5,
            stop: Callable[[], bool] | None = None) -> LatencyReport:
    """Forward and backward time per row of ``spec`` at ``batch`` on ``device`` (``auto``: the
    best here), the median of ``repeats`` steps after ``warmup``. A model with a problem raises
    its ``LayerError``; a device that is not here raises ``WorkbenchError``; ``stop()`` returning
    True raises ``Stopped`` between steps."""
    if batch < 1 or repeats < 1 or warmup < 0:
        raise WorkbenchError(f"profile needs a batch and repeats of at least 1 (batch {batch}, repeats {repeats})")
    info = build.check(spec)
    dev = resolve_device(device)
    sync = dev.type == "cuda"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = build.build_model(spec).to(dev).train()
    for module in model.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    paths = [row.path for row in info.rows()]
    x = build.example_input(spec, batch).to(dev)
    if x.is_floating_point():
        x.requires_grad_(True)
    ranges: dict[str, record_function] = {}

    def enter(name: str) -> None:
        if sync:
            torch.cuda.synchronize(dev)
        ranges[name] = record_function(name).__enter__()

    def leave(name: str) -> None:
        if sync:
            torch.cuda.synchronize(dev)
        found = ranges.pop(name, None)
        if found is not None:
            found.__exit__(None, None, None)

    handles = []
    for path in paths:
        module = model.get_submodule(path)
        fwd, bwd = _FORWARD + path, _BACKWARD + path
        handles += [module.register_forward_pre_hook(lambda m, a, n=fwd: enter(n)),
                    module.register_forward_hook(lambda m, a, o, n=fwd: leave(n)),
                    module.register_full_backward_pre_hook(lambda m, g, n=bwd: enter(n)),
                    module.register_full_backward_hook(lambda m, gi, go, n=bwd: leave(n))]

    def step() -> None:
        if stop is not None and stop():
            raise Stopped("profiling was stopped")
        model.zero_grad(set_to_none=True)
        if x.grad is not None:
            x.grad = None
        out = model(x)
        out.float().mean().backward()
        if sync:
            torch.cuda.synchronize(dev)

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if sync else [])
    try:
        for _ in range(warmup):
            step()
        with torch_profile(activities=activities) as prof:
            for _ in range(repeats):
                with record_function("workbench.step"):
                    step()
    finally:
        for handle in handles:
            handle.remove()
        for found in ranges.values():  # a step that raised mid-range
            found.__exit__(None, None, None)
    times: dict[str, list[float]] = {}
    for event in prof.events():
        if event.name.startswith(("workbench.", )):
            times.setdefault(event.name, []).append(event.cpu_time_total / 1000.0)

    def median(name: str) -> float:
        values = times.get(name)
        return statistics.median(values) if values else 0.0
    layers = {p: LayerLatency(p, median(_FORWARD + p), median(_BACKWARD + p)) for p in paths}
    return LatencyReport(str(dev), batch, repeats, layers, median("workbench.step"))


def milliseconds(ms: float | None) -> str:
    """0.01234 -> '12.3 µs', 1.5 -> '1.50 ms', 1234 -> '1.23 s' (compact, three figures)."""
    if ms is None:
        return ""
    if ms < 0.9995:  # 0.9997 ms is '1 ms', not '1e+03 µs'
        return f"{ms * 1000:.3g} µs"
    if ms < 999.5:
        return f"{ms:.3g} ms"
    return f"{ms / 1000:.3g} s"


def top_text(report: LatencyReport, n: int = 3) -> str:
    """'slowest: conv2 41% (2.10 ms), fc 20% (1.02 ms), conv1 12% (0.61 ms)'."""
    parts = [f"{t.path} {report.share(t.path):.0%} ({milliseconds(t.total_ms)})" for t in report.top(n)]
    return "slowest: " + ", ".join(parts) if parts else "no layers"


__all__ = ["LayerLatency", "LatencyReport", "Stopped", "profile", "milliseconds", "top_text"]
