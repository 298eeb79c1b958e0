"""Form fields generated from ``workbench.params.Param``: one widget per layer argument.

int -> spin box with the param's bounds, float -> spin box, bool -> check box, choice ->
combo box, and a line edit for lists (``ints``, ``shape``), text, and arguments that are
inferred from the input ("auto (64)") or may be left unset. A field emits ``edited`` with a
checked value (or ``UNSET`` to clear it) and ``invalid`` with a message for bad text; it
never emits while the inspector updates it from the model (napari's blocked-signal binding).

One rule for bad input everywhere: text that is not a valid value (letters, -1 where the
least is 1, a number past the maximum) is never applied, the field turns red, and
``invalid`` says why and which values are allowed; a spin box keeps what was typed until it is
left (then it shows the model's value again) instead of clamping -1 to 1. ``ModelUndo`` makes
Ctrl+Z / Ctrl+Shift+Z in a field undo the model's edit (or drop text not applied yet), so the
field and the model never disagree.
"""
from __future__ import annotations

import json
import re

from typing import Callable

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QKeySequence, QValidator
from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from workbench.model.params import REQUIRED, Param

from ui.document.commands import UNSET

_INT_LIMIT = 2**31 - 1


def format_value(value) -> str:
    if value is None or value is UNSET or value is REQUIRED:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):  # a Custom layer's kwargs
        return json.dumps(value)
    return str(value)


def parse_text(param: Param, text: str):
    """Text from a line edit -> (value or UNSET, error message or None)."""
    text = text.strip()
    if not text:
        if param.required:
            return None, f"{param.name} needs a value ({param.help})"
        return UNSET, None
    if param.kind == "str" or (param.kind == "ints" and text in param.words):
        return param.check(text)
    if param.kind == "json":
        try:
            return param.check(json.loads(text))
        except ValueError:
            return None, f'{param.name} must be a JSON object like {{"width": 64}}; got {text!r}'
    if param.kind == "bool":  # a nullable one (Upsample's align_corners) is a text field
        known = {"true": True, "false": False, "none": None}
        return param.check(known[text.lower()]) if text.lower() in known else (
            None, f"{param.name} must be true, false or none, got {text!r}")
    if param.kind in ("int", "float"):
        try:
            return param.check(int(text) if param.kind == "int" else float(text))
        except ValueError:
            return None, f"{param.name} must be a {'whole ' if param.kind == 'int' else ''}number, got {text!r}"
    if param.kind == "floats":
        try:
            numbers = [float(p) for p in re.split(r"[\s,()\[\]]+", text) if p]
        except ValueError:
            return None, f"{param.name} must be numbers like 0.5 or 0.1, 0.9; got {text!r}"
        return param.check(numbers[0] if len(numbers) == 1 else numbers)
    parts = [p for p in re.split(r"[\s,x×()\[\]]+", text) if p]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        words = f" or {', '.join(param.words)}" if param.words else ""
        return None, f"{param.name} must be whole numbers like 3 or 3, 3{words}; got {text!r}"
    if param.kind == "ints" and len(numbers) == 1:
        return param.check(numbers[0])
    return param.check(numbers)


def allowed(param: Param) -> str:
    """The values a number field takes, in words: '1 to 65536', 'at least 1', 'any number'."""
    low, high = param.min, param.max
    show = (lambda v: f"{v:g}") if param.kind == "float" else (lambda v: f"{int(v)}")
    if low is not None and high is not None:
        return f"{show(low)} to {show(high)}"
    if low is not None:
        return f"at least {show(low)}"
    if high is not None:
        return f"at most {show(high)}"
    return "any number"


def number_problem(param: Param, text: str, low: float, high: float) -> str | None:
    """Why typed text is not a value of this number field (None: it is)."""
    text = text.strip()
    try:
        value = int(text) if param.kind == "int" else float(text)
    except ValueError:
        whole = "a whole number" if param.kind == "int" else "a number"
        return f"{param.name} must be {whole} ({allowed(param)}); {text!r} is not applied" if text else \
            f"{param.name} needs a value ({allowed(param)})"
    if not low <= value <= high:
        return f"{param.name} must be {allowed(param)}; {text} is not applied"
    return None


def is_undo(event) -> str | None:
    """'undo' / 'redo' for the keys that undo or redo (Ctrl+Z, Ctrl+Shift+Z, Ctrl+Y), else None."""
    if event.matches(QKeySequence.StandardKey.Undo):
        return "undo"
    if event.matches(QKeySequence.StandardKey.Redo) or QKeySequence(event.keyCombination()) in (
            QKeySequence("Ctrl+Y"), QKeySequence("Ctrl+Shift+Z")):
        return "redo"
    return None


class ModelUndo(QObject):
    """An event filter for the inspector's text and spin fields: Ctrl+Z / Ctrl+Shift+Z call
    ``handler(widget, 'undo' | 'redo')`` (undo the model's edit, not just the text) instead of
    the line edit's own text undo."""

    def __init__(self, handler: Callable[[object, str], None], parent=None):
        super().__init__(parent)
        self.handler = handler

    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            which = is_undo(event)
            if which:
                if kind == QEvent.Type.ShortcutOverride:
                    event.accept()  # the key comes to the field as a key press: handled below
                else:
                    self.handler(obj, which)
                return True
        return False


class Field(QObject):
    edited = Signal(object)
    invalid = Signal(str)

    def __init__(self, param: Param, widget):
        super().__init__()
        self.param = param
        self.widget = widget
        widget.setToolTip(param.help)
        widget.setObjectName(f"field_{param.name}")

    def _default(self):
        return None if self.param.default is REQUIRED else self.param.default

    def pending(self) -> bool:
        """True while the widget holds typed text that is not applied."""
        return False

    def show_value(self, value, resolved=None) -> None:
        """Show the given value (UNSET: not given; ``resolved`` is what inference used)."""
        self.widget.blockSignals(True)
        try:
            self._show(self._default() if value is UNSET else value, value, resolved)
        finally:
            self.widget.blockSignals(False)

    def _show(self, shown, given, resolved) -> None:
        raise NotImplementedError


class BoolField(Field):
    def __init__(self, param):
        super().__init__(param, QCheckBox())
        self.widget.toggled.connect(self.edited.emit)

    def _show(self, shown, given, resolved):
        self.widget.setChecked(bool(shown))


class ChoiceField(Field):
    def __init__(self, param):
        super().__init__(param, QComboBox())
        self.widget.addItems([str(c) for c in param.choices])
        self.widget.currentIndexChanged.connect(lambda i: self.edited.emit(param.choices[i]))

    def _show(self, shown, given, resolved):
        if shown in self.param.choices:
            self.widget.setCurrentIndex(self.param.choices.index(shown))


class _IntSpin(QSpinBox):
    """Lets out-of-range and unfinished text be typed (it is not applied, and the field says
    why), where QSpinBox would refuse '-' or clamp -1 to the minimum."""

    def validate(self, text: str, pos: int):
        try:
            value = int(text.strip())
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        ok = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def valueFromText(self, text: str) -> int:
        try:
            return int(text.strip())
        except ValueError:
            return self.value()


class _NumberField(Field):
    """A spin box: applies each valid value; other text is said, in red, and not applied."""

    def __init__(self, param, spin):
        super().__init__(param, spin)
        spin.valueChanged.connect(self._value_changed)
        spin.lineEdit().textEdited.connect(self._typed)
        spin.editingFinished.connect(lambda: self._mark(False))  # left: it shows the model's value again

    def _mark(self, bad: bool) -> None:
        if self.widget.property("invalid") != bad:
            self.widget.setProperty("invalid", bad)
            self.widget.style().polish(self.widget)

    def _typed(self, text: str) -> None:
        problem = number_problem(self.param, text, self.widget.minimum(), self.widget.maximum())
        self._mark(bool(problem))
        if problem:
            self.invalid.emit(problem)

    def _value_changed(self, value) -> None:
        self._mark(False)
        self.edited.emit(value)

    def pending(self) -> bool:
        """Typed text that is not applied (it differs from the value)."""
        return bool(self.widget.property("invalid"))


class IntField(_NumberField):
    def __init__(self, param):
        spin = _IntSpin()
        spin.setRange(int(param.min) if param.min is not None else -_INT_LIMIT,
                      int(min(param.max, _INT_LIMIT)) if param.max is not None else _INT_LIMIT)
        spin.setAccelerated(True)
        super().__init__(param, spin)

    def _show(self, shown, given, resolved):
        self._mark(False)
        if shown is not None:
            self.widget.setValue(int(shown))
            self.widget.lineEdit().setText(self.widget.textFromValue(int(shown)))


class _FloatSpin(QDoubleSpinBox):
    """Shows 1e-05 as 1e-05 (not 0.00001000) and accepts what Python's float() reads."""

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def validate(self, text: str, pos: int):
        try:
            value = float(text)
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        ok = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()


class FloatField(_NumberField):
    def __init__(self, param):
        spin = _FloatSpin()
        spin.setDecimals(8)
        spin.setRange(param.min if param.min is not None else -1e12, param.max if param.max is not None else 1e12)
        spin.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        super().__init__(param, spin)

    def _show(self, shown, given, resolved):
        self._mark(False)
        if shown is not None:
            self.widget.setValue(float(shown))
            self.widget.lineEdit().setText(self.widget.textFromValue(float(shown)))


class TextField(Field):
    """Lists, text, inferred and optional arguments; applied as soon as the text is valid."""

    def __init__(self, param):
        super().__init__(param, QLineEdit())
        if param.kind in ("str", "json"):  # free text (a weights path): apply when done, not per letter
            self.widget.editingFinished.connect(lambda: self._edited(self.widget.text()))
        else:
            self.widget.textEdited.connect(self._edited)

    def _edited(self, text: str) -> None:
        value, err = parse_text(self.param, text)
        self.widget.setProperty("invalid", bool(err))
        self.widget.style().polish(self.widget)
        if err:
            self.invalid.emit(err)
        else:
            self.edited.emit(value)

    def pending(self) -> bool:
        """Typed text that is not applied (invalid)."""
        return bool(self.widget.property("invalid"))

    def _show(self, shown, given, resolved):
        if self.widget.hasFocus() and parse_text(self.param, self.widget.text())[0] == given:
            return  # the user is typing this value: leave their text alone
        self.widget.setText(format_value(given))
        if self.param.infer is not None:
            hint = f"auto ({format_value(resolved)})" if resolved is not None else "auto (from the input)"
        elif self.param.default is None:
            hint = "default"
        elif self.param.default is REQUIRED:
            hint = "required"
        else:
            hint = f"default: {format_value(self.param.default)}"
        self.widget.setPlaceholderText(hint)
        self.widget.setProperty("invalid", False)
        self.widget.style().polish(self.widget)


def make_field(param: Param) -> Field:
    if param.infer is not None or param.nullable or param.kind in ("ints", "floats", "shape", "str", "json"):
        return TextField(param)
    return {"bool": BoolField, "choice": ChoiceField, "int": IntField, "float": FloatField}[param.kind](param)
