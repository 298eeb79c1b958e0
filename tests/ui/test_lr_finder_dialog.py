"""Training > Find Learning Rate…: the range test off the UI thread, its curve and suggestion,
Apply as one undoable edit, a clean stop on close, and the refusal while a run trains."""
from __future__ import annotations

import math

import pytest

from ui.common.workers import running_workers
from ui.experiments import lr_finder_dialog

from window_helpers import short_runs, wait_end


@pytest.fixture
def few_steps(monkeypatch):
    monkeypatch.setattr(lr_finder_dialog, "STEPS", 40)


def finder_action(window):
    return next(a for a in window.menu("training").actions() if a.text() == "Find &Learning Rate...")


def test_the_dialog_finds_and_applies_a_learning_rate_in_one_undo_step(qtbot, window, few_steps):
    doc = window.doc
    old_lr, depth = doc.project.training.optimizer.lr, doc.undo_stack.count()
    finder_action(window).trigger()
    dialog = window.lr_finder
    assert dialog.isVisible() and dialog.is_running()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=120_000)
    curve = dialog.curve
    assert curve is not None and curve.suggestion is not None and len(curve.lrs) > 11
    assert dialog.plot.getPlotItem().ctrl.logXCheck.isChecked()  # log x axis
    assert dialog.mark_line.isVisible() and dialog.mark_line.value() == pytest.approx(math.log10(curve.suggestion))
    assert dialog.apply_button.isEnabled()
    assert f"{dialog.suggestion():g}" in dialog.status.text()
    assert doc.project.training.optimizer.lr == old_lr  # nothing changes before Apply
    dialog.apply_button.click()
    assert doc.project.training.optimizer.lr == dialog.suggestion() != old_lr
    assert doc.undo_stack.count() == depth + 1
    assert doc.undo_stack.undoText() == f"Set optimizer.lr to {dialog.suggestion():g}"
    assert window.training.panel.form.fields[("optimizer", "lr")].widget.text() == f"{dialog.suggestion():g}"
    doc.undo_stack.undo()
    assert doc.project.training.optimizer.lr == old_lr
    dialog.close()


def test_closing_mid_run_stops_the_test_cleanly(qtbot, window, monkeypatch):
    monkeypatch.setattr(lr_finder_dialog, "STEPS", 100_000)  # would run for minutes
    old_lr = window.doc.project.training.optimizer.lr
    dialog = window.lr_finder
    dialog.show_and_run()
    qtbot.waitUntil(lambda: len(dialog._points) >= 3, timeout=60_000)
    dialog.close()
    assert not dialog.is_running() and not running_workers()
    assert dialog.curve is None and not dialog.apply_button.isEnabled()  # the stopped test's answer is dropped
    assert window.doc.project.training.optimizer.lr == old_lr


def test_refused_while_a_run_trains_and_says_why(qtbot, window, tmp_path, few_steps):
    dock = short_runs(window, tmp_path, epochs=3)
    dock.start()
    qtbot.waitUntil(dock.is_running, timeout=30_000)
    finder_action(window).trigger()
    dialog = window.lr_finder
    assert not dialog.is_running() and "A run is training" in dialog.status.text()
    assert "compete with it" in dialog.status.text()
    dock.stop()
    wait_end(qtbot, dock)
    dialog.run_button.click()  # once the run is over, Run starts it
    assert dialog.is_running()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=120_000)
    dialog.close()


def test_early_stopping_in_the_settings_form(qtbot, window):
    doc, form = window.doc, window.training.panel.form
    box = form.fields[("early_stopping", "enabled")].widget
    assert form.labels[("early_stopping", "enabled")].text() == "Early stopping" and box.isVisible()
    depth = doc.undo_stack.count()
    box.click()
    assert doc.project.training.early_stopping.enabled and doc.undo_stack.count() == depth + 1
    dialog = form.edit_arguments("early_stopping")
    assert list(dialog.fields) == ["metric", "mode", "patience", "min_delta", "restore_best"]
    dialog.fields["patience"].widget.setValue(2)
    assert doc.project.training.early_stopping.patience == 2
    metric = dialog.fields["metric"].widget
    metric.setCurrentIndex(metric.findText("val_acc"))
    metric.activated.emit(metric.currentIndex())
    mode = dialog.fields["mode"].widget
    mode.setCurrentIndex(mode.findText("min"))
    mode.activated.emit(mode.currentIndex())  # accuracy must rise: refused, said, not applied
    assert doc.project.training.early_stopping.mode == "auto" and "val_acc rises" in dialog.problem.text()
    from workbench.project import project_file as project

    loaded = project.from_json(doc.project.to_json())
    assert loaded.training.early_stopping == doc.project.training.early_stopping
    dialog.close()
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert not doc.project.training.early_stopping.enabled and not box.isChecked()


def test_a_run_stopped_early_says_so_in_the_window(qtbot, window, tmp_path):
    from dataclasses import replace

    from workbench.project.settings import EarlyStoppingSettings

    dock = short_runs(window, tmp_path, epochs=20)
    project = window.doc.project
    # a min_delta no epoch can beat: the first epoch stays the best, patience 1 ends the run at epoch 2
    project.training = replace(project.training, early_stopping=EarlyStoppingSettings(
        enabled=True, patience=1, min_delta=10.0, restore_best=True))
    dock.start()
    end = wait_end(qtbot, dock, timeout=120_000)
    assert end.message == "stopped early at epoch 2 (best at 1)" and end.restored_epoch == 1
    assert "stopped early at epoch 2 (best at 1)" in dock.panel.status.text()
    assert "the model holds epoch 1's weights" in window.statusBar().currentMessage()
    assert project.runs[-1]["message"] == end.message
