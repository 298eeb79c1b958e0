"""One sample's explanation on screen: the heat map over the input with an opacity slider
(image models) or signed feature bars (tables), and the class probability bars.

It draws a ``workbench.insight.explain.Explanation`` (plain data from a worker); the overlay
is blended by ``workbench.insight.explain_picture.overlay``, the same blend the PNG of
``workbench explain`` uses, again whenever the slider moves (a few milliseconds for a picture
of at most 512 pixels a side).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from workbench.insight import explain_picture
from workbench.insight.explain import Explanation

from ui.common import theme
from ui.common.probability_bars import ProbabilityBars

BARS_WIDTH = 640  # bars across a wide screen are hard to read against their names
TOP_FEATURES = 15  # feature bars shown at most (the title says how many of how many)
OPACITY = 50  # the slider's start, percent


def rgb_image(pixels: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(pixels)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        return QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class Picture(QWidget):
    """An image scaled to fit, kept in proportion, with a caption under it."""

    def __init__(self, caption: str = "", parent=None):
        super().__init__(parent)
        self.image: QImage | None = None
        self.caption = caption
        self.setMinimumSize(96, 96 + self._caption_height())
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def _caption_height(self) -> int:
        return QFontMetrics(self.font()).height() + 4

    def set_image(self, image: QImage | None, caption: str | None = None) -> None:
        self.image = image
        if caption is not None:
            self.caption = caption
        self.update()

    def picture_rect(self) -> QRect:
        """Where the image is drawn (widget coordinates)."""
        if self.image is None:
            return QRect()
        area = self.rect().adjusted(0, 0, 0, -self._caption_height())
        size = QSize(self.image.width(), self.image.height()).scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
        return QRect(area.left() + (area.width() - size.width()) // 2, area.top(), size.width(), size.height())

    def sizeHint(self) -> QSize:
        return QSize(240, 240 + self._caption_height())

    def paintEvent(self, _event) -> None:
        if self.image is None:
            return
        p = QPainter(self)
        target = self.picture_rect()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # sharp input pixels
        p.drawImage(QRectF(target), self.image)
        p.setPen(QColor(theme.SOFT_TEXT))
        fm = QFontMetrics(self.font())
        p.drawText(QRect(0, target.bottom() + 2, self.width(), self._caption_height()), Qt.AlignmentFlag.AlignHCenter |
                   Qt.AlignmentFlag.AlignTop, fm.elidedText(self.caption, Qt.TextElideMode.ElideRight, self.width()))
        p.end()


class FeatureBars(QWidget):
    """Signed attributions as bars from a centre line: green for the class, red against it;
    the largest ``TOP_FEATURES`` (as many as fit), largest first."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.features: list[tuple[str, float]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(3 * self._row_height())

    def _row_height(self) -> int:
        return QFontMetrics(self.font()).height() + 6

    def set_features(self, features) -> None:
        self.features = list(features)
        self.update()

    def shown(self) -> int:
        return min(len(self.features), TOP_FEATURES, max(1, self.height() // self._row_height()))

    def rows(self) -> list[tuple[str, float]]:
        return self.features[:self.shown()]

    def sizeHint(self) -> QSize:
        return QSize(360, min(TOP_FEATURES, max(3, len(self.features))) * self._row_height())

    def paintEvent(self, _event) -> None:
        rows = self.rows()
        if not rows:
            return
        p = QPainter(self)
        fm = QFontMetrics(self.font())
        rh = self._row_height()
        names_w = min(max(fm.horizontalAdvance(n) for n, _ in rows) + 8, int(self.width() * 0.4))
        value_w = fm.horizontalAdvance("-0.000e+00") + 8
        span = max(abs(v) for _, v in rows) or 1.0
        bar_w = max(20, self.width() - names_w - value_w)
        centre = names_w + bar_w // 2
        p.setPen(QColor(theme.FRAME))
        p.drawLine(centre, 0, centre, len(rows) * rh)
        for i, (name, value) in enumerate(rows):
            y = i * rh
            p.setPen(QColor(theme.TEXT))
            p.drawText(QRect(0, y, names_w - 6, rh), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(name, Qt.TextElideMode.ElideMiddle, names_w - 6))
            length = max(1, round(bar_w / 2 * abs(value) / span))
            left = centre if value >= 0 else centre - length
            p.fillRect(QRect(left, y + 3, length, rh - 6), QColor(theme.GOOD if value >= 0 else theme.BAD))
            p.setPen(QColor(theme.SOFT_TEXT))
            p.drawText(QRect(names_w + bar_w + 4, y, value_w, rh), Qt.AlignmentFlag.AlignLeft |
                       Qt.AlignmentFlag.AlignVCenter, f"{value:+.3g}")
        p.end()


class ExplanationView(QWidget):
    """Title, the saliency (overlay and slider, or feature bars) and the probability bars."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.explanation: Explanation | None = None
        self.title = QLabel("", wordWrap=True)
        self.how = QLabel("", wordWrap=True, objectName="muted")
        self.input = Picture("input")
        self.overlay = Picture("")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(OPACITY)
        self.opacity.setToolTip("How strongly the heat map covers the input")
        self.opacity_label = QLabel("Heat map opacity")
        self.features = FeatureBars()
        self.bars = ProbabilityBars()
        self.bars_title = QLabel("Class probabilities", objectName="muted")
        self.bars.setMaximumWidth(BARS_WIDTH)
        self.features.setMaximumWidth(BARS_WIDTH)

        pictures = QHBoxLayout()
        pictures.addWidget(self.input, 1)
        pictures.addWidget(self.overlay, 1)
        slider = QHBoxLayout()
        slider.addWidget(self.opacity_label)
        slider.addWidget(self.opacity, 1)
        self.picture_box = QWidget()
        box = QVBoxLayout(self.picture_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(pictures, 1)
        box.addLayout(slider)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.title)
        layout.addWidget(self.how)
        layout.addWidget(self.picture_box, 3)
        layout.addWidget(self.features, 3)
        layout.addWidget(self.bars_title)
        layout.addWidget(self.bars, 2)
        self.opacity.valueChanged.connect(self._blend)
        self.show_explanation(None)

    def show_explanation(self, ex: Explanation | None) -> None:
        self.explanation = ex
        picture = ex is not None and ex.image is not None and ex.heat is not None
        self.picture_box.setVisible(picture)
        self.features.setVisible(ex is not None and bool(ex.features))
        self.bars_title.setVisible(ex is not None)
        if ex is None:
            self.title.setText("")
            self.how.setText("Click a sample to see why the model predicts what it does.")
            self.bars.set_classes([], None)
            self.features.set_features([])
            return
        probability = dict(ex.prediction.classes).get(ex.predicted, 0.0)
        true = f", true <b>{_escape(ex.true)}</b>" if ex.true is not None else ""
        self.title.setText(f"<b>{_escape(ex.what)}</b>: predicted <b>{_escape(ex.predicted)}</b> "
                           f"({probability:.1%}){true}")
        where = f" on {ex.layer}" if ex.layer else ""
        self.how.setText(f"{ex.method}{where}: what speaks for <b>{_escape(ex.target)}</b>"
                         + (f" · {_escape(ex.note)}" if ex.note else ""))
        self.bars.set_classes(ex.prediction.classes, ex.true)
        self.features.set_features(ex.features)
        if picture:
            self.input.set_image(rgb_image(ex.image), "input")
            self._blend()

    def _blend(self, *_) -> None:
        ex = self.explanation
        if ex is None or ex.image is None or ex.heat is None:
            return
        alpha = self.opacity.value() / 100
        self.overlay.set_image(rgb_image(explain_picture.overlay(ex.image, ex.heat, alpha)),
                               f"{ex.method} ({self.opacity.value()}%)")


def _escape(text) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
