"""Atomic file writes: temp file in the target folder, fsync, rename. Clear errors for
read-only folders and full disks; a failed write leaves the old file untouched.

Temporary names carry the writing process's id (``.<name>.<pid>.<random>.tmp<suffix>``), so a
later run can tell a temp file orphaned by a killed process from one being written right now
(``clean_stale_temps``). ``regular_file`` (and ``open_regular``) refuse FIFOs, devices and folders before anything
opens them (opening a FIFO blocks forever)."""
from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

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
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=f".tmp{suffix}", dir=path.parent or ".")
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


# .<name>.<pid>.<8 random chars>.tmp[<suffix>], as written by atomic_path (and mkdtemp users that
# pass temp_prefix); the older form without the pid is recognised too, and judged by age.
_TEMP = re.compile(r"\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp(?:\.[A-Za-z0-9]+)?", re.ASCII)
LEGACY_STALE_S = 3600.0


def temp_prefix(name: str) -> str:
    """The start of a temporary name for ``name``: hidden, and stamped with this process's id."""
    return f".{name}.{os.getpid()}."


def process_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether process ``pid`` still runs on this machine. A zombie does not (it can write
    nothing); with ``started_by`` (a time stamp), a process started later is a reused pid."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started_by is None or proc.create_time() <= started_by
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # someone else's process: it exists
        return True


def stale_temps(folder: Path | str, names: Iterable[str] | None = None) -> list[Path]:
    """Temp files (or folders) of our naming in ``folder`` whose writer is gone.

    A stamped one is stale when its process no longer exists; an unstamped (older) one when it
    is over an hour old. ``names`` limits the search to temps of those target names.
    """
    folder = Path(folder)
    wanted = set(names) if names is not None else None
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    now = time.time()
    for entry in entries:
        m = _TEMP.fullmatch(entry.name)
        if not m or (wanted is not None and m["name"] not in wanted):
            continue
        if m["pid"] is not None:
            stale = not process_alive(int(m["pid"]))
        else:
            try:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_STALE_S
            except OSError:
                continue
        if stale:
            found.append(Path(entry.path))
    return sorted(found)


def clean_stale_temps(folder: Path | str, names: Iterable[str] | None = None,
                      log: Callable[[str], None] | None = None) -> list[Path]:
    """Remove what ``stale_temps`` finds; one log line says what went and how much space came back."""
    import shutil

    removed, size = [], 0
    for path in stale_temps(folder, names):
        try:
            if path.is_dir() and not path.is_symlink():
                size += sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                shutil.rmtree(path)
            else:
                size += path.lstat().st_size
                path.unlink()
        except OSError:
            continue
        removed.append(path)
    if removed and log:
        shown = ", ".join(p.name for p in removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
        log(f"removed {len(removed)} temporary file(s) left by an interrupted run in {folder} "
            f"({size / 1e6:.1f} MB): {shown}")
    return removed


def regular_file(path: Path | str, what: str = "file") -> Path:
    """``path`` if it is an existing regular file (or a link to one); else a WorkbenchError that
    says what it is. Call before opening user-given paths: a FIFO would block the open forever."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _unreadable(exc, path, what) from None
    if stat.S_ISREG(mode):
        return path
    raise _not_regular(mode, path, what)


def open_regular(path: str, what: str = "file") -> BinaryIO:
    """``path`` opened for reading in binary if it is a regular file (or a link to one), in one
    open and one fstat: the check ``regular_file`` makes, for readers that open many files (an
    image folder's every example). The open does not block on a FIFO (O_NONBLOCK, which a
    regular file ignores). Errors are WorkbenchErrors as ``regular_file``'s."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise _unreadable(exc, path, what) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(mode, path, what)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _unreadable(exc: OSError | ValueError, path: Path | str, what: str) -> WorkbenchError:
    if isinstance(exc, FileNotFoundError):
        return WorkbenchError(f"{what} {path} does not exist")
    return WorkbenchError(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}")


def _not_regular(mode: int, path: Path | str, what: str) -> WorkbenchError:
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
    return WorkbenchError(f"{what} {path} is {kind}, not a regular file; give the path of a file")


def _mode(path: Path | str) -> int | None:
    try:
        return os.stat(path).st_mode
    except (OSError, ValueError):  # a name too long, a NUL byte, a loop: no such file can be there
        return None


def exists(path: Path | str) -> bool:
    """``Path.exists()`` for user-given paths: Python 3.11 raises OSError for a name too long
    (ENAMETOOLONG), which no file can have, so that is False here, as is a NUL byte."""
    return _mode(path) is not None


def is_file(path: Path | str) -> bool:
    mode = _mode(path)
    return mode is not None and stat.S_ISREG(mode)


def is_dir(path: Path | str) -> bool:
    mode = _mode(path)
    return mode is not None and stat.S_ISDIR(mode)
