"""The Sweep dock: the project's search space, how to run it, the trials as they come in, and
acting on the best one.

Left: the search space as a list (path, range or choices, the value the project has now; Edit…
and Remove), the study's total of trials, a time budget, the number of worker processes (1 by
default on CPU: trials share the cores), the sampler and the pruner, Start and Stop. Right: the
study shown (any earlier one in the project's ``.sweeps.db`` can be picked), Apply Best Trial
and Export Best Trial…, and the results in tabs: the sortable trial table
(``sweep_table``), parallel coordinates, parameter importances and every trial's curves
(``sweep_plots``).

Start saves nothing behind the user's back: the workers read the project from its file, so an
unsaved or modified project is offered to be saved first (a refusal starts nothing). Start runs
exactly the command the CLI would (``workbench sweep FILE --trials N ...``, its default study:
the same space continues the same study, so a stopped sweep goes on and a finished one needs a
larger total); ``sweep_runner`` starts and stops the processes. While they run, the storage is read
about once a second on a worker thread (``sweep_study.Reader`` through
``ui.common.workers``); the UI thread only shows what came back. Every edit of the space and
Apply Best Trial are undoable (``sweep_edits``).
"""
from __future__ import annotations

from pathlib import Path

import torch
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDoubleSpinBox, QGridLayout, QHBoxLayout, QHeaderView,
                               QLabel, QMessageBox, QPushButton, QSizePolicy, QSpinBox, QSplitter, QTabWidget,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from workbench.errors import WorkbenchError
from workbench.experiments import space as sweep_space, sweep as sweep_core
from workbench.model import build
from workbench.project import code_refs
from workbench.project.search_space import MAX_TRIALS, PRUNERS, SAMPLERS, SearchSpace, SweepParam

from ui.common import theme
from ui.common.workers import Worker, start_worker
from ui.experiments import sweep_runner
from ui.experiments.sweep_edits import SetSweep, apply_trial
from ui.experiments.sweep_plots import Importances, ParallelCoordinates, TrialCurves
from ui.experiments.sweep_study import Reader, Snapshot, TrialRow
from ui.experiments.sweep_table import TrialTable, format_number
from ui.experiments.sweep_value_dialog import SweepValueDialog

POLL_MS = 1000
FINISHED = ("COMPLETE", "PRUNED", "FAIL")  # what counts toward a study's total
SAMPLER_NAMES = {"tpe": "TPE", "random": "Random", "grid": "Grid"}
PRUNER_NAMES = {"median": "Median", "hyperband": "Hyperband", "none": "None"}


def storage_for(project_path: Path) -> str:
    """The project's study storage: ``NAME.sweeps.db`` beside ``NAME.wbproj`` (as `workbench sweep`'s)."""
    return sweep_core.default_storage(project_path)


def default_workers() -> int:
    """Worker processes to start with: one per GPU, one on CPU (trials share the cores)."""
    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


# ---------------------------------------------------------------- questions (tests replace these)
def ask_save(parent, name: str) -> bool:
    """The workers read the project from its file: save it first?"""
    box = QMessageBox(QMessageBox.Icon.Question, "Save before sweeping",
                      f"The sweep's workers read the project from its file. Save {name} first?", parent=parent)
    box.setStandardButtons(QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    return box.exec() == QMessageBox.StandardButton.Save


def ask_stop(parent) -> bool:
    return QMessageBox.question(parent, "A sweep is running",
                                "A sweep is running. Stop its workers (the running trials end as failed) and close?",
                                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel) \
        == QMessageBox.StandardButton.Yes


def edit_param(parent, project, path: str, param, existing: SweepParam | None) -> SweepParam | None:
    """Open "Sweep this value…" and return what was picked (None: cancelled)."""
    dialog = SweepValueDialog(project, path, param, existing, parent)
    return dialog.param() if dialog.exec() == SweepValueDialog.DialogCode.Accepted else None


class SweepDock(QWidget):
    spaceChanged = Signal()
    snapshotShown = Signal(object)  # each Snapshot once it is on screen

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.setObjectName("sweepDock")
        self.main_window, self.doc = window, window.doc
        self.workers = sweep_runner.SweepWorkers(self)
        self.workers.ended.connect(self._workers_ended)
        self.reader = Reader()
        self.snapshot: Snapshot | None = None
        self.study: str | None = None  # the study shown (None: the newest)
        self._poll_job: Worker | None = None
        self._poll_again = False
        self._closed = False
        self.export_dialog = None
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.doc.reset.connect(self._project_replaced)
        self.doc.pathChanged.connect(self._path_changed)
        self.doc.changed.connect(self._refresh_now_values)
        self.show_space(self.doc.project.sweep, record=False)
        self._storage = self._storage_url()
        self.poll()

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        self.space_list = QTreeWidget(objectName="sweepSpace")
        self.space_list.setColumnCount(3)
        self.space_list.setHeaderLabels(["Parameter", "Searched over", "Now"])
        self.space_list.setRootIsDecorated(False)
        self.space_list.setAlternatingRowColors(True)
        self.space_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.space_list.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.space_list.itemDoubleClicked.connect(lambda *_: self.edit_selected())
        self.space_list.itemSelectionChanged.connect(self._sync_buttons)
        self.empty_hint = QLabel("Right-click a layer argument in the Inspector or a training setting and choose "
                                 "<b>Sweep this value…</b> to add it here.", objectName="sweepHint", wordWrap=True)
        self.empty_hint.setStyleSheet(f"color: {theme.MUTED_TEXT};")
        self.edit_button = QPushButton("Edit…", objectName="sweepEdit")
        self.edit_button.setToolTip("Change the selected parameter's range or choices")
        self.edit_button.clicked.connect(self.edit_selected)
        self.remove_button = QPushButton("Remove", objectName="sweepRemove")
        self.remove_button.setToolTip("Stop sweeping the selected parameter (undoable)")
        self.remove_button.clicked.connect(self.remove_selected)
        list_buttons = QHBoxLayout()
        list_buttons.addWidget(self.edit_button)
        list_buttons.addWidget(self.remove_button)
        list_buttons.addStretch(1)

        self.trials = QSpinBox(objectName="sweepTrials", minimum=1, maximum=MAX_TRIALS)
        self.trials.setToolTip("Trials in the study, shared by all workers (complete, pruned and failed count)")
        self.budget = QDoubleSpinBox(objectName="sweepBudget", minimum=0, maximum=10_000, decimals=0, suffix=" min")
        self.budget.setSpecialValueText("none")
        self.budget.setToolTip("Stop starting new trials after this long (none: run every trial)")
        self.jobs = QSpinBox(objectName="sweepWorkers", minimum=1, maximum=64, value=default_workers())
        self.jobs.setToolTip("Worker processes, each training one trial at a time. On CPU one is best: the trials "
                             "share the cores. Every worker reads and writes the same study.")
        self.sampler = QComboBox(objectName="sweepSampler")
        for key in SAMPLERS:
            self.sampler.addItem(SAMPLER_NAMES.get(key, key), key)
        self.sampler.setToolTip("TPE learns from earlier trials; Random samples blindly; Grid tries every "
                                "combination of choice lists and integer ranges")
        self.pruner = QComboBox(objectName="sweepPruner")
        for key in PRUNERS:
            self.pruner.addItem(PRUNER_NAMES.get(key, key), key)
        self.pruner.setToolTip("Stop a trial early when its validation metric at an epoch is worse than the "
                               "others' (Median) or in successive halving (Hyperband)")
        self.trials.valueChanged.connect(lambda v: self._set_option("trials", int(v)))
        self.budget.valueChanged.connect(lambda v: self._set_option("timeout", float(v) * 60 or None))
        self.sampler.activated.connect(lambda i: self._set_option("sampler", self.sampler.itemData(i)))
        self.pruner.activated.connect(lambda i: self._set_option("pruner", self.pruner.itemData(i)))
        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(3)
        for row, pairs in enumerate(((("Trials", self.trials), ("Workers", self.jobs)),
                                     (("Sampler", self.sampler), ("Pruner", self.pruner)),
                                     (("Time budget", self.budget),))):
            for col, (text, widget) in enumerate(pairs):
                label = QLabel(text)
                label.setBuddy(widget)
                grid.addWidget(label, row, 2 * col)
                grid.addWidget(widget, row, 2 * col + 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

        self.start_button = QPushButton("Start Sweep", objectName="sweepStart")
        self.start_button.setToolTip("Save-checked: run the trials in worker processes against the project's "
                                     ".sweeps.db")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop", objectName="sweepStop", enabled=False)
        self.stop_button.setToolTip("Stop the workers: each running trial ends as failed ('stopped')")
        self.stop_button.clicked.connect(self.stop)
        run_row = QHBoxLayout()
        run_row.addWidget(self.start_button, 1)
        run_row.addWidget(self.stop_button)
        self.status = QLabel(objectName="sweepStatus", wordWrap=True)
        self.error = QLabel(objectName="sweepError", wordWrap=True)
        self.error.setStyleSheet(f"color: {theme.BAD};")
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error.hide()

        left = QWidget(objectName="sweepControls")
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 4, 0)
        column.setSpacing(4)
        column.addWidget(self.space_list, 1)
        column.addWidget(self.empty_hint)
        column.addLayout(list_buttons)
        column.addLayout(grid)
        column.addLayout(run_row)
        column.addWidget(self.status)
        column.addWidget(self.error)

        self.study_box = QComboBox(objectName="sweepStudy")
        self.study_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.study_box.setMinimumContentsLength(14)
        self.study_box.setToolTip("The studies in the project's .sweeps.db (each Start makes one)")
        self.study_box.activated.connect(lambda i: self.show_study(self.study_box.itemText(i)))
        self.best_label = QLabel(objectName="sweepBest")
        self.best_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # a long summary must not widen the dock (and the window past 1024 px): it is cut, whole in the tooltip
        self.best_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.apply_button = QPushButton("Apply Best Trial", objectName="sweepApply", enabled=False)
        self.apply_button.setToolTip("Write the best trial's values into the project (one undoable edit)")
        self.apply_button.clicked.connect(self.apply_best)
        self.export_button = QPushButton("Export Best Trial…", objectName="sweepExport", enabled=False)
        self.export_button.setToolTip("Open the export dialog with the best trial's model and trained weights")
        self.export_button.clicked.connect(self.export_best)
        top = QHBoxLayout()
        top.addWidget(QLabel("Study"))
        top.addWidget(self.study_box)
        top.addWidget(self.best_label, 1)
        top.addWidget(self.apply_button)
        top.addWidget(self.export_button)

        self.table = TrialTable()
        self.parallel = ParallelCoordinates()
        self.importances = Importances()
        self.curves = TrialCurves()
        self.tabs = QTabWidget(objectName="sweepTabs")
        self.tabs.addTab(self.table, "Trials")
        self.tabs.addTab(self.curves, "Curves")
        self.tabs.addTab(self.parallel, "Parallel coordinates")
        self.tabs.addTab(self.importances, "Importance")
        right = QWidget()
        right_column = QVBoxLayout(right)
        right_column.setContentsMargins(4, 0, 0, 0)
        right_column.setSpacing(3)
        right_column.addLayout(top)
        right_column.addWidget(self.tabs, 1)

        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.addWidget(left)
        self.split.addWidget(right)
        self.split.setStretchFactor(0, 0)
        self.split.setStretchFactor(1, 1)
        self.split.setChildrenCollapsible(False)
        self.split.setSizes([330, 700])
        root = QVBoxLayout(self)
        root.setContentsMargins(2, 2, 2, 2)
        root.addWidget(self.split)
        # The dock shares its tab area with Training: its full layout (about 800 x 230) as a minimum
        # would raise the whole window's minimum size; below its natural size it is cut instead.
        self.setMinimumSize(520, 120)

    # ------------------------------------------------------------ the space
    def space(self) -> SearchSpace:
        return self.doc.project.sweep or SearchSpace()

    def show_space(self, space: SearchSpace | None, record: bool = True) -> None:
        """Put ``space`` in the project (SetSweep's redo and undo) and show it."""
        if record:
            self.doc.project.set_sweep(space)
        shown = space or SearchSpace()
        selected = self.selected_path()
        self.space_list.clear()
        for param in shown.params:
            item = QTreeWidgetItem([param.path, param.describe(), self._now_text(param.path)])
            item.setData(0, Qt.ItemDataRole.UserRole, param.path)
            item.setToolTip(0, param.path)
            item.setToolTip(1, f"--param {param.spec_text()}")
            self.space_list.addTopLevelItem(item)
            if param.path == selected:
                item.setSelected(True)
        self.empty_hint.setVisible(not shown.params)
        for box, value in ((self.trials, shown.trials), (self.budget, (shown.timeout or 0) / 60)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        for box, value in ((self.sampler, shown.sampler), (self.pruner, shown.pruner)):
            box.setCurrentIndex(max(0, box.findData(value)))
        self._sync_buttons()
        self.spaceChanged.emit()

    def _now_text(self, path: str) -> str:
        try:
            value = sweep_space.current_value(self.doc.project, path)
        except KeyError:
            return "missing"
        return format_number(value) if value is not None else "auto"

    def _refresh_now_values(self) -> None:
        for i in range(self.space_list.topLevelItemCount()):
            item = self.space_list.topLevelItem(i)
            item.setText(2, self._now_text(item.data(0, Qt.ItemDataRole.UserRole)))

    def selected_path(self) -> str | None:
        items = self.space_list.selectedItems()
        return items[0].data(0, Qt.ItemDataRole.UserRole) if items else None

    def set_space(self, space: SearchSpace, text: str, key: str = "") -> None:
        """Change the project's space as one undoable edit."""
        if space == self.doc.project.sweep:
            return
        self.doc.undo_stack.push(SetSweep(self.doc.project, space, text, self.show_space, key))

    def add_param(self, param: SweepParam) -> None:
        verb = "Change" if self.space().param(param.path) is not None else "Sweep"
        self.set_space(self.space().with_param(param), f"{verb} {param.path} over {param.describe()}")

    def remove_param(self, path: str) -> None:
        space = self.space().without_param(path)
        self.set_space(space, f"Stop sweeping {path}")

    def _set_option(self, name: str, value) -> None:
        from dataclasses import replace

        space = self.space()
        if getattr(space, name) != value:
            shown = {"timeout": lambda v: f"{v / 60:g} min" if v else "none"}.get(name, str)(value)
            self.set_space(replace(space, **{name: value}), f"Set the sweep's {name} to {shown}", f"option:{name}")

    def edit_path(self, path: str, param=None) -> bool:
        """Open "Sweep this value…" for ``path``; True when the space changed."""
        param = param or self.param_of(path)
        if param is None:
            self.main_window.say(f"{path} no longer names a setting or layer argument of this project")
            return False
        picked = edit_param(self, self.doc.project, path, param, self.space().param(path))
        if picked is None:
            return False
        self.add_param(picked)
        return True

    def param_of(self, path: str):
        """The ``Param`` of a setting or layer argument (bounds and choices), or None."""
        from workbench.model import catalog
        from workbench.project.settings import DataSettings, TrainingSettings

        kind, a, b = sweep_space.target(path)
        if kind == "layer":
            layer = self.doc.spec.find(a)
            found = catalog.kind(layer.type) if layer is not None else None
            return found.param(b) if found is not None else None
        section, *rest = a.split(".")
        cls = {"data": DataSettings, "training": TrainingSettings}.get(section)
        for part in rest[:-1]:
            cls = cls.sections().get(part) if cls is not None else None
        return next((p for p in cls.params() if p.name == rest[-1]), None) if cls is not None and rest else None

    def edit_selected(self) -> None:
        path = self.selected_path()
        if path:
            self.edit_path(path)

    def remove_selected(self) -> None:
        path = self.selected_path()
        if path:
            self.remove_param(path)

    def _sync_buttons(self) -> None:
        running = self.is_running()
        has = self.selected_path() is not None
        self.edit_button.setEnabled(has)
        self.remove_button.setEnabled(has)
        self.start_button.setEnabled(not running and sweep_runner.python() is not None)
        self.stop_button.setEnabled(running)
        for w in (self.jobs,):
            w.setEnabled(not running)
        best = self.best_trial()
        self.apply_button.setEnabled(best is not None)
        self.export_button.setEnabled(best is not None and bool(best.checkpoint))

    # ------------------------------------------------------------ running
    def is_running(self) -> bool:
        return self.workers.is_running()

    def _storage_url(self) -> str | None:
        return storage_for(self.doc.path) if self.doc.path is not None else None

    def start(self) -> bool:
        """Check the space, have the project saved, start the workers; False when nothing started."""
        if self.is_running():
            return False
        self._say_error("")
        space = self.space()
        problems = sweep_space.problems(space, self.doc.project)
        if problems:
            self._say_error(problems[0] if space.params else
                            "Nothing to sweep yet: right-click a layer argument in the Inspector or a training "
                            "setting and choose Sweep this value…")
            return False
        if self.doc.path is None or self.doc.modified:
            name = self.doc.path.name if self.doc.path else self.doc.project.name
            if not ask_save(self.main_window, name) or not self.main_window.save():
                self.status.setText("Not started: the sweep's workers read the saved project file.")
                return False
        python = sweep_runner.python()
        if python is None:
            self._say_error("This bundled app has no Python to start workers with: run `workbench sweep` where "
                            "Model Workbench is installed with pip.")
            return False
        path = self.doc.path
        study = sweep_core.default_study_name(self.doc.project, space)
        snapshot = self.snapshot
        held = [t for t in snapshot.trials if t.state in FINISHED] if snapshot and snapshot.study == study else []
        if len(held) >= space.trials:
            self._say_error(f"Study {study} already has {len(held)} finished trials, its total: raise Trials to "
                            "run more of it.")
            return False
        argv = sweep_runner.command(str(path), space.trials, space.sampler, space.pruner, space.timeout, None)
        if code_refs.files(self.doc.project):  # its code was trusted when the window opened it
            argv.append("--trust-code")
        self._storage = self._storage_url()
        self.study = study
        self.workers.start(argv, self.jobs.value(), str(path.parent))
        self.status.setText(f"Running {space.trials} trials of study {study} on {self.jobs.value()} worker"
                            f"{'s' if self.jobs.value() > 1 else ''}…")
        self.timer.start()
        self._sync_buttons()
        return True

    def stop(self) -> None:
        if self.is_running():
            self.workers.stop()
            self.status.setText("Stopping: the running trials end as failed ('stopped')…")
            self.stop_button.setEnabled(False)

    def _workers_ended(self, codes: list[int]) -> None:
        self.timer.stop()
        errors = self.workers.errors()
        stopped = self.workers.stopping
        if errors:
            self._say_error("\n".join(errors))
        done = "Stopped" if stopped else ("Finished" if all(c == 0 for c in codes) else "Ended")
        self.status.setText(f"{done}: study {self.study}" + (f" (exit codes {', '.join(map(str, codes))})"
                                                           if any(codes) and not stopped else ""))
        self._sync_buttons()
        self.poll()

    def _say_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    # ------------------------------------------------------------ reading the storage
    def poll(self) -> None:
        """Read the storage on a worker thread (one read at a time; a poll during one asks again after)."""
        if self._closed:
            return
        if self._poll_job is not None:
            self._poll_again = True
            return
        storage = self._storage
        if storage is None:
            self._show(Snapshot(""))
            return
        self._poll_job = start_worker(self.reader.read, storage, self.study, name="sweep-poll",
                                      returned=self._show, finished=self._polled)

    def _polled(self) -> None:
        self._poll_job = None
        if self._poll_again and not self._closed:
            self._poll_again = False
            self.poll()

    def _show(self, snapshot: Snapshot) -> None:
        if snapshot.storage != (self._storage or ""):
            return  # an answer about a project that is no longer open
        self.snapshot = snapshot
        self.study_box.blockSignals(True)
        self.study_box.clear()
        self.study_box.addItems(snapshot.studies)
        if snapshot.study:
            self.study_box.setCurrentText(snapshot.study)
        self.study_box.blockSignals(False)
        self.study_box.setEnabled(bool(snapshot.studies))
        self.table.show_snapshot(snapshot)
        for view in (self.parallel, self.importances, self.curves):
            view.show_snapshot(snapshot)
        best = self.best_trial()
        counts = {}
        for t in snapshot.trials:
            counts[t.state] = counts.get(t.state, 0) + 1
        summary = ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
        if best is not None:
            text = f"best: trial {best.number}, {snapshot.metric} {best.value:.4f} \u00b7 {summary}"
        else:
            text = summary or ("No sweeps of this project yet." if not snapshot.problem else snapshot.problem)
        self.best_label.setText(text)
        self.best_label.setToolTip(snapshot.problem or text)
        self._sync_buttons()
        self.snapshotShown.emit(snapshot)

    def show_study(self, name: str) -> None:
        self.study = name or None
        self.poll()

    def best_trial(self) -> TrialRow | None:
        return self.snapshot.trial(self.snapshot.best) if self.snapshot is not None else None

    def _project_replaced(self) -> None:
        self.show_space(self.doc.project.sweep, record=False)
        self._path_changed()

    def _path_changed(self) -> None:
        storage = self._storage_url()
        if storage != self._storage and not self.is_running():
            self._storage, self.study, self.snapshot = storage, None, None
            self.poll()

    # ------------------------------------------------------------ acting on the best trial
    def apply_best(self) -> bool:
        best = self.best_trial()
        if best is None:
            return False
        try:
            text = apply_trial(self.doc, self.main_window.training.panel.form, best.number, best.params)
        except WorkbenchError as exc:
            self.main_window.say(f"Could not apply trial {best.number}: {exc}")
            return False
        self.main_window.say(f"{text} (Undo takes it back)")
        return True

    def export_best(self):
        """The export dialog with the best trial's model and its trained weights."""
        from ui.export.dialog import ExportDialog  # on first use: it loads the exporters

        best = self.best_trial()
        if best is None or not best.checkpoint:
            return None
        if not Path(best.checkpoint).is_file():
            self.main_window.say(f"Trial {best.number}'s checkpoint {best.checkpoint} is gone")
            return None
        try:
            project = sweep_space.apply(self.doc.project, best.params)
            model = build.build_model(project.model)
        except WorkbenchError as exc:
            self.main_window.say(f"Could not build trial {best.number}'s model: {exc}")
            return None
        dialog = ExportDialog(project, model, self.main_window)
        dialog.setWindowTitle(f"Export {project.name}: trial {best.number} of {self.snapshot.study}")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.destroyed.connect(lambda *_: setattr(self, "export_dialog", None))
        self.export_dialog = dialog
        dialog.open()
        dialog.open_weights(best.checkpoint)
        return dialog

    # ------------------------------------------------------------ window hooks
    def confirm_close(self) -> bool:
        if not self.is_running():
            return True
        if not ask_stop(self.main_window):
            return False
        self.workers.shutdown()
        return True

    def shutdown(self) -> None:
        self._closed = True
        self.timer.stop()
        self.workers.shutdown()
        if self._poll_job is not None:
            self._poll_job.quit()
            self._poll_job.wait()
