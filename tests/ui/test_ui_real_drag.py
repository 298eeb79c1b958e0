"""Real ``QDrag``s (palette -> stack, and a row within the stack), on xcb under Xvfb.

The offscreen platform's ``QDrag.exec()`` returns at once without dragging, so the other
tests deliver drag events by hand. This one runs the real path in a child process: press on
a palette item, move more than the drag distance (Qt starts a ``QDrag`` and its nested event
loop), then, from a ``QTimer.singleShot`` inside that loop, move over the stack and release;
then the same with a row of the stack (a move must not delete or duplicate anything).
Skipped only when Xvfb is not installed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.xvfb
ROOT = Path(__file__).resolve().parents[2]

CHILD = r'''
import json, sys, time
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from workbench.project import templates
from ui.main_window import MainWindow
from ui.startup import configure_app

app = QApplication([])
configure_app(app)
w = MainWindow(project=templates.load("digits_cnn"))
w.resize(1200, 800)
w.move(0, 0)
w.show()
w.activateWindow()
QTest.qWaitForWindowExposed(w)
QTest.qWait(300)
tree, view = w.layer_palette.tree, w.stack
left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
log = {"platform": app.platformName()}


def real_drag(source, start, target):
    """Press at start, move past the drag distance (QDrag.exec blocks here), then drop at
    target from a timer inside the drag's own loop. Returns how long the moves blocked."""
    def finish():
        QTest.mouseMove(view.viewport(), target + QPoint(0, 1))
        QTest.qWait(100)
        QTest.mouseMove(view.viewport(), target)
        QTest.qWait(100)
        QTest.mouseRelease(view.viewport(), left, none, target)
    QTimer.singleShot(400, finish)
    QTest.mousePress(source, left, none, start)
    clock = time.monotonic()
    for step in range(1, 6):
        QTest.mouseMove(source, start + QPoint(6 * step, 3 * step))
    return time.monotonic() - clock


def row_top(layer_id):
    return view.visualRect(view.stack_model.index_of(layer_id)).topLeft() + QPoint(60, 2)


QTimer.singleShot(15000, app.quit)  # never hang
if sys.argv[2:] == ["branch"]:  # into the second column of a Parallel's drawing, then a box to the first
    from ui.editor import branch_strip
    pid = w.doc.insert_kind("Parallel", None, 3)
    QTest.qWait(200)
    model = view.stack_model

    def lane(row, n):
        index = model.strip_index(pid, row)
        rect = view.visualRect(index)
        columns = branch_strip.lanes(view.strip_area(index, rect), 2)
        return QPoint(columns[n].center().x(), rect.center().y())
    item = w.layer_palette.item(sys.argv[1])
    tree.scrollToItem(item)
    log["palette_blocked_s"] = real_drag(tree.viewport(), tree.visualItemRect(item).center(), lane(1, 1))
    log["branches"] = [[c.id for c in b.layers] for b in w.doc.spec.find(pid).layers]
    log["palette_undo"] = w.doc.undo_stack.undoText()
    QTest.qWait(200)
    log["row_blocked_s"] = real_drag(view.viewport(), lane(1, 1), lane(1, 0))
    log["moved"] = [[c.id for c in b.layers] for b in w.doc.spec.find(pid).layers]
    log["row_undo"] = w.doc.undo_stack.undoText()
    print("RESULT " + json.dumps(log), flush=True)
    sys.exit(0)
item = w.layer_palette.item(sys.argv[1])
tree.scrollToItem(item)
log["palette_blocked_s"] = real_drag(tree.viewport(), tree.visualItemRect(item).center(), row_top("flat"))
log["after_palette"] = [layer.id for layer in w.doc.spec.layers]  # read before later events run
log["palette_undo"] = w.doc.undo_stack.undoText()
QTest.qWait(200)
log["row_blocked_s"] = real_drag(view.viewport(), view.visualRect(view.stack_model.index_of("fc")).center(),
                                 row_top("conv1"))
log["after_row"] = [layer.id for layer in w.doc.spec.layers]
log["row_undo"] = w.doc.undo_stack.undoText()
print("RESULT " + json.dumps(log), flush=True)
'''


@pytest.fixture(scope="module")
def xvfb_display():
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb libxcb-icccm4 libxcb-keysyms1)")
    read, write = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb did not start")
    yield f":{number}"
    proc.terminate()
    proc.wait(10)


def drag_in_child(display: str, tmp_path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY",)}
    env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb", WORKBENCH_SETTINGS=str(tmp_path / "s.ini"),
               PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"child failed (exit {run.returncode}):\n{run.stdout}\n{run.stderr[-3000:]}"
    return json.loads(lines[0][len("RESULT "):])


def test_real_drags_add_from_the_palette_and_reorder_rows_where_dropped(xvfb_display, tmp_path):
    result = drag_in_child(xvfb_display, tmp_path, "Dropout")
    assert result["platform"] == "xcb"
    # the moves returned only after the drop: a real QDrag ran its loop
    assert result["palette_blocked_s"] >= 0.3 and result["row_blocked_s"] >= 0.3, result
    ids = result["after_palette"]
    assert "dropout_1" in ids and ids.index("dropout_1") == ids.index("flat") - 1, result  # above 'flat'
    assert result["palette_undo"] == "Add Dropout 'dropout_1'"
    moved = result["after_row"]
    assert moved[0] == "fc" and sorted(moved) == sorted(ids), result  # moved to the top, nothing lost
    assert result["row_undo"] == "Move 'fc'"


def test_real_drags_into_a_branch_column_and_from_one_branch_to_the_other(xvfb_display, tmp_path):
    """A Parallel's drawing (its branches side by side): a palette layer dropped on the second
    column lands in the second branch; its box dragged to the first column moves it there."""
    result = drag_in_child(xvfb_display, tmp_path, "Conv2d", "branch")
    assert result["platform"] == "xcb"
    assert result["palette_blocked_s"] >= 0.3 and result["row_blocked_s"] >= 0.3, result
    assert result["branches"] == [[], ["conv2d_1"]], result
    assert result["palette_undo"] == "Add Conv2d 'conv2d_1'"
    assert result["moved"] == [["conv2d_1"], []], result
    assert result["row_undo"] == "Move 'conv2d_1'"
