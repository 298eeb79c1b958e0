"""Extra entries in the right-click menu of a form's value fields, offered by parts of the window
that sit above the form (the Sweep dock's "Sweep this value…" on the inspector's and the
training settings' fields), so the form imports none of them.

A form makes one ``ValueMenu`` and ``watch``es each field widget (and its label) with the
``Param`` it edits and a function giving the value's path in the project's one syntax
(``conv1.out_channels``, ``training.optimizer.lr``), asked when the menu opens (a renamed
layer's path follows). A part of the window calls ``add_provider(fn)``; ``fn(path, param)``
returns the actions to add (or none). The menu is the widget's own text menu (cut, copy, paste)
where it has one, with the providers' actions after a separator.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QLineEdit, QMenu, QWidget

Provider = Callable[[str, object], list[QAction]]


class ValueMenu(QObject):
    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._providers: list[Provider] = []
        self._watched: dict[QWidget, tuple[object, Callable[[], str]]] = {}

    def add_provider(self, provider: Provider) -> None:
        """``provider(path, param)`` returns the actions for that value's menu (an empty list: none)."""
        self._providers.append(provider)

    def watch(self, widget: QWidget, param, path: Callable[[], str], *others: QWidget) -> None:
        """Right-clicking ``widget`` (or ``others``: its label) shows the providers' actions."""
        for target in (widget, *others, *_inner_edits(widget)):
            self._watched[target] = (param, path)
            target.installEventFilter(self)
            target.destroyed.connect(lambda *_, t=target: self._watched.pop(t, None))

    def clear(self) -> None:
        """Forget every widget (the form is rebuilt)."""
        for target in list(self._watched):
            target.removeEventFilter(self)
        self._watched.clear()

    def actions_for(self, widget: QWidget) -> list[QAction]:
        """The providers' actions for a watched widget (none for another)."""
        watched = self._watched.get(widget)
        if watched is None:
            return []
        param, path = watched
        return [action for provider in self._providers for action in provider(path(), param)]

    def menu_for(self, widget: QWidget) -> QMenu | None:
        """The menu a right-click on ``widget`` opens; None when no provider adds anything (the
        widget's own menu then opens as usual)."""
        actions = self.actions_for(widget)
        if not actions:
            return None
        edit = widget if isinstance(widget, QLineEdit) else _line_edit(widget)
        menu = edit.createStandardContextMenu() if edit is not None else QMenu(widget)
        if menu.actions():
            menu.addSeparator()
        for action in actions:
            action.setParent(menu)  # they go with the menu
            menu.addAction(action)
        return menu

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ContextMenu and obj in self._watched:
            menu = self.menu_for(obj)
            if menu is not None:
                menu.exec(event.globalPos())
                menu.deleteLater()
                return True
        return False


def _line_edit(widget: QWidget) -> QLineEdit | None:
    if isinstance(widget, (QAbstractSpinBox, QComboBox)):
        return widget.lineEdit()
    return None


def _inner_edits(widget: QWidget) -> list[QWidget]:
    """The text box inside a spin box or an editable combo box (it gets the right-click)."""
    edit = _line_edit(widget)
    return [edit] if edit is not None else []
