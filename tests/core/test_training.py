"""The engine end to end: events, files, exact resume, failures that lose nothing."""
from __future__ import annotations

from dataclasses import replace

import json
import math

import pytest
import torch

from workbench.training import checkpoint, events as ev, runlog
from workbench.project import project_file as project, templates
from workbench.training.engine import Engine

from run_events import Recorder


def digits(name="digits_mlp", epochs=2, **training):
    proj = templates.load(name)
    proj.training = replace(proj.training, **{"epochs": epochs, "tensorboard": False, **training})
    return proj


def run(proj, tmp_path, name="run", **kw):
    rec = Recorder()
    end = Engine(proj, run_dir=tmp_path / name, handlers=[rec], **kw).run()
    return end, rec


def state_of(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_trains_the_digits_template_and_writes_its_run(tmp_path):
    proj = digits("digits_mlp", epochs=3, tensorboard=True)
    proj.set_setting("training.optimizer.lr", 0.01)
    end, rec = run(proj, tmp_path)
    assert isinstance(end, ev.FinishedEvent), end
    assert isinstance(rec[0], ev.StartedEvent) and rec[-1] is end
    steps = rec.of(ev.StepEvent)
    assert [s.step for s in steps] == list(range(1, 3 * 23 + 1))
    assert all(s.samples_per_s > 0 and s.lr == 0.01 for s in steps)
    epochs = rec.of(ev.EpochEvent)
    assert [e.epoch for e in epochs] == [1, 2, 3] and epochs[-1].val_acc > 0.9
    assert epochs[0].train_loss > epochs[-1].train_loss
    last = epochs[-1]
    assert len(last.confusion) == 10 and sum(map(sum, last.confusion)) == 359
    assert abs(sum(last.confusion[i][i] for i in range(10)) / 359 - last.val_acc) < 1e-9
    assert all(m.true != m.predicted and 0 < m.confidence <= 1 for m in last.mistakes)
    confs = [m.confidence for m in last.mistakes]
    assert confs == sorted(confs, reverse=True)
    assert rec.of(ev.MemoryEvent)[0].reading["process_rss"] > 0
    assert end.best_val_acc == max(e.val_acc for e in epochs)
    folder = tmp_path / "run"
    lines = runlog.read_metrics(folder)
    assert [d["event"] for d in lines].count("step") == 69 and lines[-1]["event"] == "finished"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(folder / "tensorboard"))
    tb.Reload()  # TensorBoard itself reads the run
    assert [s.step for s in tb.Scalars("epoch/val_acc")] == [1, 2, 3]
    assert tb.Scalars("epoch/val_acc")[-1].value == pytest.approx(epochs[-1].val_acc)
    assert tb.Scalars("train/loss")[-1].step == 69
    state = torch.load(folder / "last.ckpt", weights_only=True)
    assert state["position"]["epoch"] == 3 and state["position"]["step"] == 69
    assert torch.load(folder / "best.ckpt", weights_only=True)["best"]["epoch"] == end.best_epoch
    assert proj.runs[-1]["status"] == "finished" and proj.runs[-1]["dir"] == str(folder)
    assert not torch.cuda.is_initialized()  # memory readings on a CPU run never start CUDA


def test_a_checkpoint_that_cannot_be_written_ends_in_a_clear_failure(tmp_path, monkeypatch):
    from workbench import fileio
    from workbench.errors import WorkbenchError

    def disk_full(path, writer, suffix=""):
        raise WorkbenchError(f"cannot write {path}: the disk is full; free some space or choose another folder")
    monkeypatch.setattr(fileio, "write_with", disk_full)
    end, rec = run(digits(epochs=2), tmp_path)
    assert isinstance(end, ev.FailedEvent) and "the disk is full" in end.message and "last.ckpt" in end.message
    assert rec[-1] is end


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    proj = digits("digits_cnn", epochs=2, log_every=4)  # BatchNorm and Dropout: RNG state matters
    full_end, full = run(proj, tmp_path, "full")
    assert isinstance(full_end, ev.FinishedEvent)

    engine = Engine(proj, run_dir=tmp_path / "part")
    first = Recorder()

    def stop_mid_epoch_two(e):
        first(e)
        if isinstance(e, ev.StepEvent) and e.step == 26:
            engine.controls.stop()
    engine.add_handler(stop_mid_epoch_two)
    stopped = engine.run()
    assert isinstance(stopped, ev.StoppedEvent) and stopped.epoch == 2
    assert stopped.step == 27  # the first step boundary after the request (losses are read 4 at a time)
    resumed = Engine(proj, resume_from=stopped.checkpoint, handlers=[second := Recorder()])
    end = resumed.run()
    assert isinstance(end, ev.FinishedEvent) and resumed.run_dir == tmp_path / "part"
    losses = [s.loss for s in first.of(ev.StepEvent) + second.of(ev.StepEvent)]
    assert losses == [s.loss for s in full.of(ev.StepEvent)]
    assert [(e.train_loss, e.val_loss, e.val_acc) for e in first.of(ev.EpochEvent) + second.of(ev.EpochEvent)] == \
        [(e.train_loss, e.val_loss, e.val_acc) for e in full.of(ev.EpochEvent)]
    a = torch.load(tmp_path / "full" / "last.ckpt", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "last.ckpt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_fails_naming_the_step_and_restores_good_weights(tmp_path):
    proj = digits(epochs=1, log_every=4)
    engine = Engine(proj, run_dir=tmp_path / "r", handlers=[rec := Recorder()])
    engine.setup()
    good = {}
    real_loss, calls = engine.runner.loss_fn, [0]

    def poisoned(out, y):
        calls[0] += 1
        loss = real_loss(out, y)
        return loss * float("nan") if calls[0] == 7 else loss
    engine.runner.loss_fn = poisoned
    engine.add_handler(lambda e: isinstance(e, ev.StepEvent) and e.step == 4 and good.update(state_of(engine.model)))
    end = engine.run()
    assert isinstance(end, ev.FailedEvent) and end.step == 7 and end.phase == "training"
    assert "step 7" in end.message and "learning rate" in end.message and "weights after step 4" in end.message
    now = state_of(engine.model)
    assert all(torch.equal(now[k], good[k]) for k in good)
    assert [s.step for s in rec.of(ev.StepEvent)] == [1, 2, 3, 4, 5, 6]


def test_a_learning_rate_far_too_high_ends_in_a_clear_failure(tmp_path):
    proj = digits(epochs=3, log_every=1)
    proj.training = replace(proj.training, optimizer=replace(proj.training.optimizer, type="SGD", lr=1e6, momentum=0.9))
    engine = Engine(proj, run_dir=tmp_path / "r")
    end = engine.run()
    assert isinstance(end, ev.FailedEvent), end
    assert "lower it (try 100000)" in end.message
    assert all(torch.isfinite(t).all() for t in engine.model.state_dict().values())


@pytest.mark.parametrize("where", ["forward", "optimizer step"])
def test_out_of_memory_names_the_batch_size_and_keeps_the_weights(tmp_path, where):
    proj = digits(epochs=1, log_every=1)
    engine = Engine(proj, run_dir=tmp_path / "r", handlers=[rec := Recorder()])
    engine.setup()
    good = {}

    def oom_on_step_5(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    if where == "forward":
        real = engine.model.forward
        engine.model.forward = lambda x: oom_on_step_5() if len(rec.of(ev.StepEvent)) == 4 else real(x)
    else:
        real_step = engine.optimizer.step

        def half_update_then_oom(*a, **k):
            if len(rec.of(ev.StepEvent)) == 4:
                with torch.no_grad():
                    for p in engine.model.parameters():
                        p.add_(1.0)  # a part of the update happened
                oom_on_step_5()
            return real_step(*a, **k)
        engine.optimizer.step = half_update_then_oom
    engine.add_handler(lambda e: isinstance(e, ev.StepEvent) and e.step == 4 and good.update(state_of(engine.model)))
    end = engine.run()
    assert isinstance(end, ev.FailedEvent), end
    assert "out of memory" in end.message and "batch size 64" in end.message and "try 32" in end.message
    now = state_of(engine.model)
    assert all(torch.equal(now[k], good[k]) for k in good)


def test_unreadable_data_is_a_failed_event_not_an_exception(tmp_path):
    proj = digits()
    proj.data = replace(proj.data, source="csv", path=str(tmp_path / "missing.csv"))
    end, rec = run(proj, tmp_path)
    assert isinstance(end, ev.FailedEvent) and end.phase == "setup" and "does not exist" in end.message
    assert not (tmp_path / "run").exists() and proj.runs == []

    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(4):
            Image.new("L", (8, 8), color=40 * i).save(tmp_path / "img" / c / f"{i}.png")
    (tmp_path / "img" / "b" / "3.png").write_bytes(b"\x89PNG broken")
    proj.data = replace(proj.data, source="image_folder", path=str(tmp_path / "img"), grayscale=True, val_fraction=0.0)
    proj.model.find("fc2").args["out_features"] = 2
    end, rec = run(proj, tmp_path, "img_run")
    # found by the data scan before the run (issue 12 item 10), no longer at the batch that reads it
    assert isinstance(end, ev.FailedEvent) and end.phase == "setup"
    assert "3.png" in end.message and "remove or replace" in end.message
    assert not (tmp_path / "img_run").exists()


def test_a_model_that_does_not_fit_the_data_is_refused_before_training(tmp_path):
    proj = digits()
    proj.data = replace(proj.data, source="iris")
    end, rec = run(proj, tmp_path)
    assert isinstance(end, ev.FailedEvent) and end.phase == "setup"
    assert "'flat'" in end.message and "[4]" in end.message
    assert not rec.of(ev.StepEvent) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("opt", [
    {"type": "SGD", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
    {"type": "Adam", "lr": 0.01}, {"type": "AdamW", "lr": 0.01, "weight_decay": 0.01},
    {"type": "RMSprop", "lr": 0.005, "momentum": 0.5}])
def test_each_optimizer_learns_iris(tmp_path, opt):
    proj = digits("tabular_mlp", epochs=8, grad_clip=1.0)
    proj.data = replace(proj.data, source="iris")
    proj.model.input_shape = (4,)
    proj.training = replace(proj.training, optimizer=replace(proj.training.optimizer, **opt))
    end, rec = run(proj, tmp_path)
    epochs = rec.of(ev.EpochEvent)
    assert isinstance(end, ev.FinishedEvent) and epochs[-1].train_loss < epochs[0].train_loss
    assert end.best_val_acc >= 0.8


@pytest.mark.parametrize("schedule,check", [
    ({"type": "step", "step_size": 2, "gamma": 0.5}, lambda lrs: lrs == [0.01, 0.01, 0.005, 0.005]),
    ({"type": "cosine"}, lambda lrs: lrs[0] == 0.01 and all(a > b for a, b in zip(lrs, lrs[1:]))),
    ({"type": "onecycle", "max_lr": 0.05}, lambda lrs: lrs[0] < 0.01 and max(lrs) > 0.04 and lrs[-1] < max(lrs))])
def test_schedules_move_the_learning_rate(tmp_path, schedule, check):
    proj = digits("tabular_mlp", epochs=4)
    proj.set_setting("training.optimizer.lr", 0.01)
    proj.training = replace(proj.training, schedule=replace(proj.training.schedule, **schedule))
    end, rec = run(proj, tmp_path)
    assert isinstance(end, ev.FinishedEvent)
    steps = rec.of(ev.StepEvent)
    per_epoch = [next(s.lr for s in steps if s.epoch == e) for e in range(1, 5)]
    assert check(per_epoch), per_epoch
    state = checkpoint.load(tmp_path / "run" / "last.ckpt")  # the schedule state loads weights-only
    assert state["scheduler"] is not None


def test_default_run_folder_and_run_record_beside_the_project(tmp_path):
    proj = digits(epochs=1)
    path = tmp_path / "my.wbproj"
    project.save(proj, path)
    proj = project.load(path)
    proj.training = replace(proj.training, tensorboard=False)
    engine = Engine(proj)
    end = engine.run()
    assert isinstance(end, ev.FinishedEvent)
    assert "already run" in engine.run().message  # an engine runs once
    assert (tmp_path / "my.runs").is_dir() and str(tmp_path / "my.runs") in end.run_dir
    assert proj.runs[-1]["status"] == "finished" and proj.runs[-1]["steps"] == 23
    json.dumps(proj.runs)  # plain data, ready for the project file
    again = Engine(proj, run_dir=end.run_dir).run()
    assert isinstance(again, ev.FailedEvent) and "already holds a run" in again.message


def test_a_broken_listener_does_not_break_the_run(tmp_path, caplog):
    def listener(e):
        raise ValueError("listener bug")
    end = Engine(digits(epochs=1), run_dir=tmp_path / "r", handlers=[listener]).run()
    assert isinstance(end, ev.FinishedEvent)
    assert "listener" in caplog.text


def test_checkpoint_from_another_model_is_refused(tmp_path):
    end, _ = run(digits(epochs=1), tmp_path)
    other = digits("digits_cnn", epochs=2)
    bad = Engine(other, run_dir=tmp_path / "other", resume_from=tmp_path / "run" / "last.ckpt").run()
    assert isinstance(bad, ev.FailedEvent) and "different model" in bad.message
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    bad = Engine(other, run_dir=tmp_path / "junk", resume_from=tmp_path / "junk.ckpt").run()
    assert isinstance(bad, ev.FailedEvent) and "cannot read checkpoint" in bad.message
    assert math.isfinite(end.seconds)
