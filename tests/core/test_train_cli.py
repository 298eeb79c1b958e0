"""`workbench train`: summary, run folder, project history, bad input, Ctrl-C and resume."""
from __future__ import annotations

from dataclasses import replace

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from workbench.cli import main as cli
from workbench.training import events as ev, runlog
from workbench.project import project_file as project, templates
from workbench.cli.train import ProgressLine

ROOT = Path(__file__).resolve().parents[2]


def save_template(tmp_path, name="digits_mlp", **training):
    proj = templates.load(name)
    proj.training = replace(proj.training, tensorboard=False, **training)
    path = tmp_path / "p.wbproj"
    project.save(proj, path)
    return path


def test_train_a_project_file_end_to_end(tmp_path, capsys):
    path = save_template(tmp_path)
    out = tmp_path / "run"
    assert cli.main(["train", str(path), "--epochs", "2", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith("finished 2 epochs (46 steps)") and "best val acc" in cap.out
    assert "epoch 2/2" in cap.err and "training on cpu" in cap.err
    assert {"metrics.jsonl", "last.ckpt", "best.ckpt"} <= {p.name for p in out.iterdir()}
    saved = json.loads(path.read_text())
    assert saved["runs"][-1]["status"] == "finished" and saved["runs"][-1]["dir"] == str(out)
    project.load(path)  # the history keeps the file valid


@pytest.mark.parametrize("args,words", [
    (["nothere.wbproj"], "no such file"),
    (["digits_mlp", "--epochs", "0"], "(--epochs) must be 1 or more"),
    (["digits_mlp", "--device", "tpu"], "unknown device 'tpu'"),
    (["digits_mlp", "--resume", "nowhere/last.ckpt"], "no checkpoint at nowhere/last.ckpt"),
    (["digits_mlp", "--set", "training.optimizer.rho=0.9"],
     "$.training.optimizer.rho: Adam has no argument 'rho'"),
    (["digits_mlp", "--set", "training.optimizer.type=LBFGS"], "LBFGS needs a closure"),
    (["digits_mlp", "--set", "training.schedule.type=ExponentialLR"], "ExponentialLR needs gamma"),
    (["digits_mlp", "--set", "epochs=3"], "'epochs=3' (--set): give NAME=VALUE with a setting name"),
])
def test_bad_input_is_one_line_and_exit_2(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0]


def test_set_changes_the_optimizer_and_schedule_for_one_run(tmp_path, capsys):
    path = save_template(tmp_path)
    before = path.read_text()
    out = tmp_path / "run"
    assert cli.main(["train", str(path), "--epochs", "2", "--out", str(out), "-q",
                     "--set", 'training.optimizer={"type": "Adadelta", "lr": 1.0}',
                     "--set", 'training.schedule={"type": "StepLR", "step_size": 1, "gamma": 0.7}']) == 0
    epochs = [r for r in runlog.read_metrics(out) if r.get("event") == "epoch"]
    assert [r["lr"] for r in epochs] == pytest.approx([0.7, 0.49])
    assert json.loads(path.read_text())["training"] == json.loads(before)["training"]  # the file keeps its own


def test_model_that_does_not_fit_is_exit_2_naming_the_layer(tmp_path, capsys):
    proj = templates.load("digits_mlp")
    proj.data = replace(proj.data, source="wine")
    project.save(proj, tmp_path / "w.wbproj")
    assert cli.main(["train", str(tmp_path / "w.wbproj"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: layer 'flat'") and "[13]" in err[-1]
    assert not (tmp_path / "r").exists()


def test_progress_line_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    p = ProgressLine(out)
    p(ev.StartedEvent("r", "cpu", 2, 10, 1, 0, 64, 100, 100, {"description": "d"}))
    for step in range(1, 11):
        p(ev.StepEvent(step, 1, 0.5, 0.01, 1000.0))
        p.t_drawn = 0  # draw every step for the test
    p(ev.EpochEvent(1, 10, 0.5, 0.4, 0.9))
    p.close()
    text = out.getvalue()
    assert "\repoch 1/2 [##########..........] step 10/20 loss 0.5000 1,000 samples/s ETA" in text
    assert "epoch 1/2, train loss 0.5000, val loss 0.4000, val acc 0.9000 (0.0 s, 1,000 samples/s, ETA" in text


def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path):
    path = save_template(tmp_path, log_every=1)
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT), WORKBENCH_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(path), "--epochs", "400",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while "epoch 1/400" not in (line := proc.stderr.readline()):
            assert line and time.monotonic() < deadline, "training never started"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "stopping after this step" in stderr
    assert f"--resume {out / 'last.ckpt'}" in stdout
    state = torch.load(out / "last.ckpt", weights_only=True)
    stopped_step, stopped_epoch = state["position"]["step"], state["position"]["epoch"]
    assert 23 <= stopped_step < 400 * 23
    # resume in-process and finish the epoch after the one that was interrupted
    target = stopped_epoch + 1
    assert cli.main(["train", str(path), "--resume", str(out / "last.ckpt"), "--epochs", str(target), "-q"]) == 0
    lines = runlog.read_metrics(out)
    steps = [d["step"] for d in lines if d["event"] == "step"]
    assert steps == list(range(1, target * 23 + 1))  # no gap and no repeat across the stop
    runs = json.loads(path.read_text())["runs"]
    assert [r["status"] for r in runs] == ["stopped", "finished"]
