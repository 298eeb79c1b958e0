"""The learning-rate finder: Smith's range test, as Lightning's ``Tuner.lr_find`` and fastai's
``lr_find`` run it.

The learning rate grows exponentially from ``start`` (1e-7) to ``end`` (10) over ``steps``
(100) optimiser steps of the project's own training step (``training.loop.StepRunner``: its
model, data, loss, optimiser type and arguments, gradient clipping), one training batch a step.
The loss is smoothed with an exponential moving average (beta 0.98, bias-corrected, as both
libraries do); the test stops early when the loss diverges: a non-finite loss, or a smoothed
loss above ``DIVERGE`` (4) times the best seen (Lightning's ``early_stop_threshold``).

The suggestion is the **steepest descent of the smoothed curve**: the point where the smoothed
loss falls fastest per decade of learning rate (the most negative ``d loss / d log10(lr)``,
fastai's "steep" rule), leaving out the first ``SKIP_BEGIN`` (10) points and the last
``SKIP_END`` (1) as Lightning's ``suggestion()`` does. Lightning takes the slope against the
learning rate itself; against its logarithm the spacing of the ramp is even, so no end of the
curve is favoured. With fewer than two points left there is no suggestion (None).

``lr_find`` never changes the weights it is given: the model's ``state_dict`` (buffers such
as BatchNorm statistics included), the optimiser's state, the model's train / eval mode and
torch's random generator are put back afterwards, whatever happens (a test checks the
``state_dict`` is bitwise the same). ``find_for_project`` builds the model as a run does
(seeded with ``training.seed``) and runs the test on it.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from workbench import fileio
from workbench.errors import WorkbenchError

START, END, STEPS = 1e-7, 10.0, 100
BETA = 0.98  # smoothing of the loss (fastai, Lightning)
DIVERGE = 4.0  # stop once the smoothed loss is this many times the best one
SKIP_BEGIN, SKIP_END = 10, 1  # points the suggestion leaves out at each end (Lightning)
RULE = "steepest descent of the smoothed loss per decade of learning rate"


@dataclass
class LrCurve:
    """The range test's result: one entry per step taken."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # as measured (may end with inf / nan)
    smoothed: list[float] = field(default_factory=list)
    suggestion: float | None = None
    suggestion_index: int | None = None
    ended: str = "end"  # "end" (the ramp reached end), "diverged" or "stopped" (asked to stop)
    steps: int = STEPS  # steps planned

    def summary(self) -> str:
        """One line for a person: the suggestion and how the test ended."""
        how = {"end": f"ran all {self.steps} steps",
               "diverged": f"the loss diverged at step {len(self.lrs)} (lr {self.lrs[-1]:.2g})" if self.lrs else "",
               "stopped": f"stopped at step {len(self.lrs)}"}[self.ended]
        if self.suggestion is None:
            return (f"no suggestion: only {len(self.lrs)} steps before the end ({how}); "
                    "start lower or take more steps")
        return (f"suggested learning rate {self.suggestion:.2g} ({RULE}, step {self.suggestion_index + 1}); "
                f"{how}")

    def to_csv(self) -> str:
        lines = ["step,lr,loss,smoothed_loss"]
        lines += [f"{i + 1},{lr:.6g},{loss:.6g},{s:.6g}"
                  for i, (lr, loss, s) in enumerate(zip(self.lrs, self.losses, self.smoothed))]
        return "\n".join(lines) + "\n"

    def write_csv(self, path: Path | str) -> Path:
        """The curve as CSV (step, lr, loss, smoothed_loss), written atomically."""
        fileio.write_text(path, self.to_csv())
        return Path(path)


def check_range(start: float, end: float, steps: int) -> None:
    """WorkbenchError naming the bad value of a range test's start, end or steps."""
    for name, value in (("start", start), ("end", end)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise WorkbenchError(f"the learning-rate finder's {name} must be a number above 0, got {value!r}")
    if end <= start:
        raise WorkbenchError(f"the learning-rate finder's end ({end:g}) must be above its start ({start:g})")
    if not isinstance(steps, int) or isinstance(steps, bool) or not 2 <= steps <= 100000:
        raise WorkbenchError(f"the learning-rate finder's steps must be a whole number from 2 to 100000, got {steps!r}")


def ramp(start: float, end: float, steps: int) -> list[float]:
    """The exponential ramp: ``steps`` rates from ``start`` to ``end`` (both included)."""
    ratio = end / start
    return [start * ratio ** (i / (steps - 1)) for i in range(steps)]


def suggest(lrs: list[float], smoothed: list[float]) -> int | None:
    """The index of the steepest descent of ``smoothed`` against log10(lr) (see the module
    docstring), or None with fewer than two usable points."""
    points = [(i, math.log10(lr), s) for i, (lr, s) in enumerate(zip(lrs, smoothed))
              if SKIP_BEGIN <= i < len(lrs) - SKIP_END and math.isfinite(s)]
    if len(points) < 2:
        return None
    best, best_slope = None, math.inf
    for k, (i, x, y) in enumerate(points):  # central differences inside, one-sided at the ends (np.gradient)
        left, right = points[max(0, k - 1)], points[min(len(points) - 1, k + 1)]
        if right[1] == left[1]:
            continue
        slope = (right[2] - left[2]) / (right[1] - left[1])
        if slope < best_slope:
            best, best_slope = i, slope
    return best


def lr_find(model: nn.Module, optimizer: torch.optim.Optimizer, batches, step: Callable, *,
            start: float = START, end: float = END, steps: int = STEPS,
            stop: Callable[[], bool] | None = None,
            progress: Callable[[int, float, float, float], None] | None = None) -> LrCurve:
    """Run the range test. ``batches()`` gives an iterator of (x, y) training batches (called
    again when one runs out); ``step(x, y)`` makes one optimiser step and returns the loss (a
    tensor or number). Each optimiser group's rate is set to the ramp's value times its share of
    the first group's rate (``lr_scale`` keeps its ratios). ``stop()`` is asked before each step;
    ``progress(index, lr, loss, smoothed)`` hears each one. The weights, optimiser state, mode
    and random generator are restored afterwards (see the module docstring)."""
    check_range(start, end, steps)
    saved_model = _copy_state(model.state_dict())
    saved_optimizer = _copy_state(optimizer.state_dict())
    saved_groups = [dict((k, v) for k, v in g.items() if k != "params") for g in optimizer.param_groups]
    saved_modes = {name: m.training for name, m in model.named_modules()}
    saved_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    base = saved_groups[0]["lr"] or 1.0
    shares = [(g["lr"] / base) if base else 1.0 for g in saved_groups]
    curve = LrCurve(steps=steps)
    try:
        model.train()
        it = iter(batches())
        avg, best = 0.0, math.inf
        for i, lr in enumerate(ramp(start, end, steps)):
            if stop is not None and stop():
                curve.ended = "stopped"
                break
            for group, share in zip(optimizer.param_groups, shares):
                group["lr"] = lr * share
            try:
                x, y = next(it)
            except StopIteration:
                it = iter(batches())
                try:
                    x, y = next(it)
                except StopIteration:
                    raise WorkbenchError("the learning-rate finder has no training batches: the training "
                                         "data is empty") from None
            loss = float(step(x, y))
            avg = BETA * avg + (1 - BETA) * loss if math.isfinite(loss) else math.inf
            smoothed = avg / (1 - BETA ** (i + 1)) if math.isfinite(avg) else math.inf
            curve.lrs.append(lr)
            curve.losses.append(loss)
            curve.smoothed.append(smoothed)
            if progress is not None:
                progress(i, lr, loss, smoothed)
            if not math.isfinite(smoothed) or (i > 0 and smoothed > DIVERGE * best):
                curve.ended = "diverged"
                break
            best = min(best, smoothed)
    finally:
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        for group, old in zip(optimizer.param_groups, saved_groups):
            group.update(old)
        for name, m in model.named_modules():
            m.training = saved_modes.get(name, m.training)
        torch.set_rng_state(saved_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    index = suggest(curve.lrs, curve.smoothed)
    if index is not None:
        curve.suggestion, curve.suggestion_index = curve.lrs[index], index
    return curve


def _copy_state(state: dict) -> dict:
    """A deep copy of a state_dict (its tensors cloned, wherever they are)."""
    return copy.deepcopy(state)


def find_for_project(project, *, start: float = START, end: float = END, steps: int = STEPS,
                     device: str | None = None, stop: Callable[[], bool] | None = None,
                     progress: Callable[[int, float, float, float], None] | None = None) -> LrCurve:
    """The range test on a project: its data (training split), its model built as a run builds
    it (seeded with ``training.seed``), its loss, optimiser type and arguments, gradient clip.
    Nothing of the project changes. Raises WorkbenchError for what a run would refuse."""
    from workbench.data import bundle as data
    from workbench.model import build
    from workbench.training import optim
    from workbench.training.loop import StepRunner, resolve_device

    check_range(start, end, steps)
    s = project.training
    dev = resolve_device(device or s.device)
    bundle = data.load_data(project.data)
    task = bundle.task
    loss_name = task.default_loss if s.loss == "auto" else s.loss
    data.check_fit(project.model, task, loss_name)
    if dev.type == "cpu":
        build.check_memory(build.infer(project.model), batch=project.data.batch_size)
    torch.manual_seed(s.seed)
    model = build.build_model(project.model).to(dev)
    optimizer = optim.make_optimizer(model, s.optimizer)
    shape = build.infer(project.model).output_shape
    loss_fn = optim.make_loss(loss_name, task.is_classification, s.loss_options,
                              task.num_classes if task.is_classification else None,
                              int(shape[-1]) if shape else None).to(dev)
    runner = StepRunner(model, optimizer, loss_fn, dev, s.grad_clip)
    loader = bundle.loader("train", seed=s.seed, device=dev)
    epoch = [0]

    def batches():
        loader.batch_sampler.set_epoch(epoch[0])
        loader.generator.manual_seed(s.seed * 1_000_003 + epoch[0])
        epoch[0] += 1
        return iter(loader)

    return lr_find(model, optimizer, batches, runner, start=start, end=end, steps=steps, stop=stop,
                   progress=progress)
