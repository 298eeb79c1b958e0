"""The engine's parts: the resumable state object, the handler mechanism, the controls object."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.project import templates
from workbench.training import checkpoint, controls, events as ev
from workbench.training.engine import Engine
from workbench.training.memory import MemoryMonitor
from workbench.training.runlog import MetricsLog
from workbench.training.state import Best, Position

# what a checkpoint file holds (besides "format" and "version"): files written by earlier
# versions must keep loading, so these keys are the file format
CHECKPOINT_KEYS = {"model", "optimizer", "scheduler", "scaler", "rng", "position", "best", "trainable", "epochs",
                   "batch_size", "world_size", "spec", "task"}


def digits(epochs=2, **training):
    proj = templates.load("digits_mlp")
    proj.training = replace(proj.training, epochs=epochs, tensorboard=False, **training)
    return proj


def same(a, b) -> bool:
    """Deep equality of state dicts: tensors exactly, containers element by element."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


# ---------------------------------------------------------------- the state object

def test_state_dict_round_trip_restores_the_same_state_and_the_checkpoint_is_that_dict(tmp_path):
    proj = digits(epochs=2, log_every=1)
    proj.training = replace(proj.training, schedule=replace(proj.training.schedule, type="step", step_size=1,
                                                             gamma=0.5))
    part = Engine(proj, run_dir=tmp_path / "part")
    part.add_handler(lambda e: isinstance(e, ev.StepEvent) and e.step == 30 and part.controls.stop())
    stopped = part.run()
    assert isinstance(stopped, ev.StoppedEvent) and stopped.step == 30
    saved = part.state.state_dict()
    assert saved.keys() == CHECKPOINT_KEYS
    assert saved["position"] == {"epoch": 1, "batch": 7, "step": 30, "loss_sum": saved["position"]["loss_sum"],
                                 "loss_count": 7 * 64}
    on_disk = checkpoint.load(stopped.checkpoint)
    assert on_disk.keys() == CHECKPOINT_KEYS | {"format", "version"}
    assert all(same(on_disk[k], saved[k]) for k in CHECKPOINT_KEYS)  # the file is the state's dict

    fresh = Engine(proj, run_dir=tmp_path / "fresh")
    fresh.setup()
    assert fresh.state.position == Position() and fresh.state.best == Best()
    assert not same(fresh.state.state_dict()["model"], saved["model"])
    notes = fresh.state.load_state_dict(saved, source="memory")
    assert notes == ["resumed from memory at epoch 2, step 30"]
    again = fresh.state.state_dict()
    assert all(same(again[k], saved[k]) for k in CHECKPOINT_KEYS - {"rng"}), \
        [k for k in CHECKPOINT_KEYS if not same(again[k], saved[k])]
    assert fresh.state.position == Position(**saved["position"]) and fresh.state.best == Best(**saved["best"])


def test_resuming_through_the_state_object_equals_an_uninterrupted_run(tmp_path):
    proj = digits(epochs=2, log_every=3)
    full = []
    assert isinstance(Engine(proj, run_dir=tmp_path / "full", handlers=[full.append]).run(), ev.FinishedEvent)
    first, second = [], []
    part = Engine(proj, run_dir=tmp_path / "part", handlers=[first.append])
    part.add_handler(lambda e: isinstance(e, ev.StepEvent) and e.step == 10 and part.controls.stop())
    stopped = part.run()
    resumed = Engine(proj, resume_from=stopped.checkpoint, handlers=[second.append])
    assert isinstance(resumed.run(), ev.FinishedEvent)

    def losses(events):
        return [e.loss for e in events if isinstance(e, ev.StepEvent)]
    assert losses(first) + losses(second) == losses(full)
    assert same(resumed.state.state_dict()["model"], checkpoint.load(tmp_path / "full")["model"])


def test_a_state_from_another_model_is_refused_with_the_source_named(tmp_path):
    end = Engine(digits(epochs=1), run_dir=tmp_path / "a").run()
    saved = checkpoint.load(end.run_dir)
    other = Engine(templates.load("digits_cnn"), run_dir=tmp_path / "b")
    other.setup()
    with pytest.raises(WorkbenchError, match="checkpoint here was made for a different model"):
        other.state.load_state_dict(saved, source="here")


# ---------------------------------------------------------------- handlers

class Hooks(ev.Handler):
    """Records every hook call."""

    def __init__(self):
        self.calls = []

    def on_run_start(self, engine, notes):
        self.calls.append(("start", engine.run_dir))
        notes.append("a note from a handler")

    def on_event(self, engine, event):
        self.calls.append(("event", event.kind))

    def on_steps(self, engine, steps):
        self.calls.append(("steps", [s.step for s in steps]))

    def on_checkpoint(self, engine):
        self.calls.append(("checkpoint", (engine.run_dir / checkpoint.LAST).name))

    def on_run_end(self, engine):
        self.calls.append(("end", None))


def test_handlers_get_every_hook_in_order(tmp_path):
    hooks, plain = Hooks(), []
    engine = Engine(digits(epochs=2, log_every=10), run_dir=tmp_path / "r", handlers=[hooks, plain.append])
    assert [type(h) for h in engine.handlers[:2]] == [MetricsLog, MemoryMonitor]  # built in, first
    assert isinstance(engine.handlers[-1], ev.Listener) and engine.handlers[-2] is hooks
    end = engine.run()
    assert isinstance(end, ev.FinishedEvent)
    calls = hooks.calls
    assert calls[0] == ("start", tmp_path / "r") and calls[1] == ("event", "started") and calls[-1] == ("end", None)
    steps = [c[1] for c in calls if c[0] == "steps"]
    assert steps[:3] == [list(range(1, 11)), list(range(11, 21)), [21, 22, 23]]  # one call per read-out
    assert sum(steps, []) == list(range(1, 47))
    assert not [c for c in calls if c == ("event", "step")]  # steps come through on_steps only
    assert [c[0] for c in calls if c[0] in ("checkpoint", "end") or c[1] == "epoch"] == \
        ["event", "checkpoint", "event", "checkpoint", "end"]  # each epoch's checkpoint after its event
    started = plain[0]
    assert isinstance(started, ev.StartedEvent) and started.notes[-1] == "a note from a handler"
    assert [e.step for e in plain if isinstance(e, ev.StepEvent)] == list(range(1, 47))  # a function gets each step
    assert plain[-1] is end


def test_an_event_emitted_by_a_handler_reaches_everyone_after_the_current_one(tmp_path):
    class Echo(ev.Handler):
        def on_event(self, engine, event):
            if isinstance(event, ev.EpochEvent):
                engine.emit(ev.LrEvent(event.step, 0.5))
    seen = []
    engine = Engine(digits(epochs=1), run_dir=tmp_path / "r", handlers=[Echo(), seen.append])
    engine.run()
    kinds = [e.kind for e in seen if e.kind != "memory"]
    assert kinds[kinds.index("epoch"):] == ["epoch", "lr", "finished"]
    assert kinds[:2] == ["started", "step"]  # the memory reading polled at the start comes after 'started'
    assert seen[0].kind == "started" and seen[1].kind == "memory"


def test_a_handler_that_cannot_write_its_files_ends_the_run_at_the_checkpoint(tmp_path):
    class FullDisk(ev.Handler):
        def on_checkpoint(self, engine):
            raise WorkbenchError("cannot write to the moon")
    ended = []

    class End(ev.Handler):
        def on_run_end(self, engine):
            ended.append(engine.step)
    end = Engine(digits(epochs=2), run_dir=tmp_path / "r", handlers=[FullDisk(), End()]).run()
    assert isinstance(end, ev.FailedEvent) and end.message == "cannot write to the moon" and end.step == 23
    assert ended == [23]


def test_broken_handlers_are_logged_and_the_run_goes_on(tmp_path, caplog):
    class Broken(ev.Handler):
        def on_steps(self, engine, steps):
            raise RuntimeError("bug in on_steps")

        def on_run_end(self, engine):
            raise RuntimeError("bug in on_run_end")
    end = Engine(digits(epochs=1), run_dir=tmp_path / "r", handlers=[Broken()]).run()
    assert isinstance(end, ev.FinishedEvent)
    assert "bug in on_steps" in caplog.text and "bug in on_run_end" in caplog.text
    with pytest.raises(TypeError, match="Handler or a function"):
        Engine(digits()).add_handler("not a handler")


def test_run_end_comes_once_even_when_set_up_fails(tmp_path):
    hooks = Hooks()
    proj = digits()
    proj.data = replace(proj.data, source="iris")  # the MLP takes 64 inputs: refused at set-up
    end = Engine(proj, run_dir=tmp_path / "r", handlers=[hooks]).run()
    assert isinstance(end, ev.FailedEvent) and end.phase == "setup"
    assert hooks.calls == [("event", "failed"), ("end", None)]


# ---------------------------------------------------------------- controls

def test_controls_queue_requests_for_the_engine_thread():
    c = controls.Controls({"fc1", "fc2"})
    assert not c.attention and not c.pausing and not c.stop_requested
    c.set_frozen("fc1", True)
    c.set_lr(0.5)
    assert c.attention
    assert c.take() == [controls.Freeze("fc1", True), controls.SetLr(0.5)]
    assert not c.attention and c.take() == []
    c.pause()
    assert c.attention and c.pausing and not c.wait_resumed(0.01)
    c.resume()
    assert c.wait_resumed(0.01) and not c.pausing
    c.pause()
    c.stop()  # a stop ends a pause
    assert c.stop_requested and not c.pausing and c.wait_resumed(0.01)
    with pytest.raises(WorkbenchError, match="no layer or stage 'fc3'"):
        c.set_frozen("fc3", True)


def test_freezing_keeps_frozen_batchnorm_in_eval_mode():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model.eval()
    controls.freeze(model, "1", True)
    assert model.training and not model[1].training and model[0].training
    assert not any(p.requires_grad for p in model[1].parameters())
    controls.train_mode(model)
    assert not model[1].training
    controls.freeze(model, "1", False)
    assert model[1].training and all(p.requires_grad for p in model[1].parameters())


def test_a_stop_during_validation_ends_the_pass_and_a_resume_validates_that_epoch_again(tmp_path):
    """Stop takes effect between two validation batches too (a long validation pass kept a
    resnet18 run going for seconds after Stop); the epoch's validation is redone on resume."""
    project = digits(epochs=2, log_every=10_000)  # the epoch's steps arrive just before validation
    seen = []

    def stop_before_validation(e):
        seen.append(e)
        if isinstance(e, ev.StepEvent):
            engine.controls.stop()
    engine = Engine(project, run_dir=tmp_path / "r", handlers=[stop_before_validation])
    end = engine.run()
    assert isinstance(end, ev.StoppedEvent)
    assert not [e for e in seen if isinstance(e, ev.EpochEvent)]  # the pass was dropped, not finished
    spe = engine.steps_per_epoch
    assert end.step == spe and engine.state.position.batch == spe and engine.state.position.epoch == 0
    resumed = []
    again = Engine(digits(epochs=2), run_dir=tmp_path / "r", resume_from=end.checkpoint, handlers=[resumed.append])
    assert isinstance(again.run(), ev.FinishedEvent)
    epochs = [e for e in resumed if isinstance(e, ev.EpochEvent)]
    assert [e.epoch for e in epochs] == [1, 2] and epochs[0].val_acc is not None
    assert [e.step for e in resumed if isinstance(e, ev.StepEvent)][0] == spe + 1


def test_a_checkpoint_of_another_model_is_said_in_one_sentence_with_the_keys_as_detail(tmp_path):
    end = Engine(digits(epochs=1), run_dir=tmp_path / "a").run()
    other = Engine(templates.load("digits_cnn"), run_dir=tmp_path / "b")
    other.setup()
    with pytest.raises(WorkbenchError) as caught:
        other.state.load_state_dict(checkpoint.load(end.run_dir), source="here")
    message = str(caught.value)
    assert "\n" not in message and len(message) < 250
    assert "layers do not match, e.g. " in message and "pick a checkpoint of this project" in message
    assert "conv1.weight" in caught.value.detail and "not in the checkpoint" in caught.value.detail
