"""The Augmentation dock: the project's train and eval pipelines (``data.augment_train`` /
``data.augment_eval``, see ``workbench.data.augment``) as ordered lists, with a live preview.

Add (a menu of the catalog by category), Remove, reorder by drag (``augment_steps.StepsModel``)
and the selected step's arguments (fields from ``ui.editor.fields``, the same as the
inspector's) are each one ``SetPipeline`` on the document's undo stack: the pipeline is replaced
in the project (``Project.set_setting``), so undo, redo, saving and the Edit menu treat it as
any other edit. An argument the step cannot take (torchvision's own check included) is said
under the form and not applied. After every change the preview (``augment_preview``) draws
again, and the Training panel's data check runs (``pipelineChanged``), so a step that cannot
apply to the data is named there before a run starts.
"""
from __future__ import annotations

import itertools
import re

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QAbstractItemView, QFormLayout, QHBoxLayout, QLabel, QListView, QMenu, QPushButton,
                               QScrollArea, QSizePolicy, QTabBar, QToolButton, QVBoxLayout, QWidget)

from workbench.data import augment
from workbench.errors import WorkbenchError

from ui.common import theme
from ui.data.augment_preview import AugmentPreview
from ui.data.augment_steps import StepsModel
from ui.document.commands import UNSET, SetValue
from ui.editor.fields import Field, make_field

PIPELINES = ("train", "eval")  # the tabs, in order: data.augment_<name>
_unique = itertools.count()


def setting_of(which: str) -> str:
    return f"data.augment_{which}"


class SetPipeline(SetValue):
    """Replace one pipeline; quick successive edits of one argument merge."""

    ID = 81

    def __init__(self, editor: "AugmentEditor", which: str, steps: list[dict], text: str, arg: tuple | None = None):
        self.editor, self.which, self.text_ = editor, which, text
        key = ("augment", which, *arg) if arg else ("augment", which, next(_unique))
        super().__init__(key, [dict(s) for s in editor.steps(which)], [dict(s) for s in steps])

    def label(self) -> str:
        return self.text_

    def apply(self, value) -> None:
        self.editor.apply_pipeline(self.which, value)


class AugmentEditor(QWidget):
    """The dock's widget."""

    pipelineChanged = Signal()  # the project's pipelines changed (an edit, undo or redo)

    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.doc = doc
        self.which = "train"
        self.tabs = QTabBar(objectName="augment_tabs")
        self.tabs.addTab("Train")
        self.tabs.addTab("Eval")
        self.tabs.setToolTip("Train: applied to training images (random draws each epoch). Eval: applied to "
                             "validation and test images.")
        self.tabs.currentChanged.connect(lambda i: self.show_pipeline(PIPELINES[i]))
        self.model = StepsModel(self)
        self.model.moveRequested.connect(self.move)
        self.list = QListView(objectName="augment_steps")
        self.list.setModel(self.model)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)  # only our own rows: canDropMimeData
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setDragEnabled(True)
        self.list.setAcceptDrops(True)
        self.list.setDropIndicatorShown(True)
        self.list.setMinimumSize(160, 60)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)  # the whole line is in the tooltip
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.selectionModel().currentChanged.connect(lambda *_: self._show_form())
        self.add_button = QToolButton(objectName="augment_add", text="Add")
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.add_button.setMenu(self._catalog_menu())
        self.add_button.setToolTip("Add a torchvision.transforms.v2 transform at the end (or after the selected step)")
        self.remove_button = QPushButton("Remove", objectName="augment_remove")
        self.remove_button.clicked.connect(self.remove_selected)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        left = QVBoxLayout()
        left.addWidget(self.tabs)
        left.addWidget(self.list, 1)
        left.addLayout(buttons)

        self.form_title = QLabel(objectName="augment_form_title", wordWrap=True)
        self.form_host = QWidget()
        self.form = QFormLayout(self.form_host)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.fields: dict[str, Field] = {}
        self._form_key: tuple | None = None  # (pipeline, row, type) the form shows
        self.form_problem = QLabel(objectName="augment_form_problem", wordWrap=True)
        self.form_problem.setStyleSheet(f"color: {theme.ERROR};")
        self.form_problem.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        inner = QWidget()
        middle = QVBoxLayout(inner)
        middle.setContentsMargins(0, 0, 0, 0)
        middle.addWidget(self.form_title)
        middle.addWidget(self.form_host)
        middle.addWidget(self.form_problem)
        middle.addStretch(1)
        scroll = QScrollArea(objectName="augment_form")
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setMinimumSize(160, 60)

        self.preview = AugmentPreview(self)
        self.preview.problem.connect(self._pipeline_problem)
        row = QHBoxLayout(self)
        row.addLayout(left, 3)
        row.addWidget(scroll, 3)
        row.addWidget(self.preview, 4)
        self._timer = QTimer(self, singleShot=True, interval=120)
        self._timer.timeout.connect(self.redraw)
        self._last_data = None
        self._dirty = True  # the preview is drawn once the dock is first shown
        doc.reset.connect(self.refresh)
        doc.undo_stack.indexChanged.connect(lambda *_: self._maybe_redraw())  # a setting changed elsewhere
        self.refresh()

    # ------------------------------------------------------------ reading the project
    def steps(self, which: str | None = None) -> list[dict]:
        return list(self.doc.project.data.value(f"augment_{which or self.which}"))

    def refresh(self) -> None:
        """Show the project's pipelines again (a new project, undo, redo)."""
        self.model.set_steps(self.steps())
        self._show_form()
        self.schedule_redraw()

    def show_pipeline(self, which: str) -> None:
        self.which = which
        if self.tabs.currentIndex() != PIPELINES.index(which):
            self.tabs.setCurrentIndex(PIPELINES.index(which))  # comes back here through currentChanged
            return
        self.refresh()
        if self.model.rowCount():
            self.select(0)

    def select(self, row: int) -> None:
        index = self.model.index(row, 0)
        self.list.setCurrentIndex(index)
        self._show_form()

    def current_row(self) -> int | None:
        index = self.list.currentIndex()
        return index.row() if index.isValid() and index.row() < self.model.rowCount() else None

    # ------------------------------------------------------------ edits (each one undo step)
    def add(self, name: str) -> None:
        steps = self.steps()
        row = self.current_row()
        at = len(steps) if row is None else row + 1
        steps.insert(at, augment.new_step(name, self.preview.image_size, self.preview.channels))
        self._push(steps, f"Add {name} to the {self.which} pipeline")
        self.select(at)

    def remove_selected(self) -> None:
        row = self.current_row()
        if row is None:
            return
        steps = self.steps()
        gone = steps.pop(row)
        self._push(steps, f"Remove {gone.get('type')} from the {self.which} pipeline")
        if steps:
            self.select(min(row, len(steps) - 1))

    def move(self, source: int, target: int) -> None:
        steps = self.steps()
        if not (0 <= source < len(steps) and 0 <= target < len(steps)) or source == target:
            return
        step = steps.pop(source)
        steps.insert(target, step)
        self._push(steps, f"Move {step.get('type')} to place {target + 1} of the {self.which} pipeline")
        self.select(target)

    def set_arg(self, row: int, name: str, value) -> bool:
        """Set (or with UNSET clear) one argument; a value the step refuses is said, not applied."""
        steps = self.steps()
        step = dict(steps[row])
        args = dict(step.get("args") or {})
        if value is UNSET:
            args.pop(name, None)
        else:
            args[name] = list(value) if isinstance(value, tuple) else value
        step = {"type": step["type"], "args": args} if args else {"type": step["type"]}
        try:
            augment.check_step(step, setting_of(self.which), row)
        except WorkbenchError as exc:
            self.form_problem.setText(str(exc))
            return False
        self.form_problem.clear()
        steps[row] = step
        self._push(steps, f"Set {step['type']}.{name} in the {self.which} pipeline", arg=(row, name))
        return True

    def _push(self, steps: list[dict], text: str, arg: tuple | None = None) -> None:
        self.doc.undo_stack.push(SetPipeline(self, self.which, steps, text, arg))

    def apply_pipeline(self, which: str, steps: list[dict]) -> None:
        """Put a pipeline in the project (SetPipeline's redo and undo) and show it."""
        self.doc.project.set_setting(setting_of(which), [dict(s) for s in steps])
        row = self.current_row()
        if which != self.which:
            self.which = which
            self.tabs.blockSignals(True)
            self.tabs.setCurrentIndex(PIPELINES.index(which))
            self.tabs.blockSignals(False)
        self.model.set_steps(self.steps())
        if row is not None and self.model.rowCount():
            self.list.setCurrentIndex(self.model.index(min(row, self.model.rowCount() - 1), 0))
        self._show_form()
        self._last_data = self.doc.project.data
        self.schedule_redraw()
        self.pipelineChanged.emit()

    # ------------------------------------------------------------ the form of the selected step
    def _show_form(self) -> None:
        row = self.current_row()
        step = self.model.steps[row] if row is not None else None
        key = (self.which, row, step.get("type")) if step else None
        if key is not None and key == self._form_key and self.fields:  # the same step: new values, same widgets
            args = step.get("args") or {}
            for name, field in self.fields.items():
                field.show_value(args.get(name, UNSET))  # a field being typed in keeps its text
            return
        self._form_key = key
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        self.form_problem.clear()
        self.remove_button.setEnabled(row is not None)
        if row is None:
            self.form_title.setText("Add a step, or select one to edit its arguments." if not self.model.rowCount()
                                    else "Select a step to edit its arguments.")
            return
        step = self.model.steps[row]
        kind = augment.catalog().get(step.get("type"))
        if kind is None:
            self.form_title.setText(f"{step.get('type')}: not a transform this version offers; remove it")
            return
        self.form_title.setText(f"<b>{kind.name}</b><br>{kind.help}")
        args = step.get("args") or {}
        for p in kind.params:
            field = make_field(p)
            field.show_value(args.get(p.name, UNSET))
            field.edited.connect(lambda value, r=row, n=p.name: self.set_arg(r, n, value))
            field.invalid.connect(self.form_problem.setText)
            self.form.addRow(p.name, field.widget)
            self.fields[p.name] = field

    def _catalog_menu(self) -> QMenu:
        menu = QMenu(self)
        category = None
        for name, cat in augment.OFFERED:
            if cat != category:
                menu.addSection(cat.capitalize())
                category = cat
            action = QAction(name, menu)
            action.setToolTip(augment.catalog()[name].help)
            action.triggered.connect(lambda _=False, n=name: self.add(n))
            menu.addAction(action)
        menu.setToolTipsVisible(True)
        return menu

    # ------------------------------------------------------------ preview
    def schedule_redraw(self) -> None:
        """Draw soon; a hidden dock (behind another tab) draws when it is shown."""
        if self.isVisible():
            self._timer.start()
        else:
            self._dirty = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._dirty:
            self._dirty = False
            self._timer.start()

    def _maybe_redraw(self) -> None:
        if self.doc.project.data != self._last_data:
            if self.model.steps != self.steps():
                self.refresh()
            else:
                self.schedule_redraw()

    def redraw(self) -> None:
        self._timer.stop()
        self._last_data = self.doc.project.data
        self.preview.request(self.doc.project.data, self.steps(), setting_of(self.which))

    def _pipeline_problem(self, message: str) -> None:
        match = re.search(re.escape(setting_of(self.which)) + r"\[(\d+)\]", message)
        row = int(match.group(1)) if match else None
        if row != self.model.problem_row:
            current = self.current_row()
            self.model.set_steps(self.model.steps, row)
            if current is not None:
                self.list.setCurrentIndex(self.model.index(current, 0))

    def shutdown(self) -> None:
        self._timer.stop()
        self.preview.shutdown()


def install(window) -> AugmentEditor:
    """The Augmentation dock (View > Augmentation), tabbed with the Training dock (which stays in
    front); its edits make the Training panel check the data again."""
    editor = AugmentEditor(window.doc)
    frame = window.add_dock("Augmentation", editor, Qt.DockWidgetArea.BottomDockWidgetArea)
    training = window.docks.get("Training")
    if training is not None:
        window.tabifyDockWidget(training, frame)
        training.raise_()
    panel = getattr(getattr(window, "training", None), "panel", None)
    if panel is not None:
        editor.pipelineChanged.connect(panel.probe.schedule)
    window.add_shutdown_hook(editor.shutdown)
    return editor
