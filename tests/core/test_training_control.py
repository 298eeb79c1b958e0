"""Controlling a running engine from another thread, as the window does."""
from __future__ import annotations

from dataclasses import replace

import threading
import time

import pytest
import torch

from workbench.training import checkpoint, events as ev
from workbench.project import templates
from workbench.errors import WorkbenchError
from workbench.training.engine import Engine


class Recorder:
    def __init__(self):
        self.events, self.lock = [], threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.events.append(event)

    def of(self, cls):
        with self.lock:
            return [e for e in self.events if isinstance(e, cls)]


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the engine")
        time.sleep(0.01)


def start(tmp_path, epochs=500, **training):
    proj = templates.load("digits_cnn")
    proj.training = replace(proj.training, epochs=epochs, log_every=1, tensorboard=False, **training)
    rec = Recorder()
    engine = Engine(proj, run_dir=tmp_path / "run", handlers=[rec])
    result = []
    thread = threading.Thread(target=lambda: result.append(engine.run()), daemon=True)
    thread.start()
    return engine, rec, thread, result


def test_pause_freeze_lr_resume_and_stop_from_another_thread(tmp_path):
    engine, rec, thread, result = start(tmp_path)
    try:
        wait_for(lambda: len(rec.of(ev.StepEvent)) >= 3)
        engine.controls.pause()
        wait_for(lambda: rec.of(ev.PausedEvent))
        n = len(rec.of(ev.StepEvent))
        time.sleep(0.3)
        assert len(rec.of(ev.StepEvent)) == n  # nothing trains while paused
        m = engine.model
        conv1, bn_mean, fc = m.conv1.weight.clone(), m.bn1.running_mean.clone(), m.fc.weight.clone()
        trainable_before = sum(p.numel() for p in m.parameters() if p.requires_grad)
        engine.controls.set_frozen("conv1", True)
        engine.controls.set_frozen("bn1", True)
        engine.controls.set_lr(1e-4)
        wait_for(lambda: len(rec.of(ev.FreezeEvent)) == 2 and rec.of(ev.LrEvent))  # applied while paused
        assert rec.of(ev.FreezeEvent)[-1].trainable == trainable_before - m.conv1.weight.numel() - \
            m.conv1.bias.numel() - 2 * m.bn1.weight.numel()
        engine.controls.resume()
        wait_for(lambda: len(rec.of(ev.StepEvent)) >= n + 10)
        engine.controls.pause()
        wait_for(lambda: len(rec.of(ev.PausedEvent)) == 2)
        assert torch.equal(m.conv1.weight, conv1)  # frozen: the optimiser left it alone
        assert torch.equal(m.bn1.running_mean, bn_mean) and not m.bn1.training  # frozen BatchNorm stays in eval
        assert not torch.equal(m.fc.weight, fc)
        after = [s for s in rec.of(ev.StepEvent) if s.step > n]
        assert after and all(s.lr == pytest.approx(1e-4) for s in after)

        engine.controls.set_frozen("conv1", False)
        engine.controls.resume()
        wait_for(lambda: len(rec.of(ev.StepEvent)) >= n + 15)
        t0 = time.monotonic()
        engine.controls.stop()
        thread.join(10)
        assert not thread.is_alive() and time.monotonic() - t0 < 5
    finally:
        engine.controls.stop()
        thread.join(10)
    end = result[0]
    assert isinstance(end, ev.StoppedEvent) and isinstance(rec.events[-1], ev.StoppedEvent)
    assert not torch.equal(m.conv1.weight, conv1)  # unfrozen again: it learns
    state = checkpoint.load(end.checkpoint)
    assert state["trainable"]["conv1.weight"] and not state["trainable"]["bn1.weight"]
    assert state["position"]["step"] == end.step


def test_stop_while_paused_and_stop_before_the_first_step(tmp_path):
    engine, rec, thread, result = start(tmp_path)
    wait_for(lambda: rec.of(ev.StepEvent))
    engine.controls.pause()
    wait_for(lambda: rec.of(ev.PausedEvent))
    engine.controls.stop()
    thread.join(10)
    assert isinstance(result[0], ev.StoppedEvent) and not rec.of(ev.ResumedEvent)

    proj = templates.load("digits_mlp")
    proj.training = replace(proj.training, tensorboard=False)
    early = Engine(proj, run_dir=tmp_path / "early")
    early.controls.stop()  # before run: stops after the first step with a checkpoint
    end = early.run()
    assert isinstance(end, ev.StoppedEvent) and end.step == 1 and (tmp_path / "early" / "last.ckpt").exists()


def test_bad_requests_are_refused_in_the_caller_thread():
    engine = Engine(templates.load("resnet18_transfer"))
    with pytest.raises(WorkbenchError, match="no layer or stage 'nope'"):
        engine.controls.set_frozen("nope", True)
    engine.controls.set_frozen("backbone.layer3", True)  # backbone stages are valid paths
    with pytest.raises(WorkbenchError, match="positive"):
        engine.controls.set_lr(-1.0)
