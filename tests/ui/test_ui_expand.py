"""Expand into Layers in the window: the context-menu action on a backbone row replaces it with
its layers as one undo step; an architecture that cannot expand is said in the status bar."""
from __future__ import annotations

from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import project_file as projects


def _open(window, layers, shape=(3, 64, 64)):
    window.doc.replace_project(projects.new("bb", ModelSpec(shape, layers)))
    window.stack.select_ids([layers[0].id])


def test_expand_into_layers_is_one_undoable_edit(window, qtbot):
    _open(window, [LayerSpec("net", "resnet18"), LayerSpec("fc", "Linear", {"out_features": 4})])
    action = next(a for a in window.stack.actions() if a.text().replace("&", "") == "Expand into Layers")
    assert action.isVisible()
    before = window.doc.spec.to_json()
    action.trigger()
    ids = [layer.id for layer in window.doc.spec.layers]
    assert "net" not in ids and ids[:2] == ["conv1", "bn1"] and ids[-1] == "fc"
    assert window.doc.spec.find("layer2_0").args == {"projection": "conv_bn"}
    assert window.doc.info.output_shape == (4,) and window.doc.info.ok
    assert window.stack.current_id() == "conv1"
    assert window.statusBar().currentMessage().startswith("Expanded 'net' (resnet18) into 22 rows")
    assert not action.isVisible()  # a plain row: nothing to expand
    assert window.doc.undo_stack.undoText() == "Expand 'net' into Layers"
    window.doc.undo_stack.undo()
    assert window.doc.spec.to_json() == before


def test_an_architecture_that_cannot_expand_is_said(window, qtbot):
    _open(window, [LayerSpec("vit", "vit_b_16")], shape=(3, 224, 224))
    action = next(a for a in window.stack.actions() if a.text().replace("&", "") == "Expand into Layers")
    assert "cannot expand" in action.toolTip()
    action.trigger()
    assert window.doc.spec.layers[0].type == "vit_b_16" and window.doc.undo_stack.count() == 0
    assert "vit_b_16 (layer 'vit') cannot be expanded into layers" in window.statusBar().currentMessage()
