"""The engine against a hand-written PyTorch loop: same model, data, seed and batch order.

Each side runs in its own fresh process (peak RSS is per process), alternating engine and
plain for several rounds in one invocation. Step time is the median epoch time (training,
validation and checkpoint) divided by steps per epoch, pooled over rounds without each
process's first epoch: on a shared machine the median of many epochs is far steadier than a
whole-run total, which is printed too. Both sides train the
digits CNN template and, each epoch, evaluate on the validation split and save a checkpoint;
the engine also does everything it always does (events, metrics.jsonl, TensorBoard files,
memory readings, the good-weights copy, the control checks). Prints the step-time ratio
(goal <= 1.03), the peak-memory ratio (process RSS on CPU, max_memory_allocated on CUDA;
goal <= 1.05) and whether every step's loss is identical. Last line: RESULT name=value ...
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "digits_cnn"


def worker(kind: str, epochs: int, device: str) -> dict:
    import torch
    from torch import nn

    from workbench import data, memory, templates

    torch.set_num_threads(2)
    proj = templates.load(TEMPLATE)
    proj.training.update(epochs=epochs, device=device)
    dev = torch.device(device)
    tmp = Path(tempfile.mkdtemp())
    if kind == "engine":
        from workbench import events as ev
        from workbench.training import Engine

        losses, marks = [], []

        def on_event(e):
            if isinstance(e, ev.StepEvent):
                losses.append(e.loss)
            elif isinstance(e, ev.EpochEvent):
                marks.append(time.perf_counter())  # after validation and the checkpoint, like plain's mark
        engine = Engine(proj, run_dir=tmp / "run", on_event=on_event)
        engine.setup()
        _sync(dev)
        t0 = time.perf_counter()
        end = engine.run()
        _sync(dev)
        seconds = time.perf_counter() - t0
        assert isinstance(end, ev.FinishedEvent), end
        steps = end.step
    else:
        bundle = data.load_data(proj.data)
        seed = proj.training["seed"]
        torch.manual_seed(seed)
        from workbench import build

        model = build.build_model(proj.model).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=proj.training["optimizer"]["lr"])
        loss_fn = nn.CrossEntropyLoss()
        loader = bundle.loader("train", seed=seed)
        val_loader = bundle.loader("val")
        losses, marks = [], []
        _sync(dev)
        t0 = time.perf_counter()
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
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch},
                       tmp / "last.pt")
            _sync(dev)
            marks.append(time.perf_counter())
        _sync(dev)
        seconds = time.perf_counter() - t0
        steps = len(losses)
    peak_dev = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    epoch_s = [b - a for a, b in zip([t0] + marks, marks)]
    return {"kind": kind, "seconds": seconds, "steps": steps, "losses": losses, "epoch_s": epoch_s,
            "peak_rss": memory.process_peak_rss(), "peak_device": peak_dev}


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def spawn(kind: str, epochs: int, device: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--epochs", str(epochs), "--device", device],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=("engine", "plain"))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs, args.device)))
        return
    runs: dict[str, list[dict]] = {"engine": [], "plain": []}
    for r in range(args.rounds):
        order = ("engine", "plain") if r % 2 == 0 else ("plain", "engine")
        for kind in order:
            res = spawn(kind, args.epochs, args.device)
            runs[kind].append(res)
            print(f"round {r + 1} {kind:6s}: {res['steps']} steps in {res['seconds']:.3f} s "
                  f"({1e3 * res['seconds'] / res['steps']:.3f} ms/step), peak RSS {res['peak_rss'] / 2**20:.1f} MiB"
                  + (f", peak allocated {res['peak_device'] / 2**20:.1f} MiB" if res["peak_device"] else ""))
    # Per epoch (train + validation + checkpoint), without each process's first (warm-up) epoch,
    # pooled over rounds: the median shrugs off bursts of load from other processes on the machine.
    med = {k: statistics.median(e / (r["steps"] / args.epochs) for r in v for e in r["epoch_s"][1:])
           for k, v in runs.items()}
    whole = {k: statistics.median(r["seconds"] / r["steps"] for r in v) for k, v in runs.items()}
    key = "peak_device" if args.device.startswith("cuda") else "peak_rss"
    mem = {k: statistics.median(r[key] for r in v) for k, v in runs.items()}
    same = all(e["losses"] == p["losses"] for e in runs["engine"] for p in runs["plain"])
    step_ratio, mem_ratio = med["engine"] / med["plain"], mem["engine"] / mem["plain"]
    what = "max_memory_allocated" if key == "peak_device" else "process peak RSS"
    print(f"{TEMPLATE} on {args.device}, {args.epochs} epochs, {args.rounds} fresh processes per side:")
    print(f"  step time   engine {1e3 * med['engine']:.3f} ms   plain {1e3 * med['plain']:.3f} ms   "
          f"ratio {step_ratio:.3f} (goal <= 1.03; median epoch / steps)")
    print(f"  whole runs  engine {1e3 * whole['engine']:.3f} ms   plain {1e3 * whole['plain']:.3f} ms   "
          f"ratio {whole['engine'] / whole['plain']:.3f} (median of whole-run averages, first epoch included)")
    print(f"  {what:20s} engine {mem['engine'] / 2**20:.1f} MiB   plain {mem['plain'] / 2**20:.1f} MiB   "
          f"ratio {mem_ratio:.3f} (goal <= 1.05)")
    print(f"  losses identical at every step: {'yes' if same else 'no'}")
    print(f"RESULT step_time_ratio={step_ratio:.3f} peak_memory_ratio={mem_ratio:.3f} "
          f"losses_identical={'yes' if same else 'no'} engine_ms_per_step={1e3 * med['engine']:.3f} "
          f"plain_ms_per_step={1e3 * med['plain']:.3f} device={args.device}")


if __name__ == "__main__":
    main()
