"""One run per run folder: the lock a training run holds on its folder while it writes there.

``RunLock.acquire(folder)`` creates ``<folder>/run.lock`` and takes an exclusive OS lock on it
(``fcntl.flock``): the OS drops that lock when the process ends, however it ends (kill -9
included), so a lock is never left held by a dead run. Inside the file is who holds it (pid,
host, start time), for the message a second run gets: ``RunFolderBusy``, which names the folder
and the other run's pid. ``release()`` removes the file (every exit path of the engine calls
it). A lock file that is still there at the next start therefore means its run was killed
(or crashed): the new run takes it over and ``taken_over`` says whose it was, for the run log.

Where ``flock`` is missing (Windows) or refused (some network file systems), the file itself
is the lock: created exclusively, and judged stale when the pid inside no longer runs on this
host (psutil, with the process's start time against pid reuse).

Details that matter: ``flock`` locks follow open file descriptions, so a child forked while a
run holds its folder (DataLoader workers) would keep the lock alive after the run is killed;
the descriptor is closed in forked children (``os.register_at_fork``). A run that got the OS
lock checks that the file it locked is still the one at the path (a run releasing its lock
removes the file first), else it tries again. filelock (a torch dependency) was not used: it
truncates the lock file on every attempt, so the holder's pid could not be kept in it.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from workbench import fileio
from workbench.errors import WorkbenchError

try:
    import fcntl
except ImportError:  # Windows: the pid-file lock below
    fcntl = None

LOCK_FILE = "run.lock"
_ATTEMPTS = 20
_DEAD_HOLDER_WAIT_S = 3.0  # a killed holder's forked children close their copy of the lock on their first breath
_EMPTY_WAIT_S = 1.0  # a holder writes its details right after taking the lock: wait that long for them
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENOTSUP}


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a run folder, as written in its lock file."""

    pid: int | None
    host: str = ""
    started: str = ""
    started_at: float = 0.0  # time.time() at the start, to tell a reused pid

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "a process that wrote no pid"
        if self.pid == os.getpid() and self.host == _HOST:
            who += ", this process"
        if self.host and self.host != _HOST:
            who += f" on {self.host}"
        if self.started:
            who += f", started {self.started}"
        return who

    @classmethod
    def from_text(cls, text: str) -> Holder | None:
        """None for an empty or unreadable file."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        pid = data.get("pid")
        pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31 else None
        started_at = data.get("started_at")
        return cls(pid, str(data.get("host", ""))[:200], str(data.get("started", ""))[:40],
                   float(started_at) if isinstance(started_at, (int, float)) and not isinstance(started_at, bool)
                   else 0.0)

    def to_text(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "started": self.started,
                           "started_at": self.started_at}) + "\n"


_HOST = socket.gethostname()


class RunFolderBusy(WorkbenchError):
    """Another live run holds the folder."""

    def __init__(self, folder: Path, holder: Holder | None):
        self.folder, self.holder = folder, holder
        who = holder.describe() if holder is not None else "a process that has not written its pid yet"
        if holder is not None and not _pid_alive(holder):
            who += "; that process has ended, but a process it started still holds the folder"
        super().__init__(f"the run folder {folder} is in use by another training run ({who}); wait for it to "
                         "end or stop it, or choose another run folder")


def _me() -> Holder:
    now = time.time()
    return Holder(os.getpid(), _HOST, time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)), now)


def _lock_error(path: Path, exc: OSError) -> WorkbenchError:
    if exc.errno == errno.ENOSPC:
        return WorkbenchError(f"cannot lock the run folder {path.parent}: the disk is full; free some space or "
                              "choose another folder")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return WorkbenchError(f"cannot lock the run folder {path.parent}: permission denied (read-only folder?); "
                              "choose a folder you can write to")
    return WorkbenchError(f"cannot lock the run folder {path.parent}: {exc.strerror or exc}")


# ---------------------------------------------------------------- forked children let go

_held: set[int] = set()  # descriptors of the OS locks this process holds
_held_guard = threading.Lock()


def _close_in_child() -> None:
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class RunLock:
    """The lock of one run folder, held by this process until ``release``."""

    def __init__(self, folder: Path, fd: int | None, holder: Holder, taken_over: Holder | None, mode: str):
        self.folder = folder
        self.path = folder / LOCK_FILE
        self.holder = holder  # this run
        self.taken_over = taken_over  # the killed run whose lock file this run took over, if any
        self.mode = mode  # "flock" or "pid file"; "released" once let go
        self._fd = fd
        self._pid = os.getpid()  # a forked child's copy of this object must never remove the file

    @classmethod
    def acquire(cls, folder: Path | str) -> RunLock:
        """Lock ``folder`` (which exists) for this run; RunFolderBusy when a live run holds it,
        WorkbenchError when the lock file cannot be written."""
        folder = Path(folder)
        if fcntl is not None:
            lock = _acquire_flock(folder)
            if lock is not None:
                return lock
        return _acquire_pid_file(folder)

    @property
    def held(self) -> bool:
        return self.mode != "released"

    def takeover_note(self) -> str | None:
        """The line for the run log when this run took over a killed run's lock."""
        if self.taken_over is None:
            return None
        return (f"took over the lock of {self.folder} from an earlier run ({self.taken_over.describe()}) that "
                "ended without releasing it (killed or crashed)")

    def release(self) -> None:
        """Remove the lock file and let go of the folder; safe to call more than once."""
        if self.mode == "released":
            return
        if os.getpid() != self._pid:  # a forked child: its copy of the descriptor is closed already
            self.mode = "released"
            return
        try:
            self.path.unlink(missing_ok=True)  # before unlocking: a waiting run then sees a new file
        except OSError:
            pass  # the OS lock still goes below; the file left behind is taken over next time
        if self._fd is not None:
            with _held_guard:
                _held.discard(self._fd)
            try:
                os.close(self._fd)  # drops the flock
            except OSError:
                pass
            self._fd = None
        self.mode = "released"

    def __del__(self):  # an engine set up but never run lets go when it is dropped
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_fd(fd: int) -> Holder | None:
    try:
        data = os.pread(fd, 4096, 0)
    except OSError:
        return None
    return Holder.from_text(data.decode("utf-8", "replace"))


def _acquire_flock(folder: Path) -> RunLock | None:
    """The OS lock; None when the file system does not support it."""
    path = folder / LOCK_FILE
    dead_since: float | None = None
    for _ in range(_ATTEMPTS * 10):
        created = False
        try:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                created = True
            except FileExistsError:
                fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue  # released between the two opens
        except OSError as exc:
            raise _lock_error(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = _read_fd(fd)
                deadline = time.monotonic() + _EMPTY_WAIT_S
                while holder is None and time.monotonic() < deadline:  # it is writing its details right now
                    time.sleep(0.05)
                    holder = _read_fd(fd)
                os.close(fd)
                if holder is not None and not _pid_alive(holder):  # a child it forked has not let go yet
                    dead_since = dead_since or time.monotonic()
                    if time.monotonic() - dead_since < _DEAD_HOLDER_WAIT_S:
                        time.sleep(0.05)
                        continue
                raise RunFolderBusy(folder, holder) from None
            os.close(fd)
            if exc.errno in _NO_FLOCK:
                if created:  # the pid-file lock creates its own
                    path.unlink(missing_ok=True)
                return None
            raise _lock_error(path, exc) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if not same:  # its holder released it (removing the file) while we waited: lock the new one
            os.close(fd)
            continue
        previous = _read_fd(fd)
        me = _me()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.to_text().encode("utf-8"), 0)
            os.fsync(fd)
        except OSError as exc:
            path.unlink(missing_ok=True)  # ours while we hold it; an empty lock file would only mislead
            os.close(fd)
            raise _lock_error(path, exc) from None
        with _held_guard:
            _held.add(fd)
        return RunLock(folder, fd, me, previous, "flock")
    raise WorkbenchError(f"cannot lock the run folder {folder}: other runs keep taking and releasing it; try again")


def _pid_alive(holder: Holder) -> bool:
    """Whether the holder's process still runs (on this host; one on another host counts as alive)."""
    if holder.host and holder.host != _HOST:
        return True
    if holder.pid is None:
        return False
    return fileio.process_alive(holder.pid, holder.started_at + 1.0 if holder.started_at else None)


def _acquire_pid_file(folder: Path) -> RunLock:
    """The lock file as the lock: created exclusively; a stale one (dead pid) is taken over."""
    path = folder / LOCK_FILE
    taken_over = None
    empty_since: float | None = None
    for _ in range(_ATTEMPTS * 4):
        me = _me()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue  # released meanwhile
            except OSError as exc:
                raise _lock_error(path, exc) from None
            holder = Holder.from_text(text)
            if holder is None and not text:  # being written right now, or its writer died at once
                empty_since = empty_since or time.monotonic()
                if time.monotonic() - empty_since < _EMPTY_WAIT_S:
                    time.sleep(0.05)
                    continue
            if holder is not None and _pid_alive(holder):
                raise RunFolderBusy(folder, holder) from None
            try:  # stale: take it over, unless someone else did first
                if path.read_text(encoding="utf-8", errors="replace") == text:
                    path.unlink()
            except OSError:
                pass
            taken_over = holder or Holder(None)
            continue
        except OSError as exc:
            raise _lock_error(path, exc) from None
        try:
            os.write(fd, me.to_text().encode("utf-8"))
            os.fsync(fd)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise _lock_error(path, exc) from None
        finally:
            os.close(fd)
        return RunLock(folder, None, me, taken_over, "pid file")
    raise WorkbenchError(f"cannot lock the run folder {folder}: other runs keep taking and releasing it; try again")
