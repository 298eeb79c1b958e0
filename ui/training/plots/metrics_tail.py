"""Following a run folder's ``metrics.jsonl`` as another process writes it.

``LineReader`` (no Qt) returns the complete JSON lines added since the last read, keeping a
torn last line for the next time. ``MetricsTail`` polls it on a QTimer in the UI thread (a
read is a seek and at most ``MAX_READ`` bytes: it never blocks the window) and emits the new
rows in one batch; ``SeriesFeed`` turns such batches into the ``RunSeries`` the live plots
(ui.plots.LivePlots) draw, the same curves the training dock shows.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from workbench.training import runlog

from ui.training.plots.series import RunSeries

POLL_MS = 250
MAX_READ = 1 << 20


class LineReader:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.offset = 0
        self._partial = b""

    def read(self, limit: int = MAX_READ) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, 2)
                if fh.tell() < self.offset:  # the file was replaced: start over
                    self.offset, self._partial = 0, b""
                fh.seek(self.offset)
                data = fh.read(limit)
        except OSError:  # not written yet, or gone
            return []
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        rows = []
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows


class MetricsTail(QObject):
    rows = Signal(list)  # new rows of metrics.jsonl, in file order

    def __init__(self, run_dir: Path | str, parent: QObject | None = None, interval_ms: int = POLL_MS):
        super().__init__(parent)
        self.reader = LineReader(Path(run_dir) / runlog.METRICS)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.poll)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        """Stop polling after reading everything the run wrote before it ended."""
        self._timer.stop()
        while self.poll():
            pass

    def cancel(self) -> None:
        """Stop polling now, leaving unread what is left (the window is closing)."""
        self._timer.stop()

    def poll(self) -> int:
        """Read what was added (at most MAX_READ bytes: a long backlog comes over a few ticks)."""
        rows = self.reader.read()
        if rows:
            self.rows.emit(rows)
        return len(rows)


class SeriesFeed:
    """metrics.jsonl rows -> the live plots. A 'started' row (also a resumed run's) begins a
    fresh series; steps and epochs are stamped with their arrival time."""

    def __init__(self, plots):
        self.plots = plots
        self.series: RunSeries | None = None
        self.t0 = time.perf_counter()
        self.last: dict | None = None  # the last row that was not a step (epoch, finished, ...)

    def add(self, rows: list[dict]) -> None:
        now = time.perf_counter() - self.t0
        steps: list[dict] = []
        for row in rows:
            kind = row.get("event")
            if kind == "step":
                steps.append(row)
                continue
            self._steps(steps, now)
            steps = []
            if kind == "started":
                self.series = RunSeries(row.get("steps_per_epoch", 1))
                self.plots.begin(self.series)
            elif kind == "epoch" and self.series is not None:
                self.series.add_epoch(row["epoch"], row["step"], now, row["train_loss"], row.get("val_loss"),
                                      row.get("val_acc"))
                self.plots.changed()
            if kind != "memory":
                self.last = row
        self._steps(steps, now)

    def _steps(self, steps: list[dict], now: float) -> None:
        if not steps or self.series is None:
            return
        self.series.add_steps([r["step"] for r in steps], [r["loss"] for r in steps], [r["lr"] for r in steps],
                              [now] * len(steps))
        self.plots.changed()
