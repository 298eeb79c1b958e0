"""Augmentation pipelines: the catalog, errors naming the step, what the sources apply, the
project-file migration from data.augment, and exact resume with a random pipeline."""
from __future__ import annotations

import inspect
import json
from dataclasses import replace

import pytest
import torch
from torchvision.transforms import v2

from workbench.cli import main as cli
from workbench.data import augment, bundle
from workbench.errors import WorkbenchError
from workbench.project import project_file as project, templates
from workbench.training import events as ev
from workbench.training.engine import Engine

from run_events import Recorder

ROTATE = {"type": "RandomRotation", "args": {"degrees": 30}}


def load(**cfg):
    return bundle.load_data(cfg)


def test_the_catalog_offers_each_transform_with_its_constructors_arguments():
    kinds = augment.catalog()
    for name in ("Resize", "RandomResizedCrop", "CenterCrop", "RandomCrop", "RandomHorizontalFlip",
                 "RandomVerticalFlip", "RandomRotation", "RandomAffine", "ColorJitter", "RandAugment",
                 "TrivialAugmentWide", "AutoAugment", "RandomErasing", "GaussianBlur", "Normalize", "Grayscale"):
        assert name in kinds
    for kind in kinds.values():
        wanted = [n for n in inspect.signature(getattr(v2, kind.name).__init__).parameters
                  if n not in ("self", "args", "kwargs") and n not in augment.LEFT_OUT_ARGS]
        assert [p.name for p in kind.params] == wanted, kind.name
        assert all(p.kind != "str" for p in kind.params), kind.name  # every argument typed by ARGS
        assert kind.help and all(p.help for p in kind.params)
        args = {p.name: p.default for p in kind.params if not p.required}
        required = {"RandomResizedCrop": {"size": 8}, "Resize": {"size": 8}, "CenterCrop": {"size": 8},
                    "RandomCrop": {"size": 8}, "Pad": {"padding": 2}, "RandomRotation": {"degrees": 10},
                    "RandomAffine": {"degrees": 10}, "RandomPosterize": {"bits": 4},
                    "RandomSolarize": {"threshold": 0.5}, "RandomAdjustSharpness": {"sharpness_factor": 2.0},
                    "GaussianBlur": {"kernel_size": 3}, "Normalize": {"mean": [0.5], "std": [0.5]}}
        step = {"type": kind.name, "args": {**{k: v for k, v in args.items() if v is not None},
                                            **required.get(kind.name, {})}}
        assert isinstance(augment.Pipeline([step], "p").compose(), v2.Compose)


@pytest.mark.parametrize("steps,message", [
    ([{"type": "RandomHorizontalFlip"}, ROTATE, {"type": "RandomRotation", "args": {"degrees": "lots"}}],
     "data.augment_train[2] (RandomRotation): degrees must be a number, got 'lots'"),
    ([{"type": "RandomRotation", "args": {"degrees": -3}}],
     "data.augment_train[0] (RandomRotation): If degrees is a single number, it must be positive"),
    ([{"type": "RandomRotation"}], "data.augment_train[0] (RandomRotation): degrees is required"),
    ([{"type": "Twirl"}], "data.augment_train[0] (Twirl): unknown transform 'Twirl'; offered: Resize,"),
    ([{"type": "RandomHorizontalFlip", "args": {"p": 2}}],
     "data.augment_train[0] (RandomHorizontalFlip): p must be <= 1, got 2"),
    ([{"type": "RandomErasing", "args": {"inplace": True}}],
     "data.augment_train[0] (RandomErasing): unknown argument 'inplace' (the pipeline works on copies)"),
    ([{"type": "GaussianBlur", "args": {"kernel_size": 4}}],
     "data.augment_train[0] (GaussianBlur): Kernel size value should be an odd and positive number"),
    ([{"type": "Normalize", "args": {"mean": [0.5], "std": [0.5]}}, {"type": "RandAugment"}],
     "data.augment_train[1] (RandAugment): comes after Normalize (data.augment_train[0])"),
    ([{"type": "ColorJitter", "args": {"hue": 0.2}}],
     "data.augment_train[0] (ColorJitter): hue needs colour images but these have 1 channel"),
    ([{"type": "Normalize", "args": {"mean": [0.5], "std": [0.5]}}],
     "data.augment_eval: data.augment_train[0] normalises but this pipeline does not"),
    ([{"type": "CenterCrop", "args": {"size": 4}}],
     "data.augment_train gives 1x4x4 images but data.augment_eval gives 1x8x8"),
])
def test_a_bad_step_is_named_by_index_type_and_argument_when_the_data_loads(steps, message):
    with pytest.raises(WorkbenchError) as err:
        load(source="digits", augment_train=steps)
    assert str(err.value).startswith(message), str(err.value)


def test_steps_that_cannot_apply_to_the_images_are_found_at_load_not_mid_run():
    grey = dict(source="fake", fake_size=12, fake_shape=[1, 8, 8], grayscale=True)
    with pytest.raises(WorkbenchError, match=r"data.augment_train\[1\] \(ColorJitter\): saturation needs colour"):
        load(**grey, augment_train=[ROTATE, {"type": "ColorJitter", "args": {"saturation": 0.5}}])
    with pytest.raises(WorkbenchError, match=r"data.augment_eval\[0\] \(Normalize\): mean and std need one value "
                                             r"per channel \(1\), got 3 and 3"):
        load(**grey, augment_train=[{"type": "Normalize", "args": {"mean": [0.5], "std": [0.5]}}],
             augment_eval=[{"type": "Normalize", "args": {"mean": [0.5] * 3, "std": [0.5] * 3}}])
    with pytest.raises(WorkbenchError, match="data.augment_train: scikit-learn wine holds tables, not images"):
        load(source="wine", augment_train=[{"type": "RandomHorizontalFlip"}])


def test_the_train_pipeline_draws_on_training_examples_only_and_the_eval_one_on_validation():
    plain = load(source="fake", fake_size=20)
    aug = load(source="fake", fake_size=20, augment_train=[ROTATE, {"type": "RandAugment"}],
               augment_eval=[{"type": "CenterCrop", "args": {"size": 32}}])
    assert aug.task.input_shape == (3, 32, 32)
    assert torch.equal(aug.val[0][0], plain.val[0][0])  # CenterCrop to the full size changes nothing
    torch.manual_seed(1)
    a = aug.train[0][0]
    b = aug.train[0][0]
    assert a.dtype == torch.float32 and a.shape == (3, 32, 32) and not torch.equal(a, b)
    digits = load(source="digits", augment_train=[{"type": "RandomResizedCrop", "args": {"size": 8}}])
    x, _ = next(iter(digits.loader("train")))
    assert x.shape[1:] == (1, 8, 8)
    base = load(source="digits")
    assert torch.equal(digits.val[3][0], base.val[3][0])
    resized = load(source="digits", augment_train=[{"type": "Resize", "args": {"size": [12, 12]}}],
                   augment_eval=[{"type": "Resize", "args": {"size": [12, 12]}}])
    assert resized.task.input_shape == (1, 12, 12) and resized.val[0][0].shape == (1, 12, 12)


def version_2(data: dict) -> dict:
    return {"format": "model-workbench/project", "version": 2, "name": "old",
            "model": {"input": {"shape": [1, 8, 8]}, "layers": [{"id": "f", "type": "Flatten"},
                                                                {"id": "fc", "type": "Linear",
                                                                 "args": {"out_features": 10}}]},
            "data": data}


def test_a_version_2_file_with_augment_gets_the_same_shifts_and_flips_as_a_pipeline(tmp_path):
    shifts = {"type": "RandomAffine", "args": {"degrees": 0, "translate": [0.125, 0.125]}}
    proj = project.from_json(version_2({"source": "fake", "augment": True}))
    assert proj.data.augment_train == [shifts, {"type": "RandomHorizontalFlip"}] and proj.data.augment_eval == []
    assert project.from_json(version_2({"source": "digits", "augment": True})).data.augment_train == [shifts]
    assert project.from_json(version_2({"source": "digits", "augment": False})).data.augment_train == []
    path = project.save(proj, tmp_path / "p.wbproj")
    saved = json.loads(path.read_text())
    assert saved["version"] == project.VERSION == 3 and "augment" not in saved["data"]
    assert project.load(path).data == proj.data
    with pytest.raises(Exception, match=r"\$\.data\.augment: unknown key"):
        project.from_json(version_2({"source": "digits", "augment": "yes"}))


def test_the_project_file_checks_the_form_of_a_pipeline():
    doc = version_2({"source": "digits"})
    doc["version"] = 3
    doc["data"]["augment_train"] = [ROTATE, "flip"]
    with pytest.raises(Exception, match=r"\$\.data\.augment_train: augment_train\[1\] must be an object with a type"):
        project.from_json(doc)


def test_train_cli_refuses_a_bad_step_with_one_line_and_exit_2(tmp_path, capsys):
    proj = templates.load("digits_mlp")
    proj.set_setting("data.augment_train", [{"type": "RandomRotation", "args": {"degrees": 10, "spin": 1}}])
    path = project.save(proj, tmp_path / "p.wbproj")
    assert cli.main(["train", str(path), "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: data.augment_train[0] (RandomRotation): unknown argument 'spin'; RandomRotation takes "
                   "degrees, interpolation, expand, fill"]


def test_a_stopped_and_resumed_run_with_a_random_pipeline_equals_an_uninterrupted_one(tmp_path):
    proj = templates.load("digits_cnn")
    proj.training = replace(proj.training, epochs=2, log_every=4, tensorboard=False)
    proj.set_setting("data.augment_train", [ROTATE, {"type": "RandomErasing", "args": {"p": 0.5}}])
    full = Recorder()
    assert isinstance(Engine(proj, run_dir=tmp_path / "full", handlers=[full]).run(), ev.FinishedEvent)
    engine = Engine(proj, run_dir=tmp_path / "part")
    first = Recorder()

    def stop_mid_epoch_two(e):
        first(e)
        if isinstance(e, ev.StepEvent) and e.step == 26:
            engine.controls.stop()
    engine.add_handler(stop_mid_epoch_two)
    stopped = engine.run()
    assert isinstance(stopped, ev.StoppedEvent)
    second = Recorder()
    assert isinstance(Engine(proj, resume_from=stopped.checkpoint, handlers=[second]).run(), ev.FinishedEvent)
    losses = [s.loss for s in first.of(ev.StepEvent) + second.of(ev.StepEvent)]
    assert losses == [s.loss for s in full.of(ev.StepEvent)]
    plain = templates.load("digits_cnn")
    plain.training = proj.training
    other = Recorder()
    Engine(plain, run_dir=tmp_path / "plain", handlers=[other]).run()
    assert [s.loss for s in other.of(ev.StepEvent)] != losses  # the pipeline did draw


def test_preview_draws_differ_and_repeat_for_the_same_seed():
    from workbench.data.sources import registry
    from workbench.project.settings import DataSettings

    source = registry.read(DataSettings(source="fake", fake_size=4))
    x = augment.preview_input(source, 0)
    assert x.dtype == torch.uint8 and x.shape == (3, 32, 32)
    first = augment.draws([ROTATE], x)
    assert len(first) == 8 and all(d.shape == (3, 32, 32) and 0 <= d.min() and d.max() <= 1 for d in first)
    assert len({tuple(d.flatten()[:200].tolist()) for d in first}) == 8
    assert all(torch.equal(a, b) for a, b in zip(first, augment.draws([ROTATE], x)))
