"""The Sweep dock's undoable edits of the project.

- ``SetSweep``: the project's search space (``Project.sweep``) replaced by another, from
  "Sweep this value…", Remove, or the dock's trials / time / sampler / pruner boxes (quick
  successive changes of one box merge, as the settings form's do).
- ``apply_trial``: a trial's values written into the project as ONE undo step ("Apply trial
  7: lr=0.003, conv1.out_channels=64") through the commands every other edit uses: a layer
  argument through ``ProjectDocument.set_arg``, a setting through the training settings form
  (``SettingsForm.set_value``: an optimiser or schedule type replaces its section, as choosing it
  there does). The values are first checked on a copy (``experiments.space.apply``), so a value
  the project cannot take changes nothing.
"""
from __future__ import annotations

from typing import Callable

from workbench.errors import WorkbenchError
from workbench.experiments import space as sweep_space
from workbench.project.search_space import SearchSpace

from ui.document.commands import SetValue
from ui.experiments.sweep_table import format_number, short_path

FIRST = ("training.optimizer.type", "training.schedule.type", "training.loss")  # they reset their section's arguments


class SetSweep(SetValue):
    """Replace the project's search space; ``show(space)`` puts it in the project and the dock."""

    ID = 71

    def __init__(self, project, space: SearchSpace | None, text: str, show: Callable[[SearchSpace | None], None],
                 key: str = ""):
        self.text_, self.show = text, show
        super().__init__(("sweep", key or text), project.sweep, space)

    def label(self) -> str:
        return self.text_

    def mergeWith(self, other) -> bool:
        if not self.key[1].startswith("option:"):  # only the option boxes merge; each parameter edit is a step
            return False
        return super().mergeWith(other)

    def apply(self, value) -> None:
        self.show(value)


def setting_key(path: str) -> tuple[str, str]:
    """The settings form's (section, name) of a setting path: 'training.optimizer.lr' ->
    ('optimizer', 'lr'), 'data.batch_size' -> ('data', 'batch_size')."""
    parts = path.split(".")
    if len(parts) == 3 and parts[0] == "training":
        return parts[1], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise WorkbenchError(f"{path} is not a setting the window can change")


def trial_text(number: int, values: dict) -> str:
    parts = ", ".join(f"{short_path(k)}={format_number(v)}" for k, v in values.items())
    return f"Apply trial {number}" + (f": {parts}" if parts else "")


def apply_trial(doc, form, number: int, values: dict) -> str:
    """Write a trial's values into the open project as one undoable edit; returns its text.
    A WorkbenchError (a locked model, a value the project cannot take) changes nothing."""
    if doc.edit_lock:
        raise WorkbenchError(f"the model cannot change while {doc.edit_lock}; stop it first")
    applied = sweep_space.apply(doc.project, values)  # checked on a copy first
    for path in values:
        kind, layer_id, _ = sweep_space.target(path)
        if kind == "layer" and doc.spec.find(layer_id) is None:
            raise WorkbenchError(f"trial {number} sets {path}, but the model has no layer '{layer_id}' now")
    text = trial_text(number, values)
    ordered = sorted(values, key=lambda p: p not in FIRST)
    stack = doc.undo_stack
    stack.beginMacro(text)
    try:
        for path in ordered:
            kind, a, b = sweep_space.target(path)
            if kind == "layer":
                doc.set_arg(a, b, applied.model.find(a).args.get(b, values[path]))
            else:
                form.set_value(*setting_key(a), applied.setting(a))
    finally:
        stack.endMacro()
    return text
