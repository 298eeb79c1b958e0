"""What training health costs: step time with health sampled every 50 steps against health off.

Both sides train the digits CNN template through the engine with the health handlers added,
as ``workbench train`` and the window do: one with ``training.health_every=50`` (per-layer
norms, update ratios, activation hooks, TensorBoard histograms on the sampled steps, alerts),
one with ``training.health_every=0``. Same data, seed and batch order; the losses must be
identical at every step (sampling looks, never changes).

Step time: one fresh process runs the two alternately, round after round, and compares the
median over runs of each run's training time (the epochs' own seconds, validation left out,
the first epoch left out) divided by its steps. A mean over whole epochs, not a median of
epochs: a sample comes every 50 steps, about every second epoch of 23 steps, and a median
of epochs would leave those out. Alternating in one process cancels the drift of a shared
machine. Goal: ratio <= 1.03. Last line: RESULT name=value ...
(``--quick``: 2 epochs, 1 round, a smoke run whose RESULT says quick=1).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "digits_cnn"
EVERY = 50


def run(every: int, epochs: int, device: str) -> tuple[float, int, list[float], int]:
    """(training seconds of epochs 2.., their steps, every step's loss, health samples) of one run."""
    from workbench.insight import health
    from workbench.project import templates
    from workbench.training import events as ev
    from workbench.training.engine import Engine

    proj = templates.load(TEMPLATE)
    proj.training = dataclasses.replace(proj.training, epochs=epochs, device=device, health_every=every)
    losses, epochs_s, samples = [], [], []

    def on_event(e):
        if isinstance(e, ev.StepEvent):
            losses.append(e.loss)
        elif isinstance(e, ev.EpochEvent):
            epochs_s.append((e.seconds, e.step))
        elif isinstance(e, ev.HealthEvent):
            samples.append(e.step)
    engine = Engine(proj, run_dir=Path(tempfile.mkdtemp()) / "run", handlers=[*health.handlers(), on_event])
    end = engine.run()
    assert isinstance(end, ev.FinishedEvent), end
    timed = epochs_s[1:] or epochs_s
    steps = timed[-1][1] - (epochs_s[0][1] if len(epochs_s) > 1 else 0)
    return sum(s for s, _ in timed), steps, losses, len(samples)


def speed_worker(epochs: int, rounds: int, device: str) -> dict:
    import torch

    torch.set_num_threads(2)
    run(EVERY, 2, device)  # warm-up: imports, kernels, the first optimizer's dynamo import
    run(0, 2, device)
    ms: dict[str, list[float]] = {"on": [], "off": []}
    losses: dict[str, list[list[float]]] = {"on": [], "off": []}
    samples = 0
    for r in range(rounds):
        for kind in (("on", "off") if r % 2 == 0 else ("off", "on")):
            seconds, steps, lost, n = run(EVERY if kind == "on" else 0, epochs, device)
            ms[kind].append(1e3 * seconds / steps)
            losses[kind].append(lost)
            samples = max(samples, n)
    return {"ms": ms, "losses": losses, "samples": samples, "steps": len(losses["on"][0])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 round: a smoke run, not a measurement")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.rounds = 2, 1
    if args.worker:
        print(json.dumps(speed_worker(args.epochs, args.rounds, args.device)))
        return
    out = subprocess.run([sys.executable, __file__, "--worker", "--epochs", str(args.epochs), "--rounds",
                          str(args.rounds), "--device", args.device], capture_output=True, text=True, cwd=ROOT,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"the worker failed:\n{out.stderr[-3000:]}")
    speed = json.loads(out.stdout.strip().splitlines()[-1])
    ms = {k: statistics.median(v) for k, v in speed["ms"].items()}
    ratio = ms["on"] / ms["off"]
    runs = [lst for v in speed["losses"].values() for lst in v]
    same = all(lst == runs[0] for lst in runs)
    for kind, values in speed["ms"].items():
        print(f"health {kind:3s}: {len(values)} runs, ms per step {', '.join(f'{v:.3f}' for v in values)}")
    print(f"{TEMPLATE} on {args.device}, {args.epochs} epochs x {speed['steps'] // args.epochs} steps, "
          f"{args.rounds} alternating runs per side, {speed['samples']} health samples per run:")
    print(f"  step time (training only)  health every {EVERY}: {ms['on']:.3f} ms   off: {ms['off']:.3f} ms   "
          f"ratio {ratio:.3f} (goal <= 1.03)")
    print(f"  losses identical at every step of all {len(runs)} runs: {'yes' if same else 'no'}")
    print(f"RESULT health_step_time_ratio={ratio:.3f} on_ms_per_step={ms['on']:.3f} off_ms_per_step={ms['off']:.3f} "
          f"samples_per_run={speed['samples']} losses_identical={'yes' if same else 'no'} every={EVERY} "
          f"device={args.device}" + (" quick=1" if args.quick else ""))


if __name__ == "__main__":
    main()
