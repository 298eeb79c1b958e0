"""Plain work off the UI thread, with the answer handed back on the UI thread.

``Background.submit(fn, *args, done=callback)`` runs ``fn`` on one worker thread (a Python
thread: no QObject ever lives there) and a QTimer on the UI thread polls the futures and
calls ``done(result, error)``. Used for reading data to show its task, loading earlier
runs' metrics and reading memory gauges: none of it may block the window.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer


class Background(QObject):
    def __init__(self, name: str, parent: QObject | None = None, poll_ms: int = 40):
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"workbench-{name}")
        self._waiting: list[tuple[Future, Callable[[Any, Exception | None], None] | None]] = []
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)
        self._closed = False

    def submit(self, fn: Callable, *args, done: Callable[[Any, Exception | None], None] | None = None) -> Future:
        future = self._pool.submit(fn, *args)
        self._waiting.append((future, done))
        if not self._timer.isActive():
            self._timer.start()
        return future

    def busy(self) -> bool:
        return any(not f.done() for f, _ in self._waiting)

    def _poll(self) -> None:
        ready = [(f, cb) for f, cb in self._waiting if f.done()]
        if not ready:
            return
        self._waiting = [(f, cb) for f, cb in self._waiting if not f.done()]
        if not self._waiting:
            self._timer.stop()
        for future, callback in ready:
            if callback is None or future.cancelled():
                continue
            error = future.exception()
            callback(None if error else future.result(), error)

    def drain(self, timeout_s: float = 10.0) -> None:
        """Wait for the submitted work and deliver it now (tests, shutdown)."""
        for future, _ in list(self._waiting):
            try:
                future.result(timeout=timeout_s)
            except Exception:  # delivered to its callback below
                pass
        self._poll()

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self._timer.stop()
            self._waiting.clear()
            self._pool.shutdown(wait=False, cancel_futures=True)
