"""``workbench export FILE --format F -o PATH [--weights CKPT] [--opset N]``.

Builds the project's model (without ``--weights``, initialised from the project's
``training.seed``, so separate exports agree), loads the weights (checked key by key),
exports, verifies and prints the verification figures. Exit 0 when verified, 2 on bad input or a failed export
(one ``error:`` line; no file is left behind), 1 when some formats of ``--format all`` fail.
"""
from __future__ import annotations

import sys
from pathlib import Path

from workbench.cli.common import load_project
from workbench.errors import WorkbenchError
from workbench.export.base import OPSET_RANGE, TORCHSCRIPT_MODES
from workbench.export.registry import FORMATS


def add_arguments(p) -> None:
    p.add_argument("file", type=Path, help="a .wbproj project or a template name")
    p.add_argument("--format", "-f", required=True, choices=[*FORMATS, "all"],
                   help="file format; 'all' writes every format into the folder given by -o")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="file to write (the extension is added when missing); a folder with --format all")
    p.add_argument("--weights", type=Path, help="a .pth / .safetensors state_dict or a training checkpoint "
                   "(default: the model's freshly initialised weights)")
    p.add_argument("--opset", type=int, default=18, help=f"ONNX operator set ({OPSET_RANGE[0]}-{OPSET_RANGE[1]}, "
                   "default 18)")
    p.add_argument("--static-batch", action="store_true",
                   help="ONNX / .pt2: fix the batch size instead of accepting any")
    p.add_argument("--torchscript-mode", choices=TORCHSCRIPT_MODES, default="auto",
                   help="trace, script, or auto (trace; script when tracing warns)")
    p.add_argument("--no-spec", action="store_true", help="state_dict / safetensors: leave the model description out")
    p.add_argument("--custom-code", choices=("copy", "import"), default="copy",
                   help="Python source with Custom layers: copy their files beside the .py (default) or import "
                   "them from where they are")
    p.add_argument("--no-verify", action="store_true", help="skip verification (not recommended)")
    p.add_argument("--verbose", "-v", action="store_true", help="print the exporters' log to stderr")


def run(args) -> int:
    from workbench.export import exporter as export
    from workbench.export.torch_formats import buildable
    from workbench.model import build, weights

    for stream in (sys.stdout, sys.stderr):  # a file name that is not valid UTF-8 is still printed
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if not OPSET_RANGE[0] <= args.opset <= OPSET_RANGE[1]:
        raise WorkbenchError(f"the ONNX opset (--opset) must be between {OPSET_RANGE[0]} and {OPSET_RANGE[1]}, "
                             f"got {args.opset}")
    if args.format != "all":
        export.target_path(args.output, args.format)  # a wrong extension is bad input: say so first
    proj = load_project(args.file)
    spec = proj.model
    if args.weights:
        model = build.build_model(buildable(spec))  # the file replaces any pretrained backbone weights
        report = weights.load_into(model, args.weights)
        print(f"weights: {args.weights}: {report.describe().splitlines()[0]}")
        for line in report.describe().splitlines()[1:]:
            print(f"  {line}")
    else:  # seeded as training seeds them: every export of the project holds the same weights
        import torch

        torch.manual_seed(proj.training.seed)
        model = build.build_model(spec)
        print(f"note: no --weights given; exporting the model's freshly initialised weights (training.seed "
              f"{proj.training.seed}: the same in every export of this project, and where training starts)",
              file=sys.stderr)
    options = export.ExportOptions(opset=args.opset, dynamic_batch=not args.static_batch,
                                   torchscript_mode=args.torchscript_mode, include_spec=not args.no_spec,
                                   verify=not args.no_verify, name=proj.name, custom_code=args.custom_code)

    def log(line: str) -> None:
        if args.verbose:
            print(f"  | {line}", file=sys.stderr)
        elif line.startswith("removed "):  # temp files a killed export left behind, now gone
            print(f"note: {line}", file=sys.stderr)

    for note in export.slow_notes(spec, list(export.FORMATS) if args.format == "all" else [args.format]):
        print(note, file=sys.stderr)  # before the wait, not after it
    if args.format == "all":
        stem = args.file.stem if args.file.suffix else str(args.file)
        results = export.export_all(model, spec, args.output, stem, options=options, log=log)
    else:
        results = [export.export(model, spec, args.format, args.output, options, log=log)]
    for result in results:
        _print(result)
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"error: {len(failed)} of {len(results)} formats failed: {', '.join(r.format for r in failed)}",
              file=sys.stderr)
        return 1
    return 0


def _print(result) -> None:
    from workbench.export.base import human_size, human_time

    if not result.ok:
        print(f"{result.format}: FAILED: {result.error}")
        return
    extra = "".join(f" + {p.name}" for p in result.files[1:])
    size, took = human_size(result.size_bytes), human_time(result.seconds)
    print(f"{result.format}: wrote {result.path}{extra} ({size}) in {took}")
    v = result.verification
    if v is None:
        print("  verification: skipped")
        return
    print(f"  verification: {'passed' if v.passed else 'FAILED'} (loaded in {v.where}, {human_time(v.seconds)})")
    print(f"  max abs diff: {v.max_abs:.3g}   max rel diff: {v.max_rel:.3g}")
    print(f"  batch sizes: {', '.join(map(str, v.batch_sizes))}   tolerance: rtol {v.rtol:g}, atol {v.atol:g}")
    for note in v.notes:
        print(f"  {note}")
