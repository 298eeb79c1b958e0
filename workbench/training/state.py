"""The resumable state of a training run, as one object: ``TrainingState``.

It holds what a run must carry over to continue exactly where it stopped: the model, the
optimiser, the schedule, the gradient scaler, the position in the run, the best epoch so
far and every random generator. ``state_dict()`` gives it as tensors and plain containers
(what ``checkpoint.Writer`` saves and ``torch.load(..., weights_only=True)`` reads back);
``load_state_dict()`` puts such a dict back, the way ignite's ``Engine`` and Lightning's
callbacks do. The keys are the checkpoint file format: keep them, or migrate on load.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from workbench.errors import WorkbenchError
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
            detail = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else ""
            raise WorkbenchError(f"checkpoint {source} was made for a different model ({detail}); "
                                 "resume with the project that made it") from None
        for name, p in self.model.named_parameters():
            p.requires_grad_(state["trainable"].get(name, p.requires_grad))
        _load_part(self.optimizer, state["optimizer"], "optimizer", source)
        if self.scheduler is not None and state["scheduler"] is not None:
            if self.sched_per_step and state["epochs"] != s.epochs:
                raise WorkbenchError(f"the one-cycle schedule of this checkpoint was planned for {state['epochs']} "
                                     f"epochs; resume with --epochs {state['epochs']}")
            _load_part(self.scheduler, state["scheduler"], "learning-rate schedule", source)
        if self.scaler is not None and state.get("scaler"):
            _load_part(self.scaler, state["scaler"], "gradient scaler", source)
        # another world size or batch size: the same example of the epoch
        total = max(1, s.epochs * s.steps_per_epoch) if self.sched_per_step else None
        self.position = Position(**resume_position(state, s.batch_size, s.world_size, notes, total))
        self.best = Best(**state["best"])
        notes.append(f"resumed from {source} at epoch {self.position.epoch + 1}, step {self.position.step}")
        then, batch = state["task"], s.batch_size * s.world_size  # global batches
        then_batch = (state.get("batch_size") or 0) * state.get("world_size", 1)
        if (then["train_size"], then_batch) != (s.task["train_size"], batch):
            notes.append(f"the data or batch size changed since the checkpoint ({then['train_size']} examples in "
                         f"batches of {then_batch}, now {s.task['train_size']} in batches of {batch}): "
                         "the run goes on, but not exactly as it would have")
        return notes


def _load_part(part, saved: dict, what: str, source: str) -> None:
    """``part.load_state_dict(saved)``; a state that does not fit (another optimiser, other
    parameter groups, a damaged entry) is a WorkbenchError naming the checkpoint and the part."""
    try:
        part.load_state_dict(saved)
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError, AttributeError) as exc:
        text = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
        raise WorkbenchError(f"checkpoint {source}: its {what} state does not fit this run ({detail}); resume "
                             "with the project settings that made it") from None


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
