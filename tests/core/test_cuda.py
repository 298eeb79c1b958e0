"""Every CUDA path of the core on a real device (issue 18): the engine in float32 and mixed
precision (float16 with its GradScaler, bfloat16), checkpoints written on the GPU read on the
CPU, the memory gauges against the allocator's own counters, polling that creates no context,
the memory forecast against the measured peak, the largest batch that fits and the clear
out-of-memory failure one beyond it, exports of a model living on the GPU, latency on CUDA.

Torch-only (no Qt), so the GPU machine runs them without PySide6. Every test is marked
``cuda``: tests/conftest.py skips them where PyTorch sees no CUDA device ("needs a CUDA GPU").
``bench/gpu_check.sh`` runs them with ``pytest -m cuda --junitxml``; the figures each test
records with ``record_property`` end up in its RESULT line.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.export import exporter
from workbench.insight import latency
from workbench.model import build
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import project_file, templates
from workbench.training import checkpoint, distributed, forecast, memory
from workbench.training import events as ev
from workbench.training.engine import Engine

from run_events import Recorder

pytestmark = pytest.mark.cuda

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 0.15  # the CPU forecast test's (tests/core/test_costs.py)


def digits(epochs: int = 1, amp: bool = False, name: str = "digits_cnn"):
    proj = templates.load(name)
    proj.training = dataclasses.replace(proj.training, epochs=epochs, amp=amp, tensorboard=False, device="cuda")
    return proj


def fake_project(batch: int, size: int, shape=(1, 32, 32)) -> object:
    """The digits CNN's layers on FakeData images of ``shape``: activations dominate its memory."""
    layers = templates.load("digits_cnn").model.to_json()["layers"]
    return project_file.from_json({
        "format": "model-workbench/project", "version": 3, "name": "fake cnn",
        "model": {"input": {"shape": list(shape)}, "layers": layers},
        "data": {"source": "fake", "val_fraction": 0.0, "batch_size": batch, "fake_size": size,
                 "fake_shape": list(shape), "fake_classes": 10},
        "training": {"optimizer": {"type": "Adam", "lr": 0.001}, "loss": "CrossEntropyLoss", "epochs": 1,
                     "device": "cuda", "seed": 0, "tensorboard": False, "log_every": 1}})


def run(proj, folder: Path, **kw):
    rec = Recorder()
    engine = Engine(proj, run_dir=folder, handlers=[rec], **kw)
    return engine, engine.run(), rec


@pytest.fixture
def clean_cuda():
    """Each memory test starts from an empty cache and leaves one behind."""
    gc.collect()
    torch.cuda.empty_cache()
    yield
    gc.collect()
    torch.cuda.empty_cache()


# ---------------------------------------------------------------- training

@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
def test_the_engine_trains_on_cuda_and_its_checkpoint_loads_on_the_cpu(precision, tmp_path, monkeypatch,
                                                                       record_property):
    if precision == "float16":  # the engine takes float16 (with a GradScaler) where bfloat16 is missing
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    elif precision == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    proj = digits(epochs=2, amp=precision != "float32")
    engine, end, rec = run(proj, tmp_path / "run")
    assert isinstance(end, ev.FinishedEvent), end
    assert str(engine.device) == "cuda:0" and next(engine.model.parameters()).is_cuda
    expected = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}[precision]
    assert engine.runner.amp_dtype == expected
    assert (engine.runner.scaler is not None) == (precision == "float16")
    losses = [s.loss for s in rec.of(ev.StepEvent)]
    assert losses and all(math.isfinite(v) for v in losses)
    assert end.best_val_acc > 0.5, end.best_val_acc  # it learned (chance is 0.1), in every precision
    saved = checkpoint.load(tmp_path / "run" / checkpoint.LAST)
    assert all(t.device.type == "cpu" for t in saved["model"].values())
    assert (saved["scaler"] is not None) == (precision == "float16")
    assert "cuda" in saved["rng"]
    model = build.build_model(proj.model)
    model.load_state_dict(saved["model"])
    model.eval()
    with torch.no_grad():
        cpu_out = model(build.example_input(proj.model, 4))
        engine.model.eval()
        gpu_out = engine.model(build.example_input(proj.model, 4).cuda()).float().cpu()
    assert torch.isfinite(cpu_out).all()
    torch.testing.assert_close(cpu_out, gpu_out, rtol=1e-2, atol=1e-2)  # the same weights (cuDNN may use TF32)
    record_property(f"train_{precision}_val_acc", round(end.best_val_acc, 4))
    record_property(f"train_{precision}_last_loss", round(losses[-1], 4))


def test_a_checkpoint_from_the_gpu_resumes_on_the_cpu(tmp_path):
    proj = digits(epochs=1)
    first, end, _ = run(proj, tmp_path / "run")
    assert isinstance(end, ev.FinishedEvent), end
    steps = end.step
    resumed, end2, rec = run(proj, tmp_path / "run", resume_from=tmp_path / "run" / checkpoint.LAST, device="cpu",
                             epochs=2)
    assert isinstance(end2, ev.FinishedEvent), end2
    assert str(resumed.device) == "cpu" and not next(resumed.model.parameters()).is_cuda
    started = rec.of(ev.StartedEvent)[0]
    assert started.start_epoch == 2 and end2.step == 2 * steps
    assert all(math.isfinite(s.loss) for s in rec.of(ev.StepEvent))


# ---------------------------------------------------------------- memory gauges

class Compare(ev.Handler):
    """At three points of a run (start, a loss read-out mid-epoch, an epoch's end) read the
    gauges' reading and, straight after, the allocator's own counters."""

    def __init__(self):
        self.points: list[tuple[str, memory.DeviceMemory, dict]] = []

    def take(self, engine, where: str) -> None:
        reading = memory.read([engine.device]).device(f"cuda:{engine.device.index or 0}")
        stats = torch.cuda.memory_stats(engine.device)
        self.points.append((where, reading, stats))

    def on_event(self, engine, event):
        if isinstance(event, ev.StartedEvent):
            self.take(engine, "start")
        elif isinstance(event, ev.EpochEvent) and event.epoch == 1:
            self.take(engine, "epoch")

    def on_steps(self, engine, steps):
        if not any(p[0] == "steps" for p in self.points) and steps[-1].step >= 3:
            self.take(engine, "steps")


def test_the_gauges_agree_exactly_with_memory_stats_at_three_points(tmp_path, clean_cuda, record_property):
    proj = digits(epochs=1)
    proj.training = dataclasses.replace(proj.training, log_every=2)
    compare = Compare()
    engine = Engine(proj, run_dir=tmp_path / "run", handlers=[compare])
    rec = Recorder()
    engine.add_handler(rec)
    end = engine.run()
    assert isinstance(end, ev.FinishedEvent), end
    assert [p[0] for p in compare.points] == ["start", "steps", "epoch"]
    for where, reading, stats in compare.points:
        assert reading is not None and reading.source == "torch", where
        assert reading.allocated == stats["allocated_bytes.all.current"], where
        assert reading.reserved == stats["reserved_bytes.all.current"], where
        assert reading.peak == stats["allocated_bytes.all.peak"], where
        record_property(f"gauge_{where}_allocated", reading.allocated)
        record_property(f"gauge_{where}_peak", reading.peak)
    assert compare.points[1][1].peak > compare.points[0][1].allocated  # training allocated more than set-up
    # what the engine's own polling sent to the window: the training device, read from torch
    sent = [e.reading for e in rec.of(ev.MemoryEvent)]
    assert sent and all(any(d["device"] == "cuda:0" and d["source"] == "torch" and d["allocated"] is not None
                            for d in r["devices"]) for r in sent)


NO_CONTEXT = """
import json, torch
from workbench.training import forecast, memory
out = {}
readings = [memory.read() for _ in range(3)]
out["polled_initialized"] = torch.cuda.is_initialized()
out["polled_context"] = bool(torch._C._cuda_hasPrimaryContext(0))
out["sources"] = sorted({d.source for d in readings[-1].devices})
out["nvml_total"] = next((d.total for d in readings[-1].devices if d.device == "cuda:0"), None)
forecast.capacity("cuda:0")
out["capacity_context"] = bool(torch._C._cuda_hasPrimaryContext(0))
torch.zeros(1, device="cuda")
out["context_after_allocation"] = bool(torch._C._cuda_hasPrimaryContext(0))
print(json.dumps(out))
"""


def test_polling_creates_no_cuda_context_in_a_process_without_one(record_property):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "-c", NO_CONTEXT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["context_after_allocation"], out  # the referee sees a context once there is one
    assert not out["polled_initialized"] and not out["polled_context"], out
    assert set(out["sources"]) <= {"nvml"}, out  # only NVML may report a device before CUDA starts
    record_property("polling_context", "no")
    record_property("nvml", "yes" if out["sources"] else "absent")
    record_property("capacity_creates_context", "yes" if out["capacity_context"] else "no")


# ---------------------------------------------------------------- forecast

def measure_cuda_peak(spec: ModelSpec, batch: int, optimizer, steps: int = 2) -> dict[str, int]:
    """forecast.measure_peak's loop on cuda:0: the peak of tensor memory (allocated) and of
    the allocator's segments (reserved) over ``steps`` training steps, above what the CUDA
    libraries keep once warmed up (a first step at batch 1 lets cuBLAS / cuDNN allocate their
    lasting workspaces; that figure is returned as ``libraries``)."""
    from torch import nn

    from workbench.training import optim

    gc.collect()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    loss_fn = nn.CrossEntropyLoss()
    classes = build.infer(spec).output_shape[-1]

    def train(b: int, n: int) -> None:
        model = build.build_model(spec).cuda()
        opt = optim.make_optimizer(model, optimizer)
        x = build.example_input(spec, b).cuda()
        y = torch.randint(0, classes, (b,), device="cuda")
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
        torch.cuda.synchronize()

    train(1, 1)
    gc.collect()
    torch.cuda.empty_cache()
    base, base_reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    torch.cuda.reset_peak_memory_stats()
    train(batch, steps)
    out = {"allocated": torch.cuda.max_memory_allocated() - base,
           "reserved": torch.cuda.max_memory_reserved() - base_reserved, "libraries": base - before}
    gc.collect()
    return out


@pytest.mark.parametrize("batch", [64, 512, 4096])
def test_the_forecast_is_within_15_percent_of_the_measured_peak_on_cuda(batch, clean_cuda, record_property):
    """The tensor parts of the forecast (everything but the CUDA overhead) against the peak the
    allocator counts, with the CPU test's tolerance; the overhead's rounding is recorded beside
    what the allocator really reserved beyond its tensors."""
    proj = digits()
    f = forecast.forecast(proj.model, batch, proj.training.optimizer, device="cuda:0")
    measured = measure_cuda_peak(proj.model, batch, proj.training.optimizer)
    predicted = f.total - f.overhead
    record_property(f"forecast_b{batch}", predicted)
    record_property(f"measured_b{batch}", measured["allocated"])
    record_property(f"rounding_forecast_b{batch}", f.overhead - forecast.CUDA_CONTEXT)
    record_property(f"rounding_measured_b{batch}", measured["reserved"] - measured["allocated"])
    record_property("cuda_library_workspace", measured["libraries"])
    assert abs(predicted - measured["allocated"]) <= TOLERANCE * measured["allocated"], (predicted, measured)


def test_the_largest_batch_that_fits_trains_and_a_larger_one_fails_in_words(tmp_path, clean_cuda, record_property):
    """The device bounded to 1 GiB for the allocator (set_per_process_memory_fraction), so the
    largest batch is a few hundred images: it trains; well beyond it the run ends with the
    engine's out-of-memory message, and the process trains again afterwards."""
    limit = 2**30
    total = torch.cuda.get_device_properties(0).total_memory
    held = torch.cuda.memory_reserved()  # what earlier tests keep (library workspaces) counts against the limit
    probe = fake_project(64, 128)
    f = forecast.forecast(probe.model, 64, probe.training.optimizer, device="cuda:0")
    most = forecast.largest_batch(f, forecast.CUDA_CONTEXT + limit - held)
    over = int(most * (1 + 2 * TOLERANCE)) + 1  # beyond what the forecast's error could explain
    assert 16 <= most and over < 1 << 16, most
    torch.cuda.set_per_process_memory_fraction((limit + 0.0) / total, 0)
    try:
        _, fits, _ = run(fake_project(most, 2 * most), tmp_path / "fits")
        assert isinstance(fits, ev.FinishedEvent), fits
        peak = torch.cuda.max_memory_allocated(0)  # the engine started a new peak window at its start
        _, one_more, _ = run(fake_project(most + 1, most + 1), tmp_path / "one-more")
        _, failed, _ = run(fake_project(over, over), tmp_path / "over")
        assert isinstance(failed, ev.FailedEvent), failed
        assert failed.message.startswith("out of memory at step 1 (") and "on cuda:0 with batch size " \
            f"{over}: lower data.batch_size (try {over // 2}), turn on training.amp" in failed.message, failed.message
        assert "Traceback" not in failed.message and not failed.fixable
        _, again, _ = run(fake_project(most, most), tmp_path / "again")  # the process is still usable
        assert isinstance(again, ev.FinishedEvent), again
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
    record_property("largest_batch_forecast", most)
    record_property("largest_batch_peak", peak)
    record_property("one_larger", "fits" if isinstance(one_more, ev.FinishedEvent) else "oom")
    record_property("oom_batch", over)
    record_property("oom_message", failed.message)


# ---------------------------------------------------------------- export, latency, devices

def test_every_format_exports_and_verifies_from_a_model_living_on_the_gpu(tmp_path, record_property):
    proj = digits(epochs=1)
    engine, end, _ = run(proj, tmp_path / "run")
    assert isinstance(end, ev.FinishedEvent), end
    results = exporter.export_all(engine.model, proj.model, tmp_path / "export")
    failed = [r.summary() for r in results if not r.ok or r.verification is None or not r.verification.passed]
    assert not failed, failed
    assert all(p.is_cuda for p in engine.model.parameters())  # the export used a CPU copy
    assert any("exporting a CPU copy" in line for r in results for line in r.log)
    record_property("exports_verified", len(results))


def test_latency_is_measured_on_cuda():
    spec = ModelSpec((64,), [LayerSpec("small", "Linear", {"out_features": 8}), LayerSpec("act", "ReLU"),
                             LayerSpec("big", "Linear", {"out_features": 2048}),
                             LayerSpec("wide", "Linear", {"out_features": 2048}),
                             LayerSpec("head", "Linear", {"out_features": 4})])
    report = latency.profile(spec, device="cuda:0")
    assert report.device == "cuda:0" and report.step_ms > 0
    assert {r.path for r in report.leaves()} >= {"small", "big", "wide", "head"}


def test_a_torchrun_process_on_cuda_takes_its_gpu_and_nccl():
    device, backend, _ = distributed.choose_device("cuda", 0)
    assert (device, backend) == (torch.device("cuda", 0), "nccl")
    assert distributed.choose_device("auto", 0)[:2] == (torch.device("cuda", 0), "nccl")
