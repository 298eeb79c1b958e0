"""Plain work off the UI thread, with the answer handed back on the UI thread.

``Background.submit(fn, *args, done=callback)`` queues ``fn`` for a worker thread (a plain
Python thread: no QObject ever lives there); a QTimer on the UI thread polls the finished
jobs and calls ``done(result, error)``. Used for reading data to show its task, loading
earlier runs' metrics and reading memory gauges: none of it may block the window.

The worker thread exits as soon as its queue is empty. That matters for training speed: a
thread that ran a parallel torch operation keeps an OpenMP team alive for as long as it
lives, and while more OpenMP threads exist than cores, GNU OpenMP stops spinning between
parallel regions, which slowed the engine thread's steps by a third (measured here).
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer

Callback = Callable[[Any, Exception | None], None]


class Background(QObject):
    def __init__(self, name: str, parent: QObject | None = None, poll_ms: int = 40):
        super().__init__(parent)
        self.name = name
        self._queue: deque[tuple[Future, Callable, tuple]] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._waiting: list[tuple[Future, Callback | None]] = []
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)
        self._closed = False

    def submit(self, fn: Callable, *args, done: Callback | None = None) -> Future:
        future: Future = Future()
        if self._closed:
            future.cancel()
            return future
        with self._lock:
            self._queue.append((future, fn, args))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=f"workbench-{self.name}", daemon=True)
                self._thread.start()
        self._waiting.append((future, done))
        if not self._timer.isActive():
            self._timer.start()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None  # the next submit starts a fresh thread
                    return
                future, fn, args = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the callback on the UI thread
                future.set_exception(exc)

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
        """Drop queued work; a job already running finishes on its own (its thread is a daemon)."""
        if not self._closed:
            self._closed = True
            self._timer.stop()
            with self._lock:
                for future, _, _ in self._queue:
                    future.cancel()
                self._queue.clear()
            self._waiting.clear()
