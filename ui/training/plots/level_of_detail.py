"""Level of detail for append-only curves: min / max per bin, kept up to date as points arrive.

pyqtgraph's own 'peak' downsampling rescans every point at each redraw (~10 ms per curve
of a million points here). ``Peaks`` keeps, for bins of 4, 16, 64, ... points, each bin's
minimum and maximum, updated only where new points landed; ``display`` then hands the plot
about two points per pixel for any visible range, in the same saw-tooth form pyqtgraph's
'peak' method draws (every spike stays visible). Redraw cost no longer grows with the run.
"""
from __future__ import annotations

import numpy as np

from ui.training.plots.series import Buffer

FACTOR = 4
LEVELS = 9  # bins of 4 .. 4**9 (262,144) points


class Peaks:
    def __init__(self, values: Buffer):
        self.values = values
        self.mins = [Buffer(256) for _ in range(LEVELS)]
        self.maxs = [Buffer(256) for _ in range(LEVELS)]
        self._done = 0  # points folded into the levels so far

    def update(self) -> None:
        """Fold points appended to ``values`` since the last call into every level."""
        n = self.values.n
        if n == self._done:
            return
        lo_src, hi_src = self.values.view(), self.values.view()
        start = self._done  # first changed position at the finer level
        for level in range(LEVELS):
            first = start // FACTOR  # first bin of this level to (re)compute, in bins
            child_first = first * FACTOR
            bounds = np.arange(child_first, len(lo_src), FACTOR)
            if len(bounds) == 0:
                break
            new_min = np.fmin.reduceat(lo_src, bounds)
            new_max = np.fmax.reduceat(hi_src, bounds)
            mins, maxs = self.mins[level], self.maxs[level]
            mins.n = maxs.n = min(mins.n, first)  # drop the partial bins being recomputed
            mins.extend(new_min)
            maxs.extend(new_max)
            lo_src, hi_src = mins.view(), maxs.view()
            start = first
        self._done = n

    def display(self, x: np.ndarray, first: int, last: int, points: int) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) for positions first..last-1 in at most ~``points`` points."""
        self.update()
        y = self.values.view()
        first, last = max(0, first), min(len(y), last)
        if last - first <= max(2, points):
            return x[first:last], y[first:last]
        size, level = FACTOR, 0
        while level < LEVELS - 1 and 2 * (last - first) / size > points:
            level += 1
            size *= FACTOR
        b0, b1 = first // size, -(-last // size)
        mins, maxs = self.mins[level].view()[b0:b1], self.maxs[level].view()[b0:b1]
        xs = x[b0 * size:b1 * size:size][:len(mins)]
        out_x = np.repeat(xs, 2)
        out_y = np.empty(2 * len(mins), dtype=np.float64)
        out_y[0::2], out_y[1::2] = mins, maxs
        return out_x, out_y


def visible_range(x: np.ndarray, left: float | None, right: float | None) -> tuple[int, int]:
    """Positions of the points between ``left`` and ``right`` (one more each side)."""
    n = len(x)
    if left is None or right is None or n == 0 or not (np.isfinite(x[0]) and np.isfinite(x[-1])):
        return 0, n
    first = int(np.searchsorted(x, left, side="left")) - 1
    last = int(np.searchsorted(x, right, side="right")) + 1
    return max(0, first), min(n, last)
