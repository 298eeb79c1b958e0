"""The training panel: settings, what the data is and whether the model fits it, the run
buttons, progress, and a banner when a run fails.

The panel shows and asks; the dock (ui.training.dock) runs. Reading the data to show its
task happens on a background thread (``TaskProbe``), debounced, and is redone when the data
settings or the model change; a model that does not fit is flagged here, and Start is
refused with the reason, before any run begins.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QToolButton,
                               QVBoxLayout, QWidget)

from workbench.data import bundle as data
from workbench.project.settings import DataSettings
from workbench.training import events as ev
from workbench.errors import LayerError, WorkbenchError
from workbench.model.shapes import fmt
from workbench.progress import Progress

from ui.common import theme
from ui.common.workers import Worker, start_worker
from ui.training.settings_form import SettingsForm

# progress text and bar change at most twice a second, which still reads as live: at 4 Hz, progress took
# ~1.4% of a core during a digits run in the window (of the UI thread's ~7%); at 2 Hz ~1 point less
STATUS_MS = 500
BANNER_LINES = 2  # a failed run's banner wraps up to this many lines, then scrolls: the plots keep their room
LOCK_NOTE = ("During a run the layers are locked (edits wait for the next run); freeze boxes and the "
             "learning rate act on the running model.")


@dataclass
class Fit:
    task: data.Task | None
    problem: str | None  # why the model cannot train on this data (None: it fits)
    error: LayerError | None = None  # the same, when it is about a layer (it may carry a one-click fix)


def _probe(settings: DataSettings, spec, loss: str, cache: dict) -> Fit:
    key = json.dumps(settings.to_dict(), sort_keys=True, default=str)
    task = cache.get(key)
    if task is None:
        task = data.load_data(settings).task  # reads (a part of) the data: background thread only
        cache.clear()
        cache[key] = task
    try:
        data.check_fit(spec, task, None if loss == "auto" else loss)
    except WorkbenchError as exc:
        return Fit(task, str(exc), exc if isinstance(exc, LayerError) else None)
    return Fit(task, None)


class TaskProbe(QObject):
    """Reads the data off the UI thread and checks the model against it."""

    done = Signal(object)  # Fit, or a WorkbenchError when the data cannot be read

    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.result: Fit | WorkbenchError | None = None
        self._cache: dict = {}
        self._job: Worker | None = None
        self._again = False
        self._closed = False
        self._timer = QTimer(self, singleShot=True, interval=300)
        self._timer.timeout.connect(self._run)

    def schedule(self) -> None:
        if not self._closed:
            self._timer.start()

    def _run(self) -> None:
        if self._job is not None:
            self._again = True
            return
        p = self.doc.project
        self._job = start_worker(_probe, p.data, p.model.copy(), p.training.loss, self._cache,
                                 name="data-probe", returned=self._got, errored=self._got, finished=self._ended)

    def _got(self, result) -> None:
        if isinstance(result, Exception) and not isinstance(result, WorkbenchError):
            result = WorkbenchError(f"{type(result).__name__}: {result}")
        self.result = result
        self.done.emit(self.result)

    def _ended(self) -> None:
        self._job = None
        if self._again and not self._closed:
            self._again = False
            self._run()

    def wait(self, timeout_s: float = 20.0) -> None:
        """Finish the pending probe now (tests), and one queued behind it."""
        if self._timer.isActive():
            self._timer.stop()
            self._run()
        while self._job is not None and self._job.wait(timeout_s):
            pass

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """The window is closing: no probe starts again, and the one running is awaited."""
        self._closed = True
        self._timer.stop()
        if self._job is not None:
            self._job.quit()
            self._job.wait(timeout_s)


class Banner(QFrame):
    """A failed run, said across the top of the dock: a wrapped message of at most
    ``BANNER_LINES`` lines (a longer one scrolls inside it, never pushing the plots away), a
    details link (``linkActivated``) and a close button."""

    linkActivated = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent, objectName="failureBanner")
        self.label = QLabel(objectName="bannerText")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                           | Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.label.linkActivated.connect(self.linkActivated.emit)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.label)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.viewport().setAutoFillBackground(False)  # the banner's colour shows through
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.details_button = QToolButton(objectName="bannerDetails", text="Details…")
        self.details_button.setToolTip("The whole error: what a bug report needs")
        self.details_button.clicked.connect(lambda: self.linkActivated.emit("details"))
        self.details_button.setVisible(False)
        self.close_button = QToolButton(objectName="bannerClose", text="\u2715")
        self.close_button.setToolTip("Close this message")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 2, 2)
        row.setSpacing(4)
        row.addWidget(self.scroll, 1)
        row.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignTop)  # in sight however long the message
        row.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.setMaximumHeight(self.label.fontMetrics().lineSpacing() * BANNER_LINES + 6)
        self.setVisible(False)

    def text(self) -> str:
        return self.label.text()

    def setText(self, text: str) -> None:
        self.label.setText(text)
        self.updateGeometry()

    def sizeHint(self):
        hint = super().sizeHint()
        buttons = self.close_button.sizeHint().width() + self.details_button.sizeHint().width()
        width = max(100, self.width() - buttons - 16)
        lines = self.label.heightForWidth(width)
        hint.setHeight(min(self.maximumHeight(), max(lines, self.label.fontMetrics().lineSpacing()) + 8))
        return hint

    def minimumSizeHint(self):
        return self.sizeHint()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self.updateGeometry()  # the wrapped height follows the width


class TrainingPanel(QWidget):
    startRequested = Signal()
    pauseRequested = Signal()
    resumeRequested = Signal()
    stopRequested = Signal()
    resumeFromRequested = Signal()
    stateChanged = Signal(str)  # after set_state: the buttons (and the Training menu) follow

    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.state = "idle"  # idle, starting, running, paused, stopping
        self.form = SettingsForm(doc)
        self.probe = TaskProbe(doc, self)
        self.progress: Progress | None = None
        self._trainable: int | None = None  # parameters trainable, of _params in all
        self._params = 0
        self.epoch_line = ""
        self._last_step: ev.StepEvent | None = None  # newest step not shown yet
        self._status_timer = QTimer(self, singleShot=True, interval=STATUS_MS)
        self._status_timer.timeout.connect(self._show_progress)
        self._build()
        self.form.changed.connect(self._settings_changed)
        doc.changed.connect(self.probe.schedule)
        self.probe.done.connect(self.show_fit)
        self.probe.schedule()
        self.set_state("idle")

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        """The settings side is this widget; ``run_bar`` (buttons, progress) and ``banner``
        (a failed run) are placed across the top of the dock by ui.training.dock."""
        self.start_button = QPushButton("Start", objectName="trainStart")
        self.pause_button = QPushButton("Pause", objectName="trainPause")
        self.pause_button.setToolTip("Pause after the current step; Resume goes on exactly from there (F6)")
        self.stop_button = QPushButton("Stop", objectName="trainStop")
        self.stop_button.setToolTip("Stop after the current step and save a checkpoint to resume from (Shift+F5)")
        self.resume_from_button = QPushButton("Resume from checkpoint…", objectName="trainResumeFrom")
        self.resume_from_button.setToolTip("Continue a stopped run from its last.ckpt or best.ckpt (Ctrl+F5)")
        self.start_button.clicked.connect(self.startRequested.emit)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stopRequested.emit)
        self.resume_from_button.clicked.connect(self.resumeFromRequested.emit)
        self.bar = QProgressBar(objectName="trainProgress")
        self.bar.setRange(0, 200)  # a step of 0.5%: the bar repaints only when it visibly moves
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(160)
        self.status = QLabel("Ready.", objectName="trainStatus")
        self.status.setMinimumWidth(1)
        self.run_bar = QWidget(objectName="runBar")
        row = QHBoxLayout(self.run_bar)
        row.setContentsMargins(2, 0, 2, 0)
        row.setSpacing(4)
        for b in (self.start_button, self.pause_button, self.stop_button, self.resume_from_button):
            row.addWidget(b)
        row.addSpacing(8)
        row.addWidget(self.bar)
        row.addSpacing(6)
        row.addWidget(self.status, 1)
        self.banner = Banner()

        self.task_label = QLabel("Reading the data…", objectName="taskLabel")
        self.task_label.setWordWrap(True)
        self.task_label.setTextFormat(Qt.TextFormat.RichText)
        self.trainable = QLabel("", objectName="trainable")
        self.trainable.setWordWrap(True)
        self.lock_note = QLabel(LOCK_NOTE, objectName="muted")
        self.lock_note.setWordWrap(True)
        inner = QWidget()
        col = QVBoxLayout(inner)
        col.setContentsMargins(4, 2, 4, 2)
        col.setSpacing(5)
        col.addWidget(self.form)
        col.addWidget(self.task_label)
        col.addWidget(self.trainable)
        col.addWidget(self.lock_note)
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # narrow: one column, wrapped text
        self._inner, self._scroll = inner, scroll
        self.setMinimumWidth(160)

    def full_width(self, columns: int = 2) -> int:
        """The width that shows the form in ``columns`` label / field pairs a row, not cut."""
        shown = self.form.columns_shown
        self._set_columns(columns)
        width = self._inner.minimumSizeHint().width() + self._scroll.verticalScrollBar().sizeHint().width() + 4
        self._set_columns(shown)
        return width

    def _set_columns(self, columns: int) -> None:
        self.form.set_columns(columns)
        self._inner.layout().invalidate()  # the column around the form measures it again

    def resizeEvent(self, event) -> None:
        """Narrower than the two-column form needs: one column, so nothing is cut or scrolls sideways."""
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self._set_columns(2 if event.size().width() >= self.full_width(2) else 1)


    # ------------------------------------------------------------ state
    def set_state(self, state: str) -> None:
        self.state = state
        busy = state in ("starting", "running", "paused", "stopping")
        self.start_button.setEnabled(not busy and self.fit_problem() is None)
        self.resume_from_button.setEnabled(not busy)
        self.pause_button.setEnabled(state in ("running", "paused"))
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.stop_button.setEnabled(state in ("starting", "running", "paused"))
        self.stop_button.setText("Stopping…" if state == "stopping" else "Stop")
        self.lock_note.setStyleSheet(f"color: {theme.LOCKED};" if busy else "")
        self.stateChanged.emit(state)

    def toggle_pause(self) -> None:
        """Pause a running run, resume a paused one (the Pause button, F6)."""
        (self.resumeRequested if self.state == "paused" else self.pauseRequested).emit()

    def _settings_changed(self, section: str, _name: str) -> None:
        if section == "data" or _name == "loss":
            self.task_label.setText("Reading the data…")
            self.probe.schedule()

    # ------------------------------------------------------------ data and fit
    def fit_problem(self) -> str | None:
        r = self.probe.result
        if isinstance(r, WorkbenchError):
            return str(r)
        return r.problem if isinstance(r, Fit) else None

    def show_fit(self, result) -> None:
        self.doc.set_fit_error(result.error if isinstance(result, Fit) else None)  # its fix: inspector, status bar
        if isinstance(result, WorkbenchError):
            said = str(result).removeprefix("Data: ")  # "The data cannot be read: Data: the ..." said it twice
            self.task_label.setText(f"<span style='color:{theme.BAD}'>&#9888; The data cannot be read: "
                                    f"{_html(said)}</span>")
        else:
            t = result.task
            kind = (f"{t.num_classes} classes" if t.is_classification else "regression (one number)")
            loss = self.doc.project.training.loss
            text = (f"<b>{_html(t.description)}</b><br>{kind} · input {fmt(t.input_shape)} · "
                    f"loss {t.default_loss if loss == 'auto' else loss}")
            if result.problem:
                text += (f"<br><span style='color:{theme.BAD}'>&#9888; The model does not fit this data: "
                         f"{_html(result.problem)}</span>")
            else:
                text += f"<br><span style='color:{theme.GOOD}'>&#10003; the model fits this data</span>"
            self.task_label.setText(text)
        problem = self.fit_problem()
        self.start_button.setToolTip(f"Cannot start: {problem}" if problem else
                                     "Train the model in the stack on this data (F5)")
        self.set_state(self.state)

    # ------------------------------------------------------------ progress
    def on_started(self, e: ev.StartedEvent) -> None:
        self.progress = Progress(e.epochs, e.steps_per_epoch, start_step=e.start_step, start_epoch=e.start_epoch)
        self.bar.setValue(int(200 * self.progress.fraction()))
        self.status.setText(f"Training on {e.device} · {self.progress.text()}")
        self.show_trainable(e.trainable, e.params)

    def on_steps(self, last: ev.StepEvent, steps: list[ev.StepEvent]) -> None:
        if self.progress is None:
            return
        for e in steps[-3:]:
            self.progress.on_step(e.step, e.epoch, e.samples_per_s)
        self._last_step = last
        if not self._status_timer.isActive():  # otherwise the timer shows the newest step when it fires
            self._show_progress()

    def _show_progress(self) -> None:
        """Show the newest step, then wait STATUS_MS before showing another: a label's new text
        relayouts the run bar, and at 15 deliveries a second that cost the training ~2%."""
        last, self._last_step = self._last_step, None
        if last is None or self.progress is None:
            return
        value = int(200 * self.progress.fraction())
        if value != self.bar.value():
            self.bar.setValue(value)
        if self.state == "running":
            self.status.setText(f"{self.progress.text()} · lr {last.lr:.3g}")
        self._status_timer.start()

    def on_epoch(self, e: ev.EpochEvent) -> None:
        if self.progress is not None:
            self.progress.on_epoch(e.epoch, e.seconds)
        acc = f", val acc {e.val_acc:.3f}" if e.val_acc is not None else ""
        self.epoch_line = f"epoch {e.epoch}: loss {e.train_loss:.4f}{acc}"
        self._refresh_trainable()

    def show_trainable(self, trainable: int, total: int | None = None) -> None:
        self._params = total if total is not None else (self._params if self._trainable is not None else trainable)
        self._trainable = trainable
        self._refresh_trainable()

    def _refresh_trainable(self) -> None:
        parts = []
        if self._trainable is not None:
            parts.append(f"<b>{self._trainable:,}</b> of {self._params:,} parameters trainable")
        if self.epoch_line:
            parts.append(self.epoch_line)
        self.trainable.setText(" · ".join(parts))

    def show_failure(self, message: str, has_detail: bool) -> None:
        details = " <a href='details'>Show the error details</a>" if has_detail else ""
        said = _html(message.rstrip().rstrip("."))
        self.banner.setText(f"<b>Training failed:</b> {said}. The model and the project are as they were: change "
                            f"what the message says, then press Start again.{details}")
        self.banner.details_button.setVisible(has_detail)
        self.banner.setVisible(True)

    def clear_run(self) -> None:
        """Another project: nothing of the last run stays (status, progress, trainable count,
        epoch line, failure)."""
        self._status_timer.stop()
        self._last_step = None
        self.progress = None
        self._trainable, self._params = None, 0
        self.epoch_line = ""
        self.bar.setValue(0)
        self.status.setText("Ready.")
        self.status.setToolTip("")
        self.trainable.setText("")
        self.hide_failure()

    def hide_failure(self) -> None:
        self.banner.setVisible(False)

    def shutdown(self) -> None:
        self.form.shutdown()
        self.probe.shutdown()


def _html(text: str) -> str:
    from html import escape

    return escape(text)
