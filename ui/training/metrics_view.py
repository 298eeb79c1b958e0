"""The test metrics of a trained model (``workbench.training.evaluation.Report``) in the
Evaluation tab: a table (per class precision, recall, F1 and support, then the macro and
weighted averages and the accuracy; for a regression MAE, RMSE and R²) beside the figures
(the confusion matrix, and for two classes the ROC and precision-recall curves, drawn with
pyqtgraph; for a regression the predicted values against the true ones).

The confusion matrix widget is handed in by the Evaluation panel (it is the one the epoch view
uses), so this module needs nothing from it.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QTableWidget, QTableWidgetItem,
                               QTabWidget, QVBoxLayout, QWidget)

from workbench.training.evaluation import AVERAGES, Report

from ui.common import theme

COLUMNS = ("Class", "Precision", "Recall", "F1", "Support")
SPLIT_WORDS = {"test": "Test split", "val": "Validation split (the data has no test split)"}


def _plot(x_label: str, y_label: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(background=theme.PLOT_BACKGROUND)
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.showGrid(x=True, y=True, alpha=0.3)
    plot.setMenuEnabled(False)
    plot.setMinimumSize(90, 60)  # the Training dock keeps its minimum height (the window 755x484)
    return plot


class MetricsView(QWidget):
    """A report as a table and figures; ``set_report(report, source)`` shows one."""

    def __init__(self, matrix: QWidget, parent=None):
        super().__init__(parent)
        self.report: Report | None = None
        self.heading = QLabel("", objectName="evalTitle")
        self.heading.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)  # compact rows
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # names elide instead
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # the names take what the figures leave
        self.matrix = matrix
        self.roc = _plot("false positive rate", "true positive rate")
        self.pr = _plot("recall", "precision")
        self.scatter = _plot("true value", "predicted value")
        self.figures = QTabWidget(objectName="metricFigures")
        self.figures.setDocumentMode(True)
        self.figures.setTabBarAutoHide(True)  # one figure (many classes): no tab bar over it
        self.top = QHBoxLayout()
        self.top.setContentsMargins(0, 0, 0, 0)
        self.top.addWidget(self.heading, 1)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.table, 1)
        body.addWidget(self.figures)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.top)
        layout.addLayout(body, 1)
        self.clear()

    def add_tool(self, widget: QWidget) -> None:
        """Put a control (the panel's Evaluate Checkpoint… button) at the end of the heading row."""
        self.top.addWidget(widget)

    def resizeEvent(self, event) -> None:
        """The figures stay about square (as tall as the page allows, at most half its width);
        the table gets the rest."""
        super().resizeEvent(event)
        side = self.height() - self.heading.sizeHint().height() - 8
        self.figures.setFixedWidth(max(160, min(side + 40, int(self.width() * 0.5))))

    def clear(self, text: str = "No test metrics yet: they come at the end of a run (on the test split, or the "
                                 "validation split where there is none), or from Evaluate Checkpoint…") -> None:
        self.report = None
        self.heading.setText(text)
        self.table.setRowCount(0)
        self.figures.clear()
        self.figures.hide()
        self.table.hide()

    def set_report(self, report: Report, source: str) -> None:
        """Show ``report``; ``source`` says whose weights (a run, a checkpoint file)."""
        self.report = report
        what = SPLIT_WORDS.get(report.split, report.split)
        acc = f" · accuracy {report.accuracy:.4f}" if report.accuracy is not None else ""
        if report.roc is not None and report.pr is not None:
            positive = report.class_names[1] if len(report.class_names) > 1 else "1"
            acc += f" · ROC AUC {report.roc.area:.3f} · AP {report.pr.area:.3f} (positive: {positive})"
        note = f" · <span style='color:{theme.WARNING}'>{report.note}</span>" if report.note else ""
        self.heading.setText(f"<b>{what}</b> · {report.size:,} examples{acc} · {source}{note}")
        self.figures.clear()
        if report.kind == "regression":
            self._regression(report)
        else:
            self._classification(report)
        self.table.show()
        self.figures.show()

    # ------------------------------------------------------------ classification
    def _classification(self, r: Report) -> None:
        self.table.setColumnCount(len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        rows = [(row.name, row, False) for row in r.rows] + \
            [(f"{key} average", r.averages[key], True) for key in AVERAGES if key in r.averages]
        self.table.setRowCount(len(rows) + (1 if r.accuracy is not None else 0))
        for i, (name, row, total) in enumerate(rows):
            self._set_row(i, [name, f"{row.precision:.3f}", f"{row.recall:.3f}", f"{row.f1:.3f}", f"{row.support:,}"],
                          total)
        if r.accuracy is not None:
            self._set_row(len(rows), ["accuracy", "", "", f"{r.accuracy:.3f}", f"{r.size:,}"], True)
        self.matrix.set_matrix(r.confusion, r.class_names)
        self.figures.addTab(self.matrix, "Matrix")
        self.figures.setTabToolTip(0, "The confusion matrix: rows are the true class, columns the predicted one")
        if r.roc is not None and r.pr is not None:
            self.roc.clear()
            self.roc.plot([0, 1], [0, 1], pen=pg.mkPen(theme.PLOT_GRID, width=1, style=Qt.PenStyle.DashLine))
            self.roc.plot(r.roc.x, r.roc.y, pen=pg.mkPen(theme.PLOT_SMOOTH, width=2))
            self.pr.clear()
            self.pr.plot(r.pr.x, r.pr.y, pen=pg.mkPen(theme.PLOT_VAL, width=2))
            for plot in (self.roc, self.pr):
                plot.setXRange(0, 1, padding=0.02)
                plot.setYRange(0, 1, padding=0.02)
            self.figures.addTab(self.roc, "ROC")
            self.figures.setTabToolTip(1, f"ROC curve of the positive class {r.class_names[1]!r}: AUC {r.roc.area:.4f}")
            self.figures.addTab(self.pr, "PR")
            self.figures.setTabToolTip(2, f"Precision-recall curve of the positive class {r.class_names[1]!r}: "
                                          f"average precision {r.pr.area:.4f}")

    # ------------------------------------------------------------ regression
    def _regression(self, r: Report) -> None:
        self.table.setColumnCount(2)
        self.table.setHorizontalHeaderLabels(["Metric", "Value"])
        figures = [("MAE (mean absolute error)", r.mae), ("RMSE (root mean squared error)", r.rmse),
                   ("R² (coefficient of determination)", r.r2)]
        self.table.setRowCount(len(figures))
        for i, (name, value) in enumerate(figures):
            self._set_row(i, [name, "n/a" if value is None else f"{value:.4g}"], False)
        self.scatter.clear()
        if r.pairs:
            xs, ys = [p[0] for p in r.pairs], [p[1] for p in r.pairs]
            lo, hi = min(xs + ys), max(xs + ys)
            self.scatter.plot([lo, hi], [lo, hi], pen=pg.mkPen(theme.PLOT_GRID, width=1, style=Qt.PenStyle.DashLine))
            self.scatter.plot(xs, ys, pen=None, symbol="o", symbolSize=5, symbolPen=None,
                              symbolBrush=pg.mkBrush(*theme.PLOT_SMOOTH[:3], 140))
        self.figures.addTab(self.scatter, "Predicted vs true")
        self.figures.setTabToolTip(0, "Each example's predicted value against its true one; on the dashed line the "
                                      "prediction is exact")

    def _set_row(self, i: int, cells: list[str], total: bool) -> None:
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if c > 0:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if total:
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
            self.table.setItem(i, c, item)

    def cell(self, row: int, column: int) -> str:
        """The text in a table cell (tests, copy)."""
        item = self.table.item(row, column)
        return item.text() if item is not None else ""
