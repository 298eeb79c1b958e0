"""One-click fixes (issue 13, "Add"): an error whose fix is mechanical gets a button in the
inspector's Problem box and in the status bar, and the error row in the stack names the fix in
its tooltip and offers it first in its context menu and on Ctrl+. (Edit > Apply Fix). Each
applies the fix as ONE undoable edit named by it; the error goes, and Ctrl+Z brings back the
exact spec."""
from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from workbench.model.spec import LayerSpec
from workbench.project import templates

from ui.editor.stack_model import SHAPE
from ui.editor.stack_model import ID as ID_COLUMN
from window_helpers import text_of

CTRL = Qt.KeyboardModifier.ControlModifier


def open_model(window, edit) -> None:
    """Show the digits CNN template after ``edit(project)`` broke it: a fresh history."""
    project = templates.load("digits_cnn")
    edit(project)
    window.doc.replace_project(project)
    assert window.doc.undo_stack.count() == 0


def spec_json(window) -> str:
    return json.dumps(window.doc.spec.to_json(), sort_keys=True)


def shape(window, layer_id) -> str:
    return window.stack.stack_model.index_of(layer_id, SHAPE).data()


def one_edit_named(window, label) -> None:
    stack = window.doc.undo_stack
    assert stack.count() == 1 and stack.undoText() == label


def drop_flatten(project) -> None:
    project.model.layers = [x for x in project.model.layers if x.id != "flat"]


def test_the_inspector_button_inserts_flatten_before_fc_and_undo_restores(window, qtbot):
    open_model(window, drop_flatten)
    before = spec_json(window)
    assert shape(window, "fc") == "error"
    window.stack.select_ids(["fc"])
    button = window.inspector.fix_button
    assert button.isVisibleTo(window.inspector) and button.full_text() == "Insert Flatten before 'fc'"
    assert "insert Flatten before it" in window.inspector.problem.text()  # the words stay
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert window.doc.layer_info("fc").error is None
    assert shape(window, "flatten_1") == "(1024,)" and shape(window, "fc") == "(10,)"
    assert [x.id for x in window.doc.spec.layers][-3:] == ["drop", "flatten_1", "fc"]
    one_edit_named(window, "Insert Flatten before 'fc'")
    assert not window.inspector.problem.isVisibleTo(window.inspector)
    assert not window.inspector.fix_button.isVisibleTo(window.inspector)
    assert window.stack.current_id() == "fc"  # the row fixed stays the one shown
    window.doc.undo_stack.undo()
    assert spec_json(window) == before and shape(window, "fc") == "error"
    assert window.inspector.fix_button.isVisibleTo(window.inspector)


def test_the_status_bar_button_sets_in_features_from_the_incoming_shape(window, qtbot):
    open_model(window, lambda p: p.model.find("fc").args.update(in_features=100))
    before = spec_json(window)
    summary = window.summary
    assert text_of(summary.status) == "⚠ 'fc' (row 9) cannot work"
    button = summary.fix_button
    assert button.isVisibleTo(summary) and button.text() == "Fix" and button.full_text() == "Set in_features to 1024"
    assert button.toolTip().startswith("Fix: Set in_features to 1024")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert window.doc.spec.find("fc").args["in_features"] == 1024 and window.doc.info.ok
    assert shape(window, "fc") == "(10,)" and "all shapes fit" in text_of(summary.status)
    assert not button.isVisibleTo(summary)
    one_edit_named(window, "Set in_features to 1024")
    window.doc.undo_stack.undo()
    assert spec_json(window) == before and button.isVisibleTo(summary)


def test_in_channels_of_a_conv_follow_the_layer_above(window, qtbot):
    open_model(window, lambda p: p.model.find("conv2").args.update(in_channels=3))
    window.stack.select_ids(["conv2"])
    assert window.inspector.fix_button.full_text() == "Set in_channels to 32"
    qtbot.mouseClick(window.inspector.fix_button, Qt.MouseButton.LeftButton)
    assert window.doc.info.ok and window.doc.spec.find("conv2").args["in_channels"] == 32
    one_edit_named(window, "Set in_channels to 32")


def focus_stack(qtbot, window) -> None:
    window.activateWindow()
    window.raise_()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    window.stack.setFocus()
    qtbot.waitUntil(window.stack.hasFocus)


def residual_that_widens(project) -> None:
    """A block whose layers turn 64 channels into 128: x + f(x) cannot be added."""
    layers = project.model.layers
    at = [x.id for x in layers].index("pool1")
    layers.insert(at, LayerSpec("res", "Residual", {}, layers=[
        LayerSpec("res_conv", "Conv2d", {"out_channels": 128, "kernel_size": 3, "padding": 1})]))


def test_the_stack_row_names_the_fix_and_applies_it_from_its_menu_and_ctrl_dot(window, qtbot):
    open_model(window, residual_that_widens)
    before = spec_json(window)
    view = window.stack
    tip = view.stack_model.index_of("res", ID_COLUMN).data(Qt.ItemDataRole.ToolTipRole)
    assert "One-click fix:</b> Set projection to auto" in tip
    view.select_ids(["res"])
    action = view.fix_action
    assert view.actions()[0] is action  # first in the row's context menu
    assert action.isEnabled() and action.text() == "Fix: Set projection to auto"
    assert action in window.menu("edit").actions() and action.shortcut().toString() == "Ctrl+."
    focus_stack(qtbot, window)
    qtbot.keyClick(view, Qt.Key.Key_Period, CTRL)
    assert window.doc.spec.find("res").args["projection"] == "auto" and window.doc.info.ok
    assert shape(window, "res") == "(128, 8, 8)" and shape(window, "fc") == "(10,)"
    one_edit_named(window, "Set projection to auto")
    assert not action.isEnabled() and action.text() == "Apply Fix"
    qtbot.keyClick(view, Qt.Key.Key_Z, CTRL)
    assert spec_json(window) == before and action.text() == "Fix: Set projection to auto"
    action.trigger()  # as the context menu does
    assert window.doc.info.ok
    one_edit_named(window, "Set projection to auto")


def test_match_the_model_input_to_the_data(window, qtbot):
    open_model(window, lambda p: setattr(p.model, "input_shape", (1, 16, 16)))
    before = spec_json(window)
    panel = window.training.panel
    panel.probe.wait()
    assert window.doc.info.ok and "does not fit this data" in text_of(panel.task_label)
    assert window.stack.current_id() is None  # the inspector shows the model input
    inspector = window.inspector
    assert inspector.problem.isVisibleTo(inspector)
    assert "the model input is (1, 16, 16) but the data" in text_of(inspector.problem)
    assert inspector.fix_button.full_text() == "Match the model input to the data (1, 8, 8)"
    summary = window.summary
    assert "the model does not fit the data" in text_of(summary.status)
    assert summary.fix_button.full_text() == "Match the model input to the data (1, 8, 8)"
    qtbot.mouseClick(inspector.fix_button, Qt.MouseButton.LeftButton)
    assert tuple(window.doc.spec.input_shape) == (1, 8, 8)
    one_edit_named(window, "Match the model input to the data (1, 8, 8)")
    assert not inspector.problem.isVisibleTo(inspector) and not summary.fix_button.isVisibleTo(summary)
    panel.probe.wait()
    assert "the model fits this data" in text_of(panel.task_label)
    window.doc.undo_stack.undo()
    assert spec_json(window) == before
    panel.probe.wait()
    assert summary.fix_button.isVisibleTo(summary)


def test_a_softmax_before_cross_entropy_is_removed_from_its_own_inspector(window, qtbot):
    def softmax_last(project):
        project.model.layers.append(LayerSpec("softmax", "Softmax", {"dim": -1}))
    open_model(window, softmax_last)
    before = spec_json(window)
    window.training.panel.probe.wait()
    window.stack.select_ids(["softmax"])
    button = window.inspector.fix_button
    assert button.full_text() == "Remove 'softmax'"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)  # the button's own page goes with the layer
    assert window.doc.spec.find("softmax") is None
    one_edit_named(window, "Remove 'softmax'")
    window.training.panel.probe.wait()
    assert "the model fits this data" in text_of(window.training.panel.task_label)
    window.doc.undo_stack.undo()
    assert spec_json(window) == before


def test_a_locked_model_refuses_the_fix_and_says_why(window, qtbot):
    open_model(window, drop_flatten)
    before = spec_json(window)
    window.doc.set_edit_lock("training runs")
    try:
        assert not window.stack.fix_action.isEnabled()
        qtbot.mouseClick(window.summary.fix_button, Qt.MouseButton.LeftButton)
        assert spec_json(window) == before and window.doc.undo_stack.count() == 0
        assert "cannot change while training runs" in window.summary.message.text()
    finally:
        window.doc.set_edit_lock("")


def test_problems_that_are_choices_get_no_button(window, qtbot):
    open_model(window, lambda p: p.model.find("conv2").args.update(padding="same", stride=2))
    window.stack.select_ids(["conv2"])
    assert window.inspector.problem.isVisibleTo(window.inspector)
    assert not window.inspector.fix_button.isVisibleTo(window.inspector)
    assert not window.summary.fix_button.isVisibleTo(window.summary)
    assert not window.stack.fix_action.isEnabled()


def test_selecting_a_broken_layer_in_a_short_window_scrolls_its_fix_into_view(window, qtbot):
    window.resize(1024, 700)  # the inspector dock is short: the Problem box sits below the fields
    qtbot.wait(50)
    open_model(window, lambda p: p.model.find("conv2").args.update(in_channels=3))
    window.stack.select_ids(["conv2"])
    inspector = window.inspector
    button = inspector.fix_button
    assert button.isVisibleTo(inspector)

    def shown() -> bool:
        top = button.mapTo(inspector.widget(), button.rect().topLeft()).y() - inspector.verticalScrollBar().value()
        return 0 <= top and top + button.height() <= inspector.viewport().height()
    qtbot.waitUntil(shown)
    window.stack.select_ids(["fc"])  # a layer without a problem: its page starts at the top
    qtbot.wait(20)
    assert inspector.verticalScrollBar().value() == 0
