"""How far a piece of work is and how long it still takes: one object for every place that
shows it (the Training panel, the ``workbench train`` progress line, export's stages).

``Progress`` counts a training run's optimiser steps toward ``epochs x steps_per_epoch``,
smooths samples/s for display and estimates the time left with one rule (``eta``):

- once a whole epoch of this run has ended, the mean time per step of the last
  ``RECENT_EPOCHS`` epochs (whole epochs include validation and the checkpoint);
- before that, the wall-clock pace of the steps done since the run (re)started;
- unknown (None) until a step is done.

Export reports stages (one line each) through a ``Stage`` callable; ``numbered`` prefixes
them with ``[n/N]`` when several formats are written in a row. Nothing here imports Qt.
"""
from __future__ import annotations

import time
from typing import Callable

Stage = Callable[[str], None]  # receives a line saying what is being done now
RECENT_EPOCHS = 3
SMOOTHING = 0.3  # weight of the newest samples/s reading in the displayed rate


def clock(seconds: float) -> str:
    """Seconds as m:ss, or h:mm:ss from one hour on."""
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Epoch, step, samples/s and time left of one training run.

    ``start_step`` / ``start_epoch`` place a resumed run; ``now`` is the clock (a test passes
    its own). Feed it ``on_step`` and ``on_epoch``; read ``eta``, ``fraction`` and ``text``.
    """

    def __init__(self, epochs: int, steps_per_epoch: int, *, start_step: int = 0, start_epoch: int = 1,
                 now: Callable[[], float] = time.monotonic):
        self.epochs, self.per_epoch = epochs, max(1, steps_per_epoch)
        self.total = self.epochs * self.per_epoch
        self.first_step = self.step = start_step
        self.epoch = start_epoch
        self.rate = 0.0  # samples/s, smoothed
        self.epoch_seconds: list[float] = []
        self.now = now
        self.t0 = now()

    def on_step(self, step: int, epoch: int, samples_per_s: float) -> None:
        self.step, self.epoch = step, epoch
        self.rate = samples_per_s if not self.rate else (1 - SMOOTHING) * self.rate + SMOOTHING * samples_per_s

    def on_epoch(self, epoch: int, seconds: float) -> None:
        """Epoch ``epoch`` (counted from 1) ended after ``seconds``."""
        self.epoch_seconds.append(seconds)
        self.epoch = min(self.epochs, epoch + 1)

    def seconds_per_step(self, now: float | None = None) -> float | None:
        if self.epoch_seconds:
            recent = self.epoch_seconds[-RECENT_EPOCHS:]
            return sum(recent) / len(recent) / self.per_epoch
        done = self.step - self.first_step
        if done <= 0:
            return None
        return ((self.now() if now is None else now) - self.t0) / done

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left (see the module's docstring for the rule); None while unknown."""
        per_step = self.seconds_per_step(now)
        return None if per_step is None else max(0, self.total - self.step) * per_step

    def eta_text(self, now: float | None = None) -> str:
        eta = self.eta(now)
        return clock(eta) if eta is not None else "…"

    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0

    def text(self) -> str:
        return (f"Epoch {self.epoch}/{self.epochs} · step {self.step:,}/{self.total:,} · "
                f"{self.rate:,.0f} samples/s · ETA {self.eta_text()}")


def numbered(stage: Stage, n: int, total: int) -> Stage:
    """``stage`` with each line prefixed ``[n/total]`` (the export dialog's bar reads the n)."""
    return lambda line: stage(f"[{n}/{total}] {line}")
