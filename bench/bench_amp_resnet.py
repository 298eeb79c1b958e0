"""resnet18 on FakeData trained through the workbench's own step, in float32 and in mixed precision
(float16 with a GradScaler, bfloat16): samples/s on the GPU and the speedup over the CPU.

Two measurements per precision:

- **step**: ``loop.StepRunner`` (the step the engine runs, built as ``Engine.setup`` builds it:
  ``build.build_model``, the project's optimizer and loss, autocast dtype and GradScaler) on
  one batch that already lives on the device: the model's own throughput.
- **engine**: a whole ``Engine`` run of FakeData images through the DataLoader (``--workers``)
  with ``training.amp`` off and on (the engine picks bfloat16 where the GPU has it, else
  float16): what a person training this project gets.

Without CUDA only the CPU is measured and the GPU figures read ``skipped``. Last line:
RESULT name=value ... (``--quick``: 32x32 images and a few steps, a smoke run that says quick=1).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from workbench.model import build
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import project_file
from workbench.training import events as ev
from workbench.training import optim
from workbench.training.engine import Engine
from workbench.training.loop import StepRunner

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def spec_for(size: int) -> ModelSpec:
    return ModelSpec((3, size, size), [LayerSpec("backbone", "resnet18", {"weights": "none"}),
                                       LayerSpec("head", "Linear", {"out_features": 10})])


def project(size: int, batch: int, examples: int, workers: int, amp: bool, device: str):
    return project_file.from_json({
        "format": "model-workbench/project", "version": 3, "name": "resnet18 FakeData",
        "model": spec_for(size).to_json(),
        "data": {"source": "fake", "val_fraction": 0.0, "batch_size": batch, "fake_size": examples,
                 "fake_shape": [3, size, size], "fake_classes": 10, "num_workers": workers},
        "training": {"optimizer": {"type": "SGD", "lr": 0.01, "momentum": 0.9}, "loss": "CrossEntropyLoss",
                     "epochs": 1, "device": device, "seed": 0, "amp": amp, "tensorboard": False,
                     "health_every": 0, "log_every": 10}})


def step_rate(size: int, batch: int, steps: int, device: str, precision: str) -> float:
    """Samples per second of StepRunner on a device-resident batch (after 3 warm-up steps)."""
    proj = project(size, batch, batch, 0, precision != "fp32", device)
    dev = torch.device(device)
    torch.manual_seed(0)
    model = build.build_model(proj.model).to(dev)
    opt = optim.make_optimizer(model, proj.training.optimizer)
    loss = optim.make_loss("CrossEntropyLoss", True, proj.training.loss_options, 10, 10).to(dev)
    dtype = PRECISIONS[precision]
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    runner = StepRunner(model, opt, loss, dev, amp_dtype=dtype, scaler=scaler)
    x = torch.randn(batch, 3, size, size, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    for _ in range(3):
        runner(x, y)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    values = [runner(x, y) for _ in range(steps)]
    last = torch.stack(values).float().cpu()  # waits for the device
    seconds = time.perf_counter() - start
    if not torch.isfinite(last).all():
        raise RuntimeError(f"{precision} on {device}: a loss was not finite: {last.tolist()}")
    return steps * batch / seconds


def engine_rate(size: int, batch: int, examples: int, workers: int, amp: bool, device: str) -> tuple[float, str]:
    """Median samples/s the engine's step events report for one epoch of FakeData, and the
    precision it trained in."""
    rates: list[float] = []

    def on_event(e):
        if isinstance(e, ev.StepEvent):
            rates.append(e.samples_per_s)

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(project(size, batch, examples, workers, amp, device), run_dir=Path(tmp) / "run",
                        handlers=[on_event])
        end = engine.run()
        dtype = engine.runner.amp_dtype if engine.runner is not None else None
    if not isinstance(end, ev.FinishedEvent):
        raise RuntimeError(f"the engine run ended: {end}")
    used = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    later = rates[len(rates) // 4:] or rates  # the first read-outs include the workers' start
    return statistics.median(later), used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32x32 images, a few steps: a smoke run")
    parser.add_argument("--size", type=int, default=224, help="image height and width (default 224)")
    parser.add_argument("--batch", type=int, default=128, help="batch on the GPU (default 128)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps on the GPU (default 20)")
    parser.add_argument("--cpu-batch", type=int, default=16, help="batch on the CPU (default 16)")
    parser.add_argument("--cpu-steps", type=int, default=3, help="timed steps on the CPU (default 3)")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers of the engine runs (default 8)")
    parser.add_argument("--examples", type=int, default=4096, help="FakeData images per engine run (default 4096)")
    args = parser.parse_args()
    if args.quick:
        args.size, args.batch, args.steps, args.cpu_batch, args.cpu_steps = 32, 8, 2, 4, 2
        args.workers, args.examples = 0, 32
    cuda = torch.cuda.is_available()
    result: dict[str, str] = {}
    cpu = step_rate(args.size, args.cpu_batch, args.cpu_steps, "cpu", "fp32")
    print(f"cpu  fp32 step: {cpu:9.1f} samples/s (batch {args.cpu_batch}, {torch.get_num_threads()} threads)")
    result["cpu_fp32"] = f"{cpu:.1f}"
    for precision in PRECISIONS:
        key = f"cuda_{precision}"
        if not cuda or (precision == "bf16" and not torch.cuda.is_bf16_supported()):
            result[key] = result[f"speedup_{precision}"] = "skipped"
            continue
        rate = step_rate(args.size, args.batch, args.steps, "cuda", precision)
        print(f"cuda {precision} step: {rate:9.1f} samples/s (batch {args.batch}), {rate / cpu:.1f}x the CPU")
        result[key] = f"{rate:.1f}"
        result[f"speedup_{precision}"] = f"{rate / cpu:.1f}"
    device = "cuda" if cuda else "cpu"
    for amp in (False, True):
        rate, used = engine_rate(args.size, args.batch if cuda else args.cpu_batch, args.examples, args.workers,
                                 amp, device)
        name = "engine_amp" if amp else "engine_fp32"
        print(f"engine on {device}, training.amp={str(amp).lower()}: {rate:9.1f} samples/s in {used} "
              f"({args.examples} FakeData images, {args.workers} workers)")
        result[name] = f"{rate:.1f}"
        if amp:
            result["engine_amp_dtype"] = used
    result["size"] = str(args.size)
    result["device"] = torch.cuda.get_device_name(0).replace(" ", "_") if cuda else "cpu"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()) + (" quick=1" if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
