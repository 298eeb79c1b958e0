"""The Training dock in the main window: the dock itself, a Training menu (Train F5, Pause /
Resume F6, Stop Shift+F5, Resume from checkpoint Ctrl+F5), a Train button on the toolbar,
and the window hooks (close check, model for Export, weights loaded in Export)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar

from ui.training.dock import TrainingDock


def install(window) -> TrainingDock:
    """Add the Training dock, its menu and toolbar button, and the window hooks."""
    dock_widget = TrainingDock(window)
    dock = window.add_dock("Training", dock_widget, Qt.DockWidgetArea.BottomDockWidgetArea)
    dock.setObjectName("dock_training")
    window.close_checks.append(dock_widget.confirm_close)
    window.on_close.append(dock_widget.shutdown)
    window.model_provider = dock_widget.provide_model
    window.weights_receiver = dock_widget.weights_loaded

    def act(text, slot, shortcut, tip):
        a = QAction(text, window)
        a.setShortcut(QKeySequence(shortcut))
        a.setStatusTip(tip)
        a.setToolTip(f"{tip} ({shortcut})")
        a.triggered.connect(lambda *_: slot())
        return a

    actions = {
        "start": act("&Train", dock_widget.start, "F5", "Train the model on the project's data"),
        "pause": act("&Pause", lambda: dock_widget.panel._pause_clicked(), "F6", "Pause or resume the run"),
        "stop": act("&Stop", dock_widget.stop, "Shift+F5", "Stop after the current step, saving a checkpoint"),
        "resume_from": act("Resume from &Checkpoint...", dock_widget.resume_from, "Ctrl+F5",
                           "Continue a stopped run from its checkpoint"),
    }
    window.training_actions = actions
    bar = window.menuBar()
    menu = QMenu("&Training", bar)
    bar.insertMenu(bar.actions()[-1], menu)  # before Help
    menu.addActions([actions["start"], actions["pause"], actions["stop"]])
    menu.addSeparator()
    menu.addAction(actions["resume_from"])
    toolbar = window.findChild(QToolBar, "toolbar_main")
    if toolbar is not None:
        toolbar.addSeparator()
        toolbar.addAction(actions["start"])
    dock_widget.panel.probe.done.connect(lambda _: dock_widget._sync_actions())
    dock_widget._sync_actions()
    return dock_widget
