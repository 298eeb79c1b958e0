"""Start the Qt application and show the main window on a project: the file given, else the
last one, else a template; or the start page (ui.start_page) when the person ticked "Show this
page at launch" there, or when the given file cannot be opened (project_io.startup_project,
launch_on_start_page).

Without a display (no DISPLAY / WAYLAND_DISPLAY and no QT_QPA_PLATFORM) it says how to get
one and exits 2 instead of letting Qt abort. Shape inference warms up on a plain thread
while the window opens, so the first meta-device inference never stalls the UI thread.
"""
from __future__ import annotations

import os
import sys
import threading

NO_DISPLAY_HINT = ("error: no display found (DISPLAY and WAYLAND_DISPLAY are unset); run the window "
                   "under a virtual one with `xvfb-run -a workbench`, or use the headless commands "
                   "(`workbench --help`)")


def has_display() -> bool:
    if sys.platform != "linux":
        return True
    return any(os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def configure_app(app) -> None:
    from PySide6.QtWidgets import QStyleFactory

    from ui.common import icons

    app.setApplicationName("Model Workbench")
    app.setOrganizationName("Model Workbench")
    app.setApplicationDisplayName("Model Workbench")
    if "Fusion" in QStyleFactory.keys():
        app.setStyle("Fusion")
    app.setWindowIcon(icons.app_icon())


def warm_up_in_background() -> threading.Thread:
    from workbench.model import build

    thread = threading.Thread(target=build.warm_up, name="workbench-warm-up", daemon=True)
    thread.start()
    return thread


def run_window(argv: list[str]) -> int:
    if not has_display():
        print(NO_DISPLAY_HINT, file=sys.stderr)
        return 2
    warm_up_in_background()
    from PySide6.QtWidgets import QApplication

    from ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *argv[1:]])
    configure_app(app)
    window = MainWindow(argv[0] if argv else None)
    window.show()
    return app.exec()
