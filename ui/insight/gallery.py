"""The samples of one confusion-matrix cell as a paged gallery: a thumbnail (or a table row's
first values) with the sample's position and the model's confidence, most confident first.

A ``QListWidget`` in icon mode does the wrapping, scrolling, selection and keyboard; pages of
``PAGE`` samples keep a large cell (thousands of MNIST mistakes) from building thousands of
pixmaps: ``pageWanted(first, last)`` asks the owner for a page's thumbnails (made on a worker)
and ``show_page`` puts them in. ``sampleClicked(index)`` gives the validation position.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListView, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout,
                               QWidget)

from workbench.insight.explain import Thumbnail

from ui.common.pictures import image_pixmap

PAGE = 60  # samples per page
THUMB = 64  # thumbnail side, pixels


class CellGallery(QWidget):
    pageWanted = Signal(int, int)  # first, last (exclusive) positions in the cell's list
    sampleClicked = Signal(int)  # the validation position

    def __init__(self, parent=None):
        super().__init__(parent)
        self.indices: list[int] = []  # the cell's validation positions, most confident first
        self.page = 0
        self.list = QListWidget(objectName="cellGallery")
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setUniformItemSizes(True)
        self.list.setSpacing(4)
        self.list.setWordWrap(True)
        self.list.setGridSize(QSize(THUMB + 28, THUMB + 2 * self.fontMetrics().height() + 8))
        self.previous = QPushButton("◀ Previous")
        self.next = QPushButton("Next ▶")
        self.where = QLabel("", objectName="muted")
        self.where.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pager = QHBoxLayout()
        pager.setContentsMargins(0, 0, 0, 0)
        pager.addWidget(self.previous)
        pager.addWidget(self.where, 1)
        pager.addWidget(self.next)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.list, 1)
        layout.addLayout(pager)
        self.previous.clicked.connect(lambda: self.go(self.page - 1))
        self.next.clicked.connect(lambda: self.go(self.page + 1))
        self.list.currentItemChanged.connect(self._current_changed)
        self.set_indices([])

    def pages(self) -> int:
        return max(1, -(-len(self.indices) // PAGE))

    def set_indices(self, indices: list[int]) -> None:
        """A new cell: its positions, most confident first; page 1 is asked for."""
        self.indices = list(indices)
        self.list.clear()
        self.page = 0
        self._sync_pager()
        if self.indices:
            self.go(0)

    def go(self, page: int) -> None:
        if not 0 <= page < self.pages() or not self.indices:
            return
        self.page = page
        self.list.clear()
        self._sync_pager()
        first = page * PAGE
        self.pageWanted.emit(first, min(len(self.indices), first + PAGE))

    def show_page(self, first: int, thumbs: list[Thumbnail]) -> None:
        """The thumbnails of the page starting at ``first`` (ignored when another page is up)."""
        if first != self.page * PAGE:
            return
        self.list.clear()
        for t in thumbs:
            item = QListWidgetItem(f"#{t.index}  {t.confidence:.0%}" + (f"\n{t.text}" if t.image is None else ""))
            if t.image is not None:
                picture = image_pixmap(t.image, THUMB)
                icon = QIcon(picture)
                icon.addPixmap(picture, QIcon.Mode.Selected)  # the sample stays readable when selected
                item.setIcon(icon)
            item.setData(Qt.ItemDataRole.UserRole, t.index)
            item.setToolTip(f"validation sample {t.index}: {t.confidence:.1%} confident; click to explain")
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.list.addItem(item)
        if thumbs and thumbs[0].image is None:  # table rows: wider cells for the values
            self.list.setGridSize(QSize(150, 3 * self.fontMetrics().height() + 8))
        else:
            self.list.setGridSize(QSize(THUMB + 28, THUMB + 2 * self.fontMetrics().height() + 8))

    def shown_indices(self) -> list[int]:
        """The validation positions on the page now shown, in order."""
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def click(self, index: int) -> None:
        """Select the sample at validation position ``index`` if it is on the page."""
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole) == index:
                self.list.setCurrentRow(i)
                return

    def _current_changed(self, item, _previous) -> None:
        if item is not None:
            self.sampleClicked.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def _sync_pager(self) -> None:
        n = len(self.indices)
        many = n > PAGE
        self.previous.setVisible(many)
        self.next.setVisible(many)
        self.previous.setEnabled(self.page > 0)
        self.next.setEnabled(self.page < self.pages() - 1)
        first = self.page * PAGE
        if not n:
            self.where.setText("no samples")
        elif many:
            self.where.setText(f"{first + 1}–{min(n, first + PAGE)} of {n}")
        else:
            self.where.setText(f"{n} sample{'s' if n != 1 else ''}, most confident first")
