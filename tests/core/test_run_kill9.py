"""kill -9 during training, over and over (issue 12, "Prove it"): after every kill the run
folder's checkpoints load, ``--resume`` continues from the step they hold, the next run takes
over the killed run's lock and removes the temp files it left; a last, normal run leaves no
temp file of ours and no lock.

Each trial is ``python -m workbench train`` (``runpy`` of ``workbench.__main__`` with its argv)
in a child forked from a helper process that has already imported torch and the workbench:
importing them takes most of the 15 s a fresh process needs on this 2-core machine, and the
test would not fit its time otherwise. The last run is a fresh ``python -m workbench train``.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from workbench.project import project_file as project
from workbench.training import checkpoint
from workbench.training.run_lock import LOCK_FILE

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), WORKBENCH_OFFLINE="1")
TRIALS = 16
OUR_TEMP = re.compile(r"\..+\.tmp(\.[A-Za-z0-9]+)?\Z")  # fileio's temp names: .<name>.<pid>.<random>.tmp

FORK_SERVER = r"""
import json, os, runpy, sys, traceback
import torch, torch._dynamo  # noqa: F401 - what makes a fresh process slow, imported once
import sklearn.datasets  # noqa: F401
import workbench.cli.main, workbench.cli.train, workbench.training.engine, workbench.data.bundle  # noqa: F401
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(req["cwd"])
            sys.argv = ["workbench", *req["argv"]]
            try:
                runpy.run_module("workbench", run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)  # reaped at once: a zombie would still count as alive
    print(json.dumps({"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                      "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}), flush=True)
"""


def big_mlp_project(path: Path) -> Path:
    """Digits with a 1.1M-parameter MLP and 3 steps per epoch: a 13 MB checkpoint every ~0.1 s,
    so most of a run's time is spent writing checkpoints and kills land mid-write."""
    proj = project.loads(json.dumps({
        "format": "model-workbench/project", "version": 1, "name": "Kill me",
        "model": {"input": {"shape": [1, 8, 8]}, "layers": [
            {"id": "flat", "type": "Flatten"},
            {"id": "fc1", "type": "Linear", "args": {"out_features": 1024}},
            {"id": "relu1", "type": "ReLU"},
            {"id": "fc2", "type": "Linear", "args": {"out_features": 1024}},
            {"id": "relu2", "type": "ReLU"},
            {"id": "fc3", "type": "Linear", "args": {"out_features": 10}}]},
        "data": {"source": "digits", "val_fraction": 0.2, "batch_size": 512},
        "training": {"optimizer": {"type": "Adam", "lr": 0.001}, "loss": "CrossEntropyLoss", "epochs": 100000,
                     "device": "cpu", "seed": 0, "log_every": 1, "tensorboard": False}}))
    project.save(proj, path)
    return path


def wait_for(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"; log:\n{read(log)}" if log else ""))
        time.sleep(0.002)
    return result


def read(log: Path) -> str:
    return log.read_text() if log.exists() else ""


def stamp(path: Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def wrote(folder: Path, before) -> bool:
    now = stamp(folder / checkpoint.LAST)
    return now is not None and now != before


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if OUR_TEMP.match(p.name))


def test_kill_9_at_random_times_loses_nothing_and_leaves_nothing(tmp_path):
    path = big_mlp_project(tmp_path / "kill.wbproj")
    folder = tmp_path / "run"
    rng = random.Random(20240612)
    server = subprocess.Popen([sys.executable, "-c", FORK_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=ENV, cwd=tmp_path)
    killed_pid = None
    last_step = -1
    mid_write = 0  # kills that left a half-written checkpoint temp behind
    started_s: list[float] = []
    try:
        assert server.stdout.readline().strip() == "ready"
        for trial in range(TRIALS):
            log = tmp_path / f"trial{trial}.log"
            resume = (folder / checkpoint.LAST).exists()
            argv = ["train", str(path), *(["--resume", str(folder)] if resume else ["--out", str(folder)])]
            left_behind = temps(folder) if folder.exists() else []
            before = stamp(folder / checkpoint.LAST)
            server.stdin.write(json.dumps({"argv": argv, "log": str(log), "cwd": str(tmp_path)}) + "\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            t0 = time.monotonic()
            wait_for(lambda: "training on" in read(log), 60, f"trial {trial} to start", log)
            started_s.append(time.monotonic() - t0)
            if trial % 3 == 2:  # aimed: the moment this run starts to replace a checkpoint
                wait_for(lambda: (folder / checkpoint.LAST).exists() and any(
                    n.startswith((f".last.ckpt.{pid}.", f".best.ckpt.{pid}.")) for n in temps(folder)),
                    30, "a checkpoint write", log)
            elif trial % 3 == 1:  # any time, even before its first checkpoint
                time.sleep(rng.uniform(0.0, 1.0))
            else:  # any time after its first checkpoint
                wait_for(lambda: wrote(folder, before), 30, "a checkpoint", log)
                time.sleep(rng.uniform(0.0, 0.6))
            os.kill(pid, signal.SIGKILL)
            status = json.loads(server.stdout.readline())
            text = log.read_text()
            assert status["signal"] == signal.SIGKILL, f"trial {trial} ended by itself: {status}\n{text}"
            assert "Traceback" not in text and "error" not in text, text
            if killed_pid is not None:  # the lock of the run killed before is taken over, and said
                assert f"took over the lock of {folder}" in text and f"pid {killed_pid}" in text, text
            if left_behind:
                assert f"removed {len(left_behind)} temporary file(s)" in text, (left_behind, text)
                assert not set(left_behind) & set(temps(folder))
            if resume:  # --resume continued from the step the checkpoint holds
                assert f", step {last_step}\n" in text, (last_step, text)
            lock = json.loads((folder / LOCK_FILE).read_text())
            assert lock["pid"] == pid  # the killed run held the folder to the end
            killed_pid = pid
            mid_write += any(f".{pid}." in name for name in temps(folder))
            if (folder / checkpoint.LAST).exists():
                state = checkpoint.load(folder / checkpoint.LAST)
                assert state["position"]["step"] >= last_step
                last_step = state["position"]["step"]
            if (folder / checkpoint.BEST).exists():
                checkpoint.load(folder / checkpoint.BEST)
        assert last_step > 0 and mid_write >= 1, (last_step, mid_write, started_s)
        # a normal run to the end: takes over, cleans up, leaves nothing of ours
        epoch = checkpoint.load(folder / checkpoint.LAST)["position"]["epoch"]
        log = tmp_path / "last.log"
        server.stdin.write(json.dumps({"argv": ["train", str(path), "--resume", str(folder), "--epochs",
                                                str(epoch + 2)], "log": str(log), "cwd": str(tmp_path)}) + "\n")
        server.stdin.flush()
        server.stdout.readline()
        status = json.loads(server.stdout.readline())
    finally:
        server.stdin.close()
        server.kill()
        server.wait(10)
    text = read(log)
    assert status["code"] == 0, text
    assert f"pid {killed_pid}" in text and "Traceback" not in text and "finished" in text
    assert temps(folder) == [] and not (folder / LOCK_FILE).exists()
    assert checkpoint.load(folder / checkpoint.LAST)["position"]["epoch"] == epoch + 2
    checkpoint.load(folder / checkpoint.BEST)
