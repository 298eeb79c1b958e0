"""The learning-rate finder (workbench/experiments/lr_finder.py) and `workbench lr-find`."""
from __future__ import annotations

import csv
import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from workbench.cli import main as cli
from workbench.experiments import lr_finder
from workbench.project import project_file as project, templates


def tiny_problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return model, [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]


def stepper(model, optimizer):
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()
    return step


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_weights_optimizer_state_and_mode_are_bitwise_the_same_after(kind):
    model, batches = tiny_problem()
    optimizer = getattr(torch.optim, kind)(model.parameters(), lr=0.01)
    step = stepper(model, optimizer)
    for x, y in batches[:2]:  # an optimiser with state already (Adam's moments)
        step(x, y)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = optimizer.state_dict()
    opt_before = {"state": {k: {n: t.clone() if torch.is_tensor(t) else t for n, t in v.items()}
                            for k, v in opt_before["state"].items()}, "groups": opt_before["param_groups"]}
    rng = torch.get_rng_state()
    curve = lr_finder.lr_find(model, optimizer, lambda: iter(batches), step, steps=60)
    assert len(curve.lrs) > 20
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    assert not model.training and not model[3].training
    now = optimizer.state_dict()
    assert now["param_groups"] == opt_before["groups"]  # lr back at 0.01
    assert all(torch.equal(torch.as_tensor(opt_before["state"][k][n]), torch.as_tensor(now["state"][k][n]))
               for k in opt_before["state"] for n in opt_before["state"][k])
    assert torch.equal(torch.get_rng_state(), rng)


def test_the_ramp_is_exponential_and_the_test_stops_when_the_loss_diverges():
    assert lr_finder.ramp(1e-7, 10, 100)[0] == pytest.approx(1e-7)
    assert lr_finder.ramp(1e-7, 10, 100)[-1] == pytest.approx(10)
    ratios = {round(b / a, 9) for a, b in zip(lr_finder.ramp(1e-7, 10, 100), lr_finder.ramp(1e-7, 10, 100)[1:])}
    assert len(ratios) == 1
    model, batches = tiny_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    curve = lr_finder.lr_find(model, optimizer, lambda: iter(batches), stepper(model, optimizer), end=1e4)
    assert curve.ended == "diverged" and len(curve.lrs) < 100
    last = curve.smoothed[-1]
    assert not math.isfinite(last) or last > lr_finder.DIVERGE * min(curve.smoothed[:-1])
    assert curve.suggestion is not None and curve.lrs[0] < curve.suggestion < curve.lrs[-1]


def test_the_suggestion_is_the_steepest_descent_against_log_lr():
    lrs = lr_finder.ramp(1e-4, 1, 41)
    # a loss that falls fastest at lr 1e-2 (a logistic step in log10(lr)), flat elsewhere
    smoothed = [2 - 1 / (1 + math.exp(-4 * (math.log10(lr) + 2))) for lr in lrs]
    i = lr_finder.suggest(lrs, smoothed)
    assert lrs[i] == pytest.approx(1e-2)
    assert lr_finder.suggest(lrs[:11], smoothed[:11]) is None  # the first 10 and the last point are left out


def test_stop_ends_the_test_and_still_restores():
    model, batches = tiny_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    curve = lr_finder.lr_find(model, optimizer, lambda: iter(batches), stepper(model, optimizer),
                              stop=lambda: len(seen) >= 5, progress=lambda *p: seen.append(p))
    assert curve.ended == "stopped" and len(curve.lrs) == 5 and curve.suggestion is None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_on_a_project_uses_its_settings_and_changes_nothing():
    proj = templates.load("tabular_mlp")
    proj.training = replace(proj.training, device="cpu", optimizer=proj.training.optimizer.for_type("SGD"))
    before = project.from_json(proj.to_json()).to_json()
    curve = lr_finder.find_for_project(proj, steps=40)
    assert curve.suggestion is not None and 1e-7 <= curve.suggestion <= 10
    assert proj.to_json() == before


def test_cli_prints_the_suggestion_and_writes_the_curve(tmp_path, capsys):
    proj = templates.load("tabular_mlp")
    proj.training = replace(proj.training, device="cpu")
    path = tmp_path / "wine.wbproj"
    project.save(proj, path)
    before = path.read_bytes()
    assert cli.main(["lr-find", str(path), "--steps", "40"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("suggested learning rate ") and "steepest descent" in out
    assert "--set training.optimizer.lr=" in out
    rows = list(csv.DictReader((tmp_path / "wine.lr-find.csv").open()))
    assert 11 < len(rows) <= 40 and list(rows[0]) == ["step", "lr", "loss", "smoothed_loss"]
    assert float(rows[0]["lr"]) == pytest.approx(1e-7)
    assert path.read_bytes() == before  # the project file is not changed
    target = tmp_path / "curve.csv"
    assert cli.main(["lr-find", str(path), "--steps", "30", "-o", str(target)]) == 0
    assert target.exists() and not list(tmp_path.glob(".curve.csv.*"))  # atomic: no temp left


@pytest.mark.parametrize("args,words", [
    (["--start", "0"], "start must be a number above 0"),
    (["--start", "1", "--end", "0.1"], "end (0.1) must be above its start (1)"),
    (["--steps", "1"], "steps must be a whole number from 2"),
    (["--end", "nan"], "end must be a number above 0"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--set", "training.optimizer.type=LBFGS"], "LBFGS needs a closure"),
])
def test_bad_input_is_one_line_and_exit_2(args, words, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["lr-find", "tabular_mlp", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0]
    assert not list(tmp_path.iterdir())
