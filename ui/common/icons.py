"""Icons drawn in code (type badges, status marks) plus the app icon from resources/icons.

Badges are coloured by category (colours: ui.common.theme) and carry a two-letter abbreviation of the layer type, so a
row's kind reads at a glance in both the palette and the stack.
"""
from __future__ import annotations

from functools import lru_cache

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPen, QPixmap

from workbench.model import catalog
from workbench.resources import resource_path

from ui.common import theme

_SIZE = 18
_SCALE = 2  # drawn at 2x so badges stay sharp on high-DPI screens


_BADGES = {"Residual": "+", "resnet18": "RN", "mobilenet_v3_small": "MN", "efficientnet_b0": "EN"}


def abbreviation(type_name: str) -> str:
    if type_name in _BADGES:
        return _BADGES[type_name]
    marks = [c for c in type_name if c.isupper() or c.isdigit()]
    if len(marks) >= 2 and not type_name[:1].islower():
        return "".join(marks[:2])
    return type_name[:2].capitalize()


def category_color(type_name: str) -> QColor:
    kind = catalog.kind(type_name)
    return QColor(theme.CATEGORY_COLORS.get(kind.category if kind else "", theme.MUTED))


def _canvas() -> tuple[QPixmap, QPainter]:
    pix = QPixmap(_SIZE * _SCALE, _SIZE * _SCALE)
    pix.setDevicePixelRatio(_SCALE)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    return pix, painter


def _text(painter: QPainter, rect: QRectF, text: str, size: float) -> None:
    font = QFont()
    font.setPointSizeF(size)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor(theme.BADGE_TEXT))
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)


@lru_cache(maxsize=None)
def type_badge(type_name: str) -> QIcon:
    pix, painter = _canvas()
    rect = QRectF(1, 1, _SIZE - 2, _SIZE - 2)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(category_color(type_name))
    painter.drawRoundedRect(rect, 4, 4)
    _text(painter, rect, abbreviation(type_name), 6.5)
    painter.end()
    return QIcon(pix)


@lru_cache(maxsize=None)
def category_icon(category: str) -> QIcon:
    pix, painter = _canvas()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(theme.CATEGORY_COLORS.get(category, theme.MUTED)))
    painter.drawEllipse(QRectF(5, 5, _SIZE - 10, _SIZE - 10))
    painter.end()
    return QIcon(pix)


@lru_cache(maxsize=None)
def error_icon() -> QIcon:
    pix, painter = _canvas()
    rect = QRectF(1.5, 1.5, _SIZE - 3, _SIZE - 3)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(theme.ERROR))
    painter.drawEllipse(rect)
    _text(painter, rect, "!", 8.5)
    painter.end()
    return QIcon(pix)


@lru_cache(maxsize=None)
def frozen_icon() -> QIcon:
    """A padlock: parameters that training leaves alone."""
    pix, painter = _canvas()
    color = QColor(theme.FROZEN)
    painter.setPen(QPen(color, 1.6))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawArc(QRectF(5.5, 2.5, 7, 8), 0, 180 * 16)
    painter.drawLine(5.5, 6.5, 5.5, 8.5)
    painter.drawLine(12.5, 6.5, 12.5, 8.5)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    painter.drawRoundedRect(QRectF(3.5, 8, 11, 8), 1.5, 1.5)
    painter.end()
    return QIcon(pix)


@lru_cache(maxsize=None)
def app_icon() -> QIcon:
    path = resource_path("icons", "workbench.svg")
    return QIcon(str(path)) if path.is_file() else QIcon()
