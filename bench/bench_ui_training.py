"""Training the digits CNN in the window: how responsive the window stays, and what the
window costs the training, against the headless engine on the same config in one run.

Rounds alternate (headless, window, headless, window, ...) in one invocation, so both sides
see the same machine load. Headless: ``Engine(project).run()`` in the main thread of a fresh
process, as ``workbench train`` does (a separate process: once a thread has run parallel
torch work, its OpenMP team lives on and throttles every other thread's, so a headless run
in this process would slow the window's run and flatter the comparison). Window: the real
MainWindow (Qt offscreen platform unless QT_QPA_PLATFORM says otherwise), Start pressed through
the Training dock, live plots, evaluation and memory gauges running, while a 10 ms heartbeat
QTimer measures how late the event loop serves it, from the press of Start to the end of the run (set-up included).
Throughput is the training set's size over the median epoch time (training only, first epoch
of each run left out); the ratio is headless / window (goal <= 1.10). Latency goals: p99 <=
30 ms, max <= 100 ms. Last line: RESULT name=value ... (``--quick``: 2 epochs, 1 round, a smoke
run whose RESULT says quick=1).
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
GOALS = {"ratio": 1.10, "p99": 30.0, "max": 100.0}


def project(epochs: int, folder: Path):
    proj = templates.load("digits_cnn")
    proj.training = dataclasses.replace(proj.training, epochs=epochs)
    proj.path = folder / "digits.wbproj"
    return proj


def headless_worker(epochs: int, folder: Path) -> None:
    """In its own process: train in the main thread, print epoch times as JSON."""
    torch.set_num_threads(2)
    seconds = []
    engine = Engine(project(epochs, folder), handlers=[lambda e: isinstance(e, ev.EpochEvent)
                                                      and seconds.append(e.seconds)])
    end = engine.run()
    assert isinstance(end, ev.FinishedEvent), end
    print(json.dumps({"seconds": seconds[1:], "train_size": engine.task.train_size}))


def headless(epochs: int, folder: Path) -> tuple[list[float], int]:
    out = subprocess.run([sys.executable, __file__, "--headless-worker", "--epochs", str(epochs),
                          "--folder", str(folder)], check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], result["train_size"]


def in_window(app, epochs: int, folder: Path) -> tuple[list[float], int, list[float]]:
    from ui.main_window import MainWindow

    window = MainWindow(project=project(epochs, folder))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--headless-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 round: a smoke run, not a measurement")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.rounds = 2, 1
    if args.headless_worker:
        headless_worker(args.epochs, Path(args.folder))
        return
    torch.set_num_threads(2)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from ui.startup import configure_app

    configure_app(app)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WORKBENCH_SETTINGS"] = str(Path(tmp) / "settings.ini")
        folder = Path(tmp)
        in_window(app, 1, folder)  # warm-up: imports, first kernels, dynamo (each headless process pays its own)
        epoch_h, epoch_w, late = [], [], []
        size = 0
        for r in range(args.rounds):
            h, size = headless(args.epochs, folder)
            w, _, lat = in_window(app, args.epochs, folder)
            epoch_h += h
            epoch_w += w
            late += lat
            print(f"round {r + 1}: headless {size / statistics.median(h):7.0f} samples/s, window "
                  f"{size / statistics.median(w):7.0f} samples/s, heartbeat p99 late {np.percentile(lat, 99):5.1f} ms")
    rate_h, rate_w = size / statistics.median(epoch_h), size / statistics.median(epoch_w)
    ratio = rate_h / rate_w
    p50, p99, worst = float(np.percentile(late, 50)), float(np.percentile(late, 99)), max(late)
    print(f"digits CNN, {args.epochs} epochs x {args.rounds} rounds per side, {torch.get_num_threads()} torch threads, "
          f"platform {app.platformName()}")
    print(f"{'':22}{'samples/s':>12}{'epoch s (median)':>18}")
    print(f"{'headless engine':22}{rate_h:12.0f}{statistics.median(epoch_h):18.3f}")
    print(f"{'in the window':22}{rate_w:12.0f}{statistics.median(epoch_w):18.3f}")
    print(f"headless / window throughput = {ratio:.3f} (goal <= {GOALS['ratio']})")
    print(f"heartbeat ({HEARTBEAT_MS} ms timer, {len(late)} beats) lateness: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {worst:.1f} ms (goals p99 <= {GOALS['p99']:.0f}, max <= {GOALS['max']:.0f})")
    met = ratio <= GOALS["ratio"] and p99 <= GOALS["p99"] and worst <= GOALS["max"]
    print(f"RESULT headless_samples_s={rate_h:.0f} window_samples_s={rate_w:.0f} throughput_ratio={ratio:.3f} "
          f"latency_p50_ms={p50:.1f} latency_p99_ms={p99:.1f} latency_max_ms={worst:.1f} "
          f"goal_met={'yes' if met else 'no'}" + (" quick=1" if args.quick else ""))


if __name__ == "__main__":
    main()
