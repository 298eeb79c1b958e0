"""``workbench lr-find FILE [--start 1e-7] [--end 10] [--steps 100] [-o curve.csv] [--device D]
[--set NAME=VALUE ...]``: the learning-rate range test (workbench/experiments/lr_finder.py).

Prints the suggested learning rate (the rule is named in the line) and how to use it, and
writes the curve (step, lr, loss, smoothed_loss) as CSV, atomically: to ``-o``, else beside the
project as ``<name>.lr-find.csv`` (for a template name, in the current folder). The project
file is not changed. Exit 0 with a suggestion, 2 on bad input (one ``error:`` line naming the
option or setting) and when the curve gives no suggestion (the line says what to change).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.cli.common import load_project
from workbench.errors import WorkbenchError
from workbench.experiments import lr_finder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a .wbproj project or a template name")
    parser.add_argument("--start", type=float, default=lr_finder.START, help="first learning rate (default 1e-7)")
    parser.add_argument("--end", type=float, default=lr_finder.END, help="last learning rate (default 10)")
    parser.add_argument("--steps", type=int, default=lr_finder.STEPS, help="steps of the ramp (default 100)")
    parser.add_argument("-o", "--output", type=Path, metavar="CSV",
                        help="where to write the curve (default: <project>.lr-find.csv beside the project)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (overrides the project)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="settings",
                        help="change a setting for this test, e.g. training.optimizer.type=SGD (repeatable)")


def run(args) -> int:
    from workbench.cli.train import with_settings
    from workbench.training.loop import resolve_device

    try:
        lr_finder.check_range(args.start, args.end, args.steps)
    except WorkbenchError as exc:
        raise WorkbenchError(f"{exc} (--{_option(str(exc))})") from None
    proj = load_project(args.file)
    if args.settings:
        proj = with_settings(proj, args.settings)
    if args.device is not None:
        resolve_device(args.device)
    out = args.output
    if out is None:
        out = (proj.path.with_name(proj.path.stem + ".lr-find.csv") if proj.path is not None
               else Path.cwd() / f"{args.file.name}.lr-find.csv")
    curve = lr_finder.find_for_project(proj, start=args.start, end=args.end, steps=args.steps, device=args.device)
    curve.write_csv(out)
    if curve.suggestion is None:
        print(f"error: {curve.summary()}; the curve is in {out}", file=sys.stderr)
        return 2
    print(curve.summary())
    print(f"curve: {out}")
    print(f"use it: workbench train {args.file} --set training.optimizer.lr={curve.suggestion:.2g}")
    return 0


def _option(message: str) -> str:
    """The option an error of ``check_range`` is about."""
    for name in ("steps", "start", "end"):
        if f"finder's {name}" in message:
            return name
    return "start"
