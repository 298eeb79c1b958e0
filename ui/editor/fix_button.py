"""The one-click fix button: shows a ``remedies.Remedy``'s label and asks the document to make
it (one undoable edit). The label is cut in the middle when the button has less room than it
needs (the start and the end, e.g. the shape, stay readable; the tooltip has it all), so a
narrow inspector or status bar never clips it or grows sideways."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QPushButton, QSizePolicy

from workbench.errors import WorkbenchError

_PAD = 24  # a push button's frame and margins around its text


class FixButton(QPushButton):
    refused = Signal(str)  # the fix could not be made (the model is locked, a layer is gone): why

    def __init__(self, doc, name: str, prefix: str = "", parent=None):
        super().__init__(parent, objectName=name)
        self.doc = doc
        self.remedy = None
        self._prefix = prefix  # "Fix: " where the button stands apart from the problem it fixes
        self._label = ""
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.clicked.connect(self.apply)
        self.hide()

    def show_remedy(self, remedy) -> None:
        """Offer ``remedy`` (None: hide the button)."""
        self.remedy = remedy
        self.setVisible(remedy is not None)
        if remedy is None:
            return
        self._label = self._prefix + remedy.label
        self.setToolTip(f"{remedy.label}: one edit, undone with Ctrl+Z (Ctrl+. applies it from the keyboard)")
        self._elide()
        self.updateGeometry()

    def apply(self) -> None:
        if self.remedy is None:
            return
        try:
            self.doc.apply_remedy(self.remedy)
        except WorkbenchError as exc:
            self.refused.emit(str(exc))

    def full_text(self) -> str:
        return self._label

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        hint.setWidth(self.fontMetrics().horizontalAdvance(self._label) + _PAD)
        return hint

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        hint.setWidth(min(self.sizeHint().width(), self.fontMetrics().horizontalAdvance("Insert…") + _PAD))
        return hint

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        room = max(0, self.width() - _PAD)
        text = self.fontMetrics().elidedText(self._label, Qt.TextElideMode.ElideMiddle, room)
        if text != self.text():
            self.setText(text)
