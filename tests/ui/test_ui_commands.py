"""Every edit is one undoable command: undo restores the exact project, redo the edit, and
the stack's Qt model mirrors the spec after each step (checked by Qt's model tester)."""
from __future__ import annotations

import json

import pytest
from PySide6.QtTest import QAbstractItemModelTester

from workbench.project import project_file as projects
from workbench.errors import WorkbenchError
from workbench.model.spec import LayerSpec, ModelSpec

from ui.document.commands import UNSET
from ui.document.project_document import ProjectDocument
from ui.editor.stack_model import ID, StackModel
from window_helpers import shown_rows


def make_doc() -> ProjectDocument:
    model = projects.loads(json.dumps({
        "format": "model-workbench/project", "version": 1, "name": "t",
        "model": {"input": {"shape": [1, 8, 8]}, "layers": [
            {"id": "conv1", "type": "Conv2d", "args": {"out_channels": 8, "kernel_size": 3, "padding": 1}},
            {"id": "relu1", "type": "ReLU"},
            {"id": "res", "type": "Residual", "layers": [
                {"id": "rconv", "type": "Conv2d", "args": {"out_channels": 8, "kernel_size": 3, "padding": 1}},
                {"id": "rrelu", "type": "ReLU"}]},
            {"id": "flat", "type": "Flatten"},
            {"id": "fc", "type": "Linear", "args": {"out_features": 10}}]}}))
    return ProjectDocument(model)


@pytest.fixture
def doc(qapp):
    d = make_doc()
    d.qt_model = StackModel(d)
    d.tester = QAbstractItemModelTester(d.qt_model, QAbstractItemModelTester.FailureReportingMode.Warning)
    return d


def snapshot(doc) -> str:
    return json.dumps(doc.spec.to_json(), sort_keys=True)


def spec_rows(doc) -> list[tuple[str, str]]:
    return [(info.position, info.id) for info in doc.info.rows()]


def model_rows(doc) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in shown_rows(doc.qt_model)]


EDITS = {
    "insert": lambda d: d.insert_kind("Dropout", None, 4),
    "insert_into_block": lambda d: d.insert_kind("BatchNorm2d", "res", 1),
    "remove": lambda d: d.remove(["relu1"]),
    "remove_block_and_child": lambda d: d.remove(["rrelu", "res", "fc"]),
    "move_down": lambda d: d.move(["conv1"], None, 3),
    "move_two_up": lambda d: d.move(["flat", "fc"], None, 0),
    "move_into_block": lambda d: d.move(["relu1"], "res", 0),
    "move_out_of_block": lambda d: d.move(["rconv"], None, None),
    "duplicate": lambda d: d.duplicate(["conv1"]),
    "duplicate_block": lambda d: d.duplicate(["res"]),
    "set_arg": lambda d: d.set_arg("conv1", "out_channels", 4),
    "clear_arg": lambda d: d.set_arg("conv1", "padding", UNSET),
    "freeze": lambda d: d.set_frozen("conv1", True),
    "rename": lambda d: d.rename("fc", "head"),
    "set_input": lambda d: d.set_input((1, 16, 16)),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_every_edit_undoes_and_redoes_exactly(doc, name):
    before, rows_before = snapshot(doc), model_rows(doc)
    changes = []
    doc.changed.connect(lambda: changes.append(1))
    EDITS[name](doc)
    after = snapshot(doc)
    assert after != before and changes
    assert doc.modified
    assert model_rows(doc) == spec_rows(doc)
    for _ in range(2):  # twice: redo must re-apply onto the restored objects
        doc.undo_stack.undo()
        assert snapshot(doc) == before
        assert model_rows(doc) == spec_rows(doc) == rows_before
        assert not doc.modified
        doc.undo_stack.redo()
        assert snapshot(doc) == after
        assert model_rows(doc) == spec_rows(doc)


def test_one_user_action_is_one_undo_step_with_a_readable_name(doc):
    doc.insert_kind("Dropout", None, 1)
    doc.duplicate(["conv1", "fc"])
    doc.move(["flat", "fc"], None, 0)
    doc.remove(["relu1", "res"])
    assert [doc.undo_stack.text(i) for i in range(doc.undo_stack.count())] == [
        "Add Dropout 'dropout_1'", "Duplicate 2 layers", "Move 2 layers", "Delete 2 layers"]


def test_shapes_follow_every_edit(doc):
    assert doc.layer_info("fc").out_shape == (10,)
    doc.set_arg("conv1", "out_channels", 4)  # the block now adds 8 channels to 4: broken
    assert doc.layer_info("res").error is not None
    assert doc.layer_info("fc").out_shape is None
    doc.set_arg("rconv", "out_channels", 4)
    assert doc.info.ok and doc.layer_info("fc").in_shape == (256,)


def test_duplicates_get_fresh_ids_for_nested_layers_too(doc):
    new = doc.duplicate(["res"])
    copy = doc.spec.find(new[0])
    assert new == ["res_1"] and [c.id for c in copy.layers] == ["rconv_1", "rrelu_1"]
    assert len(doc.spec.ids()) == len(list(doc.spec.walk()))


def test_quick_edits_of_one_field_merge_and_back_to_start_vanishes(doc):
    for value in (1, 12, 128):  # typing 128 in a spin box
        doc.set_arg("fc", "out_features", value)
    assert doc.undo_stack.count() == 1 and doc.spec.find("fc").args["out_features"] == 128
    doc.set_arg("fc", "out_features", 10)
    assert doc.undo_stack.count() == 0 and not doc.modified


def test_edits_of_other_fields_stay_separate(doc):
    doc.set_arg("fc", "out_features", 5)
    doc.set_arg("conv1", "out_channels", 5)
    assert doc.undo_stack.count() == 2


@pytest.mark.parametrize("bad, words", [("1abc", "letters, digits"), ("relu1", "already used"), ("a b", "letters"),
                                        ("eval", "reserved"), ("class", "reserved")])
def test_rename_refuses_bad_ids_with_a_reason(doc, bad, words):
    with pytest.raises(WorkbenchError, match=words):
        doc.rename("fc", bad)
    assert doc.undo_stack.count() == 0


def test_a_block_cannot_move_into_itself(doc):
    with pytest.raises(WorkbenchError, match="into itself"):
        doc.move(["res"], "res", 0)
    assert doc.undo_stack.count() == 0


def test_moving_to_where_it_is_records_nothing(doc):
    assert doc.move(["relu1"], None, 2) is False
    assert doc.move(["relu1"], None, 1) is False
    assert doc.undo_stack.count() == 0


def test_lock_refuses_structure_but_lets_freezing_through(doc):
    heard = []
    doc.frozenChanged.connect(lambda path, frozen: heard.append((path, frozen)))
    doc.set_edit_lock("training runs")
    with pytest.raises(WorkbenchError, match="while training runs"):
        doc.insert_kind("ReLU")
    with pytest.raises(WorkbenchError, match="stop it first"):
        doc.set_arg("fc", "out_features", 3)
    doc.set_frozen("rconv", True)
    assert heard == [("res.body.rconv", True)]
    doc.undo_stack.undo()
    assert heard[-1] == ("res.body.rconv", False)
    doc.set_edit_lock("")
    doc.insert_kind("ReLU")


def test_backbone_stage_freeze_is_undoable_and_reported_by_module_path(qapp):
    doc = ProjectDocument(projects.new("b", ModelSpec((3, 32, 32), [LayerSpec("net", "resnet18")])))
    model = StackModel(doc)
    net = model.index_of("net")
    assert [model.index(r, ID, net).data() for r in range(model.rowCount(net))] == \
        ["stem", "layer1", "layer2", "layer3", "layer4"]
    heard = []
    doc.frozenChanged.connect(lambda path, frozen: heard.append((path, frozen)))
    trainable = doc.info.trainable_params
    doc.set_stage_frozen("net", "layer1", True)
    assert doc.spec.find("net").frozen_stages == ["layer1"] and heard == [("net.layer1", True)]
    assert doc.info.trainable_params == trainable - next(s.params for s in doc.layer_info("net").stages
                                                         if s.name == "layer1")
    doc.undo_stack.undo()
    assert doc.spec.find("net").frozen_stages == [] and doc.info.trainable_params == trainable


def test_a_selected_block_carries_its_selected_children(doc):
    assert doc.duplicate(["rconv", "res"]) == ["res_1"]
    doc.move(["rconv", "res"], None, 0)
    assert doc.spec.layers[0].id == "res" and [c.id for c in doc.spec.layers[0].layers] == ["rconv", "rrelu"]
    doc.remove(["rrelu", "res"])
    assert doc.spec.find("rrelu") is None and doc.undo_stack.undoText() == "Delete 'res'"
