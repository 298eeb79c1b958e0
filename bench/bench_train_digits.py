"""The digits CNN template trained by the engine, as `workbench train` does: does it reach
0.98 validation accuracy within 20 s on 2 CPU cores?

Prints each epoch, the time to first reach 0.98, the training time and the whole process
time (imports and data loading included). Last line: RESULT name=value ... (``--quick``: one
epoch, a smoke run whose RESULT says quick=1). A run that does not finish exits with status 1.
``--device cuda`` trains on the GPU instead (default: the template's ``auto``); the goal is
the CPU's.
"""
from __future__ import annotations

import time

T_PROCESS = time.perf_counter()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from workbench.training import events as ev  # noqa: E402
from workbench.project import templates  # noqa: E402
from workbench.training.engine import Engine  # noqa: E402

GOAL_ACC, GOAL_S = 0.98, 20.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one epoch: a smoke run, not a measurement")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: the template's, auto)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    proj = templates.load("digits_cnn")
    if args.quick:
        proj.training = dataclasses.replace(proj.training, epochs=1)
    hit: list[float] = []
    t_start = time.perf_counter()

    def on_event(e):
        if isinstance(e, ev.EpochEvent):
            now = time.perf_counter() - t_start
            print(f"epoch {e.epoch:2d}  train loss {e.train_loss:.4f}  val loss {e.val_loss:.4f}  "
                  f"val acc {e.val_acc:.4f}  at {now:5.2f} s")
            if e.val_acc >= GOAL_ACC and not hit:
                hit.append(now)

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(proj, run_dir=Path(tmp) / "run", handlers=[on_event], device=args.device)
        end = engine.run()
    total = time.perf_counter() - T_PROCESS
    if not isinstance(end, ev.FinishedEvent):
        print(f"RESULT failed=1 message={end!r}")
        return 1
    to_goal = hit[0] if hit else float("nan")
    print(f"digits_cnn: best val acc {end.best_val_acc:.4f} (epoch {end.best_epoch}); engine run {end.seconds:.2f} s "
          f"(set-up + {end.epochs} epochs); first >= {GOAL_ACC} at {to_goal:.2f} s; whole process {total:.2f} s "
          f"on {engine.device} ({torch.get_num_threads()} CPU threads)")
    met = bool(hit) and end.best_val_acc >= GOAL_ACC and total <= GOAL_S
    print(f"RESULT best_val_acc={end.best_val_acc:.4f} time_to_0.98_s={to_goal:.2f} engine_run_s={end.seconds:.2f} "
          f"process_s={total:.2f} goal_met={'yes' if met else 'no'} device={engine.device}"
          + (" quick=1" if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
