"""Sweeps (issue 16): what a trial costs over a plain run, and what a TPE sweep finds.

Overhead: one process runs, alternately round after round, (a) the Engine on the digits CNN
template exactly as ``workbench train`` does, and (b) a one-trial sweep of the same settings
(the search space is a choice list of one: the template's own learning rate), timed from the
trial's start to its end as the study records them (suggest, apply, the Engine run, the
reporter's per-epoch writes); what a sweep pays once, whatever its trials (opening the
storage, the stale-trial check, reading the table back), is printed beside it.
Alternating in one process cancels the drift between processes on a shared machine. The
ratio is median(trial) / median(train). Goal <= 1.05.

Search quality: a TPE sweep over training.optimizer.lr (log 1e-4..1e-1) and
conv1.out_channels (8, 16, 32, 64) with median pruning, at the template's epochs, against the
template's own run; reports the best val accuracy of each, the trials pruned and the time
pruning saved (the epochs a pruned trial did not run, at the sweep's mean epoch time).
Last line: RESULT name=value ... (``--quick``: 1 epoch, 1 round, 3 trials; quick=1).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "digits_cnn"


def project(folder: Path, epochs: int | None):
    from workbench.project import project_file, templates

    proj = templates.load(TEMPLATE)
    if epochs is not None:
        proj.training = dataclasses.replace(proj.training, epochs=epochs, device="cpu")
    else:
        proj.training = dataclasses.replace(proj.training, device="cpu")
    return project_file.load(project_file.save(proj, folder / "bench.wbproj"))


def train_once(proj, run_dir: Path) -> tuple[float, float | None]:
    """(seconds, best val acc) of one Engine run, as `workbench train` runs it."""
    from workbench.cli.train import ProgressLine
    from workbench.training import events as ev
    from workbench.training.engine import Engine

    t0 = time.perf_counter()
    engine = Engine(proj, run_dir=run_dir, handlers=[ProgressLine(sys.stderr, quiet=True)])
    end = engine.run()
    seconds = time.perf_counter() - t0
    assert isinstance(end, ev.FinishedEvent), end
    return seconds, end.best_val_acc


def trial_once(proj, study: str) -> tuple[float, float]:
    """(seconds of the trial, seconds of the rest of the sweep) for a one-trial sweep at the
    template's settings. The trial is its own timing in the study (created, sampled, applied,
    trained with the reporter's per-epoch writes, told); the rest (opening the storage, the
    worker's stale-trial check, reading the table back) is paid once per sweep, not per trial."""
    from workbench.experiments import space as sp, sweep as sw

    lr = proj.training.optimizer.lr
    space = sp.SearchSpace((sp.SweepParam("training.optimizer.lr", choices=(lr,)),), trials=1, pruner="none")
    spans = []
    t0 = time.perf_counter()
    sweep = sw.Sweep(proj, space, study_name=study,
                     on_trial=lambda t: spans.append((t.datetime_complete - t.datetime_start).total_seconds()))
    (row,) = sweep.run().rows
    total = time.perf_counter() - t0
    assert row["state"] == "COMPLETE", row
    return spans[0], total - spans[0]


def overhead(folder: Path, epochs: int, rounds: int) -> dict:
    proj = project(folder, epochs)
    trains, trials, setups = [], [], []
    train_once(proj, folder / "warm-up")  # first-run costs (imports, allocator, data cache) out of the rounds
    for i in range(rounds):
        trains.append(train_once(proj, folder / f"train-{i}")[0])
        trial, setup = trial_once(proj, f"overhead-{i}")
        trials.append(trial)
        setups.append(setup)
        print(f"round {i + 1}: train {trains[-1]:.2f} s, sweep trial {trials[-1]:.2f} s "
              f"(+ {setups[-1]:.2f} s once per sweep)", flush=True)
    return {"train_s": statistics.median(trains), "trial_s": statistics.median(trials),
            "setup_s": statistics.median(setups), "ratio": statistics.median(trials) / statistics.median(trains)}


def quality(folder: Path, epochs: int | None, trials: int) -> dict:
    from workbench.experiments import space as sp, sweep as sw

    proj = project(folder, epochs)
    t0 = time.perf_counter()
    _, template_acc = train_once(proj, folder / "template")
    template_s = time.perf_counter() - t0
    print(f"template: val acc {template_acc:.4f} in {template_s:.1f} s", flush=True)
    space = sp.SearchSpace((sp.parse_param("training.optimizer.lr=log:1e-4..1e-1"),
                            sp.parse_param("conv1.out_channels=8,16,32,64")), sampler="tpe", pruner="median",
                           trials=trials)
    t0 = time.perf_counter()
    rows = sw.Sweep(proj, space, study_name="quality",
                    on_trial=lambda t: print(f"trial {t.number} {t.state.name.lower()} "
                                             f"{t.value if t.value is not None else ''} {t.params}",
                                             flush=True)).run().rows
    sweep_s = time.perf_counter() - t0
    full = proj.training.epochs
    epoch_times = [e["seconds"] for r in rows for e in r["epochs"]]
    mean_epoch = statistics.mean(epoch_times) if epoch_times else 0.0
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    saved = sum(full - len(r["epochs"]) for r in pruned) * mean_epoch
    best = sw.best_row(rows, "maximize")
    return {"template_acc": template_acc, "best_acc": best["value"] if best else None, "trials": len(rows),
            "pruned": len(pruned), "failed": sum(r["state"] == "FAIL" for r in rows), "sweep_s": sweep_s,
            "saved_s": saved, "saved_share": saved / (sweep_s + saved) if sweep_s + saved else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 round, 3 trials (a smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the overhead part")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the overhead part's runs")
    parser.add_argument("--trials", type=int, default=20, help="trials of the search-quality sweep")
    parser.add_argument("--skip-quality", action="store_true", help="only the overhead part")
    args = parser.parse_args()
    import optuna
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.quick:
        args.rounds, args.epochs, args.trials = 1, 1, 3
    folder = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    o = overhead(folder / "overhead", args.epochs, args.rounds) if (folder / "overhead").mkdir() is None else {}
    print(f"overhead: sweep trial {o['trial_s']:.2f} s vs train {o['train_s']:.2f} s (median of {args.rounds}): "
          f"ratio {o['ratio']:.3f} (goal <= 1.05); once per sweep (storage, table): {o['setup_s']:.2f} s",
          flush=True)
    result = {"overhead_ratio": f"{o['ratio']:.3f}", "trial_s": f"{o['trial_s']:.2f}",
              "train_s": f"{o['train_s']:.2f}", "sweep_setup_s": f"{o['setup_s']:.2f}"}
    if not args.skip_quality:
        (folder / "quality").mkdir()
        q = quality(folder / "quality", 1 if args.quick else None, args.trials)
        print(f"search: best val acc {q['best_acc']} vs template {q['template_acc']:.4f}; {q['pruned']} of "
              f"{q['trials']} trials pruned, saving {q['saved_s']:.0f} s ({q['saved_share']:.0%} of the sweep)",
              flush=True)
        result.update({"best_acc": f"{q['best_acc']:.4f}" if q["best_acc"] is not None else "none",
                       "template_acc": f"{q['template_acc']:.4f}", "trials": q["trials"], "pruned": q["pruned"],
                       "failed_trials": q["failed"], "sweep_s": f"{q['sweep_s']:.0f}",
                       "pruning_saved_s": f"{q['saved_s']:.0f}"})
    if args.quick:
        result["quick"] = 1
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
