"""The training engine: a plain-Python loop built from parts it holds.

``Engine(project, ...).run()`` blocks in the calling thread (the window runs it in a
QThread, the CLI in the main thread) and never lets an exception escape: a failure ends in
a ``FailedEvent`` whose message says what happened and what to do, with the model left at
its last good weights. The parts:

- ``engine.controls`` (controls.py): pause, resume, stop, freeze, learning rate. Any thread
  may call them at any time; the engine serves them between two steps.
- ``engine.state`` (state.py): the resumable state, one ``TrainingState`` with
  ``state_dict()`` / ``load_state_dict()``; checkpoints (checkpoint.py) save and restore it.
- ``engine.handlers`` (events.py ``Handler``): who follows the run. Every engine starts with
  the run log (runlog.py: metrics.jsonl, TensorBoard) and memory polling (memory.py); add
  more with ``add_handler`` or ``handlers=`` (evaluation samples: samples.py; any plain
  function of one event).
- loop.py: the step, the evaluation pass, the good-weights copy.
- ``engine.lock`` (run_lock.py): the run folder's lock, taken first thing in ``setup`` (a
  folder another live run uses is refused; a killed run's lock is taken over, and temp files
  killed runs left are removed, both said in the StartedEvent's notes) and let go on every
  way out of ``run``.

Early stopping (``training.early_stopping``): while it is on, the best epoch is the best by its
metric (beyond ``min_delta``), so ``best.ckpt`` holds it; ``_end_epoch`` ends the run once
``patience`` epochs passed without a new best (the count is the position minus the best epoch,
both in every checkpoint, so a resume goes on counting), and the run finishes with "stopped
early at epoch N (best at M)" in its FinishedEvent and run record. ``restore_best`` puts the best
epoch's weights back in the model at the end (kept in memory, or read from best.ckpt after a
resume): the window's Export and Prediction use them; ``last.ckpt`` keeps the run's end.

At the end of a finished run the main process evaluates the model it ends with on the test part
(validation where there is none; evaluation.py, scikit-learn's metrics) and puts the report in
the FinishedEvent (``evaluation``), so metrics.jsonl holds it.

Losses stay on the device and are read every ``log_every`` steps in one transfer (one
host sync instead of one per step); each step still gets its own ``StepEvent``.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import math
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from workbench import fileio
from workbench.data import bundle as data
from workbench.errors import WorkbenchError
from workbench.model import build
from workbench.training import checkpoint, evaluation, forecast, memory, optim
from workbench.training import events as ev
from workbench.training.controls import Controls, Freeze, Request, controllable_paths, freeze, train_mode
from workbench.training.loop import (Evaluation, GoodWeights, NonFiniteLoss, Parallel, StepRunner, StepWatch,
                                    evaluate, resolve_device)
from workbench.training.run_lock import RunLock
from workbench.training.runlog import MetricsLog, TensorBoardLog
from workbench.training.state import Best, RunShape, TrainingState, set_rng_state

_logger = logging.getLogger(__name__)

__all__ = ["Engine", "resolve_device"]


class Engine:
    """One training run of a project (an engine runs once; resume with a new one)."""

    def __init__(self, project, run_dir: Path | str | None = None,
                 handlers: Iterable[ev.Handler | Callable[[ev.Event], object]] = (),
                 resume_from: Path | str | None = None, device: str | None = None, epochs: int | None = None,
                 parallel: Parallel | None = None):
        # Copy everything now: the window may edit the project while the run goes on.
        self.project = project
        self.spec = project.model.copy()
        self.data_settings = project.data  # frozen dataclasses: the engine keeps the ones it started with
        self.settings = project.training
        if epochs is not None:
            self.settings = dataclasses.replace(self.settings, epochs=int(epochs))
        if device is not None:
            self.settings = dataclasses.replace(self.settings, device=device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.parallel = parallel or Parallel()
        self.controls = Controls(controllable_paths(self.spec))
        self.handlers: list[ev.Handler] = [MetricsLog()]
        if self.settings.tensorboard:
            self.handlers.append(TensorBoardLog())
        self.handlers.append(memory.MemoryMonitor())
        for handler in handlers:
            self.add_handler(handler)
        # made by setup()
        self.device: torch.device | None = None
        self.data: data.DataBundle | None = None
        self.task: data.Task | None = None
        self.loss_name: str | None = None
        self.model: nn.Module | None = None  # the plain module (the runner may hold it wrapped in DDP)
        self.optimizer: torch.optim.Optimizer | None = None
        self.schedule: optim.Schedule = optim.Schedule()  # the scheduler and how it steps
        self.scheduler = None  # = self.schedule.scheduler
        self.loader = self.val_loader = None
        self.steps_per_epoch = 0
        self.runner: StepRunner | None = None
        self.last_validation: Evaluation | None = None  # the newest epoch's validation pass
        self.state: TrainingState | None = None
        self.keeper: GoodWeights | None = None
        self.watch: StepWatch | None = None  # looks inside every watch.every-th step (watch_steps)
        self.writer = checkpoint.Writer()
        self.record: dict | None = None  # the project's run record, once the run is over
        self.lock: RunLock | None = None  # the run folder's lock while the run holds it (main process)
        # the run's own bookkeeping (engine thread)
        self._ran = self._ready = self._opened = self._validating = False
        self._made: list[Path] = []  # folders this run created (removed again if it never starts)
        self._notes: list[str] = []  # what claiming the folder found (a taken-over lock, temp files)
        self._t0: float | None = None
        self._started_at = ""
        self._resume_rng: dict | None = None
        self._pending: list[torch.Tensor] = []  # losses of the steps since the last read-out
        self._pending_meta: list[tuple[float, int]] = []  # their (lr, examples)
        self._flush_t = 0.0
        self._best_weights: dict[str, torch.Tensor] | None = None  # the best epoch's (early_stopping.restore_best)
        self._queue: collections.deque[ev.Event] = collections.deque()
        self._dispatching = False

    # ------------------------------------------------------------ handlers

    def add_handler(self, handler: ev.Handler | Callable[[ev.Event], object]) -> ev.Handler:
        """Follow the run with a Handler, or with a plain function of one event. Add handlers
        before ``run``; they are called in the order they were added, after the built-in ones."""
        if not isinstance(handler, ev.Handler):
            if not callable(handler):
                raise TypeError(f"a handler is a workbench.training.events.Handler or a function of one event, "
                                f"not {type(handler).__name__}")
            handler = ev.Listener(handler)
        self.handlers.append(handler)
        return handler

    def emit(self, event: ev.Event) -> ev.Event:
        """Hand an event to every handler (engine thread). One emitted from inside a handler
        waits until the event being handled has reached every handler."""
        self._queue.append(event)
        if not self._dispatching:
            self._drain()
        return event

    def _drain(self) -> None:
        self._dispatching = True
        try:
            while self._queue:
                event = self._queue.popleft()
                for handler in self.handlers:
                    try:
                        handler.on_event(self, event)
                    except Exception:  # a broken listener must not break the run
                        _logger.exception("event listener %s failed on %s", type(handler).__name__, event.kind)
        finally:
            self._dispatching = False

    def _emit_steps(self, steps: list[ev.StepEvent]) -> None:
        self._dispatching = True
        try:
            for handler in self.handlers:
                try:
                    handler.on_steps(self, steps)
                except Exception:  # a broken listener must not break the run
                    _logger.exception("event listener %s failed on steps", type(handler).__name__)
        finally:
            self._dispatching = False
        if self._queue:
            self._drain()

    def watch_steps(self, watch: StepWatch | None) -> None:
        """Run the first step and every ``watch.every``-th after it with ``watch`` (a handler's
        ``on_run_start`` calls this; workbench.insight.health does). None: no step is watched."""
        self.watch = watch if watch is not None and watch.every > 0 else None

    @property
    def step(self) -> int:
        """Optimiser steps done in the whole run (resumed runs count the earlier ones)."""
        return self.state.position.step if self.state is not None else 0

    # ------------------------------------------------------------ running

    def run(self) -> ev.Event:
        """Set up and train to the end; returns the FinishedEvent, StoppedEvent or FailedEvent."""
        if self._ran:
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
            for handler in self.handlers:
                try:
                    handler.on_run_end(self)
                except Exception:  # the run is over; closing a log must not hide how it ended
                    _logger.exception("handler %s failed at the end of the run", type(handler).__name__)
            self._stop_workers()
            self._release_run_dir()
        self._record(end)
        return end

    def setup(self) -> None:
        """Load data, build and check the model, create optimiser and schedule, restore a
        checkpoint. Raises WorkbenchError; ``run`` turns that into a FailedEvent.

        The run folder is claimed first (chosen, locked, cleared of temp files that killed runs
        left), so a folder another run is using is refused before any data is read."""
        self._mark_start()
        self._claim_run_dir()
        s, par = self.settings, self.parallel
        self.device = device = resolve_device(s.device)
        self.data = bundle = data.load_data(self.data_settings)
        self.task = task = bundle.task
        self.loss_name = task.default_loss if s.loss == "auto" else s.loss
        data.check_fit(self.spec, task, self.loss_name)
        torch.manual_seed(s.seed)
        if device.type == "cpu":  # the training batch, not build_model's example batch of 2, must fit
            build.check_memory(build.infer(self.spec), batch=self.data_settings.batch_size)
        self.model = model = build.build_model(self.spec).to(device)
        self.optimizer = optim.make_optimizer(model, s.optimizer)
        self.loader = bundle.loader("train", seed=s.seed, rank=par.rank, world_size=par.world_size, device=device)
        self.val_loader = bundle.loader("val", rank=par.rank, world_size=par.world_size,
                                        device=device) if bundle.val is not None else None
        self.steps_per_epoch = len(self.loader.batch_sampler)
        self.schedule = optim.make_schedule(self.optimizer, s, self.steps_per_epoch)
        self.scheduler, sched_per_step = self.schedule.scheduler, self.schedule.per_step
        if self.schedule.monitor == "val_acc" and (bundle.val is None or not task.is_classification):
            raise WorkbenchError("training.schedule.monitor: val_acc needs validation data of a classification "
                                 "task; use val_loss or train_loss")
        early = s.early_stopping
        if early.enabled and early.metric != "train_loss" and bundle.val is None:
            raise WorkbenchError(f"training.early_stopping.metric: {early.metric} needs validation data "
                                 "(data.val_fraction is 0); use train_loss or hold out some data")
        if early.enabled and early.metric == "val_acc" and not task.is_classification:
            raise WorkbenchError("training.early_stopping.metric: val_acc needs a classification task; use val_loss")
        notes: list[str] = list(self._notes)
        fit = forecast.run_note(self.spec, self.data_settings.batch_size, s.optimizer, str(device))
        notes += [fit] if fit else []  # a warning, not a refusal: the forecast may be pessimistic
        amp_dtype, scaler = None, None
        if s.amp and device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        elif s.amp:
            notes.append(f"mixed precision is for CUDA only; training in float32 on {device}")
        shape = RunShape(s.epochs, self.steps_per_epoch, self.data_settings.batch_size, par.world_size,
                         self.spec.to_json(), task.to_dict())
        self.state = TrainingState(model, self.optimizer, self.scheduler, sched_per_step, scaler, shape)
        if self.resume_from is not None:
            saved = checkpoint.load(self.resume_from)
            notes += self.state.load_state_dict(saved, source=str(self.resume_from))
            self._resume_rng = saved["rng"]
        # DDP after the restore: it sees the final frozen set
        self.runner = StepRunner(par.wrap(model), self.optimizer,
                                 optim.make_loss(self.loss_name, task.is_classification, s.loss_options,
                                                 task.num_classes if task.is_classification else None,
                                                 self._outputs()).to(device), device,
                                 s.grad_clip, amp_dtype, scaler, non_blocking=self.loader.pin_memory)
        train_mode(model)
        if not any(p.requires_grad for p in model.parameters()):
            notes.append("every layer is frozen: nothing will learn until one is unfrozen")
        self._opened = self.parallel.is_main
        for handler in self.handlers:
            handler.on_run_start(self, notes)
        memory.reset_peak(device)
        self.keeper = GoodWeights(model, self.step)
        total, trainable = build.param_count(model)
        self.emit(ev.StartedEvent(str(self.run_dir), str(device), s.epochs, self.steps_per_epoch,
                                  self.state.position.epoch + 1, self.step, self.data_settings.batch_size, total,
                                  trainable, task.to_dict(), notes))
        if self._resume_rng is not None:
            set_rng_state(self._resume_rng)  # last, so nothing in set-up draws from it
        self._ready = True

    def _outputs(self) -> int | None:
        """The model's outputs per example (the size of its last dimension), for the loss's checks."""
        shape = build.infer(self.spec).output_shape
        return int(shape[-1]) if shape else None

    def _mark_start(self) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()
            self._started_at = time.strftime("%Y-%m-%dT%H:%M:%S")

    def _claim_run_dir(self) -> None:
        """Choose the run folder; on the main process create it, lock it (RunLock: a live run
        there is refused, a killed run's lock taken over) and remove the temp files killed runs
        left there; then make sure it holds no other run's checkpoints. Under DDP the processes
        agree on the outcome (one collective): all start in rank 0's folder or all fail, so a
        refused rank 0 cannot leave the others waiting for it."""
        par = self.parallel
        if par.world_size == 1:
            self._claim_here()
            return
        problem = None
        try:
            self._claim_here()
        except WorkbenchError as exc:
            problem = exc
        answers = par.gather((str(self.run_dir) if par.is_main else None, str(problem) if problem else None))
        if problem is not None:
            raise problem
        others = [(rank, text) for rank, (_, text) in enumerate(answers) if text]
        if others:
            rank, text = others[0]
            raise WorkbenchError(f"process {rank} could not start, so none does: {text}")
        self.run_dir = Path(answers[0][0])

    def _claim_here(self) -> None:
        if self.run_dir is None:
            if self.resume_from is not None:
                self.run_dir = checkpoint.resolve(self.resume_from).parent
            elif self.parallel.is_main:
                self.run_dir = self._new_run_dir(self.project.run_folder() / time.strftime("%Y%m%d-%H%M%S"))
            else:  # other processes never write: the name only has to look like rank 0's
                self.run_dir = self.project.run_folder() / time.strftime("%Y%m%d-%H%M%S")
        if self.parallel.is_main:
            self._make_dirs(self.run_dir)
            self.lock = RunLock.acquire(self.run_dir)
            note = self.lock.takeover_note()
            if note:
                self._note(note)
            fileio.clean_stale_temps(self.run_dir, log=self._note)
        last = self.run_dir / checkpoint.LAST
        if last.exists() and (self.resume_from is None or checkpoint.resolve(self.resume_from).parent != self.run_dir):
            raise WorkbenchError(f"{self.run_dir} already holds a run ({checkpoint.LAST}); choose another folder, "
                                 f"or resume from {last}")

    def _note(self, text: str) -> None:
        _logger.info("%s", text)
        self._notes.append(text)

    def _new_run_dir(self, base: Path) -> Path:
        """A fresh folder named for the start time (-2, -3... when taken), made here: two runs
        starting in the same second (two windows) get a folder each."""
        self._make_dirs(base.parent)
        folder, n = base, 1
        while True:
            try:
                folder.mkdir()
            except FileExistsError:
                n += 1
                folder = base.with_name(f"{base.name}-{n}")
                continue
            except OSError as exc:
                raise WorkbenchError(f"cannot create the run folder {folder}: {exc.strerror or exc}; "
                                     "choose a folder you can write to") from None
            self._made.insert(0, folder)
            return folder

    def _make_dirs(self, folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkbenchError(f"cannot create the run folder {folder}: {exc.strerror or exc}; "
                                 "choose a folder you can write to") from None
        self._made = missing + self._made  # deepest first

    def _release_run_dir(self) -> None:
        """Every way out of ``run``: let go of the folder's lock; a run that never started
        removes the folders it made (empty ones only)."""
        if self.lock is not None:
            self.lock.release()
        if not self._opened:
            for folder in self._made:
                try:
                    folder.rmdir()
                except OSError:
                    break
        self._made = []

    def _train(self) -> ev.Event:
        s, pos = self.settings, self.state.position
        try:
            while pos.epoch < s.epochs:
                t_epoch = time.perf_counter()
                train_mode(self.model)
                self.loader.batch_sampler.set_epoch(pos.epoch, skip=pos.batch)
                self.loader.generator.manual_seed(s.seed * 1_000_003 + pos.epoch)
                if self._run_epoch() == "stop":
                    return self._stopped()
                self._flush()
                ended = self._end_epoch(time.perf_counter() - t_epoch)
                if ended == "stop":
                    return self._stopped()
                if ended == "early":
                    break
        except NonFiniteLoss as bad:
            back = self.keeper.restore_before(bad.step)
            lr = optim.current_lr(self.optimizer)
            return self.emit(ev.FailedEvent(
                f"the loss became {bad.value} at step {bad.step} (epoch {pos.epoch + 1}): the learning rate "
                f"{lr:g} is probably too high; lower it (try {lr / 10:g}) or set training.grad_clip (e.g. 1.0). "
                f"The model is back at {self._weights_at(back)}, the last known to give a finite loss",
                "training", bad.step))
        return self._finished()

    def _run_epoch(self) -> str:
        pos, runner, pending, meta = self.state.position, self.runner, self._pending, self._pending_meta
        controls = self.controls
        log_every = self.settings.log_every
        sched = self.scheduler if self.state.sched_per_step else None
        opt_groups = self.optimizer.param_groups
        watch = self.watch
        every = watch.every if watch is not None else 0
        self._flush_t = time.perf_counter()
        for x, y in self.loader:
            pending.append(runner(x, y, watch) if every and pos.step % every == 0 else runner(x, y))
            meta.append((opt_groups[0]["lr"], len(y)))
            pos.batch += 1
            pos.step += 1
            if sched is not None:
                sched.step()
            if len(pending) >= log_every:
                self._flush()
            if controls.attention and self._serve_controls():
                return "stop"
        return "done"

    def _flush(self) -> None:
        """Read the pending losses in one transfer; emit their step events; keep a good copy."""
        if not self._pending:
            return
        values, meta, stop = self.parallel.reduce_steps(torch.stack(self._pending), self._pending_meta)
        if stop:  # a process was asked to stop (DDP): every process stops after this same step
            self.controls.stop()
        now = time.perf_counter()
        rate = sum(n for _, n in meta) / max(now - self._flush_t, 1e-9)
        self._flush_t = now
        pos = self.state.position
        first = pos.step - len(values) + 1
        epoch = pos.epoch + 1
        steps = []
        try:
            for i, (value, (lr, n)) in enumerate(zip(values, meta)):
                if not math.isfinite(value):
                    raise NonFiniteLoss(first + i, value)
                pos.loss_sum += value * n
                pos.loss_count += n
                steps.append(ev.StepEvent(first + i, epoch, value, lr, rate))
        finally:
            self._emit_steps(steps)
        self._pending.clear()
        self._pending_meta.clear()
        self.keeper.confirm(pos.step)

    # ------------------------------------------------------------ controls (engine thread)

    def _serve_controls(self) -> bool:
        """Between two steps: apply the waiting requests; while paused, wait (applying requests
        as they come). True: stop now."""
        c = self.controls
        self._apply(c.take())
        if c.pausing:
            self._flush()
            self.emit(ev.PausedEvent(self.step))
            while not c.wait_resumed(0.05):
                self._apply(c.take())
            self._apply(c.take())
            if not c.stop_requested:
                self.emit(ev.ResumedEvent(self.step))
            self._flush_t = time.perf_counter()
        return c.stop_requested

    def _apply(self, requests: list[Request]) -> None:
        for r in requests:
            if isinstance(r, Freeze):
                freeze(self.model, r.path, r.frozen)
                self.emit(ev.FreezeEvent(self.step, r.path, r.frozen, build.param_count(self.model)[1]))
            else:
                optim.set_lr(self.optimizer, self.schedule, r.lr)
                self.emit(ev.LrEvent(self.step, r.lr))

    # ------------------------------------------------------------ epochs

    def _weights_at(self, step: int) -> str:
        return "its starting weights" if step == 0 else f"its weights after step {step}"

    def _end_epoch(self, seconds: float) -> str:
        """Validate, move to the next epoch, checkpoint. "stop": a stop came during the
        validation pass, which is dropped; the position stays at the end of the epoch's steps,
        so a resume validates this epoch again. "early": early stopping ends the run here."""
        pos, task = self.state.position, self.task
        train_loss = pos.loss_sum / max(1, pos.loss_count)
        result = None
        if self.val_loader is not None:
            self._validating = True
            result = evaluate(self.runner, self.val_loader, task.num_classes if task.is_classification else None,
                              self.loss_name, self.parallel, stop=lambda: self.controls.stop_requested)
            self._validating = False
            if result is None:
                return "stop"
        self.last_validation = result  # handlers of the EpochEvent read its predictions (samples.collect)
        metrics = {"val_loss": result.loss if result else None, "train_loss": train_loss,
                   "val_acc": result.acc if result else None}
        better = self._is_better(train_loss, result, metrics)
        if better:
            self.state.best = Best(result.acc if result else None, result.loss if result else None, train_loss,
                                   pos.epoch + 1)
            if self.settings.early_stopping.restore_best:
                self._best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        self.schedule.step_epoch(metrics)
        pos.epoch += 1
        pos.batch, pos.loss_sum, pos.loss_count = 0, 0.0, 0
        epoch_ev = ev.EpochEvent(pos.epoch, pos.step, train_loss, result.loss if result else None,
                                 result.acc if result else None, result.per_class if result else [],
                                 result.confusion if result else [],
                                 [ev.Mistake(*m) for m in result.mistakes] if result else [],
                                 optim.current_lr(self.optimizer), seconds, better)
        self.emit(epoch_ev)
        self._save(best=better)  # the logs flush here, epoch line included
        early = self.settings.early_stopping
        waited = self.state.epochs_since_best
        if early.enabled and pos.epoch < self.settings.epochs and waited > 0 and waited >= early.patience:
            return "early"
        return "done"

    def _is_better(self, train_loss: float, result, metrics: dict[str, float | None]) -> bool:
        """Is this epoch the run's best so far? By early stopping's metric (beyond its
        min_delta) while it is on; else by validation accuracy, then loss, else training loss."""
        b = self.state.best
        if b.epoch is None:
            return True
        early = self.settings.early_stopping
        if early.enabled:
            value, old = metrics[early.metric], getattr(b, early.metric)
            if value is None or not math.isfinite(value):
                return False
            if old is None:
                return True
            return value < old - early.min_delta if early.direction() == "min" else value > old + early.min_delta
        if result is None:
            return train_loss < b.train_loss
        if result.acc is not None:
            return (result.acc, -result.loss) > (b.val_acc, -b.val_loss)
        return result.loss < b.val_loss

    # ------------------------------------------------------------ checkpoints

    def _save(self, best: bool = False, wait: bool = False) -> Path | None:
        if not self.parallel.is_main:
            return None
        last = self.run_dir / checkpoint.LAST
        self.writer.submit(last, self.state.state_dict(), self.run_dir / checkpoint.BEST if best else None)
        try:
            for handler in self.handlers:
                handler.on_checkpoint(self)  # a log that cannot be written ends the run here
        except WorkbenchError:
            self.writer.wait()  # a full disk fails the checkpoint too: that error (naming last.ckpt) comes first
            raise
        if wait:
            self.writer.wait()
        return last

    # ------------------------------------------------------------ endings

    def _stopped(self) -> ev.Event:
        self._flush()
        path = self._save(wait=True)
        pos = self.state.position
        return self.emit(ev.StoppedEvent(pos.step, pos.epoch + 1, self._elapsed(), str(self.run_dir),
                                         str(path) if path else None))

    def _finished(self) -> ev.Event:
        self.writer.wait()
        best = self.run_dir / checkpoint.BEST
        b, epoch = self.state.best, self.state.position.epoch
        message = f"stopped early at epoch {epoch} (best at {b.epoch})" if epoch < self.settings.epochs else ""
        restored = self._restore_best(best)
        return self.emit(ev.FinishedEvent(self.step, epoch, b.val_acc, b.val_loss, b.epoch,
                                          self._elapsed(), str(self.run_dir), str(best) if best.exists() else None,
                                          message, restored, self._evaluation()))

    def _evaluation(self) -> dict | None:
        """The final model's test metrics (validation where there is no test part), main
        process only; a failure is logged and leaves the run finished."""
        if not self.parallel.is_main or (self.data.test is None and self.data.val is None):
            return None
        try:
            return evaluation.evaluate(self.model, self.data, loss=self.loss_name, device=self.device).to_dict()
        except Exception:  # noqa: BLE001 - the training is done; its metrics must not turn it into a failure
            _logger.exception("the final evaluation failed")
            return None

    def _restore_best(self, best: Path) -> int | None:
        """early_stopping.restore_best: put the best epoch's weights into the model (kept in
        memory when that epoch ran in this process, else read from best.ckpt, which holds them).
        last.ckpt keeps the run's end, so a resume goes on from there. The epoch restored, or None."""
        b = self.state.best
        if not self.settings.early_stopping.restore_best or b.epoch is None or b.epoch == self.state.position.epoch:
            return None
        weights = self._best_weights
        if weights is None:
            if not best.exists():
                _logger.warning("the best epoch's weights (epoch %s) were not restored: %s is missing", b.epoch, best)
                return None
            saved = checkpoint.load(best)
            if saved["position"]["epoch"] != b.epoch:
                _logger.warning("the best epoch's weights were not restored: %s holds epoch %s, not %s", best,
                                saved["position"]["epoch"], b.epoch)
                return None
            weights = saved["model"]
        with torch.no_grad():
            self.model.load_state_dict(weights)
        return b.epoch

    def _fail(self, exc: Exception, phase: str) -> ev.Event:
        step = self.step
        detail, fixable = "", False
        if isinstance(exc, torch.OutOfMemoryError):
            message = self._oom_message(step, phase)
        elif isinstance(exc, WorkbenchError):
            message = str(exc)
            detail = getattr(exc, "detail", "")  # e.g. the key-by-key list behind a checkpoint of another model
            fixable = True
        else:
            detail = traceback.format_exc()
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            message = f"unexpected error at step {step}: {type(exc).__name__}: {text}"
        if phase == "training" and self.model is not None:
            if self.runner.clear_update() or isinstance(exc, torch.OutOfMemoryError):
                message += f"; the model is back at {self._weights_at(self.keeper.restore_latest())}"
            self.optimizer.zero_grad(set_to_none=True)
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.empty_cache()
        return self.emit(ev.FailedEvent(message, phase, step, detail, fixable))

    def _oom_message(self, step: int, phase: str) -> str:
        bs = self.data_settings.batch_size
        where = f"at step {step + 1}" if phase == "training" else "while setting up"
        if self._validating:
            where = f"validating after epoch {self.state.position.epoch + 1}"
        fix = f"lower data.batch_size (try {max(1, bs // 2)})"
        if self.device is not None and self.device.type == "cuda":
            reading = memory.read([self.device]).device(f"cuda:{self.device.index or 0}")
            if reading is not None:
                where += f" ({memory.fmt_bytes(reading.peak)} peak of {memory.fmt_bytes(reading.total)})"
            if not self.settings.amp:
                fix += ", turn on training.amp"
        return (f"out of memory {where} on {self.device} with batch size {bs}: {fix}, use smaller images or a "
                "smaller model")

    def _settle_writes(self) -> None:
        """A failed run still waits for its last checkpoint write (its error is secondary)."""
        try:
            self.writer.wait()
        except WorkbenchError as exc:
            _logger.warning("%s", exc)

    def _stop_workers(self) -> None:
        """End DataLoader worker processes now rather than whenever the engine is collected:
        a loader with workers keeps them (persistent) until it is dropped."""
        self.loader = self.val_loader = None

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _record(self, end: ev.Event) -> None:
        if not self._opened:  # the run never got a folder (or is not the main process): nothing to record
            return
        b, pos = self.state.best, self.state.position
        self.record = {"id": self.run_dir.name, "dir": str(self.run_dir), "started": self._started_at,
                       "status": end.kind, "epochs": pos.epoch, "steps": pos.step,
                       "best_val_acc": b.val_acc, "best_val_loss": b.val_loss,
                       "best_epoch": b.epoch, "seconds": round(self._elapsed(), 2),
                       "device": str(self.device)}
        if self.resume_from is not None:
            self.record["resumed_from"] = str(self.resume_from)
        if isinstance(end, ev.FailedEvent):
            self.record["message"] = end.message
        if isinstance(end, ev.FinishedEvent) and end.message:
            self.record["message"] = end.message
        if isinstance(end, ev.FinishedEvent) and end.restored_epoch is not None:
            self.record["restored_epoch"] = end.restored_epoch
        if self.settings.early_stopping.enabled:
            self.record["early_stopping"] = self.settings.early_stopping.to_json()
        self.project.runs.append(self.record)
