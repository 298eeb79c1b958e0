"""One run per run folder (issue 12, items 7 and 8): the lock, its takeover after a kill, its
release on every way out of a run, and the temp files killed runs left, removed at the start."""
from __future__ import annotations

from dataclasses import replace

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.cli import main as cli
from workbench.errors import WorkbenchError
from workbench.project import project_file as project, templates
from workbench.training import checkpoint, events as ev, run_lock, runlog
from workbench.training.engine import Engine
from workbench.training.run_lock import LOCK_FILE, RunFolderBusy, RunLock

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), WORKBENCH_OFFLINE="1")


def digits(epochs=1, **training):
    proj = templates.load("digits_mlp")
    proj.training = replace(proj.training, **{"epochs": epochs, "tensorboard": False, **training})
    return proj


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def stale_lock(folder: Path, pid: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": run_lock.socket.gethostname(),
                                                "started": "2024-01-01T00:00:00", "started_at": 0}))


# ---------------------------------------------------------------- the lock itself

def test_a_second_lock_on_a_folder_is_refused_naming_the_folder_and_the_pid(tmp_path):
    with RunLock.acquire(tmp_path) as first:
        assert first.mode == "flock" and json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
        with pytest.raises(RunFolderBusy) as busy:
            RunLock.acquire(tmp_path)
        message = str(busy.value)
        assert str(tmp_path) in message and f"pid {os.getpid()}, this process" in message
        assert isinstance(busy.value, WorkbenchError)
    assert not (tmp_path / LOCK_FILE).exists()  # released: the file goes
    with RunLock.acquire(tmp_path) as again:
        assert again.taken_over is None and again.takeover_note() is None  # a clean release is no takeover


def test_a_lock_left_by_a_killed_process_is_taken_over_and_said(tmp_path):
    """The holder is killed by SIGKILL after forking a child: the OS drops its lock (the child
    does not keep it: forked children close it), and the next run takes it over, naming it."""
    code = ("import os, sys, time\n"
            "from workbench.training.run_lock import RunLock\n"
            "lock = RunLock.acquire(sys.argv[1])\n"
            "if os.fork() == 0:\n"
            "    time.sleep(30); os._exit(0)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match=f"pid {proc.pid}"):
            RunLock.acquire(tmp_path)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        lock = RunLock.acquire(tmp_path)  # at once: the forked child still lives, without the lock
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lock.taken_over.pid == proc.pid
    note = lock.takeover_note()
    assert f"pid {proc.pid}" in note and "killed" in note and str(tmp_path) in note
    lock.release()


def test_without_flock_the_pid_file_is_the_lock(tmp_path, monkeypatch):
    class NoFlock:  # a file system that refuses flock (some network mounts)
        LOCK_EX, LOCK_NB = 2, 4

        @staticmethod
        def flock(fd, op):
            raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_lock, "fcntl", NoFlock)
    with RunLock.acquire(tmp_path) as first:
        assert first.mode == "pid file"
        with pytest.raises(RunFolderBusy, match=f"{tmp_path}.*pid {os.getpid()}"):
            RunLock.acquire(tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()
    gone = dead_pid()
    stale_lock(tmp_path, gone)
    with RunLock.acquire(tmp_path) as taken:
        assert taken.taken_over.pid == gone and f"pid {gone}" in taken.takeover_note()
    monkeypatch.setattr(run_lock, "fcntl", None)  # no fcntl at all (Windows)
    with RunLock.acquire(tmp_path) as plain:
        assert plain.mode == "pid file"


def test_a_lock_file_that_cannot_be_written_is_a_clear_error(tmp_path):
    (tmp_path / LOCK_FILE).mkdir()  # something in the way
    with pytest.raises(WorkbenchError, match="cannot lock the run folder"):
        RunLock.acquire(tmp_path)


def test_garbage_in_a_lock_file_is_taken_over(tmp_path):
    for text in ["", "not json", "[1, 2]", '{"pid": "x"}', '{"pid": true}', '{"pid": 99999999999}']:
        (tmp_path / LOCK_FILE).write_text(text)
        with RunLock.acquire(tmp_path) as lock:
            assert lock.holder.pid == os.getpid()


# ---------------------------------------------------------------- the engine holds it

def test_every_way_out_of_a_run_releases_its_folder(tmp_path):
    held = []

    def watch(e):
        if isinstance(e, ev.StartedEvent):
            held.append((Path(e.run_dir) / LOCK_FILE).is_file())

    end = Engine(digits(), run_dir=tmp_path / "done", handlers=[watch]).run()
    assert isinstance(end, ev.FinishedEvent) and held == [True]
    assert not (tmp_path / "done" / LOCK_FILE).exists()

    engine = Engine(digits(epochs=3), run_dir=tmp_path / "stop")
    engine.add_handler(lambda e: engine.controls.stop() if isinstance(e, ev.StepEvent) and e.step == 3 else None)
    assert isinstance(engine.run(), ev.StoppedEvent) and not (tmp_path / "stop" / LOCK_FILE).exists()

    def interrupt(e):
        if isinstance(e, ev.StepEvent) and e.step == 2:
            raise KeyboardInterrupt  # a second Ctrl-C in `workbench train`

    class Interrupt(ev.Handler):
        def on_steps(self, engine, steps):
            for s in steps:
                interrupt(s)

    with pytest.raises(KeyboardInterrupt):
        Engine(digits(), run_dir=tmp_path / "ctrl-c", handlers=[Interrupt()]).run()
    assert not (tmp_path / "ctrl-c" / LOCK_FILE).exists()
    RunLock.acquire(tmp_path / "ctrl-c").release()

    proj = digits(log_every=1)  # a failure while training: the loss blows up
    proj.training = replace(proj.training, optimizer=replace(proj.training.optimizer, type="SGD", lr=1e6,
                                                                momentum=0.9))
    failed = Engine(proj, run_dir=tmp_path / "fail").run()
    assert isinstance(failed, ev.FailedEvent) and failed.phase == "training"
    assert not (tmp_path / "fail" / LOCK_FILE).exists()


def test_a_run_that_fails_at_setup_leaves_no_folder_and_no_lock(tmp_path):
    proj = digits()
    proj.data = replace(proj.data, source="wine")  # the model does not fit the data
    end = Engine(proj, run_dir=tmp_path / "a" / "b").run()
    assert isinstance(end, ev.FailedEvent) and end.phase == "setup"
    assert not (tmp_path / "a").exists()


def test_a_second_engine_on_a_busy_folder_is_refused_before_reading_data(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    from workbench.data import bundle

    def no_data(settings):
        raise AssertionError("the data was read although the folder is busy")

    with RunLock.acquire(folder):
        monkeypatch.setattr(bundle, "load_data", no_data)
        end = Engine(digits(), run_dir=folder).run()
    assert isinstance(end, ev.FailedEvent) and end.phase == "setup" and end.fixable
    assert "is in use by another training run" in end.message and f"pid {os.getpid()}" in end.message
    assert os.listdir(folder) == []  # the refused run wrote nothing there


def test_a_takeover_and_the_temp_files_of_killed_runs_are_noted_at_the_start(tmp_path):
    folder = tmp_path / "run"
    end = Engine(digits(), run_dir=folder).run()
    assert isinstance(end, ev.FinishedEvent)
    gone = dead_pid()
    stale_lock(folder, gone)
    orphans = [folder / f".last.ckpt.{gone}.abcd1234.tmp", folder / f".best.ckpt.{gone}.x_y9abcd.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"\0" * 300_000)
    alive = folder / f".last.ckpt.{os.getppid()}.zzzz1234.tmp"  # a live writer's temp stays
    alive.write_bytes(b"x")
    started = []
    again = Engine(digits(epochs=2), run_dir=folder, resume_from=folder / checkpoint.LAST,
                   handlers=[lambda e: started.append(e) if isinstance(e, ev.StartedEvent) else None]).run()
    assert isinstance(again, ev.FinishedEvent)
    notes = started[0].notes
    assert any(f"pid {gone}" in n and "took over the lock" in n for n in notes), notes
    assert any("removed 2 temporary file(s)" in n and "0.6 MB" in n for n in notes), notes
    assert not any(o.exists() for o in orphans) and alive.exists()
    logged = [d for d in runlog.read_metrics(folder) if d["event"] == "started"][-1]
    assert logged["notes"] == notes  # the run log keeps them
    assert not (folder / LOCK_FILE).exists()


# ---------------------------------------------------------------- two `workbench train` at once

def test_two_trains_into_one_folder_the_second_is_refused(tmp_path, capsys):
    proj = digits(log_every=1)
    path = tmp_path / "p.wbproj"
    project.save(proj, path)
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "workbench", "train", str(path), "--epochs", "400",
                              "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=ENV, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while "epoch 1/400" not in (line := first.stderr.readline()):
            assert line and time.monotonic() < deadline, "the first run never started"
        assert cli.main(["train", str(path), "--epochs", "2", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        assert str(out) in err[0] and f"pid {first.pid}" in err[0] and "in use by another training run" in err[0]
        while not (out / checkpoint.LAST).exists():  # written off the training thread, after the epoch line
            assert time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.05)
        assert cli.main(["train", str(path), "--resume", str(out), "--epochs", "2"]) == 2  # resuming into it too
        assert f"pid {first.pid}" in capsys.readouterr().err
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, stderr
    assert [d["event"] for d in runlog.read_metrics(out)].count("started") == 1  # no second run in its log
    assert not (out / LOCK_FILE).exists()  # a stopped run lets go
    epoch = checkpoint.load(out / checkpoint.LAST)["position"]["epoch"]
    assert cli.main(["train", str(path), "--resume", str(out), "--epochs", str(epoch + 1)]) == 0
    assert "took over" not in capsys.readouterr().err


def test_under_torchrun_a_busy_folder_stops_every_process_at_once(tmp_path, wine_ddp_project):
    """Only rank 0 locks: the processes agree on the outcome, so the others do not wait for a
    refused rank 0 until the distributed timeout (10 minutes)."""
    path = tmp_path / "p.wbproj"
    path.write_text(json.dumps(wine_ddp_project))
    out = tmp_path / "run"
    out.mkdir()
    with RunLock.acquire(out):
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                               "-m", "workbench", "train", str(path), "--out", str(out)],
                              env={**ENV, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=150)
    assert done.returncode != 0 and time.monotonic() - t0 < 150
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(out) in errors[0] and f"pid {os.getpid()}" in errors[0], done.stderr[-3000:]
    assert "lost the other processes" not in done.stderr
    assert not (out / runlog.METRICS).exists()
