"""The Training dock in the main window: the dock itself, a Training menu (Train F5, Pause /
Resume F6, Stop Shift+F5, Resume from checkpoint Ctrl+F5), a Train button on the toolbar,
and the window hooks (close check, shutdown, model for Export, weights loaded in Export)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence

from ui.training.dock import TrainingDock


class TrainingMenu(QObject):
    """Training > Train / Pause / Stop / Resume from Checkpoint: they follow the panel's
    buttons (enabled, Pause or Resume) whenever its state changes."""

    def __init__(self, window, dock: TrainingDock):
        super().__init__(window)
        panel = dock.panel
        self._panel = panel
        self._actions = {
            "start": _action(window, "&Train", dock.start, "F5", "Train the model on the project's data"),
            "pause": _action(window, "&Pause", panel.toggle_pause, "F6", "Pause or resume the run"),
            "stop": _action(window, "&Stop", dock.stop, "Shift+F5", "Stop after the current step, saving a checkpoint"),
            "resume_from": _action(window, "Resume from &Checkpoint...", dock.resume_from, "Ctrl+F5",
                                   "Continue a stopped run from its checkpoint"),
        }
        self.menu = window.add_menu("training", "&Training")
        self.menu.addActions([self._actions[k] for k in ("start", "pause", "stop")])
        self.menu.addSeparator()
        self.menu.addAction(self._actions["resume_from"])
        window.add_toolbar_action(self._actions["start"])
        panel.stateChanged.connect(self.sync)
        self.sync()

    def action(self, key: str) -> QAction:
        """"start", "pause", "stop" or "resume_from"."""
        return self._actions[key]

    def sync(self, *_) -> None:
        panel = self._panel
        self._actions["start"].setEnabled(panel.start_button.isEnabled())
        self._actions["pause"].setEnabled(panel.pause_button.isEnabled())
        self._actions["pause"].setText("&Resume" if panel.state == "paused" else "&Pause")
        self._actions["stop"].setEnabled(panel.stop_button.isEnabled())
        self._actions["resume_from"].setEnabled(panel.resume_from_button.isEnabled())


def _action(window, text: str, slot, shortcut: str, tip: str) -> QAction:
    a = QAction(text, window)
    a.setShortcut(QKeySequence(shortcut))
    a.setStatusTip(tip)
    a.setToolTip(f"{tip} ({shortcut})")
    a.triggered.connect(lambda *_: slot())  # not slot(checked): Train must not get resume_from=False
    return a


def install(window) -> tuple[TrainingDock, TrainingMenu]:
    """Add the Training dock, its menu and toolbar button, and the window hooks."""
    dock_widget = TrainingDock(window)
    window.add_dock("Training", dock_widget, Qt.DockWidgetArea.BottomDockWidgetArea)
    window.add_close_check(dock_widget.confirm_close)
    window.add_shutdown_hook(dock_widget.shutdown)
    window.set_model_source(dock_widget.provide_model, dock_widget.weights_loaded)
    dock_widget.evaluation.attach(window)  # a confusion cell opens its samples' explanations
    return dock_widget, TrainingMenu(window, dock_widget)
