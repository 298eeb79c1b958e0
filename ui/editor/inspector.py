"""The inspector: a form for the selected layer, generated from the catalog.

It shows the layer's id (editable), type and help, where it sits in the data flow (input
-> output shape, parameters), what is wrong with it and how to fix that, and one field per
constructor argument. Every change goes to the document as an undoable edit and re-infers
shapes at once. With no layer selected it edits the model input instead.
"""
from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QFrame, QLabel, QLineEdit, QScrollArea,
                               QVBoxLayout, QWidget)

from workbench.model import catalog
from workbench.errors import WorkbenchError
from workbench.model.params import Param
from workbench.model.shapes import fmt
from workbench.model.spec import INPUT_DTYPES, LayerSpec

from ui.common import icons
from ui.document.commands import UNSET
from ui.editor.fields import Field, format_value, make_field, parse_text

_INPUT_SHAPE = Param("shape", "shape", help="one example without the batch dimension: (channels, height, "
                     "width) for images, (features,) for tables")


def _label(text: str = "", name: str = "", wrap: bool = True) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(wrap)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if name:
        label.setObjectName(name)
    return label


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
        self.setMinimumWidth(280)
        self._build_page()
        self.refresh()
        doc.changed.connect(self.refresh)

    # ------------------------------------------------------------ selection
    def show_layer(self, layer_id: str | None) -> None:
        layer = self.doc.spec.find(layer_id) if layer_id else None
        if layer is not self.layer or layer is None:
            self.layer = layer
            self._build_page()
        self.refresh()

    def _build_page(self) -> None:
        self._body = QWidget()  # the scroll area deletes the previous form
        self.fields = {}
        box = QVBoxLayout(self._body)
        box.setContentsMargins(10, 8, 10, 8)
        box.setSpacing(6)
        self.title = _label(name="inspectorTitle")
        self.help = _label(name="muted")
        self.flow = _label(name="flow")
        self.problem = _label(name="problem")
        for label in (self.title, self.flow, self.problem):
            label.setTextFormat(Qt.TextFormat.RichText)
        self.message = _label(name="message")
        for widget in (self.title, self.help, self.flow, self.problem):
            box.addWidget(widget)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        box.addLayout(form)
        if self.layer is None:
            self._input_form(form)
        else:
            self._layer_form(form, self.layer)
        box.addWidget(self.message)
        self.message.hide()
        box.addStretch(1)
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
            field.invalid.connect(self._say)
            self.fields[param.name] = field
            label = QLabel(param.name)
            label.setToolTip(param.help)
            form.addRow(label, field.widget)
        self.frozen = QCheckBox("keep weights fixed")
        self.frozen.setObjectName("frozen")
        self.frozen.toggled.connect(lambda on: self.doc.set_frozen(self.layer.id, on))
        form.addRow("freeze", self.frozen)

    def _input_form(self, form: QFormLayout) -> None:
        self.shape_edit = QLineEdit(objectName="inputShape")
        self.shape_edit.setToolTip(_INPUT_SHAPE.help + "; press Enter to apply")
        self.shape_edit.editingFinished.connect(lambda: self._set_input(self.shape_edit.text()))
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
        self._show_problem(None)
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
        self._show_problem(info.error if info else None)
        resolved = info.args if info else {}
        for name, field in self.fields.items():
            field.show_value(layer.args.get(name, UNSET), resolved.get(name))
        self.frozen.blockSignals(True)
        self.frozen.setChecked(layer.frozen)
        self.frozen.blockSignals(False)

    def _show_problem(self, error) -> None:
        self.problem.setVisible(error is not None)
        if error is not None:
            fix = f"<br><b>Fix:</b> {escape(error.fix)}" if error.fix else ""
            self.problem.setText(f"<b>Problem:</b> {escape(error.problem)}{fix}")

    # ------------------------------------------------------------ form -> document
    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _run(self, edit) -> bool:
        try:
            edit()
        except WorkbenchError as exc:
            self._say(str(exc))
            return False
        self._say("")
        return True

    def _set_arg(self, name: str, value) -> None:
        layer_id = self.layer.id
        self._run(lambda: self.doc.set_arg(layer_id, name, value))

    def _rename(self) -> None:
        if self.layer is not None and self.id_edit.text().strip() != self.layer.id:
            layer_id, new = self.layer.id, self.id_edit.text()
            self._run(lambda: self.doc.rename(layer_id, new))

    def _set_input(self, text: str) -> None:
        value, err = parse_text(_INPUT_SHAPE, text)
        if err or value is UNSET or not 1 <= len(value) <= 4:
            self._say(err or "the input shape needs 1 to 4 whole numbers, e.g. 1, 8, 8")
            return
        self._run(lambda: self.doc.set_input(tuple(value), self.dtype.currentText()))
