"""Render the main window on a real project to a PNG (the README image), on Qt's xcb platform.

    .venv/bin/python packaging/screenshot.py                      # resources/screenshots/window.png
    .venv/bin/python packaging/screenshot.py --broken -o /tmp/broken.png --size 1024x700

Without a DISPLAY it starts its own Xvfb (apt-get install xvfb libxcb-icccm4 libxcb-keysyms1).
The window is the real one: the digits CNN template (or --project FILE) with the first conv
frozen and the second selected, so the inspector, the history and the frozen marks show.
``--broken`` drops a Linear before Flatten to show how a row that cannot work looks.
``--train N`` presses Train and takes the picture mid-run after N epochs (the --freeze layer
is then frozen during the run, after the first epoch, so its mark shows in the plot);
``--tab evaluation`` shows the confusion matrix and samples instead of the plots, ``--tab health``
the per-layer health strips, ``--tab test-metrics`` trains N epochs to the end with a test split
(data.test_fraction 0.2 unless the project has one) and shows the Evaluation tab's Test metrics.
``--explain`` trains N epochs to the end, clicks the largest mistake cell of the confusion
matrix and its first sample, and pictures the explanations window at the given size.
``--profile`` runs View > Profile Layers first (the Latency column's bars); ``--cost-columns
shown`` shows the cost columns by hand (by default they show as room allows).
``--parallel`` puts an Inception-style Parallel block (four branches, concat) after 'relu1' and
selects its 3x3 conv, to show the branches side by side; ``--parallel broken`` leaves that conv
without padding, so the branches cannot be concatenated (the error on the Parallel row).
``--start-page`` shows the start page (File > Close Project) with a few recent projects, one
of them missing.
Settings and runs go to a temporary folder, never the user's.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def start_xvfb(width: int, height: int) -> subprocess.Popen:
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        raise SystemExit("error: no DISPLAY and no Xvfb; install it (apt-get install xvfb libxcb-icccm4 "
                         "libxcb-keysyms1) or run under xvfb-run")
    read, write = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(write), "-screen", "0", f"{width + 200}x{height + 200}x24",
                             "-nolisten", "tcp"], pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        raise SystemExit("error: Xvfb did not start")
    os.environ["DISPLAY"] = f":{number}"
    return proc


def render(args: argparse.Namespace, width: int, height: int) -> Path:
    from PySide6.QtCore import QPoint
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from ui.main_window import MainWindow
    from ui.startup import configure_app
    from workbench import fileio
    from workbench.project import project_file as projects, templates

    app = QApplication.instance() or QApplication([sys.argv[0]])
    configure_app(app)
    source = Path(args.project)
    proj = projects.load(source) if source.suffix == projects.SUFFIX else templates.load(args.project)
    window = MainWindow(project=proj)
    window.resize(width, height)
    window.move(QPoint(0, 0))
    window.show()
    QTest.qWaitForWindowExposed(window)
    if args.start_page:
        show_start_page(window)
    doc = window.doc
    layer_ids = [layer.id for layer in doc.spec.layers]
    if args.train:
        train_until(window, args)
    elif args.freeze and args.freeze in layer_ids:
        doc.set_frozen(args.freeze, True)
    if args.broken and "flat" in layer_ids:
        doc.insert_kind("Linear", None, layer_ids.index("flat"))
    if args.parallel and "relu1" in layer_ids:
        doc.insert_layers([inception(args.parallel == "broken")], None, layer_ids.index("relu1") + 1,
                          "Add Parallel 'mixed'")
        args.select = "b3x3" if args.select == "conv2" else args.select
    if args.select in doc.spec.ids():
        window.stack.select_ids([args.select])
    if args.cost_columns == "shown":
        from ui.editor.stack_model import COST_COLUMNS
        for col in COST_COLUMNS:
            window.stack.set_column_choice(col, True)
    if args.profile and not args.train:
        window.profiler.start()
        while window.profiler.job is not None:
            QTest.qWait(20)
    doc.costs.wait()
    if args.dock:
        bring_forward(window, args.dock)
    QTest.qWait(400)  # let layouts settle and the palette paint
    pixmap = explanations(window, width, height) if args.explain else window.grab()
    if args.train:
        window.training.stop()
        while window.training.run is not None:
            QTest.qWait(20)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_with(out, lambda tmp: pixmap.save(str(tmp), "PNG") or _fail(out))
    window.doc.undo_stack.setClean()
    window.close()
    return out


def inception(broken: bool):
    """An Inception module: 1x1; 1x1 then 3x3; pool then 1x1; the identity; concatenated."""
    from workbench.model.spec import LayerSpec

    def conv(layer_id, out, k, pad=0):
        return LayerSpec(layer_id, "Conv2d", {"out_channels": out, "kernel_size": k, "padding": pad})
    branches = [
        ("b1", [conv("b1x1", 16, 1)]),
        ("b2", [conv("b2_reduce", 16, 1), conv("b3x3", 24, 3, 0 if broken else 1), LayerSpec("b2_relu", "ReLU")]),
        ("b3", [LayerSpec("b3_pool", "MaxPool2d", {"kernel_size": 3, "stride": 1, "padding": 1}),
                conv("b3_proj", 8, 1)]),
        ("b4", []),
    ]
    return LayerSpec("mixed", "Parallel", {"merge": "concat", "dim": 1},
                     layers=[LayerSpec(name, "Branch", layers=layers) for name, layers in branches])


def train_until(window, args: argparse.Namespace) -> None:
    """Train the project in the window until ``args.train`` epochs are done; freeze
    ``args.freeze`` after the first one."""
    from PySide6.QtTest import QTest

    dock = window.training
    window.doc.project.path = Path(os.environ["WORKBENCH_RUNS"]) / "digits.wbproj"
    to_end = args.explain or args.tab == "test-metrics"
    epochs = args.train if to_end else max(args.train + 5, window.doc.project.training.epochs)
    window.doc.project.set_setting("training.epochs", epochs)
    data = window.doc.project.data
    if args.tab == "test-metrics" and not data.test_fraction and not data.test_path:
        window.doc.project.set_setting("data.test_fraction", 0.2)
    dock.panel.probe.wait()
    if not dock.start():
        raise SystemExit("error: training did not start: " + dock.panel.status.text())
    dock.tabs.setCurrentIndex({"plots": 0, "evaluation": 1, "health": 2, "test-metrics": 1}[args.tab])
    if args.tab == "test-metrics":
        while dock.run is not None:
            QTest.qWait(20)
    frozen = False
    while dock.run is not None and (dock.series is None or len(dock.series.epoch_no) < args.train):
        QTest.qWait(20)
        done = len(dock.series.epoch_no) if dock.series is not None else 0
        if not frozen and done >= 1 and args.freeze in window.doc.spec.ids():
            window.doc.set_frozen(args.freeze, True)
            frozen = True
    QTest.qWait(300)  # the next delivery and redraw


def bring_forward(window, name: str) -> None:
    """Show a dock's tab (the Sweep dock once its study is read, the Data dock once its scan is in)."""
    from PySide6.QtTest import QTest

    window.docks[name].show()
    window.docks[name].raise_()
    deadline = time.monotonic() + 60
    while name == "Sweep" and window.sweep.snapshot is None and time.monotonic() < deadline:
        QTest.qWait(50)
    while name == "Data" and (window.data.result is None or window.data.busy()) and time.monotonic() < deadline:
        QTest.qWait(50)  # the Data dock's scan, then its first page of samples
    if name == "Data":
        window.data.wait()
    if name == "Augmentation":  # its first step selected, and the preview drawn
        editor = window.augment
        if editor.model.rowCount():
            editor.select(0)
        editor.redraw()
        while not editor.preview.images and time.monotonic() < deadline:
            QTest.qWait(50)


def explanations(window, width: int, height: int):
    """Wait for the run's end, open the largest mistake cell and its first sample; the
    explanations window's picture at ``width`` x ``height``."""
    import numpy as np
    from PySide6.QtTest import QTest

    dock = window.training
    while dock.run is not None:
        QTest.qWait(20)
    dock.tabs.setCurrentWidget(dock.evaluation)
    QTest.qWait(200)
    m = dock.evaluation.matrix.matrix
    off = m - np.diag(np.diag(m))
    t, p = np.unravel_index(np.argmax(off), off.shape)
    dock.evaluation.open_cell(int(t), int(p))
    win = dock.evaluation.explanations
    win.resize(width, height)
    while win.gallery.list.count() == 0 and not win.message.isVisible():
        QTest.qWait(20)
    win.gallery.list.setCurrentRow(0)
    while win.view.explanation is None and not win.message.isVisible():
        QTest.qWait(20)
    QTest.qWait(300)
    return win.grab()


def show_start_page(window) -> None:
    """File > Close Project, with recent projects to list (saved in the temporary folder; the
    last one deleted again, so the page shows a missing file too)."""
    from ui import project_io
    from workbench.project import project_file as projects, templates

    folder = Path(os.environ["WORKBENCH_RUNS"]) / "projects"
    gone = folder / "old" / "experiment_3.wbproj"
    for path, template in ((gone, "digits_mlp"), (folder / "wine" / "wine_mlp.wbproj", "tabular_mlp"),
                           (folder / "resnet_flowers.wbproj", "resnet18_transfer"),
                           (folder / "digits.wbproj", "digits_cnn")):
        path.parent.mkdir(parents=True, exist_ok=True)
        projects.save(templates.load(template), path)
        project_io.add_recent(path)
    gone.unlink()
    window.close_project()


def _fail(path: Path) -> None:
    raise SystemExit(f"error: could not write {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(ROOT / "resources" / "screenshots" / "window.png"))
    parser.add_argument("--project", default="digits_cnn", help="a .wbproj file or a template name")
    parser.add_argument("--size", default="1280x800", help="window size, WIDTHxHEIGHT")
    parser.add_argument("--select", default="conv2", help="the layer shown in the inspector")
    parser.add_argument("--freeze", default="conv1", help="a layer to show frozen ('' for none)")
    parser.add_argument("--broken", action="store_true", help="add a Linear before Flatten (an error row)")
    parser.add_argument("--parallel", nargs="?", const="inception", choices=("inception", "broken"),
                        help="add an Inception-style Parallel block after relu1 (broken: its branches cannot merge)")
    parser.add_argument("--train", type=int, default=0, metavar="N", help="picture mid-training after N epochs")
    parser.add_argument("--start-page", action="store_true", help="show the start page (File > Close Project)")
    parser.add_argument("--dock", default="", help="a dock to bring forward (Sweep, Prediction, Data)")
    parser.add_argument("--explain", action="store_true", help="with --train N: the explanations window "
                        "of the largest mistake cell after the run")
    parser.add_argument("--tab", choices=("plots", "evaluation", "health", "test-metrics"), default="plots",
                        help="training tab to show (test-metrics: with --train N, the run's end and its test metrics)")
    parser.add_argument("--profile", action="store_true", help="run View > Profile Layers first (not with --train)")
    parser.add_argument("--cost-columns", choices=("auto", "shown"), default="auto",
                        help="the stack's cost columns as room allows, or all shown")
    args = parser.parse_args(argv)
    if args.broken and args.train:
        parser.error("--broken and --train do not go together: a model with an error row cannot train "
                     "(and the model cannot change while it trains)")
    width, height = (int(v) for v in args.size.lower().split("x"))
    xvfb = start_xvfb(width, height) if not os.environ.get("DISPLAY") else None
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WORKBENCH_SETTINGS"] = str(Path(tmp) / "settings.ini")
        os.environ["WORKBENCH_RUNS"] = tmp
        try:
            out = render(args, width, height)
        finally:
            if xvfb is not None:
                xvfb.terminate()
                xvfb.wait(10)
    print(f"RESULT screenshot={out} size={width}x{height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
