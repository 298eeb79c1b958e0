"""The inspector form is generated from the catalog, applies every change at once as an
undoable edit, and follows the model back (undo) without recording anything new."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from workbench.model import catalog

from ui.editor.stack_model import SHAPE


def shape_cell(window, layer_id):
    return window.stack.stack_model.index_of(layer_id, SHAPE).data()


def test_the_form_has_a_fitting_widget_per_argument(window):
    window.stack.select_ids(["conv1"])
    fields = window.inspector.fields
    assert set(fields) == {p.name for p in catalog.kind("Conv2d").params}
    out = fields["out_channels"].widget
    assert isinstance(out, QSpinBox) and (out.minimum(), out.maximum()) == (1, 65536) and out.value() == 32
    assert isinstance(fields["bias"].widget, QCheckBox) and fields["bias"].widget.isChecked()
    assert isinstance(fields["padding_mode"].widget, QComboBox)
    assert isinstance(fields["kernel_size"].widget, QLineEdit) and fields["kernel_size"].widget.text() == "3"
    inferred = fields["in_channels"].widget
    assert inferred.text() == "" and inferred.placeholderText() == "auto (1)"
    window.stack.select_ids(["drop"])
    p = window.inspector.fields["p"].widget
    assert isinstance(p, QDoubleSpinBox) and (p.minimum(), p.maximum(), p.value()) == (0.0, 1.0, 0.25)


def test_a_spin_box_change_reinfers_at_once_and_undo_follows_back(window, qtbot):
    doc = window.doc
    window.stack.select_ids(["conv2"])
    spin = window.inspector.fields["out_channels"].widget
    spin.setValue(16)
    assert shape_cell(window, "conv2") == "(16, 8, 8)"
    assert shape_cell(window, "flat") == "(256,)"
    assert window.inspector.fields["out_channels"].widget is spin  # not rebuilt under the user
    assert "(16, 8, 8)" in window.inspector.flow.text()
    count = doc.undo_stack.count()
    doc.undo_stack.undo()
    assert spin.value() == 64 and shape_cell(window, "flat") == "(1024,)"
    assert doc.undo_stack.count() == count  # showing the old value recorded nothing


def test_list_text_applies_when_valid_and_says_why_when_not(window, qtbot):
    doc = window.doc
    window.stack.select_ids(["conv1"])
    field = window.inspector.fields["kernel_size"].widget
    field.selectAll()
    qtbot.keyClicks(field, "3, 1")
    assert doc.spec.find("conv1").args["kernel_size"] == (3, 1)
    assert shape_cell(window, "conv1") == "(32, 8, 10)"
    count = doc.undo_stack.count()
    field.selectAll()
    qtbot.keyClicks(field, "q")
    assert doc.spec.find("conv1").args["kernel_size"] == (3, 1) and doc.undo_stack.count() == count
    assert field.property("invalid") is True
    assert "whole numbers" in window.inspector.message.text()


def test_overriding_an_inferred_size_wrongly_shows_the_fix_and_clearing_it_fixes(window, qtbot):
    doc = window.doc
    window.stack.select_ids(["fc"])
    field = window.inspector.fields["in_features"].widget
    assert field.placeholderText() == "auto (1024)"
    qtbot.keyClicks(field, "100")
    assert doc.layer_info("fc").error is not None
    problem = window.inspector.problem
    assert problem.isVisibleTo(window.inspector) and "remove in_features to infer it" in problem.text()
    field.selectAll()
    qtbot.keyClick(field, Qt.Key.Key_Backspace)  # an empty field means: infer it again
    assert "in_features" not in doc.spec.find("fc").args and doc.info.ok
    assert not problem.isVisibleTo(window.inspector)


def test_rename_from_the_id_field(window, qtbot):
    window.stack.select_ids(["fc"])
    edit = window.inspector.id_edit
    edit.selectAll()
    qtbot.keyClicks(edit, "classifier")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert "classifier" in window.doc.spec.ids()
    assert window.inspector.layer.id == "classifier"  # still the same layer on show
    edit.selectAll()
    qtbot.keyClicks(edit, "conv1")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert "already used" in window.inspector.message.text()
    assert "classifier" in window.doc.spec.ids()


def test_freeze_box_in_the_inspector(window):
    window.stack.select_ids(["conv1"])
    window.inspector.frozen.setChecked(True)
    assert window.doc.spec.find("conv1").frozen
    assert window.doc.undo_stack.undoText() == "Freeze 'conv1'"


def test_without_a_selection_it_edits_the_model_input(window, qtbot):
    doc = window.doc
    window.inspector.show_layer(None)
    edit = window.inspector.shape_edit
    assert edit.text() == "1, 8, 8"
    edit.selectAll()
    qtbot.keyClicks(edit, "1, 16, 16")
    assert tuple(doc.spec.input_shape) == (1, 8, 8)  # a half-typed shape is not applied
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert tuple(doc.spec.input_shape) == (1, 16, 16)
    assert shape_cell(window, "flat") == "(4096,)"
    assert "(1, 16, 16)" in window.summary.shapes.text()
    doc.undo_stack.undo()
    assert tuple(doc.spec.input_shape) == (1, 8, 8) and edit.text() == "1, 8, 8"


def test_deleting_the_shown_layer_moves_the_form_on(window):
    window.stack.select_ids(["fc"])
    window.doc.remove(["fc"])
    assert window.inspector.layer.id == window.stack.current_id() == "drop"
    window.doc.remove([layer.id for layer in window.doc.spec.layers])
    assert window.inspector.layer is None and "Model input" in window.inspector.title.text()


def test_small_floats_read_and_type_in_scientific_notation(window, qtbot):
    window.doc.insert_kind("LayerNorm", None, 7)
    window.stack.select_ids(["layernorm_1"])
    eps = window.inspector.fields["eps"].widget
    assert eps.text() == "1e-05"
    eps.lineEdit().selectAll()
    qtbot.keyClicks(eps.lineEdit(), "1e-3")
    qtbot.keyClick(eps.lineEdit(), Qt.Key.Key_Return)
    assert window.doc.spec.find("layernorm_1").args["eps"] == 0.001


def test_a_generated_kinds_form_takes_a_nullable_true_false_as_text(window, qtbot):
    """Upsample's align_corners is true, false or torch's None ('default'): a text field that
    applies 'true', refuses other words under the field, and leaves the model unchanged then."""
    doc = window.doc
    new_id = doc.insert_kind("Upsample", row=1)
    window.stack.select_ids([new_id])
    fields = window.inspector.fields
    assert set(fields) == {p.name for p in catalog.kind("Upsample").params}
    assert fields["align_corners"].widget.placeholderText() == "default"
    fields["mode"].widget.setCurrentText("bilinear")
    field = fields["align_corners"].widget
    field.selectAll()
    qtbot.keyClicks(field, "true")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    assert doc.spec.find(new_id).args["align_corners"] is True
    assert shape_cell(window, new_id) == "(32, 16, 16)"
    field.selectAll()
    qtbot.keyClicks(field, "yes")
    qtbot.keyClick(field, Qt.Key.Key_Return)
    assert doc.spec.find(new_id).args["align_corners"] is True
    assert "true, false or none" in window.inspector.message.text()
