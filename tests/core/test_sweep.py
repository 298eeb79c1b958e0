"""Sweeps on Optuna (issue 16): a real small sweep on digits, a trial whose stack does not infer
failing with the layer error, pruning that stops a run, bad search spaces as one error line,
two worker processes sharing one storage, kill -9 and SIGTERM mid-trial then running again."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from workbench.cli.main import main
from workbench.experiments import space as sp, sweep as sw
from workbench.project import project_file, templates

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "WORKBENCH_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


def save_cnn(tmp_path, epochs=1, name="p.wbproj"):
    proj = templates.load("digits_cnn")
    proj.training = replace(proj.training, epochs=epochs, tensorboard=False, device="cpu")
    return project_file.save(proj, tmp_path / name)


def lr_space(trials, **options):
    return sp.SearchSpace((sp.parse_param("training.optimizer.lr=log:1e-3..3e-2"),
                           sp.parse_param("conv1.out_channels=8,16")), trials=trials, **options)


def test_small_sweep_on_digits_then_running_again_continues(tmp_path, capsys):
    path = save_cnn(tmp_path)
    args = ["sweep", str(path), "--trials", "2", "--param", "training.optimizer.lr=log:1e-3..3e-2",
            "--param", "conv1.out_channels=8,16", "--pruner", "none"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "best trial" in out and "trials.csv: " in out
    csv_path = Path(out.strip().splitlines()[-1].split("trials.csv: ", 1)[1])
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert {"training.optimizer.lr", "conv1.out_channels"} <= set(rows[0])
    storage = sw.default_storage(path)
    assert storage == f"sqlite:///{tmp_path.resolve() / 'p.sweeps.db'}"
    (name,) = sw.study_names(storage)
    study = sw.load_study(storage, name)
    assert study.user_attrs["space"]["params"]["conv1.out_channels"] == {"choices": [8, 16]}
    assert study.user_attrs["project"] == str(path)
    for t in study.trials:
        assert set(t.params) == {"training.optimizer.lr", "conv1.out_channels"}
        assert list(t.intermediate_values) == [1] and t.user_attrs["epochs"][0]["val_acc"] is not None
        assert Path(t.user_attrs["run_dir"]) == path.parent / "p.runs" / "sweeps" / name / f"trial-{t.number}"
        assert Path(t.user_attrs["checkpoint"]).is_file() and t.user_attrs["seconds"] > 0
    assert main(args[:3] + ["3"] + args[4:]) == 0  # the same command with a larger total continues the study
    assert [t.number for t in sw.load_study(storage, name).trials] == [0, 1, 2]
    assert "0 of 2 trials so far" not in capsys.readouterr().out


def test_a_trial_whose_stack_does_not_infer_fails_with_the_layer_error(tmp_path):
    proj = project_file.load(save_cnn(tmp_path))
    space = sp.SearchSpace((sp.parse_param("conv1.kernel_size=50"),), trials=1, pruner="none")
    result = sw.Sweep(proj, space).run()
    (row,) = result.rows
    assert row["state"] == "FAIL"
    assert "layer 'conv1' (Conv2d, #1)" in row["error"] and "kernel" in row["error"]
    assert result.rows == sw.trial_rows(sw.load_study(result.storage, result.study_name))


def test_pruning_stops_the_run_at_once(tmp_path):
    proj = project_file.load(save_cnn(tmp_path, epochs=4))
    seen = []
    sweep = sw.Sweep(proj, lr_space(1), pruner=optuna.pruners.ThresholdPruner(lower=2.0),  # val_acc < 2: prune
                     on_event=lambda number, event: seen.append(event.kind))
    (row,) = sweep.run().rows
    assert row["state"] == "PRUNED" and len(row["epochs"]) == 1 and row["best"] is not None
    assert seen.count("epoch") == 1 and "finished" not in seen  # epochs 2-4 never ran


def test_grid_sampler_runs_the_choice_grid(tmp_path):
    proj = project_file.load(save_cnn(tmp_path))
    space = sp.SearchSpace((sp.parse_param("conv1.out_channels=4,8"),), sampler="grid", pruner="none", trials=5)
    rows = sw.Sweep(proj, space).run().rows
    assert sorted(r["params"]["conv1.out_channels"] for r in rows) == [4, 8]  # the grid ends the study


@pytest.mark.parametrize("param, words", [
    ("nosuch.p=0..0.5", ["sweep parameter nosuch.p", "no layer 'nosuch'"]),
    ("conv1.out_channels=int:64..16", ["sweep parameter conv1.out_channels", "empty range"]),
    ("training.optimizer.lr=log:0..0.1", ["sweep parameter training.optimizer.lr", "above 0"]),
    ("training.optimizer.lr=log:-1..0.1", ["sweep parameter training.optimizer.lr", "above 0"]),
    ("conv1.nope=1,2", ["conv1.nope", "no argument 'nope'"]),
])
def test_bad_search_space_is_exit_2_and_one_error_line(tmp_path, capsys, param, words):
    path = save_cnn(tmp_path)
    assert main(["sweep", str(path), "--trials", "2", "--param", param]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "p.sweeps.db").exists()  # nothing ran


def test_grid_with_a_continuous_range_is_refused(tmp_path, capsys):
    path = save_cnn(tmp_path)
    assert main(["sweep", str(path), "--sampler", "grid", "--param", "training.optimizer.lr=log:1e-4..1e-1"]) == 2
    err = capsys.readouterr().err
    assert "training.optimizer.lr" in err and "grid" in err


def _study(path: Path):
    storage = sw.default_storage(path)
    names = sw.study_names(storage)
    return sw.load_study(storage, names[0]) if names else None


@pytest.mark.slow
def test_two_worker_processes_share_one_storage(tmp_path):
    path = save_cnn(tmp_path)
    cmd = [sys.executable, "-m", "workbench", "sweep", str(path), "--trials", "6", "--pruner", "none",
           "--param", "training.optimizer.lr=log:1e-3..3e-2", "--param", "conv1.out_channels=4,8"]
    workers = [subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outs = [w.communicate(timeout=400) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outs
    trials = _study(path).trials
    assert sorted(t.number for t in trials) == list(range(6))  # the total, each trial once
    assert len({t.user_attrs["run_dir"] for t in trials}) == 6
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2, "both workers ran trials"
    for out, _ in outs:
        assert out.count("\n5 ") or out.count("\n5  ")  # each prints the whole study's table


def _wait_running(path: Path, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        study = _study(path) if (path.parent / "p.sweeps.db").exists() else None
        running = [t for t in (study.trials if study else []) if t.state.name == "RUNNING"
                   and t.user_attrs.get("epochs")]
        if running:
            return running[0].number
        time.sleep(0.5)
    raise AssertionError("no trial got to its first epoch")


@pytest.mark.slow
def test_kill9_mid_trial_then_running_again_continues_and_fails_the_stale_trial(tmp_path):
    path = save_cnn(tmp_path, epochs=200)
    cmd = [sys.executable, "-m", "workbench", "sweep", str(path), "--trials", "2", "--pruner", "none",
           "--param", "training.optimizer.lr=log:1e-3..3e-2", "--param", "conv1.out_channels=4,8"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    number = _wait_running(path, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _study(path).trials[number].state.name == "RUNNING"  # readable, the trial left as it was
    proj = project_file.load(path)  # shorter trials for the rest, same study (the space is the same)
    proj.training = replace(proj.training, epochs=1)
    project_file.save(proj)
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr
    trials = _study(path).trials
    assert [t.number for t in trials] == [0, 1]
    assert trials[number].state.name == "FAIL" and "killed" in trials[number].user_attrs["error"]
    assert [t.state.name for t in trials if t.number != number] == ["COMPLETE"]


@pytest.mark.slow
def test_sigterm_mid_trial_ends_it_as_stopped_and_exits_0(tmp_path):
    path = save_cnn(tmp_path, epochs=200)
    cmd = [sys.executable, "-m", "workbench", "sweep", str(path), "--trials", "2", "--pruner", "none",
           "--param", "training.optimizer.lr=log:1e-3..3e-2"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    number = _wait_running(path, proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert time.monotonic() - t0 < 30
    (trial,) = _study(path).trials
    assert trial.number == number and trial.state.name == "FAIL" and trial.user_attrs["error"] == "stopped"
    assert "Traceback" not in err and "stopped" in out
