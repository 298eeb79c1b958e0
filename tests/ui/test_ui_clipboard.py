"""Issue 13, copy and paste of layers as a user meets it: Ctrl+C in the layer list puts the
selected layers on the clipboard as the project file's JSON, Ctrl+V in any window inserts them
after the current row as one undoable edit (clashing ids renamed), Ctrl+X cuts; the clipboard
holding anything else is refused with a status message naming the layer and field, and
nothing changes; Ctrl+C in a text field still copies its text."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QMimeData, Qt
from PySide6.QtWidgets import QApplication
from workbench.model.spec import MAX_DEPTH, LayerSpec
from workbench.project import project_file as projects, templates

from ui.editor import clipboard
from window_helpers import ids_of, shown_rows

CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def second(qtbot, window):
    """A second window on another (empty) project, in the same app: one clipboard for both."""
    from ui.main_window import MainWindow

    w = MainWindow(project=templates.empty())
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


def focus_stack(qtbot, window):
    """Make the window active with the keyboard in its layer list (stack shortcuts need both)."""
    window.activateWindow()
    window.raise_()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    window.stack.setFocus()
    qtbot.waitUntil(window.stack.hasFocus)


def select(qtbot, window, *layer_ids):
    window.stack.select_ids(list(layer_ids))
    assert window.stack.selected_ids() == list(layer_ids)


def status(window) -> str:
    return window.statusBar().currentMessage()


def put_text(text: str) -> None:
    QApplication.clipboard().setText(text)


def test_copy_two_layers_and_paste_them_into_another_project(window, second, qtbot):
    focus_stack(qtbot, window)
    select(qtbot, window, "conv1", "bn1")
    qtbot.keyClick(window.stack, Qt.Key.Key_C, CTRL)
    assert "Copied 2 layers" in status(window)
    assert ids_of(window.doc.spec)[:2] == ["conv1", "bn1"] and window.doc.undo_stack.count() == 0

    focus_stack(qtbot, second)
    qtbot.keyClick(second.stack, Qt.Key.Key_V, CTRL)
    assert ids_of(second.doc.spec) == ["conv1", "bn1"]
    assert second.doc.spec.find("conv1").args == window.doc.spec.find("conv1").args
    # the rows show their shapes at once: 32 channels over the empty project's 8x8 input
    rows = {r[1]: r for r in shown_rows(second.stack_model)}
    assert rows["conv1"][2] == "Conv2d" and "32" in rows["conv1"][3] and "8" in rows["conv1"][3]
    assert rows["bn1"][3] == rows["conv1"][3] and rows["conv1"][4] not in ("", "0")
    assert second.doc.info.error is None and second.doc.info.output_shape == (32, 8, 8)
    assert second.stack.selected_ids() == ["conv1", "bn1"]
    assert "Pasted 2 layers" in status(second)
    assert second.doc.undo_stack.count() == 1 and second.doc.undo_stack.undoText() == "Paste 2 layers"


def test_the_clipboard_holds_the_project_files_layer_format_as_text_and_as_our_type(window, qtbot):
    focus_stack(qtbot, window)
    select(qtbot, window, "conv1", "bn1")
    qtbot.keyClick(window.stack, Qt.Key.Key_C, CTRL)
    mime = QApplication.clipboard().mimeData()
    assert mime.hasFormat(clipboard.LAYERS_MIME)
    text = mime.text()
    assert json.loads(bytes(mime.data(clipboard.LAYERS_MIME).data()).decode()) == json.loads(text)
    data = json.loads(text)
    file_layers = json.loads(window.doc.project.dumps())["model"]["layers"]
    assert data == {"layers": file_layers[:2]}
    # and a project file made of those layers loads: the same format, not a look-alike
    project = projects.from_json({**json.loads(window.doc.project.dumps()),
                                  "model": {"input": {"shape": [1, 8, 8]}, "layers": data["layers"]}})
    assert ids_of(project.model) == ["conv1", "bn1"]


def test_copy_of_a_block_carries_its_nested_layers(window, second, qtbot):
    block = LayerSpec("res", "Residual", {}, layers=[LayerSpec("inner", "ReLU"), LayerSpec("inner2", "Identity")])
    window.doc.insert_layers([block], None, 0, "add a block")
    focus_stack(qtbot, window)
    select(qtbot, window, "res", "inner")  # the child rides with its block, once
    qtbot.keyClick(window.stack, Qt.Key.Key_C, CTRL)
    data = json.loads(QApplication.clipboard().text())
    assert [d["id"] for d in data["layers"]] == ["res"]
    assert [d["id"] for d in data["layers"][0]["layers"]] == ["inner", "inner2"]
    focus_stack(qtbot, second)
    qtbot.keyClick(second.stack, Qt.Key.Key_V, CTRL)
    assert [path for path, _ in second.doc.spec.walk()] == ["res", "res.body.inner", "res.body.inner2"]
    assert [c.id for c in second.doc.spec.find("res").layers] == ["inner", "inner2"]


def test_paste_after_the_current_row_renames_clashing_ids_and_undoes_in_one_step(window, qtbot):
    doc = window.doc
    before = ids_of(doc.spec)
    focus_stack(qtbot, window)
    select(qtbot, window, "conv1", "bn1")
    qtbot.keyClick(window.stack, Qt.Key.Key_C, CTRL)
    select(qtbot, window, "fc")
    qtbot.keyClick(window.stack, Qt.Key.Key_V, CTRL)
    assert ids_of(doc.spec) == before + ["conv1_1", "bn1_1"]  # after fc, ids made unique
    assert doc.spec.find("conv1_1").args == doc.spec.find("conv1").args
    assert "'conv1' as 'conv1_1'" in status(window) and "'bn1' as 'bn1_1'" in status(window)
    assert doc.undo_stack.count() == 1
    qtbot.keyClick(window.stack, Qt.Key.Key_Z, CTRL)
    assert ids_of(doc.spec) == before and doc.undo_stack.index() == 0  # the whole paste, one step
    doc.undo_stack.redo()
    assert ids_of(doc.spec) == before + ["conv1_1", "bn1_1"]


def test_paste_into_a_block_goes_after_the_current_row_inside_it(window, qtbot):
    doc = window.doc
    doc.insert_layers([LayerSpec("res", "Residual", {}, layers=[LayerSpec("inner", "ReLU")])], None, 0, "block")
    focus_stack(qtbot, window)
    select(qtbot, window, "relu1")
    qtbot.keyClick(window.stack, Qt.Key.Key_C, CTRL)
    select(qtbot, window, "inner")
    qtbot.keyClick(window.stack, Qt.Key.Key_V, CTRL)
    assert [c.id for c in doc.spec.find("res").layers] == ["inner", "relu1_1"]


@pytest.mark.parametrize("text, says", [
    ("hello world", ["holds text, not layers", "'hello world'"]),
    ("", ["empty"]),
    ('{"layers": [{"id": "a", "type": "ReLU"}, {"id": "b", "type": "Conv"}]}',
     ["$.layers[1].type", "layer 'b'", "#2", "unknown layer type 'Conv'", "Conv2d"]),
    ('{"layers": [{"id": "fc9", "type": "Linear", "args": {"out_features": -3}}]}',
     ["$.layers[0].args.out_features", "layer 'fc9'", "out_features"]),
    ('{"layers": [{"id": "x", "type": "Linear"}]', ["not valid JSON", "line 1"]),
    ('[{"id": "class", "type": "ReLU"}]', ["$[0].id", "reserved"]),
    ('{"layers": [{"id": "a", "type": "ReLU"}, {"id": "a", "type": "ReLU"}]}', ["$.layers[1].id", "duplicate id"]),
    ('{"model": 1}', ["$.layers", "must be a list of layers"]),
])
def test_pasting_what_is_not_good_layers_says_why_and_changes_nothing(window, qtbot, text, says):
    doc = window.doc
    before, count = doc.spec.to_json(), doc.undo_stack.count()
    put_text(text)
    focus_stack(qtbot, window)
    select(qtbot, window, "conv1")
    qtbot.keyClick(window.stack, Qt.Key.Key_V, CTRL)
    message = status(window)
    assert message.startswith("Cannot paste: the clipboard")
    for part in says:
        assert part in message, (part, message)
    assert "\n" not in message and "Traceback" not in message
    assert doc.spec.to_json() == before and doc.undo_stack.count() == count and not doc.modified


def test_several_problems_are_counted_on_one_line(window, qtbot):
    put_text('{"layers": [{"id": "a", "type": "Nope"}, {"id": "b", "type": "Linear", "args": {"bias": 3}}]}')
    window.paste_layers()
    message = status(window)
    assert "$.layers[0].type" in message and "more problem" in message and "\n" not in message
    assert window.doc.undo_stack.count() == 0


def test_our_mime_type_wins_over_the_text(window, qtbot):
    data = QMimeData()
    data.setData(clipboard.LAYERS_MIME, b'{"layers": [{"id": "gelu9", "type": "GELU"}]}')
    data.setText("something else")
    QApplication.clipboard().setMimeData(data)
    window.stack.select_ids(["fc"])
    window.paste_layers()
    assert ids_of(window.doc.spec)[-1] == "gelu9"


def test_a_whole_project_file_pastes_its_layers(window, second):
    QApplication.clipboard().setText(templates.load("digits_mlp").dumps())
    second.paste_layers()
    assert ids_of(second.doc.spec) == ids_of(templates.load("digits_mlp").model)
    assert second.doc.undo_stack.count() == 1


def test_paste_that_would_nest_too_deep_is_refused(window, qtbot):
    inner: LayerSpec = LayerSpec("leaf", "ReLU")
    for n in range(MAX_DEPTH - 1):  # a block MAX_DEPTH levels deep: fine at the top level
        inner = LayerSpec(f"r{n}", "Residual", {}, layers=[inner])
    QApplication.clipboard().setText(clipboard.layers_text([inner]))
    doc = window.doc
    doc.insert_layers([LayerSpec("outer", "Residual", {}, layers=[LayerSpec("x", "ReLU")])], None, 0, "block")
    count = doc.undo_stack.count()
    window.stack.select_ids(["x"])
    window.paste_layers()
    assert "Cannot paste" in status(window) and f"at most {MAX_DEPTH} deep" in status(window)
    assert doc.undo_stack.count() == count and "leaf" not in doc.spec.ids()
    window.stack.select_ids(["fc"])
    window.paste_layers()
    assert "leaf" in doc.spec.ids()


def test_cut_is_copy_and_delete_as_one_edit(window, second, qtbot):
    doc = window.doc
    before = ids_of(doc.spec)
    focus_stack(qtbot, window)
    select(qtbot, window, "drop")
    qtbot.keyClick(window.stack, Qt.Key.Key_X, CTRL)
    assert "drop" not in doc.spec.ids() and doc.undo_stack.count() == 1
    assert doc.undo_stack.undoText() == "Cut 'drop'"
    assert window.stack.selected_ids() == ["fc"]
    second.paste_layers()
    assert ids_of(second.doc.spec) == ["drop"]
    doc.undo_stack.undo()
    assert ids_of(doc.spec) == before


def test_paste_and_cut_are_disabled_while_training_locks_the_model(window, qtbot):
    doc = window.doc
    QApplication.clipboard().setText('{"layers": [{"id": "gelu9", "type": "GELU"}]}')
    doc.set_edit_lock("training runs")
    assert not window.actions_["paste"].isEnabled() and not window.actions_["cut"].isEnabled()
    assert window.actions_["copy"].isEnabled()  # copying changes nothing
    window.stack.select_ids(["fc"])
    window.paste_layers()  # even when called directly
    assert "gelu9" not in doc.spec.ids() and "training runs" in status(window)
    window.cut_selected()
    assert "fc" in doc.spec.ids() and doc.undo_stack.count() == 0
    doc.set_edit_lock("")
    assert window.actions_["paste"].isEnabled()


def test_ctrl_c_in_the_inspectors_text_field_copies_text_not_layers(window, qtbot):
    focus_stack(qtbot, window)
    select(qtbot, window, "conv1")
    QApplication.clipboard().setText("before")
    field = window.inspector.id_edit
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    field.selectAll()
    qtbot.keyClick(field, Qt.Key.Key_C, CTRL)
    assert QApplication.clipboard().text() == "conv1"
    assert not QApplication.clipboard().mimeData().hasFormat(clipboard.LAYERS_MIME)
    # and Ctrl+V there pastes the text into the field, not layers into the model
    count = window.doc.undo_stack.count()
    field.clear()
    qtbot.keyClick(field, Qt.Key.Key_V, CTRL)
    assert field.text() == "conv1" and window.doc.undo_stack.count() == count


def test_ctrl_c_outside_the_layer_list_leaves_the_layers_alone(window, qtbot):
    focus_stack(qtbot, window)
    select(qtbot, window, "conv1")
    QApplication.clipboard().setText("before")
    tree = window.layer_palette.tree  # the palette: a list too, but of layer types
    tree.setFocus()
    qtbot.waitUntil(tree.hasFocus)
    qtbot.keyClick(tree, Qt.Key.Key_C, CTRL)
    assert not QApplication.clipboard().mimeData().hasFormat(clipboard.LAYERS_MIME)
    assert "Copied" not in status(window)


def test_the_edit_menu_lists_cut_copy_paste_with_their_keys(window):
    texts = {a.text().replace("&", ""): a.shortcut().toString() for a in window.menu("edit").actions()}
    assert texts["Cut"] == "Ctrl+X" and texts["Copy"] == "Ctrl+C" and texts["Paste"] == "Ctrl+V"
