"""The run folder's lock seen from the window (issue 12, item 7): a run that cannot start because
another run (the CLI, another window) uses its folder says so, naming the folder and the pid; a
run stopped from the window, or a window closed mid-run, lets go of the folder."""
from __future__ import annotations

from dataclasses import replace

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ui.main_window import MainWindow
from ui.training import dock as training_dock
from window_helpers import text_of
from workbench.project import templates
from workbench.training import checkpoint, events as ev
from workbench.training.run_lock import LOCK_FILE, RunLock

ROOT = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time\n"
        "from workbench.training.run_lock import RunLock\n"
        "lock = RunLock.acquire(sys.argv[1])  # held while referenced\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n")


@pytest.fixture(autouse=True)
def never_block_on_close(monkeypatch):
    monkeypatch.setattr(training_dock, "ask_stop", lambda parent: True)


def short_runs(window, path: Path, epochs: int):
    project = window.doc.project
    project.path = path
    project.training = replace(project.training, epochs=epochs, log_every=2, tensorboard=False)
    window.training.panel.probe.wait()
    return window.training


def wait_end(qtbot, dock, timeout=90_000):
    qtbot.waitUntil(lambda: dock.run is None, timeout=timeout)
    return dock.last_end


def steps_seen(dock) -> int:
    return dock.series.n_steps if dock.series is not None else 0


def test_a_folder_held_by_another_process_is_refused_then_taken_over_after_it_is_killed(qtbot, window, tmp_path,
                                                                                        monkeypatch):
    said = []
    real_say = window.say
    monkeypatch.setattr(window, "say", lambda text, ms=8000: (said.append(text), real_say(text, ms)))
    trainer = short_runs(window, tmp_path / "digits.wbproj", epochs=1)
    trainer.start()
    first = wait_end(qtbot, trainer)
    assert isinstance(first, ev.FinishedEvent)
    folder = Path(first.run_dir)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "locked"  # `workbench train --out` that folder, say
        window.doc.project.training = replace(window.doc.project.training, epochs=2)
        trainer.start(resume_from=str(folder / checkpoint.LAST))
        end = wait_end(qtbot, trainer)
        assert isinstance(end, ev.FailedEvent) and end.phase == "setup"
        banner = text_of(trainer.panel.banner)
        assert trainer.panel.banner.isVisible()
        assert f"the run folder {folder} is in use by another training run (pid {holder.pid}" in banner
        assert any(f"pid {holder.pid}" in text for text in said)  # the status bar says it too
        assert not window.doc.edit_lock and trainer.panel.start_button.isEnabled()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
    said.clear()
    trainer.start(resume_from=str(folder / checkpoint.LAST))
    end = wait_end(qtbot, trainer)
    assert isinstance(end, ev.FinishedEvent) and end.run_dir == str(folder)
    assert any(f"took over the lock of {folder}" in text and f"pid {holder.pid}" in text for text in said), said
    assert not (folder / LOCK_FILE).exists()


def test_two_windows_on_one_folder_and_every_window_way_out_lets_go(qtbot, window, tmp_path):
    trainer = short_runs(window, tmp_path / "digits.wbproj", epochs=500)
    trainer.start()
    qtbot.waitUntil(lambda: steps_seen(trainer) >= 1, timeout=60_000)
    folder = Path(trainer.run.engine.run_dir)
    qtbot.waitUntil(lambda: (folder / checkpoint.LAST).exists(), timeout=90_000)

    other = MainWindow(project=templates.load("digits_cnn"))
    qtbot.addWidget(other)
    second = short_runs(other, tmp_path / "digits.wbproj", epochs=500)
    second.start(resume_from=str(folder / checkpoint.LAST))  # the second window resumes the running one's run
    end = wait_end(qtbot, second)
    assert isinstance(end, ev.FailedEvent) and end.phase == "setup"
    assert f"{folder} is in use by another training run (pid {os.getpid()}, this process" in \
        text_of(second.panel.banner)
    assert trainer.is_running()  # the first run never noticed

    trainer.stop()  # stopped from the window: the folder is free again
    assert isinstance(wait_end(qtbot, trainer), ev.StoppedEvent)
    assert not (folder / LOCK_FILE).exists()

    second.start(resume_from=str(folder / checkpoint.LAST))
    qtbot.waitUntil(lambda: steps_seen(second) >= 2, timeout=60_000)
    assert (folder / LOCK_FILE).exists()
    assert other.close()  # closing the window mid-run stops the run and lets go
    assert second.run is None and not (folder / LOCK_FILE).exists()
    RunLock.acquire(folder).release()
