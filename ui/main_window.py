"""The main window: palette, stack, inspector and history around one project document.

The window owns one ``ProjectDocument`` (``self.doc``); panels talk to it, never to each
other. The parts that join the window (the Training dock, Run Distributed) use its hooks and
listen to ``doc.changed`` / ``doc.frozenChanged``:
- ``add_dock(title, widget, area)``: a dock with a View menu toggle;
- ``add_menu(key, title)`` / ``menu(key)``: a top-level menu (before Help), found by its key;
- ``add_toolbar_action(action)``: a button on the main toolbar;
- ``add_close_check(check)``: ``check()`` may refuse closing (and New / Open) by returning False;
- ``add_shutdown_hook(hook)``: run once the window really closes (stop threads, processes);
- ``set_model_source(provider, receiver)``: File > Export uses ``provider()`` (a trained
  model, or None to build one) and hands weights opened there to ``receiver(model, path)``.

With no project open (File > Close Project, a launch with the start page asked for, or a file
that failed at launch) the central area shows the start page (``ui.start_page``) instead of
the stack: the docks are hidden and every action that needs a project is off, whichever part
added it to the Edit or Training menu, the toolbar or a dock (``show_start_page``); opening
anything from the page (or File > New / Open) brings the layout back (``show_editor``).

Once the window has first shown, every object alive (the imported modules, the widgets, the
project: about 450,000) moves to the garbage collector's permanent generation until the window
closes (``_freeze_start_up``). A full collection walks every tracked object with the GIL held:
200-330 ms on the 2-core machine, in which neither the window nor the training thread moves,
and one fell inside a training run at random. Frozen, it walks only what was made since.
"""
from __future__ import annotations

import gc
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication
from PySide6.QtWidgets import (QDockWidget, QMainWindow, QMenu, QMessageBox, QStackedWidget, QToolBar, QUndoView,
                               QWidget)

from workbench import user_code
from workbench.model import build
from workbench.project import project_file as projects, templates
from workbench.errors import WorkbenchError

from ui.common import icons, theme
from ui import project_io
from ui.document.commands import SetValue
from ui.document.project_document import ProjectDocument
from ui.editor import clipboard
from ui.editor.inspector import Inspector
from ui.editor.palette import Palette
from ui.editor.stack_view import StackView
from ui.editor.stack_model import ID, StackModel
from ui.editor.summary_bar import SummaryBar
from ui.distributed.dialog import install as install_distributed
from ui.experiments.lr_finder_dialog import install as install_lr_finder
from ui.training.menu import install as install_training
from ui.prediction.menu import install as install_prediction
from ui.experiments.sweep_menu import install as install_sweep
from ui.data.data_dock import install as install_data
from ui.data.augment_editor import install as install_augment
from ui.insight.profile import install as install_profile
from ui.menus import build_actions
from ui.start_page import StartPage


class RenameProject(SetValue):
    """File > Rename Project: the project's name (the title shows it; saved in the file)."""

    ID = 61

    def __init__(self, window: "MainWindow", name: str):
        self.window = window
        super().__init__(("project", "name"), window.doc.project.name, name)

    def label(self) -> str:
        return f"Rename the project to {self.new!r}"

    def apply(self, value) -> None:
        self.window.show_project_name(value)


class MainWindow(QMainWindow):
    def __init__(self, path: str | None = None, project: projects.Project | None = None):
        super().__init__()
        problem = None
        on_start_page = False
        if project is None:
            on_start_page = project_io.launch_on_start_page(path)
            project, problem = (templates.empty(), None) if on_start_page else project_io.startup_project(path)
        self.doc = ProjectDocument(project, self)
        self._close_checks: list[Callable[[], bool]] = []  # each may refuse to close (False)
        self._shutdown_hooks: list[Callable[[], None]] = []  # run once the window really closes
        self._froze_start_up = False  # the collector's permanent generation holds the start-up objects
        self._model_provider: Callable[[], object] | None = None  # a trained model for export
        self._weights_receiver: Callable[[object, str], None] | None = None  # (model, path) loaded in Export
        self._menus: dict[str, QMenu] = {}
        self.setWindowIcon(icons.app_icon())
        self.setDockNestingEnabled(True)
        self.setStyleSheet(theme.stylesheet())

        self.stack_model = StackModel(self.doc, self)
        self.stack = StackView(self.stack_model, settings=project_io.settings)  # remembers its cost columns
        self.start_page = StartPage()
        self.pages = QStackedWidget()  # the stack, or the start page when no project is open
        self.pages.addWidget(self.stack)
        self.pages.addWidget(self.start_page)
        self.setCentralWidget(self.pages)
        self._editor_state: QByteArray | None = None  # the docks' layout, kept while the start page shows
        self._needs_project: QActionGroup | None = None  # the actions the start page turns off
        self.summary = SummaryBar(self.doc)
        self.statusBar().addPermanentWidget(self.summary, 1)  # full width: the summary never clips
        self.statusBar().messageChanged.connect(self.summary.show_message)
        self.statusBar().setSizeGripEnabled(False)

        self.layer_palette = Palette()
        self.inspector = Inspector(self.doc)
        self.history = QUndoView(self.doc.undo_stack)
        self.history.setEmptyLabel("<opened>")
        self.docks: dict[str, QDockWidget] = {}
        self.toolbar = QToolBar("Main", objectName="toolbar_main")
        self.actions_, self.recent_menu = build_actions(self)  # menus, toolbar, shortcuts (ui.menus)
        self.add_dock("Layers", self.layer_palette, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.add_dock("Inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea)
        self.add_dock("History", self.history, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.docks["Layers"], self.docks["Inspector"]], [220, 330], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["Inspector"], self.docks["History"]], [520, 160], Qt.Orientation.Vertical)

        self.layer_palette.layerRequested.connect(self.add_layer)
        self.stack.currentLayerChanged.connect(self.inspector.show_layer)
        self.stack_model.message.connect(self.say)
        self.summary.problemClicked.connect(lambda layer_id: self.stack.select_ids([layer_id]))
        self.doc.undo_stack.cleanChanged.connect(lambda clean: self.setWindowModified(not clean))
        self.doc.pathChanged.connect(self._update_title)
        self.doc.reset.connect(lambda: self.inspector.show_layer(None))
        self.start_page.openRequested.connect(self.open_file)
        self.start_page.newRequested.connect(self.new_project)
        self.start_page.browseRequested.connect(lambda: self.open_file())
        self.training, self.training_menu = install_training(self)  # dock, menu, hooks (ui.training.menu)
        self.distributed = install_distributed(self)  # Training > Run Distributed... (ui.distributed.dialog)
        self.lr_finder = install_lr_finder(self)  # Training > Find Learning Rate... (ui.experiments.lr_finder_dialog)
        self.prediction = install_prediction(self)  # the Prediction dock, View > Predict... (ui.prediction.menu)
        self.sweep = install_sweep(self)  # the Sweep dock, View > Sweep..., "Sweep this value..." (ui.experiments)
        self.data = install_data(self)  # the Data dock: samples, class balance, statistics, problems (ui.data)
        self.augment = install_augment(self)  # the Augmentation dock: pipelines and their preview (ui.data)
        self.profiler = install_profile(self)  # View > Profile Layers; the cost figures on (ui.insight.profile)
        self._update_title()
        self._restore_settings()
        if problem is not None:
            QTimer.singleShot(0, lambda: project_io.show_error(  # at launch no project was open to keep
                self, "Could not open the project", problem, "Open another project from the start page."))
        if problem is not None:  # the file given could not be opened: the page says so and offers the others
            self.show_start_page(project_io.launch_problem(problem), error=True)
        elif on_start_page:
            self.show_start_page()

    # ------------------------------------------------------------ hooks for the parts that join the window
    def add_dock(self, title: str, widget: QWidget, area=Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Add a panel as a dock (named for saved layouts) with a View menu toggle."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.menu("view").addAction(dock.toggleViewAction())
        self.docks[title] = dock
        return dock

    def add_menu(self, key: str, title: str) -> QMenu:
        """A top-level menu, before Help once Help exists; ``menu(key)`` finds it again."""
        if key in self._menus:
            raise ValueError(f"the window already has a {key!r} menu")
        bar = self.menuBar()
        menu = QMenu(title, bar)
        help_menu = self._menus.get("help")
        if help_menu is None:
            bar.addMenu(menu)
        else:
            bar.insertMenu(help_menu.menuAction(), menu)
        self._menus[key] = menu
        return menu

    def menu(self, key: str) -> QMenu:
        """A menu added with ``add_menu`` ("file", "edit", "view", "training", "help", ...)."""
        return self._menus[key]

    def add_toolbar_action(self, action: QAction) -> None:
        """A button at the end of the main toolbar, after a separator."""
        self.toolbar.addSeparator()
        self.toolbar.addAction(action)

    def add_close_check(self, check: Callable[[], bool]) -> None:
        """``check()`` is asked before the window closes and before New / Open replace the
        project; False refuses (it asks the user itself when it needs to)."""
        self._close_checks.append(check)

    def add_shutdown_hook(self, hook: Callable[[], None]) -> None:
        """``hook()`` runs once the window really closes: stop and await threads, processes."""
        self._shutdown_hooks.append(hook)

    def set_model_source(self, provider: Callable[[], object], receiver: Callable[[object, str], None]) -> None:
        """File > Export exports ``provider()`` (None: a model built fresh from the stack), and
        weights opened in the export dialog go to ``receiver(model, path)``."""
        self._model_provider, self._weights_receiver = provider, receiver

    def trained_model(self):
        """The model File > Export would use now, or None when it builds a fresh one."""
        return self._model_provider() if self._model_provider else None

    def receive_weights(self, model, path: str) -> None:
        """Weights were loaded into ``model`` in the export dialog."""
        if self._weights_receiver is not None:
            self._weights_receiver(model, path)

    def may_close(self) -> bool:
        """Every close check agrees (each may ask the user)."""
        return all(check() for check in self._close_checks)

    def say(self, text: str, ms: int = 8000) -> None:
        self.statusBar().showMessage(text, ms)

    def _update_title(self) -> None:
        if self.start_page_shown():
            self.setWindowFilePath("")
            self.setWindowTitle("Model Workbench")
            self.setWindowModified(False)
            return
        path, project_name = self.doc.path, self.doc.project.name
        name = f"{path.name}[*] ({project_name})" if path else f"{project_name} (not saved)[*]"
        self.setWindowFilePath(str(path) if path else "")
        self.setWindowTitle(f"{name} - Model Workbench")
        self.setWindowModified(self.doc.modified)

    # ------------------------------------------------------------ stack edits
    def _edit(self, fn) -> object:
        try:
            return fn()
        except WorkbenchError as exc:
            self.say(str(exc))
            return None

    def add_layer(self, type_name: str) -> None:
        """Add after the (last) selected row, in its block (into a selected Branch), or at the end
        with no selection."""
        selected = self.stack.selected_ids()
        parent, row = self.doc.insertion_point(selected[-1] if selected else None)
        new_id = self._edit(lambda: self.doc.insert_kind(type_name, parent, row))
        if new_id:
            self.stack.select_ids([new_id])

    def delete_selected(self, verb: str = "Delete") -> None:
        ids = self.stack.selected_ids()
        if not ids:
            stages = self.stack.selected_stages()
            if stages:  # Delete on a stage row did nothing and said nothing
                stage = stages[0]
                self.say(f"'{stage.name}' is a stage of the backbone '{stage.layer.id}' and cannot be removed on its "
                         f"own: select the '{stage.layer.id}' row to delete the backbone, or tick the stage's "
                         "Freeze box to keep its weights fixed")
            return
        parent, row = self.doc.locate(ids[0])
        self._edit(lambda: self.doc.remove(ids, verb))
        siblings = self.doc.layers_in(parent) if parent is None or self.doc.spec.find(parent) else []
        if siblings:
            self.stack.select_ids([siblings[min(row, len(siblings) - 1)].id])
        elif parent is not None:
            self.stack.select_ids([parent])

    def duplicate_selected(self) -> None:
        ids = self.stack.selected_ids()
        new = self._edit(lambda: self.doc.duplicate(ids)) if ids else None
        if new:
            self.stack.select_ids(new)

    def copy_selected(self) -> list[str]:
        """Put the selected layers (a block with its nested layers) on the clipboard as JSON."""
        ids = self.doc.outermost(self.stack.selected_ids())
        if not ids:
            self.say("Nothing to copy: select layers in the list first")
            return []
        clipboard.put(QGuiApplication.clipboard(), [self.doc.spec.find(i) for i in ids])
        self.say(f"Copied '{ids[0]}'" if len(ids) == 1 else f"Copied {len(ids)} layers")
        return ids

    def cut_selected(self) -> None:
        """Copy, then delete the layers as one undoable edit ('Cut ...')."""
        if self.doc.edit_lock:
            self._edit(lambda: self.doc.remove(self.stack.selected_ids()))  # says why, changes nothing
            return
        if self.copy_selected():
            self.delete_selected("Cut")

    def paste_layers(self) -> None:
        """Insert the clipboard's layers after the current row (in its block) as one undoable
        edit; refuse, saying why, what a project file would refuse."""
        try:
            layers = clipboard.read(QGuiApplication.clipboard().mimeData())
        except WorkbenchError as exc:
            self.say(clipboard.refusal(exc))
            return
        parent, row = self.doc.insertion_point(self.stack.current_id())
        try:
            new = self.doc.paste(layers, parent, row)
        except WorkbenchError as exc:
            self.say(clipboard.refusal(exc))
            return
        self.stack.select_ids(new)
        renamed = [f"'{old.id}' as '{new_id}'" for old, new_id in zip(layers, new) if old.id != new_id]
        self.say((f"Pasted '{new[0]}'" if len(new) == 1 else f"Pasted {len(new)} layers")
                 + (f" ({', '.join(renamed)}: the id was taken)" if renamed else ""))

    def toggle_frozen(self) -> None:
        ids = self.stack.selected_ids()
        if not ids:
            return
        freeze = not all(self.doc.spec.find(i).frozen for i in ids)
        stack = self.doc.undo_stack
        stack.beginMacro(f"{'Freeze' if freeze else 'Unfreeze'} {len(ids)} layer{'s' if len(ids) > 1 else ''}")
        for layer_id in ids:
            self.doc.set_frozen(layer_id, freeze)
        stack.endMacro()

    def rename_current(self) -> None:
        current = self.stack.current_id()
        if current:
            self.stack.edit(self.stack_model.index_of(current, ID))

    # ------------------------------------------------------------ files
    def maybe_save(self) -> bool:
        """True when it is fine to drop the open project (saved, discarded or unchanged)."""
        if not self.doc.modified:
            return True
        name = self.doc.path.name if self.doc.path else self.doc.project.name
        answer = project_io.ask_unsaved(self, name)
        if answer == "save":
            return self.save()
        return answer == "discard"

    def _show(self, proj: projects.Project) -> None:
        self.doc.replace_project(proj)
        self.show_editor()
        self._update_title()

    def new_project(self, name: str | None = None) -> None:
        """File > New (asks for a template), or the start page's template / empty project."""
        if not self.may_close() or not self.maybe_save():
            return
        name = name or project_io.choose_template(self)
        if name == project_io.EMPTY:
            self._show(templates.empty())
            self.inspector.show_layer(None)  # the model input: the first thing to set
            self.say("New empty project: set the input shape in the inspector, then add layers")
        elif name:
            self._show(templates.load(name))
            self.say(f"New project from the {name} template")

    def close_project(self) -> bool:
        """File > Close Project: asked like Open (unsaved changes, a running training), then
        the start page; False when refused."""
        if self.start_page_shown():
            return True
        if not self.may_close() or not self.maybe_save():
            return False
        self.doc.replace_project(templates.empty())  # nothing of the closed project stays behind
        self.show_start_page()
        return True

    # ------------------------------------------------------------ the start page
    def start_page_shown(self) -> bool:
        return self.pages.currentWidget() is self.start_page

    def show_start_page(self, message: str = "", error: bool = False) -> None:
        """The start page in the central area: the docks hidden (their layout kept), the
        summary gone and every action that needs a project off."""
        if not self.start_page_shown():
            self._editor_state = self.saveState()
            for dock in self.docks.values():
                dock.hide()
            self._project_actions().setEnabled(False)
            self.summary.hide()
            self.pages.setCurrentWidget(self.start_page)
        self.start_page.refresh()
        self.start_page.show_message(message, error)
        self._update_title()
        self.start_page.focus_first()

    def show_editor(self) -> None:
        """Back from the start page: the stack, the docks as they were, the actions on."""
        if not self.start_page_shown():
            return
        self.pages.setCurrentWidget(self.stack)
        self._project_actions().setEnabled(True)
        self.summary.show()
        if self._editor_state is not None:
            self.restoreState(self._editor_state)
        self.start_page.clear_message()
        self.stack.setFocus()
        self._update_title()

    def _project_actions(self) -> QActionGroup:
        """The actions that need a project, gathered once (on first use, after every part has
        joined): File's Save / Save As / Rename / Export / Close, everything in the Edit and
        Training menus and on the toolbar but New and Open, and the docks' View toggles. A
        disabled group keeps them off even when their owners enable them meanwhile."""
        if self._needs_project is None:
            keep = {self.actions_[k] for k in ("new", "open", "quit")}
            actions = [self.actions_[k] for k in ("save", "save_as", "rename_project", "export", "close_project")]
            for key in ("edit", "training"):
                actions += self.menu(key).actions()
            actions += self.toolbar.actions()
            actions += [dock.toggleViewAction() for dock in self.docks.values()]
            group = QActionGroup(self)
            group.setExclusionPolicy(QActionGroup.ExclusionPolicy.None_)
            for action in dict.fromkeys(actions):
                if action not in keep and not action.isSeparator() and action.actionGroup() is None:
                    group.addAction(action)
            self._needs_project = group
        return self._needs_project

    def rename_project(self) -> None:
        """Ask for a new project name; the change is one undoable step."""
        name = project_io.ask_project_name(self, self.doc.project.name)
        if name is None:
            return
        try:
            name = projects.check_name(name)
        except WorkbenchError as exc:
            self.say(f"Could not rename the project: {exc}")
            return
        if name != self.doc.project.name:
            self.doc.undo_stack.push(RenameProject(self, name))

    def show_project_name(self, name: str) -> None:
        """Rename the open project (RenameProject's redo and undo) and show it in the title."""
        self.doc.project.rename(name)
        self._update_title()

    def open_file(self, path: str | None = None) -> bool:
        if not self.may_close() or not self.maybe_save():
            return False
        if path is None:
            path = project_io.choose_open_path(self, str(project_io.start_folder(self.doc.path)))
            if not path:
                return False
        try:
            proj = project_io.load_project(path, self)  # asks first about code it would run
        except user_code.UntrustedCode:  # Cancel in the trust question: the open project stays
            self.say(f"Not opened: {path} runs code you did not trust")
            return False
        except WorkbenchError as exc:  # the open project stays as it was
            project_io.show_error(self, "Could not open the project", exc)
            return False
        self._show(proj)
        project_io.add_recent(path)
        self.say(f"Opened {path}")
        return True

    def save(self) -> bool:
        if self.doc.path is None:
            return self.save_as()
        return self._save_to(self.doc.path)

    def save_as(self) -> bool:
        folder = project_io.start_folder(self.doc.path)
        stem = self.doc.path.stem if self.doc.path else self.doc.project.name.lower().replace(" ", "_")
        path = project_io.choose_save_path(self, str(folder / f"{stem}{projects.SUFFIX}"))
        return self._save_to(Path(path)) if path else False

    def _save_to(self, path: Path) -> bool:
        try:
            target = self.doc.save(path)
        except WorkbenchError as exc:
            project_io.show_error(self, "Could not save the project", exc)
            return False
        project_io.add_recent(target)
        self._update_title()
        self.say(f"Saved {target}")
        return True

    def export_model(self) -> None:
        from ui.export.dialog import ExportDialog  # on first use: it loads the exporters

        error = self.doc.info.error
        if error is not None:
            QMessageBox.warning(self, "Export", f"The model cannot be built yet:\n{error}\n\n"
                                "Fix the marked row, then export.")
            return
        try:
            model = self.trained_model()
            model = model if model is not None else build.build_model(self.doc.spec)
        except WorkbenchError as exc:
            QMessageBox.warning(self, "Export", str(exc))
            return
        dialog = ExportDialog(self.doc.project, model, self)
        dialog.weightsLoaded.connect(lambda path: self.receive_weights(dialog.model, path))  # the live model now
        dialog.exec()

    # ------------------------------------------------------------ settings and closing
    def _restore_settings(self) -> None:
        store = project_io.settings()
        geometry = store.value("window/geometry")
        if isinstance(geometry, QByteArray) and self.restoreGeometry(geometry):
            state = store.value("window/state")
            if isinstance(state, QByteArray):
                self.restoreState(state)
        else:
            self.resize(1280, 800)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._froze_start_up:
            self._froze_start_up = True
            QTimer.singleShot(0, self._freeze_start_up)  # once the first paint's objects exist too

    def _freeze_start_up(self) -> None:
        """Move what is alive now out of the collector's reach (see the module's docstring). Only
        cycles among these objects could leak, and only while the window is open: closing it hands
        them back (``closeEvent``)."""
        if self.isVisible():
            gc.freeze()

    def closeEvent(self, event) -> None:
        if not self.may_close() or not self.maybe_save():
            event.ignore()
            return
        if self._froze_start_up:
            gc.unfreeze()  # what became garbage since start-up (an earlier project) is collected again
        store = project_io.settings()
        store.setValue("window/geometry", self.saveGeometry())
        store.setValue("window/state", self._editor_state if self.start_page_shown() else self.saveState())
        store.sync()
        for hook in self._shutdown_hooks:
            hook()
        event.accept()
