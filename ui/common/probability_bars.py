"""Class probabilities as horizontal bars, most probable first, the true class marked (the
Prediction dock and the explanations window)."""
from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from ui.common import theme

TOP_K = 10  # bars shown at most (fewer when the widget is short; its tooltip says how many)


class ProbabilityBars(QWidget):
    """Horizontal bars, most probable first: class name, bar, percentage; the true class is
    marked. As many rows as fit, at most ``TOP_K``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.classes: list[tuple[str, float]] = []
        self.true_name: str | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(3 * self._row_height())

    def _row_height(self) -> int:
        return QFontMetrics(self.font()).height() + 6

    def set_classes(self, classes, true_name: str | None) -> None:
        self.classes, self.true_name = list(classes), true_name
        self.update()

    def shown(self) -> int:
        """How many bars fit now."""
        return min(len(self.classes), TOP_K, max(1, self.height() // self._row_height()))

    def rows(self) -> list[tuple[str, float, bool]]:
        """What the bars show: (class name, probability, is the true class), top first."""
        return [(n, p, n == self.true_name) for n, p in self.classes[:self.shown()]]

    def sizeHint(self) -> QSize:
        return QSize(320, min(TOP_K, max(3, len(self.classes))) * self._row_height())

    def paintEvent(self, _event) -> None:
        if not self.classes:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = QFontMetrics(self.font())
        rh = self._row_height()
        rows = self.rows()
        mark = " ✓ true"
        names_w = min(max(fm.horizontalAdvance(n) for n, _, _ in rows) + 8, int(self.width() * 0.38))
        pct_w = fm.horizontalAdvance("100.0%") + 8
        mark_w = fm.horizontalAdvance(mark) + 4 if self.true_name is not None else 0
        bar_x = names_w
        bar_w = max(10, self.width() - names_w - pct_w - mark_w)
        for i, (name, prob, true) in enumerate(rows):
            y = i * rh
            text_rect = QRect(0, y, names_w - 6, rh)
            p.setPen(QColor(theme.TEXT))
            p.drawText(text_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(name, Qt.TextElideMode.ElideMiddle, names_w - 6))
            p.fillRect(QRect(bar_x, y + 3, bar_w, rh - 6), QColor(theme.PREDICTION_TRACK))
            p.fillRect(QRect(bar_x, y + 3, max(1, round(bar_w * prob)), rh - 6),
                       QColor(theme.PREDICTION_TOP if i == 0 else theme.PREDICTION_BAR))
            p.setPen(QColor(theme.SOFT_TEXT))
            p.drawText(QRect(bar_x + bar_w + 4, y, pct_w, rh), Qt.AlignmentFlag.AlignLeft |
                       Qt.AlignmentFlag.AlignVCenter, f"{100 * prob:.1f}%")
            if true:
                p.setPen(QColor(theme.PREDICTION_TRUE))
                p.drawText(QRect(bar_x + bar_w + pct_w, y, mark_w, rh), Qt.AlignmentFlag.AlignLeft |
                           Qt.AlignmentFlag.AlignVCenter, mark)
        p.end()
