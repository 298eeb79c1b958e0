"""An example's image (a numpy array from ``workbench.training.samples.to_image``: HxW grey
or HxWx3 RGB, uint8) as a pixmap of a given side, kept in proportion, pixels left sharp (an
8x8 digit enlarged smoothly is a blur)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap


def image_pixmap(image: np.ndarray, side: int) -> QPixmap:
    arr = np.ascontiguousarray(image)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        qimage = QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    else:
        qimage = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(qimage.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation))
