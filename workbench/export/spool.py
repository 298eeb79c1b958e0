"""Writing a serialised model file so that a full disk is a clear error, never an abort.

PyTorch's zip writer (TorchScript, .pt2, torch.save) is C++: on a full disk it can abort the
whole process (a C++ exception in a destructor) or say only "unexpected pos 4800 vs 4696".
So a writer here serialises into memory first, and Python writes the bytes: a full disk is
then a plain ``OSError`` (ENOSPC) that ``fileio.atomic_path`` turns into "cannot write X:
the disk is full". Before writing, the free space is compared with the file's size, so the
message can give both figures.

A file too big to hold in memory next to the model is written by the library straight to
disk, after a free-space check against its expected size plus a margin.
"""
from __future__ import annotations

import io
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO, Callable

from workbench.errors import WorkbenchError
from workbench.export.base import human_size

MEMORY_SHARE = 0.5  # serialise in memory while the file takes at most this share of free RAM
MARGIN = (0.05, 1 << 20)  # (share of the size, bytes) kept free on top of an estimated size
CHUNK = 16 << 20


def free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def free_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def check_space(target: Path, needed: int, estimated: bool = False) -> None:
    """A WorkbenchError saying "the disk is full" with both figures when ``needed`` bytes will not fit."""
    free = free_bytes(target.parent)
    if free is None:
        return
    want = int(needed * (1 + MARGIN[0]) + MARGIN[1]) if estimated else needed
    if free < want:
        about = "about " if estimated else ""
        raise WorkbenchError(f"cannot write {target}: the disk is full: the file needs {about}{human_size(needed)} "
                             f"and only {human_size(free)} is free in {target.parent}; free some space or choose "
                             "another folder")


def write(tmp: Path, target: Path, save: Callable[[BinaryIO | str], None], expected: int) -> int:
    """Run ``save`` (e.g. ``lambda f: torch.save(obj, f)``) so that ``tmp`` holds its output; the size.

    ``expected`` is the file's approximate size (the weights' bytes). In memory when that fits
    comfortably, else straight to ``tmp`` after a free-space check. An OSError (the disk
    filling up) propagates for ``fileio.atomic_path`` to word.
    """
    if expected > free_memory() * MEMORY_SHARE:
        check_space(target, expected, estimated=True)
        mode = stat.S_IMODE(os.stat(tmp).st_mode)  # what atomic_path chose; a library may recreate the file
        save(str(tmp))
        os.chmod(tmp, mode)
        return tmp.stat().st_size
    buffer = io.BytesIO()
    save(buffer)
    return write_bytes(tmp, target, buffer.getbuffer())


def write_bytes(tmp: Path, target: Path, data: bytes | memoryview) -> int:
    """Write ``data`` to ``tmp`` from Python after checking that it fits; its length."""
    check_space(target, len(data))
    with open(tmp, "wb") as fh:
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            fh.write(view[start:start + CHUNK])
    return len(data)
