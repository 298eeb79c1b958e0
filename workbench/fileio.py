"""Atomic file writes: temp file in the target folder, fsync, rename. Clear errors for
read-only folders and full disks; a failed write leaves the old file untouched."""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from workbench.errors import WorkbenchError


def describe_os_error(exc: OSError, path: Path | str) -> str:
    if exc.errno == errno.ENOSPC:
        return f"cannot write {path}: the disk is full; free some space or choose another folder"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied (read-only folder?); choose a folder you can write to"
    if exc.errno == errno.ENOENT:
        return f"cannot write {path}: the folder does not exist"
    return f"cannot write {path}: {exc.strerror or exc}"


@contextlib.contextmanager
def atomic_path(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed into place.

    On any exception the temporary file is removed and ``path`` keeps its old content.
    """
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent or ".")
        os.close(fd)
    except OSError as exc:
        raise WorkbenchError(describe_os_error(exc, path)) from None
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600; the file should look like any other
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WorkbenchError(describe_os_error(exc, path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_umask()


def _mode_for(path: Path) -> int:
    """An overwritten file keeps its permissions; a new one gets the umask's default."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return _NEW_FILE_MODE


def write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path | str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_with(path: Path | str, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Atomic write through a function that writes a file at a given path (torch.save etc.)."""
    with atomic_path(path, suffix) as tmp:
        writer(tmp)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
