"""Training > Run Distributed...: the exact ``torchrun`` command for the saved project, a local
launch through QProcess, and the run's metrics.jsonl tailed into the live plots.

The processes read the project from its file, so the dialog wants it saved first (and
offers to). One node: ``torchrun --standalone`` on a free local port, launchable here. Several
nodes: the c10d rendezvous command to run on each node (copy it; the dialog does not log in
anywhere). The launch is a QProcess (fork + exec of torchrun, no Python fork); its output
shows below. Stop sends SIGTERM to torchrun, which forwards it to every process: they stop
together at the next loss read-out and rank 0 saves a checkpoint; if torchrun has not ended
``KILL_AFTER_MS`` later (it kills its workers itself after 30 s) it is killed.

The dialog stays alive while hidden, so a run outlives closing it; the window asks before it
closes over a running job and stops it.
"""
from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (QComboBox, QDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QMessageBox,
                               QPlainTextEdit, QPushButton, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from workbench.training import distributed
from workbench.project import code_refs
from workbench.project import project_file as projects
from workbench.errors import WorkbenchError

from ui.training.plots.metrics_tail import MetricsTail, SeriesFeed
from ui.training.plots.live_plots import LivePlots

KILL_AFTER_MS = 45_000
MAX_OUTPUT_LINES = 5000
DEVICES = {"": "as the project says", "cpu": "cpu (gloo)", "cuda": "cuda, one GPU per process (nccl)"}


def launcher() -> list[str] | None:
    """How this installation starts torchrun: the torchrun script beside this Python, else
    ``python -m torch.distributed.run``; None in a bundled app (no Python to start)."""
    if getattr(sys, "frozen", False):
        return None
    script = Path(sys.executable).with_name("torchrun")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "torch.distributed.run"]


def default_processes() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 2


def ask_stop(parent) -> bool:
    """Ask before closing the window over a running distributed job (tests replace this)."""
    return QMessageBox.question(parent, "Distributed run going on",
                                "A distributed training run is going on. Stop it (with a checkpoint) and close?",
                                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel) \
        == QMessageBox.StandardButton.Yes


class DistributedDialog(QDialog):
    ended = Signal(int)  # torchrun's exit code

    def __init__(self, window, parent=None):
        super().__init__(parent or window)
        self.main_window, self.doc = window, window.doc
        self.setWindowTitle("Run Distributed")
        self.process: QProcess | None = None
        self.tail: MetricsTail | None = None
        self.run_dir: Path | None = None
        self.out_dir: Path | None = None
        self.exit_code: int | None = None
        self._build()
        self.doc.pathChanged.connect(self.refresh)
        self.doc.undo_stack.cleanChanged.connect(lambda *_: self.refresh())
        self.refresh()

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        self.where = QLabel(objectName="ddpProject", wordWrap=True)
        self.save_button = QPushButton("Save Project", objectName="ddpSave")
        self.save_button.setToolTip("The processes read the project from its file: save it first")
        self.save_button.clicked.connect(self._save)
        top = QHBoxLayout()
        top.addWidget(self.where, 1)
        top.addWidget(self.save_button)

        self.nproc = QSpinBox(objectName="ddpProcesses", minimum=1, maximum=256, value=default_processes())
        self.nproc.setToolTip("One process per GPU; on CPU, each process trains on its share of every batch")
        self.nnodes = QSpinBox(objectName="ddpNodes", minimum=1, maximum=4096, value=1)
        self.nnodes.setToolTip("Machines taking part; each runs the same command")
        self.endpoint = QLineEdit(objectName="ddpEndpoint", placeholderText="host:29400")
        self.endpoint.setToolTip("Rendezvous: host:port of one node that every node can reach (torchrun "
                                 "--rdzv-endpoint)")
        self.run_id = QLineEdit(objectName="ddpRunId")
        self.run_id.setToolTip("A name shared by the nodes of one job (torchrun --rdzv-id)")
        self.device = QComboBox(objectName="ddpDevice")
        for key, text in DEVICES.items():
            self.device.addItem(text, key)
        self.batch = QLabel(objectName="ddpBatch", wordWrap=True)
        form = QFormLayout()
        form.addRow("Processes per node", self.nproc)
        form.addRow("Nodes", self.nnodes)
        form.addRow("Rendezvous endpoint", self.endpoint)
        form.addRow("Run id", self.run_id)
        form.addRow("Device", self.device)
        form.addRow("Global batch", self.batch)
        for w in (self.nproc, self.nnodes):
            w.valueChanged.connect(self.refresh)
        for w in (self.endpoint, self.run_id):
            w.textChanged.connect(self.refresh)
        self.device.currentIndexChanged.connect(self.refresh)

        self.command_title = QLabel(objectName="ddpCommandTitle")
        self.command = QPlainTextEdit(objectName="ddpCommand", readOnly=True)
        self.command.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.command.setMaximumHeight(70)
        self.copy_button = QPushButton("Copy", objectName="ddpCopy")
        self.copy_button.setToolTip("Copy the command to the clipboard")
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.command.toPlainText()))
        self.launch_button = QPushButton("Launch Here", objectName="ddpLaunch")
        self.launch_button.setToolTip("Start this command on this machine and follow its metrics below")
        self.launch_button.clicked.connect(self.launch)
        self.stop_button = QPushButton("Stop", objectName="ddpStop", enabled=False)
        self.stop_button.setToolTip("Every process stops at its next loss read-out; rank 0 saves a checkpoint")
        self.stop_button.clicked.connect(self.stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addStretch(1)
        buttons.addWidget(self.launch_button)
        buttons.addWidget(self.stop_button)
        self.status = QLabel(objectName="ddpStatus", wordWrap=True)

        self.output = QPlainTextEdit(objectName="ddpOutput", readOnly=True)
        self.output.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.output.setMaximumBlockCount(MAX_OUTPUT_LINES)
        self.output.setPlaceholderText("torchrun's output (all processes) appears here")
        self.plots = LivePlots()
        self.plots.message.connect(self.status.setText)
        self.feed = SeriesFeed(self.plots)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.output)
        split.addWidget(self.plots)
        split.setSizes([160, 320])

        upper = QWidget()
        layout = QVBoxLayout(upper)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(form)
        layout.addWidget(self.command_title)
        layout.addWidget(self.command)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        root = QVBoxLayout(self)
        root.addWidget(upper)
        root.addWidget(split, 1)
        self.resize(860, 760)

    # ------------------------------------------------------------ the command
    def project_path(self) -> Path | None:
        return self.doc.path

    def ready(self) -> bool:
        """The file on disk is what the processes will train: saved, and no edits since."""
        return self.doc.path is not None and not self.doc.modified

    def argv(self) -> list[str]:
        """The exact command: what Launch Here runs, and what to run on each node."""
        path = self.project_path()
        if self.out_dir is None:
            self.out_dir = self._new_out_dir()
        return distributed.torchrun_command(
            str(path) if path else "PROJECT.wbproj", self.nproc.value(), nnodes=self.nnodes.value(),
            endpoint=self.endpoint.text(), run_id=self.run_id.text() or self._default_id(), out=str(self.out_dir),
            device=self.device.currentData() or None, launcher=launcher() or ["torchrun"]) + (
            ["--trust-code"] if code_refs.files(self.doc.project) else [])  # trusted when the window opened it

    def command_text(self) -> str:
        return shlex.join(self.argv())

    def _default_id(self) -> str:
        return f"{self.doc.path.stem if self.doc.path else 'workbench'}-{time.strftime('%H%M%S')}"

    def _new_out_dir(self) -> Path:
        base = self.doc.project.run_folder() / f"ddp-{time.strftime('%Y%m%d-%H%M%S')}"
        out, n = base, 1
        while out.exists():
            n += 1
            out = base.with_name(f"{base.name}-{n}")
        return out

    def refresh(self) -> None:
        running = self.is_running()
        multi = self.nnodes.value() > 1
        self.endpoint.setEnabled(multi)
        self.run_id.setEnabled(multi)
        if not self.run_id.text() and multi:
            self.run_id.setText(self._default_id())
        path = self.doc.path
        if path is None:
            self.where.setText("This project has not been saved. The processes read the project from its file: "
                               "save it to get a command.")
        elif self.doc.modified:
            self.where.setText(f"{path} has unsaved changes: the processes would train the saved version. "
                               "Save first.")
        else:
            self.where.setText(f"Project: {path}")
        self.save_button.setVisible(not self.ready())
        per = self.doc.project.data.batch_size
        world = self.nproc.value() * self.nnodes.value()
        self.batch.setText(f"{per} per process (data.batch_size) x {world} process{'es' if world > 1 else ''} = "
                           f"{per * world} examples per optimiser step")
        try:
            text = self.command_text() if self.ready() else ""
            problem = ""
        except WorkbenchError as exc:
            text, problem = "", str(exc)
        self.command.setPlainText(text)
        self.command_title.setText(
            (f"Run this on each of the {self.nnodes.value()} nodes (the same folders must exist on every node; "
             "rank 0 writes the run folder):" if multi else "Command (runs here with Launch Here):")
            if text else problem or "Save the project to get the command.")
        self.copy_button.setEnabled(bool(text))
        local = launcher() is not None
        self.launch_button.setEnabled(bool(text) and not multi and not running and local)
        self.launch_button.setToolTip("Start this command on this machine and follow its metrics below" if local else
                                      "This bundled app has no Python to start torchrun with: copy the command "
                                      "and run it where Model Workbench is installed with pip")
        self.stop_button.setEnabled(running)
        for w in (self.nproc, self.nnodes, self.device):
            w.setEnabled(not running)

    def _save(self) -> None:
        if self.main_window.save():
            self.out_dir = None
            self.refresh()

    # ------------------------------------------------------------ running here
    def is_running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def launch(self) -> bool:
        if self.is_running() or not self.ready() or self.nnodes.value() > 1 or launcher() is None:
            return False
        argv = self.argv()
        self.run_dir, self.exit_code = self.out_dir, None
        self.output.clear()
        self.output.appendPlainText("$ " + shlex.join(argv))
        proc = QProcess(self)
        proc.setProgram(argv[0])
        proc.setArguments(argv[1:])
        proc.setWorkingDirectory(str(self.doc.path.parent))
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        proc.setProcessEnvironment(env)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        params = QProcess.UnixProcessParameters()
        params.flags = QProcess.UnixProcessFlag.CreateNewSession  # Ctrl-C in the app's terminal is not for it
        proc.setUnixProcessParameters(params)
        proc.readyReadStandardOutput.connect(self._read_output)
        proc.finished.connect(self._finished)
        proc.errorOccurred.connect(self._error)
        self.process = proc
        self.feed = SeriesFeed(self.plots)
        self.tail = MetricsTail(self.run_dir, self)
        self.tail.rows.connect(self.feed.add)
        proc.start()
        self.tail.start()
        self.status.setText(f"Running {self.nproc.value()} processes; run folder {self.run_dir}")
        self.refresh()
        return True

    def stop(self) -> None:
        if not self.is_running():
            return
        self.status.setText("Stopping: every process stops at its next loss read-out, rank 0 saves a checkpoint")
        self.process.terminate()  # SIGTERM: torchrun forwards it to its workers
        proc = self.process
        QTimer.singleShot(KILL_AFTER_MS, self, lambda: self._kill(proc))  # dropped if the dialog is gone

    def _kill(self, proc: QProcess) -> None:
        if proc is self.process and self.is_running():
            self.output.appendPlainText(f"[torchrun did not end within {KILL_AFTER_MS // 1000} s: killed]")
            proc.kill()

    def _read_output(self) -> None:
        data = bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        # progress bars redraw with \r: keep the last state of each line
        text = "\n".join(line.rsplit("\r", 1)[-1] for line in data.replace("\x1b[K", "").split("\n"))
        self.output.moveCursor(self.output.textCursor().MoveOperation.End)
        self.output.insertPlainText(text)
        self.output.ensureCursorVisible()

    def _error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.status.setText(f"Could not start {self.process.program()}: {self.process.errorString()}")
            self._done(-1)

    def _finished(self, code: int, status) -> None:
        if self.process is not None and self.process.bytesAvailable():
            self._read_output()
        crashed = status == QProcess.ExitStatus.CrashExit
        self._done(-1 if crashed else code)

    def _done(self, code: int) -> None:
        if self.exit_code is not None:
            return
        self.exit_code = code
        if self.tail is not None:
            self.tail.stop()
        last = self.feed.last or {}
        kind = last.get("event")
        if kind == "finished":
            text = f"Finished {last.get('epochs')} epochs in {last.get('seconds', 0):.1f} s"
            if last.get("best_val_acc") is not None:
                text += f": best validation accuracy {last['best_val_acc']:.4f} (epoch {last.get('best_epoch')})"
        elif kind == "stopped":
            text = f"Stopped at step {last.get('step')}; checkpoint {last.get('checkpoint')}"
        elif kind == "failed":
            text = f"Failed: {last.get('message')}"
        else:
            text = "torchrun ended before training started: see its output above"
        self.status.setText(f"{text} (torchrun exit code {code}; run folder {self.run_dir})")
        self._take_records()
        self.out_dir = None  # the next launch gets a fresh folder
        self.refresh()
        self.ended.emit(code)

    def _take_records(self) -> None:
        """Rank 0 added the run to the project file: show it in the open project too."""
        path = self.doc.path
        if path is None:
            return
        try:
            on_disk = projects.load(path).runs
        except WorkbenchError:
            return
        self.doc.add_runs(on_disk)

    def shutdown(self, wait_ms: int = KILL_AFTER_MS) -> None:
        """Stop a running job and wait for it (the window is closing)."""
        if self.is_running():
            self.stop()
            if not self.process.waitForFinished(wait_ms):
                self.process.kill()
                self.process.waitForFinished(5000)
        if self.tail is not None:
            self.tail.cancel()


class DistributedMenu(QObject):
    """Training > Run Distributed...: one dialog per window, made on first use and kept while
    hidden (a run outlives closing it); the window asks before closing over a running job."""

    def __init__(self, window):
        super().__init__(window)
        self._window = window
        self.dialog: DistributedDialog | None = None
        self.action = QAction("Run &Distributed...", window)
        self.action.setStatusTip("Train this project on several processes or machines with torchrun (DDP)")
        self.action.triggered.connect(lambda *_: self.show_dialog())
        training = window.menu("training")
        training.addSeparator()
        training.addAction(self.action)
        window.add_close_check(self.may_close)
        window.add_shutdown_hook(self.shutdown)

    def show_dialog(self) -> DistributedDialog:
        if self.dialog is None:
            self.dialog = DistributedDialog(self._window)
        self.dialog.refresh()
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def may_close(self) -> bool:
        if self.dialog is None or not self.dialog.is_running():
            return True
        if not ask_stop(self._window):
            return False
        self.dialog.shutdown()
        return True

    def shutdown(self) -> None:
        if self.dialog is not None:
            self.dialog.shutdown()


def install(window) -> DistributedMenu:
    """Training > Run Distributed... in ``window`` (after the Training menu exists)."""
    return DistributedMenu(window)
