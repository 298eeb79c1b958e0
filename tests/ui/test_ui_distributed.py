"""Training > Run Distributed...: the command for the saved project, saving first, a real
local 2-process launch (gloo on CPU) whose metrics reach the live plots, and Stop."""
from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest
from PySide6.QtGui import QGuiApplication

from ui.distributed import dialog as dd
from ui import project_io
from workbench.training import checkpoint
from workbench.project import templates


def saved_project(tmp_path: Path, project: dict, epochs: int = 2) -> Path:
    spec = json.loads(json.dumps(project))
    spec["training"]["epochs"] = epochs
    path = tmp_path / "wine ddp.wbproj"  # a space: the command must quote it
    path.write_text(json.dumps(spec))
    return path


def open_window(qtbot, path=None, project=None):
    from ui.main_window import MainWindow

    w = MainWindow(str(path) if path else None, project=project)
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture(autouse=True)
def _stop_left_over_runs():
    """A failing test must not leave torchrun running: stop whatever a dialog started."""
    opened.clear()
    yield
    for dialog in opened:
        dialog.shutdown(20_000)


opened: list = []


def open_dialog(window) -> dd.DistributedDialog:
    menu = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "Training")
    action = next(a for a in menu.actions() if a.text().replace("&", "") == "Run Distributed...")
    action.trigger()
    dialog = window.distributed.dialog
    assert dialog is not None and dialog.isVisible()
    opened.append(dialog)
    return dialog


def launch_long_run(qtbot, tmp_path, project):
    """A 2-process run of a 1000-epoch project, launched from the dialog: (window, dialog, run folder)."""
    window = open_window(qtbot, saved_project(tmp_path, project, epochs=1000))
    dialog = open_dialog(window)
    dialog.nproc.setValue(2)
    dialog.launch_button.click()
    return window, dialog, dialog.run_dir


def workers_of(run_dir: Path) -> list[int]:
    """Processes whose command line names this run folder (torchrun and its workers)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(run_dir) in cmd and state != "Z":
            found.append(int(proc.name))
    return found


def test_the_command_for_a_saved_project(qtbot, isolated_settings, tmp_path, wine_ddp_project):
    path = saved_project(tmp_path, wine_ddp_project)
    window = open_window(qtbot, path)
    dialog = open_dialog(window)
    dialog.nproc.setValue(2)
    argv = shlex.split(dialog.command.toPlainText())
    assert argv == [*dd.launcher(), "--standalone", "--nproc-per-node=2", "-m", "workbench", "train", str(path),
                    "--out", str(dialog.out_dir)]
    assert dialog.out_dir.parent == tmp_path / "wine ddp.runs"
    assert dialog.launch_button.isEnabled()
    assert "8 per process (data.batch_size) x 2 processes = 16" in dialog.batch.text()
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == dialog.command.toPlainText()

    dialog.nnodes.setValue(3)
    dialog.endpoint.setText("node1:29400")
    argv = shlex.split(dialog.command.toPlainText())
    assert "--standalone" not in argv
    for part in ("--nnodes=3", "--nproc-per-node=2", "--rdzv-backend=c10d", "--rdzv-endpoint=node1:29400"):
        assert part in argv
    assert any(a.startswith("--rdzv-id=wine ddp-") for a in argv)
    assert "each of the 3 nodes" in dialog.command_title.text()
    assert not dialog.launch_button.isEnabled()  # other nodes are the user's to start
    assert "x 6 processes = 48" in dialog.batch.text()
    dialog.endpoint.setText("")
    assert dialog.command.toPlainText() == "" and "rendezvous endpoint" in dialog.command_title.text()
    dialog.close()


def test_an_unsaved_project_is_saved_first(qtbot, isolated_settings, tmp_path, monkeypatch):
    window = open_window(qtbot, project=templates.load("tabular_mlp"))
    dialog = open_dialog(window)
    assert dialog.command.toPlainText() == ""
    assert not dialog.launch_button.isEnabled() and not dialog.copy_button.isEnabled()
    assert dialog.save_button.isVisible() and "not been saved" in dialog.where.text()
    target = tmp_path / "saved.wbproj"
    monkeypatch.setattr(project_io, "choose_save_path", lambda *a: str(target))
    dialog.save_button.click()
    assert target.is_file()
    assert str(target) in shlex.split(dialog.command.toPlainText())
    assert not dialog.save_button.isVisible()
    window.add_layer("ReLU")  # an edit not yet saved
    assert window.doc.modified
    assert dialog.command.toPlainText() == "" and "unsaved changes" in dialog.where.text()
    dialog.close()


def test_a_local_two_process_run_reaches_the_plots_and_ends(qtbot, isolated_settings, tmp_path, wine_ddp_project):
    path = saved_project(tmp_path, wine_ddp_project)
    window = open_window(qtbot, path)
    dialog = open_dialog(window)
    dialog.nproc.setValue(2)
    with qtbot.waitSignal(dialog.ended, timeout=150_000) as ended:
        dialog.launch_button.click()
        assert dialog.is_running() and dialog.stop_button.isEnabled()
    run_dir = dialog.run_dir
    assert ended.args == [0], dialog.output.toPlainText()[-3000:]
    series = dialog.plots.series
    assert series is dialog.feed.series and series.n_steps == 18  # 2 epochs x 9 global batches of 16
    assert list(series.epoch_no.view()) == [1.0, 2.0]
    assert series.val_acc.last() > 0.5
    out = dialog.output.toPlainText()
    assert out.count("finished 2 epochs") == 1 and "global batch 16 = 8 per process x 2" in out
    assert dialog.status.text().startswith("Finished 2 epochs")
    record = next(r for r in window.doc.project.runs if r["dir"] == str(run_dir))
    assert record["processes"] == 2 and record["weights"][0] == record["weights"][1]
    assert str(run_dir) in [o.key for o in window.training.plots.overlays]  # shown at once, not after reopening
    assert not workers_of(run_dir)
    assert dialog.launch_button.isEnabled() and dialog.out_dir != run_dir  # ready for another run
    dialog.close()


def test_stop_ends_every_process_with_a_checkpoint(qtbot, isolated_settings, tmp_path, wine_ddp_project):
    window, dialog, run_dir = launch_long_run(qtbot, tmp_path, wine_ddp_project)
    qtbot.waitUntil(lambda: dialog.feed.series is not None and len(dialog.feed.series.epoch_no) >= 1,
                    timeout=120_000)
    assert len(workers_of(run_dir)) == 3  # torchrun and two workers
    t0 = time.monotonic()
    with qtbot.waitSignal(dialog.ended, timeout=60_000):
        dialog.stop_button.click()
    print(f"stopped {time.monotonic() - t0:.1f} s after Stop")
    assert dialog.feed.last["event"] == "stopped", dialog.output.toPlainText()[-3000:]
    saved = checkpoint.load(run_dir / checkpoint.LAST)
    assert saved["position"]["step"] == dialog.feed.last["step"] and saved["world_size"] == 2
    assert dialog.status.text().startswith("Stopped at step")
    assert not workers_of(run_dir)
    dialog.close()


def test_closing_the_window_over_a_run_stops_it_first(qtbot, isolated_settings, tmp_path, monkeypatch,
                                                      wine_ddp_project):
    window, dialog, run_dir = launch_long_run(qtbot, tmp_path, wine_ddp_project)
    qtbot.waitUntil(lambda: dialog.feed.series is not None and dialog.feed.series.n_steps > 0, timeout=120_000)
    monkeypatch.setattr(dd, "ask_stop", lambda parent: False)
    assert not window.close() and dialog.is_running()  # "Cancel": the window and the run stay
    monkeypatch.setattr(dd, "ask_stop", lambda parent: True)
    assert window.close()
    assert not dialog.is_running() and dialog.exit_code is not None
    assert dialog.feed.last["event"] == "stopped" and (run_dir / checkpoint.LAST).is_file()
    assert not workers_of(run_dir)
