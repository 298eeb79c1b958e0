"""Per-layer cost (issue 17): FLOPs against a referee, the memory forecast against reality, and
what the live cost columns add to an edit.

1. Total MACs of resnet18 and the digits CNN from the per-layer counts (``model.costs``, meta
   device, layer by layer) against ``FlopCounterMode`` on the whole real model: goal 0.1%.
2. The training memory forecast (``training.forecast``) against the peak torch.profiler
   records (``profile_memory=True``: every CPU allocation and free of building the model and
   two Adam steps) at 3 batch sizes of the digits CNN: goal within 15%.
3. A one-row edit of a 200-layer stack: inference plus the cost columns' figures (the core part
   of an edit), median over edits: goal <= 16 ms (one frame), wall time; the thread's CPU time is
   printed beside it, since a shared machine stretches the wall time.

Last line: RESULT name=value ... (``--quick``: 20 layers, 5 edits, batch sizes 8/16/32; quick=1).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from workbench.model import build, costs
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import templates
from workbench.training import forecast

torch.set_num_threads(2)


def referee_error(name: str) -> float:
    proj = templates.load(name)
    model = build.build_model(proj.model).eval()
    with FlopCounterMode(display=False) as referee, torch.no_grad():
        model(build.example_input(proj.model, batch=1))
    ours = costs.costs(proj.model).macs
    theirs = referee.get_total_flops() // 2
    print(f"{name}: MACs {ours:,} vs FlopCounterMode {theirs:,}")
    return abs(ours - theirs) / theirs


def stack(n: int) -> ModelSpec:
    layers = []
    for i in range(n // 2):
        layers += [LayerSpec(f"c{i}", "Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}),
                   LayerSpec(f"a{i}", "ReLU")]
    return ModelSpec((16, 16, 16), layers)


def edit_ms(n: int, edits: int) -> tuple[float, float]:
    """(wall, CPU) milliseconds, medians: the CPU time of this thread is what the edit costs on
    a machine other programs share; the wall time is what a user waits on an idle one."""
    spec = stack(n)
    costs.costs(spec, build.infer(spec))  # the stack as it stands: every row measured once
    sizes = iter(range(17, 10_000))
    walls, cpus = [], []
    for k in range(edits):
        layer = spec.layers[(2 * k) % n]
        layer.args["out_channels"] = next(sizes)  # never seen before: this row and the next miss the cache
        t, c = time.perf_counter(), time.thread_time()
        costs.costs(spec, build.infer(spec))
        walls.append(time.perf_counter() - t)
        cpus.append(time.thread_time() - c)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    args = parser.parse_args()
    n, edits, batches = (20, 5, (8, 16, 32)) if args.quick else (200, 30, (16, 64, 256))
    resnet, digits = referee_error("resnet18_transfer"), referee_error("digits_cnn")
    proj = templates.load("digits_cnn")
    worst = 0.0
    for b in batches:
        predicted = forecast.forecast(proj.model, b, proj.training.optimizer).total
        measured = forecast.measure_peak(proj.model, b, proj.training.optimizer)
        err = abs(predicted - measured) / measured
        worst = max(worst, err)
        print(f"digits_cnn batch {b}: forecast {predicted:,} B, measured peak {measured:,} B ({err:.1%})")
    edit, edit_cpu = edit_ms(n, edits)
    print(f"{n}-layer stack: one-row edit with costs {edit:.2f} ms wall, {edit_cpu:.2f} ms CPU "
          f"(median of {edits})")
    ok = resnet <= 0.001 and digits <= 0.001 and worst <= 0.15 and (args.quick or edit <= 16)
    print(f"RESULT resnet18_macs_err={resnet:.5f} digits_macs_err={digits:.5f} forecast_worst_err={worst:.3f} "
          f"layers={n} edit_ms={edit:.2f} edit_cpu_ms={edit_cpu:.2f} goals_met={int(ok)}"
          + (" quick=1" if args.quick else ""))


if __name__ == "__main__":
    main()
