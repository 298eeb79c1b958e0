"""The Augmentation dock (issue 15 §2): add a step from the catalog, the live preview's 8 draws,
arguments through the inspector's fields (a refused value said, not applied), reorder by drag
(the model's drop and a real mouse drag), undo and redo on the document's stack, save and reopen,
and a run that trains with the pipeline."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from workbench.project import project_file as projects

from ui.data.augment_steps import MIME

from test_ui_real_drag import xvfb_display  # noqa: F401 (the fixture)
from window_helpers import deliver_drop, short_runs, wait_end

ROOT = Path(__file__).resolve().parents[2]

ROTATE = {"type": "RandomRotation", "args": {"degrees": 15}}


def open_dock(qtbot, window):
    dock = window.docks["Augmentation"]
    dock.show()
    dock.raise_()
    editor = window.augment
    qtbot.waitUntil(editor.isVisible)
    editor.redraw()
    editor.preview.wait()
    return editor


def drawn(editor):
    editor.redraw()
    editor.preview.wait()
    return editor.preview.images


def test_add_rotation_shows_8_different_draws_and_undo_takes_it_out(qtbot, window):
    editor = open_dock(qtbot, window)
    assert window.doc.project.data.augment_train == []
    assert len(editor.preview.images) == 9  # the sample and 8 draws of the empty pipeline
    plain = editor.preview.images
    assert all(np.array_equal(plain[0], d) for d in plain[1:])
    editor.add("RandomRotation")
    assert window.doc.project.data.augment_train == [ROTATE]
    assert window.doc.undo_stack.undoText() == "Add RandomRotation to the train pipeline"
    assert editor.model.rowCount() == 1 and editor.model.index(0).data() == "1. RandomRotation  degrees=15"
    editor.set_arg(0, "degrees", 180)  # a digit is 8x8: small turns can land on the same pixels
    editor.set_arg(0, "interpolation", "bilinear")
    assert editor.model.index(0).data() == "1. RandomRotation  degrees=180, interpolation=bilinear"
    images = drawn(editor)
    assert len(images) == 9 and len({d.tobytes() for d in images[1:]}) == 8  # 8 draws that differ
    assert editor.preview.note.text().startswith("The first example (8x8) and 8 draws")
    assert [editor.preview.tiles[i].pixmap().isNull() for i in range(9)] == [False] * 9
    turned = {"type": "RandomRotation", "args": {"degrees": 180, "interpolation": "bilinear"}}
    assert window.doc.project.data.augment_train == [turned]
    for _ in range(3):  # the two argument edits (each one step), then the addition
        window.doc.undo_stack.undo()
    assert window.doc.project.data.augment_train == [] and editor.model.rowCount() == 0
    window.doc.undo_stack.redo()
    assert window.doc.project.data.augment_train == [ROTATE] and editor.model.rowCount() == 1


def test_arguments_edit_through_the_fields_and_a_refused_value_is_said_not_applied(qtbot, window):
    editor = open_dock(qtbot, window)
    editor.add("GaussianBlur")
    field = editor.fields["kernel_size"]
    field.widget.setText("4")
    field.widget.textEdited.emit("4")
    assert window.doc.project.data.augment_train == [{"type": "GaussianBlur", "args": {"kernel_size": 3}}]
    assert editor.form_problem.text().startswith("data.augment_train[0] (GaussianBlur): Kernel size value should "
                                                 "be an odd")
    field.widget.setText("5, 5")
    field.widget.textEdited.emit("5, 5")
    assert window.doc.project.data.augment_train == [{"type": "GaussianBlur", "args": {"kernel_size": [5, 5]}}]
    assert editor.form_problem.text() == ""
    sigma = editor.fields["sigma"]
    sigma.widget.setText("abc")
    sigma.widget.textEdited.emit("abc")
    assert "sigma must be numbers" in editor.form_problem.text()
    window.doc.undo_stack.undo()
    assert window.doc.project.data.augment_train == [{"type": "GaussianBlur", "args": {"kernel_size": 3}}]


def test_hue_on_greyscale_digits_is_named_in_the_preview_and_the_training_panel(qtbot, window):
    editor = open_dock(qtbot, window)
    editor.add("ColorJitter")
    editor.set_arg(0, "hue", 0.1)
    drawn(editor)
    assert editor.preview.note.text().startswith("data.augment_train[0] (ColorJitter): hue needs colour images")
    assert editor.model.problem_row == 0
    panel = window.training.panel
    panel.probe.wait()
    assert "data.augment_train[0] (ColorJitter): hue needs colour images" in panel.fit_problem()


def test_reorder_by_a_drop_on_the_model_and_drop_events_on_the_list_is_undoable(qtbot, window):
    editor = open_dock(qtbot, window)
    for name in ("RandomRotation", "RandomHorizontalFlip", "RandomErasing"):
        editor.list.setCurrentIndex(editor.model.index(editor.model.rowCount() - 1, 0))
        editor.add(name)
    types = lambda: [s["type"] for s in window.doc.project.data.augment_train]  # noqa: E731
    assert types() == ["RandomRotation", "RandomHorizontalFlip", "RandomErasing"]
    model = editor.model
    mime = model.mimeData([model.index(2, 0)])
    assert mime.hasFormat(MIME)
    assert model.dropMimeData(mime, Qt.DropAction.MoveAction, 0, 0, model.index(-1, 0).parent()) is False
    assert types() == ["RandomErasing", "RandomRotation", "RandomHorizontalFlip"]
    assert window.doc.undo_stack.undoText() == "Move RandomErasing to place 1 of the train pipeline"
    window.doc.undo_stack.undo()
    assert types() == ["RandomRotation", "RandomHorizontalFlip", "RandomErasing"]
    # drag events delivered to the list's viewport, as Qt delivers them: the first row dropped below the last
    view = editor.list
    below_last = QPoint(10, view.visualRect(model.index(2, 0)).bottom() - 1)
    deliver_drop(view, model.mimeData([model.index(0, 0)]), below_last, Qt.DropAction.MoveAction)
    assert types() == ["RandomHorizontalFlip", "RandomErasing", "RandomRotation"]
    assert model.rowCount() == 3  # the view removed nothing itself
    window.doc.undo_stack.undo()
    assert types() == ["RandomRotation", "RandomHorizontalFlip", "RandomErasing"]


def test_the_pipelines_are_saved_and_reopened_and_a_run_trains_with_them(qtbot, window, tmp_path):
    editor = open_dock(qtbot, window)
    editor.add("RandomRotation")
    editor.show_pipeline("eval")
    editor.add("CenterCrop")
    editor.set_arg(0, "size", 8)
    assert window.doc.project.data.augment_eval == [{"type": "CenterCrop", "args": {"size": 8}}]
    path = tmp_path / "aug.wbproj"
    window.doc.save(path)
    saved = json.loads(path.read_text())
    assert saved["version"] == 3 and saved["data"]["augment_train"] == [ROTATE]
    again = projects.load(path)
    assert again.data.augment_train == [ROTATE] and again.data.augment_eval == [{"type": "CenterCrop",
                                                                                 "args": {"size": 8}}]
    window.open_file(str(path))
    assert editor.steps("train") == [ROTATE]
    dock = short_runs(window, tmp_path, epochs=1)
    dock.panel.start_button.click()
    end = wait_end(qtbot, dock)
    assert type(end).__name__ == "FinishedEvent", end


REAL_DRAG = r'''
import json, sys, time
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from workbench.project import templates
from ui.main_window import MainWindow
from ui.startup import configure_app

app = QApplication([])
configure_app(app)
project = templates.load("digits_cnn")
project.set_setting("data.augment_train", [{"type": t} for t in ("RandomHorizontalFlip", "RandomVerticalFlip",
                                                                 "RandomErasing")])
w = MainWindow(project=project)
w.resize(1200, 800)
w.move(0, 0)
w.show()
w.activateWindow()
w.docks["Augmentation"].show()
w.docks["Augmentation"].raise_()
QTest.qWaitForWindowExposed(w)
QTest.qWait(300)
view = w.augment.list
left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
QTimer.singleShot(15000, app.quit)  # never hang
start = view.visualRect(view.model().index(0, 0)).center()
target = QPoint(start.x(), view.visualRect(view.model().index(2, 0)).bottom() - 2)


def finish():
    QTest.mouseMove(view.viewport(), target + QPoint(0, 1))
    QTest.qWait(100)
    QTest.mouseMove(view.viewport(), target)
    QTest.qWait(100)
    QTest.mouseRelease(view.viewport(), left, none, target)
QTimer.singleShot(400, finish)
QTest.mousePress(view.viewport(), left, none, start)
clock = time.monotonic()
for step in range(1, 6):
    QTest.mouseMove(view.viewport(), start + QPoint(2 * step, 6 * step))
blocked = time.monotonic() - clock
QTest.qWait(200)
print("RESULT " + json.dumps({"platform": app.platformName(), "blocked_s": blocked,
                              "after": [s["type"] for s in w.doc.project.data.augment_train],
                              "rows": w.augment.model.rowCount(), "undo": w.doc.undo_stack.undoText()}), flush=True)
w.augment.shutdown()
'''


@pytest.mark.xvfb
def test_a_real_drag_reorders_the_steps(xvfb_display, tmp_path):  # noqa: F811 (the imported fixture)
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY",)}
    env.update(DISPLAY=xvfb_display, QT_QPA_PLATFORM="xcb", WORKBENCH_SETTINGS=str(tmp_path / "s.ini"),
               PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", REAL_DRAG], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"child failed (exit {run.returncode}):\n{run.stdout}\n{run.stderr[-3000:]}"
    result = json.loads(lines[0][len("RESULT "):])
    assert result["platform"] == "xcb" and result["blocked_s"] >= 0.3, result  # a real QDrag ran its loop
    assert result["after"] == ["RandomVerticalFlip", "RandomErasing", "RandomHorizontalFlip"], result
    assert result["rows"] == 3 and result["undo"] == "Move RandomHorizontalFlip to place 3 of the train pipeline"


def test_typing_an_argument_keeps_the_field_and_its_focus(qtbot, window):
    editor = open_dock(qtbot, window)
    editor.add("RandomRotation")
    window.activateWindow()
    field = editor.fields["degrees"]
    field.widget.setFocus()
    field.widget.selectAll()
    qtbot.keyClicks(field.widget, "40")
    assert editor.fields["degrees"] is field and field.widget.text() == "40"
    assert window.doc.project.data.augment_train == [{"type": "RandomRotation", "args": {"degrees": 40.0}}]
    window.doc.undo_stack.undo()  # "4" then "40" merged into one step
    assert window.doc.project.data.augment_train == [ROTATE] and field.widget.text() == "15"


def test_the_preview_follows_the_data_source_chosen_in_the_training_panel(qtbot, window):
    editor = open_dock(qtbot, window)
    assert editor.preview.image_size == (8, 8) and editor.preview.channels == 1  # digits
    editor.add("ColorJitter")
    window.training.panel.form.set_value("data", "source", "fake")  # an undoable settings edit elsewhere
    qtbot.waitUntil(lambda: editor.preview.image_size == (32, 32), timeout=30_000)
    editor.preview.wait()
    assert editor.preview.channels == 3 and len(editor.preview.images) == 9
    assert editor.preview.images[0].shape == (32, 32, 3)
    assert editor.preview.note.text().startswith("The first example (32x32) and 8 draws")
