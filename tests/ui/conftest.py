"""Fixtures for the window tests: QSettings isolated from the user's, and a shown main window."""
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
    monkeypatch.setattr(project_io, "show_error", lambda parent, title, exc: errors.append(exc))
    return errors


@pytest.fixture
def window(qtbot, isolated_settings):
    from ui.main_window import MainWindow

    w = MainWindow(project=templates.load("digits_cnn"))
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    w.load_errors = isolated_settings
    return w
