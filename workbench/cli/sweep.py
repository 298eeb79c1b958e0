"""``workbench sweep FILE --trials N [--param PATH=SPEC ...] [--sampler tpe|random|grid]
[--pruner median|hyperband|none] [--storage URL] [--study NAME] [--jobs N] [--timeout S]``.

Searches settings and layer arguments with Optuna (workbench/experiments/sweep.py). The
search space is the project's ``"sweep"`` section with ``--param`` and the options laid over
it. Prints a line per finished trial, then the table of every trial in the study and the
best one, and writes ``trials.csv`` into the study's folder
(``<project>.runs/sweeps/<study>/trials.csv``, said on the last line).

A bad search space (an unknown layer or setting, an empty range, a log range reaching 0) is
one ``error:`` line naming the parameter, exit 2, before anything trains.

``--trials`` is the study's total: running the command again continues the study (a trial
a killed worker left RUNNING is marked failed), and ``--jobs N`` starts N worker processes
against the same storage, Optuna's own distributed mode; workers on other machines run the
same command with ``--storage postgresql://...`` (or mysql). Ctrl-C or SIGTERM ends the
running trial as failed ("stopped"), keeps the study readable and exits 0; a second Ctrl-C
aborts.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from workbench.cli.common import load_project, printable
from workbench.errors import WorkbenchError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a .wbproj project or a template name")
    parser.add_argument("--trials", type=int, metavar="N",
                        help="the study's total of trials, all workers together (default: the project's sweep "
                        "section, else 20)")
    parser.add_argument("--param", action="append", default=[], metavar="PATH=SPEC",
                        help="a searched value: training.optimizer.lr=log:1e-4..1e-1, drop.p=0..0.5, "
                        "data.batch_size=int:16..128:16, conv1.out_channels=16,32,64, training.optimizer.type=SGD,Adam "
                        "(repeatable; a layer whose id is data/training/model: model.ID.ARG)")
    parser.add_argument("--sampler", choices=("tpe", "random", "grid"), help="how values are picked (default tpe)")
    parser.add_argument("--pruner", choices=("median", "hyperband", "none"),
                        help="stop poor trials early on the per-epoch validation metric (default median)")
    parser.add_argument("--metric", choices=("val_acc", "val_loss"),
                        help="what the sweep optimises (default val_acc, maximised; val_loss is minimised)")
    parser.add_argument("--storage", metavar="URL",
                        help="an Optuna RDB URL (default sqlite:///<project>.sweeps.db beside the project; "
                        "postgresql://user:pass@host/db to share a study between machines)")
    parser.add_argument("--study", metavar="NAME",
                        help="the study's name (default: the project's file name and a hash of the space)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="worker processes on this machine, sharing the study (default 1)")
    parser.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S seconds")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (overrides the project)")
    parser.add_argument("--quiet", "-q", action="store_true", help="only the table and the best trial")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a --jobs child: no output


def run(args) -> int:
    from workbench.experiments import space as sp, sweep as sw

    proj = load_project(args.file)
    if args.trials is not None and args.trials < 1:
        raise WorkbenchError(f"the number of trials (--trials) must be 1 or more, got {args.trials}")
    if args.jobs < 1:
        raise WorkbenchError(f"the number of worker processes (--jobs) must be 1 or more, got {args.jobs}")
    if args.timeout is not None and not args.timeout > 0:
        raise WorkbenchError(f"the time budget (--timeout) must be seconds above 0, got {args.timeout:g}")
    if args.device is not None:
        from workbench.training.engine import resolve_device

        resolve_device(args.device)
    params = [sp.parse_param(text) for text in args.param]
    space = sw.with_overrides(proj.sweep or sp.SearchSpace(), params, sampler=args.sampler, pruner=args.pruner,
                              trials=args.trials, timeout=args.timeout, metric=args.metric)
    problems = sp.problems(space, proj)
    if problems:
        raise WorkbenchError(problems[0] if len(problems) == 1 else
                             f"{len(problems)} problems in the search space: " + "; ".join(problems))
    quiet = args.quiet or args.worker
    out = _Printer(quiet, space.metric)
    sweep = sw.Sweep(proj, space, storage=args.storage, study_name=args.study, device=args.device,
                     on_trial=out.trial)
    sweep.open()
    if not quiet:
        done = len(sweep.study.trials)
        print(f"study {sweep.study_name} in {sweep.storage_url}: {done} of {space.trials} trials so far; "
              f"{space.sampler} sampler, {space.pruner} pruning, {space.direction} {space.metric}; searching "
              + ", ".join(f"{p.path} ({p.describe()})" for p in space.params), flush=True)
    children = _start_workers(args, sweep, args.jobs - 1)

    def on_signal(signum, frame):
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        if not quiet:
            print("stopping: the running trial ends as failed ('stopped'); run the same command again to continue",
                  file=sys.stderr, flush=True)
        sweep.stop()

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, on_signal)
    try:
        result = sweep.run()
        codes = [child.wait() for child in children]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    for child, code in zip(children, codes):
        if code not in (0, -signal.SIGTERM):
            print(f"warning: worker process {child.pid} ended with exit code {code}", file=sys.stderr)
    if args.worker:
        return 0
    rows = sw.trial_rows(sweep.study)  # every worker's trials, not only this one's
    csv_path = sw.write_csv(rows, sweep.folder / "trials.csv")
    print(table(rows, space.metric))
    best = sw.best_row(rows, space.direction)
    if best is None:
        print("no trial has completed yet")
    else:
        values = ", ".join(f"{k}={_short(v)}" for k, v in best["params"].items())
        print(f"best trial {best['number']}: {space.metric} {best['value']:.4f} with {values}; run folder "
              f"{best['run_dir']}")
    if result.stopped:
        print(f"stopped; run the same command again to continue study {sweep.study_name}")
    print(f"trials.csv: {csv_path}")
    return 0


def _start_workers(args, sweep, count: int) -> list[subprocess.Popen]:
    """``count`` more worker processes running this command against the same study."""
    if count <= 0:
        return []
    argv = [sys.executable, "-m", "workbench", "sweep", str(args.file), "--worker", "--jobs", "1",
            "--storage", sweep.storage_url, "--study", sweep.study_name]
    for text in args.param:
        argv += ["--param", text]
    if getattr(args, "trust_code", False):  # the workers run the same trusted code
        argv.append("--trust-code")
    for name in ("trials", "sampler", "pruner", "metric", "timeout", "device"):
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name}", str(value)]
    threads = max(1, (os.cpu_count() or 1) // (count + 1))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return [subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL) for _ in range(count)]


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return printable(str(value))


class _Printer:
    """One line per finished trial of this worker."""

    def __init__(self, quiet: bool, metric: str):
        self.quiet, self.metric = quiet, metric

    def trial(self, frozen) -> None:
        if self.quiet:
            return
        values = " ".join(f"{k}={_short(v)}" for k, v in frozen.params.items())
        epochs = len(frozen.user_attrs.get("epochs", []))
        seconds = frozen.user_attrs.get("seconds")
        state = frozen.state.name
        if state == "COMPLETE":
            what = f"{self.metric} {frozen.value:.4f}"
        elif state == "PRUNED":
            last = list(frozen.intermediate_values.values())
            what = f"pruned at epoch {epochs}" + (f" ({self.metric} {last[-1]:.4f})" if last else "")
        else:
            what = "failed: " + printable(frozen.user_attrs.get("error", "?"))
        print(f"trial {frozen.number} {state.lower()}: {what} | {values} | {epochs} epochs"
              + (f", {seconds:.1f} s" if seconds is not None else ""), flush=True)


def table(rows: list[dict], metric: str) -> str:
    """The study's trials as an aligned text table (errors cut to 60 characters)."""
    paths: list[str] = []
    for row in rows:
        paths += [p for p in row["params"] if p not in paths]
    head = ["trial", "state", f"best {metric}", *paths, "epochs", "seconds", "error"]
    lines = [head]
    for row in rows:
        error = printable(row["error"])
        lines.append([str(row["number"]), row["state"].lower(),
                      f"{row['best']:.4f}" if row["best"] is not None else "-",
                      *(_short(row["params"][p]) if p in row["params"] else "-" for p in paths),
                      str(len(row["epochs"])), f"{row['seconds']:.1f}" if row["seconds"] is not None else "-",
                      error if len(error) <= 60 else error[:57] + "..."])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
