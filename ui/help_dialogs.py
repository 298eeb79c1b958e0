"""The Help menu's windows: About (the version), the keyboard shortcut sheet and the usage guide.

The shortcut sheet is read from the window's actions (every ``QAction`` with a shortcut, in
menu order, then any that no menu holds), never from a written list, so it cannot go stale.
The usage guide shows the README's usage sections ("The window", "Training in the window",
"Headless commands") from the README beside the code, or from the installed package's
description; without either it says where to read them.
"""
from __future__ import annotations

import platform
import re
from importlib import metadata
from pathlib import Path

import PySide6
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLabel, QMenu, QMessageBox,
                               QTableWidget, QTableWidgetItem, QTextBrowser, QVBoxLayout, QWidget)

import workbench

USAGE_SECTIONS = ("The window", "Training in the window", "Headless commands")
README = Path(__file__).resolve().parents[1] / "README.md"  # in a checkout; a wheel carries it as its description
DISTRIBUTION = "model-workbench"


def version_text() -> str:
    """'Model Workbench 0.1.0' and the versions it runs on."""
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        torch_version = "not installed"
    return (f"Model Workbench {workbench.__version__}\n"
            f"Python {platform.python_version()}, PyTorch {torch_version}, PySide6 {PySide6.__version__}")


def show_about(parent: QWidget) -> None:
    QMessageBox.about(parent, "About Model Workbench",
                      f"{version_text()}\n\nBuild PyTorch layer stacks, train them live and export verified "
                      "models.\n\nHelp > Using Model Workbench shows how; Help > Keyboard Shortcuts lists every key.")


# ---------------------------------------------------------------- shortcuts

def _plain(text: str) -> str:
    """A menu text as read: '&Undo' -> 'Undo', '&&' -> '&', without a trailing '...'."""
    return re.sub(r"&(.)", r"\1", text).removesuffix("...").removesuffix("…").strip()


def shortcut_rows(window) -> list[tuple[str, str, str]]:
    """(menu, command, keys) of every action of ``window`` that has a shortcut."""
    rows: list[tuple[str, str, str]] = []
    seen: set[int] = set()

    def add(action: QAction, where: str) -> None:
        if id(action) in seen or action.isSeparator():
            return
        seen.add(id(action))
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty()]
        if keys:
            # the icon text: 'Undo', where the menu text says what it would undo ('Undo Add ReLU ...')
            rows.append((where, _plain(action.iconText()) or action.toolTip(), ", ".join(keys)))

    def walk(menu: QMenu, where: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                walk(action.menu(), f"{where} > {_plain(action.text())}")
            else:
                add(action, where)

    for top in window.menuBar().actions():
        if top.menu() is not None:
            walk(top.menu(), _plain(top.text()))
    for action in window.findChildren(QAction):  # keys no menu shows (a panel's own shortcuts)
        add(action, "Window")
    return rows


class ShortcutSheet(QDialog):
    """Help > Keyboard Shortcuts: a table of every shortcut, read from the actions."""

    def __init__(self, window):
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcut_rows(window)
        self.table = QTableWidget(len(rows), 3, objectName="shortcutTable")
        self.table.setHorizontalHeaderLabels(["Menu", "Command", "Keys"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        note = QLabel("Stack commands (Delete, Duplicate, Rename, Freeze) act when the stack has the focus.")
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(560, 520)


def show_shortcuts(window) -> None:
    ShortcutSheet(window).exec()


# ---------------------------------------------------------------- usage

def _readme_text() -> tuple[str, str] | None:
    """(README text, where it came from), or None when neither copy is here."""
    if README.is_file():
        try:
            return README.read_text(encoding="utf-8"), str(README)
        except (OSError, UnicodeDecodeError):
            pass
    try:
        meta = metadata.metadata(DISTRIBUTION)
        text = meta.get("Description") or meta.get_payload()  # the README, as the wheel's long description
    except (metadata.PackageNotFoundError, AttributeError):
        return None
    return (text, f"the {DISTRIBUTION} package description") if text else None


def usage_markdown() -> str:
    """The README's usage sections as Markdown, headed by where they come from."""
    found = _readme_text()
    wanted = ", ".join(f"'{s}'" for s in USAGE_SECTIONS)
    if found is None:
        return (f"# Using Model Workbench\n\nThe README (README.md in the source) explains the window in its "
                f"sections {wanted}.")
    text, where = found
    parts = re.split(r"(?m)^## ", text)
    sections = ["## " + p for p in parts[1:] if p.split("\n", 1)[0].strip() in USAGE_SECTIONS]
    if not sections:
        return f"# Using Model Workbench\n\nSee the README ({where}), sections {wanted}."
    return f"# Using Model Workbench\n\n*From the README: {where}*\n\n" + "\n".join(sections)


class UsageGuide(QDialog):
    """Help > Using Model Workbench: the README's usage sections."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Using Model Workbench")
        self.text = QTextBrowser(objectName="usageText")
        self.text.setOpenExternalLinks(True)
        self.text.setMarkdown(usage_markdown())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(720, 560)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)


def show_usage(parent: QWidget) -> None:
    UsageGuide(parent).show()  # not modal: read it beside the window
