"""Start the Qt application and show the main window on a project."""
from __future__ import annotations

import sys


def run_window(argv: list[str]) -> int:
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *argv[1:]])
    app.setApplicationName("Model Workbench")
    app.setOrganizationName("Model Workbench")
    window = MainWindow(argv[0] if argv else None)
    window.show()
    return app.exec()
