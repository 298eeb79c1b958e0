"""The Sweep dock's plots (pyqtgraph), each drawn from one ``sweep_study.Snapshot``:

- ``ParallelCoordinates``: one vertical axis per parameter and one for the objective; every
  complete trial is a line across them (each axis scaled to its own range, a log-scale
  parameter on a log scale, a choice by its position in the list); the better a trial the
  darker its line, the best one in the accuracy colour on top. Each axis is labelled with its
  name and its lowest and highest value.
- ``Importances``: Optuna's parameter importances (``optuna.importance.get_param_importances``,
  computed off the UI thread by ``sweep_study.Reader``) as horizontal bars, largest on top.
- ``TrialCurves``: every trial's validation accuracy and loss per epoch (user_attrs "epochs")
  overlaid, muted, with the best trial drawn over them in the live plots' colours.

They reuse the training plots' ``Plot`` (a title that leaves the width to the layout) and
``SparseAxis`` (no crowded tick labels); curves are 1-pixel lines but the best trial's.
A plot redraws only when what it shows changed (``key``), so a poll that brought nothing new
costs nothing.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem, QLabel, QVBoxLayout, QWidget

from ui.common import theme
from ui.experiments.sweep_study import Snapshot
from ui.experiments.sweep_table import format_number, short_path
from ui.training.plots.live_plots import Plot
from ui.training.plots.steady_range import SparseAxis

MUTED = (*theme.PLOT_OVERLAYS[0], 90)
LABEL_SIZE = "8pt"


def _style(plot: pg.PlotItem) -> None:
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        axis.enableAutoSIPrefix(False)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.titleLabel.setMaximumHeight(18)


class _Figure(QWidget):
    """A pyqtgraph view with a note under it (why it is empty)."""

    def __init__(self, name: str, parent=None):
        super().__init__(parent)
        self.setObjectName(name)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(theme.PLOT_BACKGROUND)
        self.view.ci.setContentsMargins(2, 2, 8, 2)
        self.note = QLabel(objectName="muted", wordWrap=True)
        self.note.setStyleSheet(f"color: {theme.MUTED_TEXT};")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.note)
        self.key = None

    def show_snapshot(self, snapshot: Snapshot) -> None:
        key = self._key(snapshot)
        if key == self.key:
            return
        self.key = key
        self._draw(snapshot)

    def _key(self, snapshot: Snapshot):
        return (snapshot.study, snapshot.best, tuple((t.number, t.state, t.value, len(t.epochs))
                                                     for t in snapshot.trials))

    def _draw(self, snapshot: Snapshot) -> None:
        raise NotImplementedError


def _position(values: list, log: bool):
    """Each value on 0..1 of its axis, and the axis's (lowest, highest) labels."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numbers) == len(values) and numbers:
        scale = (lambda v: math.log10(v)) if log and min(numbers) > 0 else float
        lo, hi = min(map(scale, numbers)), max(map(scale, numbers))
        span = hi - lo or 1.0
        return [(scale(v) - lo) / span for v in values], (format_number(min(numbers)), format_number(max(numbers)))
    order = sorted({repr(v): v for v in values}.values(), key=repr)  # choices: by position
    index = {repr(v): i for i, v in enumerate(order)}
    span = max(1, len(order) - 1)
    return [index[repr(v)] / span for v in values], (str(order[0]), str(order[-1]))


def _is_log(snapshot: Snapshot, path: str) -> bool:
    numbers = [t.params[path] for t in snapshot.trials if isinstance(t.params.get(path), float)]
    return bool(numbers) and min(numbers) > 0 and max(numbers) / min(numbers) >= 20


class ParallelCoordinates(_Figure):
    def __init__(self, parent=None):
        super().__init__("sweepParallel", parent)
        self.plot = Plot("", axisItems={"bottom": pg.AxisItem("bottom")})
        _style(self.plot)
        self.plot.hideAxis("left")
        self.plot.setMouseEnabled(x=False, y=False)
        self.view.addItem(self.plot)
        self.lines: dict[int, pg.PlotDataItem] = {}

    def _draw(self, snapshot: Snapshot) -> None:
        plot = self.plot
        plot.clear()
        self.lines = {}
        done = [t for t in snapshot.trials if t.state == "COMPLETE" and t.value is not None
                and all(p in t.params for p in snapshot.paths)]
        axes = list(snapshot.paths) + [snapshot.metric]
        self.note.setText("" if done else "Each complete trial draws a line across its parameters and its result.")
        self.note.setVisible(not done)
        plot.getAxis("bottom").setTicks([[(i, short_path(p)) for i, p in enumerate(axes)]])
        plot.setXRange(-0.3, len(axes) - 0.7, padding=0)
        plot.setYRange(-0.28, 1.28, padding=0)  # room for the labels above and below
        if not done:
            return
        columns = []
        for path in snapshot.paths:
            columns.append(_position([t.params[path] for t in done], _is_log(snapshot, path)))
        columns.append(_position([t.value for t in done], False))
        for i, (_, (low, high)) in enumerate(columns):
            plot.addItem(pg.InfiniteLine(pos=i, angle=90, pen=pg.mkPen(theme.PLOT_GRID, width=1)))
            for text, y, anchor in ((high, 1.0, (0.5, 1.0)), (low, 0.0, (0.5, 0.0))):
                label = pg.TextItem(text, color=theme.SOFT_TEXT, anchor=anchor)
                label.setPos(i, y)
                plot.addItem(label)
        x = np.arange(len(axes), dtype=float)
        values = [t.value for t in done]
        lo, hi = min(values), max(values)
        better = (lambda v: (v - lo) / (hi - lo or 1)) if snapshot.direction == "maximize" else \
            (lambda v: (hi - v) / (hi - lo or 1))
        for n, trial in enumerate(done):
            y = np.array([column[0][n] for column in columns])
            if trial.number == snapshot.best:
                continue
            shade = int(200 - 140 * better(trial.value))
            item = pg.PlotDataItem(x, y, pen=pg.mkPen((shade, shade, min(255, shade + 30)), width=1))
            item.setToolTip(f"trial {trial.number}")
            plot.addItem(item)
            self.lines[trial.number] = item
        best = next((n for n, t in enumerate(done) if t.number == snapshot.best), None)
        if best is not None:
            y = np.array([column[0][best] for column in columns])
            item = pg.PlotDataItem(x, y, pen=pg.mkPen(theme.PLOT_ACC, width=2), symbol="o", symbolSize=5,
                                   symbolBrush=pg.mkBrush(theme.PLOT_ACC), symbolPen=pg.mkPen(theme.PLOT_ACC))
            item.setZValue(10)
            plot.addItem(item)
            self.lines[snapshot.best] = item


class Importances(_Figure):
    def __init__(self, parent=None):
        super().__init__("sweepImportances", parent)
        self.plot = Plot("Parameter importance (Optuna, fANOVA)", axisItems={"bottom": SparseAxis("bottom"),
                                                                             "left": pg.AxisItem("left")})
        _style(self.plot)
        self.plot.setMouseEnabled(x=False, y=False)
        self.view.addItem(self.plot)
        self.shown: dict[str, float] = {}

    def _key(self, snapshot: Snapshot):
        return (snapshot.study, tuple(snapshot.importances.items()), snapshot.importance_note)

    def _draw(self, snapshot: Snapshot) -> None:
        plot = self.plot
        plot.clear()
        self.shown = dict(snapshot.importances)
        items = sorted(self.shown.items(), key=lambda kv: kv[1])  # largest on top
        self.note.setText(snapshot.importance_note)
        self.note.setVisible(bool(snapshot.importance_note) or not items)
        plot.getAxis("left").setTicks([[(i, short_path(p)) for i, (p, _) in enumerate(items)]])
        if not items:
            return
        bars = pg.BarGraphItem(x0=0, y=np.arange(len(items)), height=0.6, width=[v for _, v in items],
                               brush=pg.mkBrush(theme.PLOT_SMOOTH), pen=pg.mkPen(None))
        plot.addItem(bars)
        for i, (_, v) in enumerate(items):
            label = pg.TextItem(f"{v:.2f}", color=theme.SOFT_TEXT, anchor=(0, 0.5))
            label.setPos(v, i)
            plot.addItem(label)
        plot.setXRange(0, 1.15, padding=0)
        plot.setYRange(-0.6, len(items) - 0.4, padding=0)


class TrialCurves(_Figure):
    def __init__(self, parent=None):
        super().__init__("sweepCurves", parent)
        axes = lambda: {"bottom": SparseAxis("bottom"), "left": SparseAxis("left")}  # noqa: E731
        self.acc_plot = Plot("Validation accuracy per epoch", axisItems=axes())
        self.loss_plot = Plot("Validation loss per epoch", axisItems=axes())
        for n, plot in enumerate((self.acc_plot, self.loss_plot)):
            _style(plot)
            plot.showGrid(x=False, y=True, alpha=1.0)
            plot.setLabel("bottom", "Epoch")
            self.view.addItem(plot, row=0, col=n)
        self.loss_plot.setXLink(self.acc_plot)
        self.best_items: list[pg.PlotDataItem] = []
        self.curves = 0

    def _draw(self, snapshot: Snapshot) -> None:
        for plot in (self.acc_plot, self.loss_plot):
            plot.clear()
        self.best_items, self.curves = [], 0
        best = snapshot.trial(snapshot.best)
        drawn = [t for t in snapshot.trials if t.epochs]
        self.note.setText("Each trial's curves appear as its epochs end; the best trial is drawn in colour."
                          if not drawn else f"{len(drawn)} trials; the best (trial {snapshot.best}) in colour."
                          if best is not None else f"{len(drawn)} trials.")
        for trial in sorted(drawn, key=lambda t: t.number == snapshot.best):  # the best last: on top
            x = np.array([e.get("epoch", i + 1) for i, e in enumerate(trial.epochs)], dtype=float)
            top = trial is best
            for plot, key, color in ((self.acc_plot, "val_acc", theme.PLOT_ACC),
                                     (self.loss_plot, "val_loss", theme.PLOT_VAL)):
                y = np.array([np.nan if e.get(key) is None else e[key] for e in trial.epochs], dtype=float)
                if not np.isfinite(y).any():
                    continue
                pen = pg.mkPen(color, width=2) if top else pg.mkPen(MUTED, width=1)
                item = pg.PlotDataItem(x, y, pen=pen, symbol="o" if top else None, symbolSize=5,
                                       symbolBrush=pg.mkBrush(color), symbolPen=pg.mkPen(color))
                item.setToolTip(f"trial {trial.number}")
                plot.addItem(item)
                self.curves += 1
                if top:
                    item.setZValue(10)
                    self.best_items.append(item)
        self.acc_plot.enableAutoRange()
        self.loss_plot.enableAutoRange()

