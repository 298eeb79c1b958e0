"""What the Sweep dock shows of a study, read from its Optuna storage as plain data.

``read_study(request)`` runs on a worker thread (``ui.common.workers``) about once a second
while a sweep runs, and once when a project opens (its past sweeps): it never touches a widget
and returns a ``Snapshot`` (the storage's study names, the chosen study's trials as
``TrialRow``s, the best trial, parameter importances). A storage file that does not exist yet
is an empty snapshot, never a new file. Importances (Optuna's own
``optuna.importance.get_param_importances``) cost a fit of a forest, so a ``Reader`` keeps the
last ones and computes them again only when the number of complete trials changed; it also
keeps the storage object, so a poll does not connect and check the schema each time.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # "RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING"
    params: dict
    value: float | None  # the objective: the trial's best validation metric
    epochs: list[dict]  # user_attrs "epochs": {"epoch", "train_loss", "val_loss", "val_acc", "seconds"}
    seconds: float | None
    error: str = ""
    checkpoint: str = ""
    run_dir: str = ""

    @property
    def epochs_done(self) -> int:
        return len(self.epochs)


@dataclass(frozen=True)
class Snapshot:
    storage: str
    studies: list[str] = field(default_factory=list)
    study: str | None = None
    direction: str = "maximize"
    metric: str = "val_acc"
    paths: list[str] = field(default_factory=list)  # the parameters, in the order the space lists them
    trials: list[TrialRow] = field(default_factory=list)
    best: int | None = None  # the best complete trial's number
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""  # why there are no importances yet
    problem: str = ""  # the storage could not be read

    def trial(self, number: int | None) -> TrialRow | None:
        return next((t for t in self.trials if t.number == number), None)


def sqlite_file(storage: str) -> Path | None:
    """The file of an SQLite URL ('sqlite:////abs/x.sweeps.db'), else None."""
    prefix = "sqlite:///"
    return Path(storage[len(prefix):]) if storage.startswith(prefix) else None


def _clean(value):
    return None if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


class Reader:
    """Reads one storage, keeping its connection and the last importances (one per dock)."""

    def __init__(self):
        self._lock = threading.Lock()  # one read at a time (the dock starts one job at a time anyway)
        self._storage: tuple[str, object] | None = None
        self._importances: dict[tuple, tuple[dict, str]] = {}

    def _open(self, url: str):
        if self._storage is None or self._storage[0] != url:
            self._storage = (url, optuna.storages.get_storage(url))
            self._importances.clear()
        return self._storage[1]

    def read(self, storage: str, study: str | None) -> Snapshot:
        """The storage's studies and ``study`` (None: the newest), as plain data."""
        with self._lock:
            path = sqlite_file(storage)
            if path is not None and not path.is_file():
                return Snapshot(storage)
            try:
                return self._read(storage, study)
            except Exception as exc:  # a locked or damaged file: said in the dock, read again next time
                self._storage = None
                return Snapshot(storage, problem=f"could not read {path or storage}: {exc}")

    def _read(self, url: str, wanted: str | None) -> Snapshot:
        storage = self._open(url)
        names = [s.study_name for s in storage.get_all_studies()]
        if not names:
            return Snapshot(url)
        name = wanted if wanted in names else names[-1]
        study = optuna.load_study(study_name=name, storage=storage)
        attrs = study.user_attrs
        space = attrs.get("space") or {}
        metric = space.get("metric") or "val_acc"
        direction = study.direction.name.lower()
        rows = []
        for t in study.get_trials(deepcopy=False):
            user = t.user_attrs
            rows.append(TrialRow(t.number, t.state.name, dict(t.params), _clean(t.value),
                                 list(user.get("epochs") or []), _clean(user.get("seconds")),
                                 str(user.get("error") or ""), str(user.get("checkpoint") or ""),
                                 str(user.get("run_dir") or "")))
        paths = list((space.get("params") or {}).keys())
        for row in rows:
            paths += [p for p in row.params if p not in paths]
        complete = [r for r in rows if r.state == "COMPLETE" and r.value is not None]
        best = None
        if complete:
            pick = max if direction == "maximize" else min
            best = pick(complete, key=lambda r: r.value).number
        importances, note = self._importance(name, study, complete)
        return Snapshot(url, names, name, direction, metric, paths, rows, best, importances, note)

    def _importance(self, name: str, study, complete: list[TrialRow]) -> tuple[dict, str]:
        key = (name, len(complete))
        if key in self._importances:
            return self._importances[key]
        varied = {p for p in {k for r in complete for k in r.params}
                  if len({repr(r.params.get(p)) for r in complete}) > 1}
        if len(complete) < 2 or not varied:
            found = ({}, "Importances need at least two complete trials with different values.")
        else:
            try:
                found = (dict(optuna.importance.get_param_importances(study)), "")
            except (ValueError, RuntimeError) as exc:
                found = ({}, f"No importances yet: {exc}")
        self._importances[key] = found
        return found
