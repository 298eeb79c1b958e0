"""The CSV Columns dialog (issue 15 section 3): the file's columns with their detected types, a
type box and a target button each, the task and the missing-value rule; every choice one
undoable edit saved in the project file, and a run learns the chosen target from the chosen
columns. A choice the file cannot take is said in the panel, naming the column."""
from __future__ import annotations

import json
import random

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolButton

from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import project_file as projects
from workbench.training import events as ev

from window_helpers import short_runs, text_of, wait_end


def write_table(path, rows=90):
    """'kind' (3 classes, first column) follows from x1; 'noise' is text; 'size' (last) is numbers."""
    rng = random.Random(1)
    lines = ["kind,x1,noise,x2,size"]
    for i in range(rows):
        k = i % 3
        x2 = "" if i % 11 == 0 else f"{rng.random():.3f}"
        lines.append(f"{'abc'[k]},{k * 3 + rng.random():.3f},{rng.choice('pqr')},{x2},{rng.randint(1, 90)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def open_csv_project(window, tmp_path):
    table = write_table(tmp_path / "table.csv")
    model = ModelSpec((2,), [LayerSpec("fc", "Linear", {"out_features": 3})])
    proj = projects.new("Table", model, data={"source": "csv", "path": str(table), "batch_size": 16},
                        training={"epochs": 8, "tensorboard": False, "device": "cpu",
                                  "optimizer": {"type": "Adam", "lr": 0.05}})
    path = projects.save(proj, tmp_path / "table.wbproj")
    assert window.open_file(str(path))
    return path


def test_pick_the_target_and_column_types_in_the_window_then_train(window, qtbot, tmp_path):
    path = open_csv_project(window, tmp_path)
    form = window.training.panel.form
    button = form.findChild(QToolButton, "csvColumnsButton")
    assert button.isVisible() and button.toolTip().startswith("CSV Columns…")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    dialog = form.csv_columns
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 5, timeout=10_000)
    assert [dialog.table.item(r, 0).text() for r in range(5)] == ["kind", "x1", "noise", "x2", "size"]
    assert [dialog.table.item(r, 1).text() for r in range(5)] == ["categorical", "numeric", "categorical",
                                                                  "numeric, 9 missing", "numeric"]
    assert dialog.targets.checkedButton() is dialog.targets.button(4)  # no target set: the last column
    assert dialog.task_box.currentText() == "auto (regression)"  # 'size': 90 different numbers

    dialog.choose_target("kind")
    dialog.choose_type("noise", "ignore")
    dialog.choose_type("size", "ignore")
    dialog.missing_box.setCurrentIndex(1)
    dialog.missing_box.activated.emit(1)  # mode
    data = window.doc.project.data
    assert (data.target, data.columns, data.missing) == ("kind", {"noise": "ignore", "size": "ignore"}, "mode")
    assert dialog.task_box.currentText() == "auto (classification)"
    assert not dialog.types["kind"].isEnabled()  # the target's type is not an input type
    stack = window.doc.undo_stack
    assert stack.undoText() == "Set data.missing to mode"
    stack.undo()
    assert stack.undoText() == "Set CSV column 'size' to ignore"
    stack.undo()
    assert window.doc.project.data.columns == {"noise": "ignore"} and window.doc.project.data.missing == "mean"
    assert dialog.types["size"].currentData() == "detected"  # the dialog follows undo
    stack.redo()
    stack.redo()
    assert window.doc.project.data.columns == {"noise": "ignore", "size": "ignore"}

    assert window.save()
    saved = json.loads(path.read_text())["data"]
    assert saved["target"] == "kind" and saved["columns"] == {"noise": "ignore", "size": "ignore"}
    assert saved["missing"] == "mode"

    dock = short_runs(window, tmp_path, epochs=8)
    dock.panel.probe.wait()
    assert dock.start()
    end = wait_end(qtbot, dock)
    assert isinstance(end, ev.FinishedEvent), end
    assert end.best_val_acc is not None and end.best_val_acc > 0.8  # 'kind' follows from x1: learned
    dialog.close()


def test_a_type_the_column_cannot_take_is_said_naming_it(window, qtbot, tmp_path):
    open_csv_project(window, tmp_path)
    form, panel = window.training.panel.form, window.training.panel
    dialog = form.edit_csv_columns()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 5, timeout=10_000)
    dialog.choose_type("noise", "numeric")
    panel.probe.wait()
    qtbot.waitUntil(lambda: "noise" in text_of(panel.task_label), timeout=10_000)
    shown = text_of(panel.task_label)
    assert "column 'noise' is set to numeric but holds" in shown and "Traceback" not in shown
    dialog.close()
