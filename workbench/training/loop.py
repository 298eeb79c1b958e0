"""The inner loop, free of engine bookkeeping: one training step and one evaluation pass.

``StepRunner`` is what the engine calls per batch and what a torchrun/DDP launcher will
call too: hand it a DDP-wrapped model and a sharded loader (``Parallel``) and nothing else
changes. ``evaluate`` returns plain numbers and small tensors for the epoch event.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.training.optim import predict


@dataclass(frozen=True)
class Parallel:
    """Where this process sits in a multi-process job. The hook for torchrun: rank and
    world size shard the batches (data.EpochBatches); only the main process writes files.
    This base is the single process; workbench.training.distributed.DistributedParallel does DDP."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train with (DDP: the model wrapped in DistributedDataParallel)."""
        return model

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a metric tensor over processes (identity in a single process)."""
        return t

    def reduce_steps(self, losses: torch.Tensor, meta: list[tuple[float, int]]):
        """The losses of the steps since the last read-out as floats, their (lr, examples) made
        global, and whether any process asked to stop (an agreed stop under DDP)."""
        return losses.tolist(), meta, False

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The module to validate with (DDP: the unwrapped one, with rank 0's buffers)."""
        return model

    def gather(self, obj) -> list:
        """Every process's ``obj``, in rank order."""
        return [obj]


class NonFiniteLoss(Exception):
    def __init__(self, step: int, value: float):
        super().__init__(f"loss {value} at step {step}")
        self.step, self.value = step, value


class StepWatch:
    """Looks inside the steps the engine chooses (``Engine.watch_steps``; workbench.insight.health
    is one): every ``every``-th step is run with the watch, the others never see it. Called in
    the engine's thread, on the main process only."""

    every: int = 0  # steps between watched steps (the first step is watched too); 0: none

    def begin(self) -> None:
        """Before the forward pass: hooks on, the weights before the update kept."""

    def gradients(self) -> None:
        """After the backward pass, before clipping and the update; mixed precision's scale
        already taken out of the gradients."""

    def end(self) -> None:
        """After the update, or after a failure inside the step: hooks off."""


class StepRunner:
    """One optimiser step on a batch: returns the loss as a detached tensor (no host sync)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: nn.Module,
                 device: torch.device, grad_clip: float | None = None, amp_dtype: torch.dtype | None = None,
                 scaler: torch.amp.GradScaler | None = None, non_blocking: bool = False):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.device, self.grad_clip, self.amp_dtype, self.scaler = device, grad_clip, amp_dtype, scaler
        self.non_blocking = non_blocking
        self.move = device.type != "cpu"
        self.updating = False  # True while optimizer.step runs: a failure there may leave weights half-updated

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, watch: StepWatch | None = None) -> torch.Tensor:
        if watch is not None:
            watch.begin()
            try:
                return self._step(x, y, watch)
            finally:
                watch.end()
        return self._step(x, y, None)

    def _step(self, x: torch.Tensor, y: torch.Tensor, watch: StepWatch | None) -> torch.Tensor:
        if self.move:
            x = x.to(self.device, non_blocking=self.non_blocking)
            y = y.to(self.device, non_blocking=self.non_blocking)
        opt = self.optimizer
        opt.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.loss_fn(self.model(x), y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None or watch is not None:
                self.scaler.unscale_(opt)  # once per step: scaler.step knows and does not unscale again
            if watch is not None:
                watch.gradients()
            if self.grad_clip is not None:
                self._clip()
            self.updating = True
            self.scaler.step(opt)
            self.scaler.update()
        else:
            loss.backward()
            if watch is not None:
                watch.gradients()
            if self.grad_clip is not None:
                self._clip()
            self.updating = True
            opt.step()
        self.updating = False
        return loss.detach()

    def clear_update(self) -> bool:
        """After a failure: True when it came inside the optimiser step (the weights may be
        half-updated, so the caller puts good ones back). Clears the mark."""
        interrupted, self.updating = self.updating, False
        return interrupted

    def _clip(self) -> None:
        params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, self.grad_clip)


class GoodWeights:
    """The weights to fall back on when a step goes wrong, kept on the model's device.

    ``confirm(step)`` is called when every loss up to ``step`` was finite. Two copies are
    kept: a candidate (the weights after the last confirmed step) and the last known good
    (weights whose next loss was finite). Weights after step k are good only once step k+1's
    loss is known to be finite, so a NaN right after a confirmation falls back one further.
    """

    def __init__(self, model: nn.Module, step: int):
        self.live = list(model.state_dict().values())
        self.good = [t.detach().clone() for t in self.live]
        self.cand = [t.detach().clone() for t in self.live]
        self.good_step = self.cand_step = step

    def confirm(self, step: int) -> None:
        # No finiteness check of the weights is needed: the candidate only becomes "good"
        # after the next losses came out finite, which non-finite weights cannot give.
        self.good, self.cand = self.cand, self.good
        self.good_step = self.cand_step
        with torch.no_grad():
            torch._foreach_copy_(self.cand, self.live)
        self.cand_step = step

    def restore_before(self, bad_step: int) -> int:
        """Put back the newest weights known to give a finite loss before ``bad_step``."""
        src, step = (self.cand, self.cand_step) if bad_step > self.cand_step + 1 else (self.good, self.good_step)
        with torch.no_grad():
            torch._foreach_copy_(self.live, src)
        return step

    def restore_latest(self) -> int:
        """Put back the weights of the last confirmed step (after a failure inside a step)."""
        with torch.no_grad():
            torch._foreach_copy_(self.live, self.cand)
        return self.cand_step


@dataclass
class Evaluation:
    loss: float
    acc: float | None
    per_class: list[float | None]
    confusion: list[list[int]]
    mistakes: list[tuple[int, int, int, float]]  # (index, true, predicted, confidence)
    # every example's prediction and its confidence, on the device in the loader's order (one process,
    # classes only): the window's sample grid reads its picks here instead of predicting them again
    predicted: torch.Tensor | None = None
    confidence: torch.Tensor | None = None


def evaluate(runner: StepRunner, loader, num_classes: int | None, loss_name: str,
             parallel: Parallel = Parallel(), worst: int = 5,
             stop: Callable[[], bool] | None = None) -> Evaluation | None:
    """Loss over the whole loader (example-weighted) and, for classes, accuracy, the confusion
    matrix and the ``worst`` most confident mistakes. Leaves the model in eval mode.
    ``stop`` is asked between two batches (one process only: under DDP every process must
    finish the pass); when it says yes the pass is abandoned and None returned.

    Per batch only the forward pass, the loss and one max over the class scores run; the
    rest is done once over the whole split (a handful of ops instead of ~20 per batch)."""
    model = parallel.eval_model(runner.model)
    model.eval()
    device = runner.device
    classes = num_classes or 0
    losses, sizes, preds, confs, targets = [], [], [], [], []
    with torch.no_grad():
        for x, y in loader:
            if stop is not None and parallel.world_size == 1 and stop():
                return None
            if runner.move:
                x, y = x.to(device, non_blocking=runner.non_blocking), y.to(device, non_blocking=runner.non_blocking)
            with runner.autocast():
                out = model(x)
                losses.append(runner.loss_fn(out, y))
            sizes.append(len(y))
            if classes:
                pred, conf = predict(out, loss_name)
                preds.append(pred)
                confs.append(conf)
                targets.append(y)
    if not sizes and parallel.world_size == 1:  # under DDP an empty shard still joins the sums
        return Evaluation(float("nan"), None, [], [], [])
    weights = torch.tensor(sizes, dtype=torch.float64, device=device)
    loss_sum = parallel.sum(torch.stack(losses).double() @ weights if sizes else weights.sum())
    loss_value = float(loss_sum / parallel.sum(weights.sum()).clamp(min=1))
    if not classes:
        return Evaluation(loss_value, None, [], [], [])
    if not sizes:
        preds, confs, targets = [torch.zeros(0, dtype=torch.long, device=device)], [torch.zeros(0, device=device)], \
            [torch.zeros(0, dtype=torch.long, device=device)]
    pred, conf, y = torch.cat(preds), torch.cat(confs), torch.cat(targets)
    matrix = parallel.sum(torch.bincount(y * classes + pred, minlength=classes * classes)).view(classes, classes).cpu()
    correct, per_row = matrix.diag(), matrix.sum(dim=1)
    acc = float(correct.sum()) / max(1, int(per_row.sum()))
    per_class = [float(c) / int(r) if int(r) else None for c, r in zip(correct, per_row)]
    wrong_conf = torch.where(pred != y, conf, -1.0)
    top = torch.topk(wrong_conf, min(worst, len(wrong_conf)))
    index = loader.batch_sampler.indices() if parallel.world_size > 1 else None  # this shard's examples
    mistakes = [(int(i) if index is None else index[i], int(y[i]), int(pred[i]), float(c))
                for c, i in zip(top.values.tolist(), top.indices.tolist()) if c >= 0]
    if parallel.world_size > 1:
        mistakes = sorted((m for part in parallel.gather(mistakes) for m in part), key=lambda m: -m[3])[:worst]
        return Evaluation(loss_value, acc, per_class, matrix.tolist(), mistakes)
    return Evaluation(loss_value, acc, per_class, matrix.tolist(), mistakes, pred, conf)


def resolve_device(name: str | None) -> torch.device:
    name = name or "auto"
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise WorkbenchError(f"device {name!r} was asked for but PyTorch sees no CUDA GPU here; set "
                                 "training.device to auto or cpu (or use --device cpu)")
        index = int(name[5:]) if name.startswith("cuda:") else 0
        if index >= torch.cuda.device_count():
            raise WorkbenchError(f"device {name!r}: there are {torch.cuda.device_count()} CUDA GPU(s); "
                                 "choose cuda:0 .. cuda:" + str(torch.cuda.device_count() - 1))
        return torch.device("cuda", index)
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise WorkbenchError("device 'mps' was asked for but Apple's Metal backend is not available; "
                                 "set training.device to auto or cpu")
    if name not in ("cpu", "mps"):
        raise WorkbenchError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return torch.device(name)
