"""Training health: per-layer samples only on the chosen steps, their records, and every
alert provoked on purpose (bad initialisation, huge and tiny learning rates, tiny data with
many epochs, dead ReLUs), while the digits templates train without one."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from workbench.cli import main as cli
from workbench.insight import alerts, health
from workbench.project import project_file, templates
from workbench.training import events as ev, runlog
from workbench.training.engine import Engine
from workbench.training.loop import StepRunner

import run_events


class Recorder(run_events.Recorder):
    def alerts(self, kind):
        return [e for e in self.of(ev.AlertEvent) if e.alert == kind]


def digits(name="digits_mlp", epochs=1, **training):
    proj = templates.load(name)
    proj.training = replace(proj.training, **{"epochs": epochs, "tensorboard": False, "device": "cpu", **training})
    return proj


def deep_mlp(epochs=1, depth=4, lr=0.001, optimizer="Adam", **data):
    layers = [{"id": "flat", "type": "Flatten"}]
    for i in range(depth):
        layers += [{"id": f"fc{i}", "type": "Linear", "args": {"out_features": 64}}, {"id": f"relu{i}", "type": "ReLU"}]
    layers.append({"id": "out", "type": "Linear", "args": {"out_features": 10 if not data else data["fake_classes"]}})
    source = {"source": "digits", "val_fraction": 0.2, "batch_size": 64} if not data else \
        {"source": "fake", "val_fraction": 0.5, "batch_size": 16, "fake_shape": [1, 8, 8], **data}
    return project_file.from_json({
        "format": "model-workbench/project", "version": 2, "name": "health test",
        "model": {"input": {"shape": [1, 8, 8]}, "layers": layers}, "data": source,
        "training": {"optimizer": {"type": optimizer, "lr": lr}, "loss": "CrossEntropyLoss", "epochs": epochs,
                     "device": "cpu", "seed": 0, "tensorboard": False, "health_every": 10}}, "health test")


def train(proj, tmp_path, before_run=None, name="run"):
    """Run with the health handlers (as workbench train and the window do); ``before_run(model)``
    changes the built model before the first step (a bad initialisation)."""
    rec = Recorder()
    engine = Engine(proj, run_dir=tmp_path / name, handlers=[*health.handlers(), rec])
    if before_run is not None:
        engine.setup()
        with torch.no_grad():
            before_run(engine.model)
    end = engine.run()
    return engine, end, rec


# ---------------------------------------------------------------- sampling

def test_samples_the_first_step_and_every_nth_with_each_layers_figures(tmp_path):
    proj = digits(health_every=10, tensorboard=True)
    engine, end, rec = train(proj, tmp_path)
    assert isinstance(end, ev.FinishedEvent), end
    samples = rec.of(ev.HealthEvent)
    assert [s.step for s in samples] == [1, 11, 21]  # 23 steps in the epoch
    s = samples[-1]
    assert s.layers == ["fc1", "relu1", "fc2"] and s.epoch == 1 and not s.skipped
    grads, ratios, dead = dict(zip(s.layers, s.grad_norm)), dict(zip(s.layers, s.update_ratio)), \
        dict(zip(s.layers, s.dead_fraction))
    assert grads["fc1"] > 0 and grads["fc2"] > 0 and grads["relu1"] is None  # no parameters, no gradient
    assert 1e-5 < ratios["fc1"] < 1e-1 and ratios["relu1"] is None
    assert 0 <= dead["relu1"] < 0.5 and dead["fc1"] is None  # dead units only after ReLU-like layers
    assert all(v is not None and v >= 0 for v in s.act_std)
    assert s.weight_norm[0] == pytest.approx(float(torch.cat([p.detach().reshape(-1) for p in
                                                              engine.model.fc1.parameters()]).norm()), rel=0.2)
    # every sample comes after the step events of its read-out, and no hook outlives its step
    order = [e.step for e in rec if isinstance(e, (ev.StepEvent, ev.HealthEvent))]
    assert all(e.step <= max(order[:i + 1]) for i, e in enumerate(rec) if isinstance(e, ev.HealthEvent))
    assert all(not m._forward_hooks for m in engine.model.modules())  # torch's own registry
    lines = [line for line in runlog.read_metrics(end.run_dir) if line["event"] == "health"]
    assert [line["step"] for line in lines] == [1, 11, 21] and lines[0]["layers"] == s.layers
    assert set(lines[0]["histograms"]) >= {"weights/fc1.weight", "gradients/fc1.weight", "weights/fc2.bias"}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"histograms": 0})
    board.Reload()
    assert {"weights/fc1.weight", "gradients/fc2.weight"} <= set(board.Tags()["histograms"])
    assert [h.step for h in board.Histograms("gradients/fc1.weight")] == [1, 11, 21]
    assert "health/update_ratio/fc1" in board.Tags()["scalars"]


def test_no_other_step_runs_with_a_watch(tmp_path, monkeypatch):
    watched = []
    original = StepRunner.__call__

    def spy(self, x, y, watch=None):
        watched.append(watch is not None)
        return original(self, x, y, watch) if watch is not None else original(self, x, y)
    monkeypatch.setattr(StepRunner, "__call__", spy)
    _, end, _ = train(digits(health_every=7), tmp_path)
    assert isinstance(end, ev.FinishedEvent)
    assert [i + 1 for i, w in enumerate(watched) if w] == [1, 8, 15, 22]


def test_health_every_0_turns_sampling_and_alerts_off(tmp_path):
    proj = digits(health_every=0)
    proj.set_setting("training.optimizer.lr", 1.0)  # would raise alerts
    engine, end, rec = train(proj, tmp_path)
    assert isinstance(end, ev.FinishedEvent)
    assert engine.watch is None and not rec.of(ev.HealthEvent) and not rec.of(ev.AlertEvent)


def test_only_the_main_process_samples():
    monitor = health.HealthMonitor()
    installed = []
    engine = SimpleNamespace(settings=SimpleNamespace(health_every=50), parallel=SimpleNamespace(is_main=False),
                             watch_steps=installed.append)
    monitor.on_run_start(engine, [])
    rules = alerts.HealthAlerts()
    rules.on_run_start(engine, [])
    assert monitor.probe is None and not installed and rules.rules is None


def test_mixed_precision_gradients_are_read_without_the_scale():
    """With a GradScaler the gradients are read after unscale_, so they equal a float32 run's."""
    def step(scaler):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        probe = health.HealthProbe(model, 1, lambda: (1, 1), histograms=False, scaled=scaler is not None)
        runner = StepRunner(model, opt, nn.CrossEntropyLoss(), torch.device("cpu"), scaler=scaler)
        x, y = torch.randn(32, 8, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 3
        runner(x, y, probe)
        return probe.take()[0]

    plain, scaled = step(None), step(torch.amp.GradScaler("cpu", init_scale=2.0 ** 16))
    assert scaled.grad_norm[0] == pytest.approx(plain.grad_norm[0], rel=1e-4)
    assert scaled.update_ratio[0] == pytest.approx(plain.update_ratio[0], rel=1e-4) and not scaled.skipped


# ---------------------------------------------------------------- alerts, provoked on purpose

def test_weights_times_100_raise_exploding_gradients_naming_the_layer_and_the_fix(tmp_path):
    def blow_up(model):
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                p.mul_(100)
    _, end, rec = train(deep_mlp(), tmp_path, blow_up)
    found = rec.alerts("exploding_gradients")
    assert {a.layer for a in found} >= {"fc0", "out"} and all(a.step == 1 for a in found)
    assert "grad_clip" in found[0].fix and "initialisation" in found[0].fix
    assert len(found) == len({a.layer for a in found})  # once per layer: it never cleared


def test_tiny_weights_raise_vanishing_gradients_in_the_first_layers(tmp_path):
    def shrink(model):
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                p.mul_(0.01)
    _, _, rec = train(deep_mlp(optimizer="SGD"), tmp_path, shrink)
    found = rec.alerts("vanishing_gradients")
    assert {a.layer for a in found} >= {"fc0", "fc1"} and "out" not in {a.layer for a in found}
    assert "initialisation" in found[0].fix
    low = rec.alerts("update_ratio")
    assert low and "below the healthy band 1e-05..0.1" in low[0].message and "raise" in low[0].fix


def test_a_large_negative_bias_kills_the_relus(tmp_path):
    def negative_bias(model):
        for name, p in model.named_parameters():
            if name.endswith("bias") and not name.startswith("out"):
                p.fill_(-5.0)
    _, _, rec = train(deep_mlp(), tmp_path, negative_bias)
    found = rec.alerts("dead_units")
    assert {a.layer for a in found} == {"relu0", "relu1", "relu2", "relu3"}
    assert "100% of its units" in found[0].message and "bias" in found[0].fix
    assert not rec.alerts("vanishing_gradients")  # a zero gradient behind dead units is that alert's


def test_a_huge_learning_rate_is_said_within_the_first_epoch_with_the_fix(tmp_path):
    _, end, rec = train(deep_mlp(lr=1.0), tmp_path)
    spikes, ratios = rec.alerts("loss_spike"), rec.alerts("update_ratio")
    assert len(spikes) == 1 and spikes[0].layer is None and spikes[0].epoch == 1
    assert "learning rate 1 is probably too high" in spikes[0].fix and "try 0.1" in spikes[0].fix
    assert ratios and all(a.step == 1 for a in ratios) and "above the healthy band" in ratios[0].message
    assert "lower training.optimizer.lr (try 0.1)" in ratios[0].fix


def test_a_learning_rate_too_small_to_move_the_loss_is_a_plateau(tmp_path):
    _, _, rec = train(deep_mlp(epochs=7, lr=1e-7, optimizer="SGD"), tmp_path)
    found = rec.alerts("plateau")
    assert len(found) == 1 and found[0].epoch == 6 and "has not improved by 1% in 5 epochs" in found[0].message
    assert "learning rate" in found[0].fix


def test_tiny_data_and_many_epochs_overfit(tmp_path):
    proj = deep_mlp(epochs=6, depth=1, lr=0.01, fake_size=64, fake_classes=4)
    _, _, rec = train(proj, tmp_path)
    found = rec.alerts("overfitting")
    epochs = rec.of(ev.EpochEvent)
    first = next(e.epoch for e in epochs[3:] if all(
        b.val_loss > a.val_loss and b.train_loss < a.train_loss for a, b in zip(epochs[e.epoch - 4:e.epoch - 1],
                                                                                 epochs[e.epoch - 3:e.epoch])))
    assert len(found) == 1 and found[0].epoch == first <= 6
    assert "validation loss rose 3 epochs in a row" in found[0].message and "best.ckpt" in found[0].fix


def test_workbench_train_prints_alerts_as_warning_lines(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "digits_mlp", "--epochs", "1", "--out", str(out), "--device", "cpu", "-q",
                     "--set", "training.optimizer.lr=1.0"])
    assert code == 0
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if line.startswith("warning: ")]
    assert any("the loss jumped to" in line and "fix: the learning rate 1 is probably too high" in line
               for line in warnings), err
    assert any(line.startswith("warning: layer 'fc1': the update/weight ratio") for line in warnings), err


# ---------------------------------------------------------------- rate limiting

def sample(step, dead):
    return ev.HealthEvent(step, 1, ["fc", "relu"], [1.0, None], [1.0, None], [1e-3, None], [0.0, 0.5],
                          [1.0, 1.0], [None, dead])


def test_an_alert_comes_once_per_kind_and_layer_until_it_clears():
    rules = alerts.HealthRules()
    assert [f.layer for f in rules.check_sample(sample(1, 0.9), 0.01)] == ["relu"]
    assert rules.check_sample(sample(51, 0.95), 0.01) == []  # still dead: not said again
    assert rules.check_sample(sample(101, 0.1), 0.01) == []  # cleared
    again = rules.check_sample(sample(151, 0.8), 0.01)
    assert [(f.kind, f.layer) for f in again] == [("dead_units", "relu")] and "151" in again[0].message


def test_a_ratio_just_outside_the_band_needs_two_samples_in_a_row():
    rules = alerts.HealthRules()
    high = ev.HealthEvent(1, 1, ["fc"], [1.0], [1.0], [0.2], [0.0], [1.0], [None])
    assert rules.check_sample(high, 0.01) == []  # one step's large update (Adam's first) is not yet a pattern
    assert [f.kind for f in rules.check_sample(replace(high, step=51), 0.01)] == ["update_ratio"]
    huge = ev.HealthEvent(1, 1, ["fc"], [1.0], [1.0], [3.0], [0.0], [1.0], [None])
    assert [f.kind for f in alerts.HealthRules().check_sample(huge, 0.01)] == ["update_ratio"]  # at once


# ---------------------------------------------------------------- healthy runs stay quiet

@pytest.mark.slow
@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp"])
def test_the_digits_templates_raise_no_alert_over_their_default_epochs(tmp_path, name):
    proj = templates.load(name)
    proj.training = replace(proj.training, tensorboard=False, device="cpu")
    _, end, rec = train(proj, tmp_path)
    assert isinstance(end, ev.FinishedEvent) and end.epochs == proj.training.epochs
    assert len(rec.of(ev.HealthEvent)) == len(range(0, end.step, 50))
    assert rec.of(ev.AlertEvent) == []
