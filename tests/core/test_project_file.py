"""Project files: round trip, validation that reports every problem by JSON path, atomic saves."""
from __future__ import annotations

from dataclasses import replace

import json
import os

import pytest

from workbench.project import project_file as project, templates
from workbench.errors import SpecError, WorkbenchError
from workbench.model.spec import LayerSpec


def _doc(**over):
    doc = {
        "format": "model-workbench/project", "version": 1, "name": "T",
        "model": {"input": {"shape": [1, 8, 8]}, "layers": [
            {"id": "conv1", "type": "Conv2d", "args": {"out_channels": 4, "kernel_size": 3}},
            {"id": "flat", "type": "Flatten"},
            {"id": "fc", "type": "Linear", "args": {"out_features": 10}, "frozen": True}]},
        "data": {"source": "digits", "batch_size": 32},
        "training": {"optimizer": {"type": "SGD", "lr": 0.1, "nesterov": True}, "epochs": 3},
    }
    doc.update(over)
    return doc


def test_issue_example_loads_and_round_trips(tmp_path):
    proj = project.from_json(_doc())
    assert [layer.id for layer in proj.model.layers] == ["conv1", "flat", "fc"]
    assert proj.model.layers[2].frozen is True
    assert proj.training.optimizer == replace(proj.training.optimizer, type="SGD", lr=0.1, nesterov=True)
    path = project.save(proj, tmp_path / "p.wbproj")
    again = project.load(path)
    assert again.to_json() == proj.to_json()
    assert again.model.to_json() == proj.model.to_json()
    assert json.loads(path.read_text())["version"] == project.VERSION


@pytest.mark.parametrize("name", templates.names())
def test_every_template_round_trips(tmp_path, name):
    proj = templates.load(name)
    path = project.save(proj, tmp_path / f"{name}.wbproj")
    assert project.load(path).to_json() == proj.to_json()


def test_all_problems_are_reported_with_their_paths():
    doc = _doc()
    layers = doc["model"]["layers"]
    layers[0]["args"]["kernel_size"] = "big"
    layers[0]["colour"] = "red"
    layers[1]["type"] = "Flaten"
    layers[2]["id"] = "conv1"
    layers.append({"id": "x", "type": "Linear"})
    doc["data"]["batch_size"] = 0
    doc["extra"] = 1
    with pytest.raises(SpecError) as err:
        project.from_json(doc, "p.wbproj")
    paths = {p.path for p in err.value.problems}
    assert {"$.model.layers[0].args.kernel_size", "$.model.layers[0].colour", "$.model.layers[1].type",
            "$.model.layers[2].id", "$.model.layers[3].args.out_features", "$.data.batch_size",
            "$.extra"} <= paths
    text = str(err.value)
    assert "did you mean 'Flatten'" in text
    assert "duplicate id 'conv1'" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("bad,needle", [
    ("{not json", "not valid JSON"),
    ("[]", "JSON object"),
    ('{"format": "other"}', "Model Workbench project"),
])
def test_malformed_files_say_what_is_wrong(bad, needle):
    with pytest.raises(SpecError, match=needle):
        project.loads(bad)


def test_newer_version_is_refused_with_advice():
    with pytest.raises(SpecError, match="newer Model Workbench"):
        project.from_json(_doc(version=project.VERSION + 1))


def test_older_versions_are_migrated_on_load(monkeypatch):
    """A future format 2 renames a key; a version-1 file must still open, upgraded."""
    def v1_to_v2(doc):
        doc["name"] = doc.pop("title")
        return doc
    monkeypatch.setattr(project, "VERSION", 2)
    monkeypatch.setitem(project.MIGRATIONS, 1, v1_to_v2)
    doc = _doc()
    doc["title"] = doc.pop("name")
    proj = project.from_json(doc)
    assert proj.name == "T"
    assert proj.to_json()["version"] == 2


def test_save_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    proj = project.from_json(_doc())
    path = project.save(proj, tmp_path / "p.wbproj")
    before = path.read_text()
    proj.model.layers.append(LayerSpec("extra", "ReLU"))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(WorkbenchError, match="disk is full"):
        project.save(proj, path)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.wbproj"]


def test_unreadable_or_binary_file(tmp_path):
    (tmp_path / "w.wbproj").write_bytes(b"\x80\x04\x95PK\x00\xff")
    with pytest.raises(SpecError, match="not a text file"):
        project.load(tmp_path / "w.wbproj")
    with pytest.raises(WorkbenchError, match="no such file"):
        project.load(tmp_path / "missing.wbproj")


def test_saved_file_stays_compact_and_readable(tmp_path):
    path = project.save(project.from_json(_doc()), tmp_path / "p.wbproj")
    saved = json.loads(path.read_text())
    assert "fake_size" not in saved["data"]  # defaults are not spelled out
    assert saved["data"]["source"] == "digits"
    assert saved["training"]["optimizer"]["nesterov"] is True
    assert path.read_text().count("\n") > 10  # indented, one item per line


@pytest.mark.parametrize("bad_id", ["eval", "training", "forward", "class", "lambda", "2fc", "a-b"])
def test_ids_that_cannot_be_module_names_are_refused(bad_id):
    doc = _doc()
    doc["model"]["layers"][1]["id"] = bad_id
    with pytest.raises(SpecError) as err:
        project.from_json(doc)
    assert [p.path for p in err.value.problems] == ["$.model.layers[1].id"]
