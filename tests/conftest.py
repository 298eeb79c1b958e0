"""Test set-up: Qt offscreen unless a test asks otherwise; small torch thread pools; no
downloads; a guard that fails any test leaving a QThread running; and project data that
both the core and the window tests use."""
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


@pytest.fixture(scope="session")
def wine_ddp_project() -> dict:
    """The tiny project the distributed runs train (core and window tests): the wine table, an
    MLP with neither BatchNorm nor dropout, 142 training examples (divisible by 2). Shared by
    the session: copy it before changing it."""
    return {
        "format": "model-workbench/project", "version": 1, "name": "Wine DDP",
        "model": {"input": {"shape": [13]}, "layers": [
            {"id": "fc1", "type": "Linear", "args": {"out_features": 32}},
            {"id": "relu1", "type": "ReLU"},
            {"id": "fc2", "type": "Linear", "args": {"out_features": 3}}]},
        "data": {"source": "wine", "val_fraction": 0.2, "batch_size": 8},
        "training": {"optimizer": {"type": "Adam", "lr": 0.003}, "loss": "CrossEntropyLoss",
                     "epochs": 2, "device": "cpu", "seed": 0, "log_every": 4},
    }
