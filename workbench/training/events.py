"""What the training engine reports, and who listens: events and handlers.

Events are small dataclasses holding plain values only: no tensors and no Qt objects, so an
event can cross threads, go into ``metrics.jsonl`` as one JSON line (``to_dict``) and feed
the window's plots. Epochs and steps count from 1: ``StepEvent(step=5)`` is the fifth
optimiser step, ``EpochEvent(epoch=1)`` ends the first pass.

A ``Handler`` follows a run (``Engine.add_handler``), like Lightning's callbacks and
ignite's event handlers: the run log, TensorBoard, memory polling and evaluation samples
are handlers, and so is any plain function of one event (wrapped in a ``Listener``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, ClassVar

_logger = logging.getLogger(__name__)


@dataclass
class Event:
    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        # flat events: a shallow copy is enough (asdict's deep copy costs ~50 us per step)
        return {"event": self.kind, **self.__dict__}


@dataclass
class StartedEvent(Event):
    kind: ClassVar[str] = "started"
    run_dir: str
    device: str
    epochs: int
    steps_per_epoch: int
    start_epoch: int  # 1 unless resumed
    start_step: int  # optimiser steps already done (resumed runs)
    batch_size: int
    params: int
    trainable: int
    task: dict
    notes: list[str] = field(default_factory=list)
    time: float = field(default_factory=time.time)


@dataclass
class StepEvent(Event):
    kind: ClassVar[str] = "step"
    step: int
    epoch: int
    loss: float
    lr: float
    samples_per_s: float


@dataclass
class Mistake:
    index: int  # position in the validation set
    true: int
    predicted: int
    confidence: float  # probability the model gave its (wrong) prediction


@dataclass
class EpochEvent(Event):
    kind: ClassVar[str] = "epoch"
    epoch: int
    step: int
    train_loss: float
    val_loss: float | None
    val_acc: float | None
    per_class_acc: list[float | None] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)  # rows: true class, columns: predicted
    mistakes: list[Mistake] = field(default_factory=list)  # most confident wrong predictions
    lr: float = 0.0
    seconds: float = 0.0
    best: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, **asdict(self)}


@dataclass
class MemoryEvent(Event):
    kind: ClassVar[str] = "memory"
    step: int
    reading: dict  # workbench.training.memory.MemoryReading.to_dict()


@dataclass
class FreezeEvent(Event):
    kind: ClassVar[str] = "freeze"
    step: int
    path: str
    frozen: bool
    trainable: int  # trainable parameters after the change


@dataclass
class LrEvent(Event):
    kind: ClassVar[str] = "lr"
    step: int
    lr: float


@dataclass
class PausedEvent(Event):
    kind: ClassVar[str] = "paused"
    step: int


@dataclass
class ResumedEvent(Event):
    kind: ClassVar[str] = "resumed"
    step: int


@dataclass
class FinishedEvent(Event):
    kind: ClassVar[str] = "finished"
    step: int
    epochs: int
    best_val_acc: float | None
    best_val_loss: float | None
    best_epoch: int | None
    seconds: float
    run_dir: str
    checkpoint: str | None
    message: str = ""  # "stopped early at epoch N (best at M)" when early stopping ended the run
    restored_epoch: int | None = None  # the model holds this epoch's weights (early_stopping.restore_best)
    # the final model's test metrics (validation where there is no test part): evaluation.Report.to_dict();
    # None where there is neither, or in a process other than the main one under torchrun
    evaluation: dict | None = None


@dataclass
class StoppedEvent(Event):
    kind: ClassVar[str] = "stopped"
    step: int
    epoch: int
    seconds: float
    run_dir: str
    checkpoint: str | None  # resume from here


@dataclass
class FailedEvent(Event):
    kind: ClassVar[str] = "failed"
    message: str  # for a person: what happened and what to do
    phase: str  # "setup" (bad input, nothing trained) or "training"
    step: int = 0
    detail: str = ""  # traceback of an unexpected error, for a bug report
    fixable: bool = False  # the message names something to fix outside the training (input, a full disk, a folder)


@dataclass
class HealthEvent(Event):
    """One health sample (workbench.insight.health): per layer, in the order of ``layers``
    (module paths of the layers that own parameters and of the ReLU-like ones). A value is
    None where it does not apply: no gradient (frozen, unused), no activation (not run), dead
    units outside ReLU-like layers. ``histograms``: for TensorBoard, per parameter
    ("weights/fc.weight", "gradients/fc.weight"), equal-width buckets between min and max."""

    kind: ClassVar[str] = "health"
    step: int
    epoch: int
    layers: list[str]
    grad_norm: list[float | None]
    weight_norm: list[float | None]
    update_ratio: list[float | None]  # |weights after - before| / |weights before| over that step's update
    act_mean: list[float | None]
    act_std: list[float | None]
    dead_fraction: list[float | None]  # units (features / channels) at zero for the whole batch
    histograms: dict[str, dict] = field(default_factory=dict)  # {min, max, num, sum, sum_squares, counts}
    skipped: bool = False  # mixed precision skipped this step's update (the gradients overflowed)


@dataclass
class AlertEvent(Event):
    """Something in a run looks unhealthy (workbench.insight.alerts): what, where, the fix."""

    kind: ClassVar[str] = "alert"
    step: int
    epoch: int
    alert: str  # exploding_gradients, vanishing_gradients, dead_units, update_ratio, loss_spike, plateau, overfitting
    layer: str | None  # the layer's module path; None when it is about the whole model (the losses)
    message: str  # what is wrong, with the figures
    fix: str  # what to do about it

    def text(self) -> str:
        where = f"layer '{self.layer}': " if self.layer else ""
        return f"{where}{self.message}; fix: {self.fix}"


END_EVENTS = (FinishedEvent, StoppedEvent, FailedEvent)


# ---------------------------------------------------------------- handlers

class Handler:
    """Follows a run. The engine calls these hooks in its own thread, in the order the handlers
    were added; override the ones you need. ``engine`` is the ``workbench.training.engine.Engine``
    (its public attributes: model, task, data, runner, device, run_dir, parallel, state, ...).

    An error in ``on_event`` / ``on_steps`` is logged and the run goes on (a broken listener
    must not break training). ``on_run_start`` and ``on_checkpoint`` may raise WorkbenchError
    to end the run with a FailedEvent (a log that cannot be written). ``engine.emit(event)``
    from a hook reaches every handler after the event being handled has reached them all."""

    def on_run_start(self, engine, notes: list[str]) -> None:
        """Set-up is done and the run folder is chosen (``engine.run_dir``; only the main
        process writes there: ``engine.parallel.is_main``), just before the StartedEvent.
        Append to ``notes`` what the person should know (they go into the StartedEvent)."""

    def on_event(self, engine, event: Event) -> None:
        """Every event, in order (steps too, unless ``on_steps`` is overridden)."""

    def on_steps(self, engine, steps: list[StepEvent]) -> None:
        """The step events of one loss read-out (``training.log_every`` steps), in order."""
        for step in steps:
            self.on_event(engine, step)

    def on_checkpoint(self, engine) -> None:
        """A checkpoint was handed to the writer (each epoch's end, a stop): flush files now."""

    def on_run_end(self, engine) -> None:
        """The run is over (finished, stopped or failed, set-up failures too): close files.
        Comes before the project's run record is made."""


class Listener(Handler):
    """A plain function of one event as a handler: ``Engine(..., handlers=[print])``."""

    def __init__(self, fn: Callable[[Event], Any]):
        self.fn = fn

    def on_event(self, engine, event: Event) -> None:
        self.fn(event)

    def on_steps(self, engine, steps: list[StepEvent]) -> None:
        fn = self.fn
        for step in steps:  # each step on its own: one failure does not hide the others
            try:
                fn(step)
            except Exception:  # a broken listener must not break the run
                _logger.exception("event listener failed on %s", step.kind)
