"""Memory gauges: RAM and a plain "no GPU" line without CUDA, per-device numbers with CUDA,
readings taken off the UI thread and never starting CUDA."""
from __future__ import annotations

import threading

import pytest
import torch

from ui.training import gauges as gauges_module
from ui.training.gauges import CUDA_TIP, MemoryGauges, summary_text
from window_helpers import text_of
from workbench.training import memory
from workbench.training.memory import DeviceMemory, MemoryReading

GIB = 2**30


@pytest.fixture
def gauges(qtbot):
    widget = MemoryGauges(poll_ms=50)
    qtbot.addWidget(widget)
    widget.resize(260, 300)
    widget.show()
    yield widget
    widget.shutdown()


def reading(*devices: DeviceMemory) -> MemoryReading:
    return MemoryReading(0.0, 3 * GIB, 4 * GIB, 32 * GIB, 20 * GIB, tuple(devices))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_without_a_gpu_it_says_so_and_shows_process_and_system_ram(qtbot, gauges):
    qtbot.waitUntil(lambda: gauges.reading is not None, timeout=5000)
    assert text_of(gauges.headline).startswith("No GPU: PyTorch sees no CUDA device")
    r = gauges.reading
    assert r.process_rss > 0 and gauges.process.bar.dark == r.process_rss and gauges.process.bar.total == r.system_total
    assert "now, peak" in gauges.process.text.text()
    assert f"of {memory.fmt_bytes(r.system_total)}" in gauges.system.text.text()
    assert not gauges.devices and gauges.summary_button.isHidden()
    assert not torch.cuda.is_initialized()  # polling never started CUDA


def test_polling_runs_off_the_ui_thread_and_skips_while_a_reading_is_slow(qtbot, gauges, monkeypatch):
    seen, gate = [], threading.Event()

    def slow_read(devices=None):
        seen.append(threading.current_thread())
        gate.wait(2)
        return reading()
    monkeypatch.setattr(memory, "read", slow_read)
    gauges.finish_reading()
    gauges.poll()
    qtbot.wait(300)  # six timer ticks pass while the reading hangs
    assert len(seen) == 1 and seen[0] is not threading.main_thread()
    gate.set()
    qtbot.waitUntil(lambda: gauges.reading is not None and gauges.reading.process_rss == 3 * GIB, timeout=3000)


def test_cuda_devices_show_allocated_reserved_peak_and_total(gauges, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    gauges._timer.stop()
    d0 = DeviceMemory("cuda:0", 2 * GIB, 3 * GIB, int(2.5 * GIB), 80 * GIB, used=4 * GIB)
    gauges.show_reading(reading(d0))
    gauge = gauges.devices["cuda:0"]
    assert gauge.text.text() == "allocated 2.0 GiB · reserved 3.0 GiB · peak 2.5 GiB · total 80.0 GiB"
    assert (gauge.bar.dark, gauge.bar.light, gauge.bar.peak, gauge.bar.total) == (2 * GIB, 3 * GIB, int(2.5 * GIB),
                                                                                   80 * GIB)
    assert gauge.toolTip() == CUDA_TIP and "caching allocator" in CUDA_TIP
    assert gauges.headline.text() == "1 CUDA device" and not gauges.summary_button.isHidden()
    # a second device appears, the first one goes
    d1 = DeviceMemory("cuda:1", None, None, None, 80 * GIB, used=10 * GIB, source="nvml")
    gauges.show_reading(reading(d1))
    assert list(gauges.devices) == ["cuda:1"]
    assert gauges.devices["cuda:1"].text.text() == "10.0 GiB used by all processes of 80.0 GiB"


def test_bar_fractions_are_clamped(gauges):
    bar = gauges.process.bar
    bar.set_values(100, 150, None, 50)
    assert bar.fraction(bar.dark) == 1.0 and bar.fraction(bar.peak) == 0.5 and bar.fraction(None) == 0.0
    bar.grab()  # paints without error


def test_summary_without_cuda_says_there_is_nothing_yet(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert summary_text() == "This process has not used CUDA yet: nothing to summarise."


def test_summary_button_shows_torchs_memory_summary(gauges, monkeypatch):
    monkeypatch.setattr(gauges_module, "summary_text", lambda: "|  PyTorch CUDA memory summary  |")
    gauges.show_summary()
    view = gauges.summary_dialog.findChild(gauges_module.QPlainTextEdit)
    assert view.toPlainText() == "|  PyTorch CUDA memory summary  |" and view.isReadOnly()
    gauges.summary_dialog.close()
