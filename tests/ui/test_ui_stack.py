"""The stack and the palette, driven the way a user drives them: drag events delivered to the
stack's viewport, keys, check boxes, double-clicks; assertions on the spec and on what the
rows show."""
from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush

from workbench.model.spec import LayerSpec

from ui.editor.palette import kind_mime
from ui.editor.stack_model import FROZEN, ID, PARAMS, SHAPE, TYPE
from window_helpers import above, below, deliver_drop, empty_area, ids_of, on_row, text_of


def test_palette_drop_on_empty_space_appends_and_selects_it(window):
    view = window.stack
    deliver_drop(view, kind_mime("ReLU"), empty_area(view))
    assert ids_of(window.doc.spec)[-1] == "relu_1"
    assert view.current_id() == "relu_1" and window.inspector.layer.id == "relu_1"
    assert window.doc.undo_stack.undoText() == "Add ReLU 'relu_1'"


def test_palette_drop_above_and_below_a_row_inserts_there(window):
    view = window.stack
    deliver_drop(view, kind_mime("Dropout"), above(view, "flat"))
    deliver_drop(view, kind_mime("BatchNorm2d"), below(view, "conv2"))
    ids = ids_of(window.doc.spec)
    assert ids.index("dropout_1") == ids.index("flat") - 1
    assert ids.index("batchnorm2d_1") == ids.index("conv2") + 1
    assert window.doc.layer_info("batchnorm2d_1").out_shape == (64, 8, 8)


def test_drop_onto_a_residual_block_puts_the_layer_inside(window):
    doc, view = window.doc, window.stack
    doc.insert_layers([LayerSpec("block", "Residual")], None, 3, "add block")
    deliver_drop(view, kind_mime("Conv2d"), on_row(view, "block"))
    assert [c.id for c in doc.spec.find("block").layers] == ["conv2d_1"]
    # a 3x3 conv without padding shrinks the map, so x + f(x) cannot be added: marked
    assert doc.layer_info("block").error is not None
    doc.set_arg("conv2d_1", "padding", 1)
    doc.set_arg("conv2d_1", "out_channels", 32)
    assert doc.layer_info("block").error is None


def test_dragging_rows_reorders_through_one_undoable_move(window):
    doc, view, model = window.doc, window.stack, window.stack.stack_model
    before = ids_of(doc.spec)
    mime = model.mimeData([model.index_of("drop"), model.index_of("pool1")])
    drop = deliver_drop(view, mime, above(view, "conv1"), Qt.DropAction.MoveAction)
    assert ids_of(doc.spec)[:3] == ["pool1", "drop", "conv1"]
    assert len(ids_of(doc.spec)) == len(before)  # moved, not copied, not deleted
    assert not drop.isAccepted()  # so the source view never removes rows itself
    assert doc.undo_stack.undoText() == "Move 2 layers"
    doc.undo_stack.undo()
    assert ids_of(doc.spec) == before


def test_a_block_cannot_be_dropped_into_itself(window):
    doc, view, model = window.doc, window.stack, window.stack.stack_model
    doc.insert_layers([LayerSpec("block", "Residual", layers=[LayerSpec("inner", "ReLU")])], None, 0, "add")
    view.expandAll()
    count = doc.undo_stack.count()
    deliver_drop(view, model.mimeData([model.index_of("block")]), on_row(view, "inner"), Qt.DropAction.MoveAction)
    assert doc.undo_stack.count() == count and ids_of(doc.spec)[0] == "block"


def test_delete_and_ctrl_d_on_the_stack(window, qtbot):
    doc, view = window.doc, window.stack
    view.setFocus()
    view.select_ids(["relu1", "relu2"])
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert "relu1" not in doc.spec.ids() and "relu2" not in doc.spec.ids()
    assert view.current_id() is not None  # the next row is selected, ready for another Delete
    view.select_ids(["conv2"])
    qtbot.keyClick(view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert ids_of(doc.spec)[ids_of(doc.spec).index("conv2") + 1] == "conv2_1"
    assert view.selected_ids() == ["conv2_1"]


def test_delete_in_a_text_field_edits_text_not_the_model(window, qtbot):
    window.stack.select_ids(["conv1"])
    field = window.inspector.fields["kernel_size"].widget
    field.setFocus()
    field.setCursorPosition(0)
    layers = len(window.doc.spec.layers)
    qtbot.keyClick(field, Qt.Key.Key_Delete)
    assert len(window.doc.spec.layers) == layers


def test_context_menu_offers_the_stack_actions(window):
    texts = [a.text().replace("&", "") for a in window.stack.actions()]
    assert {"Delete", "Duplicate", "Freeze / Unfreeze", "Rename"} <= set(texts)


def test_freeze_check_box_is_an_undoable_command(window):
    doc, model = window.doc, window.stack.stack_model
    cell = model.index_of("fc", FROZEN)
    assert model.flags(cell) & Qt.ItemFlag.ItemIsUserCheckable
    assert model.setData(cell, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert doc.spec.find("fc").frozen and doc.info.frozen_params == 10250
    assert cell.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    doc.undo_stack.undo()
    assert not doc.spec.find("fc").frozen and doc.info.frozen_params == 0


def test_a_broken_row_is_marked_and_says_how_to_fix_it(window):
    doc, view, model = window.doc, window.stack, window.stack.stack_model
    deliver_drop(view, kind_mime("Linear"), above(view, "flat"))
    broken = model.index_of("linear_1")
    tip = broken.siblingAtColumn(TYPE).data(Qt.ItemDataRole.ToolTipRole)
    assert "receives a 3-D feature map" in tip and "insert Flatten before it" in tip
    assert isinstance(broken.siblingAtColumn(SHAPE).data(Qt.ItemDataRole.BackgroundRole), QBrush)
    assert broken.data(Qt.ItemDataRole.DecorationRole) is not None  # the error icon by the id
    assert broken.siblingAtColumn(SHAPE).data() == "error"
    later = model.index_of("fc", SHAPE)
    assert later.data() == "unknown" and "linear_1" in later.data(Qt.ItemDataRole.ToolTipRole)
    assert text_of(window.summary.status) == "⚠ 'linear_1' (row 7) cannot work"
    # following the tooltip: move the Linear after Flatten
    mime = model.mimeData([broken])
    deliver_drop(view, mime, below(view, "flat"), Qt.DropAction.MoveAction)
    assert doc.info.ok and model.index_of("fc", SHAPE).data() == "(10,)"
    assert model.index_of("linear_1", SHAPE).data() == "(10,)"


def test_summary_link_selects_the_broken_row(window):
    window.doc.set_arg("fc", "in_features", 7)
    window.summary.status.linkActivated.emit("fc")
    assert window.stack.current_id() == "fc"
    assert "remove in_features" in window.inspector.problem.text()


def test_rename_in_the_row(window):
    model = window.stack.stack_model
    assert model.setData(model.index_of("fc", ID), "head")
    assert "head" in window.doc.spec.ids()
    assert not model.setData(model.index_of("head", ID), "conv1")  # taken: refused, said why
    assert "already used" in window.statusBar().currentMessage()


def test_palette_groups_search_and_help(window, qtbot):
    palette = window.layer_palette
    assert palette.tree.topLevelItemCount() >= 8
    assert "sliding window" in palette.item("MaxPool2d").toolTip(0)
    qtbot.keyClicks(palette.search, "norm")
    assert set(palette.visible_kinds()) == {"BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm",
                                            "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "RMSNorm",
                                            "LocalResponseNorm", "CrossMapLRN2d"}  # the Normalization group
    palette.search.clear()
    qtbot.keyClicks(palette.search, "maxpool2d")
    window.stack.select_ids(["relu2"])
    qtbot.keyClick(palette.search, Qt.Key.Key_Return)
    ids = ids_of(window.doc.spec)
    assert ids[ids.index("relu2") + 1] == "maxpool2d_1"


def test_palette_double_click_adds_after_the_selection(window, qtbot):
    window.stack.select_ids(["conv1"])
    tree = window.layer_palette.tree
    item = window.layer_palette.item("GELU")
    tree.scrollToItem(item)
    pos = tree.visualItemRect(item).center()
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=pos)  # a double-click's first press
    qtbot.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert ids_of(window.doc.spec)[1] == "gelu_1"
    assert window.stack.current_id() == "gelu_1"


def test_palette_enter_on_an_item_adds_it(window, qtbot):
    tree = window.layer_palette.tree
    tree.setFocus()
    tree.setCurrentItem(window.layer_palette.item("Softmax"))
    qtbot.keyClick(tree, Qt.Key.Key_Return)
    assert ids_of(window.doc.spec)[-1] == "softmax_1"


def test_palette_drag_carries_the_layer_type(window):
    mime = window.layer_palette.tree.mimeData([window.layer_palette.item("Conv2d")])
    assert json.loads(bytes(mime.data("application/x-workbench-layer")).decode()) == {"type": "Conv2d"}


def test_dropping_plain_text_does_nothing(window):
    from PySide6.QtCore import QMimeData

    mime = QMimeData()
    mime.setText("Conv2d")
    count = window.doc.undo_stack.count()
    deliver_drop(window.stack, mime, empty_area(window.stack))
    assert window.doc.undo_stack.count() == count


def test_a_200_layer_stack_updates_every_row_after_an_edit(window):
    doc, model = window.doc, window.stack.stack_model
    layers = [LayerSpec(f"fc{i}", "Linear", {"out_features": 8}) for i in range(200)]
    doc.insert_layers([LayerSpec("flat0", "Flatten")] + layers, None, None, "many")
    doc.set_arg("fc100", "out_features", 16)
    assert model.index_of("fc100", SHAPE).data() == "(16,)"
    assert doc.layer_info("fc101").in_shape == (16,)
    assert model.index_of("fc199", SHAPE).data() == "(8,)"


def test_edit_menu_says_what_undo_and_redo_will_do(window):
    actions = window.actions_
    assert not actions["undo"].isEnabled()
    window.doc.insert_kind("ReLU")
    assert actions["undo"].text() == "&Undo Add ReLU 'relu_1'" and actions["undo"].isEnabled()
    actions["undo"].trigger()
    assert actions["redo"].text() == "&Redo Add ReLU 'relu_1'" and "relu_1" not in window.doc.spec.ids()


def test_freeze_action_toggles_the_selection_as_one_step(window):
    window.stack.select_ids(["conv1", "conv2"])
    window.actions_["freeze"].trigger()
    assert window.doc.spec.find("conv1").frozen and window.doc.spec.find("conv2").frozen
    assert window.doc.undo_stack.undoText() == "Freeze 2 layers"
    window.actions_["freeze"].trigger()
    assert not window.doc.spec.find("conv1").frozen


def test_rename_action_opens_the_id_editor(window, qtbot):
    window.stack.select_ids(["fc"])
    from PySide6.QtWidgets import QAbstractItemView, QLineEdit

    window.actions_["rename"].trigger()
    assert window.stack.state() == QAbstractItemView.State.EditingState
    (editor,) = window.stack.viewport().findChildren(QLineEdit)
    assert editor.text() == "fc"
    editor.selectAll()
    qtbot.keyClicks(editor, "head")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits on the next event-loop turn
    qtbot.waitUntil(lambda: "head" in window.doc.spec.ids())


def test_a_locked_model_refuses_drops_and_undo_but_takes_freezing(window):
    from PySide6.QtWidgets import QAbstractItemView

    doc = window.doc
    doc.insert_kind("ReLU")
    doc.set_edit_lock("training runs")
    assert not window.actions_["undo"].isEnabled() and not window.actions_["delete"].isEnabled()
    assert window.stack.dragDropMode() == QAbstractItemView.DragDropMode.NoDragDrop
    window.stack.select_ids(["conv1"])
    window.actions_["freeze"].trigger()
    assert doc.spec.find("conv1").frozen
    window.add_layer("GELU")
    assert "gelu_1" not in doc.spec.ids() and "stop it first" in window.statusBar().currentMessage()
    doc.set_edit_lock("")
    assert window.actions_["undo"].isEnabled()
    assert window.stack.dragDropMode() == QAbstractItemView.DragDropMode.DragDrop


def test_f8_goes_to_the_first_problem_and_ctrl_l_freezes(window, qtbot):
    window.doc.set_arg("fc", "in_features", 3)
    window.activateWindow()
    window.stack.setFocus()
    qtbot.keyClick(window.stack, Qt.Key.Key_F8)
    assert window.stack.current_id() == "fc" and window.stack.selected_ids() == ["fc"]
    qtbot.keyClick(window.stack, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.doc.spec.find("fc").frozen


def test_an_argument_edit_repaints_only_the_rows_it_changed(window, qtbot):
    """Changing one Linear's width changes its own shape and the next layer's parameter count;
    the other rows on screen keep their cells, and the view is told about just those two."""
    from workbench.model.spec import ModelSpec
    from workbench.project import project_file as projects

    layers = [LayerSpec("flat", "Flatten")] + [LayerSpec(f"fc{i}", "Linear", {"out_features": 32}) for i in range(40)]
    window.doc.replace_project(projects.new("long", ModelSpec((1, 8, 8), layers)))
    window.stack.select_ids(["fc10"])
    qtbot.wait(50)  # the view paints, asking for the rows on screen
    model = window.stack_model
    before = {i: shape_at(model, i) for i in range(model.rowCount())}
    reported = []
    model.dataChanged.connect(lambda a, b, roles: reported.extend(range(a.row(), b.row() + 1)))
    window.doc.set_arg("fc10", "out_features", 16)
    assert sorted(set(reported)) == [11, 12]  # fc10 (row 11) and fc11, whose input got narrower
    assert shape_at(model, 11) == "(16,)" and before[11] == "(32,)"
    assert model.index(12, PARAMS).data() == "544"  # 16 * 32 + 32
    assert "544 parameters" in model.index(12, 0).data(Qt.ItemDataRole.ToolTipRole)
    assert all(shape_at(model, i) == before[i] for i in before if i != 11)
    window.doc.undo_stack.undo()
    assert shape_at(model, 11) == before[11]
    window.stack.scrollToBottom()  # rows out of sight forget their cells; edits there still show
    qtbot.wait(50)
    window.doc.set_arg("fc39", "out_features", 8)
    window.doc.set_arg("fc10", "out_features", 4)  # off screen now
    window.stack.scrollToTop()
    qtbot.wait(50)
    assert shape_at(model, 11) == "(4,)" and model.index(12, PARAMS).data() == "160"
    assert shape_at(model, 40) == "(8,)"


def shape_at(model, row: int) -> str:
    return model.index(row, SHAPE).data()


def test_rows_in_a_frozen_block_show_a_locked_box_that_follows_moves_and_undo(window):
    """A layer inside a frozen Residual is frozen with it: its Freeze cell is checked, locked and
    names the block, from the moment it is dropped in until it is moved out or the block thaws."""
    from ui.editor.stack_cells import freeze_box

    doc, model = window.doc, window.stack.stack_model
    doc.insert_layers([LayerSpec("block", "Residual", layers=[LayerSpec("inner", "Conv2d", {"out_channels": 32,
                                                                                          "padding": 1})])],
                      None, 3, "add block")
    node = lambda layer_id: doc.spec.find(layer_id)  # noqa: E731
    assert freeze_box(doc, node("inner")) == "box"
    doc.set_frozen("block", True)
    assert freeze_box(doc, node("inner")) == "locked"
    assert "Frozen with the block 'block'" in model.index_of("inner", FROZEN).data(Qt.ItemDataRole.ToolTipRole)
    doc.move(["conv2"], "block", None)  # into the frozen block: locked at once
    assert freeze_box(doc, node("conv2")) == "locked"
    doc.undo_stack.undo()  # out again
    assert freeze_box(doc, node("conv2")) == "box"
    doc.set_frozen("block", False)
    assert freeze_box(doc, node("inner")) == "box"
    doc.undo_stack.undo()
    assert freeze_box(doc, node("inner")) == "locked"


def test_the_layer_column_widens_for_a_longer_name_once_edits_pause(window, qtbot):
    from ui.editor.stack_view import FIT_AFTER_EDIT_MS

    view = window.stack
    long_name = "a_much_longer_layer_name_than_before"
    need = view.fontMetrics().horizontalAdvance(long_name)
    assert view.columnWidth(ID) < need
    window.doc.rename("fc", long_name)
    assert view.columnWidth(ID) < need  # not inside the edit's own frame
    qtbot.waitUntil(lambda: view.columnWidth(ID) >= need, timeout=FIT_AFTER_EDIT_MS + 2000)
