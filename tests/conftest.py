"""Test set-up: Qt offscreen unless a test asks otherwise; small torch thread pools; no
downloads; and a guard that fails any test leaving a QThread running."""
from __future__ import annotations

import os
import tempfile
import weakref

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("WORKBENCH_OFFLINE", "1")  # nothing may download during tests
# the window's QSettings (recent files, geometry) go to a throwaway file, never the user's
os.environ["WORKBENCH_SETTINGS"] = os.path.join(tempfile.mkdtemp(prefix="wb-settings-"), "s.ini")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

_started: "weakref.WeakSet" = weakref.WeakSet()
try:
    from PySide6.QtCore import QThread

    _original_start = QThread.start

    def _tracking_start(self, *args, **kwargs):
        _started.add(self)
        return _original_start(self, *args, **kwargs)

    QThread.start = _tracking_start
except ImportError:  # core-only environments
    QThread = None


@pytest.fixture(autouse=True)
def _no_dangling_qthreads(request):
    """Fail any test that leaves a QThread running (they crash the process at exit)."""
    yield
    running = [t for t in list(_started) if _is_running(t)]
    if running:
        for t in running:
            t.requestInterruption()
            t.quit()
            t.wait(5000)
        pytest.fail(f"{request.node.nodeid} left {len(running)} QThread(s) running")


def _is_running(thread) -> bool:
    try:
        return thread.isRunning()
    except RuntimeError:  # C++ object already deleted
        return False
