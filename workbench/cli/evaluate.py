"""``workbench evaluate FILE --weights CKPT [--split test|val] [--json OUT]``.

Loads the project's data and model with a checkpoint's or weights file's tensors (weights-only,
checked key by key) and prints the metrics on the test part (``data.test_fraction`` or
``data.test_path``; the validation part with ``--split val``, or when there is no test part and
no ``--split``): per-class precision, recall, F1 and support, macro and weighted averages,
accuracy and the confusion matrix, the ROC AUC and average precision of a binary task, or MAE,
RMSE and R² for a regression (``workbench.training.evaluation``). ``--json`` also writes the
report (curves included) atomically. Exit 0, or 2 with one ``error:`` line: weights that do not
fit the model, no test part, a file that cannot be written.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench import fileio
from workbench.cli.common import load_project, printable
from workbench.errors import WorkbenchError


def add_arguments(p) -> None:
    from workbench.training.evaluation import SPLITS

    p.add_argument("file", type=Path, help="a .wbproj project or a template name")
    p.add_argument("--weights", type=Path, required=True,
                   help="a .pth / .safetensors state_dict or a training checkpoint (.ckpt) of this model")
    p.add_argument("--split", choices=SPLITS, default=None,
                   help="the part of the data to evaluate on (default: test where the data has one, else val)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the report as JSON")


def run(args) -> int:
    from workbench.training import evaluation

    proj = load_project(args.file)
    report = evaluation.evaluate_weights(proj.model, proj.data, args.weights, args.split, proj.training.loss)
    if args.json is not None:
        if fileio.is_dir(args.json):
            raise WorkbenchError(f"{args.json} is a folder; give --json a file name")
        text = json.dumps({"project": str(args.file), "weights": str(args.weights), **report.to_dict()}, indent=2)
        fileio.write_text(args.json, text + "\n")
    for line in report.lines():
        print(printable(line))
    if args.json is not None:
        print(f"wrote {args.json}")
    sys.stdout.flush()
    return 0
