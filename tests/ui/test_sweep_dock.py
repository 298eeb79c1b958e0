"""The Sweep dock (issue 16): "Sweep this value…" on the inspector's and the settings' fields
(undoable), the value dialog's checks, past sweeps read from the project's .sweeps.db (table,
plots, importances), Apply Best Trial as one undo step, Export Best Trial with the trial's
weights, Start asking to save, a worker's error line, Stop and closing mid-sweep, and a real
small sweep end to end."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMenu

from workbench.experiments.space import SweepParam
from workbench.model import build
from workbench.project import project_file as projects, templates

from ui.experiments import sweep_dock, sweep_runner
from ui.experiments.sweep_value_dialog import SweepValueDialog

LR, WIDTH = "training.optimizer.lr", "conv1.out_channels"
H = Qt.Orientation.Horizontal


def open_window(qtbot, path: Path):
    from ui.main_window import MainWindow

    w = MainWindow(str(path))
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    return w


def saved_digits(tmp_path: Path, epochs: int = 1) -> Path:
    project = templates.load("digits_cnn")
    data = project.to_json()
    data["training"]["epochs"] = epochs
    data["training"]["tensorboard"] = False
    path = tmp_path / "digits.wbproj"
    path.write_text(json.dumps(data))
    return path


def planned_study(project_path: Path, checkpoint: str = "") -> optuna.Study:
    """Like fill_storage, with each trial's parameters exactly as planned (enqueued)."""
    study = optuna.create_study(study_name="digits-earlier", storage=sweep_dock.storage_for(project_path),
                                direction="maximize")
    study.set_user_attr("space", {"params": {LR: {"low": 1e-4, "high": 0.1, "log": True},
                                             WIDTH: {"choices": [16, 32, 64]}}, "metric": "val_acc"})
    plan = [(0.0003, 16, 0.81), (0.003, 64, 0.95), (0.05, 32, 0.62), (0.001, 32, 0.9), (0.02, 16, 0.7)]
    for lr, width, acc in plan:
        study.enqueue_trial({LR: lr, WIDTH: width})

    def objective(trial):
        lr = trial.suggest_float(LR, 1e-4, 0.1, log=True)
        width = trial.suggest_categorical(WIDTH, [16, 32, 64])
        acc = next(a for p_lr, p_w, a in plan if p_lr == lr and p_w == width)
        trial.set_user_attr("epochs", [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.5 - acc + 0.1 / e,
                                        "val_acc": acc - 0.05 / e, "seconds": 0.5 * e} for e in (1, 2, 3)])
        trial.set_user_attr("seconds", 2.5)
        if width == 64 and checkpoint:
            trial.set_user_attr("checkpoint", checkpoint)
        return acc

    study.optimize(objective, n_trials=len(plan))
    return study


def wait_trials(qtbot, dock, count: int, timeout: int = 30_000) -> None:
    qtbot.waitUntil(lambda: dock.snapshot is not None and len(dock.snapshot.trials) >= count
                    and dock.table.model().rowCount() >= count, timeout=timeout)


# ---------------------------------------------------------------- defining the space
def test_sweep_this_value_on_an_inspector_field_adds_it_and_undo_removes_it(window, qtbot, monkeypatch):
    dock = window.sweep
    window.stack.select_ids(["conv1"])
    field = window.inspector.fields["out_channels"]
    seen = []

    def pick(parent, project, path, param, existing):
        dialog = SweepValueDialog(project, path, param, existing, parent)
        seen.append((path, dialog.choice_button.isChecked(), dialog.choices.text()))
        return dialog.param()

    monkeypatch.setattr(sweep_dock, "edit_param", pick)
    menu = window.inspector.value_menu.menu_for(field.widget)
    action = next(a for a in menu.actions() if a.text() == "Sweep This Value…")
    action.trigger()
    assert seen == [(WIDTH, True, "16, 32, 64")]  # a width: half, as is, double
    assert window.doc.project.sweep.param(WIDTH) == SweepParam(WIDTH, choices=(16, 32, 64))
    assert [dock.space_list.topLevelItem(0).text(c) for c in range(3)] == [WIDTH, "16, 32, 64", "32"]
    assert window.isWindowModified()
    assert window.doc.undo_stack.undoText() == f"Sweep {WIDTH} over 16, 32, 64"
    window.doc.undo_stack.undo()
    assert window.doc.project.sweep is None
    assert dock.space_list.topLevelItemCount() == 0 and dock.empty_hint.isVisibleTo(dock)
    window.doc.undo_stack.redo()
    assert dock.space_list.topLevelItemCount() == 1
    # again on the same field: Edit and Stop Sweeping
    labels = [a.text() for a in window.inspector.value_menu.menu_for(field.widget).actions() if a.text()]
    assert "Edit Sweep Range…" in labels and "Stop Sweeping This Value" in labels


def test_sweep_this_value_on_a_training_setting_uses_a_log_range(window, qtbot, monkeypatch):
    dock = window.sweep
    form = window.training.panel.form
    monkeypatch.setattr(sweep_dock, "edit_param", lambda parent, project, path, param, existing:
                        SweepValueDialog(project, path, param, existing, parent).param())
    field = form.fields[("optimizer", "lr")]
    label = form.labels[("optimizer", "lr")]
    for widget in (field.widget, label):  # the field and its label both offer it
        assert [a.text() for a in form.value_menu.actions_for(widget)] == ["Sweep This Value…"]
    form.value_menu.menu_for(field.widget)  # the spin box's own text menu, with the entry added
    next(a for a in form.value_menu.actions_for(field.widget)).trigger()
    lr = window.doc.project.sweep.param(LR)
    current = window.doc.project.training.optimizer.lr
    assert lr.log and lr.low == pytest.approx(current / 10) and lr.high == pytest.approx(current * 10)
    assert dock.space_list.topLevelItem(0).text(1).startswith("log ")
    # the device and the data path are no hyperparameters: no entry
    assert form.value_menu.actions_for(form.fields[("data", "path")].widget) == []


def test_a_real_right_click_shows_the_entry_in_the_fields_own_menu(window, qtbot):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QContextMenuEvent

    window.stack.select_ids(["drop"] if window.doc.spec.find("drop") else ["conv1"])
    field = next(iter(window.inspector.fields.values()))
    shown = []

    def grab():
        menu = QApplication.activePopupWidget()
        if isinstance(menu, QMenu):
            shown.append([a.text() for a in menu.actions()])
            menu.close()

    QTimer.singleShot(200, grab)
    target = field.widget.lineEdit() if hasattr(field.widget, "lineEdit") and field.widget.lineEdit() else field.widget
    QApplication.sendEvent(target, QContextMenuEvent(QContextMenuEvent.Reason.Mouse, QPoint(5, 5),
                                                     target.mapToGlobal(QPoint(5, 5))))
    qtbot.waitUntil(lambda: bool(shown), timeout=3000)
    assert "Sweep This Value…" in shown[0]
    assert len(shown[0]) > 2  # the text box's own entries (copy, paste, ...) are still there


def test_the_value_dialog_says_what_is_wrong_and_waits(window, qtbot):
    form = window.training.panel.form
    param = form.fields[("optimizer", "lr")].param
    dialog = SweepValueDialog(window.doc.project, LR, param)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.buttons()[0]
    dialog.low.setText("0")
    assert "above 0" in dialog.check() and not ok.isEnabled()
    dialog.low.setText("0.1")
    dialog.high.setText("0.01")
    assert "empty range" in dialog.check()
    dialog.high.setText("abc")
    assert dialog.check() == "high must be a number, got 'abc'"
    dialog.high.setText("0.5")
    assert dialog.check() == "" and ok.isEnabled()
    dialog.choice_button.setChecked(True)
    dialog.choices.setText("0.01, ")
    assert "empty item" in dialog.check()
    window.stack.select_ids(["conv1"])
    width = window.inspector.fields["out_channels"].param
    wide = SweepValueDialog(window.doc.project, WIDTH, width)
    qtbot.addWidget(wide)
    wide.choices.setText("16, 0")
    assert "0" in wide.check() and not wide.buttons.buttons()[0].isEnabled()  # below the field's least, 1


# ---------------------------------------------------------------- past sweeps, results, acting on them
def test_reopening_a_project_shows_its_past_sweeps(qtbot, isolated_settings, tmp_path):
    path = saved_digits(tmp_path)
    planned_study(path)
    window = open_window(qtbot, path)
    dock = window.sweep
    wait_trials(qtbot, dock, 5)
    assert dock.study_box.currentText() == "digits-earlier"
    table = dock.table
    assert table.model().headerData(2, H) == "optimizer.lr" and table.model().headerData(3, H) == "conv1.out_channels"
    assert [row[:4] for row in table.shown()][1] == ["1", "complete", "0.003", "64"]
    table.sortByColumn(4, Qt.SortOrder.DescendingOrder)
    assert [row[0] for row in table.shown()] == ["1", "3", "0", "4", "2"]  # by best val_acc, not by text
    assert "trial 1" in dock.best_label.text() and "0.9500" in dock.best_label.text()
    qtbot.waitUntil(lambda: bool(dock.importances.shown), timeout=30_000)
    assert set(dock.importances.shown) == {LR, WIDTH}
    assert set(dock.parallel.lines) == {0, 1, 2, 3, 4}
    assert dock.curves.curves == 10 and len(dock.curves.best_items) == 2  # accuracy and loss, best on top
    assert dock.apply_button.isEnabled() and not dock.export_button.isEnabled()  # no checkpoint stored


def test_apply_best_trial_is_one_undoable_edit(qtbot, isolated_settings, tmp_path):
    path = saved_digits(tmp_path)
    planned_study(path)
    window = open_window(qtbot, path)
    dock = window.sweep
    wait_trials(qtbot, dock, 5)
    before = window.doc.project.to_json()
    assert dock.apply_best()
    project = window.doc.project
    assert project.training.optimizer.lr == 0.003 and project.model.find("conv1").args["out_channels"] == 64
    assert window.training.panel.form.fields[("optimizer", "lr")].widget.value() == pytest.approx(0.003)
    assert window.doc.undo_stack.undoText().startswith("Apply trial 1: ")
    window.doc.undo_stack.undo()
    assert window.doc.project.to_json() == before
    assert window.training.panel.form.fields[("optimizer", "lr")].widget.value() == pytest.approx(
        before["training"]["optimizer"]["lr"])


def test_export_best_trial_opens_the_dialog_with_its_weights(qtbot, isolated_settings, tmp_path):
    path = saved_digits(tmp_path)
    trial_project = projects.load(path)
    trial_project.model.find("conv1").args["out_channels"] = 64
    weights = tmp_path / "trial-1.pth"
    torch.save(build.build_model(trial_project.model).state_dict(), weights)
    planned_study(path, checkpoint=str(weights))
    window = open_window(qtbot, path)
    dock = window.sweep
    wait_trials(qtbot, dock, 5)
    assert dock.export_button.isEnabled()
    dialog = dock.export_best()
    with qtbot.waitSignal(dialog.weightsLoaded, timeout=30_000) as loaded:
        pass
    assert loaded.args == [str(weights)]
    assert "Loaded" in dialog.status.text()
    assert dialog.model.conv1.out_channels == 64  # the trial's model, not the project's 32
    dialog.close()


# ---------------------------------------------------------------- running
def test_start_asks_to_save_and_starts_nothing_when_refused(window, qtbot, monkeypatch):
    dock = window.sweep
    dock.add_param(SweepParam(LR, 1e-4, 0.1, log=True))
    asked = []
    monkeypatch.setattr(sweep_dock, "ask_save", lambda parent, name: asked.append(name) or False)
    assert not dock.start()
    assert asked and not dock.is_running()
    assert "saved project file" in dock.status.text()


def test_start_with_an_empty_space_says_how_to_add_one(window, qtbot):
    dock = window.sweep
    assert not dock.start()
    assert "Sweep this value" in dock.error.text() and dock.error.isVisibleTo(dock)


def fake_workers(monkeypatch, code: str) -> None:
    monkeypatch.setattr(sweep_runner, "command", lambda *a: ["-c", code])


def test_a_worker_error_line_is_shown_in_the_dock(qtbot, isolated_settings, tmp_path, monkeypatch):
    window = open_window(qtbot, saved_digits(tmp_path))
    dock = window.sweep
    dock.add_param(SweepParam(LR, 1e-4, 0.1, log=True))
    window.save()
    fake_workers(monkeypatch, "import sys; print('Traceback noise', file=sys.stderr); "
                 "print('error: sweep parameter conv9.p: no layer', file=sys.stderr); sys.exit(2)")
    dock.jobs.setValue(2)
    with qtbot.waitSignal(dock.workers.ended, timeout=30_000) as ended:
        assert dock.start()
    assert ended.args == [[2, 2]]
    assert dock.error.text() == "error: sweep parameter conv9.p: no layer"  # one line, once
    assert dock.start_button.isEnabled() and not dock.stop_button.isEnabled()


def children_of(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                out.append(int(proc.name))
    return out


SLEEPER = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
           "time.sleep(120)")


def test_stop_ends_every_worker_and_what_it_started(qtbot, isolated_settings, tmp_path, monkeypatch):
    window = open_window(qtbot, saved_digits(tmp_path))
    dock = window.sweep
    dock.add_param(SweepParam(LR, 1e-4, 0.1, log=True))
    window.save()
    fake_workers(monkeypatch, SLEEPER)
    dock.jobs.setValue(2)
    assert dock.start()
    pids = [p.processId() for p in dock.workers.processes]
    qtbot.waitUntil(lambda: all(children_of(pid) for pid in pids), timeout=20_000)
    grandchildren = [c for pid in pids for c in children_of(pid)]
    assert dock.stop_button.isEnabled()
    with qtbot.waitSignal(dock.workers.ended, timeout=20_000):
        dock.stop_button.click()
    qtbot.waitUntil(lambda: not any(Path(f"/proc/{c}").exists() and "Z" not in
                                    Path(f"/proc/{c}/stat").read_text().rsplit(")", 1)[1].split()[0]
                                    for c in grandchildren), timeout=10_000)
    assert "Stopped" in dock.status.text() and dock.error.isHidden()


def test_closing_the_window_mid_sweep_stops_the_workers(qtbot, isolated_settings, tmp_path, monkeypatch):
    window = open_window(qtbot, saved_digits(tmp_path))
    dock = window.sweep
    dock.add_param(SweepParam(LR, 1e-4, 0.1, log=True))
    window.save()
    fake_workers(monkeypatch, SLEEPER)
    assert dock.start()
    proc = dock.workers.processes[0]
    qtbot.waitUntil(lambda: bool(children_of(proc.processId())), timeout=20_000)
    asked = []
    monkeypatch.setattr(sweep_dock, "ask_stop", lambda parent: asked.append(1) or True)
    assert window.close()
    assert asked and not dock.is_running()


# ---------------------------------------------------------------- a real sweep, end to end
def has_sweep_command() -> bool:
    try:
        import workbench.experiments.sweep  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not has_sweep_command(), reason="`workbench sweep` (helper A's runner) is not merged yet")
def test_a_small_real_sweep_end_to_end(qtbot, isolated_settings, tmp_path, monkeypatch):
    window = open_window(qtbot, saved_digits(tmp_path, epochs=1))
    dock = window.sweep
    monkeypatch.setattr(sweep_dock, "edit_param", lambda parent, project, path, param, existing:
                        SweepParam(LR, 1e-3, 1e-1, log=True) if path == LR else SweepParam(WIDTH, choices=(8, 16)))
    form = window.training.panel.form
    next(iter(form.value_menu.actions_for(form.fields[("optimizer", "lr")].widget))).trigger()
    window.stack.select_ids(["conv1"])
    next(iter(window.inspector.value_menu.actions_for(window.inspector.fields["out_channels"].widget))).trigger()
    dock.trials.setValue(2)
    dock.sampler.setCurrentIndex(dock.sampler.findData("random"))
    dock.sampler.activated.emit(dock.sampler.currentIndex())  # as choosing it with the mouse does
    assert window.doc.project.sweep.sampler == "random" and window.doc.project.sweep.trials == 2
    monkeypatch.setattr(sweep_dock, "ask_save", lambda parent, name: True)
    assert window.doc.modified
    with qtbot.waitSignal(dock.workers.ended, timeout=240_000) as ended:
        assert dock.start()
        assert not window.doc.modified  # saved first, when asked
        qtbot.waitUntil(lambda: dock.table.model().rowCount() >= 1, timeout=120_000)  # fills while it runs
    assert ended.args == [[0]], dock.error.text()
    wait_trials(qtbot, dock, 2)
    qtbot.waitUntil(lambda: dock.snapshot.best is not None and all(t.state == "COMPLETE"
                                                                    for t in dock.snapshot.trials), timeout=10_000)
    assert len(dock.snapshot.trials) == 2
    best = dock.best_trial()
    assert best.epochs and Path(best.checkpoint).is_file()
    before = window.doc.project.to_json()
    assert dock.apply_best()
    assert window.doc.project.model.find("conv1").args["out_channels"] == best.params[WIDTH]
    assert window.doc.project.training.optimizer.lr == pytest.approx(best.params[LR])
    window.doc.undo_stack.undo()
    assert window.doc.project.to_json() == before
    dialog = dock.export_best()
    with qtbot.waitSignal(dialog.weightsLoaded, timeout=60_000) as loaded:
        pass
    assert loaded.args == [best.checkpoint]
    dialog.close()
    assert sys.executable  # the workers ran this Python
