"""``workbench explain FILE --weights CKPT --index I -o out.png [--split val] [--opacity A]``.

Loads the project's data and model, the weights or checkpoint (weights-only, checked key by
key), and explains validation sample ``I`` (``workbench.insight.explain``: Grad-CAM on the
last conv layer for image models, integrated gradients per feature for tables). Writes the
picture the window shows (the input, the heat map over it and the class probability bars,
or the feature bars) atomically, and prints the true and predicted class and the top
probabilities. Exit 0 when written, 2 with one ``error:`` line on bad input (an index out of
range, weights that do not fit the model, a model that cannot be explained).
"""
from __future__ import annotations

import sys
from pathlib import Path

from workbench.cli.common import load_project, printable
from workbench.errors import WorkbenchError

SPLITS = ("val",)  # the validation part: the samples the Evaluation tab's matrix counts
TOP = 3  # probabilities printed


def add_arguments(p) -> None:
    p.add_argument("file", type=Path, help="a .wbproj project or a template name")
    p.add_argument("--weights", type=Path, required=True,
                   help="a .pth / .safetensors state_dict or a training checkpoint (.ckpt) of this model")
    p.add_argument("--index", type=int, required=True, help="the sample's position in the validation part (0 ...)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the PNG file to write")
    p.add_argument("--split", choices=SPLITS, default="val", help="which part of the data the index counts in "
                   "(the validation part)")
    p.add_argument("--opacity", type=float, default=0.5, help="the heat map's opacity over the image, 0 to 1 "
                   "(default 0.5)")


def run(args) -> int:
    from workbench.data.bundle import load_data
    from workbench.insight import explain, explain_picture

    for stream in (sys.stdout, sys.stderr):  # a file name that is not valid UTF-8 is still printed
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if args.output.suffix.lower() != ".png":
        raise WorkbenchError(f"{args.output}: the picture is written as PNG; give -o a name ending in .png")
    if not 0 <= args.opacity <= 1:
        raise WorkbenchError(f"--opacity must be between 0 and 1, got {args.opacity:g}")
    proj = load_project(args.file)
    bundle = load_data(proj.data)
    model = explain.model_for(proj, weights=str(args.weights))
    ex = explain.explain(model, bundle, args.index, proj.training.loss)
    explain_picture.write_png(ex, args.output, args.opacity)
    p = dict(ex.prediction.classes)
    true = f"true {printable(ex.true)}, " if ex.true is not None else ""
    print(f"{ex.what}: {true}predicted {printable(ex.predicted)} ({100 * p[ex.predicted]:.1f}%)")
    top = ", ".join(f"{printable(name)} {100 * prob:.1f}%" for name, prob in ex.prediction.classes[:TOP])
    print(f"  top {min(TOP, len(ex.prediction.classes))}: {top}")
    how = f"{ex.method} on {printable(ex.layer)}" if ex.layer else ex.method
    print(f"  saliency: {how}, for class {printable(ex.target)}")
    if ex.features:
        lead = ", ".join(f"{printable(name)} {value:+.3g}" for name, value in ex.features[:TOP])
        print(f"  strongest features: {lead}")
    if ex.note:
        print(f"  note: {printable(ex.note)}")
    print(f"wrote {args.output}")
    return 0
