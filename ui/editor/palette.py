"""The layer palette: every catalog kind grouped by category, searchable, a drag source.

Dragging an item carries ``MIME_LAYER`` ({"type": ...}); double-click or Enter asks the
window to add the layer (``layerRequested``). Hovering shows the kind's help and arguments.
"""
from __future__ import annotations

import json
from html import escape

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from workbench.model import catalog
from workbench.model.params import REQUIRED

from ui.common import icons
from ui.editor.stack_model import MIME_LAYER

KIND_ROLE = Qt.ItemDataRole.UserRole + 1


def kind_mime(type_name: str) -> QMimeData:
    """What a palette drag carries (also used by tests to build drops)."""
    data = QMimeData()
    data.setData(MIME_LAYER, json.dumps({"type": type_name}).encode())
    data.setText(type_name)
    return data


def kind_tooltip(kind: catalog.LayerKind) -> str:
    lines = [f"<b>{escape(kind.name)}</b> <i>({escape(kind.category)})</i>", escape(kind.help)]
    if kind.rank_hint:
        lines.append(f"input: {escape(kind.rank_hint)}")
    for p in kind.params:
        if p.infer is not None:
            note = "inferred from the input"
        elif p.default is REQUIRED:
            note = "required"
        else:
            note = f"default {p.default!r}"
        lines.append(f"&nbsp;&nbsp;<b>{escape(p.name)}</b>: {escape(p.help)} <i>({escape(note)})</i>")
    lines.append("<i>Drag into the stack, or double-click to add after the selected row.</i>")
    return "<br>".join(lines)


class _Tree(QTreeWidget):
    def mimeTypes(self):
        return [MIME_LAYER]

    def mimeData(self, items):
        names = [i.data(0, KIND_ROLE) for i in items if i.data(0, KIND_ROLE)]
        return kind_mime(names[0]) if names else QMimeData()

    def supportedDropActions(self):
        return Qt.DropAction.CopyAction


class Palette(QWidget):
    layerRequested = Signal(str)  # a kind name to add to the stack

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("palette")
        self.search = QLineEdit(placeholderText="Search layers")
        self.search.setToolTip("Filter by name, category or description; Enter adds the first match")
        self.search.setClearButtonEnabled(True)
        self.tree = _Tree()
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(True)
        self.tree.setIndentation(12)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._fill()
        self.search.textChanged.connect(self.filter)
        self.search.returnPressed.connect(self._add_first_match)
        self.tree.itemActivated.connect(self._activated)

    def _fill(self) -> None:
        for category in catalog.CATEGORIES:
            head = QTreeWidgetItem(self.tree, [category])
            head.setIcon(0, icons.category_icon(category))
            head.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = head.font(0)
            font.setBold(True)
            head.setFont(0, font)
            for kind in catalog.KINDS:
                if kind.category != category or kind.name == "Branch":  # a Branch comes with its Parallel
                    continue
                item = QTreeWidgetItem(head, [kind.name])
                item.setData(0, KIND_ROLE, kind.name)
                item.setIcon(0, icons.type_badge(kind.name))
                item.setToolTip(0, kind_tooltip(kind))
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                              | Qt.ItemFlag.ItemIsDragEnabled)
                self._items[kind.name] = item
        self.tree.expandAll()

    def focus_search(self) -> None:
        """Edit > Find Layer Type (Ctrl+F): the search box with its old text selected, so typing
        replaces it."""
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def item(self, type_name: str) -> QTreeWidgetItem:
        return self._items[type_name]

    def visible_kinds(self) -> list[str]:
        return [name for name, item in self._items.items() if not item.isHidden() and not item.parent().isHidden()]

    def filter(self, text: str) -> None:
        words = text.lower().split()
        for i in range(self.tree.topLevelItemCount()):
            head = self.tree.topLevelItem(i)
            shown = 0
            for j in range(head.childCount()):
                item = head.child(j)
                kind = catalog.kind(item.data(0, KIND_ROLE))
                hay = f"{kind.name} {kind.category} {kind.help}".lower()
                match = all(w in hay for w in words)
                item.setHidden(not match)
                shown += match
            head.setHidden(shown == 0)
            head.setExpanded(True)

    def _add_first_match(self) -> None:
        text = self.search.text().strip().lower()
        visible = self.visible_kinds()
        if not visible:
            return
        exact = [k for k in visible if k.lower() == text]
        starts = [k for k in visible if k.lower().startswith(text)]
        self.layerRequested.emit((exact or starts or visible)[0])

    def _activated(self, item: QTreeWidgetItem, _column: int) -> None:
        name = item.data(0, KIND_ROLE)
        if name:
            self.layerRequested.emit(name)
