"""Window tests: besides the QThread guard of tests/conftest.py, fail any test that leaves a
background worker (ui.common.workers) running: closing a window or widget must stop and await
its jobs."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_dangling_workers(request):
    yield
    from ui.common import workers

    running = workers.running_workers()
    if running:
        names = ", ".join(sorted(w.name for w in running))
        workers.await_workers(10.0)
        pytest.fail(f"{request.node.nodeid} left {len(running)} worker(s) running: {names}")
