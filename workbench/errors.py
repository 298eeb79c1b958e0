"""Error types a user can cause. Each carries a message meant for a person, not a trace."""
from __future__ import annotations

from dataclasses import dataclass


class WorkbenchError(Exception):
    """Base for every error the project raises on purpose: the message is the user's answer."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, at a JSON path such as ``$.model.layers[2].args``."""

    path: str
    message: str
    plain: bool = False  # the message names its place in words ("Data: ..."): str() leaves the path out

    def __str__(self) -> str:
        return self.message if self.plain else f"{self.path}: {self.message}"


class SpecError(WorkbenchError):
    """A project or model description is malformed; lists every problem found."""

    def __init__(self, problems: list[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            text = f"{head}{self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            text = f"{head}{len(self.problems)} problems:\n{lines}"
        super().__init__(text)


def layer_label(layer_id: str | None, layer_type: str, position: str) -> str:
    """How every message names a layer: ``layer 'fc' (Linear, #9)``; ``layer #9 (Linear)`` while
    the layer has no usable id. ``position`` counts from 1, nested layers as ``2.1``."""
    if layer_id is None:
        return f"layer #{position} ({layer_type})"
    return f"layer '{layer_id}' ({layer_type}, #{position})"


class LayerError(WorkbenchError):
    """A layer cannot work where it stands; names the layer, what it got, and the fix."""

    def __init__(self, layer_id: str, layer_type: str, position: str, problem: str, fix: str = "",
                 remedy: object | None = None):
        self.layer_id = layer_id
        self.layer_type = layer_type
        self.position = position
        self.problem = problem
        self.fix = fix
        self.remedy = remedy  # a workbench.model.remedies.Remedy: the fix as one edit, where it is mechanical
        text = f"{layer_label(layer_id, layer_type, position)}: {problem}"
        if fix:
            text += f"; {fix}"
        super().__init__(text)
