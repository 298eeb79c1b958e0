"""Earlier runs of the project, as muted overlays: which runs, what each changed, their curves.

A run record (``project.runs``, see workbench.training) written by the window carries the
hyper-parameters and the frozen layers it started with and the freezes and learning-rate
changes made during it (ui.training.engine_bridge adds them), so a label can say what differed
from the run it is compared with: ``run 3 (stopped): lr 0.01, batch 32, frozen conv1``. A run
resumed from a checkpoint continues in its folder: one overlay per folder, named by every run
that trained there (``runs 1+2 (finished, acc 0.950): ...``). Curves come from each folder's
``metrics.jsonl``, read on a background thread (``load_series``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.training import runlog

from ui.training.plots.series import RunSeries, series_from_metrics

NAMES = {"batch_size": "batch", "val_fraction": "val", "optimizer": "", "lr": "lr", "weight_decay": "wd",
         "schedule": "schedule", "epochs": "epochs", "seed": "seed", "device": "", "amp": "amp",
         "source": "data", "path": "data"}


@dataclass
class Overlay:
    key: str  # the run folder: stable across reloads
    label: str
    series: RunSeries | None = None
    visible: bool = True
    runs: int = 1  # records that trained in this folder: a resume adds one, and the curves grow


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def describe(record: dict, now_settings: dict | None, now_frozen: list[str] | None,
             earlier: list[dict] = ()) -> str:
    """What this run did differently from ``now`` (the current run or the project's settings);
    ``earlier``: the records of the runs it resumed, whose mid-run changes it continues."""
    settings, frozen = record.get("settings"), record.get("frozen")
    if settings is None:
        return "settings not recorded"
    parts = []
    now_settings = now_settings or {}
    for key, value in settings.items():
        if key in now_settings and now_settings[key] != value:
            name = NAMES.get(key, key)
            if key == "path":
                value = Path(str(value)).name
            parts.append(f"{name} {_fmt(value)}".strip())
    if frozen is not None and now_frozen is not None and sorted(frozen) != sorted(now_frozen):
        parts.append("frozen " + (", ".join(frozen) if frozen else "none"))
    changes = [(c["step"], f"{'froze' if c['frozen'] else 'unfroze'} {c['path']}")
               for r in (*earlier, record) for c in r.get("freezes", [])]
    changes += [(c["step"], f"lr {_fmt(c['lr'])}") for r in (*earlier, record) for c in r.get("lr_changes", [])]
    parts += [f"{what} at step {step}" for step, what in sorted(changes, key=lambda c: c[0])]
    return ", ".join(parts) if parts else "same settings"


def label(numbers: int | list[int], record: dict, now_settings: dict | None, now_frozen: list[str] | None,
          earlier: list[dict] = ()) -> str:
    numbers = [numbers] if isinstance(numbers, int) else numbers
    status = record.get("status", "?")
    acc = record.get("best_val_acc")
    score = f", acc {acc:.3f}" if isinstance(acc, (int, float)) else ""
    name = f"run {numbers[0]}" if len(numbers) == 1 else "runs " + "+".join(map(str, numbers))
    return f"{name} ({status}{score}): {describe(record, now_settings, now_frozen, earlier)}"


def overlays_for(runs: list[dict], now_settings: dict | None, now_frozen: list[str] | None,
                 exclude: str | None = None) -> list[Overlay]:
    """One overlay per earlier run folder (ordered by its newest run), except ``exclude`` (the
    live run's). A resumed run shares its folder with the run it continued: the overlay is named
    by both, and its label reads from the newest record."""
    folders: dict[str, list[tuple[int, dict]]] = {}
    for number, record in enumerate(runs, 1):
        folder = record.get("dir")
        if folder and folder != exclude:
            folders[str(folder)] = folders.pop(str(folder), []) + [(number, record)]
    return [Overlay(folder, label([n for n, _ in trained], trained[-1][1], now_settings, now_frozen,
                                  [r for _, r in trained[:-1]]), runs=len(trained))
            for folder, trained in folders.items()]


def load_series(folder: str) -> RunSeries | None:
    """A run's curves from its metrics file (background thread); None when it is gone."""
    path = Path(folder)
    if not (path / runlog.METRICS).is_file():
        return None
    rows = runlog.read_metrics(path)
    series = series_from_metrics(rows)
    return series if series.n_steps or len(series.epoch_no) else None
