"""``workbench export --format all`` under kill -9 at random moments: no target path ever holds
a half-written file, and the next export removes the temp files and the verification folders
the killed ones left (and says so)."""
from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from workbench.export.registry import FORMATS

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 10
STEM = "digits_mlp"


def start(out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-u", "-m", "workbench", "export", STEM, "--format", "all",
                             "-o", str(out), "-v"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)


def kill_when(proc: subprocess.Popen, trigger: str | None, delay: float) -> str:
    """SIGKILL ``proc`` ``delay`` s after a stderr line containing ``trigger`` (after the start when
    None); the stage it was killed in."""
    seen = threading.Event() if trigger else None
    last = ["start"]

    def read():
        for line in proc.stderr:
            if "| writing " in line or "| verification " in line:
                last[0] = line.strip()[2:60]
            if seen is not None and trigger in line:
                seen.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if seen is not None:
        seen.wait(timeout=120)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()  # reaped: its pid is dead, not a zombie that still looks alive
    reader.join(timeout=10)
    return last[0]


def load(path: Path) -> None:
    """Open ``path`` the way its users do; raises on a half-written file."""
    suffix = path.suffix
    if suffix == ".pth":
        assert torch.load(path, weights_only=True)["state_dict"]
    elif suffix == ".safetensors":
        from safetensors.torch import load_file
        assert load_file(str(path))
    elif suffix == ".pt":
        torch.jit.load(str(path))
    elif suffix == ".onnx":
        import onnx
        onnx.checker.check_model(onnx.load(str(path)))
    elif suffix == ".pt2":
        torch.export.load(str(path))
    elif suffix == ".py":
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    else:
        raise AssertionError(f"unexpected file {path.name}")


def our_temps(folder: Path) -> list[str]:
    return sorted(p for p in os.listdir(folder) if p.startswith(".") and ".tmp" in p)


def verify_folders(pids: set[int]) -> list[str]:
    names = os.listdir(tempfile.gettempdir())
    return sorted(n for n in names for pid in pids if n.startswith(f".workbench-verify.{pid}."))


@pytest.mark.slow
def test_kill_9_during_export_all_never_leaves_a_half_file_and_the_next_export_cleans_up(tmp_path):
    rng = random.Random(12)
    out = tmp_path / "out"
    targets = [out / f"{STEM}{f.suffix}" for f in FORMATS.values()]
    pids, stages = set(), []
    for trial in range(TRIALS):
        fmt = rng.choice([None, *FORMATS.values()])
        trigger = f"writing {fmt.title}" if fmt else None
        delay = rng.uniform(0.0, 0.4) if fmt else rng.uniform(0.5, 6.0)
        proc = start(out)
        pids.add(proc.pid)
        stages.append(kill_when(proc, trigger, delay))
        assert proc.returncode == -signal.SIGKILL, trial
        for target in targets:
            if target.exists():
                load(target)  # never half-written: the rename happens only after verification
        assert not [n for n in os.listdir(out) if not n.startswith(".")] or \
            {n for n in os.listdir(out) if not n.startswith(".")} <= {t.name for t in targets}
    assert len(set(stages)) >= 3, stages  # the kills landed at different stages
    left = our_temps(out) if out.exists() else []
    print(f"killed at: {stages}; temp files left before the next export: {left}")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    final = subprocess.run([sys.executable, "-m", "workbench", "export", STEM, "--format", "all", "-o", str(out)],
                           capture_output=True, text=True, timeout=600, env=env)
    assert final.returncode == 0, final.stderr[-3000:]
    for target in targets:
        load(target)
    assert our_temps(out) == []  # every temp file a killed export left is gone
    assert sorted(os.listdir(out)) == sorted(t.name for t in targets)
    assert verify_folders(pids) == []  # and so is every killed export's verification folder
    if left:
        assert re.search(r"note: removed \d+ temporary file", final.stderr), final.stderr
