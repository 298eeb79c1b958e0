"""The Data dock's samples: a page of examples as a grid of labelled thumbnails (images) or as
table rows (CSV and other tables), with the split and class to show and the page.

The widget only chooses positions (``workbench.data.scan``'s: the source's examples, then its
own validation part); the dock reads the page's examples on a worker (``scan.samples``) and
hands them back to ``show_samples``.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QStackedWidget,
                               QTableWidget, QTableWidgetItem, QToolButton, QVBoxLayout, QWidget)

from workbench.data.scan import Sample, ScanResult

from ui.common.pictures import image_pixmap

IMAGE_PAGE = 48  # thumbnails per page
TABLE_PAGE = 50  # table rows per page
THUMB = 56  # thumbnail side, px
SPLITS = (("train", "Training"), ("val", "Validation"), ("test", "Test"), ("all", "All"))


class SampleBrowser(QWidget):
    """Split and class filters, page buttons, and the page's examples."""

    pageWanted = Signal(list)  # positions to read and show

    def __init__(self, parent=None):
        super().__init__(parent)
        self.result: ScanResult | None = None
        self.page = 0
        self.split_box = QComboBox()
        self.split_box.setToolTip("Which split's examples to show")
        self.class_box = QComboBox()
        self.class_box.setToolTip("Show only the examples of one class")
        self.class_box.setMinimumContentsLength(8)
        self.class_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.class_box.setMaximumWidth(220)
        self.prev_button = QToolButton(text="‹", toolTip="Previous page")
        self.next_button = QToolButton(text="›", toolTip="Next page")
        self.page_label = QLabel()
        self.grid = QListWidget()
        self.grid.setViewMode(QListWidget.ViewMode.IconMode)
        self.grid.setIconSize(QSize(THUMB, THUMB))
        self.grid.setGridSize(QSize(THUMB + 18, THUMB + 22))
        self.grid.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.grid.setMovement(QListWidget.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.table = QTableWidget()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.views = QStackedWidget()
        self.views.addWidget(self.grid)
        self.views.addWidget(self.table)
        self.views.setMinimumSize(120, 60)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.split_box)
        bar.addWidget(self.class_box, 1)
        bar.addStretch(0)
        bar.addWidget(self.prev_button)
        bar.addWidget(self.page_label)
        bar.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.views, 1)

        self.split_box.currentIndexChanged.connect(lambda *_: self._filter_changed())
        self.class_box.currentIndexChanged.connect(lambda *_: self._filter_changed())
        self.prev_button.clicked.connect(lambda: self.go_to(self.page - 1))
        self.next_button.clicked.connect(lambda: self.go_to(self.page + 1))
        self.set_result(None)

    # ------------------------------------------------------------ state
    def set_result(self, result: ScanResult | None) -> None:
        """A new scan: the filters list its splits and classes (the choices kept where they still exist)."""
        old_split, old_class = self.split_box.currentData(), self.class_box.currentData()
        self.result = result
        for box in (self.split_box, self.class_box):
            box.blockSignals(True)
            box.clear()
        if result is not None:
            sizes = result.sizes
            for key, title in SPLITS:
                n = len(result.targets) if key == "all" and result.targets else \
                    sum(sizes.values()) if key == "all" else sizes[key]
                if n or key in ("train", "all"):
                    self.split_box.addItem(f"{title} ({n:,})", key)
            self.class_box.addItem("All classes", None)
            for i, name in enumerate(result.class_names or []):
                self.class_box.addItem(name, i)
        for box, old in ((self.split_box, old_split), (self.class_box, old_class)):
            at = box.findData(old)
            box.setCurrentIndex(at if at >= 0 else 0)
            box.blockSignals(False)
        self.class_box.setEnabled(bool(result and result.class_names))
        self.views.setCurrentWidget(self.table if result is not None and result.kind == "table" else self.grid)
        self.page = 0
        self._request()

    def set_class(self, index: int | None) -> None:
        """Show only class ``index`` (None: every class)."""
        self.class_box.setCurrentIndex(max(0, self.class_box.findData(index)))

    def positions(self) -> list[int]:
        """The positions the filters select, in order."""
        r = self.result
        if r is None:
            return []
        split = self.split_box.currentData() or "train"
        if split == "all":
            chosen = list(range(len(r.targets))) if r.targets else r.train + r.val + r.test
        else:
            chosen = list(getattr(r, split))
        wanted = self.class_box.currentData()
        if wanted is not None and r.targets:
            chosen = [p for p in chosen if r.targets[p] == wanted]
        return chosen

    @property
    def page_size(self) -> int:
        return TABLE_PAGE if self.result is not None and self.result.kind == "table" else IMAGE_PAGE

    def pages(self) -> int:
        return max(1, -(-len(self.positions()) // self.page_size))

    def go_to(self, page: int) -> None:
        self.page = max(0, min(page, self.pages() - 1))
        self._request()

    def _filter_changed(self) -> None:
        self.page = 0
        self._request()

    def _request(self) -> None:
        chosen = self.positions()
        pages = self.pages()
        self.page_label.setText(f"{self.page + 1} / {pages}")
        self.prev_button.setEnabled(self.page > 0)
        self.next_button.setEnabled(self.page < pages - 1)
        page = chosen[self.page * self.page_size:(self.page + 1) * self.page_size]
        self.grid.clear()
        self.table.clear()
        self.table.setRowCount(0)
        if page:
            self.pageWanted.emit(page)

    # ------------------------------------------------------------ the page's examples
    def show_samples(self, samples: list[Sample]) -> None:
        """The examples of the page just asked for (the dock read them on a worker)."""
        if self.result is not None and self.result.kind == "table":
            self._show_rows(samples)
            return
        self.grid.clear()
        for s in samples:
            item = QListWidgetItem(s.label if s.error is None else f"{s.label} ⚠")
            tip = f"#{s.position}: {s.label}" + (f"\n{s.path}" if s.path else "") + (f"\n{s.error}" if s.error else "")
            item.setToolTip(tip)
            item.setData(Qt.ItemDataRole.UserRole, s.position)
            if s.image is not None:
                image = s.image[:, :, 0] if s.image.shape[-1] == 1 else s.image
                item.setIcon(QIcon(image_pixmap(image, THUMB)))
            self.grid.addItem(item)

    def _show_rows(self, samples: list[Sample]) -> None:
        r = self.result
        target = "class" if r.class_names else "target"
        header = [target] + list(r.columns)
        self.table.setColumnCount(len(header))
        self.table.setHorizontalHeaderLabels(header)
        self.table.setRowCount(len(samples))
        self.table.setVerticalHeaderLabels([str(s.position) for s in samples])
        for row, s in enumerate(samples):
            for col, text in enumerate([s.label] + list(s.cells or [])):
                self.table.setItem(row, col, QTableWidgetItem(text))

    def shown_labels(self) -> list[str]:
        """The labels of the examples on screen (tests, and what a reader of the grid sees)."""
        if self.views.currentWidget() is self.table:
            return [self.table.item(r, 0).text() for r in range(self.table.rowCount()) if self.table.item(r, 0)]
        return [self.grid.item(i).text() for i in range(self.grid.count())]
