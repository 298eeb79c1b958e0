"""``workbench expand FILE LAYER_ID [-o OUT]``: a torchvision backbone row expanded into the
layers it is made of (workbench/model/expand.py), written back to the project (or to ``-o``).

Exit 0 with the number of rows written; 2 with one ``error:`` line when the layer is missing,
is not a backbone, or is an architecture that does not map onto the stack (the line says why).
The old file stays as it was on any error (the write is atomic).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from workbench.cli.common import load_project, printable
from workbench.errors import WorkbenchError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a .wbproj project")
    parser.add_argument("layer", help="the id of the backbone layer to expand")
    parser.add_argument("-o", "--output", type=Path, help="write the expanded project here (default: FILE itself)")


def run(args) -> int:
    from workbench.model import build, expand
    from workbench.project import project_file

    proj = load_project(args.file)
    if proj.path is None and args.output is None:
        raise WorkbenchError(f"{args.file} is a template; pass -o FILE.wbproj to write the expanded project")
    layer = proj.model.find(args.layer)
    spec, expansion = expand.expand_layer(proj.model, args.layer)
    build.check(spec)
    target = args.output or proj.path
    project_file.save(dataclasses.replace(proj, model=spec), target)
    count = sum(1 for _ in spec.walk()) - sum(1 for _ in proj.model.walk()) + 1
    print(printable(f"expanded {args.layer} ({layer.type}) into {len(expansion.layers)} rows ({count} with the "
                    f"nested ones); wrote {target}"))
    weights = layer.args.get("weights", "none")
    if weights != "none":
        print(printable(f"note: its weights ({weights}) are not in the project file; the expanded layers start "
                        "from random weights"))
    return 0
