"""What the open project costs, kept up to date off the UI thread: per-row MACs and training
memory, the totals and the largest batch that fits (``workbench.insight.costs.CostReport``), and
the latest per-layer latency profile (``workbench.insight.latency.LatencyReport``).

The document owns one ``CostFigures`` (``ProjectDocument.costs``), so every panel that shows a
cost (the stack's cost columns, the summary bar, the batch-size hint in the training settings)
reads the same report. After any change (an edit of the model, undo / redo, a settings change:
anything that moves the undo stack, and a new project) the report is recomputed on a worker
(``ui.common.workers``) with a copy of the spec and the document's inference, and ``updated`` is
emitted on the UI thread. Per-layer costs are cached by layer (``model.costs``), so the job after
a one-row edit measures only the rows whose layer or input changed (a few ms for a 200-row
stack); a first look at a big backbone takes longer, and the window stays responsive meanwhile.
Jobs never overlap: a change during a job marks the figures stale, and the job's result is
dropped and the next one started when it ends, so what is shown always matches the model.

A latency report belongs to the model, batch and device it was measured with: an edit of the
model, or another batch size or device, drops it (``latencyChanged``), since its bars would be
about a model that no longer exists.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from workbench.errors import WorkbenchError
from workbench.insight import costs as insight_costs
from workbench.insight.latency import LatencyReport
from workbench.training.loop import resolve_device

from ui.common.workers import Worker, start_worker


def device_name(setting: str) -> str:
    """The device a run of this project would use ('auto' resolved: 'cpu', 'cuda', 'mps');
    a device that is not here keeps its name (its capacity is then unknown)."""
    try:
        return str(resolve_device(setting))
    except WorkbenchError:
        return setting


SETTLE_MS = 250  # quiet time after the last edit before the figures are recomputed


class CostFigures(QObject):
    updated = Signal()  # ``report`` (or ``problem``) is fresh
    latencyChanged = Signal()  # ``latency`` was set or dropped

    def __init__(self, doc, parent=None):
        super().__init__(parent if parent is not None else doc)
        self.doc = doc
        self.report: insight_costs.CostReport | None = None
        self.problem = ""  # why there is no report (a model problem stops nothing: its rows are left out)
        self.latency: LatencyReport | None = None
        self._latency_for: tuple | None = None  # (batch, device) the latency was measured at
        self._job: Worker | None = None
        self._stale = False
        self._active = False  # ``start()``: the window turns the figures on (and awaits them on close)
        self._closed = False
        # Recompute once edits settle: a job started right after each edit took its frame's time
        # (the spec copy on this thread, the worker's Python beside it): 200-layer edit 10 -> 18 ms.
        self._timer = QTimer(self, singleShot=True, interval=SETTLE_MS)  # a burst of edits makes one job
        self._timer.timeout.connect(self._start)
        doc.changed.connect(self._model_changed)
        doc.reset.connect(self._model_changed)
        doc.undo_stack.indexChanged.connect(self.schedule)

    def start(self) -> None:
        """Compute from now on (the window calls it; a document on its own computes nothing, so
        no job outlives a test or panel that never asked)."""
        self._active = True
        self.schedule()

    # ------------------------------------------------------------ what a job is asked
    def batch(self) -> int:
        return self.doc.project.data.batch_size

    def device(self) -> str:
        return device_name(self.doc.project.training.device)

    def schedule(self, *_) -> None:
        """Recompute soon (after the signals of the current edit have all been sent)."""
        if self._closed or not self._active:
            return
        if self._job is not None:
            self._stale = True
        if self._latency_for is not None and self._latency_for != (self.batch(), self.device()):
            self.set_latency(None)
        self._timer.start()

    def _model_changed(self, *_) -> None:
        self.set_latency(None)
        self.schedule()

    def _start(self) -> None:
        if self._closed or self._job is not None:
            return
        self._stale = False
        project = self.doc.project
        self._job = start_worker(insight_costs.report, project.model.copy(), self.batch(),
                                 project.training.optimizer, self.device(), info=self.doc.info,
                                 name="costs", returned=self._got, errored=self._failed, finished=self._ended)

    def _got(self, report) -> None:
        if not self._stale:
            self.report, self.problem = report, ""
            self.updated.emit()

    def _failed(self, exc: Exception) -> None:
        if not self._stale:
            self.report, self.problem = None, str(exc) or type(exc).__name__
            self.updated.emit()

    def _ended(self) -> None:
        self._job = None
        if self._stale and not self._closed:
            self._timer.start()

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Deliver a pending computation now (tests, screenshots): True once the figures are fresh."""
        for _ in range(10):
            if self._timer.isActive():
                self._timer.stop()
                self._start()
            if self._job is None:
                return True
            if not self._job.wait(timeout_s):
                return False
        return self._job is None and not self._timer.isActive()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop for good (the window is closing): no more jobs; a running one's answer is dropped
        and the job awaited."""
        self._closed = True
        self._timer.stop()
        if self._job is not None:
            self._job.quit()
            self._job.wait(timeout_s)

    # ------------------------------------------------------------ latency (measured by View > Profile)
    def set_latency(self, report: LatencyReport | None) -> None:
        if report is None and self.latency is None:
            return
        self.latency = report
        self._latency_for = None if report is None else (report.batch, self.device())
        self.latencyChanged.emit()

    # ------------------------------------------------------------ reading
    def row(self, path: str):
        return self.report.row(path) if self.report is not None else None

    def row_memory(self, path: str) -> int | None:
        return self.report.row_memory(path) if self.report is not None else None

    def row_latency(self, path: str):
        return self.latency.layers.get(path) if self.latency is not None else None


__all__ = ["CostFigures", "device_name"]
