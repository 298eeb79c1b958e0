"""Optimisers, learning-rate schedules and losses from a project's ``training`` settings."""
from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import WorkbenchError
from workbench.project.settings import OptimizerSettings, TrainingSettings


def make_optimizer(params: Iterable[nn.Parameter], o: OptimizerSettings) -> torch.optim.Optimizer:
    """Every parameter goes in, frozen ones too: they have no gradient, so the update rule
    (weight decay and momentum included) skips them until they are unfrozen."""
    kind, lr, wd = o.type, o.lr, o.weight_decay
    params = list(params)
    if kind == "SGD":
        if o.nesterov and o.momentum <= 0:
            raise WorkbenchError("Nesterov momentum needs momentum > 0; set optimizer.momentum (e.g. 0.9) "
                                 "or turn nesterov off")
        return torch.optim.SGD(params, lr=lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=wd)
    if kind in ("Adam", "AdamW"):
        return getattr(torch.optim, kind)(params, lr=lr, betas=(o.beta1, o.beta2), weight_decay=wd)
    if kind == "RMSprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=o.momentum, weight_decay=wd)
    raise WorkbenchError(f"unknown optimizer {kind!r}; use SGD, Adam, AdamW or RMSprop")


def make_scheduler(opt: torch.optim.Optimizer, settings: TrainingSettings, steps_per_epoch: int):
    """(scheduler or None, stepped per optimiser step?). step and cosine move once per epoch,
    one-cycle once per step over the whole run (``settings.epochs`` epochs)."""
    s, epochs = settings.schedule, settings.epochs
    kind = s.type
    if kind == "none":
        return None, False
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma), False
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs)), False
    if kind == "onecycle":
        max_lr = s.max_lr if s.max_lr is not None else 10 * settings.optimizer.lr
        total = max(1, epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total), True
    raise WorkbenchError(f"unknown schedule {kind!r}; use none, step, cosine or onecycle")


def current_lr(opt: torch.optim.Optimizer) -> float:
    return float(opt.param_groups[0]["lr"])


def set_lr(opt: torch.optim.Optimizer, scheduler, lr: float) -> None:
    """Change the learning rate now. With a schedule, the whole schedule is scaled so it
    keeps its shape from the new value on."""
    if not (lr > 0 and math.isfinite(lr)):
        raise WorkbenchError(f"the learning rate must be a positive number, got {lr!r}")
    now = current_lr(opt)
    factor = lr / now if now > 0 else None
    for group in opt.param_groups:
        group["lr"] = lr if factor is None else group["lr"] * factor
        for key in ("initial_lr", "max_lr", "min_lr"):
            if key in group:
                group[key] = lr if factor is None else group[key] * factor
    if scheduler is not None:
        scheduler.base_lrs = [lr if factor is None else b * factor for b in scheduler.base_lrs]
        scheduler._last_lr = [g["lr"] for g in opt.param_groups]


# ---------------------------------------------------------------- losses

class _ClassBCE(nn.Module):
    """BCEWithLogitsLoss on class indices: one logit for two classes, else one per class."""

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.shape[1] == 1:
            target = y.to(out.dtype).unsqueeze(1)
        else:
            target = F.one_hot(y, out.shape[1]).to(out.dtype)
        return F.binary_cross_entropy_with_logits(out, target)


def make_loss(name: str, classification: bool) -> nn.Module:
    if name == "BCEWithLogitsLoss" and classification:
        return _ClassBCE()
    try:
        return getattr(nn, name)()
    except AttributeError:
        raise WorkbenchError(f"unknown loss {name!r}") from None


def predict(out: torch.Tensor, loss_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted class, the probability the model gives it) for each output row."""
    out = out.float()
    if loss_name == "BCEWithLogitsLoss" and out.shape[1] == 1:
        p1 = torch.sigmoid(out[:, 0])
        pred = (p1 > 0.5).long()
        return pred, torch.where(pred == 1, p1, 1 - p1)
    if loss_name == "NLLLoss":
        conf, pred = out.max(dim=1)
        return pred, conf.exp()
    if loss_name == "BCEWithLogitsLoss":
        conf, pred = out.max(dim=1)
        return pred, torch.sigmoid(conf)
    conf, pred = torch.softmax(out, dim=1).max(dim=1)
    return pred, conf
