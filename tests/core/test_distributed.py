"""Distributed training under torchrun (gloo on CPU): real 2-process runs of
``python -m torch.distributed.run --standalone --nproc-per-node 2 -m workbench train``.

One tiny project (the wine table, an MLP with neither BatchNorm nor dropout, 142 training
examples: divisible by 2) trains three ways that must agree to float rounding: one process
with batch 16, two processes with batch 8 each (global batch 16), and runs that switch world
size at a checkpoint (2 -> 1 at an epoch's end, 1 -> 2 in the middle of an epoch).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from workbench.model import build
from workbench.training import checkpoint, distributed, runlog
from workbench.project import project_file as project
from workbench.data.bundle import EpochBatches
from workbench.errors import WorkbenchError
from workbench.training.engine import Engine

TOL = 1e-5


def write_project(path: Path, project: dict, batch_size: int) -> Path:
    spec = json.loads(json.dumps(project))
    spec["data"]["batch_size"] = batch_size
    path.write_text(json.dumps(spec))
    return path


def torchrun(*args, nproc: int = 2, timeout: float = 120, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_cmd(*args, nproc=nproc), env=child_env(), capture_output=True, text=True,
                          timeout=timeout, **popen)


def torchrun_cmd(*args, nproc: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "workbench", "train", *map(str, args)]


def child_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WORKBENCH_OFFLINE": "1"}


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(run_dir / checkpoint.LAST)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=TOL, rtol=0), (key, (a[key] - b[key]).abs().max())


def epochs(run_dir: Path) -> list[dict]:
    return [r for r in runlog.read_metrics(run_dir) if r["event"] == "epoch"]


def one_process(path: Path, out: Path, epochs: int = 2, resume: Path | None = None,
                stop_at: int | None = None) -> list[str]:
    """Train in this process; returns the run's notes (its StartedEvent's)."""
    engine = Engine(project.load(path), run_dir=out if resume is None else None, resume_from=resume, epochs=epochs)
    if stop_at is not None:
        engine.add_handler(lambda e: engine.controls.stop() if getattr(e, "step", 0) == stop_at and e.kind == "step"
                           else None)
    notes = []
    engine.add_handler(lambda e: notes.extend(e.notes) if e.kind == "started" else None)
    end = engine.run()
    assert end.kind == ("stopped" if stop_at else "finished"), getattr(end, "message", end)
    return notes


@pytest.fixture(scope="module")
def runs(tmp_path_factory, wine_ddp_project):
    """Every run once (the torchrun launches dominate the time): returns their folders."""
    tmp = tmp_path_factory.mktemp("ddp")
    p8 = write_project(tmp / "b8.wbproj", wine_ddp_project, 8)
    p16 = write_project(tmp / "b16.wbproj", wine_ddp_project, 16)
    out = {"p8": p8, "p16": p16, "one": tmp / "one", "two": tmp / "two", "two_then_one": tmp / "two_then_one",
           "one_then_two": tmp / "one_then_two"}
    one_process(p16, out["one"])
    t0 = time.perf_counter()
    out["two_result"] = torchrun(p8, "--out", out["two"])
    out["two_seconds"] = time.perf_counter() - t0
    # 2 processes for one epoch, then 1 process (batch 16) for the second
    out["two_then_one_first"] = torchrun(p8, "--out", out["two_then_one"], "--epochs", "1")
    if out["two_then_one_first"].returncode == 0:
        out["two_then_one_world"] = checkpoint.load(out["two_then_one"] / checkpoint.LAST)["world_size"]
        out["two_then_one_notes"] = one_process(p16, None, resume=out["two_then_one"] / checkpoint.LAST)
    # 1 process stopped in the middle of the first epoch, then 2 processes (8 each) from that same example on
    one_process(p16, out["one_then_two"], stop_at=5)
    out["one_then_two_second"] = torchrun(p8, "--resume", out["one_then_two"] / checkpoint.LAST)
    return out


def test_two_processes_train_like_one_with_the_same_global_batch(runs):
    result = runs["two_result"]
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"2-process run: {runs['two_seconds']:.1f} s wall")
    # the same weights as one process with batch 16, epoch by epoch the same global metrics
    assert_same_weights(weights(runs["two"]), weights(runs["one"]))
    for two, one in zip(epochs(runs["two"]), epochs(runs["one"]), strict=True):
        for key in ("train_loss", "val_loss", "val_acc"):
            assert two[key] == pytest.approx(one[key], abs=TOL), key
        assert two["confusion"] == one["confusion"]  # validation shards summed: every example counted once
    steps2 = [r for r in runlog.read_metrics(runs["two"]) if r["event"] == "step"]
    steps1 = [r for r in runlog.read_metrics(runs["one"]) if r["event"] == "step"]
    assert [r["step"] for r in steps2] == list(range(1, 19))  # 142 / 16 -> 9 steps per epoch, each logged once
    diff = max(abs(a["loss"] - b["loss"]) for a, b in zip(steps2, steps1, strict=True))
    print(f"largest step-loss difference 1 vs 2 processes: {diff:.2e}")
    assert diff < TOL


def test_only_rank_zero_speaks_and_writes(runs):
    result = runs["two_result"]
    assert result.stdout.count("finished 2 epochs") == 1, result.stdout
    assert result.stderr.count("training on cpu") == 1
    assert "global batch 16 = 8 per process x 2" in result.stderr
    assert "rank 1" not in result.stderr
    files = sorted(p.name for p in runs["two"].iterdir())
    assert files == ["best.ckpt", "last.ckpt", "metrics.jsonl", "tensorboard"]
    rows = runlog.read_metrics(runs["two"])
    assert [r["event"] for r in rows].count("started") == 1
    # one run record in the project file, from rank 0, saying every rank ended with the same weights
    records = project.load(runs["p8"]).runs
    two = [r for r in records if r["dir"] == str(runs["two"])]
    assert len(two) == 1 and two[0]["processes"] == 2
    ranks = two[0]["weights"]
    assert len(ranks) == 2 and ranks[0] == ranks[1]
    model = build.build_model(project.load(runs["p8"]).model)
    model.load_state_dict(weights(runs["two"]))
    assert distributed.fingerprint(model) == ranks[0]  # ...and they are the checkpoint's


def test_checkpoints_resume_under_another_world_size(runs):
    first = runs["two_then_one_first"]
    assert first.returncode == 0, first.stderr[-3000:]
    assert runs["two_then_one_world"] == 2
    assert any("written by 2 process(es) with a global batch of 16; this run has 1" in n
               for n in runs["two_then_one_notes"])
    assert_same_weights(weights(runs["two_then_one"]), weights(runs["one"]))
    second = runs["one_then_two_second"]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "written by 1 process(es) with a global batch of 16; this run has 2" in second.stderr
    stopped = next(r for r in runlog.read_metrics(runs["one_then_two"]) if r["event"] == "stopped")
    assert 0 < stopped["step"] < 9  # the middle of the first epoch (steps are read out 4 at a time)
    assert f"resumed from {runs['one_then_two'] / checkpoint.LAST} at epoch 1, step {stopped['step']}" in second.stderr
    assert_same_weights(weights(runs["one_then_two"]), weights(runs["one"]))


def test_a_stuck_process_does_not_hang_the_others(tmp_path, wine_ddp_project):
    """Rank 1 freezes (SIGSTOP) mid-run: rank 0 gives up after --dist-timeout with a message
    that says why, and once rank 1 can move again everything ends; nothing stays behind."""
    path = write_project(tmp_path / "p.wbproj", wine_ddp_project, 8)
    out = tmp_path / "run"
    proc = subprocess.Popen(torchrun_cmd(path, "--out", out, "--epochs", "500", "--dist-timeout", "3"),
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(r["event"] == "epoch" for r in _rows(out)):
            assert proc.poll() is None and time.monotonic() < deadline, "the run never got going"
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert len(workers) == 2
        rank1 = max(workers)  # torchrun starts local rank 0 first
        os.kill(rank1, signal.SIGSTOP)
        t0 = time.monotonic()
        while min(workers) in _children(proc.pid):
            assert time.monotonic() - t0 < 30, "rank 0 hung on its frozen peer"
            time.sleep(0.2)
        waited = time.monotonic() - t0
        os.kill(rank1, signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"rank 0 gave up {waited:.1f} s after its peer froze (timeout 3 s)")
    assert proc.returncode != 0
    assert 2 <= waited < 20
    assert "another process failed or hangs" in err or "lost the other processes" in err, err[-3000:]
    assert not _alive(workers)


def _rows(out: Path) -> list[dict]:
    return runlog.read_metrics(out) if (out / runlog.METRICS).is_file() else []


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return sorted(int(p) for p in text.split())


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


# ---------------------------------------------------------------- the pieces, without processes

def test_shards_of_a_global_batch_are_the_single_process_batch():
    n, per, world = 142, 8, 2
    single = list(EpochBatches(n, per * world, shuffle=True, seed=3))
    ranks = [EpochBatches(n, per, shuffle=True, seed=3, rank=r, world_size=world) for r in range(world)]
    shards = list(zip(*(list(r) for r in ranks)))
    assert len(shards) == len(single) == 9
    for batch, parts in zip(single, shards):
        assert sorted(batch) == sorted(i for part in parts for i in part)
        assert len({len(part) for part in parts}) == 1  # equal shards: DDP's average is the batch mean
    # validation shards (no padding) hold every example exactly once
    val = [i for r in range(3) for i in EpochBatches(37, 5, shuffle=False, rank=r, world_size=3, pad=False).indices()]
    assert sorted(val) == list(range(37))


def _state(batch: int, batch_size: int, world_size: int | None, total_steps: int | None = None) -> dict:
    state = {"position": {"epoch": 2, "batch": batch, "step": 20 + batch, "loss_sum": 1.0, "loss_count": 4},
             "batch_size": batch_size, "scheduler": {"total_steps": total_steps} if total_steps else None}
    if world_size is not None:
        state["world_size"] = world_size
    return state


def test_resume_position_counts_examples_not_batches():
    notes: list[str] = []
    same = distributed.resume_position(_state(3, 8, 2), 8, 2, notes)
    assert same["batch"] == 3 and notes == []
    # 3 global batches of 16 = 48 examples: 3 batches of 16 in one process, 6 of 8 (x1), 2 of 24 (8 x 3)
    assert distributed.resume_position(_state(3, 8, 2), 16, 1, notes)["batch"] == 3
    assert distributed.resume_position(_state(3, 8, 2), 8, 1, notes)["batch"] == 6
    assert distributed.resume_position(_state(3, 8, None), 8, 3, notes)["batch"] == 1  # older file: 1 process
    assert not any("seen twice" in n for n in notes)  # every one of these fell on a batch boundary
    notes.clear()
    pos = distributed.resume_position(_state(5, 8, 2), 8, 3, notes)  # 80 examples; batches of 24: 72 + 8
    assert (pos["batch"], pos["epoch"], pos["step"]) == (3, 2, 25)
    assert any("8 examples are seen twice" in n for n in notes)
    with pytest.raises(WorkbenchError, match="one-cycle"):
        distributed.resume_position(_state(2, 8, 2, total_steps=90), 8, 1, [], total_steps=180)


def test_torchrun_environment_and_devices(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched()
    with distributed.session("cpu") as par:
        assert par is None  # a plain process trains alone
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert distributed.read_env(env) == distributed.Launch(3, 4, 1, 2)
    with pytest.raises(WorkbenchError, match="RANK=4"):
        distributed.read_env({**env, "RANK": "4"})
    with pytest.raises(WorkbenchError, match="not a number"):
        distributed.read_env({**env, "WORLD_SIZE": "x"})
    assert distributed.choose_device("cpu", 1)[:2] == (torch.device("cpu"), "gloo")
    if not torch.cuda.is_available():
        assert distributed.choose_device("auto", 1)[:2] == (torch.device("cpu"), "gloo")
        with pytest.raises(WorkbenchError, match="no CUDA GPU"):
            distributed.choose_device("cuda", 0)
    with pytest.raises(WorkbenchError, match="mps"):
        distributed.choose_device("mps", 0)
