"""Training on a disk that fills up (issue 12, "Prove it"): on a real small tmpfs, the run stops
with one clear "disk is full" error and exit 2, and the checkpoint already in the folder is
kept as it was, loadable. Skipped, with the reason, where a tmpfs cannot be mounted."""
from __future__ import annotations

from dataclasses import replace

import hashlib
import os
import shutil
import subprocess

import pytest

from workbench.cli import main as cli
from workbench.project import project_file as project, templates
from workbench.training import checkpoint
from workbench.training.run_lock import LOCK_FILE


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip() or made.returncode}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk, leave: int) -> None:
    """Take all the free space but ``leave`` bytes."""
    st = os.statvfs(disk)
    with open(disk / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ours(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name]


def test_a_disk_that_fills_up_mid_run_is_one_clear_error_and_keeps_the_old_checkpoint(small_disk, tmp_path, capsys):
    proj = templates.load("digits_mlp")
    proj.training = replace(proj.training, tensorboard=False, device="cpu")
    path = tmp_path / "p.wbproj"
    project.save(proj, path)
    run = small_disk / "run"
    assert cli.main(["train", str(path), "--out", str(run), "--epochs", "1", "-q"]) == 0
    before = digest(run / checkpoint.LAST)
    assert (run / checkpoint.LAST).stat().st_size > 60_000
    capsys.readouterr()

    fill(small_disk, leave=48 * 1024)  # room for the lock and the log lines, not for a checkpoint
    assert cli.main(["train", str(path), "--resume", str(run), "--epochs", "3", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "the disk is full" in err[0], err
    assert str(run / checkpoint.LAST) in err[0]
    assert digest(run / checkpoint.LAST) == before  # the old checkpoint, untouched
    assert checkpoint.load(run / checkpoint.LAST)["position"]["epoch"] == 1
    checkpoint.load(run / checkpoint.BEST)
    assert ours(run) == [] and not (run / LOCK_FILE).exists()  # no half-written temp, no lock left

    with open(small_disk / "filler2", "wb", buffering=0) as fh:  # not even room for the lock
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass
    assert cli.main(["train", str(path), "--out", str(small_disk / "run2"), "--epochs", "1", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "disk is full" in err[0], err
    assert not (small_disk / "run2").exists()
    assert digest(run / checkpoint.LAST) == before
