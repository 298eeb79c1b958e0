"""The whole story of issue 4, as a user lives it: on the digits data (input (1, 8, 8)), clear
the stack, drag Conv2d / ReLU / MaxPool2d / Linear in, see shapes and counts, fix the broken
Linear by following its tooltip (Flatten before it), tune a size in the inspector, undo
everything, redo it, save, reopen, and find the same stack."""
from __future__ import annotations

from PySide6.QtCore import Qt

from ui import project_io
from ui.main_window import MainWindow
from ui.editor.stack_model import SHAPE, TYPE
from window_helpers import above, deliver_drop, empty_area, ids_of, shown_rows, text_of


def drag_from_palette(window, type_name, pos):
    mime = window.layer_palette.tree.mimeData([window.layer_palette.item(type_name)])
    deliver_drop(window.stack, mime, pos)


def shape(window, layer_id):
    return window.stack.stack_model.index_of(layer_id, SHAPE).data()


def test_build_fix_undo_save_reopen(window, qtbot, tmp_path, monkeypatch):
    doc, view = window.doc, window.stack
    template = doc.spec.to_json()
    assert tuple(doc.spec.input_shape) == (1, 8, 8) and doc.project.data.source == "digits"

    # clear the template's stack: select all, Delete
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert doc.spec.layers == [] and view.stack_model.rowCount() == 0
    assert text_of(window.summary.shapes) == "Input (1, 8, 8) → Output (1, 8, 8)"
    assert text_of(window.summary.params).startswith("0 params")

    # drag the layers in, watching shapes and counts
    drag_from_palette(window, "Conv2d", empty_area(view))
    assert shape(window, "conv2d_1") == "(16, 6, 6)"
    assert text_of(window.summary.params).startswith("160 params")
    drag_from_palette(window, "ReLU", empty_area(view))
    drag_from_palette(window, "MaxPool2d", empty_area(view))
    assert shape(window, "maxpool2d_1") == "(16, 2, 2)"
    drag_from_palette(window, "Linear", empty_area(view))
    assert ids_of(doc.spec) == ["conv2d_1", "relu_1", "maxpool2d_1", "linear_1"]

    # the Linear cannot take a feature map: the row says so, and how to fix it
    tip = view.stack_model.index_of("linear_1", TYPE).data(Qt.ItemDataRole.ToolTipRole)
    assert "insert Flatten before it" in tip
    assert shape(window, "linear_1") == "error" and text_of(window.summary.shapes).endswith("Output unknown")
    drag_from_palette(window, "Flatten", above(view, "linear_1"))
    assert ids_of(doc.spec) == ["conv2d_1", "relu_1", "maxpool2d_1", "flatten_1", "linear_1"]
    assert doc.info.ok and shape(window, "flatten_1") == "(64,)" and shape(window, "linear_1") == "(10,)"
    assert text_of(window.summary.params).startswith("810 params")  # 16*9+16 + 64*10+10

    # tune the first conv in the inspector: everything below follows at once
    view.select_ids(["conv2d_1"])
    window.inspector.fields["out_channels"].widget.setValue(8)
    assert shape(window, "flatten_1") == "(32,)"
    assert text_of(window.summary.params).startswith("410 params")  # 8*9+8 + 32*10+10
    built = doc.spec.to_json()
    rows = shown_rows(view.stack_model)

    # undo everything, then redo it, from the keyboard
    window.activateWindow()
    view.setFocus()
    while doc.undo_stack.canUndo():
        qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert doc.spec.to_json() == template and not window.isWindowModified()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert "Delete" in doc.undo_stack.undoText()  # the first step is back
    while doc.undo_stack.canRedo():
        window.actions_["redo"].trigger()
    assert doc.spec.to_json() == built and shown_rows(view.stack_model) == rows

    # save, reopen in a new window, same stack
    path = tmp_path / "my_digits.wbproj"
    monkeypatch.setattr(project_io, "choose_save_path", lambda parent, suggestion: str(path))
    qtbot.keyClick(view, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert path.is_file() and not window.isWindowModified()
    reopened = MainWindow(str(path))
    qtbot.addWidget(reopened)
    assert reopened.doc.spec.to_json() == built
    assert shown_rows(reopened.stack.stack_model) == rows
    assert reopened.windowTitle().startswith("my_digits.wbproj")
