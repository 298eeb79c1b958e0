"""Training > Find Learning Rate...: the learning-rate range test (workbench.experiments.lr_finder)
in a dialog.

The test runs on a worker (ui.common.workers) with a copy of the project (the model spec and
the frozen settings), on a model of its own built as a run builds it: the project, the
window's trained model and any run are never touched. The curve grows live (a timer reads the
points the worker appends, 5 times a second) and ends with the suggestion marked; the x axis
is logarithmic. Apply sets ``training.optimizer.lr`` to the suggestion (two significant
digits) through the settings form, so it is ONE undoable edit like any typed value.

While a run trains the test is refused, and the dialog says why: it would compete with the run
for the processor (and on a GPU for its memory). Closing the dialog mid-test stops it after the
current step and waits for the worker; the window's shutdown hook does the same.
"""
from __future__ import annotations

import math
import threading

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton, QVBoxLayout

from workbench.errors import WorkbenchError
from workbench.experiments import lr_finder
from workbench.project.project_file import Project

from ui.common import theme
from ui.common.workers import Worker, start_worker

REDRAW_MS = 200
STEPS = lr_finder.STEPS  # of the ramp from START to END (tests take fewer)
BUSY = ("A run is training: the learning-rate test would compete with it for the processor (and a GPU's "
        "memory). Stop the run, or wait for it to end, then press Run.")


def _suggested(lr: float) -> float:
    """The suggestion as the project stores it: two significant digits (0.00487 -> 0.0049)."""
    return float(f"{lr:.2g}")


class LrFinderDialog(QDialog):
    """The range test's curve, its suggestion, and Apply (see the module docstring)."""

    def __init__(self, window):
        super().__init__(window)
        self.setObjectName("lrFinderDialog")
        self.setWindowTitle("Find Learning Rate")
        self.window_ = window
        self.curve: lr_finder.LrCurve | None = None
        self.worker: Worker | None = None
        self._stop = threading.Event()
        self._points: list[tuple[float, float, float]] = []  # (lr, loss, smoothed), appended by the worker
        self._drawn = 0
        self.intro = QLabel(f"Trains a copy of the model for up to {STEPS} steps while the learning rate "
                            f"rises from {lr_finder.START:g} to {lr_finder.END:g}, and suggests the rate where the "
                            "loss falls fastest. The project's weights are not changed.")
        self.intro.setWordWrap(True)
        self.status = QLabel(objectName="lrFinderStatus")
        self.status.setWordWrap(True)
        pg.setConfigOptions(antialias=True)
        self.plot = pg.PlotWidget(background=theme.PLOT_BACKGROUND)
        self.plot.setMinimumHeight(260)
        item = self.plot.getPlotItem()
        item.setLogMode(x=True, y=False)
        item.setLabel("bottom", "learning rate (log scale)")
        item.setLabel("left", "training loss")
        item.showGrid(x=True, y=True, alpha=0.25)
        item.setMenuEnabled(False)
        self.raw = self.plot.plot(pen=pg.mkPen(theme.PLOT_RAW, width=1), name="loss")
        self.smooth = self.plot.plot(pen=pg.mkPen(theme.PLOT_SMOOTH, width=2), name="smoothed")
        self.mark_line = pg.InfiniteLine(angle=90, movable=False,
                                         pen=pg.mkPen(theme.PLOT_MARK, width=1, style=Qt.PenStyle.DashLine))
        self.mark_point = pg.ScatterPlotItem(size=10, pen=pg.mkPen(theme.PLOT_MARK), brush=pg.mkBrush(theme.PLOT_MARK))
        self.mark_text = pg.TextItem(color=theme.PLOT_MARK, anchor=(0, 1))
        for extra in (self.mark_line, self.mark_point, self.mark_text):
            extra.setVisible(False)
            item.addItem(extra)
        buttons = QDialogButtonBox()
        self.run_button = QPushButton("Run", objectName="lrFinderRun")
        self.run_button.clicked.connect(self.start)
        self.apply_button = QPushButton("Apply", objectName="lrFinderApply")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons.addButton(self.run_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.apply_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(close, QDialogButtonBox.ButtonRole.RejectRole)
        column = QVBoxLayout(self)
        column.addWidget(self.intro)
        column.addWidget(self.plot, 1)
        column.addWidget(self.status)
        column.addWidget(buttons)
        self.action = QAction("Find &Learning Rate...", window)
        self.action.setStatusTip("Run a learning-rate range test on a copy of the model and suggest a rate")
        self.action.triggered.connect(lambda *_: self.show_and_run())
        self.timer = QTimer(self, interval=REDRAW_MS)
        self.timer.timeout.connect(self._redraw)
        self.resize(760, 480)

    # ------------------------------------------------------------ running
    def show_and_run(self) -> None:
        """Show the dialog and start the test (unless one runs, or a run trains: then it says so)."""
        self.show()
        self.raise_()
        if not self.is_running():
            self.start()

    def is_running(self) -> bool:
        return self.worker is not None

    def start(self) -> bool:
        """Start the test on a copy of the project; refused (and said) while a run trains."""
        if self.worker is not None:
            return False
        if self.window_.training.is_running():
            self.status.setText(BUSY)
            return False
        project = self.window_.doc.project
        copy = Project(project.name, project.model.copy(), project.data, project.training)
        self.curve = None
        self._points = points = []
        self._drawn = 0
        self._stop.clear()
        self.apply_button.setEnabled(False)
        self.run_button.setEnabled(False)
        for extra in (self.mark_line, self.mark_point, self.mark_text):
            extra.setVisible(False)
        self.raw.setData([], [])
        self.smooth.setData([], [])
        self.status.setText("Reading the data and building the model…")
        self.worker = start_worker(lr_finder.find_for_project, copy, name="lr-finder", steps=STEPS,
                                   stop=self._stop.is_set, progress=lambda i, lr, loss, s: points.append((lr, loss, s)),
                                   returned=self._done, errored=self._failed, finished=self._ended)
        self.timer.start()
        return True

    def stop(self) -> None:
        """Stop a running test after its current step and wait for it (its result is dropped)."""
        worker = self.worker
        if worker is None:
            return
        self._stop.set()
        worker.quit()
        worker.wait()

    def shutdown(self) -> None:
        self.stop()

    def closeEvent(self, event) -> None:
        self.stop()
        super().closeEvent(event)

    def reject(self) -> None:  # Escape
        self.stop()
        super().reject()

    # ------------------------------------------------------------ answers (UI thread)
    def _redraw(self) -> None:
        points = self._points
        n = len(points)
        if n == self._drawn or n == 0:
            return
        self._drawn = n
        lrs = [p[0] for p in points[:n]]
        finite = [(lr, loss, s) for lr, loss, s in points[:n] if math.isfinite(loss) and math.isfinite(s)]
        self.raw.setData([p[0] for p in finite], [p[1] for p in finite])
        self.smooth.setData([p[0] for p in finite], [p[2] for p in finite])
        if finite:  # a diverging tail must not squash the curve: the axis stops a little above the start
            low = min(min(p[1], p[2]) for p in finite)
            top = max(p[2] for p in finite[:max(1, len(finite) // 2)])
            self.plot.setYRange(low - 0.05 * (top - low), top + 0.15 * (top - low) + 1e-9, padding=0)
            self.plot.setXRange(math.log10(lr_finder.START), math.log10(lr_finder.END), padding=0.02)
        if self.worker is not None:
            self.status.setText(f"Step {n} of {STEPS}: learning rate {lrs[-1]:.2g}")

    def _done(self, curve: lr_finder.LrCurve) -> None:
        self.curve = curve
        self._redraw()
        if curve.suggestion is None:
            self.status.setText(curve.summary()[0].upper() + curve.summary()[1:] + ".")
            return
        lr = curve.suggestion
        x, y = math.log10(lr), curve.smoothed[curve.suggestion_index]
        self.mark_line.setPos(x)
        self.mark_point.setData([x], [y])
        self.mark_text.setText(f"  {_suggested(lr):g}")
        self.mark_text.setPos(x, y)
        for extra in (self.mark_line, self.mark_point, self.mark_text):
            extra.setVisible(True)
        self.status.setText(f"Suggested learning rate: {_suggested(lr):g} (now {self._current_lr():g}); "
                            f"{curve.summary().split('; ', 1)[-1]}. Apply sets training.optimizer.lr.")
        self.apply_button.setEnabled(True)

    def _failed(self, exc: Exception) -> None:
        text = str(exc) if isinstance(exc, WorkbenchError) else f"unexpected error: {type(exc).__name__}: {exc}"
        self.status.setText(f"The test could not run: {text}")

    def _ended(self) -> None:
        self.worker = None
        self.timer.stop()
        self.run_button.setEnabled(True)
        self.run_button.setText("Run Again")

    # ------------------------------------------------------------ apply
    def _current_lr(self) -> float:
        return self.window_.doc.project.training.optimizer.lr

    def suggestion(self) -> float | None:
        """The learning rate Apply sets (two significant digits), or None."""
        if self.curve is None or self.curve.suggestion is None:
            return None
        return _suggested(self.curve.suggestion)

    def apply(self) -> None:
        """Set training.optimizer.lr to the suggestion: one undoable edit (the settings form's)."""
        lr = self.suggestion()
        if lr is None:
            return
        self.window_.training.panel.form.set_value("optimizer", "lr", lr)
        self.window_.say(f"Learning rate set to {lr:g} (Edit > Undo puts back the one before)")
        self.status.setText(f"training.optimizer.lr is now {lr:g}.")


def install(window) -> LrFinderDialog:
    """Training > Find Learning Rate... (the dialog's ``action``), the dialog and its shutdown hook."""
    dialog = LrFinderDialog(window)
    menu = window.menu("training")
    menu.addSeparator()
    menu.addAction(dialog.action)
    window.add_shutdown_hook(dialog.shutdown)
    return dialog
