"""The start page: what the window shows when no project is open (File > Close Project, a
launch with "Show this page at launch" ticked, or a file that failed to open at launch).

It lists the recent projects (name and full path, from ``project_io.recent_files``; a file
that is gone is greyed, marked "(missing)" and can be removed from the list), the starter
templates with the first sentence of their description, an empty project, and Open.
The page only asks: it emits ``openRequested(path)``, ``newRequested(template name or
project_io.EMPTY)`` and ``browseRequested()``, and the window opens the project (asking about
unsaved changes and running training as File > Open and New do).

Both lists work from the keyboard: Up / Down move, Enter or Return opens, Delete removes a
recent entry; a click on a row opens it. The content is one centred column of at most
``MAX_WIDTH`` pixels, two sections side by side when there is room, one above the other (in
a scroll area) when there is not.
"""
from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QBoxLayout, QCheckBox, QFrame, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QPushButton, QScrollArea, QSizePolicy, QStyle,
                               QStyledItemDelegate, QStyleOptionViewItem, QVBoxLayout, QWidget)

from workbench.errors import WorkbenchError
from workbench.project import templates

from ui import project_io
from ui.common import icons, theme

MAX_WIDTH = 1040  # the column never stretches across a wide screen
SIDE_BY_SIDE = 860  # from this page width the two sections sit side by side
KEY = Qt.ItemDataRole.UserRole  # a recent file's path, or a template's name (project_io.EMPTY)
DETAIL = Qt.ItemDataRole.UserRole + 1  # the second line: the full path, or the description
MISSING = Qt.ItemDataRole.UserRole + 2  # a recent file that is gone
MIDDLE = Qt.ItemDataRole.UserRole + 3  # a detail too long for the row is cut in the middle (paths)
EMPTY_TITLE = "Empty project"
EMPTY_DETAIL = "No layers: set the input shape, then add layers"


def wrap(text: str, metrics: QFontMetrics, width: int, lines: int) -> list[str]:
    """``text`` in at most ``lines`` lines of ``width`` pixels, broken between words; the last
    line elided when the text is longer."""
    words, out = text.split(), []
    while words and len(out) < lines - 1:
        line = words.pop(0)
        while words and metrics.horizontalAdvance(f"{line} {words[0]}") <= width:
            line += " " + words.pop(0)
        if metrics.horizontalAdvance(line) > width:  # one word longer than the row
            words.insert(0, line)
            break
        out.append(line)
    if words:
        out.append(metrics.elidedText(" ".join(words), Qt.TextElideMode.ElideRight, width))
    return out


def first_sentence(text: str) -> str:
    """A template's one-line description: its first sentence (the rest is the tooltip)."""
    return re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]


class EntryDelegate(QStyledItemDelegate):
    """A bold title over a muted detail: a path on one line, elided in the middle, or a
    description wrapped on up to the list's ``detail_lines`` lines; a missing file is all
    muted."""

    PAD_X, PAD_Y, GAP = 12, 7, 2

    def _fonts(self, option) -> tuple[QFont, QFont]:
        title = QFont(option.font)
        title.setBold(True)
        return title, QFont(option.font)

    def _lines(self) -> int:
        return getattr(self.parent(), "detail_lines", 1)

    def sizeHint(self, option, index) -> QSize:
        title, detail = self._fonts(option)
        height = (QFontMetrics(title).height() + self.GAP + self._lines() * QFontMetrics(detail).lineSpacing()
                  + 2 * self.PAD_Y)
        return QSize(200, height)

    def paint(self, painter, option, index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget
        if widget is not None and not widget.hasFocus() and opt.state & QStyle.StateFlag.State_Selected:
            # only the list with the keyboard (the one Enter acts in) marks its row in blue
            opt.state = (opt.state & ~QStyle.StateFlag.State_Selected) | QStyle.StateFlag.State_MouseOver
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        title_font, detail_font = self._fonts(option)
        rect = opt.rect.adjusted(self.PAD_X, self.PAD_Y, -self.PAD_X, -self.PAD_Y)
        missing = bool(index.data(MISSING))
        painter.save()
        metrics = QFontMetrics(title_font)
        painter.setFont(title_font)
        painter.setPen(QColor(theme.MUTED if missing else theme.TEXT))
        title = metrics.elidedText(index.data(Qt.ItemDataRole.DisplayRole) or "", Qt.TextElideMode.ElideRight,
                                   rect.width())
        painter.drawText(QRect(rect.left(), rect.top(), rect.width(), metrics.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, title)
        top = rect.top() + metrics.height() + self.GAP
        metrics = QFontMetrics(detail_font)
        painter.setFont(detail_font)
        painter.setPen(QColor(theme.MUTED if missing else theme.MUTED_TEXT))
        text = index.data(DETAIL) or ""
        if index.data(MIDDLE):
            lines = [metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, rect.width())]
        else:
            lines = wrap(text, metrics, rect.width(), self._lines())
        for line in lines:
            painter.drawText(QRect(rect.left(), top, rect.width(), metrics.height()),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, line)
            top += metrics.lineSpacing()
        painter.restore()


class EntryList(QListWidget):
    """A list whose rows are chosen by a click or by Enter / Return (``chosen``); Delete or
    Backspace asks to remove the current row (``removeRequested``). Its height fits its rows
    (at most ``max_rows``), so the page, not the list, scrolls when space runs out."""

    chosen = Signal(QListWidgetItem)
    removeRequested = Signal(QListWidgetItem)

    def __init__(self, name: str, max_rows: int, detail_lines: int = 1, parent=None):
        super().__init__(parent)
        self.setObjectName(name)
        self.setProperty("startList", True)
        self.max_rows = max_rows
        self.detail_lines = detail_lines
        self.setItemDelegate(EntryDelegate(self))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(True)  # hover
        self.setUniformItemSizes(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._pressed: QListWidgetItem | None = None

    def fit_height(self) -> None:
        rows = max(1, min(self.count(), self.max_rows))
        row = self.sizeHintForRow(0) if self.count() else 40
        self.setFixedHeight(rows * row + 2 * self.frameWidth())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        item = self.currentItem()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and item is not None:
            self.chosen.emit(item)
        elif event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and item is not None:
            self.removeRequested.emit(item)
        else:
            super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        super().mousePressEvent(event)
        self._pressed = self.itemAt(event.position().toPoint())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        super().mouseReleaseEvent(event)
        item = self.itemAt(event.position().toPoint())
        pressed, self._pressed = self._pressed, None
        if event.button() == Qt.MouseButton.LeftButton and item is not None and item is pressed:
            self.chosen.emit(item)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        event.accept()  # the first click already opened the row


def _heading(text: str) -> QLabel:
    label = QLabel(text, objectName="startHeading")
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 1.15)
    font.setBold(True)
    label.setFont(font)
    return label


def _style() -> str:
    return f"""
QWidget#startColumn, QScrollArea#startScroll, QScrollArea#startScroll > QWidget > QWidget {{
    background: transparent;
}}
QListWidget[startList="true"] {{
    background: white;
    border: 1px solid {theme.FRAME};
    border-radius: 6px;
    outline: none;
}}
QListWidget[startList="true"]:focus {{
    border: 1px solid {theme.FOCUS};
}}
QListWidget[startList="true"]::item {{
    border-bottom: 1px solid {theme.ROW_RULE};
}}
QListWidget[startList="true"]::item:hover {{
    background: {theme.ROW_HOVER};
}}
QListWidget[startList="true"]::item:selected {{
    background: {theme.ROW_SELECTED};
}}
QLabel#startHeading {{
    color: {theme.SOFT_TEXT};
}}
QLabel#startSubtitle, QLabel#startEmpty {{
    color: {theme.MUTED_TEXT};
}}
QLabel#startMessage {{
    border-radius: 4px;
    padding: 6px 8px;
}}
QLabel#startMessage[error="true"] {{
    background: {theme.ERROR_BACKGROUND};
    border: 1px solid #f5a3a3;
    color: #7f1d1d;
}}
QLabel#startMessage[error="false"] {{
    background: #fff7ed;
    border: 1px solid #fed7aa;
    color: {theme.LOCKED};
}}
"""


class StartPage(QWidget):
    """Recent projects, templates, an empty project and Open, in one centred column."""

    openRequested = Signal(str)  # a recent file's path
    newRequested = Signal(str)  # a template's name, or project_io.EMPTY
    browseRequested = Signal()  # Open...: the file dialog

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("startPage")
        self.setStyleSheet(_style())

        logo = QLabel()
        logo.setPixmap(icons.app_icon().pixmap(QSize(44, 44)))
        title = QLabel("Model Workbench", objectName="startTitle")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        title.setFont(font)
        subtitle = QLabel("Open a recent project, start from a template, or begin with an empty project.",
                          objectName="startSubtitle")
        subtitle.setWordWrap(True)
        head_text = QVBoxLayout()
        head_text.setSpacing(2)
        head_text.addWidget(title)
        head_text.addWidget(subtitle)
        head = QHBoxLayout()
        head.setSpacing(14)
        head.addWidget(logo, 0, Qt.AlignmentFlag.AlignTop)
        head.addLayout(head_text, 1)

        self.message = QLabel(objectName="startMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()

        # recent projects
        self.recent = EntryList("recentList", project_io.MAX_RECENT)
        self.recent.chosen.connect(self._open_recent)
        self.recent.removeRequested.connect(self._remove)
        self.recent.currentItemChanged.connect(lambda *_: self._sync_buttons())
        self.no_recent = QLabel("No recent projects yet: open a project file, or start a new project.",
                                objectName="startEmpty")
        self.no_recent.setWordWrap(True)
        self.open_button = QPushButton("&Open...")
        self.open_button.setToolTip("Open a .wbproj project from a file (starts in the last project's folder)")
        self.open_button.clicked.connect(self.browseRequested)
        self.remove_button = QPushButton("&Remove from List")
        self.remove_button.setToolTip("Forget the selected recent project (the file is not touched) (Delete)")
        self.remove_button.clicked.connect(lambda: self._remove(self.recent.currentItem()))
        recent_head = QHBoxLayout()
        recent_head.addWidget(_heading("Recent projects"))
        recent_head.addStretch(1)
        recent_head.addWidget(self.remove_button)
        recent_head.addWidget(self.open_button)
        recent_box = QVBoxLayout()
        recent_box.setSpacing(8)
        recent_box.addLayout(recent_head)
        recent_box.addWidget(self.recent)
        recent_box.addWidget(self.no_recent)
        recent_box.addStretch(1)

        # new projects
        # one line of description each (the whole of it in the tooltip): with the block templates
        # (Inception, DenseNet, SE, U-Net) two lines each no longer fitted a 1024x700 window
        self.new = EntryList("newList", 12, detail_lines=1)
        self.new.chosen.connect(lambda item: self.newRequested.emit(item.data(KEY)))
        self._fill_templates()
        new_box = QVBoxLayout()
        new_box.setSpacing(8)
        new_head = QHBoxLayout()
        new_head.addWidget(_heading("New project"))
        new_head.addStretch(1)
        spacer = QPushButton()  # keeps both headings the height of a button row
        spacer.setFlat(True)
        spacer.setEnabled(False)
        spacer.setFixedWidth(0)
        spacer.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        new_head.addWidget(spacer)
        new_box.addLayout(new_head)
        new_box.addWidget(self.new)
        new_box.addStretch(1)

        self.columns = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.columns.setSpacing(28)
        self.columns.addLayout(recent_box, 1)
        self.columns.addLayout(new_box, 1)

        self.at_launch = QCheckBox("&Show this page at launch")
        self.at_launch.setToolTip("When on, starting Model Workbench without a file shows this page "
                                  "instead of opening the last project")
        self.at_launch.setChecked(project_io.start_page_at_launch())
        self.at_launch.toggled.connect(project_io.set_start_page_at_launch)

        column = QWidget(objectName="startColumn")
        column.setMaximumWidth(MAX_WIDTH)
        inner = QVBoxLayout(column)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.setSpacing(14)
        inner.addLayout(head)
        inner.addWidget(self.message)
        inner.addLayout(self.columns)
        inner.addWidget(self.at_launch)

        body = QWidget()
        centred = QHBoxLayout()
        centred.addStretch(1)
        centred.addWidget(column, 100)
        centred.addStretch(1)
        upright = QVBoxLayout(body)  # a tall page keeps the column in its upper third
        upright.setContentsMargins(32, 20, 32, 16)
        upright.addStretch(1)
        upright.addLayout(centred)
        upright.addStretch(3)
        scroll = QScrollArea(objectName="startScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(body)
        self.scroll = scroll
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)

        QWidget.setTabOrder(self.recent, self.remove_button)
        QWidget.setTabOrder(self.remove_button, self.open_button)
        QWidget.setTabOrder(self.open_button, self.new)
        QWidget.setTabOrder(self.new, self.at_launch)
        self.refresh()

    # ------------------------------------------------------------ contents
    def _fill_templates(self) -> None:
        for name in templates.names():
            try:
                proj = templates.load(name)
            except WorkbenchError:  # a damaged template is left out, as File > New does
                continue
            self._add(self.new, proj.name, first_sentence(proj.description or ""), name,
                      tip=proj.description or proj.name)
        self._add(self.new, EMPTY_TITLE, EMPTY_DETAIL, project_io.EMPTY, tip=EMPTY_DETAIL)
        self.new.setCurrentRow(0)
        self.new.fit_height()

    @staticmethod
    def _add(view: QListWidget, title: str, detail: str, key: str, tip: str, missing: bool = False,
             middle: bool = False) -> QListWidgetItem:
        item = QListWidgetItem(title)
        item.setData(MIDDLE, middle)
        item.setData(DETAIL, detail)
        item.setData(KEY, key)
        item.setData(MISSING, missing)
        item.setToolTip(tip)
        item.setStatusTip(tip)
        view.addItem(item)
        return item

    def refresh(self) -> None:
        """Read the recent files again (the list may have changed since the page was built)."""
        row = max(self.recent.currentRow(), 0)
        self.recent.clear()
        for path in project_io.recent_files():
            missing = not Path(path).is_file()
            name = Path(path).name + (" (missing)" if missing else "")
            tip = f"{path} is missing: moved or deleted (Delete removes it from the list)" if missing else path
            self._add(self.recent, name, path, path, tip, missing, middle=True)
        has_recent = self.recent.count() > 0
        self.recent.setVisible(has_recent)
        self.no_recent.setVisible(not has_recent)
        if has_recent:
            self.recent.setCurrentRow(min(row, self.recent.count() - 1))
            self.recent.fit_height()
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.remove_button.setEnabled(self.recent.currentItem() is not None)

    def entries(self, which: str = "recent") -> list[tuple[str, str]]:
        """(title, detail) of each row of the "recent" or "new" list, as the page shows them."""
        view = self.recent if which == "recent" else self.new
        return [(view.item(r).text(), view.item(r).data(DETAIL)) for r in range(view.count())]

    # ------------------------------------------------------------ messages
    def show_message(self, text: str, error: bool = False) -> None:
        """A line above the lists: a project that could not be opened (error), or a note."""
        self.message.setText(text)
        self.message.setProperty("error", error)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.message.setVisible(bool(text))

    def clear_message(self) -> None:
        self.show_message("")

    def focus_first(self) -> None:
        """The keyboard starts in the recent list, else in the new-project list."""
        (self.recent if self.recent.count() else self.new).setFocus(Qt.FocusReason.OtherFocusReason)

    # ------------------------------------------------------------ choices
    def _open_recent(self, item: QListWidgetItem) -> None:
        path = item.data(KEY)
        if not Path(path).is_file():
            if not item.data(MISSING):
                self.refresh()
            self.show_message(f"{path} is missing: it was moved or deleted. Remove it from the list with "
                              "Delete or Remove from List, or find it with Open...")
            return
        self.clear_message()
        self.openRequested.emit(path)

    def _remove(self, item: QListWidgetItem | None) -> None:
        if item is None:
            return
        project_io.forget_recent(item.data(KEY))
        self.clear_message()
        self.refresh()
        (self.recent if self.recent.count() else self.new).setFocus()

    # ------------------------------------------------------------ layout
    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        wide = event.size().width() >= SIDE_BY_SIDE
        self.columns.setDirection(QBoxLayout.Direction.LeftToRight if wide else QBoxLayout.Direction.TopToBottom)
