"""The Training dock: the panel, live plots, evaluation and memory gauges around one run at
a time, wired into the window.

``ui.training.menu.install`` puts it in the window with its menu and hooks: a close check
that asks before stopping a run (``confirm_close``), the trained model for Export
(``provide_model``) and the weights loaded in the export dialog (``weights_loaded``: they
become the model Export uses next).

During a run the document's structure is locked (``doc.set_edit_lock``); freeze toggles
reach the engine between two steps and the learning-rate field changes the running rate.
The run record (with its settings and freezes) is added to the project, which then counts
as modified so the history is saved with it.
"""
from __future__ import annotations

import copy
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox, QSplitter, QTabWidget, QVBoxLayout, QWidget

from workbench.model import build
from workbench.model.spec import weights_key
from workbench.training import checkpoint, events as ev
from workbench.errors import WorkbenchError

from ui.insight.health_view import AlertBanners, HealthView
from ui.training.plots import overlay as run_overlay
from ui.common.workers import Worker, start_worker
from ui.training.engine_bridge import TrainingRun, run_settings, warm_up_imports
from ui.training.evaluation import EvaluationPanel
from ui.training.gauges import MemoryGauges
from ui.training.plots.series import RunSeries
from ui.training.plots.live_plots import LivePlots
from ui.training.panel import TrainingPanel

LOCK_REASON = "training runs"


# ---------------------------------------------------------------- questions (tests replace these)
def ask_stop(parent) -> bool:
    box = QMessageBox(QMessageBox.Icon.Question, "Training is running",
                      "A training run is going on. Stop it first?", parent=parent)
    box.setInformativeText("It stops after the current step and saves a checkpoint you can resume from.")
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
    box.button(QMessageBox.StandardButton.Yes).setText("Stop training")
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    return box.exec() == QMessageBox.StandardButton.Yes


def choose_checkpoint(parent, folder: str) -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, "Resume from checkpoint", folder,
                                          "Checkpoints (*.ckpt);;All files (*)")
    return path or None


def show_details(parent, message: str, detail: str) -> None:
    box = QMessageBox(QMessageBox.Icon.Critical, "Training failed", message, parent=parent)
    box.setDetailedText(detail)
    box.open()


def load_overlay_series(keys: list[str]) -> dict:
    """Earlier runs' curves by run folder (a worker thread); None for one that cannot be read."""
    loaded = {}
    for key in keys:
        try:
            loaded[key] = run_overlay.load_series(key)
        except Exception:  # a damaged run folder shows no overlay and hides none of the others
            loaded[key] = None
    return loaded


PLOTS_WIDE = 560  # the plots' width below which the settings fold into one column

class TrainingDock(QWidget):
    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.main_window = window
        self.doc = window.doc
        self.run: TrainingRun | None = None
        self.series: RunSeries | None = None
        self.live_model = None  # the trained model (or one holding weights loaded in Export)
        self.live_structure: str | None = None
        self.last_end: ev.Event | None = None
        self._failure: ev.FailedEvent | None = None  # the last failed run, for its details
        warm_up_imports()
        self.panel = TrainingPanel(self.doc)
        self.plots = LivePlots()
        self.evaluation = EvaluationPanel()
        self.gauges = MemoryGauges()
        self.tabs = QTabWidget(objectName="trainingTabs")
        self.tabs.addTab(self.plots, "Plots")
        self.tabs.addTab(self.evaluation, "Evaluation")
        self.health = HealthView()
        self.tabs.addTab(self.health, "Health")
        self.alerts = AlertBanners()
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.panel)
        split.addWidget(self.tabs)
        split.addWidget(self.gauges)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 0)
        split.setSizes([self.panel.full_width(), 640, 220])
        split.setChildrenCollapsible(False)
        self.split = split
        self._split_dragged = False  # once the person moves a handle, the widths are theirs
        split.splitterMoved.connect(self._split_moved)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(3)
        layout.addWidget(self.panel.banner)
        layout.addWidget(self.alerts)
        layout.addWidget(self.panel.run_bar)
        layout.addWidget(split, 1)
        self._overlay_job: Worker | None = None
        self._overlays_wanted = False  # asked again while a load was running

        p = self.panel
        p.startRequested.connect(self.start)
        p.pauseRequested.connect(self.pause)
        p.resumeRequested.connect(self.resume)
        p.stopRequested.connect(self.stop)
        p.resumeFromRequested.connect(self.resume_from)
        p.banner.linkActivated.connect(lambda _: self._show_details())
        p.form.changed.connect(self._setting_changed)
        self.doc.frozenChanged.connect(self._frozen_changed)
        self.doc.reset.connect(self._project_replaced)
        self.doc.runsChanged.connect(self._runs_added)
        self.plots.message.connect(window.say)
        self.refresh_overlays()

    # ------------------------------------------------------------ layout
    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if not self._split_dragged:
            self.fit_split()

    def fit_split(self) -> None:
        """Share the width: the settings in two columns when the plots keep room to read, else in
        one; the memory gauges narrower in a small window; the plots take the rest."""
        total = self.split.width() - 2 * self.split.handleWidth()
        gauges = 220 if total >= 1100 else 170
        two = self.panel.full_width(2)
        panel = two if total - two - gauges >= PLOTS_WIDE else self.panel.full_width(1)
        self.split.setSizes([panel, max(1, total - panel - gauges), gauges])

    def _split_moved(self, *_) -> None:
        self._split_dragged = True

    # ------------------------------------------------------------ state
    def is_running(self) -> bool:
        return self.run is not None and self.run.is_running()

    def start(self, resume_from: str | None = None) -> bool:
        if self.run is not None:
            return False
        problem = self.panel.fit_problem()
        if problem and resume_from is None:
            self.main_window.say(f"Cannot start: {problem}")
            return False
        self.panel.hide_failure()
        try:
            run = TrainingRun(self.doc.project, resume_from=resume_from, parent=self)
        except WorkbenchError as exc:
            self.panel.show_failure(str(exc), False)
            return False
        self.run = run
        run.events.connect(self._on_events)
        run.ended.connect(self._on_ended)
        self.doc.set_edit_lock(LOCK_REASON)
        self.panel.set_state("starting")
        self.panel.status.setText("Starting: reading the data and building the model…")
        self.evaluation.clear()
        self.health.clear()
        self.alerts.clear()
        self.refresh_overlays(now=run.info)
        self.plots.begin(RunSeries(1))
        self.series = None
        run.start()
        return True

    def pause(self) -> None:
        if self.is_running():
            self.run.pause()
            self.panel.status.setText("Pausing after the current step…")

    def resume(self) -> None:
        if self.is_running():
            self.run.resume()

    def stop(self) -> None:
        if self.is_running():
            self.run.stop()
            self.panel.set_state("stopping")
            self.panel.status.setText("Stopping after the current step (a checkpoint is saved)…")
            self.panel.run_bar.repaint()  # said now, not after the next batch of events

    def resume_from(self) -> None:
        if self.run is not None:
            return
        path = choose_checkpoint(self, self._checkpoint_folder())
        if path:
            self.start(resume_from=path)

    def _checkpoint_folder(self) -> str:
        """Where Resume from checkpoint… opens: the newest run's checkpoint (last.ckpt, else
        best.ckpt): the project's runs newest first, then the newest folder in its run folder."""
        runs = [Path(r["dir"]) for r in reversed(self.doc.project.runs) if r.get("dir")]
        root = self.doc.project.run_folder()
        if root.is_dir():
            try:
                runs += sorted((f for f in root.iterdir() if f.is_dir()), key=lambda f: f.stat().st_mtime, reverse=True)
            except OSError:
                pass
        for folder in runs:
            for name in (checkpoint.LAST, checkpoint.BEST):
                if (folder / name).is_file():
                    return str(folder / name)
        return str(root if root.is_dir() else Path.home())

    # ------------------------------------------------------------ events from the run (UI thread)
    def _on_events(self, batch: list) -> None:
        steps: list = []
        for item in batch:
            if isinstance(item.event, ev.StepEvent):
                steps.append(item)
                continue
            self._add_steps(steps)
            steps = []
            self._on_event(item)
        self._add_steps(steps)

    def _add_steps(self, items: list) -> None:
        if not items or self.series is None:
            return
        events = [i.event for i in items]
        self.series.add_steps([e.step for e in events], [e.loss for e in events], [e.lr for e in events],
                              [i.time for i in items])
        self.plots.changed()
        self.panel.on_steps(events[-1], events)

    def _on_event(self, item) -> None:
        e, t = item.event, item.time
        if isinstance(e, ev.StartedEvent):
            self.series = RunSeries(e.steps_per_epoch)
            self.plots.begin(self.series, classification=e.task.get("kind") == "classification")
            self.panel.set_state("running")
            self.panel.on_started(e)
            for note in e.notes:
                self.main_window.say(note)
        elif isinstance(e, ev.EpochEvent) and self.series is not None:
            self.series.add_epoch(e.epoch, e.step, t, e.train_loss, e.val_loss, e.val_acc)
            self.plots.changed()
            self.panel.on_epoch(e)
            names = list(self.run.engine.task.class_names) if self.run.engine.task else []
            self.evaluation.show_epoch(e.epoch, e.val_acc, e.confusion, names, item.samples)
        elif isinstance(e, ev.FreezeEvent) and self.series is not None:
            self.series.add_mark(e.step, t, f"{'freeze' if e.frozen else 'unfreeze'} {e.path}")
            self.plots.add_mark(self.series.marks[-1])
            self.panel.show_trainable(e.trainable)
        elif isinstance(e, ev.LrEvent) and self.series is not None:
            self.series.add_mark(e.step, t, f"lr {e.lr:g}")
            self.plots.add_mark(self.series.marks[-1])
        elif isinstance(e, ev.PausedEvent):
            self.panel.set_state("paused")
            self.panel.status.setText(f"Paused at step {e.step:,}. Freeze or unfreeze layers, change the learning "
                                      "rate, then Resume.")
        elif isinstance(e, ev.ResumedEvent):
            self.panel.set_state("running")
        elif isinstance(e, ev.HealthEvent):
            self.health.add(e)
        elif isinstance(e, ev.AlertEvent):
            self.alerts.add(e)

    def _on_ended(self, end: ev.Event, record: dict | None) -> None:
        run, self.run = self.run, None
        self.last_end = end
        self.doc.set_edit_lock("")
        self.panel.set_state("idle")
        trained = not isinstance(end, ev.FailedEvent) or end.phase == "training"
        if run.engine.model is not None and trained:  # a failed run's model is back at good weights
            self.live_model, self.live_structure = run.engine.model, weights_key(run.copy.model)
        if record is not None:
            self.doc.undo_stack.resetClean()  # the run history changed: the project has something to save
        self.plots.redraw()
        self.panel.status.setText(self._end_text(end, short=True))
        self.panel.status.setToolTip(self._end_text(end))
        if isinstance(end, ev.FailedEvent):
            self.panel.show_failure(end.message, bool(end.detail))
            self._failure = end
        if isinstance(end, ev.FinishedEvent) and end.evaluation:  # the final model's test metrics
            self.evaluation.show_report(end.evaluation, f"run {Path(end.run_dir).name} (final weights)")
        self.main_window.say(self._end_text(end), 15000)
        run.deleteLater()

    def _end_text(self, end: ev.Event, short: bool = False) -> str:
        if isinstance(end, ev.FinishedEvent):
            acc = f": best validation accuracy {end.best_val_acc:.4f} (epoch {end.best_epoch})" \
                if end.best_val_acc is not None else ""
            where = "" if short else f"; checkpoints in {end.run_dir}"
            early = f", {end.message}" if end.message else ""
            held = f"; the model holds epoch {end.restored_epoch}'s weights" if end.restored_epoch and not short else ""
            return f"Finished {end.epochs} epochs in {end.seconds:.1f} s{early}{acc}{held}{where}"
        if isinstance(end, ev.StoppedEvent):
            where = "Resume from checkpoint… continues it" if short else f"resume from {end.checkpoint}"
            return f"Stopped at step {end.step:,} after {end.seconds:.1f} s; {where}"
        if isinstance(end, ev.FailedEvent):
            return "Failed (see the message above)" if short else f"Training failed: {end.message}"
        return str(end)

    def _show_details(self) -> None:
        failure = self._failure
        if failure is not None:
            show_details(self, failure.message, failure.detail or "(no traceback: the message says it all)")

    # ------------------------------------------------------------ live controls from the window
    def _frozen_changed(self, path: str, frozen: bool) -> None:
        if self.is_running():
            try:
                self.run.set_frozen(path, frozen)
            except WorkbenchError as exc:
                self.main_window.say(str(exc))
                return
            self.main_window.say(f"{'Freezing' if frozen else 'Unfreezing'} {path} from the next step")

    def _setting_changed(self, section: str, name: str) -> None:
        if (section, name) == ("optimizer", "lr") and self.is_running():
            lr = self.doc.project.training.optimizer.lr
            try:
                self.run.set_lr(lr)
            except WorkbenchError as exc:
                self.main_window.say(str(exc))
                return
            self.main_window.say(f"Learning rate {lr:g} from the next step (and for the next run)")
        if self.run is None:
            self.refresh_overlays()

    def _project_replaced(self) -> None:
        """New / Open (or a new input shape): nothing of the last project's run stays."""
        self.live_model = self.live_structure = None
        self.series = None
        self.last_end = self._failure = None
        self.plots.begin(RunSeries(1))
        self.evaluation.clear()
        self.health.clear()
        self.alerts.clear()
        self.panel.clear_run()
        self.refresh_overlays()

    # ------------------------------------------------------------ earlier runs
    def _runs_added(self) -> None:
        """Runs that ended elsewhere (Run Distributed) show at once; a run here shows from its
        next Start, since its curves stay on the plots as the live run's until then."""
        if self.run is None:
            self.refresh_overlays()

    def refresh_overlays(self, now=None) -> None:
        settings = now.settings if now is not None else run_settings(self.doc.project)
        frozen = now.frozen if now is not None else build.frozen_paths(self.doc.spec)
        overlays = run_overlay.overlays_for(self.doc.project.runs, settings, frozen)
        old = {o.key: o for o in self.plots.overlays}
        for o in overlays:  # keep what is loaded and what the person hid
            if o.key in old:
                o.visible = old[o.key].visible
                if old[o.key].runs == o.runs:  # a resume in that folder since: its curves grew, read them again
                    o.series = old[o.key].series
        for o in overlays[:-5]:
            if o.key not in old:
                o.visible = False  # the last five show; older ones wait in the menu
        self.plots.set_overlays(overlays)
        self._load_overlays()

    def _load_overlays(self) -> None:
        """Read the curves of the overlays that have none yet, off the UI thread."""
        if self._overlay_job is not None:
            self._overlays_wanted = True
            return
        keys = [o.key for o in self.plots.overlays if o.series is None]
        if keys:
            self._overlay_job = start_worker(load_overlay_series, keys, name="overlays",
                                             returned=self._overlays_loaded, finished=self._overlays_ended)

    def _overlays_loaded(self, loaded: dict) -> None:
        for key, series in loaded.items():
            self.plots.overlay_loaded(key, series)

    def _overlays_ended(self) -> None:
        self._overlay_job = None
        if self._overlays_wanted:
            self._overlays_wanted = False
            self._load_overlays()

    # ------------------------------------------------------------ window hooks
    def confirm_close(self) -> bool:
        """A close check of the window (also asked before New and Open)."""
        if not self.is_running():
            return True
        if not ask_stop(self.main_window):
            return False
        self.run.stop()
        self.panel.set_state("stopping")
        if not self.run.wait(120.0):
            self.main_window.say("The run did not stop within two minutes; try again")
            return False
        return True

    def provide_model(self):
        """The model Export should use: the paused or trained one; None builds a fresh one."""
        if self.run is not None:
            if self.panel.state != "paused":
                raise WorkbenchError("training is running: pause it (or stop it) to export what it has learned")
            return copy.deepcopy(self.run.engine.model)
        if self.live_model is not None and self.live_structure == weights_key(self.doc.spec):
            return self.live_model
        return None

    def weights_loaded(self, model, path: str) -> None:
        """The export dialog loaded weights into ``model``: it is the live model now."""
        if not path or self.run is not None:
            return
        self.live_model, self.live_structure = model, weights_key(self.doc.spec)
        self.main_window.say(f"Weights from {Path(path).name} are in the model; Export uses them from now on "
                        "(a new training run starts from fresh weights)")

    def shutdown(self) -> None:
        """Window closing (after confirm_close): no thread of ours may outlive it."""
        if self.run is not None and self.run.is_running():
            self.run.stop()
            self.run.wait(120.0)
        self.gauges.shutdown()
        self.panel.shutdown()
        self.evaluation.shutdown()
        if self._overlay_job is not None:
            self._overlay_job.quit()
            self._overlay_job.wait(10.0)

