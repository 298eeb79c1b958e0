"""The Data dock's figures: the class balance as bars (pyqtgraph ``BarGraphItem``, training and
validation side by side; a click on a bar asks the grid for that class) and the training split's
per-channel or per-column mean and std with "Use for normalisation"."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QHeaderView, QLabel, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from workbench.data.scan import ScanResult

from ui.common import theme

TRAIN_BAR = (37, 99, 235)
VAL_BAR = (234, 88, 12)
TEST_BAR = (22, 163, 74)


class BalanceChart(QWidget):
    """Examples per class in each split, as bars; ``classClicked(index)`` on a click."""

    classClicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(background=theme.PLOT_BACKGROUND)
        self.plot.setMinimumSize(140, 80)
        item = self.plot.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.setMouseEnabled(x=False, y=False)
        item.showGrid(y=True, alpha=0.25)
        item.getAxis("left").setWidth(36)
        self.legend = QLabel(objectName="balanceLegend")
        self.legend.setWordWrap(True)
        self.bars: list[pg.BarGraphItem] = []
        self.counts: dict[str, list[int]] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.legend)
        self.plot.scene().sigMouseClicked.connect(self._clicked)

    def set_result(self, result: ScanResult | None) -> None:
        item = self.plot.getPlotItem()
        for bar in self.bars:
            item.removeItem(bar)
        self.bars, self.counts = [], {}
        if result is None or not result.class_names:
            self.legend.setText("No classes: the target is a number (regression)" if result is not None
                                and result.kind != "none" else "")
            return
        splits = [(key, colour) for key, colour in (("train", TRAIN_BAR), ("val", VAL_BAR), ("test", TEST_BAR))
                  if getattr(result, key)]
        width = 0.8 / max(1, len(splits))
        n = len(result.class_names)
        for k, (key, colour) in enumerate(splits):
            counts = result.class_counts(key)
            self.counts[key] = counts
            bar = pg.BarGraphItem(x=np.arange(n) - 0.4 + width * (k + 0.5), height=counts, width=width,
                                  brush=pg.mkBrush(colour), pen=pg.mkPen(colour))
            item.addItem(bar)
            self.bars.append(bar)
        names = result.class_names
        step = max(1, n // 12)  # at most about a dozen names under the bars
        item.getAxis("bottom").setTicks([[(i, names[i][:10]) for i in range(0, n, step)]])
        item.setXRange(-0.6, n - 0.4, padding=0)
        item.setYRange(0, max(max(c) for c in self.counts.values()) * 1.08 or 1, padding=0)
        words = {"train": "training", "val": "validation", "test": "test"}
        self.legend.setText("  ".join(f'<span style="color: rgb{c}">■</span> {words[k]}' for k, c in splits)
                            + f"  ·  {n} classes, smallest {min(self.counts['train'])} in training"
                            if "train" in self.counts else "")
        self.legend.setToolTip("\n".join(f"{name}: " + ", ".join(f"{words[k]} {self.counts[k][i]}" for k, _ in splits)
                                         for i, name in enumerate(names)))

    def _clicked(self, event) -> None:
        if not self.bars:
            return
        point = self.plot.getPlotItem().vb.mapSceneToView(event.scenePos())
        index = int(round(point.x()))
        if 0 <= index < len(next(iter(self.counts.values()))):
            self.classClicked.emit(index)


class StatsPanel(QWidget):
    """Split sizes, then mean and std per channel (images) or input column (tables) of the
    training split, and the button that makes them the project's normalisation."""

    useClicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sizes = QLabel(objectName="splitSizes")
        self.sizes.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["", "mean", "std"])
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()  # the figures whole; a long column name gives way (elided)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumSize(120, 50)
        self.use_button = QPushButton("Use for normalisation")
        self.use_button.setToolTip("Set data.mean and data.std to these figures (undoable): training then "
                                   "normalises with them instead of the statistics computed at load")
        self.note = QLabel(objectName="normalisationNote")
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.sizes)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.use_button)
        layout.addWidget(self.note)
        self.use_button.clicked.connect(self.useClicked.emit)
        self.set_result(None, None, None)

    def set_result(self, result: ScanResult | None, mean, std) -> None:
        """Show ``result``; ``mean`` / ``std`` are the project's data.mean / data.std (None: computed)."""
        if result is None:
            self.sizes.setText("")
            self.table.setRowCount(0)
            self.use_button.setEnabled(False)
            self.note.setText("")
            return
        s = result.sizes
        parts = [f"<b>{s['train']:,}</b> training", f"<b>{s['val']:,}</b> validation"]
        if s["test"]:
            parts.append(f"<b>{s['test']:,}</b> test")
        self.sizes.setText(" · ".join(parts) + " examples")
        self.table.setRowCount(len(result.mean))
        for row, (name, m, d) in enumerate(zip(result.stat_names, result.mean, result.std)):
            label = QTableWidgetItem(name)
            label.setToolTip(name)
            self.table.setItem(row, 0, label)
            self.table.setItem(row, 1, QTableWidgetItem(f"{m:.4g}"))
            self.table.setItem(row, 2, QTableWidgetItem(f"{d:.4g}"))
        same = mean is not None and std is not None and np.allclose(mean, result.mean) and \
            np.allclose(std, result.std) and len(mean) == len(result.mean)
        self.use_button.setEnabled(bool(result.mean) and not same)
        if mean is None and std is None:
            self.note.setText("Training normalises with statistics computed at load.")
        elif same:
            self.note.setText("In use: data.mean and data.std hold these figures.")
        else:
            self.note.setText("data.mean / data.std hold other figures.")
