"""Redraw time of the live plots holding a run of a million steps (goal: p95 <= 16 ms).

The window's plots (ui.training.plots.live_plots.LivePlots: raw loss, smoothed loss and
learning rate per step, validation curves per epoch) hold 1e6 steps; each frame appends the
next read-out of 10 steps, redraws, and paints the widget synchronously (as the 50 ms redraw
timer does while training). Side by side in the same process: the same three curves handed to
pyqtgraph whole (setData on the full float64 arrays, its own clip-to-view and 'peak'
auto-downsampling), which is what the plots did before the level-of-detail buffers. Runs on
Qt's offscreen platform unless QT_QPA_PLATFORM says otherwise. Last line: RESULT name=value ...
(``--quick``: 10,000 steps and 10 frames, a smoke run whose RESULT says quick=1).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

N = 1_000_000
FRAMES = 60
GOAL_P95_MS = 16.0


def make_series(n: int, frame_count: int = FRAMES):
    from ui.training.plots.series import RunSeries

    rng = np.random.default_rng(0)
    steps = np.arange(1, n + 1, dtype=np.float64)
    loss = 2.3 * np.exp(-steps / 2e5) + 0.2 * rng.random(n)
    s = RunSeries(steps_per_epoch=1000, capacity=n + frame_count * 10 + 16)
    s.add_steps(steps, loss, np.full(n, 1e-3), steps * 0.004, spread=False)
    for e in range(1, n // 1000 + 1):
        s.add_epoch(e, e * 1000, e * 4.0, float(loss[e * 1000 - 1]), float(loss[e * 1000 - 1]) * 1.1, 0.9)
    return s


def frames(app, plots, series, whole: bool, count: int = FRAMES) -> list[float]:
    times = []
    step = series.n_steps
    for i in range(count):
        new = np.arange(step + 1, step + 11, dtype=np.float64)
        series.add_steps(new, np.full(10, 0.2), np.full(10, 1e-3), new * 0.004, spread=False)
        step += 10
        t = time.perf_counter()
        if whole:  # pyqtgraph gets every point; its own clip / downsampling reduce them
            x = series.step_x(plots.axis)
            plots.raw.setData(x, series.loss.view())
            plots.smooth.setData(x, series.ema.view())
            plots.lr.setData(x, series.lr.view())
            ex = series.epoch_x(plots.axis)
            plots.val_loss.setData(ex, series.val_loss.view())
            plots.acc.setData(ex, series.val_acc.view())
        else:
            plots.redraw()
        plots.view.repaint()
        app.processEvents()
        times.append((time.perf_counter() - t) * 1000)
    return times[5:]  # the first frames settle ranges and caches


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    args = parser.parse_args()
    n, count = (10_000, 10) if args.quick else (N, FRAMES)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from ui.training.plots.live_plots import LivePlots

    plots = LivePlots()
    plots.stop_redraw_timer()  # frames are driven here, one at a time
    plots.resize(1100, 330)
    plots.show()
    app.processEvents()
    results = {}
    for name, whole in (("lod", False), ("pyqtgraph_whole", True), ("lod_again", False)):
        series = make_series(n, count)
        plots.begin(series)
        plots.redraw()
        app.processEvents()
        results[name] = frames(app, plots, series, whole, count)
    lod = results["lod"] + results["lod_again"]
    whole = results["pyqtgraph_whole"]
    plots.set_log(True)
    series = make_series(n, count)
    plots.begin(series)
    log_times = frames(app, plots, series, False, count)
    print(f"{n:,} steps x 3 per-step curves, {count - 5} frames each, {plots.width()}x{plots.height()} px, "
          f"platform {app.platformName()}")
    print(f"{'':28}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for label, values in (("level of detail (window)", lod), ("level of detail, log y", log_times),
                          ("pyqtgraph on whole arrays", whole)):
        print(f"{label:28}{statistics.median(values):9.2f}{pct(values, 95):9.2f}{max(values):9.2f}")
    ratio = pct(whole, 95) / pct(lod, 95)
    print(f"whole-array p95 / level-of-detail p95 = {ratio:.1f}x")
    met = pct(lod, 95) <= GOAL_P95_MS and pct(log_times, 95) <= GOAL_P95_MS
    print(f"RESULT points={n} redraw_p50_ms={statistics.median(lod):.2f} redraw_p95_ms={pct(lod, 95):.2f} "
          f"redraw_max_ms={max(lod):.2f} log_p95_ms={pct(log_times, 95):.2f} whole_p95_ms={pct(whole, 95):.2f} "
          f"speedup_p95={ratio:.1f} goal_met={'yes' if met else 'no'}" + (" quick=1" if args.quick else ""))


if __name__ == "__main__":
    main()
