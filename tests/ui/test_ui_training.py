"""Training in the window: the thread bridge, Start / Pause / Freeze / Resume / Stop from the
UI, live learning rate, failures shown in the window, closing mid-run, the trained model
handed to Export."""
from __future__ import annotations

from dataclasses import replace

import os
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from ui.training import dock as training_dock
from ui.training.engine_bridge import DELIVERY_MS, ENGINE_NICE, TrainingRun
from ui.editor.stack_model import FROZEN
from window_helpers import short_runs, text_of, wait_end
from workbench.training import events as ev
from workbench.project import templates
from workbench.errors import WorkbenchError


@pytest.fixture(autouse=True)
def never_block_on_close(monkeypatch):
    """A failed test must not hang in a modal 'stop training?' box when its window closes."""
    monkeypatch.setattr(training_dock, "ask_stop", lambda parent: True)


@pytest.fixture
def trainer(window, tmp_path):
    """The window on a saved digits CNN project (runs go under tmp_path), short runs."""
    return short_runs(window, tmp_path, epochs=2)


def steps_seen(dock) -> int:
    return dock.series.n_steps if dock.series is not None else 0


# ---------------------------------------------------------------- the bridge itself

def test_bridge_delivers_events_in_batches_and_ends_after_its_thread(qtbot, tmp_path):
    project = templates.load("digits_cnn")
    project.path = tmp_path / "p.wbproj"
    project.training = replace(project.training, epochs=2, log_every=1, tensorboard=False)
    run = TrainingRun(project)
    batches: list[list] = []
    run.events.connect(batches.append)
    main = threading.current_thread()
    seen_threads = []
    run.events.connect(lambda _: seen_threads.append(threading.current_thread()))
    niceness = []
    run.engine.add_handler(lambda e: niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
                           if sys.platform.startswith("linux") else None)
    order = []
    run.events.connect(lambda _: order.append("events"))
    run.ended.connect(lambda *_: order.append("ended"))
    t0 = time.monotonic()
    with qtbot.waitSignals([run.events, run.ended], timeout=60_000):
        run.start()
    elapsed = time.monotonic() - t0
    end, record = run.end, run.record
    assert order[-1] == "ended" and order.count("ended") == 1  # once, after every batch
    assert not run.is_running()  # 'ended' comes after the thread stopped
    assert isinstance(end, ev.FinishedEvent)
    events = [d.event for batch in batches for d in batch]
    steps = [e for e in events if isinstance(e, ev.StepEvent)]
    assert isinstance(events[0], ev.StartedEvent)
    assert [s.step for s in steps] == list(range(1, end.step + 1))  # every step, in order
    # delivered in batches on a timer, never faster than one per DELIVERY_MS, whatever the step rate
    assert len(batches) <= elapsed * 1000 / DELIVERY_MS + 2
    assert max(len(b) for b in batches) > 1
    assert set(seen_threads) == {main}
    assert [e.epoch for e in events if isinstance(e, ev.EpochEvent)] == [1, 2]
    grids = [d.samples for batch in batches for d in batch if isinstance(d.event, ev.EpochEvent)]
    assert all(g is not None and g.samples for g in grids)  # evaluated samples come with each epoch
    assert record["status"] == "finished" and record["settings"]["lr"] == project.training.optimizer.lr
    assert project.runs == [record]  # the record lands in the project the run started from
    if sys.platform.startswith("linux"):  # the engine thread yields the CPU to the window
        assert set(niceness) == {min(19, os.getpriority(os.PRIO_PROCESS, 0) + ENGINE_NICE)}


def test_the_engine_works_on_a_copy_so_edits_during_a_run_cannot_reach_it(qtbot, tmp_path):
    project = templates.load("digits_cnn")
    project.path = tmp_path / "p.wbproj"
    project.training = replace(project.training, epochs=1, tensorboard=False)
    run = TrainingRun(project)
    project.set_setting("training.optimizer.lr", 123.0)
    project.model.layers.pop()
    with qtbot.waitSignal(run.ended, timeout=60_000):
        run.start()
    assert isinstance(run.end, ev.FinishedEvent)
    assert run.record["settings"]["lr"] == 0.003


# ---------------------------------------------------------------- the story from the window

def test_press_train_watch_loss_fall_and_accuracy_rise(qtbot, window, trainer):
    doc = window.doc
    spec_before = doc.spec.to_json()
    assert trainer.panel.start_button.isEnabled()
    assert "the model fits this data" in text_of(trainer.panel.task_label)
    qtbot.mouseClick(trainer.panel.start_button, Qt.MouseButton.LeftButton)
    assert doc.edit_lock  # layers locked while the run goes on
    with pytest.raises(WorkbenchError, match="training runs"):
        doc.insert_kind("ReLU")
    end = wait_end(qtbot, trainer)
    assert isinstance(end, ev.FinishedEvent), end
    s = trainer.series
    assert s.n_steps == end.step
    assert s.ema.view()[-1] < 0.5 * s.ema.view()[:5].mean()  # the smoothed loss fell
    acc = s.val_acc.view()
    assert len(acc) == 2 and acc[-1] > 0.8
    assert trainer.plots.smooth.xData is not None and len(trainer.plots.smooth.xData) > 0
    trainer.tabs.setCurrentWidget(trainer.evaluation)  # drawn when it shows (hidden, only kept)
    assert "Epoch 2" in text_of(trainer.evaluation.title)
    assert trainer.evaluation.matrix.matrix.sum() == 359  # every validation example, in the image
    assert trainer.evaluation.samples.tiles
    assert not doc.edit_lock and doc.modified  # unlocked; the run history asks to be saved
    record = doc.project.runs[-1]
    assert record["status"] == "finished" and record["frozen"] == []
    assert doc.spec.to_json() == spec_before
    assert "Finished 2 epochs" in trainer.panel.status.text()


def test_pause_freeze_resume_stop_and_it_is_all_recorded(qtbot, window, trainer):
    doc = window.doc
    doc.project.training = replace(doc.project.training, epochs=500)
    assert trainer.start()
    qtbot.waitUntil(lambda: steps_seen(trainer) >= 4, timeout=30_000)
    qtbot.mouseClick(trainer.panel.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: trainer.panel.state == "paused", timeout=10_000)
    assert trainer.panel.pause_button.text() == "Resume"
    held = steps_seen(trainer)
    qtbot.wait(300)
    assert steps_seen(trainer) == held  # nothing trains while paused

    # tick conv1's freeze box in the stack, as a person would, while paused
    model = window.stack_model
    model.setData(model.index_of("conv1", FROZEN), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert doc.spec.find("conv1").frozen
    qtbot.waitUntil(lambda: len(trainer.series.marks) == 1, timeout=10_000)
    assert trainer.series.marks[0].text == "freeze conv1"
    assert len(trainer.plots._mark_lines) == 1  # a vertical mark in the loss plot
    assert "28,810 of 29,130 parameters trainable" in text_of(trainer.panel.trainable)
    conv1 = trainer.run.engine.model.conv1.weight.detach().clone()

    qtbot.mouseClick(trainer.panel.pause_button, Qt.MouseButton.LeftButton)  # Resume
    qtbot.waitUntil(lambda: steps_seen(trainer) >= held + 6, timeout=30_000)
    assert torch.equal(trainer.run.engine.model.conv1.weight, conv1)  # frozen from the next step on

    qtbot.mouseClick(trainer.panel.stop_button, Qt.MouseButton.LeftButton)
    end = wait_end(qtbot, trainer)
    assert isinstance(end, ev.StoppedEvent)
    record = doc.project.runs[-1]
    assert record["status"] == "stopped" and record["steps"] == end.step
    assert record["freezes"] == [{"step": held, "path": "conv1", "frozen": True}]
    assert "Resume from checkpoint" in trainer.panel.status.text()
    assert not doc.edit_lock


def test_learning_rate_changed_during_a_run_acts_at_once(qtbot, window, trainer):
    window.doc.project.training = replace(window.doc.project.training, epochs=500)
    trainer.start()
    qtbot.waitUntil(lambda: steps_seen(trainer) >= 2, timeout=30_000)
    trainer.panel.form.fields[("optimizer", "lr")].widget.setValue(0.0005)
    qtbot.waitUntil(lambda: any(m.text == "lr 0.0005" for m in trainer.series.marks), timeout=10_000)
    qtbot.waitUntil(lambda: trainer.series.lr.last() == pytest.approx(0.0005), timeout=10_000)
    trainer.stop()
    wait_end(qtbot, trainer)
    assert window.doc.project.training.optimizer.lr == 0.0005  # and the next run uses it
    record = window.doc.project.runs[-1]
    assert [c["lr"] for c in record["lr_changes"]] == [0.0005]  # the run's label in the next run says so
    change = record["lr_changes"][0]["step"]
    trainer.start()  # the stopped run is now an earlier run: its label names the change
    label = next(o.label for o in trainer.plots.overlays if o.key == record["dir"])
    assert f"lr 0.0005 at step {change}" in label
    trainer.stop()
    wait_end(qtbot, trainer)


def test_a_failed_run_shows_what_to_do_and_keeps_model_and_project(qtbot, window, trainer):
    doc = window.doc
    doc.project.training = replace(doc.project.training, optimizer=replace(doc.project.training.optimizer, type="SGD",
                                                                           lr=1e6, momentum=0.9))
    spec_before, training_before = doc.spec.to_json(), doc.project.training
    trainer.start()
    end = wait_end(qtbot, trainer)
    assert isinstance(end, ev.FailedEvent)
    banner = trainer.panel.banner
    assert banner.isVisible()
    assert "Training failed" in text_of(banner) and "lower it" in text_of(banner)
    assert "The model and the project are as they were" in text_of(banner)
    assert doc.spec.to_json() == spec_before and doc.project.training == training_before
    assert doc.project.runs[-1]["status"] == "failed"
    assert not doc.edit_lock and trainer.panel.start_button.isEnabled()
    # a good run afterwards clears the banner
    doc.project.set_setting("training.optimizer.lr", 0.003)
    trainer.start()
    assert not banner.isVisible()
    wait_end(qtbot, trainer)


def test_a_run_that_cannot_start_says_why(qtbot, window, trainer, tmp_path):
    trainer.start(resume_from=str(tmp_path / "nowhere.ckpt"))
    end = wait_end(qtbot, trainer)
    assert isinstance(end, ev.FailedEvent) and end.phase == "setup"
    assert "does not exist" in text_of(trainer.panel.banner)
    assert not window.doc.edit_lock


def test_a_model_that_does_not_fit_the_data_is_flagged_before_start(qtbot, window, trainer):
    window.doc.set_input((1, 28, 28))
    trainer.panel.probe.wait()
    assert "does not fit this data" in text_of(trainer.panel.task_label)
    assert "(1, 8, 8)" in text_of(trainer.panel.task_label)
    assert not trainer.panel.start_button.isEnabled()
    assert not window.training_menu.action("start").isEnabled()
    assert trainer.start() is False and trainer.run is None


def test_resume_from_checkpoint_continues_the_stopped_run(qtbot, window, trainer, monkeypatch):
    window.doc.project.training = replace(window.doc.project.training, epochs=3)
    trainer.start()
    qtbot.waitUntil(lambda: steps_seen(trainer) >= 3, timeout=30_000)
    trainer.stop()
    stopped = wait_end(qtbot, trainer)
    asked = []
    monkeypatch.setattr(training_dock, "choose_checkpoint", lambda parent, folder: asked.append(folder) or folder)
    trainer.resume_from()
    assert asked == [stopped.checkpoint]  # offered the stopped run's checkpoint
    end = wait_end(qtbot, trainer)
    assert isinstance(end, ev.FinishedEvent) and end.run_dir == stopped.run_dir
    assert trainer.series.step.view()[0] == stopped.step + 1  # it went on from there
    trainer.start()  # both runs are earlier runs now: one folder, named by both, with all its steps
    mine = [o for o in trainer.plots.overlays if o.key == str(stopped.run_dir)]
    assert len(mine) == 1 and mine[0].label.startswith("runs 1+2 (finished")
    qtbot.waitUntil(lambda: mine[0].series is not None, timeout=10_000)
    steps = mine[0].series.step.view()
    assert steps[0] <= stopped.step < steps[-1]  # read again since the resume: not the stopped part alone
    trainer.stop()
    wait_end(qtbot, trainer)


# ---------------------------------------------------------------- closing and export

def test_close_while_training_asks_then_stops_the_thread_cleanly(qtbot, window, trainer, monkeypatch):
    window.doc.project.training = replace(window.doc.project.training, epochs=500)
    trainer.start()
    qtbot.waitUntil(lambda: steps_seen(trainer) >= 2, timeout=30_000)
    answers = [False, True]
    monkeypatch.setattr(training_dock, "ask_stop", lambda parent: answers.pop(0))
    assert not window.close()  # "keep training": the window stays, the run goes on
    assert trainer.is_running()
    thread = trainer.run._thread
    assert window.close()
    assert not thread.isRunning() and trainer.run is None
    assert window.doc.project.runs[-1]["status"] == "stopped"


def test_new_project_while_training_asks_first(qtbot, window, trainer, monkeypatch):
    window.doc.project.training = replace(window.doc.project.training, epochs=500)
    trainer.start()
    qtbot.waitUntil(lambda: steps_seen(trainer) >= 1, timeout=30_000)
    monkeypatch.setattr(training_dock, "ask_stop", lambda parent: False)
    window.new_project()
    assert trainer.is_running() and window.doc.project.path is not None
    trainer.stop()
    wait_end(qtbot, trainer)


def test_export_gets_the_trained_model_and_loaded_weights(qtbot, window, trainer):
    doc = window.doc
    doc.project.training = replace(doc.project.training, epochs=500)
    trainer.start()
    qtbot.waitUntil(lambda: steps_seen(trainer) >= 2, timeout=30_000)
    with pytest.raises(WorkbenchError, match="pause it"):
        window.trained_model()
    trainer.pause()
    qtbot.waitUntil(lambda: trainer.panel.state == "paused", timeout=10_000)
    paused = window.trained_model()
    assert torch.equal(paused.fc.weight, trainer.run.engine.model.fc.weight)
    assert paused is not trainer.run.engine.model  # a copy: the run goes on with its own
    trainer.stop()
    wait_end(qtbot, trainer)
    trained = window.trained_model()
    assert trained is trainer.live_model and trained is not None
    other = templates.load("digits_cnn")
    from workbench.model import build
    loaded = build.build_model(other.model)
    window.receive_weights(loaded, "/tmp/w.pth")
    assert window.trained_model() is loaded
    doc.set_arg("fc", "bias", False)  # a different model: trained weights no longer fit
    assert window.trained_model() is None


def test_freezing_a_backbone_stage_mid_run_also_freezes_its_batchnorm_statistics(qtbot, window, tmp_path):
    from workbench.project import project_file as projects

    proj = templates.load("resnet18_transfer")
    proj.model.input_shape = [3, 32, 32]
    proj.data = replace(proj.data, fake_shape=[3, 32, 32], fake_size=64, batch_size=8)
    proj.training = replace(proj.training, epochs=500, log_every=1, tensorboard=False)
    projects.save(proj, tmp_path / "resnet.wbproj")
    assert window.open_file(str(tmp_path / "resnet.wbproj"))
    dock = window.training
    dock.panel.probe.wait()
    assert dock.start()
    qtbot.waitUntil(lambda: steps_seen(dock) >= 2, timeout=60_000)
    dock.pause()
    qtbot.waitUntil(lambda: dock.panel.state == "paused", timeout=20_000)
    window.doc.set_stage_frozen("backbone", "layer3", True)
    qtbot.waitUntil(lambda: bool(dock.series.marks) and dock.series.marks[-1].text == "freeze backbone.layer3",
                    timeout=10_000)
    layer3 = dock.run.engine.model.backbone.layer3
    bn = layer3[0].bn1
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    weight = layer3[0].conv1.weight.detach().clone()
    held = steps_seen(dock)
    dock.resume()
    qtbot.waitUntil(lambda: steps_seen(dock) >= held + 3, timeout=60_000)
    assert not bn.training  # a frozen stage's BatchNorm no longer updates its statistics
    assert torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert torch.equal(layer3[0].conv1.weight, weight)
    assert dock.run.engine.model.backbone.layer4[0].bn1.training  # the unfrozen stages still learn
    dock.stop()
    wait_end(qtbot, dock)
    assert window.doc.project.runs[-1]["freezes"][-1]["path"] == "backbone.layer3"


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_table_data_trains_and_shows_what_fits_it(qtbot, window, tmp_path, task):
    from workbench.project import project_file as projects

    proj = templates.load("tabular_mlp")
    proj.training = replace(proj.training, epochs=2, tensorboard=False, loss="auto")
    if task == "regression":
        proj.data = replace(proj.data, task="regression")
        proj.model.layers[-1].args["out_features"] = 1
    projects.save(proj, tmp_path / "wine.wbproj")
    assert window.open_file(str(tmp_path / "wine.wbproj"))
    dock = window.training
    dock.panel.probe.wait()
    shown = text_of(dock.panel.task_label)
    assert ("3 classes" in shown) if task == "classification" else ("regression (one number)" in shown)
    assert "the model fits this data" in shown
    dock.start()
    assert isinstance(wait_end(qtbot, dock), ev.FinishedEvent)
    dock.tabs.setCurrentWidget(dock.evaluation)
    tiles = dock.evaluation.samples.tiles
    if task == "classification":
        assert dock.plots.acc_plot.titleLabel.text == "Validation accuracy"
        assert tiles and all(t.findChild(type(dock.panel.status), "muted") for t in tiles)  # values, not images
        assert text_of(tiles[0].findChild(type(dock.panel.status), "muted")).startswith("[")
    else:
        assert dock.plots.acc_plot.titleLabel.text == "Accuracy: classification only"
        assert not tiles and "no confusion matrix" in text_of(dock.evaluation.title)
        assert dock.series.val_loss.n == 2 and np.isfinite(dock.series.val_loss.view()).all()


def test_settings_form_edits_replace_the_settings_and_undo_redo(qtbot, window):
    doc = window.doc
    form = window.training.panel.form
    before = doc.project.training
    changes = []
    form.changed.connect(lambda section, name: changes.append((section, name)))
    form.fields[("optimizer", "lr")].widget.setValue(0.02)
    form.fields[("data", "batch_size")].widget.setValue(16)
    assert doc.project.training.optimizer.lr == 0.02 and doc.project.data.batch_size == 16
    assert before.optimizer.lr != 0.02  # a new settings object: one held by a run keeps its values
    assert changes == [("optimizer", "lr"), ("data", "batch_size")]
    doc.undo_stack.undo()
    assert doc.project.data.batch_size == 64 and form.fields[("data", "batch_size")].widget.value() == 64
    doc.undo_stack.undo()
    assert doc.project.training == before
    doc.undo_stack.redo()
    assert doc.project.training.optimizer.lr == 0.02
    assert doc.project.to_json()["training"]["optimizer"]["lr"] == 0.02


def test_the_open_window_keeps_its_start_up_objects_out_of_full_collections(qtbot, isolated_settings):
    """A full collection holds the GIL while it walks every object: with the window's start-up
    objects frozen it walks only what came after, and closing the window hands them back, so a
    cycle that was alive at start-up and dropped later is still collected."""
    import gc
    import weakref

    from ui.main_window import MainWindow

    gc.unfreeze()  # a window some other test left open

    class Node:
        pass

    cycle = Node()
    cycle.me = cycle
    dropped = weakref.ref(cycle)
    window = MainWindow(project=templates.load("digits_cnn"))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: gc.get_freeze_count() > 0)
    assert gc.get_freeze_count() > 100_000  # the modules, the widgets, the project
    assert len(gc.get_objects()) < gc.get_freeze_count() / 10  # what a full collection now walks
    del cycle
    gc.collect()
    assert dropped() is not None  # frozen: out of the collector's reach while the window is open
    window.doc.undo_stack.setClean()
    window.close()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert dropped() is None
