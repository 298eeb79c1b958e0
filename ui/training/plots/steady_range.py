"""Steady view ranges for plots whose data grows.

pyqtgraph's auto-range moves the axes a little at every frame while a run adds points, and
each move regenerates the axes' ticks and labels in Python (``AxisItem.generateDrawSpecs``,
``AxisItem.paint``): the largest single share of the UI thread's GIL time while training.
``Follow`` sets the range itself and changes it only when the data leaves it (then to a round
number with room to grow: 100 -> 200 -> 250 -> 500 steps) or shrinks to a small part of it.
Once a person zooms or pans, it stops following until they press the plot's auto-range
button ("A"), which it takes as "follow again".
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

DEFAULT_RANGE = (0.0, 1.0)  # x and y of an empty plot (also on a log axis: 1 to 10)
LABEL_PX = {"bottom": 48, "top": 48, "left": 18, "right": 18}  # room one tick label needs along its axis


def nice_ceil(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (value > 0)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-12):
            return step * power
    return 10 * power


def bounds(*arrays: np.ndarray) -> tuple[float, float] | None:
    """(min, max) over the finite values of the arrays; None when there are none."""
    lo, hi = math.inf, -math.inf
    for a in arrays:
        if a is None or not len(a):
            continue
        finite = a[np.isfinite(a)]
        if len(finite):
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return (lo, hi) if lo <= hi else None


class Follow:
    """Keeps one plot's x and / or y range steady while it follows the data."""

    def __init__(self, plot, x: bool = False, y: bool = True, y_floor: float | None = None,
                 y_ceiling: float | None = None):
        self.plot, self.box = plot, plot.getViewBox()
        self.x, self.y, self.y_floor, self.y_ceiling = x, y, y_floor, y_ceiling
        self.following = True
        self._setting = False
        self.box.disableAutoRange()
        self.box.sigRangeChangedManually.connect(self._by_hand)

    def _by_hand(self, *_) -> None:
        if not self._setting:
            self.following = False

    def reset(self) -> None:
        """A new run, x axis or project: follow again from scratch, from the empty plot's range
        (a range left from other data would stay until new data outgrew it)."""
        self.following = True
        self.box.disableAutoRange()
        self._setting = True
        try:
            if self.x:
                self.box.setXRange(*DEFAULT_RANGE, padding=0)
            if self.y:
                self.box.setYRange(*DEFAULT_RANGE, padding=0)
        finally:
            self._setting = False

    def check(self) -> bool:
        """Whether it follows the data (the "A" button, which turns pyqtgraph's own auto-range
        on, means: follow again)."""
        if any(self.box.autoRangeEnabled()):
            self.reset()
        return self.following

    def update(self, xs: tuple[float, float] | None, ys: tuple[float, float] | None, log_y: bool = False) -> None:
        """Fit the range to data spanning ``xs`` and ``ys`` (data values; ``log_y``: the axis
        shows log10 of them), moving it only when it no longer fits well."""
        if not self.check():
            return
        (x0, x1), (y0, y1) = self.box.viewRange()
        self._setting = True
        try:
            if self.x and xs is not None:
                start, hi = min(xs[0], 0.0), xs[1]
                if hi > x1 or hi < x0 + (x1 - x0) / 4 or abs(start - x0) > 1e-9 * max(1.0, abs(x1)):
                    self.box.setXRange(start, start + nice_ceil(max(hi - start, 1e-9) * 1.05), padding=0)
            if self.y and ys is not None and not (log_y and ys[0] <= 0):
                lo, hi = (math.log10(ys[0]), math.log10(ys[1])) if log_y else ys
                if lo < y0 or hi > y1 or (hi - lo) < (y1 - y0) / 3:
                    span = max(hi - lo, abs(hi) * 0.1, 1e-12)
                    new0, new1 = lo - 0.08 * span, hi + 0.12 * span
                    if not log_y and self.y_floor is not None:
                        new0 = max(new0, self.y_floor)
                    if not log_y and self.y_ceiling is not None:
                        new1 = min(new1, self.y_ceiling)
                    self.box.setYRange(new0, new1, padding=0)
        finally:
            self._setting = False


LOG_MANTISSAS = ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9))  # log-axis labels per decade, sparsest first


class SparseAxis(pg.AxisItem):
    """An axis whose major ticks are no closer than their labels need (``LABEL_PX``): on a
    narrow plot pyqtgraph's spacing ran the labels together ("0 200400600800"). On a log axis
    the labels are whole decades, or 1-2-5 or 1..9 within each decade when those fit, written
    plainly (0.05, 0.1, 1, 10), never fractions of a decade ("316") or crowded minor labels."""

    def tickSpacing(self, minVal, maxVal, size):
        levels = super().tickSpacing(minVal, maxVal, size)
        span = maxVal - minVal
        if not levels or span <= 0 or size <= 0:
            return levels
        least = 2.0 if self.orientation in ("left", "right") else 1.0  # a y axis keeps a scale: two labels
        fit = max(least, size / LABEL_PX.get(self.orientation, 48))
        if span / levels[0][0] <= fit:
            return levels[:1]
        return [(nice_ceil(span / fit), 0)]

    def logTickValues(self, minVal, maxVal, size, stdTicks):
        lo, hi = sorted((minVal, maxVal))
        fit = max(2.0, size / LABEL_PX.get(self.orientation, 48))
        decades = range(math.floor(lo), math.ceil(hi) + 1)
        for mantissas in reversed(LOG_MANTISSAS):
            values = [d + math.log10(m) for d in decades for m in mantissas]
            values = [v for v in values if lo - 1e-9 <= v <= hi + 1e-9]
            if len(values) <= fit and len(values) >= 2:
                return [(None, values)]
        whole = [d for d in decades if lo - 1e-9 <= d <= hi + 1e-9]
        if len(whole) >= 2:
            step = max(1, math.ceil(len(whole) / fit))
            return [(float(step), whole[::step])]
        ends = [v for v in (lo, hi) if math.isfinite(v)]  # less than a decade and no 1-2-5 tick fits: the ends
        return [(None, ends)]

    def logTickStrings(self, values, scale, spacing):
        return [f"{10 ** v * scale:.3g}" for v in values]
