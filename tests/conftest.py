"""Test set-up: Qt offscreen unless a test asks otherwise; small torch thread pools."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("WORKBENCH_OFFLINE", "1")  # nothing may download during tests

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _no_dangling_qthreads(request):
    """Fail any test that leaves a QThread running (they crash the process at exit)."""
    yield
    try:
        from PySide6.QtCore import QThread
    except ImportError:
        return
    import gc
    import sys

    if "PySide6.QtWidgets" not in sys.modules:
        return
    running = [t for t in gc.get_objects() if isinstance(t, QThread) and _is_running(t)]
    if running:
        for t in running:
            t.quit()
            t.wait(5000)
        pytest.fail(f"{request.node.nodeid} left {len(running)} QThread(s) running")


def _is_running(thread) -> bool:
    try:
        return thread.isRunning()
    except RuntimeError:  # C++ object already deleted
        return False
