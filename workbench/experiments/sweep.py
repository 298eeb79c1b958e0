"""A sweep: an Optuna study whose trials are training runs of the project with sampled values.

Optuna does the searching, pruning, storage and the sharing between workers; this module
connects it to the project and the Engine:

- ``Sweep(project, space).run()`` is one worker. Each trial writes its sampled values into a
  copy of the project (``space.apply``), trains it with the Engine into
  ``<project>.runs/sweeps/<study>/trial-<number>``, reports the per-epoch validation metric
  to the trial (``TrialReporter``, an Engine handler) and stops the run at once when the
  pruner says so (the trial is PRUNED). The trial's value is the best metric of its epochs.
- A value the project cannot take, or a stack that does not infer, makes that trial FAIL
  with the message (the layer error) in its user attr ``"error"``; the sweep goes on.
- Storage: any Optuna RDB URL; by default ``sqlite:///<project without .wbproj>.sweeps.db``.
  Any number of workers (``--jobs``, other machines) run the same study against it:
  Optuna's own distributed mode. The study's TOTAL is ``space.trials`` trials of any state
  (Optuna's ``MaxTrialsCallback`` counting all states). Counting and creating a trial are
  one step under a file lock shared by the workers of one machine (``filelock``, beside an
  SQLite file, else in the temp folder), so workers on one machine never make one too many.
- A stopped worker (``stop()``: SIGTERM / SIGINT in the CLI, the window's Stop) ends its
  running trial as FAIL with ``"error": "stopped"``. A trial whose worker was killed
  (``kill -9``, a crash) is marked FAIL when a worker starts again: at once where the dead
  worker ran on this host (its pid is gone), and through Optuna's heartbeat
  (``fail_stale_trials``) for workers elsewhere.

What a trial stores is listed in /work/tools/SWEEP_CONTRACT.md and in ``trial_rows``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import socket
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.errors import WorkbenchError
from workbench.experiments import space as sp
from workbench.experiments.space import SearchSpace, SweepParam
from workbench.project.search_space import METRICS
from workbench.project.project_file import SUFFIX, Project
from workbench.training import events as ev

HEARTBEAT_S = 10  # a running trial writes a heartbeat this often (Optuna's heartbeat thread)
GRACE_S = 60  # a RUNNING trial without a heartbeat for this long is failed by the next worker elsewhere
MEDIAN_STARTUP = 4  # median pruning starts once this many trials have finished
STOPPED = "stopped"


class SweepStopped(Exception):
    """The worker was asked to stop: its running trial ends FAIL ("stopped")."""


class TrialFailed(Exception):
    """A trial that could not train (a value the project cannot take, a stack that does not
    infer, a failed run): the trial is FAIL and the sweep goes on."""


def default_storage(project_path: Path | str | None) -> str:
    """``sqlite:///<abs path of the project file without .wbproj>.sweeps.db``."""
    path = Path(project_path) if project_path is not None else Path.cwd() / "project"
    path = path.resolve()
    stem = path.name[:-len(SUFFIX)] if path.name.endswith(SUFFIX) else path.name
    return f"sqlite:///{path.with_name(stem + '.sweeps.db')}"


def default_study_name(project: Project, space: SearchSpace | None = None) -> str:
    """``<file stem>-<8 hex>``: the same project and parameters (ranges, sampler, metric) give
    the same study, so running a command again continues it; another space starts a new one.
    The trial total, time budget and pruner may change between runs of one study."""
    space = space if space is not None else project.sweep or SearchSpace()
    key = json.dumps({"params": space.to_json()["params"], "sampler": space.sampler, "metric": space.metric,
                      "direction": space.direction}, sort_keys=True)
    stem = project.path.stem if project.path is not None else "".join(
        ch if ch.isalnum() or ch in "-_" else "_" for ch in project.name)
    return f"{stem}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def study_folder(project: Project, study_name: str) -> Path:
    """``<project>.runs/sweeps/<study>``: the trials' run folders and trials.csv."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in study_name) or "study"
    return project.run_folder() / "sweeps" / safe


def open_storage(url: str):
    """The Optuna storage for a URL (an RDB URL: sqlite, postgresql, mysql), with heartbeats
    so a killed worker's trial is failed. A bad URL is a WorkbenchError naming it."""
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        db = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if db and not Path(db).parent.is_dir():
            raise WorkbenchError(f"--storage {url}: the folder {Path(db).parent} does not exist")
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}  # workers wait for each other's writes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, **kwargs)
        except ImportError as exc:
            raise WorkbenchError(f"--storage {url}: the database driver is not installed ({exc}); for "
                                 "postgresql install psycopg2, for mysql PyMySQL") from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy / driver errors: say which URL and why
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WorkbenchError(f"--storage {url}: cannot open the study storage ({text})") from None


def study_names(url: str) -> list[str]:
    """The studies a storage holds (none where an SQLite file does not exist yet)."""
    import optuna

    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return []
    return optuna.study.get_all_study_names(open_storage(url))


def load_study(url: str, name: str):
    """An existing study (the window's past sweeps, the CLI's table); WorkbenchError if none."""
    import optuna

    storage = open_storage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise WorkbenchError(f"no study {name!r} in {url}") from None


def make_sampler(space: SearchSpace, seed: int | None = None):
    import optuna

    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if space.sampler == "grid":
        return optuna.samplers.GridSampler(sp.grid_values(space), seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(space: SearchSpace):
    import optuna

    if space.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP, n_warmup_steps=0)
    if space.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
    return optuna.pruners.NopPruner()


def suggest(trial, param: SweepParam) -> Any:
    """The trial's value for one parameter, from Optuna's suggest API."""
    if param.is_choice:
        return trial.suggest_categorical(param.path, list(param.choices))
    if param.integer:
        return trial.suggest_int(param.path, int(param.low), int(param.high), step=int(param.step or 1),
                                 log=param.log)
    return trial.suggest_float(param.path, float(param.low), float(param.high), step=param.step, log=param.log)


class TrialReporter(ev.Handler):
    """Follows one trial's run: after each epoch, reports the validation metric to the trial
    (``trial.report``: what the pruner reads), keeps the epoch in the trial's ``"epochs"``
    attr, and stops the run at once when the trial should be pruned."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric = trial, metric
        self.epochs: list[dict] = []
        self.values: list[float] = []
        self.pruned_at: int | None = None

    def on_event(self, engine, event: ev.Event) -> None:
        if not isinstance(event, ev.EpochEvent):
            return
        self.epochs.append({"epoch": event.epoch, "train_loss": event.train_loss, "val_loss": event.val_loss,
                            "val_acc": event.val_acc, "seconds": round(event.seconds, 3)})
        self.trial.set_user_attr("epochs", self.epochs)
        value = getattr(event, self.metric)
        if value is None or not math.isfinite(value):
            return
        self.values.append(value)
        self.trial.report(value, event.epoch)
        if self.trial.should_prune():
            self.pruned_at = event.epoch
            engine.controls.stop()


@dataclass
class SweepResult:
    study_name: str
    storage: str
    folder: Path
    stopped: bool = False
    rows: list[dict] = field(default_factory=list)


class Sweep:
    """One worker of a study: ``run()`` trains trials until the study holds ``space.trials``
    trials, the time budget is spent, or ``stop()`` is called (from any thread)."""

    def __init__(self, project: Project, space: SearchSpace, storage: str | None = None,
                 study_name: str | None = None, device: str | None = None, pruner=None,
                 on_trial: Callable[[Any], None] | None = None,
                 on_event: Callable[[int, ev.Event], None] | None = None):
        found = sp.problems(space, project)
        if found:
            raise WorkbenchError(found[0] if len(found) == 1 else f"{len(found)} problems in the search space: "
                                 + "; ".join(found))
        self.project, self.space, self.device = project, space, device
        self.storage_url = storage or default_storage(project.path)
        self.study_name = study_name or default_study_name(project, space)
        self.folder = study_folder(project, self.study_name)
        self.pruner = pruner if pruner is not None else make_pruner(space)
        self.on_trial, self.on_event = on_trial, on_event
        self._stop = threading.Event()
        self._engine = None
        self._engine_lock = threading.Lock()
        self._lock = None  # the machine-wide file lock around "count, then create a trial"
        self._holding = False
        self.study = None
        self.storage = None  # the Optuna storage object, once open()

    # ---------------------------------------------------------------- control

    def stop(self) -> None:
        """End the running trial (FAIL, "stopped") and start no other. Any thread; returns at once."""
        self._stop.set()
        with self._engine_lock:
            if self._engine is not None:
                self._engine.controls.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ---------------------------------------------------------------- running

    def open(self):
        """Create or load the study (the storage's tables too) and note the space and project."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # the rows say how each trial ended; no tracebacks
        storage = open_storage(self.storage_url)
        direction = self.space.direction
        try:
            study = optuna.create_study(storage=storage, study_name=self.study_name, direction=direction,
                                        sampler=make_sampler(self.space), pruner=self.pruner, load_if_exists=True)
        except Exception as exc:  # noqa: BLE001 - a storage that fails mid-way: one message naming it
            raise WorkbenchError(f"cannot open study {self.study_name!r} in {self.storage_url}: {exc}") from None
        if study.direction.name.lower() != direction:
            raise WorkbenchError(f"study {self.study_name!r} in {self.storage_url} was made to "
                                 f"{study.direction.name.lower()} its metric; this space wants to {direction} "
                                 f"{self.space.metric}: use another --study name")
        study.set_user_attr("space", self.space.to_json())
        study.set_user_attr("project", str(self.project.path) if self.project.path else self.project.name)
        self.study, self.storage = study, storage
        return study

    def run(self) -> SweepResult:
        """Train trials until the study's total, the time budget or a stop; returns the table."""
        import optuna
        from filelock import FileLock

        study = self.study or self.open()
        self._lock = FileLock(str(_lock_path(self.storage_url, self.study_name)))
        self.folder.mkdir(parents=True, exist_ok=True)
        done = optuna.study.MaxTrialsCallback(self.space.trials, states=None)

        def after_trial(study_, frozen) -> None:
            self._take_lock()  # held until the next trial exists (released in objective)
            done(study_, frozen)
            if self.stopping:
                study_.stop()
            if self.on_trial is not None:
                self.on_trial(frozen)

        self._take_lock()
        try:
            mark_dead_workers(study, self.storage)
            if len(study.get_trials(deepcopy=False)) < self.space.trials and not self.stopping:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.optimize(self._objective, timeout=self.space.timeout, callbacks=[after_trial],
                                   catch=(TrialFailed,), gc_after_trial=False)
        except SweepStopped:
            pass
        finally:
            self._drop_lock()
        rows = trial_rows(study)
        return SweepResult(self.study_name, self.storage_url, self.folder, self.stopping, rows)

    def _take_lock(self) -> None:
        if not self._holding:
            self._lock.acquire()
            self._holding = True

    def _drop_lock(self) -> None:
        if self._holding:
            self._holding = False
            self._lock.release()

    def _objective(self, trial) -> float:
        from workbench.training.engine import Engine

        self._drop_lock()  # the trial exists: other workers may count and create again
        started = time.perf_counter()
        trial.set_user_attr("worker", _me())
        values = {p.path: suggest(trial, p) for p in self.space.params}
        run_dir = self.folder / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", str(run_dir))
        if self.stopping:
            self._fail(trial, STOPPED, started, SweepStopped)
        try:
            project = sp.apply(self.project, values)
        except WorkbenchError as exc:
            self._fail(trial, _one_line(str(exc)), started)
        reporter = TrialReporter(trial, self.space.metric)
        handlers: list = [reporter]
        if self.on_event is not None:
            number = trial.number
            handlers.append(lambda event: self.on_event(number, event))
        engine = Engine(project, run_dir=run_dir, handlers=handlers, device=self.device)
        with self._engine_lock:
            self._engine = engine
        if self.stopping:  # stop() came before the engine was there to hear it
            engine.controls.stop()
        try:
            end = engine.run()
        finally:
            with self._engine_lock:
                self._engine = None
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        if isinstance(end, ev.FinishedEvent) and end.checkpoint:
            trial.set_user_attr("checkpoint", end.checkpoint)
        elif isinstance(end, ev.StoppedEvent) and end.checkpoint:
            best = Path(end.run_dir) / "best.ckpt"
            trial.set_user_attr("checkpoint", str(best) if best.exists() else end.checkpoint)
        if isinstance(end, ev.FailedEvent):
            self._fail(trial, _one_line(end.message), started)
        if reporter.pruned_at is not None and not self.stopping:
            raise optuna_pruned(f"pruned after epoch {reporter.pruned_at}")
        if isinstance(end, ev.StoppedEvent):
            self._fail(trial, STOPPED, started, SweepStopped)
        if not reporter.values:
            self._fail(trial, f"the run reported no {self.space.metric} (is there validation data"
                       + ("; a regression task has no val_acc: use metric val_loss)" if self.space.metric == "val_acc"
                          else ")"), started)
        return max(reporter.values) if self.space.direction == "maximize" else min(reporter.values)

    def _fail(self, trial, message: str, started: float, kind: type[Exception] = TrialFailed) -> None:
        trial.set_user_attr("error", message)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        raise kind(message)


def optuna_pruned(message: str) -> Exception:
    import optuna

    return optuna.TrialPruned(message)


def _one_line(text: str) -> str:
    return " | ".join(line.strip(" -") for line in text.splitlines() if line.strip())


def _me() -> dict:
    """Who runs a trial: host, pid and the process's start time (a reused pid is not this one)."""
    import psutil

    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": psutil.Process(pid).create_time()}


def _alive(worker: dict) -> bool:
    import psutil

    try:
        return abs(psutil.Process(int(worker["pid"])).create_time() - float(worker["started"])) < 1.0
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def mark_dead_workers(study, storage) -> list[int]:
    """Mark FAIL each RUNNING trial whose worker ran on this host and is gone (killed with -9,
    crashed); their ``"error"`` says so. Workers elsewhere are left to Optuna's heartbeat.
    Returns the trial numbers marked."""
    import optuna
    from optuna.trial import TrialState

    marked = []
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if not isinstance(worker, dict) or worker.get("host") != host or _alive(worker):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, "error", f"its worker (pid {worker.get('pid')}) ended without "
                                        "finishing it (killed?)")
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                marked.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    return marked


def _lock_path(url: str, study_name: str) -> Path:
    if url.startswith("sqlite:///"):
        db = Path(url[len("sqlite:///"):])
        return db.with_name(f".{db.name}.lock")
    key = hashlib.sha1(f"{url}\0{study_name}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"workbench-sweep-{key}.lock"


# -------------------------------------------------------------------- reading a study

def trial_rows(study) -> list[dict]:
    """Every trial as plain values, in trial order: number, state, value, params (by PATH),
    epochs (list), seconds, error, run_dir, checkpoint, pruned (bool)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = t.state.name
        error = t.user_attrs.get("error", "")
        if state == "FAIL" and not error:
            error = "its worker ended without finishing it (killed?)"
        rows.append({"number": t.number, "state": state, "value": t.value if state == "COMPLETE" else None,
                     "best": _best(t, study.direction.name.lower()), "params": dict(t.params),
                     "epochs": list(t.user_attrs.get("epochs", [])), "seconds": t.user_attrs.get("seconds"),
                     "error": error, "run_dir": t.user_attrs.get("run_dir"),
                     "checkpoint": t.user_attrs.get("checkpoint")})
    return rows


def _best(trial, direction: str) -> float | None:
    """The best metric a trial reached, complete or pruned (the table's "best" column)."""
    if trial.value is not None:
        return trial.value
    values = [v for v in trial.intermediate_values.values() if v is not None and math.isfinite(v)]
    if not values:
        return None
    return max(values) if direction == "maximize" else min(values)


def best_row(rows: list[dict], direction: str) -> dict | None:
    done = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    if not done:
        return None
    pick = max if direction == "maximize" else min
    return pick(done, key=lambda r: r["value"])


def write_csv(rows: list[dict], path: Path) -> Path:
    """trials.csv: one line a trial (number, state, value, best, each PATH, epochs, seconds,
    error, run_dir, checkpoint), written atomically."""
    import csv
    import io

    from workbench import fileio

    paths: list[str] = []
    for row in rows:
        paths += [p for p in row["params"] if p not in paths]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "state", "value", "best", *paths, "epochs", "seconds", "error", "run_dir",
                     "checkpoint"])
    for row in rows:
        writer.writerow([row["number"], row["state"], _cell(row["value"]), _cell(row["best"]),
                         *(_cell(row["params"].get(p)) for p in paths), len(row["epochs"]),
                         _cell(row["seconds"]), row["error"], row["run_dir"] or "", row["checkpoint"] or ""])
    fileio.write_text(path, out.getvalue())
    return path


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def with_overrides(space: SearchSpace, params: list[SweepParam], **options) -> SearchSpace:
    """``space`` with ``params`` added or replaced and the options given (not None) set."""
    for param in params:
        space = space.with_param(param)
    changes = {k: v for k, v in options.items() if v is not None}
    if "metric" in changes and "direction" not in changes:
        changes["direction"] = METRICS[changes["metric"]]
    return dataclasses.replace(space, **changes)
