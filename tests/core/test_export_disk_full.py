"""Exports on a real full disk (a small tmpfs): a clear "disk is full" error naming the file,
never an abort, nothing half-written, no temp file or verification folder left, and
``--format all`` goes on to the formats that still fit. Also: every format's file gets the
same permissions."""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.export import exporter as export
from workbench.export import spool
from workbench.export.registry import FORMATS
from workbench.model import build
from workbench.project import templates

ROOT = Path(__file__).resolve().parents[2]
FREE_LEFT = 60 * 1024
DISK_FULL = re.compile(r"disk (is )?full")


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MB tmpfs filled to about 60 KB free; skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (this test fills a real disk)")
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                              capture_output=True, text=True, timeout=30)
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not allowed here (EPERM in a container?): {proc.stderr.strip()}")
    try:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * (free - FREE_LEFT))
        left = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        assert FREE_LEFT - 8192 <= left <= FREE_LEFT + 8192, left
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)  # a file still open


def verify_folders() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if "workbench-verify" in p}


def test_export_all_on_a_full_disk_says_so_for_each_format_and_goes_on(full_disk):
    """In a separate process, so an abort of a C++ writer shows as a failure here, not a crash."""
    before = verify_folders()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "workbench", "export", "digits_cnn", "--format", "all",
                           "-o", str(full_disk)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])  # some formats failed, no abort (-6)
    assert "Traceback" not in proc.stdout + proc.stderr
    failed = {line.split(":")[0]: line for line in proc.stdout.splitlines() if ": FAILED: " in line}
    assert set(failed) == {"state_dict", "safetensors", "torchscript", "onnx", "pt2"}, proc.stdout
    for fmt, line in failed.items():
        assert DISK_FULL.search(line), line
        assert str(full_disk / f"digits_cnn{FORMATS[fmt].suffix}") in line, line
    assert "python: wrote" in proc.stdout  # the format that fits was still written, after the failures
    assert sorted(os.listdir(full_disk)) == ["digits_cnn.py", "filler"]  # no temp file, no half file
    assert verify_folders() <= before


@pytest.mark.parametrize("in_memory", [True, False], ids=["serialised-in-memory", "free-space-check"])
def test_each_format_on_a_full_disk_is_a_clear_error(full_disk, monkeypatch, in_memory):
    if not in_memory:  # as for a model too big to hold twice in memory: checked against its size first
        monkeypatch.setattr(spool, "MEMORY_SHARE", 0.0)
    torch.manual_seed(0)
    spec = templates.load("digits_cnn").model
    model = build.build_model(spec)
    (full_disk / "digits.pt").write_bytes(b"an older export")
    for fmt in ("state_dict", "safetensors", "torchscript", "onnx", "pt2"):
        target = full_disk / f"digits{FORMATS[fmt].suffix}"
        with pytest.raises(WorkbenchError) as err:
            export.export(model, spec, fmt, target)
        message = str(err.value)
        assert DISK_FULL.search(message) and str(target) in message, message
        assert sorted(os.listdir(full_disk)) == ["digits.pt", "filler"], fmt
    assert (full_disk / "digits.pt").read_bytes() == b"an older export"


def test_the_message_gives_the_size_and_the_free_space(full_disk):
    spec = templates.load("digits_cnn").model
    with pytest.raises(WorkbenchError) as err:
        export.export(build.build_model(spec), spec, "state_dict", full_disk / "d.pth")
    assert re.search(r"the disk is full: the file needs [\d.]+ KB and only [\d.]+ KB is free", str(err.value))


def test_every_format_gets_the_same_permissions(tmp_path):
    """The umask's default for a new file, as any file the user saves (safetensors used to get 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    spec = templates.load("digits_mlp").model
    results = export.export_all(build.build_model(spec), spec, tmp_path, "m",
                                options=export.ExportOptions(verify=False))
    assert [r.error for r in results] == [""] * len(FORMATS)
    modes = {r.path.name: oct(stat.S_IMODE(os.stat(r.path).st_mode)) for r in results}
    assert set(modes.values()) == {oct(0o666 & ~mask)}, modes


@pytest.mark.parametrize("fmt", ["safetensors", "state_dict"])
def test_files_too_big_for_memory_get_the_same_permissions(tmp_path, monkeypatch, fmt):
    """The path for files over half the free memory: the library writes the file itself
    (safetensors' save_file recreates it with 0600), and it still ends with the umask's mode."""
    mask = os.umask(0o022)
    os.umask(mask)
    monkeypatch.setattr(spool, "free_memory", lambda: 0)  # every file goes straight to disk
    spec = templates.load("digits_mlp").model
    result = export.export(build.build_model(spec), spec, fmt, tmp_path / f"m{FORMATS[fmt].suffix}",
                           options=export.ExportOptions(verify=False))
    assert oct(stat.S_IMODE(os.stat(result.path).st_mode)) == oct(0o666 & ~mask)
