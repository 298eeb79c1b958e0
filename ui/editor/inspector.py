"""The inspector: a form for the selected layer, generated from the catalog.

It shows the layer's id (editable), type and help, one field per constructor argument,
and below the fields where it sits in the data flow (input -> output shape, parameters) and
what is wrong with it and how to fix that; where the fix is mechanical, a button under the
Problem box makes it (``FixButton``: one undoable edit named by the fix). Every change goes to
the document as an undoable edit and re-infers shapes at once. With no layer selected it
edits the model input instead (and shows the data check's problem with the input, if any).
A Parallel (or one of its Branch rows) also gets Add Branch / Remove Branch buttons under its
fields (merge and dim are ordinary fields from the catalog).

Layout rule: nothing above the fields changes height while a layer is edited (the flow line
and the Problem box sit below them), so a field never moves under the mouse. A refused value
is said in place: ``message`` floats just under the field it is about, over the form (it
moves nothing), and stays until the next accepted edit. Bad text follows the rule of
``ui.editor.fields``; Ctrl+Z / Ctrl+Shift+Z in any field undo or redo the model's edit (or
first drop text that was not applied), so field and model agree.
"""
from __future__ import annotations

from html import escape

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QFormLayout, QFrame, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QScrollArea, QVBoxLayout, QWidget)

from workbench.model import catalog
from workbench.errors import WorkbenchError
from workbench.model.params import Param
from workbench.model.shapes import fmt
from workbench.model.spec import INPUT_DTYPES, LayerSpec

from ui.common import icons
from ui.common.value_menu import ValueMenu
from ui.document.commands import UNSET
from ui.editor.fields import Field, ModelUndo, format_value, make_field, parse_text
from ui.editor.fix_button import FixButton

_INPUT_SHAPE = Param("shape", "shape", help="one example without the batch dimension: (channels, height, "
                     "width) for images, (features,) for tables")


def _label(text: str = "", name: str = "", wrap: bool = True) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(wrap)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if name:
        label.setObjectName(name)
    return label


def value_path(layer_id: str, name: str) -> str:
    """A layer argument's path as the CLI and the project's sweep name it: 'conv1.out_channels'
    ('model.data.p' for a layer whose id is a settings section)."""
    return f"model.{layer_id}.{name}" if layer_id in ("data", "training", "model") else f"{layer_id}.{name}"


class Inspector(QScrollArea):
    def __init__(self, doc, parent=None):
        super().__init__(parent)
        self.setObjectName("inspector")
        self.doc = doc
        self.layer: LayerSpec | None = None
        self.fields: dict[str, Field] = {}
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(240)
        self._undo_keys = ModelUndo(self._field_undo, self)
        self._anchor: QWidget | None = None  # the field the message is about
        self.value_menu = ValueMenu(self)  # a field's right-click menu: entries from parts above (Sweep this value…)
        self._build_page()
        self.refresh()
        doc.changed.connect(self.refresh)
        doc.fitChanged.connect(self.refresh)

    # ------------------------------------------------------------ selection
    def show_layer(self, layer_id: str | None) -> None:
        layer = self.doc.spec.find(layer_id) if layer_id else None
        rebuilt = layer is not self.layer or layer is None
        if rebuilt:
            self.layer = layer
            self._build_page()
        self.refresh()
        if rebuilt and self.problem.isVisibleTo(self._body):
            # a newly selected broken layer: its Problem box and Fix sit under the fields, below the
            # fold of a short dock (1024x700); bring them into view once the page is laid out. Only
            # on a new selection: while editing, nothing moves under the mouse.
            body = self._body
            QTimer.singleShot(0, lambda: self._body is body and self.ensureWidgetVisible(
                self.fix_button if self.fix_button.isVisibleTo(body) else self.problem, 10, 10))

    def _build_page(self) -> None:
        self._body = QWidget()  # the scroll area deletes the previous form
        self.fields = {}
        self.value_menu.clear()
        self._anchor = None
        box = QVBoxLayout(self._body)
        box.setContentsMargins(10, 8, 10, 8)
        box.setSpacing(6)
        self.title = _label(name="inspectorTitle")
        self.help = _label(name="muted")
        self.flow = _label(name="flow")
        self.problem = _label(name="problem")
        for label in (self.title, self.flow, self.problem):
            label.setTextFormat(Qt.TextFormat.RichText)
        for widget in (self.title, self.help):
            box.addWidget(widget)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        box.addLayout(form)
        if self.layer is None:
            self._input_form(form)
        else:
            self._layer_form(form, self.layer)
        self.fix_button = FixButton(self.doc, "fixButton")
        self.fix_button.refused.connect(lambda text: self._say(text, self.fix_button))
        for widget in (self.flow, self.problem):  # below the fields: they change height while editing
            box.addWidget(widget)
        box.addWidget(self.fix_button, 0, Qt.AlignmentFlag.AlignLeft)
        box.addStretch(1)
        # a refused value is said under its field, floating over the form (it moves nothing)
        self.message = _label(name="message")
        self.message.setParent(self._body)
        self.message.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.message.setAutoFillBackground(True)
        self.message.hide()
        self._body.installEventFilter(self)
        for widget in self._body.findChildren(QWidget):
            if isinstance(widget, (QLineEdit, QAbstractSpinBox)):
                widget.installEventFilter(self._undo_keys)
        self.setWidget(self._body)

    def _layer_form(self, form: QFormLayout, layer: LayerSpec) -> None:
        self.id_edit = QLineEdit(objectName="layerId")
        self.id_edit.setToolTip("The layer's name: its key in the state_dict and in exported files")
        self.id_edit.editingFinished.connect(self._rename)
        form.addRow("id", self.id_edit)
        kind = catalog.kind(layer.type)
        for param in kind.params if kind else ():
            field = make_field(param)
            field.edited.connect(lambda value, name=param.name: self._set_arg(name, value))
            field.invalid.connect(lambda text, widget=field.widget: self._say(text, widget))
            self.fields[param.name] = field
            label = QLabel(param.name)
            label.setToolTip(param.help)
            form.addRow(label, field.widget)
            self.value_menu.watch(field.widget, param, lambda name=param.name: value_path(self.layer.id, name), label)
        self.frozen = QCheckBox("keep weights fixed")
        self.frozen.setObjectName("frozen")
        self.frozen.toggled.connect(lambda on: self.doc.set_frozen(self.layer.id, on))
        form.addRow("freeze", self.frozen)
        self.add_branch = self.remove_branch = None
        if layer.type in ("Parallel", "Branch"):
            self._branch_buttons(form, layer)
        self._form = form

    def _branch_buttons(self, form: QFormLayout, layer: LayerSpec) -> None:
        """Add Branch (to the Parallel shown, or the one the Branch shown sits in) and, for a
        Branch, Remove Branch: each one undoable edit; a refusal is said under the button."""
        row = QWidget()
        buttons = QHBoxLayout(row)
        buttons.setContentsMargins(0, 0, 0, 0)
        self.add_branch = QPushButton("Add Branch", objectName="addBranch")
        self.add_branch.setToolTip("Add an empty branch (the identity) beside the others; drag layers into it")
        self.add_branch.clicked.connect(self._add_branch)
        buttons.addWidget(self.add_branch)
        if layer.type == "Branch":
            self.remove_branch = QPushButton("Remove Branch", objectName="removeBranch")
            self.remove_branch.setToolTip("Remove this branch with its layers (a Parallel keeps at least two)")
            self.remove_branch.clicked.connect(self._remove_branch)
            buttons.addWidget(self.remove_branch)
        buttons.addStretch(1)
        form.addRow("branches", row)

    def _parallel_of(self, layer: LayerSpec) -> str:
        return layer.id if layer.type == "Parallel" else self.doc.locate(layer.id)[0]

    def _add_branch(self) -> None:
        parallel = self._parallel_of(self.layer)
        self._run(lambda: self.doc.add_branch(parallel), self.add_branch)

    def _remove_branch(self) -> None:
        branch = self.layer.id
        self._run(lambda: self.doc.remove_branch(branch), self.remove_branch)

    def _input_form(self, form: QFormLayout) -> None:
        self.shape_edit = QLineEdit(objectName="inputShape")
        self.shape_edit.setToolTip(_INPUT_SHAPE.help + "; applied on Enter or when you leave the field")
        self.shape_edit.editingFinished.connect(lambda: self._set_input(self.shape_edit.text()))
        self.shape_edit.textEdited.connect(self._check_input)
        self.dtype = QComboBox(objectName="inputDtype")
        self.dtype.addItems(list(INPUT_DTYPES))
        self.dtype.setToolTip("float32 for images and tables; int64 for token ids (before an Embedding)")
        self.dtype.currentTextChanged.connect(lambda _: self._set_input(self.shape_edit.text()))
        form.addRow("input shape", self.shape_edit)
        form.addRow("input dtype", self.dtype)

    # ------------------------------------------------------------ model -> form
    def refresh(self) -> None:
        if self.layer is not None and not any(row is self.layer for _, row in self.doc.spec.walk()):
            self.layer = None  # deleted (an undo may bring it back; then select it again)
            self._build_page()
        if self.layer is None:
            self._refresh_input()
        else:
            self._refresh_layer(self.layer)

    def _refresh_input(self) -> None:
        spec, info = self.doc.spec, self.doc.info
        self.title.setText("<b>Model input</b>")
        self.help.setText("Select a layer in the stack to edit it, or drag one in from the palette.")
        self.flow.setText(f"input {fmt(spec.input_shape)} {spec.input_dtype} &rarr; output "
                          f"{fmt(info.output_shape)} &middot; {info.total_params:,} parameters")
        self._show_problem(self.doc.fit_problem_for(None))
        if not self.shape_edit.hasFocus():
            self.shape_edit.setText(format_value(spec.input_shape))
        self.dtype.blockSignals(True)
        self.dtype.setCurrentText(spec.input_dtype)
        self.dtype.blockSignals(False)

    def _refresh_layer(self, layer: LayerSpec) -> None:
        info = self.doc.layer_info(layer.id)
        kind = catalog.kind(layer.type)
        color = icons.category_color(layer.type).name()
        self.title.setText(f"<b>{escape(layer.id)}</b> &nbsp;<span style='color:{color}'>{escape(layer.type)}</span>")
        self.help.setText(kind.help if kind else "")
        if not self.id_edit.hasFocus():
            self.id_edit.setText(layer.id)
        if info is not None and info.in_shape is not None:
            params = f" &middot; {info.params:,} parameters" if info.params is not None else ""
            self.flow.setText(f"input {fmt(info.in_shape)} &rarr; output {fmt(info.out_shape)}{params}")
        else:
            self.flow.setText("input unknown: a layer above has a problem")
        self._show_problem(info.error if info and info.error else self.doc.fit_problem_for(layer.id))
        resolved = info.args if info else {}
        for name, field in self.fields.items():
            field.show_value(layer.args.get(name, UNSET), resolved.get(name))
        above = self.doc.frozen_above(layer.id)
        # a layer without weights (ReLU, pooling, Dropout) has nothing to freeze: no box, as in the stack
        self._form.setRowVisible(self.frozen, layer.frozen or catalog.nests(layer.type) or info is None
                                 or info.params != 0 or above is not None)
        self.frozen.blockSignals(True)
        self.frozen.setChecked(layer.frozen or above is not None)
        self.frozen.setEnabled(above is None)
        self.frozen.setToolTip(f"Frozen with the block '{above}': unfreeze it there" if above else
                               "Keep this layer's weights fixed while training (also mid-run)")
        self.frozen.blockSignals(False)

    def _show_problem(self, error) -> None:
        self.problem.setVisible(error is not None)
        self.fix_button.show_remedy(error.remedy if error is not None else None)
        if error is not None:
            fix = f"<br><b>Fix:</b> {escape(error.fix)}" if error.fix else ""
            self.problem.setText(f"<b>Problem:</b> {escape(error.problem)}{fix}")

    # ------------------------------------------------------------ form -> document
    def _say(self, text: str, anchor: QWidget | None = None) -> None:
        """Say why a value was refused, just under the field it is about (``anchor``)."""
        self._anchor = anchor if text else None
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self._place_message()

    def _place_message(self) -> None:
        if not self.message.isVisibleTo(self._body):
            return
        anchor = self._anchor
        if anchor is None or anchor.parent() is None:
            anchor = self.id_edit if self.layer is not None else self.shape_edit
        top_left = anchor.mapTo(self._body, anchor.rect().bottomLeft())
        left = min(top_left.x(), max(0, self._body.width() - 200))
        width = max(120, self._body.width() - left - 6)
        self.message.setFixedWidth(width)
        self.message.adjustSize()
        self.message.move(left, top_left.y() + 2)
        self.message.raise_()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self._body and event.type() in (QEvent.Type.Resize, QEvent.Type.LayoutRequest):
            self._place_message()
        return super().eventFilter(obj, event)

    def _run(self, edit, anchor: QWidget | None = None) -> bool:
        try:
            edit()
        except WorkbenchError as exc:
            self._say(str(exc), anchor)
            return False
        self._say("")
        return True

    def _set_arg(self, name: str, value) -> None:
        layer_id = self.layer.id
        self._run(lambda: self.doc.set_arg(layer_id, name, value), self.fields[name].widget)

    def _rename(self) -> None:
        if self.layer is not None and self.id_edit.text().strip() != self.layer.id:
            layer_id, new = self.layer.id, self.id_edit.text()
            self._run(lambda: self.doc.rename(layer_id, new), self.id_edit)

    def _input_problem(self, text: str):
        value, err = parse_text(_INPUT_SHAPE, text)
        if not err and (value is UNSET or not 1 <= len(value) <= 4):
            err = "the input shape needs 1 to 4 whole numbers, e.g. 1, 8, 8"
        return value, err

    def _check_input(self, text: str) -> None:
        """While typing: say in place why the shape is not valid (applied on Enter or leaving)."""
        err = self._input_problem(text)[1]
        self.shape_edit.setProperty("invalid", bool(err))
        self.shape_edit.style().polish(self.shape_edit)
        self._say(f"{err}; not applied" if err else "", self.shape_edit)

    def _set_input(self, text: str) -> None:
        value, err = self._input_problem(text)
        if err:
            self._say(err, self.shape_edit)
            return
        self._run(lambda: self.doc.set_input(tuple(value), self.dtype.currentText()), self.shape_edit)

    # ------------------------------------------------------------ keys
    def _field_undo(self, widget, which: str) -> None:
        """Ctrl+Z / Ctrl+Shift+Z in a field: drop typed text that is not applied, else undo or
        redo the model's last edit (the window's Undo), so the field shows what the model holds."""
        pending = any(f.pending() and widget in (f.widget, getattr(f.widget, "lineEdit", lambda: None)())
                      for f in self.fields.values()) or bool(widget.property("invalid"))
        if self.layer is not None and widget is self.id_edit:
            pending = pending or self.id_edit.text().strip() != self.layer.id  # a new id not applied yet
        elif self.layer is None and widget is self.shape_edit:
            typed = self._input_problem(self.shape_edit.text())[0]
            pending = pending or typed is None or tuple(typed) != tuple(self.doc.spec.input_shape)
        if which == "undo" and pending:
            self._say("")
            self.refresh_values()
            return
        if self.doc.edit_lock:
            self._say(f"the model cannot change while {self.doc.edit_lock}", widget)
            return
        stack = self.doc.undo_stack
        (stack.undo if which == "undo" else stack.redo)()
        self._say("")

    def refresh_values(self) -> None:
        """Show the model's values in every field, also the one being typed in."""
        if self.layer is None:
            self.shape_edit.setText(format_value(self.doc.spec.input_shape))
            self.shape_edit.setProperty("invalid", False)
            self.shape_edit.style().polish(self.shape_edit)
            return
        info = self.doc.layer_info(self.layer.id)
        resolved = info.args if info else {}
        for name, field in self.fields.items():
            field.show_value(self.layer.args.get(name, UNSET), resolved.get(name))
        self.id_edit.setText(self.layer.id)

    def focus_form(self) -> None:
        """Put the keyboard in the form (Edit > Edit in Inspector): the first argument of the
        layer, or the input shape, with its text selected."""
        if self.layer is None:
            target = self.shape_edit
        else:
            target = next((f.widget for f in self.fields.values() if f.widget.isEnabled()), self.id_edit)
        target.setFocus(Qt.FocusReason.ShortcutFocusReason)
        select = getattr(target, "selectAll", None)
        if select is not None:
            select()
        self.ensureWidgetVisible(target)
