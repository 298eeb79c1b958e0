"""The resumable state of a training run, as one object: ``TrainingState``.

It holds what a run must carry over to continue exactly where it stopped: the model, the
optimiser, the schedule, the gradient scaler, the position in the run, the best epoch so
far and every random generator. ``state_dict()`` gives it as tensors and plain containers
(what ``checkpoint.Writer`` saves and ``torch.load(..., weights_only=True)`` reads back);
``load_state_dict()`` puts such a dict back, the way ignite's ``Engine`` and Lightning's
callbacks do. The keys are the checkpoint file format: keep them, or migrate on load.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.model import torch_files
from workbench.training.distributed import resume_position


@dataclass
class Position:
    epoch: int = 0  # 0-based epoch of the next step
    batch: int = 0  # batches of that epoch already done
    step: int = 0  # optimiser steps done in the whole run
    loss_sum: float = 0.0  # example-weighted training loss so far this epoch
    loss_count: int = 0


@dataclass
class Best:
    """The best epoch so far (by validation accuracy, else validation loss, else training loss)."""

    val_acc: float | None = None
    val_loss: float | None = None
    train_loss: float | None = None
    epoch: int | None = None


@dataclass(frozen=True)
class RunShape:
    """What a checkpoint records about the run that wrote it, to check a resume against."""

    epochs: int
    steps_per_epoch: int
    batch_size: int  # per process
    world_size: int
    spec: dict  # the model spec's JSON
    task: dict  # data.Task.to_dict()


@dataclass
class TrainingState:
    """Everything a run needs to continue exactly from here (see the module docstring)."""

    model: nn.Module  # the plain module (never the DDP wrapper)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    sched_per_step: bool  # one-cycle: the schedule moves every step and is planned for the whole run
    scaler: torch.amp.GradScaler | None
    shape: RunShape
    position: Position = field(default_factory=Position)
    best: Best = field(default_factory=Best)

    @property
    def epochs_since_best(self) -> int:
        """Epochs done since the best one: early stopping's patience counter. It is kept as
        the best epoch and the position (both in every checkpoint), so a resumed run goes on
        counting where it stopped."""
        return self.position.epoch - self.best.epoch if self.best.epoch is not None else 0

    def state_dict(self) -> dict:
        """Tensors and plain containers only; the RNG states are read now."""
        s = self.shape
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": rng_state(), "position": asdict(self.position), "best": asdict(self.best),
                "trainable": {n: p.requires_grad for n, p in self.model.named_parameters()},
                "epochs": s.epochs, "batch_size": s.batch_size, "world_size": s.world_size,
                "spec": s.spec, "task": s.task}

    def load_state_dict(self, state: dict, source: str = "the checkpoint") -> list[str]:
        """Put a ``state_dict()`` back (one from another world size or batch size resumes at the
        same example of the epoch). Returns notes for the person: what differs from the run
        that wrote it. The random generators are not touched: the caller applies
        ``set_rng_state(state["rng"])`` last, once nothing in its set-up draws from them.
        Raises WorkbenchError when the state cannot continue this run."""
        s, notes = self.shape, []
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ModelMismatch(source, self.model.state_dict(), state["model"], str(exc)) from None
        for name, p in self.model.named_parameters():
            p.requires_grad_(state["trainable"].get(name, p.requires_grad))
        _load_part(self.optimizer, state["optimizer"], "optimizer", source)
        if self.scheduler is not None and state.get("scheduler") is not None:
            if self.sched_per_step and state["epochs"] != s.epochs:
                raise WorkbenchError(f"the one-cycle schedule of this checkpoint was planned for {state['epochs']} "
                                     f"epochs; resume with --epochs {state['epochs']}")
            _load_part(self.scheduler, state["scheduler"], "learning-rate schedule", source)
        if self.scaler is not None and state.get("scaler"):
            _load_part(self.scaler, state["scaler"], "gradient scaler", source)
        # another world size or batch size: the same example of the epoch
        total = max(1, s.epochs * s.steps_per_epoch) if self.sched_per_step else None
        self.position = Position(**resume_position(state, s.batch_size, s.world_size, notes, total))
        planned = (state.get("scheduler") or {}).get("total_steps")
        if total is not None and self.scheduler is not None and planned is not None and planned != total:
            raise WorkbenchError(f"the one-cycle schedule of checkpoint {source} was planned for {_shown(planned)} "
                                 f"steps, but this run has {total} ({s.epochs} epochs of {s.steps_per_epoch}): the "
                                 "data changed since; resume with the data and batch size it was made with")
        done = (state.get("scheduler") or {}).get("last_epoch")
        if total is not None and self.scheduler is not None and isinstance(done, (int, float)) \
                and not done <= self.position.step:  # the schedule would end before the run
            raise WorkbenchError(f"checkpoint {source} is damaged: its one-cycle schedule is at step {_shown(done)} "
                                 f"but its position at step {self.position.step}")
        self.best = Best(**state["best"])
        notes.append(f"resumed from {source} at epoch {self.position.epoch + 1}, step {self.position.step}")
        then, batch = state["task"], s.batch_size * s.world_size  # global batches
        then_batch = (state.get("batch_size") or 0) * state.get("world_size", 1)
        if (then["train_size"], then_batch) != (s.task["train_size"], batch):
            notes.append(f"the data or batch size changed since the checkpoint ({then['train_size']} examples in "
                         f"batches of {then_batch}, now {s.task['train_size']} in batches of {batch}): "
                         "the run goes on, but not exactly as it would have")
        return notes


class ModelMismatch(WorkbenchError):
    """A checkpoint of another model: one sentence (how many layers differ, the first of
    them), and the full key-by-key list as ``detail`` for whoever wants it."""

    def __init__(self, source: str, mine: dict, saved: dict, torch_text: str = ""):
        missing = [k for k in mine if k not in saved]
        unexpected = [k for k in saved if k not in mine]
        shapes = [k for k in mine if k in saved and hasattr(saved[k], "shape")
                  and tuple(saved[k].shape) != tuple(mine[k].shape)]
        layers = list(dict.fromkeys(k.rsplit(".", 1)[0] for k in missing + unexpected + shapes))
        example = f", e.g. {layers[0]}" if layers else ""
        count = f"{len(layers)} layer{'s' if len(layers) != 1 else ''} do{'es' if len(layers) == 1 else ''} not match"
        super().__init__(f"checkpoint {source} was made for a different model ({count}{example}); "
                         "pick a checkpoint of this project, or open the project that made it")
        lines = [f"{len(missing)} entries of this model are not in the checkpoint:", *(f"  {k}" for k in missing),
                 f"{len(unexpected)} entries of the checkpoint are not in this model:", *(f"  {k}" for k in unexpected),
                 f"{len(shapes)} entries have another shape:",
                 *(f"  {k}: checkpoint {tuple(saved[k].shape)}, this model {tuple(mine[k].shape)}" for k in shapes)]
        if torch_text:
            lines += ["", "PyTorch said:", torch_text.strip()]
        self.layers = layers
        self.detail = "\n".join(lines)


def _load_part(part, saved: dict, what: str, source: str) -> None:
    """``part.load_state_dict(saved)``, when ``saved`` has the form of ``part``'s own state (the
    same entries, numbers where it has numbers, tensors of the same shape); a state that does
    not fit (another optimiser, other parameter groups, a damaged entry) is a WorkbenchError
    naming the checkpoint and the part, never a surprise at the next step."""
    own = part.state_dict()
    if isinstance(part, torch.optim.Optimizer):
        groups = saved.get("param_groups") if isinstance(saved, dict) else None
        if isinstance(groups, list) and len(groups) == len(own["param_groups"]):
            for i, (g, fresh) in enumerate(zip(groups, own["param_groups"])):
                fresh = {k: v for k, v in fresh.items() if k != "params"}
                problem = _form_problem(g, fresh, f"param_groups[{i}]")
                if problem:
                    _refuse(what, source, problem)
    elif own:
        problem = _form_problem(saved, own, what)
        shadowing = [k for k in saved if k not in own and hasattr(part, str(k))] if not problem else []
        if shadowing:  # schedulers take their state as attributes: this would replace a method or the optimizer
            problem = f"an entry {shadowing[0]!r} that is not state"
        if problem:
            _refuse(what, source, problem)
    try:
        part.load_state_dict(saved)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        text = str(exc).strip().splitlines()
        _refuse(what, source, f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__)
    if isinstance(part, torch.optim.Optimizer):
        problem = _optimizer_state_problem(part)
        for i, (group, fresh) in enumerate(zip(part.param_groups, own["param_groups"])):
            missing = sorted(k for k in fresh if k not in group)  # torch fills in the entries it added lately
            if missing and not problem:
                problem = f"param_groups[{i}] has no {', '.join(map(repr, missing))}"
        if problem:
            _refuse(what, source, problem)


def _optimizer_state_problem(optimizer: torch.optim.Optimizer) -> str:
    """'' when each parameter's loaded state has the entries this optimiser's step reads, each
    a dense tensor of the parameter's shape or a scalar as the step makes them; else what is wrong.
    What the step makes is learnt from one step of the same optimiser on a stand-in parameter."""
    for i, group in enumerate(optimizer.param_groups):
        expected = _state_made_by_a_step(optimizer, group)
        if isinstance(expected, str):
            return f"the settings of param_groups[{i}] do not work with {type(optimizer).__name__}: {expected}"
        for p in group["params"]:
            saved = optimizer.state.get(p)
            if not saved:
                continue  # not stepped yet: the optimiser makes its state at the first step
            if set(saved) != set(expected):
                odd = sorted(map(str, set(saved) ^ set(expected)))
                return (f"a parameter of group {i} has entries {sorted(map(str, saved))}, expected "
                        f"{sorted(expected)} ({', '.join(odd)})")
            for key, made in expected.items():
                value = saved[key]
                if made == "param":
                    ok = (isinstance(value, torch.Tensor) and value.shape == p.shape
                          and not torch_files.tensor_problem(value))
                elif made == "scalar":  # a count of steps
                    ok = ((isinstance(value, (int, float)) and not isinstance(value, bool)) or (
                        isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex()
                        and not torch_files.tensor_problem(value))) and math.isfinite(float(value)) and value >= 0
                else:
                    ok = True
                if not ok:
                    shown = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                    return f"its {key!r} for a parameter of shape {list(p.shape)} is {shown}"
    return ""


def _state_made_by_a_step(optimizer: torch.optim.Optimizer, group: dict) -> dict[str, str] | str:
    """{state key: 'param' | 'scalar' | 'other'} that one step of ``optimizer``'s kind with
    ``group``'s settings leaves for a parameter; or why such a step fails (the run's would too)."""
    stand_in = torch.zeros(2, requires_grad=True)
    stand_in.grad = torch.ones(2)
    settings = {k: group[k] for k in optimizer.defaults if k in group}
    try:
        probe = type(optimizer)([stand_in], **settings)
        probe.step()
    except Exception as exc:  # any error of the optimiser's own: what the run's first step would meet
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__
    return {k: "param" if isinstance(v, torch.Tensor) and v.shape == (2,) else
            "scalar" if isinstance(v, (int, float, torch.Tensor)) else "other"
            for k, v in probe.state[stand_in].items()}


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _refuse(what: str, source: str, detail: str) -> None:
    raise WorkbenchError(f"checkpoint {source}: its {what} state does not fit this run ({detail}); resume "
                         "with the project settings that made it")


def _form_problem(saved, fresh, where: str, top: bool = True) -> str:
    """'' when ``saved`` has the form of ``fresh`` (a state made now), else what differs. At
    the top, an entry one of them lacks is left to torch (versions add entries, and fill in
    their defaults); inside, every entry must be there."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict):
            return f"{where} is a {type(saved).__name__}, not a dict"
        for key, value in fresh.items():
            if key not in saved:
                if top:
                    continue
                return f"{where} has no {key!r}"
            problem = _form_problem(saved[key], value, f"{where}[{key!r}]", top=False)
            if problem:
                return problem
        return ""
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(fresh):
            return f"{where} should be a list of {len(fresh)}"
        for i, (a, b) in enumerate(zip(saved, fresh)):
            problem = _form_problem(a, b, f"{where}[{i}]", top=False)
            if problem:
                return problem
        return ""
    if isinstance(fresh, bool):
        return "" if isinstance(saved, bool) else f"{where} should be true or false"
    if isinstance(fresh, (int, float)):
        ok = isinstance(saved, (int, float)) and not isinstance(saved, bool)
        return "" if ok else f"{where} should be a number"
    if isinstance(fresh, str):  # names (a strategy, the group entry a phase reads): the same as now
        return "" if saved == fresh else f"{where} should be {fresh!r}, not {_shown(saved)}"
    if fresh is None:  # an optional setting (foreach, fused...): none, or a flag or number
        ok = saved is None or isinstance(saved, (bool, int, float, str))
        return "" if ok else f"{where} should be a flag or nothing, not a {type(saved).__name__}"
    if isinstance(fresh, torch.Tensor):
        ok = isinstance(saved, torch.Tensor) and saved.shape == fresh.shape and saved.device.type == "cpu"
        return "" if ok else f"{where} should be a tensor of shape {list(fresh.shape)}"
    return ""


def rng_state() -> dict:
    """Every random generator a training step can touch, as tensors and plain values."""
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    version, internal, gauss = random.getstate()
    out["python"] = {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}
    try:
        import numpy as np

        _, keys, pos, has_gauss, cached = np.random.get_state()
        out["numpy"] = {"keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached": float(cached)}
    except ImportError:
        pass
    return out


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][:torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)
    if "python" in state:
        py = state["python"]
        random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    if "numpy" in state:
        import numpy as np

        n = state["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["cached"]))
