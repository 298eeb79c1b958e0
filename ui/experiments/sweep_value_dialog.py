""""Sweep this value…": the small dialog that turns one setting or layer argument into a
parameter of the project's search space, as a range (low, high, log scale, an integer step) or
a list of choices.

It opens prefilled from the value the project has now and the field's ``Param`` (its bounds
and choices): a positive float spans a decade either side on a log scale (the learning rate,
weight decay), a probability its half-range, a width its half and double as choices
(16, 32, 64), a choice its list, a flag both values; an existing parameter opens as it is. What
is typed is checked as ``workbench sweep`` would check it (``experiments.space.problems``: the
field's bounds, a log range above 0, an empty range): the problem shows under the fields and
OK waits until there is none.
"""
from __future__ import annotations


from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QRadioButton, QVBoxLayout, QWidget)

from workbench.errors import WorkbenchError
from workbench.experiments import space as sweep_space
from workbench.experiments.space import SearchSpace, SweepParam, read_number
from workbench.model.params import Param

from ui.common import theme

RANGE_KINDS = ("int", "float")  # what a range can sweep; every other kind is a choice list


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _clip(value: float, param: Param) -> float:
    if param.min is not None:
        value = max(value, param.min)
    if param.max is not None:
        value = min(value, param.max)
    return value


def suggest(path: str, param: Param, value) -> SweepParam:
    """A sensible first guess for sweeping ``value`` (what the project has now) of ``param``."""
    if param.kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        bounded = param.min is not None and param.max is not None and param.max - param.min <= 1
        if bounded:  # a probability or a fraction: the lower part of its range, where it is useful
            low, high = param.min, _clip(max(2 * value, (param.min + param.max) / 2), param)
            return SweepParam(path, float(low), float(high) if high > low else float(param.max))
        if value > 0:
            low, high = _clip(value / 10, param), _clip(value * 10, param)
            if low > 0 and high > low:
                return SweepParam(path, float(low), float(high), log=True)
        if value == 0 and (param.min is None or param.min <= 1e-5):  # weight decay: off, or a little
            return SweepParam(path, 1e-5, 1e-2, log=True)
    if param.kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        if value >= 8 and value & (value - 1) == 0:  # a width: half, as is, double
            choices = [int(_clip(v, param)) for v in (value // 2, value, value * 2)]
            return SweepParam(path, choices=tuple(dict.fromkeys(choices)))
        low, high = int(_clip(max(1, value // 2), param)), int(_clip(max(value * 2, value + 2), param))
        if high > low:
            return SweepParam(path, low, high, integer=True)
    if param.kind == "choice" and param.choices:
        choices = list(param.choices)
        if len(choices) > 4:  # the current one and the next few
            start = choices.index(value) if value in choices else 0
            choices = [choices[(start + i) % len(choices)] for i in range(3)]
        return SweepParam(path, choices=tuple(choices))
    if param.kind == "bool":
        return SweepParam(path, choices=(False, True))
    if param.kind == "ints" and isinstance(value, int) and not isinstance(value, bool):
        return SweepParam(path, choices=(value, value + 2))
    return SweepParam(path, choices=(value,) if value is not None else ())


class SweepValueDialog(QDialog):
    """Pick the range or choices for one path; ``param()`` is the result once accepted."""

    def __init__(self, project, path: str, param: Param, existing: SweepParam | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("sweepValueDialog")
        self.project, self.path, self.field_param = project, path, param
        try:
            self.current = sweep_space.current_value(project, path)
        except KeyError:
            self.current = None
        start = existing or suggest(path, param, self.current)
        self.setWindowTitle(f"Sweep {path}")
        head = QLabel(f"<b>{path}</b><br>now {_text(self.current) if self.current is not None else 'not set'}"
                      + (f" &middot; {param.help}" if param.help else ""), objectName="sweepValueHead")
        head.setWordWrap(True)
        self.range_button = QRadioButton("Range", objectName="sweepRange")
        self.choice_button = QRadioButton("Choices", objectName="sweepChoices")
        self.modes = QButtonGroup(self)
        self.modes.addButton(self.range_button)
        self.modes.addButton(self.choice_button)
        can_range = param.kind in RANGE_KINDS
        self.range_button.setEnabled(can_range)
        if not can_range:
            self.range_button.setToolTip(f"{param.name} takes {param.kind} values: give a list of choices")
        mode_row = QHBoxLayout()
        mode_row.addWidget(self.range_button)
        mode_row.addWidget(self.choice_button)
        mode_row.addStretch(1)

        self.low = QLineEdit(objectName="sweepLow")
        self.high = QLineEdit(objectName="sweepHigh")
        self.log = QCheckBox("log scale", objectName="sweepLog")
        self.log.setToolTip("Sample evenly in the exponent: 1e-4..1e-1 tries each decade as often")
        self.step = QLineEdit(objectName="sweepStep", placeholderText="1" if param.kind == "int" else "continuous")
        self.step.setToolTip("Only multiples of this from low (empty: every whole number, or continuous)")
        self.range_box = QWidget()
        form = QFormLayout(self.range_box)
        form.setContentsMargins(16, 0, 0, 0)
        form.addRow("Low", self.low)
        form.addRow("High", self.high)
        form.addRow("", self.log)
        form.addRow("Step", self.step)
        self.choices = QLineEdit(objectName="sweepChoiceList", placeholderText="16, 32, 64")
        self.choices.setToolTip("Values separated by commas; each is tried as it is")
        self.choice_box = QWidget()
        line = QFormLayout(self.choice_box)
        line.setContentsMargins(16, 0, 0, 0)
        line.addRow("Values", self.choices)
        self.problem = QLabel(objectName="sweepValueProblem", wordWrap=True)
        self.problem.setStyleSheet(f"color: {theme.BAD};")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Add to Sweep" if existing is None
                                                                          else "Change")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        root = QVBoxLayout(self)
        root.addWidget(head)
        root.addLayout(mode_row)
        root.addWidget(self.range_box)
        root.addWidget(self.choice_box)
        root.addWidget(self.problem)
        root.addStretch(1)
        root.addWidget(self.buttons)
        self._fill(start)
        for widget in (self.low, self.high, self.step, self.choices):
            widget.textChanged.connect(self.check)
        self.log.toggled.connect(self.check)
        self.modes.buttonToggled.connect(lambda *_: self.check())
        self.check()
        self.setMinimumWidth(380)

    def _fill(self, start: SweepParam) -> None:
        if start.is_choice or self.field_param.kind not in RANGE_KINDS:
            self.choice_button.setChecked(True)
            self.choices.setText(", ".join(_text(c) for c in start.choices))
            if self.field_param.kind in RANGE_KINDS and self.current is not None:
                self.low.setText(_text(self.current))
                self.high.setText(_text(self.current))
        else:
            self.range_button.setChecked(True)
            self.low.setText(_text(start.low))
            self.high.setText(_text(start.high))
            self.log.setChecked(start.log)
            self.step.setText("" if start.step is None else _text(start.step))
            self.choices.setText(_text(self.current) if self.current is not None else "")

    def _build(self) -> SweepParam:
        """The parameter as typed; a WorkbenchError says what is wrong."""
        if self.choice_button.isChecked():
            return sweep_space.parse_param(f"{self.path}={self.choices.text().strip()}")
        integer = self.field_param.kind == "int"
        data = {"low": _number(self.low.text(), "low"), "high": _number(self.high.text(), "high")}
        if self.log.isChecked():
            data["log"] = True
        if self.step.text().strip():
            data["step"] = _number(self.step.text(), "step")
        if integer:
            data["int"] = True
        return SweepParam.from_json(self.path, data)

    def check(self) -> str:
        """Show the range or the choices, say what is wrong (empty: nothing), OK only without a problem."""
        ranged = self.range_button.isChecked()
        self.range_box.setVisible(ranged)
        self.choice_box.setVisible(not ranged)
        try:
            param = self._build()
            problems = sweep_space.problems(SearchSpace(params=(param,)), self.project)
            text = problems[0] if problems else ""
        except WorkbenchError as exc:
            text = str(exc)
        prefix = f"sweep parameter {self.path}: "
        text = text[len(prefix):] if text.startswith(prefix) else text
        self.problem.setText(text)
        self.problem.setVisible(bool(text))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not text)
        return text

    def param(self) -> SweepParam:
        return self._build()


def _number(text: str, name: str) -> float | int:
    text = text.strip()
    if not text:
        raise WorkbenchError(f"{name} needs a number")
    try:
        return read_number(text)
    except ValueError as why:  # "not a number" / "not a finite number"
        raise WorkbenchError(f"{name} must be {str(why).removeprefix('not ')}, got {text!r}") from None
