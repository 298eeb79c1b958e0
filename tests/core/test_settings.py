"""The typed settings of a project: loading, validation by JSON path, compact saving, changes."""
from __future__ import annotations

import dataclasses
import json

import pytest

from workbench.errors import SpecError
from workbench.project import project_file as project, templates
from workbench.project.settings import DataSettings, OptimizerSettings, ScheduleSettings, TrainingSettings

# sections as a version-1 file (written by the dict-based settings before them) holds them (same key order)
SAVED_V1 = {
    "data": {"source": "digits", "val_fraction": 0.2, "batch_size": 64, "image_size": [16, 16], "augment": True,
             "split_seed": 3},
    "training": {"loss": "CrossEntropyLoss", "epochs": 15, "device": "auto", "seed": 0, "grad_clip": 1.0,
                 "tensorboard": False, "optimizer": {"type": "SGD", "lr": 0.05, "nesterov": True},
                 "schedule": {"type": "onecycle", "max_lr": 0.5}},
}
# the same in version 2 and 3: torch's scheduler names, and version 1's own defaults (momentum 0.9) written out
SAVED = json.loads(json.dumps(SAVED_V1))
# version 3: data.augment true is the same as a training pipeline (digits: shifts, no flips)
SAVED["data"] = {"source": "digits", "val_fraction": 0.2, "batch_size": 64, "image_size": [16, 16],
                 "split_seed": 3,
                 "augment_train": [{"type": "RandomAffine", "args": {"degrees": 0, "translate": [0.125, 0.125]}}]}
SAVED["training"]["optimizer"] = {"type": "SGD", "lr": 0.05, "momentum": 0.9, "nesterov": True}
SAVED["training"]["schedule"] = {"type": "OneCycleLR", "max_lr": 0.5}


def doc(version=3, **sections):
    return {"format": "model-workbench/project", "version": version, "name": "S",
            "model": {"input": {"shape": [64]},
                      "layers": [{"id": "fc", "type": "Linear", "args": {"out_features": 10}}]},
            **sections}


def test_sections_load_as_typed_settings_with_defaults_filled_in():
    proj = project.from_json(doc(**json.loads(json.dumps(SAVED))))
    d, t = proj.data, proj.training
    assert isinstance(d, DataSettings) and isinstance(t, TrainingSettings)
    assert (d.source, d.batch_size, d.image_size, d.augment_train, d.split_seed, d.num_workers) == \
        ("digits", 64, [16, 16], SAVED["data"]["augment_train"], 3, 0)
    assert isinstance(t.optimizer, OptimizerSettings) and isinstance(t.schedule, ScheduleSettings)
    assert (t.loss, t.epochs, t.grad_clip, t.tensorboard, t.log_every) == ("CrossEntropyLoss", 15, 1.0, False, 10)
    assert (t.optimizer.type, t.optimizer.lr, t.optimizer.nesterov, t.optimizer.momentum) == ("SGD", 0.05, True, 0.9)
    assert (t.schedule.type, t.schedule.max_lr, t.schedule.step_size) == ("OneCycleLR", 0.5, 10)
    bare = project.from_json(doc())
    assert bare.data == DataSettings() and bare.training == TrainingSettings()


def test_saving_writes_the_sections_back_exactly_and_leaves_defaults_out(tmp_path):
    proj = project.from_json(doc(**json.loads(json.dumps(SAVED))))
    out = proj.to_json()
    assert json.dumps({"data": out["data"], "training": out["training"]}) == json.dumps(SAVED)  # order too
    assert DataSettings().to_json() == {"source": "digits", "val_fraction": 0.2, "batch_size": 64}
    assert TrainingSettings().to_json() == {"loss": "auto", "epochs": 10, "device": "auto", "seed": 0,
                                            "optimizer": {"type": "Adam", "lr": 0.001}}
    path = project.save(proj, tmp_path / "s.wbproj")
    text = path.read_text()
    assert project.load(path).dumps() == text  # load -> save changes nothing
    for name in templates.names():
        proj = templates.load(name)
        assert project.loads(proj.dumps()).dumps() == proj.dumps()


def test_a_version_1_file_migrates_to_the_version_3_form():
    proj = project.from_json(doc(version=1, **json.loads(json.dumps(SAVED_V1))))
    out = proj.to_json()
    assert out["version"] == 3
    assert json.dumps({"data": out["data"], "training": out["training"]}) == json.dumps(SAVED)
    assert proj.training == project.from_json(doc(**json.loads(json.dumps(SAVED)))).training


def test_every_problem_is_reported_with_its_json_path():
    bad = doc(data={"source": "csv", "batch_size": 0, "colour": "red", "image_size": [0, 4]},
              training={"epochs": "ten", "device": "tpu", "optimizer": {"type": "LBFGS", "lr": -1, "extra": 1},
                        "schedule": [], "amp": "yes"})
    with pytest.raises(SpecError) as err:
        project.from_json(bad, "s.wbproj")
    problems = {p.path: p.message for p in err.value.problems}
    assert set(problems) == {"$.data.path", "$.data.batch_size", "$.data.colour",
                             "$.data.image_size", "$.training.epochs", "$.training.device",
                             "$.training.optimizer.type", "$.training.optimizer.lr", "$.training.optimizer.extra",
                             "$.training.schedule", "$.training.amp"}
    assert problems["$.data.path"] == ("Data: the CSV source needs a file (a table with a header row); pick one "
                                       "with Browse next to Path in the Training panel, or set data.path in the "
                                       "project file")
    assert problems["$.data.batch_size"] == "batch_size must be >= 1, got 0"
    assert problems["$.data.colour"].startswith("unknown key (allowed: augment_eval, augment_train, batch_size, "
                                                "columns, custom_class, custom_file, custom_kwargs, download,")
    assert problems["$.training.device"] == "must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"
    assert "LBFGS needs a closure" in problems["$.training.optimizer.type"]
    assert problems["$.training.schedule"] == "must be an object"
    assert problems["$.training.optimizer.extra"].startswith("unknown key (allowed: alpha, amsgrad, beta1, beta2,")
    with pytest.raises(SpecError, match=r"\$\.training: must be an object"):
        project.from_json(doc(training=[1]))


def test_settings_are_frozen_and_change_by_copy():
    proj = templates.load("digits_mlp")
    before = proj.training
    with pytest.raises(dataclasses.FrozenInstanceError):
        proj.training.epochs = 3
    proj.set_setting("training.optimizer.lr", 0.5)
    proj.set_setting("data.batch_size", 8)
    assert proj.training.optimizer.lr == 0.5 and proj.data.batch_size == 8
    assert before.optimizer.lr != 0.5  # a run that holds the old settings keeps them
    assert proj.setting("training.optimizer.lr") == 0.5 and proj.setting("data.batch_size") == 8
    assert proj.training == before.with_value("optimizer.lr", 0.5)
    assert proj.training.value("schedule.type") == "none"
    with pytest.raises(KeyError, match="no settings section 'model'"):
        proj.setting("model.input")


def test_params_describe_each_value_for_the_form():
    names = [p.name for p in TrainingSettings.params()]
    assert names == ["loss", "epochs", "device", "seed", "grad_clip", "amp", "log_every", "tensorboard", "health_every"]
    assert list(TrainingSettings.sections()) == ["optimizer", "schedule", "loss_options", "early_stopping"]
    lr = next(p for p in OptimizerSettings.params() if p.name == "lr")
    assert (lr.kind, lr.default, lr.min, lr.max) == ("float", 1e-3, 0.0, 100.0)
    pipelines = ("augment_train", "augment_eval")  # lists of steps, edited in the Augmentation dock
    fields = [f.name for f in dataclasses.fields(DataSettings) if f.name not in pipelines]
    assert [p.name for p in DataSettings.params()] == fields
    assert all(getattr(DataSettings(), p.name) == p.default for p in DataSettings.params())
