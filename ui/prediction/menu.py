"""The Prediction dock in the main window: the dock (a tab beside the Training dock), its
View menu toggle and View > Predict… (Ctrl+R) to bring it forward, and the shutdown hook that
awaits its jobs. (The Training menu's entries are fixed: Train, Pause, Stop, Resume from
Checkpoint, Run Distributed.)"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from ui.prediction.panel import PredictionPanel


def install(window) -> PredictionPanel:
    """Add the Prediction dock, tabbed with the Training dock (which stays in front), View >
    Predict… and its shutdown hook."""
    panel = PredictionPanel(window)
    dock = window.add_dock("Prediction", panel, Qt.DockWidgetArea.BottomDockWidgetArea)
    training = window.docks.get("Training")
    if training is not None:
        window.tabifyDockWidget(training, dock)
        training.raise_()
    dock.visibilityChanged.connect(panel.set_on_screen)
    window.add_shutdown_hook(panel.shutdown)
    action = QAction("Pre&dict…", window)
    action.setShortcut(QKeySequence("Ctrl+R"))
    tip = "Show the model's class probabilities for an image, a table row or a validation sample"
    action.setStatusTip(tip)
    action.setToolTip(f"{tip} (Ctrl+R)")
    action.triggered.connect(lambda *_: (dock.show(), dock.raise_(), panel.sample_spin.setFocus()))
    window.menu("view").addSeparator()
    window.menu("view").addAction(action)
    return panel
