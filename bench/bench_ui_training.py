"""Training in the window: how responsive the window stays, and what the window costs the
training, against the headless engine on the same config in one run.

Two cases (``--case``): the digits CNN, whose ~10 ms steps show any per-step overhead most,
and a resnet18 backbone on 3x64x64 FakeData, whose ~100 ms steps leave the window's overhead
nothing to hide behind but the GIL (goal there: ratio <= 1.02).

Rounds pair a headless run with a window run in one process, in alternating order, so both
sides of a round see the same machine load: on the shared 2-core machine the same headless run
measures anywhere from 6,000 to 9,000 samples/s from one process or minute to the next, so only
paired figures compare. Headless: ``Engine(project).run()`` with the health handlers (sampling
every ``training.health_every`` steps), as ``workbench train`` runs it, on a fresh thread
while the main thread waits (its OpenMP team ends with the thread, as it would
with a process; a long-lived trained thread's team would throttle the window's). Window: the
real MainWindow (Qt offscreen platform unless QT_QPA_PLATFORM says otherwise), Start pressed
through the Training dock, live plots, evaluation and memory gauges running, while a 10 ms
heartbeat QTimer measures how late the event loop serves it, from the press of Start to the end
of the run (set-up included). Each window first settles (its start-up workers answer), and the
last round's window is destroyed before the next opens, so neither lands inside a run.
Throughput is the training set's size over the median epoch time (training only, first epoch
of each run left out); a round's ratio is headless / window, and the figure is the median of
the rounds' ratios (goals: <= 1.05 digits, <= 1.02 resnet18).
Latency goals (digits): p99 <= 16 ms, max <= 50 ms. Last line: RESULT name=value ... with
``throughput_ratio`` / ``latency_p99_ms`` for digits and ``resnet18_`` prefixed keys for the
other case (``--quick``: 2 epochs, 1 round, small sizes: a smoke run whose RESULT says quick=1).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QEvent, QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from workbench.insight import health  # noqa: E402
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


def headless(case: str, epochs: int, folder: Path, quick: bool) -> tuple[list[float], int]:
    """``Engine(project).run()`` with its health handlers and nothing else going on, as ``workbench
    train`` does, on a fresh thread while the main thread waits: its OpenMP team ends with it, as
    it would with a process."""
    seconds: list[float] = []
    engine = Engine(project(case, epochs, folder, quick),
                    handlers=[*health.handlers(), lambda e: isinstance(e, ev.EpochEvent) and seconds.append(e.seconds)])
    ends: list = []
    thread = threading.Thread(target=lambda: ends.append(engine.run()), name="headless")
    thread.start()
    thread.join()
    assert isinstance(ends[0], ev.FinishedEvent), ends
    return seconds[1:], engine.task.train_size


def settle(app, seconds: float = 0.3, limit: float = 5.0) -> None:
    """Let a new window finish starting up (its cost estimate, augmentation preview and memory
    workers answer, its first paints land), as it has long before a person presses Start: that
    work is the window opening, not the training's cost to the window."""
    from ui.common.workers import running_workers

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        app.processEvents()
        if time.perf_counter() - t0 >= seconds and not running_workers():
            break
        time.sleep(0.005)
    app.processEvents()


def in_window(app, case: str, epochs: int, folder: Path, quick: bool = False
              ) -> tuple[list[float], int, list[float], float]:
    from ui.main_window import MainWindow

    window = MainWindow(project=project(case, epochs, folder, quick))
    window.resize(1280, 800)
    window.show()
    dock = window.training
    dock.panel.probe.wait()
    settle(app)
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
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    assert dock.start(), "the window refused to start"
    dock.run.events.connect(lambda batch: seconds.extend(d.event.seconds for d in batch
                                                         if isinstance(d.event, ev.EpochEvent)))
    dock.run.ended.connect(lambda *_: loop.quit())
    engine = dock.run.engine
    loop.exec()
    heart.stop()
    ui_share = (time.thread_time() - cpu0) / (time.perf_counter() - wall0)
    end = dock.last_end
    assert isinstance(end, ev.FinishedEvent), end
    train_size = engine.task.train_size
    window.doc.undo_stack.setClean()
    window.close()
    window.deleteLater()
    app.processEvents()
    # destroyed now: a deferred delete waits for the next event loop, the next round's run
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return seconds[1:], train_size, late, ui_share


def measure(app, case: str, epochs: int, rounds: int, folder: Path, quick: bool) -> dict:
    """Alternate headless and window runs of one case; the figures and whether the goals are met."""
    in_window(app, case, 1, folder, quick)  # warm-up: imports, first kernels, first paints
    headless(case, 2, folder, quick)
    epoch_h, epoch_w, late, ratios, ui = [], [], [], [], []
    size = 0
    for r in range(rounds):
        runs = {}
        for side in ("headless", "window") if r % 2 == 0 else ("window", "headless"):  # cancels drift
            runs[side] = headless(case, epochs, folder, quick) if side == "headless" else \
                in_window(app, case, epochs, folder, quick)
        (h, size), (w, _, lat, share) = runs["headless"], runs["window"]
        ui.append(share)
        epoch_h += h
        epoch_w += w
        late += lat
        ratios.append(statistics.median(w) / statistics.median(h))
        print(f"{case} round {r + 1}: headless {size / statistics.median(h):7.0f} samples/s, window "
              f"{size / statistics.median(w):7.0f} samples/s (ratio {ratios[-1]:.3f}), heartbeat p99 late "
              f"{np.percentile(lat, 99):5.1f} ms", flush=True)
    rate_h, rate_w = size / statistics.median(epoch_h), size / statistics.median(epoch_w)
    ratio = statistics.median(ratios)  # paired: each round's two runs saw the same machine load
    p50, p99, worst = float(np.percentile(late, 50)), float(np.percentile(late, 99)), max(late)
    goals = GOALS[case]
    print(f"{case}: {epochs} epochs x {rounds} rounds per side, {torch.get_num_threads()} torch threads, "
          f"Qt platform {app.platformName()}")
    print(f"{'':22}{'samples/s':>12}{'epoch s (median)':>18}{'step ms':>10}")
    steps = -(-size // 32)
    for name, rate, seconds in (("headless engine", rate_h, epoch_h), ("in the window", rate_w, epoch_w)):
        print(f"{name:22}{rate:12.0f}{statistics.median(seconds):18.3f}"
              f"{1000 * statistics.median(seconds) / steps:10.1f}")
    print(f"headless / window throughput, median of the rounds' ratios = {ratio:.3f} (goal <= {goals['ratio']}); "
          f"rounds: {' '.join(f'{x:.3f}' for x in ratios)}")
    print(f"UI thread CPU while training: {100 * statistics.median(ui):.1f}% of a core (heartbeat included)")
    print(f"heartbeat ({HEARTBEAT_MS} ms timer, {len(late)} beats) lateness: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"max {worst:.1f} ms" + (f" (goals p99 <= {goals['p99']:.0f}, max <= {goals['max']:.0f})"
                                   if "p99" in goals else ""))
    met = ratio <= goals["ratio"] and p99 <= goals.get("p99", float("inf")) and worst <= goals.get("max", float("inf"))
    return {"headless_samples_s": f"{rate_h:.0f}", "window_samples_s": f"{rate_w:.0f}",
            "throughput_ratio": f"{ratio:.3f}", "latency_p50_ms": f"{p50:.1f}", "latency_p99_ms": f"{p99:.1f}",
            "latency_max_ms": f"{worst:.1f}",
            "ui_cpu_pct": f"{100 * statistics.median(ui):.1f}", "goal_met": "yes" if met else "no"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=(*CASES, "all"), default="all")
    parser.add_argument("--epochs", type=int, help="per run (default: 12 digits, 6 resnet18)")
    parser.add_argument("--rounds", type=int, help="per case (default: 10 digits, 4 resnet18)")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 1 round: a smoke run, not a measurement")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.rounds = 2, 1
    torch.set_num_threads(2)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from ui.startup import configure_app

    configure_app(app)
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WORKBENCH_SETTINGS"] = str(Path(tmp) / "settings.ini")
        for case in CASES if args.case == "all" else (args.case,):
            epochs = args.epochs or {"digits": 12, "resnet18": 6}[case]
            # resnet18: 4 rounds, since two (1.132 and 1.003 in one run) could not settle a 2% goal
            rounds = args.rounds or {"digits": 10, "resnet18": 4}[case]
            figures = measure(app, case, epochs, rounds, Path(tmp), args.quick)
            result.update({(k if case == "digits" else f"{case}_{k}"): v for k, v in figures.items()})
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()) + (" quick=1" if args.quick else ""))


if __name__ == "__main__":
    main()
