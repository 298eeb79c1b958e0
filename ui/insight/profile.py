"""View > Profile Layers (Ctrl+Shift+P): forward + backward time per layer on the training
device (``workbench.insight.latency``), measured on a worker, shown in the stack's Latency column
as a bar per row, with the three slowest layers named in the status bar and in the column's
header tooltip.

It profiles a copy of the model as it stands, at the project's batch size, on the device the
project trains on. While a run trains it is refused, with the reason: the run holds the device,
so the two would slow each other and the figures would measure the contention, not the layers.
An edit while profiling makes the result stale: it is dropped and the status bar says to profile
again. Closing the window stops a profile between steps and awaits it.
"""
from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence

from workbench.insight import latency

from ui.common.workers import Worker, start_worker

_REPEATS, _WARMUP = 5, 2


class Profiler:
    """The action, the job and what becomes of its result."""

    def __init__(self, window):
        self.window = window
        self.doc = window.doc
        self.job: Worker | None = None
        self._edited = False  # the model changed while the job ran: its figures are stale
        self.action = QAction("&Profile Layers", window)
        self.action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        tip = ("Measure forward + backward time per layer on the training device (median of "
               f"{_REPEATS} steps at the project's batch size): the Latency column")
        self.action.setStatusTip(tip)
        self.action.setToolTip(f"{tip} (Ctrl+Shift+P)")
        self.action.triggered.connect(lambda *_: self.start())
        self.doc.changed.connect(self._model_changed)
        self.doc.reset.connect(self._model_changed)

    def _model_changed(self, *_) -> None:
        if self.job is not None:
            self._edited = True

    def refusal(self) -> str | None:
        """Why Profile cannot start now, in words; None when it can."""
        if self.doc.edit_lock:
            return (f"Profile is off while {self.doc.edit_lock}: the run holds the device, so the times would "
                    "measure the two competing. Profile after the run ends.")
        if self.job is not None:
            return "Profiling already (the Latency column fills when it ends)"
        if not self.doc.spec.layers:
            return "No layers to profile yet"
        if self.doc.info.error is not None:
            error = self.doc.info.error
            return f"Cannot profile: '{error.layer_id}' (row {error.position}) cannot work. Fix that row first."
        return None

    def start(self) -> bool:
        refusal = self.refusal()
        if refusal is not None:
            self.window.say(refusal)
            return False
        figures = self.doc.costs
        batch, device = figures.batch(), figures.device()
        self._edited = False
        holder: list[Worker] = []
        self.job = start_worker(latency.profile, self.doc.spec.copy(), batch, device, _WARMUP, _REPEATS,
                                lambda: bool(holder) and holder[0].abort_requested, name="profile",
                                returned=self._got, errored=self._failed, finished=self._ended)
        holder.append(self.job)
        self.action.setEnabled(False)
        self.window.say(f"Profiling every layer on {device} at batch {batch}…", 0)
        return True

    def _got(self, report: latency.LatencyReport) -> None:
        if self._edited:
            self.window.say("The model changed while it was profiled: Profile Layers again for its times")
            return
        self.doc.costs.set_latency(report)
        self.window.say(f"Latency per training step {latency.milliseconds(report.step_ms)} on {report.device}, "
                        f"{latency.top_text(report)}", 60_000)

    def _failed(self, exc: Exception) -> None:
        self.window.say(f"Could not profile: {exc}")

    def _ended(self) -> None:
        self.job = None
        self.action.setEnabled(True)

    def shutdown(self) -> None:
        if self.job is not None:
            self.job.quit()
            self.job.wait(60.0)


def install(window) -> Profiler:
    """View > Profile Layers, and the cost figures turned on (awaited when the window closes)."""
    profiler = Profiler(window)
    window.menu("view").addSeparator()
    window.menu("view").addAction(profiler.action)
    window.doc.costs.start()
    window.add_shutdown_hook(profiler.shutdown)
    window.add_shutdown_hook(window.doc.costs.close)
    return profiler


__all__ = ["Profiler", "install"]
