"""The training dock's Health tab and its alert banners.

``HealthView``: the run's health samples (``workbench.training.events.HealthEvent``) as
per-layer strips over time, one pyqtgraph ``ImageItem`` (a row per layer, a column per
sample; layer names on the y axis, steps on the x axis), with a chooser for the figure shown:
gradient norm, update/weight ratio (both on a log10 scale), dead fraction or activation std.
A sample comes every ``training.health_every`` steps, so each one is drawn when it arrives.

``AlertBanners``: the run's alerts (``AlertEvent``) across the top of the training panel,
each with its layer and fix in at most two wrapped lines (the whole text in its tooltip) and
a close button; the newest ``MAX_BANNERS`` show, and a count of the others (listed in its
tooltip). Both only draw: the events come through the engine bridge.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from workbench.training import events as ev

from ui.common import theme

# (title, HealthEvent column, log10 scale, fixed colour range or None: from the data)
METRICS = (
    ("Gradient norm", "grad_norm", True, None),
    ("Update/weight ratio", "update_ratio", True, (-6.0, 0.0)),  # healthy about -3
    ("Dead fraction", "dead_fraction", False, (0.0, 1.0)),
    ("Activation std", "act_std", False, None),
)
MAX_BANNERS = 2  # two wrapped lines each: the tabs below keep their room in a 700-pixel window
MISSING = np.nan  # a figure that does not apply to a layer: drawn transparent


def _lookup() -> np.ndarray:
    """Colours for 0..1 (viridis), with transparency kept for NaN by the image's levels."""
    return pg.colormap.get("viridis").getLookupTable(0.0, 1.0, 256)


class HealthView(QWidget):
    """Per-layer strips over time for one run (see the module's docstring)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.layers: list[str] = []
        self.steps: list[int] = []
        self.columns: dict[str, list[list[float]]] = {column: [] for _, column, _, _ in METRICS}
        self.chooser = QComboBox(objectName="healthMetric")
        for title, *_ in METRICS:
            self.chooser.addItem(title)
        self.chooser.setToolTip("The figure each strip shows, per layer over the run's health samples")
        self.chooser.currentIndexChanged.connect(self.redraw)
        self.note = QLabel(objectName="healthNote")
        self.note.setStyleSheet(f"color: {theme.MUTED_TEXT}")
        self.note.setWordWrap(True)  # one unwrapped line would set the Training dock's (and window's) minimum width
        pg.setConfigOptions(antialias=False)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(theme.PLOT_BACKGROUND)
        self.plot = self.view.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.invertY(True)  # the first layer on top, as in the stack
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(_lookup())
        self.plot.addItem(self.image)
        self.bar = pg.ColorBarItem(colorMap=pg.colormap.get("viridis"), interactive=False, width=12)
        self.bar.setImageItem(self.image, insert_in=self.plot)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.chooser)
        top.addWidget(self.note, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        self.clear()

    # ------------------------------------------------------------ data
    def clear(self) -> None:
        self._stale = False
        self.layers, self.steps = [], []
        self.columns = {column: [] for _, column, _, _ in METRICS}
        self.image.clear()
        self.plot.getAxis("left").setTicks([[]])
        self.note.setText("Health samples appear here every training.health_every steps during a run.")

    def add(self, event: ev.HealthEvent) -> None:
        if event.layers != self.layers:  # a new run (or the first sample): start over
            if self.steps:
                self.clear()
            self.layers = list(event.layers)
        self.steps.append(event.step)
        for _, column, _, _ in METRICS:
            self.columns[column].append([MISSING if v is None else v for v in getattr(event, column)])
        if self.isVisible():
            self.redraw()
        else:  # another tab is up: drawn when this one shows (a hidden redraw costs the training's CPU)
            self._stale = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self.redraw()

    def metric(self) -> tuple[str, str, bool, tuple[float, float] | None]:
        return METRICS[max(0, self.chooser.currentIndex())]

    def matrix(self) -> np.ndarray:
        """The chosen figure as layers x samples (log10 where the scale is logarithmic; NaN where
        it does not apply)."""
        _, column, log, _ = self.metric()
        data = np.array(self.columns[column], dtype=float).T if self.steps else np.zeros((0, 0))
        if log and data.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                data = np.where(data > 0, np.log10(np.where(data > 0, data, 1.0)), np.nan)
        return data

    # ------------------------------------------------------------ drawing
    def redraw(self) -> None:
        self._stale = False
        title, column, log, fixed = self.metric()
        if not self.steps:
            return
        data = self.matrix()
        finite = data[np.isfinite(data)]
        if fixed is not None:
            low, high = fixed
        elif finite.size:
            low, high = float(finite.min()), float(finite.max())
        else:
            low, high = 0.0, 1.0
        if high <= low:
            high = low + 1.0
        self.image.setImage(data, levels=(low, high), autoLevels=False)
        self.bar.setLevels((low, high))
        n = len(self.steps)
        first, last = self.steps[0], self.steps[-1]
        width = (last - first) / (n - 1) if n > 1 else 1.0
        self.image.setRect(first - width / 2, 0, width * n, len(self.layers))
        self.plot.setXRange(first - width / 2, first - width / 2 + width * n, padding=0)
        self.plot.setYRange(0, len(self.layers), padding=0)
        self.plot.getAxis("left").setTicks([[(i + 0.5, name) for i, name in enumerate(self.layers)]])
        scale = " (log10)" if log else ""
        at = f"at steps {first:,}..{last:,}" if n > 1 else f"at step {first:,}"
        self.note.setText(f"{title}{scale} of {len(self.layers)} layers, {n} sample{'s' * (n != 1)} {at} (x axis); "
                          "blank: does not apply")

    def value(self, layer: str, sample: int = -1) -> float | None:
        """The chosen figure (as drawn, before colouring) for a layer at a sample."""
        data = self.matrix()
        v = data[self.layers.index(layer), sample]
        return None if math.isnan(v) else float(v)


class AlertBanner(QFrame):
    """One alert: what, where and the fix in two lines at most (all of it in the tooltip); ✕ closes it."""

    def __init__(self, alert: ev.AlertEvent, parent=None):
        super().__init__(parent, objectName="alertBanner")
        self.alert = alert
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        where = f"<b>{_escape(alert.layer)}</b>: " if alert.layer else ""
        self.label = QLabel(f"<b>Health:</b> {where}{_escape(alert.message)}. <b>Fix:</b> {_escape(alert.fix)}",
                            objectName="alertText")
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setWordWrap(True)
        self.label.setToolTip(alert.text())
        self.close_button = QToolButton(objectName="alertClose", text="\u2715")
        self.close_button.setToolTip("Dismiss this alert")
        self.close_button.setAutoRaise(True)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 1, 2, 1)
        row.setSpacing(4)
        row.addWidget(self.label, 1)
        row.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.setMaximumHeight(self.label.fontMetrics().lineSpacing() * 2 + 6)


def _escape(text: str | None) -> str:
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class AlertBanners(QWidget):
    """The run's alerts as banners, newest on top, at most ``MAX_BANNERS``; each dismissible."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.banners: list[AlertBanner] = []
        self.older: list[ev.AlertEvent] = []  # alerts of this run no longer shown (older than the newest few)
        self.more = QLabel(objectName="alertMore")
        self.more.setStyleSheet(f"color: {theme.MUTED_TEXT}")
        self.box = QVBoxLayout(self)
        self.box.setContentsMargins(0, 0, 0, 0)
        self.box.setSpacing(2)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        self.banner_box = QVBoxLayout()
        self.banner_box.setSpacing(2)
        row.addLayout(self.banner_box, 1)
        row.addWidget(self.more, 0, Qt.AlignmentFlag.AlignBottom)
        self.box.addLayout(row)
        self.more.setVisible(False)
        self.setVisible(False)

    def add(self, alert: ev.AlertEvent) -> AlertBanner:
        banner = AlertBanner(alert)
        banner.close_button.clicked.connect(lambda: self.dismiss(banner))
        self.banners.insert(0, banner)
        self.banner_box.insertWidget(0, banner)
        while len(self.banners) > MAX_BANNERS:
            self.older.insert(0, self.banners[-1].alert)
            self._remove(self.banners[-1])
        self._show_more()
        self.setVisible(True)
        return banner

    def _show_more(self) -> None:
        self.more.setVisible(bool(self.older))
        if self.older:
            self.more.setText(f"+{len(self.older)} more")
            self.more.setToolTip("\n".join(a.text() for a in self.older[:20]))

    def dismiss(self, banner: AlertBanner) -> None:
        self._remove(banner)
        self.setVisible(bool(self.banners))

    def clear(self) -> None:
        for banner in list(self.banners):
            self._remove(banner)
        self.older = []
        self._show_more()
        self.setVisible(False)

    def _remove(self, banner: AlertBanner) -> None:
        if banner in self.banners:
            self.banners.remove(banner)
            self.banner_box.removeWidget(banner)
            banner.deleteLater()

    def texts(self) -> list[str]:
        return [b.alert.text() for b in self.banners]
