"""Live training plots (pyqtgraph): loss per step, validation loss and accuracy per epoch,
learning rate; earlier runs muted underneath.

Data arrives in batches (ui.training.engine_bridge) and only marks the plots dirty; a QTimer redraws
at most every ``REDRAW_MS``, and less often when a frame is slow, so that drawing never
takes more than ``BUDGET`` of the UI thread: a frame holds the GIL, and every millisecond
of it is a millisecond the training thread waits (measured: drawing at 20 Hz cut the digits
CNN's training speed in the window by a third). Every curve is a 1-pixel line with clip-to-view and automatic
'peak' downsampling over float64 views of growing buffers (ui.training.plots.series), so a run of a
million steps redraws in milliseconds. The x axis switches between step, epoch and wall
time; the loss axis can be logarithmic. Freezes and learning-rate changes made during the
run show as vertical marks, their labels staggered (``stagger``) so none covers another.
The legend and the earlier runs' labels sit under the plots (never over a curve); ticks are
no denser than their labels fit (``steady_range.SparseAxis``); Save PNG draws the plots and
legend again at ``png_scale`` (2x by default) rather than enlarging a screenshot.
"""
from __future__ import annotations

import html
import time
from functools import partial
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QActionGroup, QImage, QPainter
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QGraphicsItem, QHBoxLayout, QLabel, QMenu,
                               QPushButton, QToolButton, QVBoxLayout, QWidget)

from workbench import fileio
from workbench.errors import WorkbenchError

from ui.common import theme
from ui.training.plots.series import AXES, AXIS_TITLES, EMA, Buffer, Mark, RunSeries
from ui.training.plots.level_of_detail import Peaks, visible_range
from ui.training.plots.overlay import Overlay
from ui.training.plots.steady_range import Follow, SparseAxis, bounds

# at most 3 Hz: at 5 Hz the plots took 3.7% of a core during a digits run in the window (2 cores),
# at 3 Hz ~1.7%; every point of the UI thread's time is taken from the training
REDRAW_MS = 333
BUDGET = 0.05  # share of the UI thread the plots may take: slower frames come less often
SYMBOLS_UP_TO = 60  # epochs: more points than that draw as a plain line (symbols cost per point)
AXIS_NAMES = {"step": "Step", "epoch": "Epoch", "time": "Wall time"}
OVERLAY_LINES = 1  # earlier runs' labels under the plots take at most this many lines (else short forms)
PNG_SCALES = (1, 2, 3, 4)  # Save PNG renders the plots at this many pixels per screen pixel
PNG_SCALE = 2
MARK_LEVELS = 5  # mark labels close together stagger over up to this many heights, from the top down


def mark_label(text: str) -> str:
    """A mark's label on the plot: the layer's own name, not its path ('freeze layer3' for
    'freeze backbone.layer3'); the whole text is the line's tooltip and the CSV note."""
    verb, _, path = text.partition(" ")
    return f"{verb} {path.rsplit('.', 1)[-1]}" if verb in ("freeze", "unfreeze") and path else text


def stagger(spans: list[tuple[float, float]], levels: int = MARK_LEVELS) -> list[int | None]:
    """A level per label (left, right in pixels, in x order) so that no two on one level
    overlap: the first free level, or None (no room: the label hides; its line's tooltip
    and the CSV keep the text)."""
    ends = [-float("inf")] * levels
    out: list[int | None] = []
    for left, right in spans:
        level = next((n for n in range(levels) if ends[n] + 4 <= left), None)
        if level is not None:
            ends[level] = right
        out.append(level)
    return out


def _curve(plot, color, name=None, symbol=None, alpha=None) -> pg.PlotDataItem:
    rgba = (*color[:3], alpha if alpha is not None else (color[3] if len(color) > 3 else 255))
    item = pg.PlotDataItem(pen=pg.mkPen(rgba, width=1), name=name)
    if symbol:
        item.setSymbol(symbol)
        item.setSymbolSize(5)
        item.setSymbolPen(pg.mkPen(rgba, width=1))
        item.setSymbolBrush(pg.mkBrush(rgba))
    plot.addItem(item)  # the plot applies its own clip / downsampling settings here: set ours after
    item.setClipToView(True)
    item.setDownsampling(auto=True, method="peak")
    return item


class TitleLabel(pg.LabelItem):
    """A plot title that asks for no width: pyqtgraph makes a title's width its plot's
    minimum, so "Validation accuracy" squeezed the loss plot to a sliver in a small window,
    against the columns' stretch factors."""

    def updateMin(self) -> None:
        super().updateMin()
        self.setMinimumWidth(0)

    def sizeHint(self, hint, constraint):
        size = super().sizeHint(hint, constraint)
        if hint in (Qt.SizeHint.MinimumSize, Qt.SizeHint.PreferredSize):
            size.setWidth(0)
        return size


class Plot(pg.PlotItem):
    """A PlotItem whose title (``TitleLabel``) leaves the plot's width to the layout."""

    def __init__(self, title: str, **kwargs):
        super().__init__(**kwargs)
        self.layout.removeItem(self.titleLabel)
        self.titleLabel.setParentItem(None)
        self.titleLabel = TitleLabel("", size="9pt", parent=self)  # fits a narrow plot
        self.layout.addItem(self.titleLabel, 0, 0, 1, 2)  # over the left axis too: room for the words
        self.setTitle(title)


def choose_save_path(parent, title: str, suggestion: str, filters: str) -> str | None:
    """Ask where to save (tests replace this)."""
    path, _ = QFileDialog.getSaveFileName(parent, title, suggestion, filters)
    return path or None


class LivePlots(QWidget):
    message = Signal(str)  # what was saved, or why not

    def __init__(self, parent=None):
        super().__init__(parent)
        self.series: RunSeries | None = None
        self.overlays: list[Overlay] = []
        self.axis = "step"
        self.folder = Path.home()
        self._dirty = False
        self._mark_lines: list[tuple[Mark, pg.InfiniteLine]] = []
        self._overlay_items: dict[str, list[pg.PlotDataItem]] = {}  # key -> [loss, accuracy]
        self._overlay_lr: dict[str, pg.PlotDataItem] = {}  # key -> its learning rate
        self._peaks: dict[int, Peaks] = {}  # id(buffer) -> its level of detail
        self._epoch_keys: dict[int, tuple] = {}  # id(item) -> what its per-epoch points show now
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._next = 0.0
        self.frame_ms = 0.0  # what the last frame cost (redraw and paint)

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("x axis"))
        self.axis_box = QComboBox(objectName="plotAxis")
        for key in AXES:
            self.axis_box.addItem(AXIS_NAMES[key], key)
        self.axis_box.setToolTip("Plot against optimiser steps, epochs (fractional) or seconds since the start")
        self.axis_box.currentIndexChanged.connect(lambda i: self.set_axis(self.axis_box.itemData(i)))
        bar.addWidget(self.axis_box)
        self.log_box = QCheckBox("Log loss", objectName="plotLog")
        self.log_box.setToolTip("Logarithmic loss axis: late, small improvements stay visible")
        self.log_box.toggled.connect(self.set_log)
        bar.addWidget(self.log_box)
        self.runs_button = QToolButton(objectName="plotRuns", text="Earlier runs")
        self.runs_button.setToolTip("Earlier runs of this project, muted under the live one; tick to show")
        self.runs_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.runs_menu = QMenu(self)
        self.runs_button.setMenu(self.runs_menu)
        bar.addWidget(self.runs_button)
        bar.addStretch(1)
        self.png_scale = PNG_SCALE
        self.png_button = QToolButton(objectName="plotPng", text="Save PNG...")
        self.png_button.setToolTip("Save the plots, legend and run labels as a PNG image; the arrow picks its size")
        self.png_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.png_button.clicked.connect(lambda: self._ask_and_save("png"))
        scale_menu, group = QMenu(self), QActionGroup(self)
        for scale in PNG_SCALES:
            action = scale_menu.addAction(f"{scale}x the size on screen")
            action.setCheckable(True)
            action.setChecked(scale == self.png_scale)
            action.toggled.connect(lambda on, k=scale: on and setattr(self, "png_scale", k))
            group.addAction(action)
        self.png_button.setMenu(scale_menu)
        self.csv_button = QPushButton("Save CSV...", objectName="plotCsv")
        self.csv_button.setToolTip("Save the run's metrics (every step and epoch) as CSV")
        self.csv_button.clicked.connect(lambda: self._ask_and_save("csv"))
        bar.addWidget(self.png_button)
        bar.addWidget(self.csv_button)

        pg.setConfigOptions(antialias=False)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setObjectName("plotView")
        self.view.setBackground(theme.PLOT_BACKGROUND)
        self.view.ci.setContentsMargins(2, 2, 2, 2)
        # x ticks only as dense as their labels fit (a narrow plot ran "0 200400600800" together)
        def axes():
            return {"bottom": SparseAxis("bottom"), "left": SparseAxis("left")}
        self.loss_plot = Plot("Loss", axisItems=axes())
        self.acc_plot = Plot("Validation accuracy", axisItems=axes())
        self.lr_plot = Plot("Learning rate", axisItems=axes())
        for n, plot in enumerate((self.loss_plot, self.acc_plot, self.lr_plot)):
            self.view.addItem(plot, row=0, col=n)
        self.acc_plot.setXLink(self.loss_plot)  # one x range: epochs line up with the steps they end
        self.lr_plot.setXLink(self.loss_plot)
        self.view.ci.layout.setColumnStretchFactor(0, 6)
        self.view.ci.layout.setColumnStretchFactor(1, 3)
        self.view.ci.layout.setColumnStretchFactor(2, 2)
        for plot in (self.loss_plot, self.acc_plot, self.lr_plot):
            # light, opaque, horizontal grid lines only: translucent grid lines (pyqtgraph blends every
            # minor level) cost ~10 ms a frame in software rendering; these cost ~1 ms
            for side in ("left", "bottom"):
                axis = plot.getAxis(side)
                # an axis repaints from a cached pixmap unless its range changed: replaying its
                # drawing (QPicture) at every frame was half of a frame's cost
                axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
                axis.enableAutoSIPrefix(False)
            left = plot.getAxis("left")
            left.setWidth(46)  # fixed: a width that follows the tick labels re-lays the plots out every frame
            left.setTickPen(pg.mkPen(theme.PLOT_GRID))
            left.setZValue(-100)  # under the curves, not over them
            plot.showGrid(x=False, y=True, alpha=1.0)
            plot.setMenuEnabled(False)
            plot.setClipToView(True)
            plot.setDownsampling(auto=True, mode="peak")
            plot.titleLabel.setMaximumHeight(18)
            plot.setLabel("bottom", AXIS_TITLES[self.axis])
        self.raw = _curve(self.loss_plot, theme.PLOT_RAW)
        self.smooth = _curve(self.loss_plot, theme.PLOT_SMOOTH)
        self.val_loss = _curve(self.loss_plot, theme.PLOT_VAL, symbol="o")
        self.acc = _curve(self.acc_plot, theme.PLOT_ACC, None, symbol="o")
        self.lr = _curve(self.lr_plot, theme.PLOT_LR)
        self.follow = [Follow(self.loss_plot, x=True), Follow(self.acc_plot, y_floor=0.0, y_ceiling=1.02),
                       Follow(self.lr_plot, y_floor=0.0)]  # steady ranges (steady_range.py)
        for plot in (self.loss_plot, self.lr_plot):
            plot.sigXRangeChanged.connect(self._range_changed)

        # the legend sits under the plots, never over the curves; earlier runs' labels wrap there
        self.legend = QLabel(_legend_html([(theme.PLOT_RAW, "\u2014", "loss per step"),
                                           (theme.PLOT_SMOOTH, "\u2014", f"smoothed: EMA {EMA:g}"),
                                           (theme.PLOT_VAL, "\u25cf", "validation loss"),
                                           (theme.PLOT_MARK, "\u2506", "freeze / lr change")]),
                             objectName="plotLegend")
        self.legend.setWordWrap(True)
        self.overlay_legend = QLabel("", objectName="plotOverlayLegend")
        self.overlay_legend.setWordWrap(True)
        self.overlay_legend.setVisible(False)
        self.figure = QWidget(objectName="plotFigure")  # what Save PNG renders: plots and legend
        self.figure.setAutoFillBackground(True)
        self.figure.setStyleSheet("QWidget#plotFigure { background: white; } QLabel { font-size: 8pt; }")
        col = QVBoxLayout(self.figure)
        col.setContentsMargins(0, 0, 0, 2)
        col.setSpacing(0)
        col.addWidget(self.view, 1)
        col.addWidget(self.legend)
        col.addWidget(self.overlay_legend)

        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(2)
        root.addLayout(bar)
        root.addWidget(self.figure, 1)

    # ------------------------------------------------------------ data in
    def begin(self, series: RunSeries, classification: bool = True) -> None:
        """A new live run: clear its curves and marks (overlays stay)."""
        self.series = series
        self._epoch_keys.clear()
        self.acc_plot.setTitle("Validation accuracy" if classification else "Accuracy: classification only")
        self._peaks = {k: v for k, v in self._peaks.items() if k in self._overlay_buffers()}
        for _, line in self._mark_lines:
            self.loss_plot.removeItem(line)
        self._mark_lines.clear()
        for f in self.follow:
            f.reset()
        self.redraw()  # now: the last run's curves must not wait for a timer (the plots may be hidden)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self._fill_overlay_legend()  # full labels or short ones, by the room there is

    def _range_changed(self, box, _range) -> None:
        """Zoomed or panned by hand: draw the visible part in more detail. (A range that
        follows the data changed because of a redraw; redrawing again would double the cost.)"""
        if not self.follow[0].following:
            self._dirty = True

    def changed(self) -> None:
        self._dirty = True

    def add_mark(self, mark: Mark) -> None:
        pen = pg.mkPen(theme.PLOT_MARK, width=1, style=Qt.PenStyle.DashLine)
        # a label right of its line in the left half of the plot, left of it in the right half: never clipped
        line = pg.InfiniteLine(angle=90, movable=False, pen=pen, label=mark_label(mark.text),
                               labelOpts={"position": 0.9, "color": theme.PLOT_MARK,
                                          "anchors": [(0, 0.5), (1, 0.5)], "fill": theme.PLOT_LABEL_FILL})
        line.setToolTip(mark.text)
        self.loss_plot.addItem(line)
        self._mark_lines.append((mark, line))
        self._place_marks()

    def set_overlays(self, overlays: list[Overlay]) -> None:
        """Replace the earlier runs shown (their series may still be loading: see ``overlay_loaded``)."""
        for item in [i for items in self._overlay_items.values() for i in items] + list(self._overlay_lr.values()):
            if item.getViewBox() is not None:
                item.getViewBox().removeItem(item)
        self._overlay_items.clear()
        self._overlay_lr.clear()
        self.overlays = overlays
        for n, overlay in enumerate(overlays):
            color = theme.PLOT_OVERLAYS[n % len(theme.PLOT_OVERLAYS)]
            loss = _curve(self.loss_plot, color, alpha=150)
            acc = _curve(self.acc_plot, color, symbol="t", alpha=170)
            lr = _curve(self.lr_plot, color, alpha=170)
            for item in (loss, acc, lr):
                item.setZValue(-10)
            self._overlay_items[overlay.key] = [loss, acc]
            self._overlay_lr[overlay.key] = lr
            self._draw_overlay(overlay)
        self._fill_menu()
        self._fill_overlay_legend()

    def _fill_overlay_legend(self) -> None:
        """Earlier runs shown, each in its colour, wrapped under the plots (never cut)."""
        entries = [(theme.PLOT_OVERLAYS[n % len(theme.PLOT_OVERLAYS)], "\u25b2", o.label)
                   for n, o in enumerate(self.overlays) if o.visible]
        self.overlay_legend.setVisible(bool(entries))
        self.overlay_legend.setToolTip("\n".join(text for _, _, text in entries))
        full = _legend_html(entries, nowrap=False)
        self.overlay_legend.setText(full)
        width = max(100, self.figure.width() - 4)
        room = OVERLAY_LINES * self.overlay_legend.fontMetrics().lineSpacing() + 2
        if self.overlay_legend.heightForWidth(width) > room:
            # too long for the room under the plots: "run 2 (stopped, acc 0.950)"; all of it in the
            # tooltip and the Earlier runs menu
            self.overlay_legend.setText(_legend_html([(c, m, t.split(":", 1)[0]) for c, m, t in entries]))

    def overlay_loaded(self, key: str, series: RunSeries | None) -> None:
        for overlay in self.overlays:
            if overlay.key == key:
                overlay.series = series
                self._draw_overlay(overlay)

    def set_overlay_visible(self, key: str, visible: bool) -> None:
        for overlay in self.overlays:
            if overlay.key == key:
                overlay.visible = visible
                self._draw_overlay(overlay)
        self._fill_menu()
        self._fill_overlay_legend()

    def set_all_overlays_visible(self, visible: bool) -> None:
        for overlay in self.overlays:
            overlay.visible = visible
            self._draw_overlay(overlay)
        self._fill_menu()
        self._fill_overlay_legend()

    def _fill_menu(self) -> None:
        self.runs_menu.clear()
        if not self.overlays:
            self.runs_menu.addAction("No earlier runs in this project").setEnabled(False)
        for overlay in self.overlays:
            action = self.runs_menu.addAction(overlay.label)
            action.setCheckable(True)
            action.setChecked(overlay.visible)
            action.toggled.connect(lambda on, k=overlay.key: self.set_overlay_visible(k, on))
        if self.overlays:
            self.runs_menu.addSeparator()
            self.runs_menu.addAction("Hide all", partial(self.set_all_overlays_visible, False))
            self.runs_menu.addAction("Show all", partial(self.set_all_overlays_visible, True))
        shown = sum(o.visible for o in self.overlays)
        self.runs_button.setText(f"Earlier runs ({shown}/{len(self.overlays)})" if self.overlays else "Earlier runs")

    def _draw_overlay(self, overlay: Overlay) -> None:
        items = self._overlay_items.get(overlay.key)
        if not items:
            return
        loss, acc = items
        lr = self._overlay_lr[overlay.key]
        s = overlay.series
        for item in (loss, acc, lr):
            item.setVisible(overlay.visible and s is not None)
        if s is None:
            return
        x = s.step_x(self.axis)
        self._set_steps(loss, x, s.ema)
        self._set_steps(lr, x, s.lr)
        _set_points(acc, s.epoch_x(self.axis), s.val_acc.view())

    # ------------------------------------------------------------ view options
    def set_axis(self, axis: str) -> None:
        if axis not in AXES:
            raise ValueError(axis)
        self.axis = axis
        if self.axis_box.currentData() != axis:
            self.axis_box.setCurrentIndex(AXES.index(axis))
        for plot in (self.loss_plot, self.acc_plot, self.lr_plot):
            plot.setLabel("bottom", AXIS_TITLES[axis])
        for f in self.follow:
            f.reset()
        for overlay in self.overlays:
            self._draw_overlay(overlay)
        self._place_marks()
        self.redraw()

    def set_log(self, on: bool) -> None:
        if self.log_box.isChecked() != on:
            self.log_box.setChecked(on)
        self.loss_plot.setLogMode(y=bool(on))
        self.follow[0].reset()
        self.redraw()

    def _place_marks(self) -> None:
        for mark, line in self._mark_lines:
            x = self.series.mark_x(mark, self.axis) if self.series is not None else float("nan")
            line.setVisible(bool(np.isfinite(x)))
            if np.isfinite(x):
                line.setValue(x)
        self._stagger_marks()

    def _stagger_marks(self) -> None:
        """Labels of marks close together go to different heights, so none covers another."""
        shown = sorted(((line.value(), line) for _, line in self._mark_lines if line.isVisible()),
                       key=lambda pair: pair[0])
        if not shown:
            return
        box = self.loss_plot.getViewBox()
        (x0, x1), width, height = box.viewRange()[0], max(1.0, box.width()), max(1.0, box.height())
        spans = []
        for x, line in shown:
            px = (x - x0) / max(x1 - x0, 1e-12) * width
            w = line.label.boundingRect().width()
            spans.append((px, px + w) if px < width / 2 else (px - w, px))
        row = shown[0][1].label.boundingRect().height() + 1  # one label's height, in pixels
        levels = max(1, min(MARK_LEVELS, int(height // row)))
        for (_, line), level in zip(shown, stagger(spans, levels)):
            line.label.setVisible(level is not None)
            if level is not None:
                position = 1 - (level + 0.5) * row / height  # from the top down, a label's height apart
                if abs(line.label.orthoPos - position) > 1e-6:
                    line.label.setPosition(position)

    def mark_label_rects(self) -> list:
        """Where the mark labels are drawn (scene rectangles of the visible ones)."""
        return [line.label.sceneBoundingRect() for _, line in self._mark_lines
                if line.isVisible() and line.label.isVisible()]

    # ------------------------------------------------------------ drawing
    def stop_redraw_timer(self) -> None:
        """No more timed frames: the caller draws with ``redraw()`` (benchmarks, exports)."""
        self._timer.stop()

    def _tick(self) -> None:
        t = time.perf_counter()
        if not (self._dirty and self.isVisible()) or t < self._next:
            return
        cpu = time.thread_time()
        self.redraw()
        self.view.viewport().repaint()  # paint now (the view itself would only schedule it): the cost is known
        cost = time.thread_time() - cpu  # CPU, not wall time: waiting for the GIL costs the training nothing
        self.frame_ms = 1000 * cost
        self._next = t + max(REDRAW_MS / 1000, cost / BUDGET) - 0.005

    def redraw(self) -> None:
        self._dirty = False
        for f in self.follow:
            f.check()
        s = self.series
        if s is None:
            for item in (self.raw, self.smooth, self.val_loss, self.acc, self.lr):
                item.setData([], [])
            self._epoch_keys.clear()
            return
        x = s.step_x(self.axis)
        self._set_steps(self.raw, x, s.loss)
        self._set_steps(self.smooth, x, s.ema)
        self._set_steps(self.lr, x, s.lr)
        ex = s.epoch_x(self.axis)
        symbol = "o" if len(ex) <= SYMBOLS_UP_TO else None
        for item, values in ((self.val_loss, s.val_loss), (self.acc, s.val_acc)):
            # an epoch adds a point every few hundred frames: between them, handing pyqtgraph the
            # same points again (symbols rebuilt) was a third of a frame's Python time
            key = (id(values), len(values), self.axis, symbol)
            if self._epoch_keys.get(id(item)) == key:
                continue
            self._epoch_keys[id(item)] = key
            if item.opts["symbol"] != symbol:
                item.setSymbol(symbol)
            _set_points(item, ex, values.view())
        self._fit_ranges()

    def _fit_ranges(self) -> None:
        """Move the view ranges only when the data (live and shown earlier runs) outgrew them."""
        shown = [o for o in self.overlays if o.visible and o.series is not None]
        extra = [i for o in shown for i in self._overlay_items.get(o.key, [])]
        loss_items = [self.raw, self.smooth, self.val_loss] + extra[0::2]
        acc_items = [self.acc] + extra[1::2]
        lr_items = [self.lr] + [self._overlay_lr[o.key] for o in shown if o.key in self._overlay_lr]
        xs = bounds(*(i.xData for i in loss_items + acc_items if i.xData is not None))
        self.follow[0].update(xs, bounds(*(i.yData for i in loss_items if i.yData is not None)),
                              log_y=self.log_box.isChecked())
        self.follow[1].update(None, bounds(*(i.yData for i in acc_items if i.yData is not None)))
        top = bounds(*(i.yData for i in lr_items if i.yData is not None))
        # from 0 to above the highest rate: a constant rate has a scale too
        self.follow[2].update(None, (0.0, top[1]) if top and top[1] > 0 else None)
        self._stagger_marks()

    def _set_steps(self, item: pg.PlotDataItem, x: np.ndarray, values: Buffer) -> None:
        """A per-step curve, reduced to ~2 points per pixel of its visible part."""
        peaks = self._peaks.get(id(values))
        if peaks is None or peaks.values is not values:
            peaks = self._peaks[id(values)] = Peaks(values)
        box = item.getViewBox()
        left = right = None
        if box is not None and not self.follow[0].following:  # zoomed in: only the visible part, finer
            left, right = box.viewRange()[0]
        first, last = visible_range(x, left, right)
        width = int(box.width()) if box is not None and box.width() > 0 else 1000
        item.setData(*peaks.display(x, first, last, 2 * width))

    def _overlay_buffers(self) -> set[int]:
        return {id(b) for o in self.overlays if o.series is not None for b in (o.series.ema, o.series.lr)}

    # ------------------------------------------------------------ saving
    def _ask_and_save(self, kind: str) -> None:
        if kind == "csv" and (self.series is None or not self.series.n_steps):
            self.message.emit("Nothing to save yet: train first")
            return
        filters = "PNG image (*.png)" if kind == "png" else "CSV table (*.csv)"
        path = choose_save_path(self, f"Save {kind.upper()}", str(self.folder / f"training.{kind}"), filters)
        if not path:
            return
        try:
            self.save_png(path) if kind == "png" else self.save_csv(path)
        except WorkbenchError as exc:
            self.message.emit(str(exc))
            return
        self.folder = Path(path).parent
        self.message.emit(f"Saved {path}")

    def render_image(self, scale: float | None = None) -> QImage:
        """The plots with their legend and run labels, ``scale`` (default ``png_scale``) image
        pixels per screen pixel: drawn again at that resolution, not a screenshot enlarged."""
        scale = self.png_scale if scale is None else scale
        self.redraw()
        size = self.figure.size()
        image = QImage(max(1, round(size.width() * scale)), max(1, round(size.height() * scale)),
                       QImage.Format.Format_RGB32)
        image.fill(Qt.GlobalColor.white)
        axes = [plot.getAxis(side) for plot in (self.loss_plot, self.acc_plot, self.lr_plot)
                for side in ("left", "bottom")]
        for axis in axes:  # the axes' screen-resolution cache would come out blurred
            axis.setCacheMode(QGraphicsItem.CacheMode.NoCache)
        painter = QPainter(image)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
            painter.scale(scale, scale)
            self.figure.render(painter, QPoint(0, 0))
        finally:
            painter.end()
            for axis in axes:
                axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        return image

    def save_png(self, path: str | Path, scale: float | None = None) -> None:
        image = self.render_image(scale)

        def write(tmp: Path) -> None:
            if not image.save(str(tmp), "PNG"):
                raise WorkbenchError(f"could not write the image {path}")
        fileio.write_with(path, write, suffix=".png")

    def save_csv(self, path: str | Path) -> None:
        if self.series is None:
            raise WorkbenchError("no run to save yet: train first")
        fileio.write_text(path, self.series.to_csv())


def _legend_html(entries: list[tuple[tuple, str, str]], nowrap: bool = True) -> str:
    """Legend entries (colour, symbol, text) in one wrapping line of rich text; ``nowrap``:
    an entry is never broken (short ones), else long entries wrap inside too."""
    parts = []
    style = " style='white-space:nowrap'" if nowrap else ""
    for color, symbol, text in entries:
        r, g, b = color[:3]
        parts.append(f"<span{style}><span style='color:rgb({r},{g},{b})'>{symbol}</span>"
                     f"&nbsp;{html.escape(text)}</span>")
    return "&nbsp;&nbsp; ".join(parts)


def _set_points(item: pg.PlotDataItem, x: np.ndarray, y: np.ndarray) -> None:
    """Per-epoch points; none at all when every value is missing (regression has no accuracy)."""
    if len(y) and np.isnan(y).all():
        item.setData([], [])
    else:
        item.setData(x, y)
