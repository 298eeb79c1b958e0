"""Helpers for the window tests (plain functions; the fixtures are in conftest.py): drag and
drop delivered as real Qt events to the stack's viewport, and readers of what the stack and
labels show."""
from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication


def deliver_drop(view, mime, pos: QPoint, action=Qt.DropAction.CopyAction) -> QDropEvent:
    """Drag-enter, drag-move and drop at ``pos`` (viewport coordinates), as Qt would."""
    viewport = view.viewport()
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos, action, mime, buttons, mods)
    QApplication.sendEvent(viewport, enter)
    move = QDragMoveEvent(pos, action, mime, buttons, mods)
    QApplication.sendEvent(viewport, move)
    drop = QDropEvent(QPointF(pos), action, mime, buttons, mods)
    QApplication.sendEvent(viewport, drop)
    return drop


def row_rect(view, layer_id: str):
    return view.visualRect(view.stack_model.index_of(layer_id))


def above(view, layer_id: str) -> QPoint:
    rect = row_rect(view, layer_id)
    return QPoint(rect.center().x(), rect.top() + 1)


def below(view, layer_id: str) -> QPoint:
    rect = row_rect(view, layer_id)
    return QPoint(rect.center().x(), rect.bottom() - 1)


def on_row(view, layer_id: str) -> QPoint:
    return row_rect(view, layer_id).center()


def empty_area(view) -> QPoint:
    return QPoint(20, view.viewport().height() - 4)


def shown_rows(model, parent=None) -> list[tuple]:
    """What the stack displays: (position, id, type, shape text, params text) per row, nested."""
    from PySide6.QtCore import QModelIndex

    from ui.editor.stack_model import ID, PARAMS, POS, SHAPE, TYPE

    parent = parent or QModelIndex()
    out = []
    for row in range(model.rowCount(parent)):
        cells = tuple(model.index(row, c, parent).data() for c in (POS, ID, TYPE, SHAPE, PARAMS))
        out.append(cells)
        out.extend(shown_rows(model, model.index(row, 0, parent)))
    return out


def ids_of(spec) -> list[str]:
    return [layer.id for layer in spec.layers]


def text_of(label) -> str:
    """What a rich-text label reads as on screen (tags and entities resolved)."""
    from PySide6.QtGui import QTextDocument

    doc = QTextDocument()
    doc.setHtml(label.text())
    return doc.toPlainText().replace("\xa0", " ")


def short_runs(window, tmp_path, epochs: int):
    """The window's Training dock on its project saved under tmp_path (runs go there), ``epochs``
    per run, metrics every 2 steps, no TensorBoard; the data already read."""
    from dataclasses import replace

    project = window.doc.project
    project.path = tmp_path / "digits.wbproj"
    project.training = replace(project.training, epochs=epochs, log_every=2, tensorboard=False)
    dock = window.training
    dock.panel.probe.wait()
    return dock


def wait_end(qtbot, dock, timeout=60_000):
    """Wait until the Training dock's run has ended; its end event."""
    qtbot.waitUntil(lambda: dock.run is None, timeout=timeout)
    return dock.last_end
