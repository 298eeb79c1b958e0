"""The one-click fix button: shows a ``remedies.Remedy``'s label and asks the document to make
it (one undoable edit). The label is cut in the middle when the button has less room than it
needs (the start and the end, e.g. the shape, stay readable; the tooltip has it all), so a
narrow inspector never clips it or grows sideways. A ``compact`` button (the status bar, where
every pixel counts) says just "Fix" and names the fix in its tooltip."""
from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtWidgets import QPushButton, QSizePolicy, QStyle, QStyleOptionButton

from workbench.errors import WorkbenchError

_TEXT_MARGIN = 8  # room the style's label keeps either side of the text inside the contents rect


class FixButton(QPushButton):
    refused = Signal(str)  # the fix could not be made (the model is locked, a layer is gone): why

    def __init__(self, doc, name: str, compact: bool = False, parent=None):
        super().__init__(parent, objectName=name)
        self.doc = doc
        self.remedy = None
        self._compact = compact
        self._label = ""
        self.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.clicked.connect(self.apply)
        if compact:
            self.setMinimumWidth(self.fontMetrics().horizontalAdvance("Fix") + 28)
        self.hide()

    def show_remedy(self, remedy) -> None:
        """Offer ``remedy`` (None: hide the button)."""
        self.remedy = remedy
        self.setVisible(remedy is not None)
        if remedy is None:
            return
        self._label = "Fix" if self._compact else remedy.label
        self.setToolTip(f"{'Fix: ' if self._compact else ''}{remedy.label} (one edit: Ctrl+Z undoes it; Ctrl+. "
                        "applies the selected row's fix from the keyboard)")
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
        """What the button does: the remedy's label ('' with none)."""
        return self.remedy.label if self.remedy is not None else ""

    def _frame(self) -> int:
        """Pixels the style (and the stylesheet's padding) takes around the text."""
        opt = QStyleOptionButton()
        self.initStyleOption(opt)
        opt.rect = QRect(0, 0, 1000, max(self.height(), 24))
        inside = self.style().subElementRect(QStyle.SubElement.SE_PushButtonContents, opt, self)
        return 1000 - inside.width() + _TEXT_MARGIN

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        hint.setWidth(self.fontMetrics().horizontalAdvance(self._label) + self._frame())
        return hint

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        hint.setWidth(min(self.sizeHint().width(), self.fontMetrics().horizontalAdvance("Insert…") + self._frame()))
        return hint

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        room = max(0, self.width() - self._frame() + _TEXT_MARGIN // 2)  # the margin may take a little text
        fm = self.fontMetrics()
        text = self._label if fm.horizontalAdvance(self._label) <= room else \
            fm.elidedText(self._label, Qt.TextElideMode.ElideMiddle, room)
        if text != self.text():
            self.setText(text)
