"""The one background mechanism (ui.common.workers): jobs run off the UI thread, answers come
back on it as signals (an exception as an object, never a crash), quit() drops an answer,
and closing the window mid-job stops and awaits it."""
from __future__ import annotations

import threading
import time
import warnings

from ui.common import workers
from ui.common.workers import Worker, start_worker
from ui.training import panel as panel_module


def test_the_job_runs_off_the_ui_thread_and_returns_on_it(qtbot):
    ran_on, answered_on = [], []

    def job(a, b=0):
        ran_on.append(threading.current_thread())
        return a + b

    worker = Worker(job, 40, b=2, name="sum")
    worker.returned.connect(lambda v: answered_on.append((v, threading.current_thread())))
    with qtbot.waitSignals([worker.returned, worker.finished], order="strict", timeout=5000):
        worker.start()
    assert ran_on[0] is not threading.main_thread() and ran_on[0].name == "workbench-sum"
    assert answered_on == [(42, threading.main_thread())]
    assert not worker.is_running() and not workers.running_workers()


def test_an_exception_arrives_as_the_errored_signal_with_the_exception_object(qtbot):
    problem = ValueError("the data has no labels")

    def job():
        raise problem

    returned, errors = [], []
    worker = Worker(job)
    worker.returned.connect(returned.append)
    worker.errored.connect(errors.append)
    with qtbot.waitSignals([worker.errored, worker.finished], order="strict", timeout=5000):
        worker.start()
    error, = errors
    assert error is problem and error.__traceback__ is not None  # the object itself, traceback included
    assert returned == []


def test_start_worker_connects_before_it_starts_so_a_fast_job_is_never_missed(qtbot):
    seen = []
    worker = start_worker(lambda: "quick", returned=seen.append, errored=seen.append,
                          finished=lambda: seen.append("finished"))
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=5000)
    assert seen == ["quick", "finished"] and not worker.is_running()


def test_wait_delivers_at_once_and_quit_drops_the_answer(qtbot):
    gate = threading.Event()
    seen = []
    worker = start_worker(gate.wait, 5, returned=seen.append, finished=lambda: seen.append("finished"))
    assert worker.is_running() and workers.running_workers() == [worker]
    assert not worker.wait(0.05)  # still running: wait says so instead of blocking
    gate.set()
    assert worker.wait(5) and seen == [True, "finished"]  # delivered inside wait(), no event loop needed

    seen.clear()
    gate.clear()
    worker = start_worker(gate.wait, 5, returned=seen.append, finished=lambda: seen.append("finished"))
    worker.quit()
    gate.set()
    assert worker.wait(5) and seen == ["finished"]
    qtbot.wait(20)  # a queued notice of the ended job arrives after wait() delivered it: nothing twice
    assert seen == ["finished"]


def test_a_worker_leaves_the_process_warning_machinery_alone(qtbot):
    """superqt's worker swaps warnings.showwarning in every job; overlapping jobs left it swapped."""
    before = warnings.showwarning
    first, second = threading.Event(), threading.Event()
    a = start_worker(first.wait, 5)
    b = start_worker(second.wait, 5)
    first.set()
    assert a.wait(5)
    second.set()
    assert b.wait(5)
    assert warnings.showwarning is before


def test_closing_the_window_mid_probe_awaits_the_job_and_drops_its_answer(qtbot, window, monkeypatch):
    probe = window.training.panel.probe
    probe.wait()
    started, shown = threading.Event(), []

    def slow_probe(*args):
        started.set()
        time.sleep(0.5)
        return panel_module.Fit(None, "never shown")

    monkeypatch.setattr(panel_module, "_probe", slow_probe)
    probe.done.connect(shown.append)
    probe.schedule()
    qtbot.waitUntil(started.is_set, timeout=5000)
    assert workers.running_workers()
    assert window.close()
    assert not workers.running_workers()  # closing waited for the job; the answer was dropped
    assert shown == []


def test_memory_polling_stops_when_the_window_closes(qtbot, window, monkeypatch):
    from workbench.training import memory

    assert window.close()
    polls = []
    monkeypatch.setattr(memory, "read", lambda *a: polls.append(1))
    qtbot.wait(1200)  # two polling periods
    assert polls == [] and not workers.running_workers()
