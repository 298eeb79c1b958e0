"""The one way the window runs work off the UI thread (export, data probes, memory readings,
loading earlier runs; the training engine has its own long-lived bridge,
``ui.training.engine_bridge``).

``start_worker(fn, *args, returned=..., errored=..., finished=...)`` runs ``fn(*args)`` on a
thread of its own and answers on the UI thread, as superqt's ``thread_worker`` does and with
its signal names: ``returned(result)`` or ``errored(exception object)``, then ``finished()``.
An exception never escapes the thread; it arrives as ``errored``. ``quit()`` asks a worker to
stop: the result of a job that was told to quit is dropped (a plain function cannot be cut
off, so an owner that closes calls ``quit()`` and then ``wait()``). ``wait()`` blocks until
the job ends and delivers its answer at once (shutdown, tests).

Why not superqt's ``thread_worker`` itself (checked with superqt 0.9.0 on PySide6 6.11.3; its
signals do arrive on the UI thread with the exception object):
- every superqt worker runs inside ``warnings.catch_warnings()`` and swaps the process-wide
  ``warnings.showwarning``. That is not thread-safe: two overlapping workers (a memory reading
  during a data probe) left ``showwarning`` pointing at a finished worker, so later warnings
  from anywhere went nowhere, and a worker starting during an export steals the export's
  TracerWarnings, which decide between tracing and scripting;
- it runs jobs on ``QThreadPool.globalInstance()``, whose threads linger 30 s after a job. A
  thread that ran a parallel torch operation keeps its OpenMP team while it lives, and while
  more OpenMP threads exist than cores GNU OpenMP stops spinning between parallel regions,
  which slowed the engine thread's steps by a third (measured here). A thread per job ends
  with the job.

The thread touches no widget: it only calls ``fn`` and stores what it returned or raised.
Pass it plain data, copied before the start (settings, a model copy).
"""
from __future__ import annotations

import threading
from functools import partial
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

_live: set[Worker] = set()  # started workers, kept alive until their answer is in (and a moment after)


class Worker(QObject):
    """One job on its own thread; its signals arrive on the thread that created the worker
    (the UI thread)."""

    returned = Signal(object)  # what the job returned (not sent after quit())
    errored = Signal(object)  # the exception the job raised (not sent after quit())
    finished = Signal()  # always last, once
    _ended = Signal()  # from the job's thread: the answer is ready

    def __init__(self, fn: Callable[..., Any], *args, name: str = "job", **kwargs):
        super().__init__()
        self.name = name
        self._call = (fn, args, kwargs)
        self._thread = threading.Thread(target=self._work, name=f"workbench-{name}", daemon=True)
        self._result: Any = None
        self._error: BaseException | None = None
        self._abort = False
        self._delivered = False
        self._ended.connect(self._deliver)  # queued: this object lives on the UI thread

    # ------------------------------------------------------------ UI thread
    def start(self) -> Worker:
        _live.add(self)
        self._thread.start()
        return self

    def quit(self) -> None:
        """Ask the job to stop: its answer is dropped; ``finished`` still comes."""
        self._abort = True

    @property
    def abort_requested(self) -> bool:
        return self._abort

    def is_running(self) -> bool:
        """Started and not yet delivered (the answer may be on its way)."""
        return self._thread.ident is not None and not self._delivered

    def job_running(self) -> bool:
        """Its thread is still alive (the job itself has not returned)."""
        return self._thread.is_alive()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the job ends, then deliver its answer now. False: still running."""
        if self._thread.ident is None:
            return True  # never started
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return False
        self._deliver()
        return True

    def _deliver(self) -> None:
        if self._delivered:
            return
        self._thread.join()  # the job's thread sent its last signal: this returns at once
        self._delivered = True
        result, error, self._result, self._error = self._result, self._error, None, None
        if not self._abort:
            if error is not None:
                self.errored.emit(error)
            else:
                self.returned.emit(result)
        self.finished.emit()
        # an owner may drop its last reference in a slot above: the worker must not be deleted
        # inside its own event, so the registry lets it go on the next turn of the event loop
        QTimer.singleShot(0, partial(_live.discard, self))

    # ------------------------------------------------------------ the job's thread
    def _work(self) -> None:
        fn, args, kwargs = self._call
        self._call = None
        try:
            self._result = fn(*args, **kwargs)
        except Exception as exc:  # handed to the UI thread as ``errored``
            self._error = exc
        finally:
            del fn, args, kwargs
            try:
                self._ended.emit()
            except RuntimeError:  # the worker was deleted without being awaited: nobody to tell
                pass


def start_worker(fn: Callable[..., Any], *args, name: str = "job", returned: Callable | None = None,
                 errored: Callable | None = None, finished: Callable | None = None, **kwargs) -> Worker:
    """Run ``fn(*args, **kwargs)`` off the UI thread, with the slots connected before it starts."""
    worker = Worker(fn, *args, name=name, **kwargs)
    for signal, slot in ((worker.returned, returned), (worker.errored, errored), (worker.finished, finished)):
        if slot is not None:
            signal.connect(slot)
    return worker.start()


def running_workers() -> list[Worker]:
    """Workers whose job has not ended yet (the tests fail any test that leaves one)."""
    return [w for w in list(_live) if w.job_running()]


def await_workers(timeout_s: float = 10.0) -> bool:
    """Ask every worker to quit and wait for them (the application is closing)."""
    workers = list(_live)
    for w in workers:
        w.quit()
    return all(w.wait(timeout_s) for w in workers)
