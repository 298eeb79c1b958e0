"""The engine against a hand-written PyTorch loop: same model, data, seed and batch order.

Both sides train the digits CNN template and, each epoch, evaluate on the validation split
and save a checkpoint; the engine also does everything it always does (events,
metrics.jsonl, TensorBoard files, memory readings, the good-weights copy, control checks).

Step time: one fresh process runs the two loops alternately, round after round, and
compares the median epoch (training + validation + checkpoint) divided by the steps per
epoch, leaving out each run's first epoch. Alternating in one process cancels the
+-10 % that separate processes differ by on a shared machine, which would hide a 3 % effect.
Peak memory: each side in its own fresh process (process peak RSS on CPU,
max_memory_allocated on CUDA). Losses: every step of every run compared exactly.
Goals: step-time ratio <= 1.03, peak-memory ratio <= 1.05. Last line: RESULT name=value ...
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "digits_cnn"


def engine_run(epochs: int, device: str) -> tuple[list[tuple[float, float]], list[float]]:
    """(per-epoch (wall, CPU) seconds, per-step losses) of one engine run."""
    import torch

    from workbench.training import events as ev
    from workbench.project import templates
    from workbench.training.engine import Engine

    proj = templates.load(TEMPLATE)
    proj.training = dataclasses.replace(proj.training, epochs=epochs, device=device)
    losses, marks = [], []

    def on_event(e):
        if isinstance(e, ev.StepEvent):
            losses.append(e.loss)
        elif isinstance(e, ev.EpochEvent):
            _sync(torch.device(device))
            marks.append((time.perf_counter(), time.process_time()))  # after validation and the checkpoint
    engine = Engine(proj, run_dir=Path(tempfile.mkdtemp()) / "run", handlers=[on_event])
    engine.setup()
    t0 = (time.perf_counter(), time.process_time())
    end = engine.run()
    assert isinstance(end, ev.FinishedEvent), end
    return _durations(t0, marks), losses


def plain_run(epochs: int, device: str) -> tuple[list[tuple[float, float]], list[float]]:
    """The loop a person writes by hand, on the same data loader (same batch order)."""
    import torch
    from torch import nn

    from workbench.model import build
    from workbench.data import bundle as data
    from workbench.project import templates

    proj = templates.load(TEMPLATE)
    bundle = data.load_data(proj.data)
    seed, dev = proj.training.seed, torch.device(device)
    torch.manual_seed(seed)
    model = build.build_model(proj.model).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=proj.training.optimizer.lr)
    loss_fn = nn.CrossEntropyLoss()
    loader, val_loader = bundle.loader("train", seed=seed), bundle.loader("val")
    tmp = Path(tempfile.mkdtemp())
    losses, marks = [], []
    t0 = (time.perf_counter(), time.process_time())
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)
        model.train()
        for x, y in loader:
            x, y = x.to(dev), y.to(dev)
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        correct = total = 0
        val_loss = 0.0
        with torch.no_grad():
            for x, y in val_loader:
                x, y = x.to(dev), y.to(dev)
                out = model(x)
                val_loss += loss_fn(out, y).item() * len(y)
                correct += int((out.argmax(1) == y).sum())
                total += len(y)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, tmp / "last.pt")
        _sync(dev)
        marks.append((time.perf_counter(), time.process_time()))
    return _durations(t0, marks), losses


def _durations(t0: tuple, marks: list[tuple]) -> list[tuple[float, float]]:
    """(wall seconds, process CPU seconds) of each epoch."""
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip([t0] + marks, marks)]


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


RUNS = {"engine": engine_run, "plain": plain_run}


def speed_worker(epochs: int, rounds: int, device: str) -> dict:
    import torch

    torch.set_num_threads(2)
    for run in RUNS.values():  # warm-up: imports, kernels, the first optimizer's dynamo import
        run(2, device)
    epochs_s: dict[str, list[tuple[float, float]]] = {k: [] for k in RUNS}
    losses: dict[str, list[list[float]]] = {k: [] for k in RUNS}
    for r in range(rounds):
        for kind in (("engine", "plain") if r % 2 == 0 else ("plain", "engine")):
            times, lost = RUNS[kind](epochs, device)
            epochs_s[kind].extend(times[1:])
            losses[kind].append(lost)
    return {"epochs_s": epochs_s, "losses": losses, "steps": len(losses["plain"][0])}


def memory_worker(kind: str, epochs: int, device: str) -> dict:
    import torch

    from workbench.training import memory

    torch.set_num_threads(2)
    _, losses = RUNS[kind](epochs, device)
    peak_dev = torch.cuda.max_memory_allocated(torch.device(device)) if device.startswith("cuda") else None
    return {"peak_rss": memory.process_peak_rss(), "peak_device": peak_dev, "losses": losses}


def spawn(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=("speed", "engine", "plain"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 round: a smoke run, not a measurement")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.rounds = 2, 1
    common = ["--epochs", str(args.epochs), "--device", args.device]
    if args.worker == "speed":
        print(json.dumps(speed_worker(args.epochs, args.rounds, args.device)))
        return
    if args.worker:
        print(json.dumps(memory_worker(args.worker, args.epochs, args.device)))
        return

    speed = spawn("--worker", "speed", "--rounds", str(args.rounds), *common)
    steps_per_epoch = speed["steps"] / args.epochs
    wall = {k: [w for w, _ in v] for k, v in speed["epochs_s"].items()}
    cpu = {k: [c for _, c in v] for k, v in speed["epochs_s"].items()}
    ms = {k: 1e3 * statistics.median(v) / steps_per_epoch for k, v in wall.items()}
    cpu_ms = {k: 1e3 * statistics.median(v) / steps_per_epoch for k, v in cpu.items()}
    for kind in RUNS:
        v = wall[kind]
        print(f"{kind:6s}: {len(v)} epochs timed over {args.rounds} runs: median {1e3 * statistics.median(v):.1f} ms "
              f"per epoch, fastest {1e3 * min(v):.1f}, slowest {1e3 * max(v):.1f}; process CPU "
              f"{1e3 * statistics.median(cpu[kind]):.1f} ms per epoch")
    mem = {kind: spawn("--worker", kind, *common) for kind in RUNS}
    key = "peak_device" if args.device.startswith("cuda") else "peak_rss"
    all_losses = [lst for v in speed["losses"].values() for lst in v] + [m["losses"] for m in mem.values()]
    same = all(lst == all_losses[0] for lst in all_losses)
    step_ratio, mem_ratio = ms["engine"] / ms["plain"], mem["engine"][key] / mem["plain"][key]
    what = "max_memory_allocated" if key == "peak_device" else "process peak RSS"
    print(f"{TEMPLATE} on {args.device}, {args.epochs} epochs x {speed['steps'] // args.epochs} steps, "
          f"{args.rounds} alternating runs per side:")
    print(f"  step time (epoch incl. validation + checkpoint / steps)  engine {ms['engine']:.3f} ms   "
          f"plain {ms['plain']:.3f} ms   ratio {step_ratio:.3f} (goal <= 1.03)")
    print(f"  process CPU time per step (less sensitive to other load)  engine {cpu_ms['engine']:.3f} ms   "
          f"plain {cpu_ms['plain']:.3f} ms   ratio {cpu_ms['engine'] / cpu_ms['plain']:.3f}")
    print(f"  {what} (fresh process each)  engine {mem['engine'][key] / 2**20:.1f} MiB   "
          f"plain {mem['plain'][key] / 2**20:.1f} MiB   ratio {mem_ratio:.3f} (goal <= 1.05)")
    print(f"  losses identical at every step of all {len(all_losses)} runs: {'yes' if same else 'no'}")
    print(f"RESULT step_time_ratio={step_ratio:.3f} peak_memory_ratio={mem_ratio:.3f} "
          f"losses_identical={'yes' if same else 'no'} engine_ms_per_step={ms['engine']:.3f} "
          f"plain_ms_per_step={ms['plain']:.3f} cpu_time_ratio={cpu_ms['engine'] / cpu_ms['plain']:.3f} "
          f"device={args.device}" + (" quick=1" if args.quick else ""))


if __name__ == "__main__":
    main()
