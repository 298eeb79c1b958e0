"""The Augmentation dock's live preview: one example of the project's data as the pipeline sees
it and 8 draws of the pipeline on it, computed off the UI thread (``ui.common.workers``).

``AugmentPreview.request(settings, steps, where)`` asks for a new picture; requests that come
while a job runs are folded into one that starts when it ends, so typing in a field never
queues a job per keystroke. The source is read once per data setting (source, path, size, ...)
and kept for later requests. A source that cannot be read or a step that cannot apply is said
in the preview's place.
"""
from __future__ import annotations

import json

import numpy as np
import torch
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from workbench.data import augment
from workbench.data.sources import registry
from workbench.errors import WorkbenchError
from workbench.project.settings import DataSettings

from ui.common import theme
from ui.common.pictures import image_pixmap
from ui.common.workers import Worker, start_worker

DRAWS = 8
COLUMNS = 5  # the sample and 4 draws, then 5 draws
MIN_SIDE, MAX_SIDE = 56, 160  # a tile's side in pixels
SOURCE_FIELDS = ("source", "path", "target", "image_size", "grayscale", "fake_size", "fake_shape", "fake_classes",
                 "download")


def source_key(settings: DataSettings) -> str:
    return json.dumps({k: getattr(settings, k, None) for k in SOURCE_FIELDS}, sort_keys=True, default=str)


def pixels(x: torch.Tensor) -> np.ndarray:
    """A (C, H, W) image of 0..1 floats or 8-bit values as uint8 pixels (HxW or HxWx3)."""
    x = torch.as_tensor(x).detach().cpu()
    if x.is_floating_point():
        x = (x.clamp(0, 1) * 255).round()
    x = x.to(torch.uint8)
    if x.shape[0] not in (1, 3):
        x = x[:1]
    arr = x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).contiguous().numpy()
    return np.ascontiguousarray(arr)


def preview_job(settings: DataSettings, steps: list, where: str, cached: tuple | None):
    """(source key, source, sample pixels, [draw pixels], problem or None, (height, width), channels)."""
    key = source_key(settings)
    source = cached[1] if cached is not None and cached[0] == key else registry.read(settings)
    x = augment.preview_input(source, 0)
    problem, draws = None, []
    try:
        augment.pipelines(settings)  # what crosses the two pipelines (Normalize in both)
    except WorkbenchError as exc:
        problem = str(exc)
    try:
        draws = [pixels(d) for d in augment.draws(steps, x, DRAWS, where=where)]
    except WorkbenchError as exc:
        problem = str(exc)
    shown = x if not x.is_floating_point() else x.clamp(0, 1)
    return key, source, pixels(shown), draws, problem, tuple(x.shape[-2:]), int(x.shape[0])


class AugmentPreview(QWidget):
    """The sample and its draws as a grid of thumbnails, with a line for what went wrong."""

    problem = Signal(str)  # the pipeline's problem ('' when there is none), after each picture
    drawn = Signal()  # a new picture is on screen (tests wait for it)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.side = 72  # follows the room the dock gives (resizeEvent), MIN_SIDE to MAX_SIDE
        self.tiles: list[QLabel] = []
        grid = QGridLayout()
        grid.setSpacing(4)
        grid.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        for i in range(DRAWS + 1):
            tile = QLabel(objectName=f"augment_tile_{i}", alignment=Qt.AlignmentFlag.AlignCenter)
            tile.setFixedSize(self.side, self.side)
            tile.setStyleSheet(f"border: {2 if i == 0 else 1}px solid {theme.FOCUS if i == 0 else theme.FRAME};")
            tile.setToolTip("the first example, before augmentation" if i == 0 else f"draw {i} of the pipeline")
            grid.addWidget(tile, i // COLUMNS, i % COLUMNS)
            self.tiles.append(tile)
        self.note = QLabel("Reading the data…", objectName="augment_preview_note", wordWrap=True)
        self.note.setStyleSheet(f"color: {theme.MUTED_TEXT};")
        self.note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(grid)
        box.addWidget(self.note)
        box.addStretch(1)
        self.images: list[np.ndarray] = []  # what the tiles show: the sample, then the draws
        self.image_size: tuple[int, int] | None = None  # (height, width) the pipeline starts from
        self.channels = 3
        self._cache: tuple | None = None
        self._job: Worker | None = None
        self._next: tuple | None = None
        self._closed = False

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        rows = (DRAWS + COLUMNS) // COLUMNS
        room = min((self.width() - 4 * (COLUMNS - 1)) // COLUMNS, (self.height() - 48) // rows)
        side = max(MIN_SIDE, min(MAX_SIDE, room))
        if side != self.side:
            self.side = side
            for i, tile in enumerate(self.tiles):
                tile.setFixedSize(side, side)
                if i < len(self.images):
                    tile.setPixmap(image_pixmap(self.images[i], side - 2))

    def request(self, settings: DataSettings, steps: list, where: str) -> None:
        if self._closed:
            return
        self._next = (settings, [dict(s) for s in steps], where)
        if self._job is None:
            self._start()

    def _start(self) -> None:
        settings, steps, where = self._next
        self._next = None
        self._job = start_worker(preview_job, settings, steps, where, self._cache, name="augment-preview",
                                 returned=self._show, errored=self._failed, finished=self._ended)

    def _ended(self) -> None:
        self._job = None
        if self._next is not None and not self._closed:
            self._start()

    def _show(self, result) -> None:
        key, source, sample, draws, problem, size, channels = result
        self._cache = (key, source)
        self.image_size, self.channels = size, channels
        self.images = [sample, *draws]
        for i, tile in enumerate(self.tiles):
            if i < len(self.images):
                tile.setPixmap(image_pixmap(self.images[i], self.side - 2))
            else:
                tile.clear()
        h, w = size
        self.note.setText(problem or f"The first example ({h}x{w}) and {len(draws)} draws of the pipeline; "
                          "new draws after each edit.")
        self.note.setStyleSheet(f"color: {theme.ERROR if problem else theme.MUTED_TEXT};")
        self.problem.emit(problem or "")
        self.drawn.emit()

    def _failed(self, exc) -> None:
        self._cache = None
        self.images = []
        for tile in self.tiles:
            tile.clear()
        message = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
        self.note.setText(f"No preview: {message}")
        self.note.setStyleSheet(f"color: {theme.ERROR};")
        self.problem.emit(message)
        self.drawn.emit()

    def wait(self, timeout_s: float = 30.0) -> None:
        """Finish the running job and the one queued behind it (tests)."""
        while self._job is not None and self._job.wait(timeout_s):
            pass

    def shutdown(self) -> None:
        self._closed = True
        self._next = None
        if self._job is not None:
            self._job.quit()
            self._job.wait(30.0)
