"""Headless commands: ``workbench summary|templates|new|catalog|train|export|sweep|lr-find|explain|expand|evaluate``.

Also ``python -m workbench ...``. Exit 0 on success, 2 with one ``error: ...`` line on bad
input (a mistyped command too, with its close matches: ``unknown_command``, which the window
launcher asks as well); never a traceback for a user mistake. Text from a project file is
printed through ``common.printable``, so no file can send escape sequences to the terminal.
``train``, ``export``, ``sweep``, ``lr-find``, ``explain``, ``expand`` and ``evaluate`` live in their
own modules (workbench/cli/train.py, export.py, sweep.py, lr_find.py, explain.py, expand.py,
evaluate.py); what they share with the commands here is in workbench/cli/common.py. Every command
that loads a project takes ``--trust-code``: without it a project naming Python files (Custom
layers, a custom Dataset) is refused with one ``error:`` line naming the files, before anything of
them runs.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from pathlib import Path

from workbench import fileio
from workbench.cli import evaluate as evaluate_command, expand as expand_command, explain as explain_command, \
    export as export_command, lr_find as lr_find_command, sweep as sweep_command, train as train_command
from workbench.cli.common import load_project, one_line, printable, trust_code
from workbench.errors import WorkbenchError

# name -> (module, one-line help); each module has add_arguments(parser) and run(args) -> int
EXTERNAL = {
    "train": (train_command, "train a project headless (DDP under torchrun)"),
    "export": (export_command, "export a project's model to a file and verify it"),
    "sweep": (sweep_command, "search settings and layer arguments with Optuna (trials on a shared study)"),
    "lr-find": (lr_find_command, "suggest a learning rate (range test) and write the loss curve as CSV"),
    "explain": (explain_command, "explain a validation sample's prediction as a PNG (Grad-CAM, integrated gradients)"),
    "expand": (expand_command, "expand a torchvision backbone layer into editable layers (written to the project)"),
    "evaluate": (evaluate_command, "test metrics of a checkpoint: per-class precision / recall / F1, confusion matrix"),
}
COMMANDS = ("summary", "templates", "new", "catalog", *EXTERNAL)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def make_parser() -> argparse.ArgumentParser:
    from workbench import __version__

    parser = _Parser(prog="workbench", description="Model Workbench: build, train and export PyTorch "
                     "models. Without a command (or with a .wbproj file) the window opens.")
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("summary", help="per-layer shapes and parameter counts of a project")
    p.add_argument("file", type=Path, help="a .wbproj project or a template name")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--costs", action="store_true", help="add forward FLOPs / MACs per layer and the training "
                   "memory forecast (parameters, gradients, optimizer state, activations)")
    p.add_argument("--batch", type=int, default=None, help="batch size of the memory forecast (default: the "
                   "project's)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
                   help="type of weights and activations in the forecast")
    p.add_argument("--device", default=None, help="device whose memory the forecast is checked against "
                   "(cpu, cuda, cuda:1; default: the project's, else cpu)")
    sub.add_parser("templates", help="list the starter projects")
    p = sub.add_parser("new", help="create a project from a template")
    p.add_argument("--template", "-t", default="digits_cnn", help="template name (see `workbench templates`)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .wbproj file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    sub.add_parser("catalog", help="list every layer type with its arguments")
    for name, (module, help_text) in EXTERNAL.items():
        module.add_arguments(sub.add_parser(name, help=help_text))
    for name, command in sub.choices.items():  # every command that loads a project: one switch
        if name not in ("templates", "new", "catalog"):
            command.add_argument("--trust-code", action="store_true", help="run the Python files the project names "
                                 "(Custom layers, a custom Dataset); without it such a project is refused")
    return parser


def unknown_command(argv: list[str]) -> str | None:
    """The error for a first argument that is neither a command, an option nor a file the
    window could open (an existing path, a ``.wbproj`` name, a path with a folder); else None."""
    if not argv:
        return None
    first = argv[0]
    if first in COMMANDS or first.startswith("-") or first.lower().endswith(".wbproj") or os.sep in first:
        return None
    if os.path.exists(first):
        return None
    close = difflib.get_close_matches(first, COMMANDS, n=2)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"commands: {', '.join(COMMANDS)}"
    return (f"unknown command {printable(repr(first))}; {hint} (`workbench --help` lists them; a project to "
            "open in the window ends in .wbproj)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    typo = unknown_command(argv)
    if typo:
        print(f"error: {typo}", file=sys.stderr)
        return 2
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    trust_code(getattr(args, "trust_code", False))
    try:
        if args.command in EXTERNAL:
            return EXTERNAL[args.command][0].run(args)
        return OWN[args.command](args)
    except WorkbenchError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `workbench catalog | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def cmd_summary(args) -> int:
    from workbench.model import build
    from workbench.model.shapes import fmt

    proj = load_project(args.file)
    info = build.infer(proj.model)
    error = str(info.error) if info.error else build.memory_problem(info)
    report = _cost_report(args, proj, info) if args.costs else None
    if args.json:
        rows = []
        for r in info.rows():
            row = {"id": r.id, "type": r.type, "output_shape": list(r.out_shape) if r.out_shape else None,
                   "params": r.params, "trainable_params": r.trainable}
            if r.stages:  # a backbone's freezable stages, as the table shows them (their params are the row's)
                row["stages"] = [{"id": f"{r.id}.{st.name}", "name": st.name, "params": st.params,
                                  "trainable_params": 0 if st.frozen else st.params, "frozen": st.frozen}
                                 for st in r.stages]
            if report is not None and report.row(r.path) is not None:
                row.update(flops=report.row(r.path).flops, macs=report.row(r.path).macs,
                           activation_bytes=report.row_memory(r.path))
            rows.append(row)
        out = {"layers": rows, "total_params": info.total_params, "trainable_params": info.trainable_params,
               "frozen_params": info.frozen_params, "buffer_values": info.buffer_values,
               "params_size_mb": _mb(info.total_params), "buffers_size_mb": _mb(info.buffer_values),
               "input_shape": list(info.input_shape),
               "output_shape": list(info.output_shape) if info.output_shape else None}
        if report is not None:
            out["costs"] = {k: v for k, v in report.to_dict().items() if k != "layers"}
        if error:
            out["error"] = error
        print(json.dumps(out, indent=2))
    else:
        print(f"{printable(proj.name)}  input {fmt(info.input_shape)}")
        table = [("#", "id", "type", "output shape", "params", "trainable")]
        extra = ("MACs", "FLOPs", f"memory@{report.forecast.batch}") if report is not None else ()
        table[0] += extra
        for r in info.rows():
            shape = fmt(r.out_shape) if r.out_shape else ("ERROR" if r.error else "?")
            table.append((r.position, ("  " * r.position.count(".")) + printable(r.id), r.type, shape,
                          _num(r.params), _num(r.trainable)) + _cost_cells(report, r.path))
            for stage in r.stages:  # backbone stages, freezable one by one
                table.append(("", f"  {printable(r.id)}.{stage.name}", "stage" + (" (frozen)" if stage.frozen else ""),
                              "", _num(stage.params), _num(0 if stage.frozen else stage.params)) +
                             ("",) * len(extra))
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for j, row in enumerate(table):
            print("  ".join(c.ljust(w) if i in (1, 2, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
            if j == 0:
                print("  ".join("-" * w for w in widths))
        print(f"total {info.total_params:,} params, {info.trainable_params:,} trainable, "
              f"{info.frozen_params:,} frozen; output {fmt(info.output_shape)}")
        print(f"params size {_mb(info.total_params):.2f} MB, buffers size {_mb(info.buffer_values):.2f} MB "
              "(float32; MB = 10^6 bytes, as torchinfo counts)")
        if report is not None:
            from workbench.insight import costs

            print(costs.breakdown(report))
    for r in info.rows():
        for note in r.advice:
            print(f"note: layer '{r.id}': {printable(note)}", file=sys.stderr)
    if error:
        print(f"error: {printable(error)}", file=sys.stderr)
        return 2
    return 0


def _cost_report(args, proj, info):
    """The cost report for ``summary --costs``: the project's batch size, optimizer and device
    unless the options say otherwise."""
    from workbench.insight import costs

    batch = proj.data.batch_size if args.batch is None else args.batch
    if batch < 1:
        raise WorkbenchError(f"the batch size (--batch) must be at least 1, not {batch}")
    device = args.device or proj.training.device
    device = "cpu" if device in (None, "auto") else device
    try:
        return costs.report(proj.model, batch, proj.training.optimizer, device, args.dtype, info=info)
    except (RuntimeError, ValueError) as exc:  # a device torch does not know
        raise WorkbenchError(f"--device {printable(device)}: {one_line(exc)}") from None


def _cost_cells(report, path: str) -> tuple[str, ...]:
    if report is None:
        return ()
    row = report.row(path)
    if row is None:
        return ("?", "?", "?")
    from workbench.insight import costs

    return costs.count(row.macs), costs.count(row.flops), costs.size(report.row_memory(path))


def _mb(values: int) -> float:
    """float32 values in MB (10^6 bytes), the unit torchinfo reports sizes in."""
    return round(values * 4 / 1e6, 4)


def _num(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def cmd_templates(args) -> int:
    from workbench.project import templates

    for name in templates.names():
        print(f"{name:20s} {templates.describe(name)}")
    return 0


def cmd_new(args) -> int:
    from workbench.project import project_file as project, templates

    if fileio.exists(args.output) and not args.force:
        raise WorkbenchError(f"{args.output} exists; pass --force to overwrite it")
    proj = templates.load(args.template)
    path = args.output if args.output.suffix else args.output.with_suffix(project.SUFFIX)
    project.save(proj, path)
    print(f"wrote {path} ({proj.name}); next: workbench summary {path}")
    return 0


def cmd_catalog(args) -> int:
    from workbench.model import catalog

    for category in catalog.CATEGORIES:
        print(category)
        for kind in (k for k in catalog.KINDS if k.category == category):
            names = ", ".join(p.name + ("*" if p.required else "") for p in kind.params)
            print(f"  {kind.name:24s} {kind.help}")
            if names:
                print(f"  {'':24s} args: {names}")
    print("* required; input sizes (in_features, in_channels, ...) are inferred when omitted")
    return 0


OWN = {"summary": cmd_summary, "templates": cmd_templates, "new": cmd_new, "catalog": cmd_catalog}


if __name__ == "__main__":
    sys.exit(main())
