"""The sweep's worker processes: K copies of ``python -m workbench sweep FILE --trials N ...``
started as QProcesses (fork + exec, no Python fork), all against one storage, so Optuna shares
the N trials between them (the study's total, not each worker's).

Each worker is the leader of a session of its own, so Stop reaches it and anything it started
with one ``killpg``: SIGTERM first (the worker ends its running trial as failed, "stopped", and
exits), SIGKILL for whatever is left ``KILL_AFTER_MS`` later. ``shutdown`` (the window closing)
does the same and waits. Standard error is kept per worker: a worker that exits 2 printed one
``error: ...`` line, which ``errors()`` returns for the dock to show.
"""
from __future__ import annotations

import os
import signal
import sys

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

KILL_AFTER_MS = 20_000
KEEP_STDERR = 64 * 1024  # the tail of a worker's standard error that is kept


def python() -> str | None:
    """The Python that runs ``-m workbench``; None in a bundled app (no Python to start)."""
    return None if getattr(sys, "frozen", False) else sys.executable


def command(path: str, trials: int, sampler: str, pruner: str, timeout: float | None, study: str | None) -> list[str]:
    """One worker's argv (after the Python)."""
    argv = ["-m", "workbench", "sweep", path, "--trials", str(trials), "--jobs", "1", "--sampler", sampler,
            "--pruner", pruner]
    if timeout:
        argv += ["--timeout", f"{timeout:g}"]
    if study:
        argv += ["--study", study]
    return argv


class SweepWorkers(QObject):
    ended = Signal(list)  # every worker's exit code (-1: crashed or killed), once all have ended

    def __init__(self, parent=None):
        super().__init__(parent)
        self.processes: list[QProcess] = []
        self._stderr: dict[QProcess, bytes] = {}
        self._codes: dict[QProcess, int] = {}
        self.stopping = False

    def start(self, argv: list[str], workers: int, folder: str) -> None:
        """Start ``workers`` processes of ``python argv`` in ``folder``."""
        self.processes, self._stderr, self._codes, self.stopping = [], {}, {}, False
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        for _ in range(workers):
            proc = QProcess(self)
            proc.setProgram(python() or "python")
            proc.setArguments(argv)
            proc.setWorkingDirectory(folder)
            proc.setProcessEnvironment(env)
            params = QProcess.UnixProcessParameters()
            params.flags = QProcess.UnixProcessFlag.CreateNewSession  # its own group: Stop reaches its children
            proc.setUnixProcessParameters(params)
            proc.setStandardOutputFile(QProcess.nullDevice())  # the dock reads the storage, not the trial table
            proc.readyReadStandardError.connect(lambda p=proc: self._read(p))
            proc.finished.connect(lambda code, status, p=proc: self._finished(p, code, status))
            proc.errorOccurred.connect(lambda error, p=proc: self._failed(p, error))
            self.processes.append(proc)
            self._stderr[proc] = b""
        for proc in self.processes:
            proc.start()

    def is_running(self) -> bool:
        return any(p.state() != QProcess.ProcessState.NotRunning for p in self.processes)

    def running(self) -> int:
        return sum(p.state() != QProcess.ProcessState.NotRunning for p in self.processes)

    def _read(self, proc: QProcess) -> None:
        self._stderr[proc] = (self._stderr.get(proc, b"") + bytes(proc.readAllStandardError()))[-KEEP_STDERR:]

    def _failed(self, proc: QProcess, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._stderr[proc] = f"error: could not start {proc.program()}: {proc.errorString()}".encode()
            self._done(proc, -1)

    def _finished(self, proc: QProcess, code: int, status) -> None:
        self._read(proc)
        self._done(proc, -1 if status == QProcess.ExitStatus.CrashExit else code)

    def _done(self, proc: QProcess, code: int) -> None:
        if proc in self._codes:
            return
        self._codes[proc] = code
        if len(self._codes) == len(self.processes):
            self.ended.emit([self._codes[p] for p in self.processes])

    def errors(self) -> list[str]:
        """The ``error:`` lines the workers printed (one per worker that had one), else the last
        line of a worker that failed without one."""
        out: list[str] = []
        for proc in self.processes:
            lines = [line.strip() for line in self._stderr.get(proc, b"").decode("utf-8", "replace").splitlines()
                     if line.strip()]
            found = [line for line in lines if line.startswith("error:")]
            if found:
                out.append(found[-1])
            elif self._codes.get(proc, 0) not in (0, None) and lines and not self.stopping:
                out.append(lines[-1])
        return list(dict.fromkeys(out))

    def stop(self) -> None:
        """SIGTERM to every worker's process group; SIGKILL to those left after ``KILL_AFTER_MS``."""
        if not self.is_running():
            return
        self.stopping = True
        self._signal(signal.SIGTERM)
        QTimer.singleShot(KILL_AFTER_MS, self, lambda procs=list(self.processes): self._kill(procs))

    def _signal(self, sig) -> None:
        for proc in self.processes:
            pid = proc.processId()
            if pid and proc.state() != QProcess.ProcessState.NotRunning:
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def _kill(self, procs: list[QProcess]) -> None:
        if procs == self.processes and self.is_running():
            self._signal(signal.SIGKILL)

    def shutdown(self, wait_ms: int = KILL_AFTER_MS) -> None:
        """Stop and wait (the window is closing): nothing of the sweep outlives it."""
        if not self.is_running():
            return
        self.stop()
        for proc in self.processes:
            if not proc.waitForFinished(wait_ms):
                self._signal(signal.SIGKILL)
                proc.waitForFinished(5000)
