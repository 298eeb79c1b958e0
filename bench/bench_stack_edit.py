"""What one edit costs in the window on a 200-layer stack, against the core's inference alone.

Three ways to change one argument in the middle of a 200-row Linear stack, in one run:
  core    build.infer(spec) after changing the spec directly (what the core benchmark times)
  doc     ProjectDocument.set_arg: an undo command, inference, the document's signals
  window  the same through the real window (offscreen), then one pass of the event loop: the
          stack repaints the rows the edit changed, the inspector and the summary follow (what
          the window does before its next frame); measured
          in steady state, once the window's start-up work on background threads (the data
          probe, the torch._dynamo import that keeps the first Start from freezing) has ended
  startup the same edits in a fresh window while that start-up work still runs (the first few
          seconds after opening: those threads take turns with the UI thread for the GIL)
  full    the edit, then the whole of the stack's viewport repainted (an upper bound: every row
          on screen drawn again)
  paint   the stack's viewport repainted with no edit (what drawing ~30 rows costs by itself)
Each edit alternates between two values so every one re-infers half the stack. Prints the
median and 95th percentile per edit and the ratios to `core`. Last line: RESULT name=value ...
(``--quick``: 20 layers and 10 edits, a smoke run whose RESULT says quick=1).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["WORKBENCH_SETTINGS"] = os.path.join(tempfile.mkdtemp(), "settings.ini")

from PySide6.QtWidgets import QApplication  # noqa: E402

from workbench.model import build  # noqa: E402
from workbench.project import project_file as projects  # noqa: E402
from workbench.model.spec import LayerSpec, ModelSpec  # noqa: E402

N_LAYERS, EDITS = 200, 60


def stack(n_layers: int = N_LAYERS) -> ModelSpec:
    layers = [LayerSpec("flat", "Flatten")]
    layers += [LayerSpec(f"fc{i}", "Linear", {"out_features": 32}) for i in range(n_layers)]
    return ModelSpec((1, 8, 8), layers)


def timed(edit, edits: int = EDITS) -> list[float]:
    out = []
    for i in range(edits):
        start = time.perf_counter()
        edit(16 if i % 2 == 0 else 32)
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    args = parser.parse_args()
    n_layers, edits = (20, 10) if args.quick else (N_LAYERS, EDITS)
    app = QApplication.instance() or QApplication([])
    build.warm_up()
    spec = stack(n_layers)
    middle = spec.find(f"fc{n_layers // 2}")

    def core(value):
        middle.args["out_features"] = value
        build.infer(spec)

    from ui.document.project_document import ProjectDocument
    from ui.main_window import MainWindow

    from ui.training.engine_bridge import warm_up_imports

    doc = ProjectDocument(projects.new("bench", stack(n_layers)))
    layer_id = f"fc{n_layers // 2}"

    def open_window():
        window = MainWindow(project=projects.new("bench", stack(n_layers)))
        window.resize(1280, 800)
        window.show()
        window.stack.select_ids([layer_id])
        app.processEvents()
        return window

    def edit_in(window, full: bool = False):
        def edit(value):
            window.doc.set_arg(layer_id, "out_features", value)
            if full:
                window.stack.viewport().repaint()
            app.processEvents()
        return edit

    results = {"core": timed(core, edits), "doc": timed(lambda v: doc.set_arg(layer_id, "out_features", v), edits)}
    window = open_window()
    results["startup"] = timed(edit_in(window), edits)
    window.training.panel.probe.wait()  # the start-up work ends: steady state from here
    warm_up_imports().join()
    app.processEvents()
    results["window"] = timed(edit_in(window), edits)
    results["full"] = timed(edit_in(window, full=True), edits)
    results["paint"] = timed(lambda v: window.stack.viewport().repaint(), edits)
    base = statistics.median(results["core"])
    print(f"one argument edit in the middle of a {n_layers}-layer stack, {edits} edits each (ms)")
    print(f"{'path':8} {'median':>8} {'p95':>8} {'x core':>8}")
    summary = {}
    for name, values in results.items():
        med = statistics.median(values)
        p95 = sorted(values)[int(0.95 * len(values)) - 1]
        summary[name] = (med, p95)
        print(f"{name:8} {med:8.2f} {p95:8.2f} {med / base:8.1f}")
    assert window.doc.layer_info(f"fc{n_layers - 1}").out_shape == (32,)
    window.doc.undo_stack.setClean()
    window.close()
    print(f"RESULT layers={n_layers} core_ms={summary['core'][0]:.2f} doc_ms={summary['doc'][0]:.2f} "
          f"window_ms={summary['window'][0]:.2f} window_p95_ms={summary['window'][1]:.2f} "
          f"paint_ms={summary['paint'][0]:.2f} window_x_core={summary['window'][0] / base:.1f} "
          f"startup_ms={summary['startup'][0]:.2f} startup_p95_ms={summary['startup'][1]:.2f} "
          f"full_repaint_ms={summary['full'][0]:.2f} full_repaint_p95_ms={summary['full'][1]:.2f}"
          + (" quick=1" if args.quick else ""))


if __name__ == "__main__":
    main()
