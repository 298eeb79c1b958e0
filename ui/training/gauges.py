"""Memory gauges: each CUDA device's allocated / reserved / peak / total, or, without a GPU,
this process's and the system's RAM with a plain "no GPU" line.

Readings come from ``workbench.memory.read()`` on a background thread twice a second (NVML
set-up alone can take tens of milliseconds); the UI thread only paints the latest one.
``memory.read()`` reads CUDA counters only once this process uses CUDA, so polling never
creates a CUDA context. The summary button shows ``torch.cuda.memory_summary()`` for the
devices in use.
"""
from __future__ import annotations

import torch
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from workbench.training import memory
from workbench.training.memory import fmt_bytes

from ui.common import theme
from ui.common.workers import Worker, start_worker

POLL_MS = 500
CUDA_TIP = ("<b>allocated</b>: memory held by tensors right now.<br>"
            "<b>reserved</b>: memory PyTorch's caching allocator has taken from the GPU: allocated plus "
            "freed blocks it keeps for reuse (what nvidia-smi counts for this process, minus the CUDA "
            "context).<br><b>peak</b>: the most ever allocated at once since the run started (the tick).<br>"
            "<b>total</b>: the device's memory. A run fails with 'out of memory' when reserved plus other "
            "processes' use reaches it.")
NVML_TIP = ("Read through NVML: this process has not used the GPU yet, so only the memory used by all "
            "processes and the total are known; allocated / reserved show once training runs on it.")
RAM_TIP = ("<b>process</b>: resident memory of this window (data, model and PyTorch itself); the tick marks "
           "its peak.<br><b>system</b>: memory in use by everything on this machine, of its total.")


class Bar(QWidget):
    """A horizontal gauge: a light part (reserved / used), a dark part (allocated), a peak tick."""

    def __init__(self, color: str, parent=None):
        super().__init__(parent)
        self.color = QColor(color)
        self.total = 0
        self.light = self.dark = self.peak = None
        self.setMinimumHeight(12)
        self.setMaximumHeight(14)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_values(self, total: int | None, dark: int | None, light: int | None = None, peak: int | None = None):
        self.total, self.dark, self.light, self.peak = total or 0, dark, light, peak
        self.update()

    def fraction(self, value: int | None) -> float:
        if value is None or not self.total:
            return 0.0
        return max(0.0, min(1.0, value / self.total))

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        p.setPen(QPen(QColor(theme.GAUGE_FRAME)))
        p.setBrush(QColor(theme.GAUGE_BACKGROUND))
        p.drawRect(r)
        inner = r.adjusted(1, 1, -1, -1)
        p.setPen(Qt.PenStyle.NoPen)
        if self.light is not None:
            light = QColor(self.color)
            light.setAlpha(90)
            p.setBrush(light)
            p.drawRect(QRectF(inner.left(), inner.top(), inner.width() * self.fraction(self.light), inner.height()))
        if self.dark is not None:
            p.setBrush(self.color)
            p.drawRect(QRectF(inner.left(), inner.top(), inner.width() * self.fraction(self.dark), inner.height()))
        if self.peak is not None:
            x = inner.left() + inner.width() * self.fraction(self.peak)
            p.setPen(QPen(QColor(theme.GAUGE_PEAK), 2))
            p.drawLine(int(x), int(r.top()), int(x), int(r.bottom()))
        p.end()


class Gauge(QWidget):
    """A titled bar with its numbers underneath."""

    def __init__(self, title: str, color: str, tip: str, parent=None):
        super().__init__(parent)
        self.title = QLabel(title)
        bold = QFont(self.title.font())
        bold.setBold(True)
        self.title.setFont(bold)
        self.bar = Bar(color)
        self.text = QLabel()
        self.text.setObjectName("muted")
        self.text.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        layout.setSpacing(1)
        layout.addWidget(self.title)
        layout.addWidget(self.bar)
        layout.addWidget(self.text)
        self.setToolTip(tip)


class MemoryGauges(QWidget):
    def __init__(self, parent=None, poll_ms: int = POLL_MS):
        super().__init__(parent)
        self.reading: memory.MemoryReading | None = None
        self.headline = QLabel(objectName="gaugeHeadline")
        self.headline.setWordWrap(True)
        self.devices: dict[str, Gauge] = {}
        self.process = Gauge("Process RAM", theme.GAUGE_PROCESS, RAM_TIP)
        self.system = Gauge("System RAM", theme.GAUGE_SYSTEM, RAM_TIP)
        self.summary_button = QPushButton("CUDA memory summary...", objectName="gaugeSummary")
        self.summary_button.setToolTip("torch.cuda.memory_summary(): the caching allocator's full statistics")
        self.summary_button.clicked.connect(self.show_summary)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(4, 4, 4, 4)
        self._layout.addWidget(self.headline)
        self._device_at = 1  # device gauges go after the headline
        self._layout.addWidget(self.process)
        self._layout.addWidget(self.system)
        self._layout.addWidget(self.summary_button)
        self._layout.addStretch(1)
        self._cuda_seen = self._cuda_available()
        self.headline.setText("Reading memory..." if self._cuda_seen else self._no_gpu_text())
        self.summary_button.setVisible(False)
        self._job: Worker | None = None
        self._closed = False
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.poll)
        self._timer.start()
        self.poll()

    @staticmethod
    def _cuda_available() -> bool:
        return torch.cuda.is_available()  # asks the driver for a device count; creates no context

    @staticmethod
    def _no_gpu_text() -> str:
        return ("<b>No GPU</b>: PyTorch sees no CUDA device here, so training runs on the CPU. "
                "Showing this process's and the system's RAM.")

    # ------------------------------------------------------------ polling
    def poll(self) -> None:
        if self._job is None and not self._closed:  # never queue readings behind a slow one
            self._job = start_worker(memory.read, name="memory", returned=self.show_reading,
                                     errored=self._failed, finished=self._ended)

    def _failed(self, error: Exception) -> None:
        self.headline.setText(f"Memory reading failed: {error}")

    def _ended(self) -> None:
        self._job = None

    def finish_reading(self, timeout_s: float = 10.0) -> None:
        """Wait for the reading in flight and show it now (tests)."""
        if self._job is not None:
            self._job.wait(timeout_s)

    def show_reading(self, reading: memory.MemoryReading) -> None:
        self.reading = reading
        for d in reading.devices:
            self._show_device(d)
        for name in [n for n in self.devices if reading.device(n) is None]:
            self.devices.pop(name).deleteLater()
        if reading.devices:
            in_use = [d for d in reading.devices if d.source != "nvml"]
            self.headline.setText(f"{len(reading.devices)} CUDA device{'s' if len(reading.devices) > 1 else ''}"
                                  + ("" if in_use else ": not used by this process yet"))
        elif self._cuda_seen:
            self.headline.setText("A CUDA GPU is present; its memory shows once training runs on it "
                                  "(reading it earlier would start CUDA in this process).")
        else:
            self.headline.setText(self._no_gpu_text())
        self.summary_button.setVisible(torch.cuda.is_initialized())
        peak = reading.process_peak
        self.process.bar.set_values(reading.system_total, reading.process_rss, None, peak)
        self.process.text.setText(f"{fmt_bytes(reading.process_rss)} now, peak {fmt_bytes(peak)}")
        used = reading.system_total - reading.system_available
        self.system.bar.set_values(reading.system_total, used)
        self.system.text.setText(f"{fmt_bytes(used)} used of {fmt_bytes(reading.system_total)} "
                                 f"({fmt_bytes(reading.system_available)} available)")

    def _show_device(self, d: memory.DeviceMemory) -> None:
        gauge = self.devices.get(d.device)
        if gauge is None:
            gauge = Gauge(d.device, theme.GAUGE_DEVICE, CUDA_TIP)
            self._layout.insertWidget(self._device_at + len(self.devices), gauge)
            self.devices[d.device] = gauge
        if d.allocated is None:  # NVML: whole-device use only
            gauge.setToolTip(NVML_TIP)
            gauge.bar.set_values(d.total, None, d.used)
            gauge.text.setText(f"{fmt_bytes(d.used)} used by all processes of {fmt_bytes(d.total)}")
            return
        gauge.setToolTip(CUDA_TIP)
        gauge.bar.set_values(d.total, d.allocated, d.reserved, d.peak)
        gauge.text.setText(f"allocated {fmt_bytes(d.allocated)} · reserved {fmt_bytes(d.reserved)} · "
                           f"peak {fmt_bytes(d.peak)} · total {fmt_bytes(d.total)}")

    def show_summary(self) -> None:
        text = summary_text()
        dialog = QDialog(self)
        dialog.setWindowTitle("CUDA memory summary")
        view = QPlainTextEdit(text, readOnly=True)
        view.setFont(QFont("monospace"))
        view.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dialog.reject)
        layout = QVBoxLayout(dialog)
        layout.addWidget(view)
        layout.addWidget(buttons)
        dialog.resize(820, 620)
        dialog.open()
        self.summary_dialog = dialog

    def shutdown(self) -> None:
        """The window is closing: polling stops and the reading in flight is awaited."""
        self._closed = True
        self._timer.stop()
        if self._job is not None:
            self._job.quit()
            self._job.wait(10.0)


def summary_text() -> str:
    """torch.cuda.memory_summary() of every device this process uses; never starts CUDA."""
    if not torch.cuda.is_initialized():
        return "This process has not used CUDA yet: nothing to summarise."
    parts = []
    for i in range(torch.cuda.device_count()):
        if torch.cuda.memory_reserved(i) or torch.cuda.max_memory_allocated(i):
            parts.append(f"cuda:{i}\n{torch.cuda.memory_summary(i, abbreviated=False)}")
    return "\n\n".join(parts) or "CUDA is initialised but no device holds memory yet."
