"""Training settings: every torch.optim optimiser, per-layer learning rates, schedulers with a
warm-up, losses with their options; the project file form, its errors, exact resume, live lr."""
from __future__ import annotations

import inspect
import json
import time

import pytest
import torch
from torch import nn

from workbench.errors import SpecError, WorkbenchError
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import project_file as project, templates
from workbench.project.settings import (IMPLEMENTATION_ARGS, OPTIMIZERS, PAIRS, SCHEDULES, OptimizerSettings,
                                        TrainingSettings, optimizer_arguments)
from workbench.training import events as ev, optim
from workbench.training.engine import Engine


def doc(training: dict, version: int = 2) -> dict:
    return {"format": "model-workbench/project", "version": version, "name": "O",
            "model": {"input": {"shape": [64]},
                      "layers": [{"id": "hidden", "type": "Linear", "args": {"out_features": 16}},
                                 {"id": "fc", "type": "Linear", "args": {"out_features": 10}}]},
            "training": training}


def problems_of(training: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        project.from_json(doc(training))
    return {p.path: p.message for p in err.value.problems}


# ---------------------------------------------------------------- optimisers

def test_the_settings_hold_every_argument_of_every_offered_optimizer():
    """Read from the signatures: a torch that adds an argument makes this fail until it is a setting."""
    names = {p.name for p in OptimizerSettings.params()}
    for kind in OPTIMIZERS:
        sig = inspect.signature(getattr(torch.optim, kind).__init__).parameters
        for arg in sig:
            if arg in ("self", *IMPLEMENTATION_ARGS):
                continue
            assert set(PAIRS.get(arg, (arg,))) <= names, (kind, arg)
    assert set(OPTIMIZERS) == {"Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "ASGD", "NAdam", "RAdam",
                               "RMSprop", "Rprop", "SGD"}


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_each_optimizer_is_made_with_torchs_defaults_and_steps(kind):
    model = nn.Linear(4, 2)
    opt = optim.make_optimizer(model, OptimizerSettings(type=kind, lr=0.01))
    assert type(opt) is getattr(torch.optim, kind)
    expected = optimizer_arguments(kind)
    for name, value in opt.defaults.items():
        if name in expected and name != "lr":
            assert value == expected[name], name
    model(torch.ones(3, 4)).sum().backward()
    before = model.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model.weight)


def test_arguments_reach_torch_with_pairs_joined():
    o = project.from_json(doc({"optimizer": {"type": "Adadelta", "lr": 1.0, "rho": 0.8, "eps": 1e-5}})).training
    opt = optim.make_optimizer(nn.Linear(2, 2), o.optimizer)
    assert (opt.defaults["lr"], opt.defaults["rho"], opt.defaults["eps"]) == (1.0, 0.8, 1e-5)
    o = OptimizerSettings(type="Rprop", lr=0.01, eta_plus=1.5)
    assert optim.make_optimizer(nn.Linear(2, 2), o).defaults["etas"] == (0.5, 1.5)


@pytest.mark.parametrize("optimizer,path,words", [
    ({"type": "Adadelta", "rho": 1.5}, "$.training.optimizer.rho", "rho must be <= 1, got 1.5"),
    ({"type": "Adam", "rho": 0.9}, "$.training.optimizer.rho", "Adam has no argument 'rho' (it takes: lr, beta1"),
    ({"type": "SGD", "beta1": 0.5}, "$.training.optimizer.beta1", "SGD has no argument 'beta1'"),
    ({"type": "LBFGS"}, "$.training.optimizer.type", "LBFGS needs a closure"),
    ({"type": "SparseAdam"}, "$.training.optimizer.type", "SparseAdam needs sparse gradients"),
    ({"type": "Adam", "lr_scale": {"nope": 0.1}}, "$.training.optimizer.lr_scale.nope",
     "no layer or backbone stage 'nope' in the model (layer ids: hidden, fc"),
    ({"type": "Adam", "lr_scale": {"hidden": 0}}, "$.training.optimizer.lr_scale",
     "lr_scale.hidden must be a number above 0"),
])
def test_bad_optimizer_settings_name_the_setting(optimizer, path, words):
    problems = problems_of({"optimizer": optimizer})
    assert words in problems[path], problems


def test_a_value_torch_refuses_at_the_start_names_the_setting():
    with pytest.raises(WorkbenchError, match=r"training\.optimizer\.beta1: torch refuses it: Invalid beta"):
        optim.make_optimizer(nn.Linear(2, 2), OptimizerSettings(type="Adam", beta1=1.0))
    with pytest.raises(WorkbenchError, match=r"training\.optimizer\.nesterov: Nesterov momentum needs momentum"):
        optim.make_optimizer(nn.Linear(2, 2), OptimizerSettings(type="SGD", nesterov=True))


def test_lr_scale_gives_a_layer_its_own_learning_rate():
    proj = project.from_json(doc({"optimizer": {"type": "SGD", "lr": 0.1, "lr_scale": {"hidden": 0.1}}}))
    from workbench.model.build import build_model
    model = build_model(proj.model)
    opt = optim.make_optimizer(model, proj.training.optimizer)
    lrs = [(g["lr"], len(g["params"])) for g in opt.param_groups]
    assert lrs == [(0.1, 2), (pytest.approx(0.01), 2)]  # fc first (the rest), then hidden at a tenth
    optim.set_lr(opt, None, 0.5)  # a live change keeps the ratio
    assert [g["lr"] for g in opt.param_groups] == [0.5, pytest.approx(0.05)]
    assert json.loads(proj.dumps())["training"]["optimizer"]["lr_scale"] == {"hidden": 0.1}


def test_lr_scale_reaches_a_backbone_stage():
    proj = templates.load("resnet18_transfer")
    backbone = next(layer.id for layer in proj.model.layers if layer.type.startswith("resnet"))
    data = proj.to_json()
    data["training"]["optimizer"]["lr_scale"] = {backbone: 0.1, f"{backbone}.layer4": 0.5}
    proj = project.from_json(data)
    from workbench.model.build import build_model
    model = build_model(proj.model)
    opt = optim.make_optimizer(model, proj.training.optimizer)
    lr = proj.training.optimizer.lr
    assert [g["lr"] for g in opt.param_groups] == [lr, pytest.approx(lr * 0.1), pytest.approx(lr * 0.5)]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


# ---------------------------------------------------------------- project file versions

def test_version_1_projects_keep_their_meaning():
    v1 = doc({"optimizer": {"type": "AdamW", "lr": 0.01, "momentum": 0.5}, "schedule": {"type": "step"}}, version=1)
    t = project.from_json(v1).training
    assert (t.optimizer.weight_decay, t.optimizer.momentum) == (0.0, None)  # v1 gave AdamW no decay
    assert (t.schedule.type, t.schedule.step_size, t.schedule.gamma) == ("StepLR", 10, 0.1)
    t = project.from_json(doc({"optimizer": {"type": "RMSprop"}, "schedule": {"type": "cosine"}}, version=1)).training
    assert (t.optimizer.momentum, t.schedule.type) == (0.9, "CosineAnnealingLR")


@pytest.mark.parametrize("training,path", [
    ({"optimizer": {"type": [], "lr": 0.1}, "schedule": {"type": "step"}}, "$.training.optimizer.type"),
    ({"optimizer": {"type": "SGD"}, "schedule": {"type": {"a": 1}}}, "$.training.schedule.type"),
])
def test_a_version_1_file_with_values_of_the_wrong_kind_is_refused_not_a_crash(training, path):
    """The migration meets whatever the file holds (the project fuzz test found a list as the type)."""
    with pytest.raises(SpecError) as err:
        project.from_json(doc(training, version=1))
    assert path in {p.path for p in err.value.problems}


@pytest.mark.parametrize("schedule,path,words", [
    ({"type": "ExponentialLR"}, "$.training.schedule.gamma", "ExponentialLR needs gamma"),
    ({"type": "MultiStepLR"}, "$.training.schedule.milestones", "MultiStepLR needs milestones"),
    ({"type": "StepLR", "T_max": 3}, "$.training.schedule.T_max", "StepLR has no argument 'T_max'"),
    ({"type": "Cyclic"}, "$.training.schedule.type", "'ReduceLROnPlateau'"),
])
def test_bad_schedules_name_the_setting(schedule, path, words):
    assert words in problems_of({"schedule": schedule})[path]


def test_bad_loss_options_name_the_setting():
    problems = problems_of({"loss": "MSELoss", "loss_options": {"label_smoothing": 0.1}})
    assert "MSELoss has no argument 'label_smoothing'" in problems["$.training.loss_options.label_smoothing"]
    problems = problems_of({"loss": "CrossEntropyLoss", "loss_options": {"weight": [1, -2]}})
    assert problems["$.training.loss_options.weight"] == "weight[1] must be a finite number >= 0, got -2"


# ---------------------------------------------------------------- schedules

def schedule_lrs(schedule: dict, epochs=6, steps=2, lr=0.1, metrics=None):
    settings = TrainingSettings.from_json({"epochs": epochs, "optimizer": {"type": "SGD", "lr": lr},
                                           "schedule": schedule}, "$", problems := [])
    assert not problems, problems
    model = nn.Linear(2, 1)
    opt = optim.make_optimizer(model, settings.optimizer)
    sched = optim.make_schedule(opt, settings, steps)
    out = []
    for epoch in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        for _ in range(steps):
            opt.step()
            if sched.per_step:
                sched.scheduler.step()
        sched.step_epoch((metrics or {}).get(epoch, {"train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.5}))
    return out, opt, sched


@pytest.mark.parametrize("kind", [k for k in SCHEDULES if k != "none"])
def test_every_scheduler_moves_the_rate_and_takes_a_warm_up(kind):
    args = {"ExponentialLR": {"gamma": 0.5}, "MultiStepLR": {"milestones": [2, 4]}, "StepLR": {"step_size": 2},
            "CosineAnnealingWarmRestarts": {"T_0": 2}, "ReduceLROnPlateau": {"patience": 0}}.get(kind, {})
    lrs, _, _ = schedule_lrs({"type": kind, **args})
    assert len(set(lrs)) > 1, lrs
    warm, _, sched = schedule_lrs({"type": kind, **args, "warmup_epochs": 2, "warmup_start_factor": 0.1})
    if kind != "OneCycleLR":
        assert warm[0] == pytest.approx(0.01) and warm[0] < warm[1] < warm[2] == pytest.approx(0.1), warm
    assert sched.scheduler is not None


def test_plateau_steps_on_the_validation_metric():
    flat = {e: {"val_loss": 1.0, "train_loss": 9.0 - e, "val_acc": 0.5} for e in range(6)}
    lrs, _, _ = schedule_lrs({"type": "ReduceLROnPlateau", "patience": 1, "factor": 0.5}, metrics=flat)
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025])  # the training loss falling does not count
    rising = {e: {"val_loss": 1.0, "train_loss": 1.0, "val_acc": 0.1 * e} for e in range(6)}
    lrs, _, _ = schedule_lrs({"type": "ReduceLROnPlateau", "patience": 0, "monitor": "val_acc"}, metrics=rising)
    assert lrs == [0.1] * 6


@pytest.mark.parametrize("schedule", [
    {"type": "ReduceLROnPlateau", "patience": 0, "factor": 0.5},
    {"type": "ReduceLROnPlateau", "patience": 0, "factor": 0.5, "warmup_epochs": 2},
    {"type": "StepLR", "step_size": 1, "gamma": 0.5, "warmup_epochs": 2},
])
def test_a_live_lr_change_scales_the_schedules_in_a_chain(schedule):
    _, opt, sched = schedule_lrs(schedule, epochs=1)  # one epoch in: mid warm-up where there is one
    before = opt.param_groups[0]["lr"]
    optim.set_lr(opt, sched, before * 2)
    assert opt.param_groups[0]["lr"] == pytest.approx(before * 2)
    assert sched.scheduler.get_last_lr()[0] == pytest.approx(before * 2)
    for part in sched.parts:
        if getattr(part, "base_lrs", None):
            assert part.base_lrs[0] == pytest.approx(0.2)  # the whole schedule doubled
    sched.step_epoch({"train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.5})
    assert opt.param_groups[0]["lr"] > 0


# ---------------------------------------------------------------- losses and runs

def tabular(tmp_path, loss, out=3, epochs=6, **training):
    model = ModelSpec((4,), [LayerSpec("fc1", "Linear", {"out_features": 16}), LayerSpec("act", "ReLU"),
                             LayerSpec("fc2", "Linear", {"out_features": out})])
    proj = project.new("t", model, data={"source": "iris", "val_fraction": 0.25, "batch_size": 16},
                       training={"loss": loss, "epochs": epochs, "tensorboard": False,
                                 "optimizer": {"type": "Adam", "lr": 0.02}, **training})
    events = []
    end = Engine(proj, run_dir=tmp_path / "run", handlers=[events.append]).run()
    return end, events


@pytest.mark.parametrize("loss,options", [
    ("CrossEntropyLoss", {"label_smoothing": 0.1, "weight": [1.0, 2.0, 1.0]}),
    ("BCEWithLogitsLoss", {"pos_weight": [2.0]}),
    ("KLDivLoss", {}),
])
def test_classification_losses_with_their_options_learn(tmp_path, loss, options):
    end, _ = tabular(tmp_path, loss, loss_options=options)
    assert isinstance(end, ev.FinishedEvent), end
    assert end.best_val_acc >= 0.8


def test_class_weights_of_the_wrong_length_and_regression_losses_on_classes_are_refused(tmp_path):
    end, _ = tabular(tmp_path, "CrossEntropyLoss", loss_options={"weight": [1.0, 2.0]})
    assert isinstance(end, ev.FailedEvent) and "training.loss_options.weight: 2 weights for 3 classes" in end.message
    end, _ = tabular(tmp_path, "HuberLoss")
    assert isinstance(end, ev.FailedEvent) and "loss HuberLoss compares numbers" in end.message


@pytest.mark.parametrize("training", [
    {"optimizer": {"type": "Adadelta", "lr": 1.0}, "schedule": {"type": "StepLR", "step_size": 1, "gamma": 0.7}},
    {"optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9, "lr_scale": {"conv1": 0.1}},
     "schedule": {"type": "ReduceLROnPlateau", "patience": 0, "factor": 0.5, "warmup_epochs": 1}},
])
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path, training):
    proj = templates.load("digits_cnn")
    data = proj.to_json()
    data["training"].update(epochs=3, log_every=4, tensorboard=False, **training)
    proj = project.from_json(data)
    full = []
    assert isinstance(Engine(proj, run_dir=tmp_path / "full", handlers=[full.append]).run(), ev.FinishedEvent)
    engine = Engine(proj, run_dir=tmp_path / "part")
    first = []

    def stop_mid_epoch_two(e):
        first.append(e)
        if isinstance(e, ev.StepEvent) and e.step == 26:
            engine.controls.stop()
    engine.add_handler(stop_mid_epoch_two)
    stopped = engine.run()
    assert isinstance(stopped, ev.StoppedEvent) and stopped.epoch == 2
    second = []
    assert isinstance(Engine(proj, resume_from=stopped.checkpoint, handlers=[second.append]).run(), ev.FinishedEvent)

    def steps(events):
        return [(e.loss, e.lr) for e in events if isinstance(e, ev.StepEvent)]

    def epochs(events):
        return [(e.train_loss, e.val_loss, e.val_acc, e.lr) for e in events if isinstance(e, ev.EpochEvent)]
    assert steps(first) + steps(second) == steps(full)
    assert epochs(first) + epochs(second) == epochs(full)
    assert len({lr for _, lr in steps(full)}) > 1  # the schedule moved


def test_the_pytorch_examples_mnist_recipe_on_digits(tmp_path):
    """pytorch/examples' MNIST: Adadelta lr 1.0 + StepLR(step_size=1, gamma=0.7); a CNN on digits."""
    proj = templates.load("digits_cnn")
    data = proj.to_json()
    data["training"].update(epochs=5, tensorboard=False, optimizer={"type": "Adadelta", "lr": 1.0},
                            schedule={"type": "StepLR", "step_size": 1, "gamma": 0.7})
    proj = project.from_json(data)
    t0 = time.perf_counter()
    end = Engine(proj, run_dir=tmp_path / "run").run()
    seconds = time.perf_counter() - t0
    assert isinstance(end, ev.FinishedEvent), end
    assert end.best_val_acc >= 0.98, end.best_val_acc
    print(f"MNIST recipe on digits: best val acc {end.best_val_acc:.4f} in {seconds:.1f} s")
