"""Training in the window: how responsive the window stays, and what the window costs the
training, against the headless engine on the same config in one run.

Two cases (``--case``): the digits CNN, whose ~10 ms steps show any per-step overhead most,
and a resnet18 backbone on 3x64x64 FakeData, whose ~100 ms steps leave the window's overhead
nothing to hide behind but the GIL (goal there: ratio <= 1.02).

Rounds alternate (headless, window, headless, window, ...) in one invocation, so both sides
see the same machine load. Headless: ``Engine(project).run()`` in the main thread of a fresh
process, as ``workbench train`` does (a separate process: once a thread has run parallel
torch work, its OpenMP team lives on and throttles every other thread's, so a headless run
in this process would slow the window's run and flatter the comparison). Window: the real
MainWindow (Qt offscreen platform unless QT_QPA_PLATFORM says otherwise), Start pressed through
the Training dock, live plots, evaluation and memory gauges running, while a 10 ms heartbeat
QTimer measures how late the event loop serves it, from the press of Start to the end of the run (set-up included).
Throughput is the training set's size over the median epoch time (training only, first epoch
of each run left out); the ratio is headless / window (goals: <= 1.05 digits, <= 1.02 resnet18).
Latency goals (digits): p99 <= 16 ms, max <= 50 ms. Last line: RESULT name=value ... with
``throughput_ratio`` / ``latency_p99_ms`` for digits and ``resnet18_`` prefixed keys for the
other case (``--quick``: 2 epochs, 1 round, small sizes: a smoke run whose RESULT says quick=1).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from workbench.training import events as ev  # noqa: E402
from workbench.project import templates  # noqa: E402
from workbench.training.engine import Engine  # noqa: E402

HEARTBEAT_MS = 10
CASES = ("digits", "resnet18")
GOALS = {"digits": {"ratio": 1.05, "p99": 16.0, "max": 50.0}, "resnet18": {"ratio": 1.02}}
FAKE_SIZE = 640  # resnet18 case: 16 steps of 32 per epoch after the 20% validation split


def project(case: str, epochs: int, folder: Path, quick: bool = False):
    if case == "digits":
        proj = templates.load("digits_cnn")
    else:  # every stage trainable: a full resnet18 step, ~100 ms on two cores
        proj = templates.load("resnet18_transfer")
        backbone = proj.model.layers[0]
        backbone.frozen_stages = []
        proj.data = dataclasses.replace(proj.data, fake_size=64 if quick else FAKE_SIZE)
    proj.training = dataclasses.replace(proj.training, epochs=epochs)
    proj.path = folder / f"{case}.wbproj"
    return proj


def headless_worker(case: str, epochs: int, folder: Path, quick: bool) -> None:
    """In its own process: train in the main thread, print epoch times as JSON."""
    torch.set_num_threads(2)
    seconds = []
    engine = Engine(project(case, epochs, folder, quick), handlers=[lambda e: isinstance(e, ev.EpochEvent)
                                                                    and seconds.append(e.seconds)])
    end = engine.run()
    assert isinstance(end, ev.FinishedEvent), end
    print(json.dumps({"seconds": seconds[1:], "train_size": engine.task.train_size}))


def headless(case: str, epochs: int, folder: Path, quick: bool) -> tuple[list[float], int]:
    out = subprocess.run([sys.executable, __file__, "--headless-worker", "--case", case, "--epochs", str(epochs),
                          "--folder", str(folder)] + (["--quick"] if quick else []),
                         check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], result["train_size"]


def in_window(app, case: str, epochs: int, folder: Path, quick: bool = False
              ) -> tuple[list[float], int, list[float]]:
    from ui.main_window import MainWindow

    window = MainWindow(project=project(case, epochs, folder, quick))
    window.resize(1280, 800)
    window.show()
    dock = window.training
    dock.panel.probe.wait()
    app.processEvents()
    late: list[float] = []
    last = [time.perf_counter()]

    def beat():
        now = time.perf_counter()
        late.append(max(0.0, (now - last[0]) * 1000 - HEARTBEAT_MS))
        last[0] = now
    heart = QTimer()
    heart.setTimerType(Qt.TimerType.PreciseTimer)
    heart.setInterval(HEARTBEAT_MS)
    heart.timeout.connect(beat)
    seconds: list[float] = []
    loop = QEventLoop()
    heart.start()
    last[0] = time.perf_counter()
    assert dock.start(), "the window refused to start"
    dock.run.events.connect(lambda batch: seconds.extend(d.event.seconds for d in batch
                                                         if isinstance(d.event, ev.EpochEvent)))
    dock.run.ended.connect(lambda *_: loop.quit())
    engine = dock.run.engine
    loop.exec()
    heart.stop()
    end = dock.last_end
    assert isinstance(end, ev.FinishedEvent), end
    train_size = engine.task.train_size
    window.doc.undo_stack.setClean()
    window.close()
    window.deleteLater()
    app.processEvents()
    return seconds[1:], train_size, late


def measure(app, case: str, epochs: int, rounds: int, folder: Path, quick: bool) -> dict:
    """Alternate headless and window runs of one case; the figures and whether the goals are met."""
    in_window(app, case, 1, folder, quick)  # warm-up: imports, first kernels (each headless process pays its own)
    epoch_h, epoch_w, late = [], [], []
    size = 0
    for r in range(rounds):
        h, size = headless(case, epochs, folder, quick)
        w, _, lat = in_window(app, case, epochs, folder, quick)
        epoch_h += h
        epoch_w += w
        late += lat
        print(f"{case} round {r + 1}: headless {size / statistics.median(h):7.0f} samples/s, window "
              f"{size / statistics.median(w):7.0f} samples/s, heartbeat p99 late {np.percentile(lat, 99):5.1f} ms")
    rate_h, rate_w = size / statistics.median(epoch_h), size / statistics.median(epoch_w)
    ratio = rate_h / rate_w
    p50, p99, worst = float(np.percentile(late, 50)), float(np.percentile(late, 99)), max(late)
    goals = GOALS[case]
    print(f"{case}: {epochs} epochs x {rounds} rounds per side, {torch.get_num_threads()} torch threads, "
          f"platform {app.platformName()}")
    print(f"{'':22}{'samples/s':>12}{'epoch s (median)':>18}{'step ms':>10}")
    steps = -(-size // 32)
    for name, rate, seconds in (("headless engine", rate_h, epoch_h), ("in the window", rate_w, epoch_w)):
        print(f"{name:22}{rate:12.0f}{statistics.median(seconds):18.3f}"
              f"{1000 * statistics.median(seconds) / steps:10.1f}")
    print(f"headless / window throughput = {ratio:.3f} (goal <= {goals['ratio']})")
    print(f"heartbeat ({HEARTBEAT_MS} ms timer, {len(late)} beats) lateness: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {worst:.1f} ms" + (f" (goals p99 <= {goals['p99']:.0f}, max <= {goals['max']:.0f})"
                                   if "p99" in goals else ""))
    met = ratio <= goals["ratio"] and p99 <= goals.get("p99", float("inf")) and worst <= goals.get("max", float("inf"))
    return {"headless_samples_s": f"{rate_h:.0f}", "window_samples_s": f"{rate_w:.0f}",
            "throughput_ratio": f"{ratio:.3f}", "latency_p50_ms": f"{p50:.1f}", "latency_p99_ms": f"{p99:.1f}",
            "latency_max_ms": f"{worst:.1f}", "goal_met": "yes" if met else "no"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=(*CASES, "all"), default="all")
    parser.add_argument("--epochs", type=int, help="per run (default: 12 digits, 6 resnet18)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--headless-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 round: a smoke run, not a measurement")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.rounds = 2, 1
    if args.headless_worker:
        headless_worker(args.case, args.epochs, Path(args.folder), args.quick)
        return
    torch.set_num_threads(2)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from ui.startup import configure_app

    configure_app(app)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WORKBENCH_SETTINGS"] = str(Path(tmp) / "settings.ini")
        for case in CASES if args.case == "all" else (args.case,):
            epochs = args.epochs or {"digits": 12, "resnet18": 6}[case]
            figures = measure(app, case, epochs, args.rounds, Path(tmp), args.quick)
            result.update({(k if case == "digits" else f"{case}_{k}"): v for k, v in figures.items()})
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()) + (" quick=1" if args.quick else ""))


if __name__ == "__main__":
    main()
