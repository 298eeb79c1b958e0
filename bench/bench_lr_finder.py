"""The learning-rate finder's suggestion against a manual grid, on the digits CNN.

For SGD, Adam and AdamW (the template's settings with the optimiser changed; torch's
defaults for its arguments): the range test (workbench/experiments/lr_finder.py, 100 steps
from 1e-7 to 10) suggests a learning rate (rounded to two significant digits, as the
window's Apply sets it); the template then trains for its epochs (15) at that rate, and at
each of a 6-point log grid of rates (half decades around the usual range of the optimiser).
Every run has the same seed, split and batch order; the figure compared is the validation
accuracy after the last epoch. Goal: the suggestion's accuracy within 0.01 of the grid's best
(``ok=1``). Last line: RESULT name=value ... (``--quick``: 1 epoch, a 2-point grid, a 30-step
test: a smoke run whose RESULT says quick=1).
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

TEMPLATE = "digits_cnn"
GRIDS = {"SGD": [3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0],
         "Adam": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
         "AdamW": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]}


def project_for(kind: str, device: str, epochs: int | None):
    from workbench.project import templates

    proj = templates.load(TEMPLATE)
    t = proj.training
    proj.training = dataclasses.replace(t, optimizer=t.optimizer.for_type(kind), device=device, tensorboard=False,
                                        epochs=epochs or t.epochs)
    return proj


def val_acc_at(proj, lr: float, folder: Path) -> float:
    """Train at ``lr``; the validation accuracy after the last epoch."""
    from workbench.training import events as ev
    from workbench.training.engine import Engine

    proj = dataclasses.replace(proj, training=proj.training.with_value("optimizer.lr", lr), runs=[])
    epochs = []
    end = Engine(proj, run_dir=folder / f"{proj.training.optimizer.type}-lr{lr:g}", handlers=[
        lambda e: epochs.append(e) if isinstance(e, ev.EpochEvent) else None]).run()
    if isinstance(end, ev.FailedEvent):
        if "the loss became" in end.message:  # a rate far too high: the run fails on a NaN loss
            return 0.0
        raise SystemExit(f"the run at lr {lr:g} failed: {end.message}")
    return epochs[-1].val_acc


def main() -> None:
    from workbench.experiments import lr_finder

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--optimizers", default="SGD,Adam,AdamW")
    parser.add_argument("--quick", action="store_true", help="1 epoch, 2 grid points, 30 steps: a smoke run")
    args = parser.parse_args()
    epochs = 1 if args.quick else None
    steps = 30 if args.quick else lr_finder.STEPS
    folder = Path(tempfile.mkdtemp(prefix="bench-lr-finder-"))
    result: dict[str, str] = {}
    all_ok = True
    t0 = time.perf_counter()
    for kind in args.optimizers.split(","):
        proj = project_for(kind, args.device, epochs)
        curve = lr_finder.find_for_project(proj, steps=steps)
        if curve.suggestion is None:
            print(f"{kind}: {curve.summary()}")
            result[f"{kind.lower()}_lr"] = "none"
            all_ok = False
            continue
        lr = float(f"{curve.suggestion:.2g}")
        acc = val_acc_at(proj, lr, folder)
        grid = GRIDS[kind][2:4] if args.quick else GRIDS[kind]
        accs = {g: val_acc_at(proj, g, folder) for g in grid}
        best_lr = max(accs, key=accs.get)
        ok = acc >= accs[best_lr] - 0.01
        all_ok &= ok
        print(f"{kind}: suggestion {lr:g} ({curve.summary()}) -> val acc {acc:.4f}; grid "
              + ", ".join(f"{g:g}: {a:.4f}" for g, a in accs.items())
              + f"; best {best_lr:g} ({accs[best_lr]:.4f}); within 0.01: {'yes' if ok else 'NO'}", flush=True)
        k = kind.lower()
        result.update({f"{k}_lr": f"{lr:g}", f"{k}_acc": f"{acc:.4f}", f"{k}_grid_best_lr": f"{best_lr:g}",
                       f"{k}_grid_best_acc": f"{accs[best_lr]:.4f}", f"{k}_ok": str(int(ok))})
    result["all_ok"] = str(int(all_ok))
    result["seconds"] = f"{time.perf_counter() - t0:.0f}"
    result["quick"] = str(int(args.quick))
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
