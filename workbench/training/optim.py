"""Optimisers, learning-rate schedules and losses from a project's ``training`` settings."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import WorkbenchError
from workbench.project.settings import (NOT_OFFERED, OLD_SCHEDULES, OPTIMIZERS, SCHEDULES, LossSettings,
                                        OptimizerSettings, TrainingSettings, optimizer_arguments)


_TORCH_NAMES = {"beta parameter at index 0": "beta1", "beta parameter at index 1": "beta2",
                "learning rate": "lr", "epsilon": "eps", "Nesterov": "nesterov"}


def param_groups(model: nn.Module | Iterable[nn.Parameter], o: OptimizerSettings) -> list:
    """The optimiser's parameters: all in one group, or with ``lr_scale`` one group per scaled
    layer or stage (its lr = lr x factor; the longest matching path wins) after the group of
    the rest. Every parameter goes in, frozen ones too: they have no gradient, so the update
    rule (weight decay and momentum included) skips them until they are unfrozen."""
    if not o.lr_scale:
        return list(model.parameters() if isinstance(model, nn.Module) else model)
    if not isinstance(model, nn.Module):
        raise WorkbenchError("training.optimizer.lr_scale needs the model, not a list of parameters")
    for key in o.lr_scale:
        try:
            model.get_submodule(key)
        except AttributeError:
            raise WorkbenchError(f"training.optimizer.lr_scale.{key}: no layer or backbone stage {key!r} in the "
                                 "model; use a layer id (a nested one as 'block.inner') or a stage "
                                 "('backbone.layer4')") from None
    keys = sorted(o.lr_scale, key=len, reverse=True)
    rest: list[nn.Parameter] = []
    scaled: dict[str, list[nn.Parameter]] = {k: [] for k in o.lr_scale}
    for name, p in model.named_parameters():
        key = next((k for k in keys if name.startswith(k + ".")), None)
        (scaled[key] if key is not None else rest).append(p)
    groups = [{"params": rest}] if rest else []
    groups += [{"params": ps, "lr": o.lr * o.lr_scale[k]} for k, ps in scaled.items() if ps]
    return groups


def make_optimizer(model: nn.Module | Iterable[nn.Parameter], o: OptimizerSettings) -> torch.optim.Optimizer:
    """``torch.optim.<o.type>`` with the arguments set in ``o`` (torch's defaults for the rest).
    A value torch refuses is a WorkbenchError naming the setting."""
    if o.type not in OPTIMIZERS:
        why = NOT_OFFERED.get(o.type, f"unknown optimizer {o.type!r}")
        raise WorkbenchError(f"training.optimizer.type: {why}; use one of {', '.join(OPTIMIZERS)}")
    taken = optimizer_arguments(o.type)
    for p in o.params():
        if p.name not in taken and p.name != "type" and getattr(o, p.name) is not None:
            raise WorkbenchError(f"training.optimizer.{p.name}: {o.type} has no argument {p.name!r} (it takes: "
                                 f"{', '.join(taken)})")
    if o.type == "SGD" and o.nesterov and not (o.momentum or 0) > 0:
        raise WorkbenchError("training.optimizer.nesterov: Nesterov momentum needs momentum > 0; set "
                             "optimizer.momentum (e.g. 0.9) or turn nesterov off")
    groups = param_groups(model, o)
    try:
        return getattr(torch.optim, o.type)(groups, **o.arguments())
    except (ValueError, TypeError, RuntimeError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        name = next((n for words, n in _TORCH_NAMES.items() if words in text), None)
        if name is None:
            found = re.search(r"Invalid (\w+)", text)
            name = found.group(1) if found and found.group(1) in taken else None
        where = f"training.optimizer.{name}" if name else f"training.optimizer ({o.type})"
        raise WorkbenchError(f"{where}: torch refuses it: {text}") from None


@dataclass
class Schedule:
    """The learning-rate schedule of a run. ``scheduler`` is what steps and what checkpoints
    hold (None: a constant rate); ``per_step``: it moves every optimiser step (OneCycleLR and a
    warm-up before it), else once an epoch; ``monitor``: the metric an epoch step passes
    (ReduceLROnPlateau), None for the others; ``parts``: every torch scheduler inside, for
    ``set_lr``."""

    scheduler: object | None = None
    per_step: bool = False
    monitor: str | None = None
    parts: tuple = ()

    def step_epoch(self, metrics: dict[str, float | None]) -> None:
        """End of an epoch (validation done): move an epoch schedule on."""
        if self.scheduler is None or self.per_step:
            return
        if self.monitor is None:
            self.scheduler.step()
            return
        value = metrics.get(self.monitor)
        if value is None:  # no validation data: the training loss
            value = metrics["train_loss"]
        self.scheduler.step(value)


class WarmupThenPlateau:
    """A linear warm-up (LinearLR, stepped per epoch) and then ReduceLROnPlateau on the metric:
    torch's SequentialLR and ChainedScheduler step their parts without a metric, which
    ReduceLROnPlateau needs. ``state_dict`` holds both parts and the epochs done."""

    def __init__(self, warmup: torch.optim.lr_scheduler.LinearLR,
                 plateau: torch.optim.lr_scheduler.ReduceLROnPlateau, warmup_epochs: int):
        self.warmup, self.plateau, self.warmup_epochs, self.done = warmup, plateau, warmup_epochs, 0

    def step(self, metric: float) -> None:
        if self.done < self.warmup_epochs:
            self.warmup.step()
        else:
            self.plateau.step(metric)
        self.done += 1

    def get_last_lr(self) -> list[float]:
        return (self.warmup if self.done < self.warmup_epochs else self.plateau).get_last_lr()

    def state_dict(self) -> dict:
        return {"warmup": self.warmup.state_dict(), "plateau": self.plateau.state_dict(), "done": self.done}

    def load_state_dict(self, state: dict) -> None:
        self.warmup.load_state_dict(state["warmup"])
        self.plateau.load_state_dict(state["plateau"])
        self.done = int(state["done"])


def make_schedule(opt: torch.optim.Optimizer, settings: TrainingSettings, steps_per_epoch: int) -> Schedule:
    """The schedule ``settings.schedule`` describes. Epoch schedulers move once an epoch;
    OneCycleLR once a step over the whole run (``settings.epochs`` epochs); a warm-up of
    ``warmup_epochs`` comes first (LinearLR from ``warmup_start_factor`` x lr up to lr), joined
    with SequentialLR (with ReduceLROnPlateau: ``WarmupThenPlateau``). Version-1 names (step,
    cosine, onecycle) are still understood."""
    s, epochs = settings.schedule, settings.epochs
    kind = OLD_SCHEDULES.get(s.type, s.type)
    lrs = torch.optim.lr_scheduler
    per_step = kind == "OneCycleLR"
    unit = steps_per_epoch if per_step else 1  # warm-up length in scheduler steps
    warm = s.warmup_epochs * unit
    if kind == "none" and not warm:
        return Schedule()
    sched_gamma = {} if s.gamma is None else {"gamma": s.gamma}
    given = {name: getattr(s, name) for name in ("eta_min", "T_mult", "pct_start", "anneal_strategy", "div_factor",
                                                 "final_div_factor", "three_phase", "factor", "patience",
                                                 "threshold", "threshold_mode", "cooldown", "min_lr", "power")
             if getattr(s, name) is not None}
    rest = max(1, epochs - s.warmup_epochs)
    warmup = lrs.LinearLR(opt, start_factor=s.warmup_start_factor, end_factor=1.0, total_iters=warm) if warm else None
    try:
        if kind == "none":
            main = lrs.ConstantLR(opt, factor=1.0, total_iters=0)
        elif kind == "StepLR":
            main = lrs.StepLR(opt, step_size=s.step_size, **sched_gamma)
        elif kind == "MultiStepLR":
            main = lrs.MultiStepLR(opt, milestones=list(s.milestones or ()), **sched_gamma)
        elif kind == "ExponentialLR":
            if s.gamma is None:
                raise WorkbenchError("training.schedule.gamma: ExponentialLR needs gamma (e.g. 0.9)")
            main = lrs.ExponentialLR(opt, gamma=s.gamma)
        elif kind == "CosineAnnealingLR":
            main = lrs.CosineAnnealingLR(opt, T_max=s.T_max or rest, **_only(given, "eta_min"))
        elif kind == "CosineAnnealingWarmRestarts":
            if s.T_0 is None:
                raise WorkbenchError("training.schedule.T_0: CosineAnnealingWarmRestarts needs T_0 (e.g. 10)")
            main = lrs.CosineAnnealingWarmRestarts(opt, T_0=s.T_0, **_only(given, "T_mult", "eta_min"))
        elif kind == "OneCycleLR":
            max_lr = s.max_lr if s.max_lr is not None else 10 * settings.optimizer.lr
            total = max(1, epochs * steps_per_epoch - warm)
            main = lrs.OneCycleLR(opt, max_lr=max_lr, total_steps=total,
                                  **_only(given, "pct_start", "anneal_strategy", "div_factor", "final_div_factor",
                                          "three_phase"))
        elif kind == "ReduceLROnPlateau":
            main = lrs.ReduceLROnPlateau(opt, mode="max" if s.monitor == "val_acc" else "min",
                                         **_only(given, "factor", "patience", "threshold", "threshold_mode",
                                                 "cooldown"), **({"min_lr": s.min_lr} if s.min_lr is not None else {}))
            if warmup is None:
                return Schedule(main, False, s.monitor, (main,))
            both = WarmupThenPlateau(warmup, main, warm)
            return Schedule(both, False, s.monitor, (warmup, main))
        elif kind == "PolynomialLR":
            main = lrs.PolynomialLR(opt, total_iters=s.total_iters or rest, **_only(given, "power"))
        else:
            raise WorkbenchError(f"training.schedule.type: unknown schedule {s.type!r}; use one of "
                                 f"{', '.join(SCHEDULES)}")
    except (ValueError, TypeError) as exc:
        raise WorkbenchError(f"training.schedule ({kind}): torch refuses it: {str(exc).strip()[:200]}") from None
    if warmup is None:
        return Schedule(main, per_step, None, (main,))
    both = lrs.SequentialLR(opt, [warmup, main], milestones=[warm])
    return Schedule(both, per_step, None, (both, warmup, main))


def _only(values: dict, *names: str) -> dict:
    return {k: v for k, v in values.items() if k in names}


def make_scheduler(opt: torch.optim.Optimizer, settings: TrainingSettings, steps_per_epoch: int):
    """(scheduler or None, stepped per optimiser step?): ``make_schedule`` without its extras."""
    schedule = make_schedule(opt, settings, steps_per_epoch)
    return schedule.scheduler, schedule.per_step


def current_lr(opt: torch.optim.Optimizer) -> float:
    return float(opt.param_groups[0]["lr"])


def set_lr(opt: torch.optim.Optimizer, schedule: Schedule | object | None, lr: float) -> None:
    """Change the learning rate now (that of the first group; other groups keep their ratio to
    it). With a schedule, the whole schedule is scaled so it keeps its shape from the new value
    on: every scheduler inside (a warm-up chain's parts too) gets scaled base rates."""
    if not (lr > 0 and math.isfinite(lr)):
        raise WorkbenchError(f"the learning rate must be a positive number, got {lr!r}")
    now = current_lr(opt)
    factor = lr / now if now > 0 else None
    for group in opt.param_groups:
        group["lr"] = lr if factor is None else group["lr"] * factor
        for key in ("initial_lr", "max_lr", "min_lr"):
            if key in group:
                group[key] = lr if factor is None else group[key] * factor
    parts = schedule.parts if isinstance(schedule, Schedule) else ((schedule,) if schedule is not None else ())
    for scheduler in parts:
        if getattr(scheduler, "base_lrs", None) is not None:
            scheduler.base_lrs = [lr if factor is None else b * factor for b in scheduler.base_lrs]
        scheduler._last_lr = [g["lr"] for g in opt.param_groups]


# ---------------------------------------------------------------- losses

class _ClassBCE(nn.Module):
    """BCEWithLogitsLoss on class indices: one logit for two classes, else one per class."""

    def __init__(self, pos_weight: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if out.shape[1] == 1:
            target = y.to(out.dtype).unsqueeze(1)
        else:
            target = F.one_hot(y, out.shape[1]).to(out.dtype)
        return F.binary_cross_entropy_with_logits(out, target, pos_weight=self.pos_weight)


class _ClassKLDiv(nn.Module):
    """KLDivLoss on class indices: the scores' log-softmax against the one-hot target
    (``batchmean``, the reduction that is the mathematical KL divergence)."""

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target = F.one_hot(y, out.shape[1]).to(out.dtype)
        return F.kl_div(F.log_softmax(out, dim=1), target, reduction="batchmean")


def make_loss(name: str, classification: bool, options: LossSettings | None = None,
              num_classes: int | None = None, outputs: int | None = None) -> nn.Module:
    """The loss ``training.loss`` names with its ``training.loss_options``. Class weights must
    be one per class (``num_classes``), pos_weight one per output or one for all (``outputs``)."""
    o = options or LossSettings()
    weight = pos_weight = None
    if o.weight is not None and name in ("CrossEntropyLoss", "NLLLoss"):
        if num_classes is not None and len(o.weight) != num_classes:
            raise WorkbenchError(f"training.loss_options.weight: {len(o.weight)} weights for {num_classes} classes; "
                                 "give one per class")
        weight = torch.tensor(o.weight)
    if o.pos_weight is not None and name == "BCEWithLogitsLoss":
        if outputs is not None and len(o.pos_weight) not in (1, outputs):
            raise WorkbenchError(f"training.loss_options.pos_weight: {len(o.pos_weight)} values for a model with "
                                 f"{outputs} outputs; give one per output (or one for all)")
        pos_weight = torch.tensor(o.pos_weight)
    if name == "CrossEntropyLoss":
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=o.label_smoothing)
    if name == "NLLLoss":
        return nn.NLLLoss(weight=weight)
    if name == "BCEWithLogitsLoss":
        return _ClassBCE(pos_weight) if classification else nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    if name == "SmoothL1Loss":
        return nn.SmoothL1Loss(beta=o.beta)
    if name == "HuberLoss":
        return nn.HuberLoss(delta=o.delta)
    if name == "KLDivLoss":
        return _ClassKLDiv() if classification else nn.KLDivLoss(reduction="batchmean", log_target=o.log_target)
    if name in ("MSELoss", "L1Loss"):
        return getattr(nn, name)()
    raise WorkbenchError(f"training.loss: unknown loss {name!r}")


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
