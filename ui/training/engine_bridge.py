"""The QThread bridge: runs ``workbench.training.Engine`` off the UI thread.

Everything the worker sees is plain data copied before the thread starts (``snapshot``):
the model spec, the data and training sections and the project's path, never a widget or
the live project. The engine's events land in a locked list in the worker thread (with
their arrival time, and for each epoch a grid of evaluated validation samples): the bridge
is one of the engine's handlers, after a ``SampleCollector`` when samples are wanted. A QTimer
on the UI thread drains that list every ``DELIVERY_MS`` and emits one ``events`` signal
per batch, so a thousand steps a second cost the UI ~15 signals. ``ended`` comes after
the thread has stopped, with the end event and the run record (also appended to the
project the run was started from).

Controls (pause, resume, stop, freeze, learning rate) go straight to the engine's
thread-safe ``controls``; it applies them between two steps.
"""
from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QStandardPaths, QThread, QTimer, Signal

from workbench.insight import health
from workbench.model import build
from workbench.training import events as ev
from workbench.project import project_file as projects
from workbench.training.engine import Engine

from workbench.training import samples as eval_samples

DELIVERY_MS = 66  # ~15 batches a second: smooth to the eye, cheap for the event loop
ENGINE_NICE = 10  # Linux: the engine thread (and the OpenMP team it starts) runs this much nicer than the UI
_logger = logging.getLogger(__name__)
_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def warm_up_imports() -> threading.Thread:
    """Import on a plain thread now (once per process) what the first run would import in the
    engine thread, where a module's import holds the GIL for stretches the window cannot use:
    torch._dynamo, which the first ``torch.optim`` optimiser imports (~1.2 s of Python; it froze
    the window for ~200 ms at the first Start), and the run log's TensorBoard writer and
    scikit-learn's metrics (~150 ms together under ``-X importtime``; a 70 ms heartbeat gap at
    one first Start of three)."""
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            def work():
                for name in ("torch._dynamo", "torch.utils.tensorboard.writer", "sklearn.metrics"):
                    try:
                        importlib.import_module(name)
                    except Exception:  # optional here: a real failure shows where the run needs it
                        _logger.debug("warming up %s failed", name, exc_info=True)
            _warm_thread = threading.Thread(target=work, name="workbench-import-warm-up", daemon=True)
            _warm_thread.start()
        return _warm_thread


def snapshot(project: projects.Project) -> projects.Project:
    """A private copy for the engine: the window may edit its project while the run goes on.
    A project never saved gets its runs in the app's data folder (not wherever the window
    was started from)."""
    path = project.path
    if path is None:
        stem = re.sub(r"\W+", "_", project.name).strip("_").lower() or "untitled"
        path = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)) \
            / "unsaved" / f"{stem}{projects.SUFFIX}"
    return projects.Project(project.name, project.model.copy(), project.data, project.training, [],
                            project.description, path)  # settings are frozen: shared, never changed in place


@dataclass
class Delivered:
    """One engine event as the UI receives it."""

    event: ev.Event
    time: float  # seconds since the run started, when the event reached the bridge
    samples: eval_samples.SampleGrid | None = None  # epoch events of classification runs


@dataclass
class RunSettings:
    """What a run record says about the run, beyond the engine's own fields (for overlays)."""

    settings: dict
    frozen: list[str]
    freezes: list[dict] = field(default_factory=list)
    lr_changes: list[dict] = field(default_factory=list)


class _Worker(QThread):
    def __init__(self, engine: Engine, parent: QObject | None = None):
        super().__init__(parent)
        self.engine = engine
        self.end: ev.Event | None = None
        self.setObjectName("workbench-engine")

    def run(self) -> None:
        lower_priority()
        self.end = self.engine.run()  # never raises: failures end in a FailedEvent


def lower_priority() -> None:
    """Make the calling thread background work for the OS scheduler.

    With torch using every core, the UI thread had to share one with a training thread: a
    10 ms frame took 30-40 ms and the window stuttered (heartbeat p99 ~45 ms on 2 cores).
    On Linux nice is per thread, and threads started from this one (torch's OpenMP team,
    the checkpoint writer, DataLoader workers) inherit it; the training loses only the CPU
    time the UI actually uses. Elsewhere QThread's LowPriority (given at start) applies."""
    if sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + ENGINE_NICE))
        except OSError:  # not allowed here: train at normal priority
            _logger.debug("could not lower the engine thread's priority", exc_info=True)


class TrainingRun(QObject):
    """One training run on its own thread. Create, connect, ``start()``; it emits ``events``
    in batches and ``ended`` once, after the thread has stopped."""

    events = Signal(list)  # [Delivered], in the order the engine emitted them
    ended = Signal(object, object)  # end event (Finished/Stopped/FailedEvent), run record dict or None

    def __init__(self, project: projects.Project, *, resume_from: Path | str | None = None,
                 run_dir: Path | str | None = None, epochs: int | None = None, samples: int = 12,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.project = project  # the live project: the record goes here at the end
        self.copy = snapshot(project)
        self.engine = Engine(self.copy, run_dir=run_dir, resume_from=resume_from, epochs=epochs)
        self.info = RunSettings(run_settings(self.copy), build.frozen_paths(self.copy.model))
        self.samples = samples
        self._grids: dict[int, eval_samples.SampleGrid | None] = {}  # epoch -> its samples (engine thread)
        for handler in health.handlers():  # health samples and alerts (training.health_every)
            self.engine.add_handler(handler)
        if samples:  # before the bridge: an epoch's samples are ready when its event arrives here
            self.engine.add_handler(eval_samples.SampleCollector(self._samples_ready, samples))
        self.engine.add_handler(self._on_event)
        self._lock = threading.Lock()
        self._pending: list[Delivered] = []
        self._t0 = 0.0
        self.end: ev.Event | None = None
        self.record: dict | None = None
        self.paused = False
        self._thread = _Worker(self.engine, self)
        self._thread.finished.connect(self._finish)
        self._timer = QTimer(self)
        self._timer.setInterval(DELIVERY_MS)
        self._timer.timeout.connect(self._deliver)

    # ------------------------------------------------------------ life cycle (UI thread)
    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._timer.start()
        self._thread.start(QThread.Priority.LowPriority)

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, timeout_s: float = 60.0) -> bool:
        """Block until the thread ended (keeping paint events flowing), then deliver the end
        now rather than on the next event-loop turn. False on timeout."""
        deadline = time.monotonic() + timeout_s
        while not self._thread.wait(50):
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
            if time.monotonic() > deadline:
                return False
        self._finish()
        return True

    # ------------------------------------------------------------ controls (any thread)
    def pause(self) -> None:
        self.paused = True
        self.engine.controls.pause()

    def resume(self) -> None:
        self.paused = False
        self.engine.controls.resume()

    def stop(self) -> None:
        self.paused = False
        self.engine.controls.stop()

    def set_frozen(self, path: str, frozen: bool) -> None:
        self.engine.controls.set_frozen(path, frozen)

    def set_lr(self, lr: float) -> None:
        self.engine.controls.set_lr(lr)

    # ------------------------------------------------------------ worker thread
    def _samples_ready(self, event: ev.EpochEvent, grid: eval_samples.SampleGrid | None) -> None:
        self._grids[event.epoch] = grid

    def _on_event(self, event: ev.Event) -> None:
        stamp = time.perf_counter() - self._t0
        grid = self._grids.pop(event.epoch, None) if isinstance(event, ev.EpochEvent) else None
        with self._lock:
            self._pending.append(Delivered(event, stamp, grid))

    # ------------------------------------------------------------ UI thread
    def _deliver(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if batch:
            for item in batch:
                if isinstance(item.event, ev.FreezeEvent):
                    e = item.event
                    self.info.freezes.append({"step": e.step, "path": e.path, "frozen": e.frozen})
                elif isinstance(item.event, ev.LrEvent):
                    self.info.lr_changes.append({"step": item.event.step, "lr": item.event.lr})
            self.events.emit(batch)

    def _finish(self) -> None:
        if self.end is not None or self._thread.isRunning():
            return
        self._timer.stop()
        self._deliver()
        self.end = self._thread.end
        record = self.engine.record
        if record is not None:
            record = dict(record, settings=self.info.settings, frozen=self.info.frozen)
            if self.info.freezes:
                record["freezes"] = list(self.info.freezes)
            if self.info.lr_changes:
                record["lr_changes"] = list(self.info.lr_changes)
            self.project.runs.append(record)
        self.record = record
        self.ended.emit(self.end, record)


def run_settings(project: projects.Project) -> dict:
    """The hyper-parameters a person compares runs by."""
    d, t = project.data, project.training
    out = {"source": d.source, "batch_size": d.batch_size, "val_fraction": d.val_fraction,
           "optimizer": t.optimizer.type, "lr": t.optimizer.lr, "weight_decay": t.optimizer.weight_decay,
           "schedule": t.schedule.type, "epochs": t.epochs, "seed": t.seed, "device": t.device, "amp": t.amp}
    if d.path:
        out["path"] = d.path
    return out
