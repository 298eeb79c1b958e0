"""A run's metrics as growable float64 arrays, ready for pyqtgraph (no Qt here).

``Series`` holds one curve's points in numpy buffers that double when full, so appending
a batch costs amortised O(batch) and the plot reads zero-copy views (``x[:n]``). ``RunSeries``
keeps everything the plots show for one run: per step (step, fractional epoch, wall time,
loss, its EMA, learning rate), per epoch (train / validation loss, accuracy) and freeze
marks; it converts any x axis (step / epoch / wall time) and writes the metrics as CSV.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

EMA = 0.9  # smoothed = EMA * smoothed + (1 - EMA) * loss, bias-corrected at the start
AXES = ("step", "epoch", "time")
AXIS_TITLES = {"step": "step", "epoch": "epoch", "time": "wall time (s)"}


class Buffer:
    """Appendable 1-D float64 array; capacity doubles when full."""

    def __init__(self, capacity: int = 1024):
        self._data = np.empty(max(16, capacity), dtype=np.float64)
        self.n = 0

    def extend(self, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        need = self.n + len(values)
        if need > len(self._data):
            size = len(self._data)
            while size < need:
                size *= 2
            grown = np.empty(size, dtype=np.float64)
            grown[:self.n] = self._data[:self.n]
            self._data = grown
        self._data[self.n:need] = values
        self.n = need

    @property
    def capacity(self) -> int:
        return len(self._data)

    def view(self) -> np.ndarray:
        return self._data[:self.n]

    def last(self, default: float = float("nan")) -> float:
        return float(self._data[self.n - 1]) if self.n else default

    def __len__(self) -> int:
        return self.n


@dataclass
class Mark:
    step: int
    time: float
    text: str


class RunSeries:
    """Everything one run's plots show, appended as events arrive."""

    def __init__(self, steps_per_epoch: int = 1, capacity: int = 1024):
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.step, self.time = Buffer(capacity), Buffer(capacity)
        self.loss, self.ema, self.lr = Buffer(capacity), Buffer(capacity), Buffer(capacity)
        self.epoch_step, self.epoch_time, self.epoch_no = Buffer(64), Buffer(64), Buffer(64)
        self.train_loss, self.val_loss, self.val_acc = Buffer(64), Buffer(64), Buffer(64)
        self.marks: list[Mark] = []
        self._ema_raw = 0.0  # un-corrected EMA state
        self._ema_n = 0
        self._t_last = 0.0

    # ------------------------------------------------------------ appending
    def add_steps(self, steps: list[int], losses: list[float], lrs: list[float], stamps, spread: bool = True) -> None:
        """Steps in order. ``stamps`` are arrival times; the engine reads losses in groups, so
        a group arriving at once is spread evenly back to the previous group's time."""
        if not len(steps):
            return
        self.step.extend(steps)
        self.loss.extend(losses)
        self.lr.extend(lrs)
        self.time.extend(self._spread(stamps) if spread else stamps)
        out = np.empty(len(losses), dtype=np.float64)
        raw, n = self._ema_raw, self._ema_n
        for i, value in enumerate(losses):
            raw = EMA * raw + (1.0 - EMA) * value
            n += 1
            out[i] = raw / (1.0 - EMA ** n) if n < 400 else raw  # EMA**400 ~ 5e-19: correction done
        self._ema_raw, self._ema_n = raw, n
        self.ema.extend(out)

    def _spread(self, stamps: list[float]) -> np.ndarray:
        t = np.asarray(stamps, dtype=np.float64)
        out = t.copy()
        start, prev = 0, self._t_last
        for i in range(1, len(t) + 1):
            if i == len(t) or t[i] - t[i - 1] > 0.005:  # a new read-out group starts at i
                k = i - start
                if k > 1 and t[i - 1] > prev:
                    out[start:i] = prev + (t[i - 1] - prev) * np.arange(1, k + 1) / k
                prev = t[i - 1]
                start = i
        self._t_last = max(self._t_last, float(t[-1]))
        return out

    def add_epoch(self, epoch: int, step: int, stamp: float, train_loss: float,
                  val_loss: float | None, val_acc: float | None) -> None:
        nan = float("nan")
        self.epoch_no.extend([epoch])
        self.epoch_step.extend([step])
        self.epoch_time.extend([stamp])
        self.train_loss.extend([train_loss])
        self.val_loss.extend([nan if val_loss is None else val_loss])
        self.val_acc.extend([nan if val_acc is None else val_acc])

    def add_mark(self, step: int, stamp: float, text: str) -> None:
        self.marks.append(Mark(step, stamp, text))

    # ------------------------------------------------------------ reading
    @property
    def n_steps(self) -> int:
        return self.step.n

    def step_x(self, axis: str) -> np.ndarray:
        if axis == "time":
            return self.time.view()
        if axis == "epoch":
            return self.step.view() / self.steps_per_epoch
        return self.step.view()

    def epoch_x(self, axis: str) -> np.ndarray:
        if axis == "time":
            return self.epoch_time.view()
        if axis == "epoch":
            return self.epoch_no.view()
        return self.epoch_step.view()

    def mark_x(self, mark: Mark, axis: str) -> float:
        if axis == "time":
            return mark.time
        return mark.step / self.steps_per_epoch if axis == "epoch" else float(mark.step)

    def to_csv(self) -> str:
        """Steps then epochs, one row each; empty cells where a column does not apply."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["kind", "step", "epoch", "wall_s", "loss", f"loss_ema_{EMA:g}", "lr", "train_loss",
                    "val_loss", "val_acc", "note"])
        spe = self.steps_per_epoch
        for s, t, loss, ema, lr in zip(self.step.view(), self.time.view(), self.loss.view(), self.ema.view(),
                                       self.lr.view()):
            w.writerow(["step", int(s), f"{s / spe:.4f}", f"{t:.3f}", repr(float(loss)), f"{ema:.6g}", f"{lr:.6g}",
                        "", "", "", ""])
        for e, s, t, tl, vl, va in zip(self.epoch_no.view(), self.epoch_step.view(), self.epoch_time.view(),
                                       self.train_loss.view(), self.val_loss.view(), self.val_acc.view()):
            w.writerow(["epoch", int(s), int(e), f"{t:.3f}", "", "", "", f"{tl:.6g}", _cell(vl), _cell(va), ""])
        for m in self.marks:
            w.writerow(["mark", m.step, f"{m.step / spe:.4f}", f"{m.time:.3f}", "", "", "", "", "", "", m.text])
        return out.getvalue()


def _cell(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.6g}"


def series_from_metrics(rows: list[dict]) -> RunSeries:
    """A finished run's curves from its metrics.jsonl rows (workbench.runlog.read_metrics).
    metrics.jsonl keeps no per-step clock: the wall-time axis assumes the run's mean step rate."""
    started = next((r for r in rows if r.get("event") == "started"), {})
    steps = [r for r in rows if r.get("event") == "step"]
    series = RunSeries(started.get("steps_per_epoch", 1), capacity=max(1024, len(steps)))
    seconds = next((r.get("seconds") for r in reversed(rows) if r.get("event") in ("finished", "stopped")), None)
    first = steps[0]["step"] - 1 if steps else 0
    per_step = seconds / len(steps) if seconds and steps else float("nan")
    numbers = np.fromiter((r["step"] for r in steps), dtype=np.float64, count=len(steps))
    series.add_steps(numbers, [r["loss"] for r in steps], [r["lr"] for r in steps], (numbers - first) * per_step,
                     spread=False)
    for r in rows:
        if r.get("event") == "epoch":
            series.add_epoch(r["epoch"], r["step"], (r["step"] - first) * per_step, r["train_loss"],
                             r.get("val_loss"), r.get("val_acc"))
        elif r.get("event") == "freeze":
            series.add_mark(r["step"], (r["step"] - first) * per_step,
                            f"{'freeze' if r['frozen'] else 'unfreeze'} {r['path']}")
    return series
