"""The training engine: a plain-Python loop with events, thread-safe controls and checkpoints.

``Engine(project, ...).run()`` blocks in the calling thread (the window runs it in a
QThread, the CLI in the main thread) and never lets an exception escape: a failure ends in
a ``FailedEvent`` whose message says what happened and what to do, with the model left at
its last good weights. Other threads may call ``pause``, ``resume``, ``stop``,
``set_frozen`` and ``set_lr`` at any time; they take effect between two steps.

Losses stay on the device and are read every ``log_every`` steps in one transfer (one
host sync instead of one per step); each step still gets its own ``StepEvent``.
"""
from __future__ import annotations

import copy
import logging
import math
import time
import traceback
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from workbench.model import build
from workbench.training import checkpoint, memory, optim
from workbench.data import bundle as data
from workbench.training import events as ev
from workbench.training.controls import Controls
from workbench.errors import WorkbenchError
from workbench.training.runlog import RunLog
from workbench.training.loop import (
    GoodWeights, NonFiniteLoss, Parallel, Position, StepRunner, evaluate, resolve_device)

_logger = logging.getLogger(__name__)
MEMORY_EVERY_S = 2.0


class Engine(Controls):
    def __init__(self, project, run_dir: Path | str | None = None,
                 on_event: Callable[[ev.Event], None] | None = None, resume_from: Path | str | None = None,
                 device: str | None = None, epochs: int | None = None, parallel: Parallel | None = None):
        # Copy everything now: the window may edit the project while the run goes on.
        self.project = project
        self.spec = project.model.copy()
        self.data_cfg = copy.deepcopy(project.data)
        self.cfg = copy.deepcopy(project.training)
        if epochs is not None:
            self.cfg["epochs"] = int(epochs)
        if device is not None:
            self.cfg["device"] = device
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.on_event = on_event
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.parallel = parallel or Parallel()
        self.model: nn.Module | None = None
        self.data: data.DataBundle | None = None
        self.task: data.Task | None = None
        self.device: torch.device | None = None
        self.record: dict | None = None
        self._init_controls(self.spec)
        self._log: RunLog | None = None
        self._ready = False

    # ------------------------------------------------------------ running

    def run(self) -> ev.Event:
        """Set up and train to the end; returns the FinishedEvent, StoppedEvent or FailedEvent."""
        if getattr(self, "_ran", False):
            return ev.FailedEvent("this engine has already run; start a new Engine (resume_from=its last.ckpt "
                                  "to continue)", "setup")
        self._ran = True
        self._mark_start()
        phase = "setup"
        try:
            if not self._ready:
                self.setup()
            phase = "training"
            end = self._train()
        except Exception as exc:  # noqa: BLE001 - the contract: nothing escapes, everything is reported
            end = self._fail(exc, phase)
        finally:
            self._settle_writes()
            if self._log is not None:
                self._log.close()
            self._stop_workers()
        self._record(end)
        return end

    def setup(self) -> None:
        """Load data, build and check the model, create optimiser and schedule, restore a
        checkpoint. Raises WorkbenchError; ``run`` turns that into a FailedEvent."""
        self._mark_start()
        cfg = self.cfg
        self.device = device = resolve_device(cfg["device"])
        self.data = bundle = data.load_data(self.data_cfg)
        self.task = task = bundle.task
        self.loss_name = task.default_loss if cfg["loss"] == "auto" else cfg["loss"]
        data.check_fit(self.spec, task, self.loss_name)
        torch.manual_seed(cfg["seed"])
        model = build.build_model(self.spec).to(device)
        self.model = model
        self._bn = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.optimizer = optim.make_optimizer(model.parameters(), cfg)
        self.loader = bundle.loader("train", seed=cfg["seed"], rank=self.parallel.rank,
                                    world_size=self.parallel.world_size, device=device)
        self.val_loader = bundle.loader("val", rank=self.parallel.rank, world_size=self.parallel.world_size,
                                        device=device) if bundle.val is not None else None
        self.steps_per_epoch = len(self.loader.batch_sampler)
        self.scheduler, self.sched_per_step = optim.make_scheduler(self.optimizer, cfg, cfg["epochs"],
                                                                   self.steps_per_epoch)
        notes: list[str] = []
        amp_dtype, scaler = None, None
        if cfg["amp"] and device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        elif cfg["amp"]:
            notes.append(f"mixed precision is for CUDA only; training in float32 on {device}")
        self.runner = StepRunner(model, self.optimizer,
                                 optim.make_loss(self.loss_name, task.is_classification), device,
                                 cfg["grad_clip"], amp_dtype, scaler, non_blocking=self.loader.pin_memory)
        self.pos = Position()
        self.best: dict = {"val_acc": None, "val_loss": None, "train_loss": None, "epoch": None}
        if self.resume_from is not None:
            checkpoint.restore(self, checkpoint.load(self.resume_from), notes)
        self.runner.model = self.parallel.wrap(model)  # DDP after the restore: it sees the final frozen set
        self._apply_bn_modes()
        if not any(p.requires_grad for p in model.parameters()):
            notes.append("every layer is frozen: nothing will learn until one is unfrozen")
        self._open_run_dir(notes)
        memory.reset_peak(device)
        self.keeper = GoodWeights(model, self.pos.step)
        self._writer = checkpoint.Writer()
        total, trainable = build.param_count(model)
        self._emit(ev.StartedEvent(str(self.run_dir), str(device), cfg["epochs"], self.steps_per_epoch,
                                   self.pos.epoch + 1, self.pos.step, self.data_cfg["batch_size"], total,
                                   trainable, task.to_dict(), notes + self._log_notes()))
        self._emit_memory()
        if self.resume_from is not None:
            checkpoint.set_rng_state(self._resume_rng)  # last, so nothing in set-up draws from it
        self._ready = True

    def _mark_start(self) -> None:
        if not hasattr(self, "_t0"):
            self._t0 = time.perf_counter()
            self._started_at = time.strftime("%Y-%m-%dT%H:%M:%S")

    def _open_run_dir(self, notes: list[str]) -> None:
        if self.run_dir is None:
            if self.resume_from is not None:
                self.run_dir = checkpoint.resolve(self.resume_from).parent
            else:
                base = self.project.run_folder() / time.strftime("%Y%m%d-%H%M%S")
                self.run_dir, n = base, 1
                while self.run_dir.exists():
                    n += 1
                    self.run_dir = base.with_name(f"{base.name}-{n}")
        last = self.run_dir / checkpoint.LAST
        if last.exists() and (self.resume_from is None or checkpoint.resolve(self.resume_from).parent != self.run_dir):
            raise WorkbenchError(f"{self.run_dir} already holds a run ({checkpoint.LAST}); choose another folder, "
                                 f"or resume from {last}")
        if self.parallel.is_main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WorkbenchError(f"cannot create the run folder {self.run_dir}: {exc.strerror or exc}; "
                                     "choose a folder you can write to") from None
            self._log = RunLog(self.run_dir, self.cfg["tensorboard"])

    def _log_notes(self) -> list[str]:
        return list(self._log.notes) if self._log is not None else []

    def _train(self) -> ev.Event:
        cfg, pos = self.cfg, self.pos
        self._pending: list[torch.Tensor] = []
        self._pending_meta: list[tuple[float, int]] = []
        self._mem_t = time.perf_counter()
        try:
            while pos.epoch < cfg["epochs"]:
                t_epoch = time.perf_counter()
                self._set_train_mode()
                self.loader.batch_sampler.set_epoch(pos.epoch, skip=pos.batch)
                self.loader.generator.manual_seed(cfg["seed"] * 1_000_003 + pos.epoch)
                if self._run_epoch() == "stop":
                    return self._stopped()
                self._flush()
                self._end_epoch(time.perf_counter() - t_epoch)
        except NonFiniteLoss as bad:
            back = self.keeper.restore_before(bad.step)
            lr = optim.current_lr(self.optimizer)
            return self._emit(ev.FailedEvent(
                f"the loss became {bad.value} at step {bad.step} (epoch {pos.epoch + 1}): the learning rate "
                f"{lr:g} is probably too high; lower it (try {lr / 10:g}) or set training.grad_clip (e.g. 1.0). "
                f"The model is back at {self._weights_at(back)}, the last known to give a finite loss",
                "training", bad.step))
        return self._finished()

    def _run_epoch(self) -> str:
        pos, runner, pending, meta = self.pos, self.runner, self._pending, self._pending_meta
        log_every = self.cfg["log_every"]
        sched = self.scheduler if self.sched_per_step else None
        opt_groups = self.optimizer.param_groups
        self._flush_t = time.perf_counter()
        for x, y in self.loader:
            pending.append(runner(x, y))
            meta.append((opt_groups[0]["lr"], len(y)))
            pos.batch += 1
            pos.step += 1
            if sched is not None:
                sched.step()
            if len(pending) >= log_every:
                self._flush()
            if self._attention and self._controls() == "stop":
                return "stop"
        return "done"

    def _flush(self) -> None:
        """Read the pending losses in one transfer; emit their step events; keep a good copy."""
        if not self._pending:
            return
        values, meta, stop = self.parallel.reduce_steps(torch.stack(self._pending), self._pending_meta)
        if stop:  # a process was asked to stop (DDP): every process stops after this same step
            self.stop()
        now = time.perf_counter()
        rate = sum(n for _, n in meta) / max(now - self._flush_t, 1e-9)
        self._flush_t = now
        first = self.pos.step - len(values) + 1
        epoch = self.pos.epoch + 1
        pos = self.pos
        steps = []
        try:
            for i, (value, (lr, n)) in enumerate(zip(values, meta)):
                if not math.isfinite(value):
                    raise NonFiniteLoss(first + i, value)
                pos.loss_sum += value * n
                pos.loss_count += n
                steps.append(ev.StepEvent(first + i, epoch, value, lr, rate))
        finally:
            if self._log is not None:
                self._log.write_steps(steps)
            for step in steps:
                self._emit(step, log=False)
        self._pending.clear()
        self._pending_meta.clear()
        self.keeper.confirm(pos.step)
        if now - self._mem_t >= MEMORY_EVERY_S:
            self._emit_memory()

    def _weights_at(self, step: int) -> str:
        return "its starting weights" if step == 0 else f"its weights after step {step}"

    def _end_epoch(self, seconds: float) -> None:
        pos, task = self.pos, self.task
        train_loss = pos.loss_sum / max(1, pos.loss_count)
        result = None
        if self.val_loader is not None:
            self._validating = True
            result = evaluate(self.runner, self.val_loader, task.num_classes if task.is_classification else None,
                              self.loss_name, self.parallel)
            self._validating = False
        better = self._is_better(train_loss, result)
        if better:
            self.best = {"val_acc": result.acc if result else None, "val_loss": result.loss if result else None,
                         "train_loss": train_loss, "epoch": pos.epoch + 1}
        if self.scheduler is not None and not self.sched_per_step:
            self.scheduler.step()
        pos.epoch += 1
        pos.batch, pos.loss_sum, pos.loss_count = 0, 0.0, 0
        epoch_ev = ev.EpochEvent(pos.epoch, pos.step, train_loss, result.loss if result else None,
                                 result.acc if result else None, result.per_class if result else [],
                                 result.confusion if result else [],
                                 [ev.Mistake(*m) for m in result.mistakes] if result else [],
                                 optim.current_lr(self.optimizer), seconds, better)
        self._emit(epoch_ev)
        self._save(best=better)  # also flushes metrics.jsonl, epoch line included
        if time.perf_counter() - self._mem_t >= MEMORY_EVERY_S:
            self._emit_memory()

    def _is_better(self, train_loss: float, result) -> bool:
        b = self.best
        if b["epoch"] is None:
            return True
        if result is None:
            return train_loss < b["train_loss"]
        if result.acc is not None:
            return (result.acc, -result.loss) > (b["val_acc"], -b["val_loss"])
        return result.loss < b["val_loss"]

    # ------------------------------------------------------------ checkpoints

    def _save(self, best: bool = False, wait: bool = False) -> Path | None:
        if not self.parallel.is_main:
            return None
        last = self.run_dir / checkpoint.LAST
        self._writer.submit(last, checkpoint.capture(self), self.run_dir / checkpoint.BEST if best else None)
        if self._log is not None:
            self._log.flush()
            if self._log.error:
                raise WorkbenchError(f"{self._log.error}; free some space or choose another run folder")
        if wait:
            self._writer.wait()
        return last

    # ------------------------------------------------------------ endings

    def _stopped(self) -> ev.Event:
        self._flush()
        path = self._save(wait=True)
        return self._emit(ev.StoppedEvent(self.pos.step, self.pos.epoch + 1, self._elapsed(), str(self.run_dir),
                                          str(path) if path else None))

    def _finished(self) -> ev.Event:
        self._writer.wait()
        best = self.run_dir / checkpoint.BEST
        return self._emit(ev.FinishedEvent(self.pos.step, self.pos.epoch, self.best["val_acc"],
                                           self.best["val_loss"], self.best["epoch"], self._elapsed(),
                                           str(self.run_dir), str(best) if best.exists() else None))

    def _fail(self, exc: Exception, phase: str) -> ev.Event:
        step = self.pos.step if hasattr(self, "pos") else 0
        detail = ""
        if isinstance(exc, torch.OutOfMemoryError):
            message = self._oom_message(step, phase)
        elif isinstance(exc, WorkbenchError):
            message = str(exc)
        else:
            detail = traceback.format_exc()
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            message = f"unexpected error at step {step}: {type(exc).__name__}: {text}"
        if phase == "training" and self.model is not None:
            if getattr(self.runner, "updating", False) or isinstance(exc, torch.OutOfMemoryError):
                self.runner.updating = False
                message += f"; the model is back at {self._weights_at(self.keeper.restore_latest())}"
            self.optimizer.zero_grad(set_to_none=True)
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.empty_cache()
        return self._emit(ev.FailedEvent(message, phase, step, detail))

    def _oom_message(self, step: int, phase: str) -> str:
        bs = self.data_cfg["batch_size"]
        where = f"at step {step + 1}" if phase == "training" else "while setting up"
        if getattr(self, "_validating", False):
            where = f"validating after epoch {self.pos.epoch + 1}"
        fix = f"lower data.batch_size (try {max(1, bs // 2)})"
        if self.device is not None and self.device.type == "cuda":
            reading = memory.read([self.device]).device(f"cuda:{self.device.index or 0}")
            if reading is not None:
                where += f" ({memory.fmt_bytes(reading.peak)} peak of {memory.fmt_bytes(reading.total)})"
            if not self.cfg["amp"]:
                fix += ", turn on training.amp"
        return (f"out of memory {where} on {self.device} with batch size {bs}: {fix}, use smaller images or a "
                "smaller model")

    def _settle_writes(self) -> None:
        """A failed run still waits for its last checkpoint write (its error is secondary)."""
        writer = getattr(self, "_writer", None)
        if writer is not None:
            try:
                writer.wait()
            except WorkbenchError as exc:
                _logger.warning("%s", exc)

    def _stop_workers(self) -> None:
        """End DataLoader worker processes now rather than whenever the engine is collected."""
        for loader in (getattr(self, "loader", None), getattr(self, "val_loader", None)):
            if loader is not None and getattr(loader, "_iterator", None) is not None:
                loader._iterator = None

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _emit(self, event: ev.Event, log: bool = True) -> ev.Event:
        if log and self._log is not None:
            self._log.write(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken listener must not break the run
                _logger.exception("event listener failed on %s", event.kind)
        return event

    def _emit_memory(self) -> None:
        self._mem_t = time.perf_counter()
        devices = [self.device] if self.device is not None and self.device.type != "cpu" else None
        self._emit(ev.MemoryEvent(self.pos.step, memory.read(devices).to_dict()))

    def _record(self, end: ev.Event) -> None:
        if self._log is None:  # the run never got a folder: nothing to record
            return
        b = getattr(self, "best", {})
        self.record = {"id": self.run_dir.name, "dir": str(self.run_dir), "started": self._started_at,
                       "status": end.kind, "epochs": self.pos.epoch, "steps": self.pos.step,
                       "best_val_acc": b.get("val_acc"), "best_val_loss": b.get("val_loss"),
                       "best_epoch": b.get("epoch"), "seconds": round(self._elapsed(), 2),
                       "device": str(self.device)}
        if self.resume_from is not None:
            self.record["resumed_from"] = str(self.resume_from)
        if isinstance(end, ev.FailedEvent):
            self.record["message"] = end.message
        self.project.runs.append(self.record)
