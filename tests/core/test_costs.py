"""Per-layer cost (issue 17): FLOPs and MACs against closed forms and FlopCounterMode, the
training memory forecast against the peak torch's profiler measures, and `summary --costs`."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from workbench.insight import costs as insight
from workbench.model import build, costs
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import templates
from workbench.project.settings import OptimizerSettings
from workbench.training import forecast


def test_conv2d_and_linear_macs_equal_the_closed_form():
    spec = ModelSpec((3, 32, 32), [LayerSpec("conv", "Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}),
                                   LayerSpec("flat", "Flatten"), LayerSpec("fc", "Linear", {"out_features": 10})])
    c = costs.costs(spec)
    assert c.rows["conv"].macs == 16 * 32 * 32 * (3 * 3 * 3)  # out elements x (in_channels x k x k)
    assert c.rows["fc"].macs == 10 * 16 * 32 * 32  # out_features x in_features
    assert c.rows["flat"].macs == 0
    assert c.macs == c.rows["conv"].macs + c.rows["fc"].macs and c.flops == 2 * c.macs


@pytest.mark.parametrize("name", ["resnet18_transfer", "digits_cnn"])
def test_totals_equal_flop_counter_mode_on_the_whole_model(name):
    proj = templates.load(name)
    model = build.build_model(proj.model).eval()
    x = build.example_input(proj.model, batch=1)
    with FlopCounterMode(display=False) as referee, torch.no_grad():
        model(x)
    assert costs.costs(proj.model).flops == referee.get_total_flops()


def test_a_shared_parameter_is_counted_once():
    fc = nn.Linear(8, 8)
    model = nn.Sequential(fc, nn.ReLU(), fc)
    flops, params = costs.module_costs(model, torch.zeros(1, 8))
    assert params == 8 * 8 + 8 and flops == 2 * 2 * 8 * 8


def test_the_optimizer_state_is_read_from_the_optimizer():
    assert forecast.state_per_value(OptimizerSettings(type="Adam")) == 2
    assert forecast.state_per_value(OptimizerSettings(type="AdamW")) == 2
    assert forecast.state_per_value(OptimizerSettings(type="Adam", amsgrad=True)) == 3
    assert forecast.state_per_value(OptimizerSettings(type="SGD", momentum=0.9)) == 1
    assert forecast.state_per_value(OptimizerSettings(type="SGD")) == 0


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp"])
@pytest.mark.parametrize("batch", [16, 64, 256])
def test_the_forecast_is_within_15_percent_of_the_measured_peak_on_cpu(name, batch):
    proj = templates.load(name)
    predicted = forecast.forecast(proj.model, batch, proj.training.optimizer).total
    measured = forecast.measure_peak(proj.model, batch, proj.training.optimizer)
    assert abs(predicted - measured) <= 0.15 * measured, (predicted, measured)


def test_a_frozen_beginning_saves_less_and_the_forecast_still_meets_the_measured_peak():
    proj = templates.load("digits_cnn")
    trainable = forecast.forecast(proj.model, 64, proj.training.optimizer)
    for layer in proj.model.layers[:2]:  # conv1 and bn1: nothing before them learns, so they save nothing
        layer.frozen = True
    frozen = forecast.forecast(proj.model, 64, proj.training.optimizer)
    assert frozen.activations < trainable.activations and frozen.gradients < trainable.gradients
    measured = forecast.measure_peak(proj.model, 64, proj.training.optimizer)
    assert abs(frozen.total - measured) <= 0.15 * measured, (frozen.total, measured)


def test_largest_batch_fits_and_one_more_does_not():
    proj = templates.load("digits_cnn")
    f = forecast.forecast(proj.model, 64, proj.training.optimizer)
    most = forecast.largest_batch(f, 50_000_000)
    assert forecast.forecast(proj.model, most, proj.training.optimizer).total <= 50_000_000
    assert forecast.forecast(proj.model, most + 1, proj.training.optimizer).total > 50_000_000
    assert "a batch of at most" in forecast.fit_note(forecast.forecast(proj.model, most + 1), 50_000_000)


def test_cuda_adds_context_and_rounding():
    proj = templates.load("digits_cnn")
    cpu = forecast.forecast(proj.model, 8, device="cpu")
    gpu = forecast.forecast(proj.model, 8, device="cuda:0")
    assert cpu.overhead == 0 and gpu.overhead >= forecast.CUDA_CONTEXT


def test_an_edit_recomputes_only_the_edited_rows(monkeypatch):
    spec = ModelSpec((16,), [LayerSpec(f"fc{i}", "Linear", {"out_features": 16}) for i in range(20)])
    costs.costs(spec)
    calls = []
    real = costs.measure
    monkeypatch.setattr(costs, "measure", lambda *a, **k: calls.append(1) or real(*a, **k))
    spec.layers[5].args["out_features"] = 17
    costs.costs(spec)
    assert len(calls) == 2  # the edited row and the next one (its input changed)


def test_the_engine_notes_a_batch_that_will_not_fit(monkeypatch):
    proj = templates.load("digits_cnn")
    monkeypatch.setattr(forecast, "capacity", lambda device: 1_000_000)
    note = forecast.run_note(proj.model, 256, proj.training.optimizer, "cpu")
    assert note is not None and "batch of 256" in note and "at most" in note
    assert forecast.run_note(proj.model, 2, proj.training.optimizer, "cpu") is None


def cli(*args):
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_summary_costs_prints_macs_and_the_forecast():
    run = cli("summary", "digits_cnn", "--costs", "--batch", "32")
    assert run.returncode == 0, run.stderr
    assert "MACs" in run.stdout and "memory@32" in run.stdout
    assert "1.21M MACs per example" in run.stdout
    assert "optimizer state (2 values per weight)" in run.stdout and "largest batch that fits" in run.stdout
    run = cli("summary", "digits_cnn", "--costs", "--json", "--batch", "8", "--dtype", "bfloat16")
    out = json.loads(run.stdout)
    assert out["costs"]["macs"] == 1208320 and out["costs"]["memory"]["batch"] == 8
    assert out["costs"]["memory"]["dtype"] == "bfloat16"
    assert out["layers"][0]["macs"] == 18432


def test_summary_costs_refuses_a_bad_batch():
    run = cli("summary", "digits_cnn", "--costs", "--batch", "0")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == "error: the batch size (--batch) must be at least 1, not 0"


def test_report_words():
    proj = templates.load("digits_cnn")
    r = insight.report(proj.model, 64, proj.training.optimizer, capacity=10_000_000)
    assert r.fits and "batch ≤" in insight.summary(r) and "1.21M MACs" in insight.summary(r)
