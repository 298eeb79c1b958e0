"""The Sweep dock in the main window: the dock (a tab beside Training and Prediction), its View
menu toggle and View > Sweep… to bring it forward, the close check and shutdown hook that stop
its workers, and "Sweep this value…" in the right-click menu of the inspector's layer arguments
and the training settings' fields (through their ``ValueMenu``s, so neither form imports this).
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from ui.experiments.sweep_dock import SweepDock

SWEEPABLE = ("int", "float", "choice", "bool", "ints")  # text, paths and shapes are not searched
NOT_SWEPT = {"training.device", "data.source", "data.path", "data.target"}


def value_actions(window, dock: SweepDock, path: str, param) -> list[QAction]:
    """"Sweep this value…" (or Edit / Stop sweeping) for one field's right-click menu."""
    if param.kind not in SWEEPABLE or param.infer is not None or path in NOT_SWEPT:
        return []
    existing = dock.space().param(path)

    def edit() -> None:
        if dock.edit_path(path, param):
            show(window, dock)

    sweep = QAction("Edit Sweep Range…" if existing else "Sweep This Value…", window)
    sweep.setObjectName("sweepThisValue")
    sweep.setStatusTip(f"Search {path} in the project's sweep (the Sweep dock runs it)")
    sweep.triggered.connect(lambda *_: edit())
    actions = [sweep]
    if existing is not None:
        remove = QAction("Stop Sweeping This Value", window)
        remove.setObjectName("sweepRemoveValue")
        remove.triggered.connect(lambda *_: dock.remove_param(path))
        actions.append(remove)
    return actions


def show(window, dock: SweepDock) -> None:
    frame = window.docks["Sweep"]
    frame.show()
    frame.raise_()


def install(window) -> SweepDock:
    """Add the Sweep dock, tabbed with the Training dock (which stays in front), View > Sweep…,
    the field menus and the window hooks."""
    dock = SweepDock(window)
    frame = window.add_dock("Sweep", dock, Qt.DockWidgetArea.BottomDockWidgetArea)
    training = window.docks.get("Training")
    if training is not None:
        window.tabifyDockWidget(training, frame)
        training.raise_()
    window.add_close_check(dock.confirm_close)
    window.add_shutdown_hook(dock.shutdown)
    action = QAction("S&weep…", window)
    tip = "Search learning rate, widths and other values over many short runs (Optuna)"
    action.setStatusTip(tip)
    action.setToolTip(tip)
    action.triggered.connect(lambda *_: show(window, dock))
    window.menu("view").addAction(action)
    for menu in (window.inspector.value_menu, window.training.panel.form.value_menu):
        menu.add_provider(lambda path, param: value_actions(window, dock, path, param))
    return dock
