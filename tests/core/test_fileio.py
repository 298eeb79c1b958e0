"""Atomic writes leave nothing behind, and temp files orphaned by a killed process are found
and removed by the next writer, while a live writer's temp file is left alone."""
import os
import subprocess
import sys
import time

import pytest

from workbench import fileio
from workbench.errors import WorkbenchError


def _orphan(folder, name, suffix=""):
    """A temp file written through atomic_path by a process that is then killed."""
    code = ("import os, sys, time\nfrom workbench import fileio\n"
            f"with fileio.atomic_path({str(folder / name)!r}, suffix={suffix!r}) as tmp:\n"
            "    tmp.write_bytes(b'x' * 1000)\n    print(tmp, flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    tmp = proc.stdout.readline().strip()
    proc.kill()
    proc.wait()
    proc.stdout.close()
    return tmp


def test_temp_names_carry_the_pid_and_a_killed_writers_temp_is_removed(tmp_path):
    tmp = _orphan(tmp_path, "last.ckpt")
    assert os.path.exists(tmp) and f".{os.getpid()}." not in tmp
    lines = []
    with fileio.atomic_path(tmp_path / "live.onnx", suffix=".onnx") as mine:
        mine.write_bytes(b"y")
        # our own temp (live pid) is never taken for stale, the dead writer's is
        assert fileio.stale_temps(tmp_path) == [tmp_path / os.path.basename(tmp)]
        removed = fileio.clean_stale_temps(tmp_path, log=lines.append)
        assert mine.exists()
    assert [p.name for p in removed] == [os.path.basename(tmp)] and not os.path.exists(tmp)
    assert len(lines) == 1 and "removed 1 temporary file" in lines[0] and "last.ckpt" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.onnx"]


def test_only_our_naming_is_touched(tmp_path):
    keep = [".hidden", "model.tmp", ".a.b.tmp", "notes.txt", ".x.pt.1234.abc.tmp"]  # last: 3 random chars
    for name in keep:
        (tmp_path / name).write_text("user data")
    old = tmp_path / ".last.ckpt.abcd_123.tmp"  # the pid-less form of earlier versions
    old.write_text("x")
    young = tmp_path / ".best.ckpt.zzzz_999.tmp"
    young.write_text("x")
    os.utime(old, (time.time() - 2 * fileio.LEGACY_STALE_S,) * 2)
    assert fileio.clean_stale_temps(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep + [young.name])


def test_names_filter(tmp_path):
    a = _orphan(tmp_path, "a.pt", ".pt")
    b = _orphan(tmp_path, "b.onnx", ".onnx")
    assert [p.name for p in fileio.clean_stale_temps(tmp_path, names=["a.pt"])] == [os.path.basename(a)]
    assert os.path.exists(b)


def test_regular_file_refuses_fifos_folders_and_missing_paths(tmp_path):
    fifo = tmp_path / "pipe.wbproj"
    os.mkfifo(fifo)
    with pytest.raises(WorkbenchError, match=r"pipe\.wbproj is a FIFO"):
        fileio.regular_file(fifo, "project")
    with pytest.raises(WorkbenchError, match="is a folder"):
        fileio.regular_file(tmp_path, "CSV file")
    with pytest.raises(WorkbenchError, match="does not exist"):
        fileio.regular_file(tmp_path / "nope.csv", "CSV file")
    f = tmp_path / "ok.csv"
    f.write_text("a\n")
    assert fileio.regular_file(f) == f


def test_open_regular_reads_files_and_refuses_fifos_folders_and_missing_paths_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    open_files = len(os.listdir("/proc/self/fd"))
    with pytest.raises(WorkbenchError, match=r"image .*pipe\.jpg is a FIFO"):
        fileio.open_regular(str(fifo), "image")
    with pytest.raises(WorkbenchError, match="is a folder"):
        fileio.open_regular(str(tmp_path), "image")
    with pytest.raises(WorkbenchError, match=r"image .*nope\.jpg does not exist"):
        fileio.open_regular(str(tmp_path / "nope.jpg"), "image")
    with pytest.raises(WorkbenchError, match="cannot read image"):
        fileio.open_regular("a\0b.jpg", "image")
    assert len(os.listdir("/proc/self/fd")) == open_files  # a refused FIFO or folder is closed again
    f = tmp_path / "ok.jpg"
    f.write_bytes(b"\xff\xd8 pixels")
    with fileio.open_regular(str(f), "image") as fh:
        assert fh.read() == b"\xff\xd8 pixels"


@pytest.mark.parametrize("name", ["x" * 5000, "a\0b"], ids=["name-too-long", "nul-byte"])
def test_impossible_paths_are_refused_by_every_loader(tmp_path, name):
    """Python 3.11's Path.exists() raises OSError for a name too long (found by the export CLI
    fuzzer through --weights); every loader says the file is not there instead."""
    from workbench.model import weights
    from workbench.project import project_file
    from workbench.training import checkpoint

    path = tmp_path / name
    assert not fileio.exists(path) and not fileio.is_file(path) and not fileio.is_dir(path)
    for load in (weights.read, checkpoint.load, project_file.load):
        with pytest.raises(WorkbenchError):
            load(path)
