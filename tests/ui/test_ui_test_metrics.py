"""The Evaluation tab's Test metrics page: the final model's per-class metrics after a run with
a test split (equal to scikit-learn's on the same predictions), Evaluate Checkpoint… on a
worker, a bad file said in the page, and the binary curves and regression figures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt
from sklearn import metrics

from workbench.data.bundle import Task, load_data
from workbench.training import evaluation, events as ev
from ui.training import evaluation as evaluation_panel
from ui.training.evaluation import EvaluationPanel
from window_helpers import short_runs, text_of, wait_end


def sklearn_rows(model, bundle) -> list[list[str]]:
    """The table rows scikit-learn gives for ``model`` on the test split, as the page writes them."""
    model.eval()
    with torch.no_grad():
        pred = model(bundle.test.x).argmax(dim=1).numpy()
    y = bundle.test.y.numpy()
    p, r, f, s = metrics.precision_recall_fscore_support(y, pred, labels=range(10), zero_division=0)
    rows = [[name, f"{p[i]:.3f}", f"{r[i]:.3f}", f"{f[i]:.3f}", f"{s[i]:,}"]
            for i, name in enumerate(bundle.task.class_names)]
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = metrics.precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        rows.append([f"{avg} average", f"{ap:.3f}", f"{ar:.3f}", f"{af:.3f}", f"{len(y):,}"])
    rows.append(["accuracy", "", "", f"{metrics.accuracy_score(y, pred):.3f}", f"{len(y):,}"])
    return rows


def table_rows(view) -> list[list[str]]:
    return [[view.cell(i, c) for c in range(view.table.columnCount())] for i in range(view.table.rowCount())]


def test_a_run_with_a_test_split_shows_its_per_class_metrics_and_any_checkpoint_can_be_evaluated(
        qtbot, window, tmp_path, monkeypatch):
    window.doc.project.set_setting("data.test_fraction", 0.2)
    dock = short_runs(window, tmp_path, epochs=1)
    qtbot.mouseClick(dock.panel.start_button, Qt.MouseButton.LeftButton)
    end = wait_end(qtbot, dock, timeout=120_000)
    assert isinstance(end, ev.FinishedEvent), end
    dock.tabs.setCurrentWidget(dock.evaluation)
    panel = dock.evaluation
    assert panel.pages.currentIndex() == 1  # the run's end brings the test metrics forward
    view = panel.metrics
    bundle = load_data(window.doc.project.data)  # the same seeded split the run trained on
    heading = text_of(view.heading)
    assert heading.startswith(f"Test split · {len(bundle.test):,} examples · accuracy ")
    assert f"run {Path(end.run_dir).name}" in heading
    expected = sklearn_rows(dock.live_model, bundle)
    assert table_rows(view) == expected
    assert view.report.confusion == metrics.confusion_matrix(
        bundle.test.y.numpy(), dock.live_model(bundle.test.x).argmax(dim=1).numpy()).tolist()
    assert view.matrix.matrix.sum() == len(bundle.test)  # the test split's matrix, beside the table
    assert [view.figures.tabText(i) for i in range(view.figures.count())] == ["Matrix"]  # ten classes

    # Evaluate Checkpoint…: the run's last.ckpt holds the same weights, read on a worker
    last = str(Path(end.run_dir) / "last.ckpt")
    monkeypatch.setattr(evaluation_panel, "choose_checkpoint", lambda parent, folder: last)
    view.clear()
    qtbot.mouseClick(panel.evaluate_button, Qt.MouseButton.LeftButton)
    assert not panel.evaluate_button.isEnabled() and "Evaluating last.ckpt" in panel.status.text()
    qtbot.waitUntil(lambda: panel.evaluate_button.isEnabled(), timeout=60_000)
    assert "checkpoint last.ckpt" in text_of(view.heading)
    assert table_rows(view) == expected

    # a file that is no checkpoint: said on the page, nothing shown changes
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    panel.evaluate_checkpoint(str(junk))
    qtbot.waitUntil(lambda: panel.evaluate_button.isEnabled(), timeout=60_000)
    assert "Cannot evaluate" in text_of(panel.status) and "junk.ckpt" in text_of(panel.status)
    assert table_rows(view) == expected


def test_binary_curves_and_regression_figures(qtbot):
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 420)
    panel.show()
    g = np.random.default_rng(3)
    y = g.integers(0, 2, 200)
    p1 = np.clip(0.3 + 0.4 * y + 0.25 * g.normal(size=200), 0, 1)
    report = evaluation.report(y, np.stack([1 - p1, p1], axis=1), Task("classification", (2,), num_classes=2,
                                                                       class_names=("cat", "dog")), "val")
    panel.show_report(report.to_dict(), "checkpoint best.ckpt")
    view = panel.metrics
    tabs = [view.figures.tabText(i) for i in range(view.figures.count())]
    auc, ap = metrics.roc_auc_score(y, p1), metrics.average_precision_score(y, p1)
    assert tabs == ["Matrix", "ROC", "PR"]
    assert text_of(view.heading).startswith("Validation split (the data has no test split) · 200 examples")
    assert f"ROC AUC {auc:.3f} · AP {ap:.3f} (positive: dog)" in text_of(view.heading)
    curve = view.roc.getPlotItem().listDataItems()[-1]
    fpr, tpr, _ = metrics.roc_curve(y, p1)
    assert np.allclose(curve.xData, fpr) and np.allclose(curve.yData, tpr)
    view.figures.setCurrentIndex(1)
    panel.grab()

    truth = g.normal(size=50)
    guess = truth + 0.1 * g.normal(size=50)
    reg = evaluation.report(truth, guess, Task("regression", (3,), default_loss="MSELoss"), "test")
    panel.show_report(reg, "run x")
    assert table_rows(view) == [["MAE (mean absolute error)", f"{metrics.mean_absolute_error(truth, guess):.4g}"],
                                ["RMSE (root mean squared error)",
                                 f"{np.sqrt(metrics.mean_squared_error(truth, guess)):.4g}"],
                                ["R² (coefficient of determination)", f"{metrics.r2_score(truth, guess):.4g}"]]
    assert [view.figures.tabText(i) for i in range(view.figures.count())] == ["Predicted vs true"]
    points = view.scatter.getPlotItem().listDataItems()[-1]
    assert len(points.xData) == 50
    panel.grab()
    panel.clear()
    assert view.report is None and panel.pages.currentIndex() == 0


@pytest.mark.parametrize("size", [(520, 300)])
def test_the_page_fits_a_small_tab(qtbot, size):
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    report = evaluation.report(np.arange(10) % 3, np.eye(3)[np.arange(10) % 3],
                               Task("classification", (2,), num_classes=3, class_names=("a", "b", "c")), "test")
    panel.show_report(report, "run r")
    qtbot.wait(10)
    view = panel.metrics
    assert view.table.isVisible() and view.figures.isVisible()
    assert view.table.width() > 150 and view.figures.width() > 150


def test_the_test_share_and_separate_files_are_set_beside_validation(qtbot, window, tmp_path, monkeypatch):
    from ui.training import split_dialog

    form = window.training.panel.form
    project = window.doc.project
    qtbot.mouseClick(form.findChild(type(form.arg_buttons["optimizer"]), "split_settings"), Qt.MouseButton.LeftButton)
    dialog = form.split_dialog
    assert dialog is not None and dialog.isVisible()
    assert not dialog.fields["val_path"].widget.isEnabled()  # digits reads no file
    assert "reads no file" in dialog.note.text()
    spin = dialog.fields["test_fraction"].widget
    spin.setValue(0.2)
    spin.editingFinished.emit()
    qtbot.waitUntil(lambda: project.data.test_fraction == 0.2, timeout=2_000)
    window.doc.undo_stack.undo()
    assert project.data.test_fraction == 0.0 and spin.value() == 0.0  # undone, and the dialog shows it
    window.doc.undo_stack.redo()
    # a CSV project takes separate files, picked with Browse
    (tmp_path / "t.csv").write_text("a,b,y\n1,2,x\n3,4,z\n")
    project.set_setting("data.source", "csv")
    project.set_setting("data.path", str(tmp_path / "t.csv"))
    dialog.refresh()
    assert dialog.fields["test_path"].widget.isEnabled()
    monkeypatch.setattr(split_dialog, "choose_split_path", lambda *a: str(tmp_path / "test.csv"))
    qtbot.mouseClick(dialog.browse["test_path"], Qt.MouseButton.LeftButton)
    assert project.data.test_path == str(tmp_path / "test.csv") and project.data.test_fraction == 0.0
    assert not spin.isEnabled()  # the file is the test part
    assert window.doc.undo_stack.undoText() == f"Set data.test_path to {tmp_path / 'test.csv'}"
    dialog.close()
