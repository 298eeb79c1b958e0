"""Issue 13, the editor's part, as a user meets it: the selected row, the inspector and Delete
are one thing; inspector fields never move while editing; bad values say why in place and
are never half-applied; a frozen backbone shows every stage frozen; keys to move layers and
reach the inspector; columns that keep what matters in view; no freeze box on layers without
weights."""
from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QPoint, Qt
from workbench.model import catalog
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import project_file as projects, templates

from ui.editor.stack_model import ARGS, FROZEN, ID, PARAMS, SHAPE, TYPE
from window_helpers import ids_of, on_row

CTRL, ALT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.AltModifier


def click_row(qtbot, view, layer_id, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, modifier, on_row(view, layer_id))


def shown(window) -> str | None:
    return window.inspector.layer.id if window.inspector.layer is not None else None


# ---------------------------------------------------------------- problem 3
def test_ctrl_up_keeps_selection_inspector_and_delete_on_one_row(window, qtbot):
    view = window.stack
    window.activateWindow()
    click_row(qtbot, view, "drop")
    assert view.selected_ids() == ["drop"] and shown(window) == "drop"
    qtbot.keyClick(view, Qt.Key.Key_Up)  # plain arrows: selection follows
    assert view.selected_ids() == [view.current_id()] == [shown(window)] == ["flat"]
    qtbot.keyClick(view, Qt.Key.Key_Home, CTRL)  # Ctrl+Home moved the focus only, before
    assert view.selected_ids() == [view.current_id()] == [shown(window)] == ["conv1"]
    click_row(qtbot, view, "drop")
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert "drop" not in window.doc.spec.ids() and "conv1" in window.doc.spec.ids()
    assert view.selected_ids() == [shown(window)] == [view.current_id()]


def test_clicking_opened_in_history_leaves_one_selected_row_that_the_inspector_shows(window, qtbot):
    view, doc = window.stack, window.doc
    window.add_layer("ReLU")
    window.add_layer("GELU")
    assert shown(window) == "gelu_1"
    window.history.setCurrentIndex(window.history.model().index(0, 0))  # the "<opened>" row
    assert doc.undo_stack.index() == 0 and "gelu_1" not in doc.spec.ids()
    assert view.selected_ids() == [view.current_id()] == [shown(window)]
    target, count = shown(window), len(doc.spec.ids())
    window.activateWindow()
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert target not in doc.spec.ids() and len(doc.spec.ids()) == count - 1


def test_ctrl_click_off_the_shown_row_moves_the_inspector_to_a_selected_one(window, qtbot):
    view = window.stack
    click_row(qtbot, view, "conv1")
    click_row(qtbot, view, "conv2", CTRL)
    assert shown(window) == "conv2"
    click_row(qtbot, view, "conv2", CTRL)  # deselect the shown row
    assert view.selected_ids() == ["conv1"] and shown(window) == "conv1" == view.current_id()


# ---------------------------------------------------------------- problem 4
def test_fields_keep_their_place_when_the_problem_box_comes_and_goes(window, qtbot):
    window.stack.select_ids(["fc"])
    inspector = window.inspector
    out = inspector.fields["out_features"].widget
    body = inspector.widget()

    def y():
        qtbot.wait(1)
        body.layout().activate()
        return out.mapTo(body, QPoint(0, 0)).y()
    before = y()
    field = inspector.fields["in_features"].widget
    qtbot.keyClicks(field, "100")  # a wrong override: the Problem box appears
    assert inspector.problem.isVisibleTo(inspector) and "in_features" in inspector.problem.text()
    assert y() == before
    field.selectAll()
    qtbot.keyClick(field, Qt.Key.Key_Backspace)  # fixed: the box goes
    assert not inspector.problem.isVisibleTo(inspector) and y() == before


# ---------------------------------------------------------------- problem 6
def message_under(inspector, widget) -> str:
    """The message shown just under ``widget`` (in place), or ''."""
    message = inspector.message
    if not message.isVisibleTo(inspector):
        return ""
    body = inspector.widget()
    field_bottom = widget.mapTo(body, widget.rect().bottomLeft()).y()
    assert 0 <= message.y() - field_bottom <= 8, "the message is not under the field"
    return message.text()


def test_letters_and_minus_one_in_a_layer_argument_say_why_in_place(window, qtbot):
    doc, inspector = window.doc, window.inspector
    window.stack.select_ids(["conv1"])
    field = inspector.fields["kernel_size"].widget
    field.selectAll()
    qtbot.keyClicks(field, "abc")
    assert "whole numbers" in message_under(inspector, field)
    field.selectAll()
    qtbot.keyClicks(field, "-1")
    assert "at least 1" in message_under(inspector, field) or ">= 1" in message_under(inspector, field)
    assert doc.spec.find("conv1").args["kernel_size"] == 3


def test_minus_one_in_a_spin_box_is_refused_with_the_range_not_clamped_to_1(window, qtbot):
    doc, inspector = window.doc, window.inspector
    window.stack.select_ids(["conv1"])
    spin = inspector.fields["out_channels"].widget
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "-1")
    assert spin.lineEdit().text() == "-1"  # what was typed stays, in red, until it is left
    assert spin.property("invalid") is True
    text = message_under(inspector, spin)
    assert "out_channels must be 1 to 65536" in text and "-1 is not applied" in text
    assert doc.spec.find("conv1").args["out_channels"] == 32 and doc.undo_stack.count() == 0
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert doc.spec.find("conv1").args["out_channels"] == 32 and spin.value() == 32


def test_ctrl_z_in_a_field_undoes_the_model_edit_too(window, qtbot):
    """The issue's case: -1 typed (refused), then 'same' (applied); Ctrl+Z used to undo only
    the text, showing -1 while the model held 'same'."""
    doc, inspector = window.doc, window.inspector
    window.stack.select_ids(["conv1"])
    field = inspector.fields["padding"].widget
    old = doc.spec.find("conv1").args["padding"]
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, "-1")
    assert doc.spec.find("conv1").args["padding"] == old
    field.selectAll()
    qtbot.keyClicks(field, "same")
    assert doc.spec.find("conv1").args["padding"] == "same"
    qtbot.keyClick(field, Qt.Key.Key_Z, CTRL)
    assert doc.spec.find("conv1").args["padding"] == old and field.text() == str(old)
    assert field.property("invalid") is False
    qtbot.keyClick(field, Qt.Key.Key_Z, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert doc.spec.find("conv1").args["padding"] == "same" and field.text() == "same"
    field.selectAll()
    qtbot.keyClicks(field, "abc")  # refused text: Ctrl+Z first drops it, the model keeps 'same'
    qtbot.keyClick(field, Qt.Key.Key_Z, CTRL)
    assert field.text() == "same" == doc.spec.find("conv1").args["padding"]
    assert field.property("invalid") is False and not inspector.message.isVisibleTo(inspector)


def test_ctrl_z_in_a_spin_box_undoes_the_model_edit(window, qtbot):
    doc, inspector = window.doc, window.inspector
    window.stack.select_ids(["conv1"])
    spin = inspector.fields["out_channels"].widget
    spin.setFocus()
    spin.setValue(40)
    assert doc.spec.find("conv1").args["out_channels"] == 40
    qtbot.keyClick(spin, Qt.Key.Key_Z, CTRL)
    assert doc.spec.find("conv1").args["out_channels"] == 32 and spin.value() == 32
    assert spin.lineEdit().text() == "32"


def test_the_input_shape_says_why_in_place_like_the_arguments(window, qtbot):
    doc, inspector = window.doc, window.inspector
    inspector.show_layer(None)
    edit = inspector.shape_edit
    window.activateWindow()
    edit.setFocus()
    qtbot.waitUntil(edit.hasFocus)
    edit.selectAll()
    qtbot.keyClicks(edit, "1, a")
    assert edit.property("invalid") is True and "whole numbers" in message_under(inspector, edit)
    edit.selectAll()
    qtbot.keyClicks(edit, "1, 4, 4")
    assert edit.property("invalid") is False and not inspector.message.isVisibleTo(inspector)
    window.stack.setFocus()  # leaving the field applies it, as Enter does
    qtbot.waitUntil(lambda: tuple(doc.spec.input_shape) == (1, 4, 4))


# ---------------------------------------------------------------- problem 7
def open_resnet(window):
    window.doc.replace_project(templates.load("resnet18_transfer"))
    window.stack.expandAll()


def test_freezing_a_whole_backbone_checks_and_locks_every_stage(window, qtbot):
    open_resnet(window)
    doc, model = window.doc, window.stack_model
    layer4 = model.index(4, FROZEN, model.index_of("backbone"))
    assert model.index(4, ID, model.index_of("backbone")).data() == "layer4"
    assert layer4.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    assert model.flags(layer4) & Qt.ItemFlag.ItemIsUserCheckable
    doc.set_frozen("backbone", True)
    assert layer4.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert not model.flags(layer4) & Qt.ItemFlag.ItemIsUserCheckable  # changed on the backbone's row
    assert layer4.siblingAtColumn(PARAMS).data(Qt.ItemDataRole.DecorationRole) is not None  # the lock
    assert "whole of 'backbone'" in layer4.data(Qt.ItemDataRole.ToolTipRole)
    assert not model.setData(layer4, Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    stages = doc.layer_info("backbone").stages
    assert doc.info.frozen_params == sum(s.params for s in stages)  # what the status bar counts
    doc.undo_stack.undo()
    assert layer4.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked


def test_delete_on_a_backbone_stage_row_says_why_and_removes_nothing(window, qtbot):
    open_resnet(window)
    model, stack = window.stack_model, window.stack
    before = window.doc.spec.to_dict() if hasattr(window.doc.spec, "to_dict") else repr(window.doc.spec)
    layer3 = model.index(3, ID, model.index_of("backbone"))
    stack.setCurrentIndex(layer3)
    stack.selectionModel().select(layer3, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                  | QItemSelectionModel.SelectionFlag.Rows)
    stack.setFocus()
    qtbot.keyClick(stack, Qt.Key.Key_Delete)
    said = window.statusBar().currentMessage()
    assert "'layer3' is a stage of the backbone 'backbone'" in said and "select the 'backbone' row" in said
    after = window.doc.spec.to_dict() if hasattr(window.doc.spec, "to_dict") else repr(window.doc.spec)
    assert after == before and window.doc.undo_stack.count() == 0


def test_layers_inside_a_frozen_block_show_frozen_and_locked(window):
    doc, model = window.doc, window.stack_model
    doc.insert_layers([LayerSpec("block", "Residual", layers=[LayerSpec("inner", "Linear",
                                                                        {"out_features": 1024})])],
                      None, 8, "add")
    doc.set_frozen("block", True)
    cell = model.index_of("inner", FROZEN)
    assert cell.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert not model.flags(cell) & Qt.ItemFlag.ItemIsUserCheckable
    window.stack.select_ids(["inner"])
    assert window.inspector.frozen.isChecked() and not window.inspector.frozen.isEnabled()


# ---------------------------------------------------------------- problem 11
def test_ctrl_and_alt_up_down_move_the_selected_layer_and_the_menu_says_so(window, qtbot):
    doc, view = window.doc, window.stack
    window.activateWindow()
    click_row(qtbot, view, "conv2")
    before = ids_of(doc.spec)
    qtbot.keyClick(view, Qt.Key.Key_Up, CTRL)
    assert ids_of(doc.spec).index("conv2") == before.index("conv2") - 1
    assert view.selected_ids() == ["conv2"] == [shown(window)]
    qtbot.keyClick(view, Qt.Key.Key_Down, ALT)
    assert ids_of(doc.spec) == before and view.selected_ids() == ["conv2"]
    assert doc.undo_stack.undoText() == "Move 'conv2'"
    edit_menu = {a.text().replace("&", ""): a.shortcut().toString() for a in window.menu("edit").actions()}
    assert edit_menu["Move Up"] == "Ctrl+Up" and edit_menu["Move Down"] == "Ctrl+Down"
    assert edit_menu["Edit in Inspector"] == "Ctrl+I"


def test_ctrl_i_puts_the_keyboard_in_the_inspector(window, qtbot):
    window.activateWindow()
    click_row(qtbot, window.stack, "conv1")
    qtbot.keyClick(window.stack, Qt.Key.Key_I, CTRL)
    first = window.inspector.fields["in_channels"].widget
    qtbot.waitUntil(lambda: first.hasFocus())


def test_ctrl_f_selects_the_old_search_text(window, qtbot):
    search = window.layer_palette.search
    search.setText("conv")
    window.activateWindow()
    window.stack.setFocus()
    window.actions_["search"].trigger()
    assert search.hasFocus() and search.selectedText() == "conv"
    qtbot.keyClicks(search, "relu")
    assert search.text() == "relu"


# ---------------------------------------------------------------- problems 13 and 5
def test_nested_and_error_names_and_arguments_are_not_cut(window, qtbot):
    doc, view = window.doc, window.stack
    block = LayerSpec("res_block", "Residual", layers=[LayerSpec("conv_inside_block", "Conv2d",
                                                                 {"out_channels": 32, "kernel_size": 3,
                                                                  "padding": "same"}),
                                                       LayerSpec("batchnorm_inside", "BatchNorm2d")])
    doc.insert_layers([block], None, 2, "add")
    doc.set_arg("fc", "in_features", 3)  # an error row (with its icon)
    window.resize(1920, 1080)
    qtbot.wait(10)
    def fits(index) -> bool:  # the cell is as wide as its text, icon and margins need: no "conv..."
        return view.visualRect(index).width() >= view.sizeHintForIndex(index).width()
    for layer_id in ("conv_inside_block", "batchnorm_inside", "fc"):
        assert fits(view.stack_model.index_of(layer_id, ID)), layer_id
    args = view.stack_model.index_of("conv_inside_block", ARGS)
    assert "pad=same" in args.data() and fits(args)
    header = view.header()
    widths = {col: header.sectionSize(col) for col in (ID, TYPE, ARGS, SHAPE, PARAMS)}
    assert widths[ARGS] < 2 * max(widths[c] for c in (ID, TYPE, SHAPE, PARAMS))  # not all the spare room


def test_at_1024x700_output_params_and_freeze_stay_in_view(window, qtbot):
    window.resize(1024, 700)
    qtbot.wait(10)
    view, header = window.stack, window.stack.header()
    right = view.viewport().width()
    for col in (SHAPE, PARAMS, FROZEN):
        assert header.sectionViewportPosition(col) + header.sectionSize(col) <= right, col
    assert not view.horizontalScrollBar().isVisible()
    window.doc.set_arg("fc", "in_features", 3)  # an error row keeps its whole name
    index = view.stack_model.index_of("fc", ID)
    assert view.visualRect(index).width() >= view.sizeHintForIndex(index).width()
    window.stack.select_ids(["conv1"])
    spin = window.inspector.fields["out_channels"].widget
    assert spin.width() >= spin.minimumSizeHint().width()  # not cut: the arrows show


# ---------------------------------------------------------------- problem 18
def test_no_freeze_box_on_layers_without_weights(window):
    model = window.stack_model
    for layer_id in ("relu1", "pool1", "flat", "drop"):
        cell = model.index_of(layer_id, FROZEN)
        assert cell.data(Qt.ItemDataRole.CheckStateRole) is None, layer_id
        assert not model.flags(cell) & Qt.ItemFlag.ItemIsUserCheckable
    assert model.index_of("conv1", FROZEN).data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Unchecked
    window.stack.select_ids(["relu1"])
    assert not window.inspector.frozen.isVisibleTo(window.inspector)
    window.stack.select_ids(["conv1"])
    assert window.inspector.frozen.isVisibleTo(window.inspector)
    window.stack.select_ids(["bn1"])  # a BatchNorm without affine weights has nothing to freeze
    window.inspector.fields["affine"].widget.setChecked(False)
    assert model.index_of("bn1", FROZEN).data(Qt.ItemDataRole.CheckStateRole) is None
    assert not window.inspector.frozen.isVisibleTo(window.inspector)


def test_maxpool2d_help_matches_the_kernel_it_is_added_with(window):
    kernel = catalog.kind("MaxPool2d").starter_args()["kernel_size"]
    assert f"kernel {kernel}, as it is added" in catalog.kind("MaxPool2d").help
    layer_id = window.doc.insert_kind("MaxPool2d")
    assert window.doc.spec.find(layer_id).args["kernel_size"] == kernel


def test_a_weightless_layer_frozen_in_a_file_keeps_its_box_to_unfreeze(window):
    layers = [LayerSpec("flat", "Flatten", frozen=True), LayerSpec("fc", "Linear", {"out_features": 2})]
    window.doc.replace_project(projects.new("x", ModelSpec((1, 8, 8), layers)))
    cell = window.stack_model.index_of("flat", FROZEN)
    assert cell.data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert window.stack_model.flags(cell) & Qt.ItemFlag.ItemIsUserCheckable


def test_ctrl_z_in_the_id_field_drops_a_name_not_applied_yet(window, qtbot):
    doc, inspector = window.doc, window.inspector
    doc.insert_kind("ReLU")
    window.stack.select_ids(["fc"])
    edit = inspector.id_edit
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, "head")  # not applied until Enter
    qtbot.keyClick(edit, Qt.Key.Key_Z, CTRL)
    assert edit.text() == "fc" and "relu_1" in doc.spec.ids()  # the text went back, the model kept its edit
    qtbot.keyClick(edit, Qt.Key.Key_Z, CTRL)
    assert "relu_1" not in doc.spec.ids()
