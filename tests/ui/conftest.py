"""Window tests: isolated settings, a window fixture, and besides the QThread guard of
tests/conftest.py, a guard that fails any test leaving a background worker
(ui.common.workers) running: closing a window or widget must stop and await its jobs."""
from __future__ import annotations

import pytest

from workbench.project import templates


@pytest.fixture
def isolated_settings(tmp_path, monkeypatch):
    """QSettings in a temp .ini (never the user's), and no modal box can block a test."""
    from PySide6.QtCore import QStandardPaths

    from ui import project_io

    QStandardPaths.setTestModeEnabled(True)
    path = tmp_path / "settings.ini"
    monkeypatch.setenv("WORKBENCH_SETTINGS", str(path))
    errors: list[Exception] = []
    monkeypatch.setattr(project_io, "ask_unsaved", lambda *a: "discard")
    monkeypatch.setattr(project_io, "ask_trust", lambda *a: False)  # a test trusts code by replacing this
    monkeypatch.setattr(project_io, "show_error", lambda parent, title, exc, *outcome: errors.append(exc))
    return errors


@pytest.fixture
def window(qtbot, isolated_settings, monkeypatch):
    from ui import project_io
    from ui.main_window import MainWindow

    def closing_for_good(_window):
        """At the end of a test the window closes for real (a test may have made it answer
        Cancel to unsaved changes), so its shutdown hooks stop and await its workers."""
        monkeypatch.setattr(project_io, "ask_unsaved", lambda *a: "discard")

    w = MainWindow(project=templates.load("digits_cnn"))
    qtbot.addWidget(w, before_close_func=closing_for_good)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    w.load_errors = isolated_settings
    return w


@pytest.fixture(autouse=True)
def _no_dangling_workers(request):
    yield
    from ui.common import workers

    running = workers.running_workers()
    if running:
        names = ", ".join(sorted(w.name for w in running))
        workers.await_workers(10.0)
        pytest.fail(f"{request.node.nodeid} left {len(running)} worker(s) running: {names}")


@pytest.fixture
def live(qtbot):
    """The live plots on their own, shown at 1000x320."""
    from ui.training.plots.live_plots import LivePlots

    widget = LivePlots()
    qtbot.addWidget(widget)
    widget.resize(1000, 320)
    widget.show()
    qtbot.waitExposed(widget)
    return widget
