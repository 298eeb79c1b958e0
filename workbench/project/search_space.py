"""A sweep's search space as data: the project file's ``"sweep"`` section and ``--param`` text.

One parameter is a ``SweepParam``: a PATH (a setting's dotted name, ``training.optimizer.lr``,
or a layer argument, ``conv1.out_channels`` / ``model.conv1.out_channels``) and either a range
(``low``..``high``, optionally log scale, whole numbers, a step) or a list of choices. A
``SearchSpace`` holds the parameters and how the sweep runs them (sampler, pruner, trials,
time budget, the metric and its direction).

This module checks the form only (numbers, an empty range, a log range reaching 0, an empty
choice list), so a project whose sweep names a layer that was later removed still opens;
whether each PATH names something in the project is ``workbench.experiments.space.problems``'s
question, asked before a sweep runs. It lives here, below ``workbench.experiments``, because
the project file holds it (``Project.sweep``); ``workbench.experiments.space`` re-exports it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.errors import Problem, SpecError, WorkbenchError
from workbench.model.params import shown

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
METRICS = {"val_acc": "maximize", "val_loss": "minimize"}  # the per-epoch validation metric -> its natural direction
DIRECTIONS = ("maximize", "minimize")
DEFAULT_TRIALS = 20
MAX_TRIALS = 100_000
_RANGE_KEYS = {"low", "high", "log", "step", "int"}
_SPACE_KEYS = {"params", "sampler", "pruner", "trials", "timeout", "metric", "direction"}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return json.dumps(v) if not isinstance(v, str) else v


@dataclass(frozen=True)
class SweepParam:
    """One searched value: a range (``low``..``high``, ``log``, ``step``, ``integer``) or ``choices``."""

    path: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    integer: bool = False
    choices: tuple = field(default=())

    @property
    def is_choice(self) -> bool:
        return self.low is None and self.high is None

    def to_json(self) -> dict:
        if self.is_choice:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        if self.integer:
            out["int"] = True
        return out

    @classmethod
    def from_json(cls, path: str, data: Any, where: str | None = None,
                  problems: list[Problem] | None = None) -> "SweepParam | None":
        """A parameter from its project-file form; every problem goes into ``problems`` with its
        JSON path (``where``, default ``$.sweep.params.<path>``). Without ``problems`` the first
        one is raised as a WorkbenchError naming the parameter."""
        where = where or f"$.sweep.params.{path}"
        mine: list[Problem] = []
        param = _from_json(path, data, where, mine)
        if problems is None:
            if mine:
                raise WorkbenchError(f"sweep parameter {path}: {mine[0].message}")
            return param
        problems.extend(mine)
        return None if mine else param

    def describe(self) -> str:
        """One line for lists: ``log 0.0001..0.1``, ``int 16..128 step 16``, ``16, 32, 64``."""
        if self.is_choice:
            return ", ".join(_fmt(c) for c in self.choices)
        head = "log " if self.log else ("int " if self.integer else "")
        if self.log and self.integer:
            head = "int log "
        text = f"{head}{_fmt(self.low)}..{_fmt(self.high)}"
        return text + (f" step {_fmt(self.step)}" if self.step is not None else "")

    def spec_text(self) -> str:
        """The ``--param`` text that gives this parameter (``PATH=SPEC``)."""
        if self.is_choice:
            return f"{self.path}=" + ",".join(_fmt(c) for c in self.choices)
        kind = ("int:" if self.integer else "") + ("log:" if self.log else "")
        text = f"{self.path}={kind}{_fmt(self.low)}..{_fmt(self.high)}"
        return text + (f":{_fmt(self.step)}" if self.step is not None else "")


def range_problem(low: Any, high: Any, log: bool, step: Any, integer: bool) -> tuple[str, str] | None:
    """What is wrong with a range, as (the key at fault, the message), or None."""
    for key, v in (("low", low), ("high", high)):
        if not _is_number(v):
            return key, f"must be a finite number, got {shown(v)}"
        if integer and not float(v).is_integer():
            return key, f"must be a whole number for an integer range, got {shown(v)}"
    if low >= high:
        return "high", (f"empty range: low {_fmt(low)} must be below high {_fmt(high)} "
                        "(a single value is a choice list of one)")
    if log and low <= 0:
        return "low", f"a log range needs values above 0, got low {_fmt(low)}"
    if step is not None:
        if not _is_number(step) or step <= 0:
            return "step", f"must be a number above 0, got {shown(step)}"
        if integer and not float(step).is_integer():
            return "step", f"must be a whole number for an integer range, got {shown(step)}"
        if log:
            return "step", "a log range cannot have a step (Optuna samples it continuously)"
        if step > high - low:
            return "step", f"step {_fmt(step)} is larger than the range {_fmt(low)}..{_fmt(high)}"
    return None


def _from_json(path: str, data: Any, where: str, problems: list[Problem]) -> SweepParam | None:
    if not isinstance(data, dict):
        problems.append(Problem(where, 'must be an object: {"low": .., "high": ..} or {"choices": [...]}'))
        return None
    if "choices" in data:
        for key in sorted(data.keys() - {"choices"}):
            problems.append(Problem(f"{where}.{key}", "a choice list takes no other key"))
        choices = data["choices"]
        if not isinstance(choices, list) or not choices:
            problems.append(Problem(f"{where}.choices", f"must be a non-empty list of values, got {shown(choices)}"))
            return None
        for i, c in enumerate(choices):
            plain = c is None or isinstance(c, (bool, int, str)) or (isinstance(c, float) and math.isfinite(c))
            if not plain:
                problems.append(Problem(f"{where}.choices[{i}]", f"must be a number, true/false, text or null, "
                                        f"got {shown(c)}"))
                return None
        if len({json.dumps(c) for c in choices}) != len(choices):
            problems.append(Problem(f"{where}.choices", "holds the same value twice"))
            return None
        return SweepParam(path, choices=tuple(choices))
    for key in sorted(data.keys() - _RANGE_KEYS):
        problems.append(Problem(f"{where}.{key}",
                                f"unknown key (allowed: choices, or {', '.join(sorted(_RANGE_KEYS))})"))
    for key in ("low", "high"):
        if key not in data:
            problems.append(Problem(f"{where}.{key}", 'missing: a range needs "low" and "high"'))
            return None
    flags = {}
    for key in ("log", "int"):
        flags[key] = data.get(key, False)
        if not isinstance(flags[key], bool):
            problems.append(Problem(f"{where}.{key}", f"must be true or false, got {shown(flags[key])}"))
            return None
    low, high, step = data["low"], data["high"], data.get("step")
    bad = range_problem(low, high, flags["log"], step, flags["int"])
    if bad:
        problems.append(Problem(f"{where}.{bad[0]}", bad[1]))
        return None
    if flags["int"]:
        low, high, step = int(low), int(high), (int(step) if step is not None else None)
    return SweepParam(path, low, high, flags["log"], step, flags["int"])


def _value(text: str) -> Any:
    """A choice item: a JSON number / true / false / null where it parses, else the text."""
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (bool, int, float)) else text


def read_number(text: str) -> float | int:
    """A bound typed as text (the ``--param`` spec, the window's range fields): an int where it
    is one, else a float; ValueError "not a number" / "not a finite number"."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _number(text: str, path: str, spec: str) -> float | int:
    try:
        return read_number(text)
    except ValueError as why:
        raise WorkbenchError(f"sweep parameter {path}: {text.strip()!r} in {spec!r} is {why}") from None


def parse_param(text: str) -> SweepParam:
    """``PATH=SPEC`` as ``--param`` takes it: ``log:1e-4..1e-1``, ``0..0.5``, ``int:16..128``,
    ``int:16..128:16``, ``16,32,64`` / ``SGD,Adam``. A WorkbenchError names the parameter."""
    path, eq, spec = text.partition("=")
    path, spec = path.strip(), spec.strip()
    if not eq or not path or not spec:
        raise WorkbenchError(f"{text!r} (--param): give PATH=SPEC, e.g. training.optimizer.lr=log:1e-4..1e-1, "
                             "drop.p=0..0.5, conv1.out_channels=int:16..128:16 or conv1.out_channels=16,32,64")
    if any(not part for part in path.split(".")) or any(ch.isspace() for ch in path):
        raise WorkbenchError(f"sweep parameter {path!r}: not a setting or layer path (write training.optimizer.lr, "
                             "conv1.out_channels or model.conv1.out_channels)")
    body, integer, log = spec, False, False
    while True:
        head, colon, rest = body.partition(":")
        if colon and head.strip() in ("int", "log") and ".." in rest:
            integer |= head.strip() == "int"
            log |= head.strip() == "log"
            body = rest
        else:
            break
    if ".." not in body:
        if integer or log:
            raise WorkbenchError(f"sweep parameter {path}: {spec!r} needs a range LOW..HIGH after int: / log:")
        items = [item for item in body.split(",")]
        if any(not item.strip() for item in items):
            raise WorkbenchError(f"sweep parameter {path}: {spec!r} has an empty item in its choice list")
        choices = [_value(item) for item in items]
        return SweepParam.from_json(path, {"choices": choices})
    low_text, _, rest = body.partition("..")
    high_text, colon, step_text = rest.partition(":")
    low, high = _number(low_text, path, spec), _number(high_text, path, spec)
    step = _number(step_text, path, spec) if colon else None
    bad = range_problem(low, high, log, step, integer)
    if bad:
        raise WorkbenchError(f"sweep parameter {path}: {bad[1]}")
    if integer:
        low, high, step = int(low), int(high), (int(step) if step is not None else None)
    else:
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    return SweepParam(path, low, high, log, step, integer)


@dataclass(frozen=True)
class SearchSpace:
    """What a sweep searches and how: the parameters, sampler (tpe / random / grid), pruner
    (median / hyperband / none), the study's total of trials, a time budget in seconds (None:
    none) and the per-epoch validation metric with its direction."""

    params: tuple[SweepParam, ...] = ()
    sampler: str = "tpe"
    pruner: str = "median"
    trials: int = DEFAULT_TRIALS
    timeout: float | None = None
    metric: str = "val_acc"
    direction: str = "maximize"

    def to_json(self) -> dict:
        return {"params": {p.path: p.to_json() for p in self.params}, "sampler": self.sampler,
                "pruner": self.pruner, "trials": self.trials, "timeout": self.timeout, "metric": self.metric,
                "direction": self.direction}

    def param(self, path: str) -> SweepParam | None:
        return next((p for p in self.params if p.path == path), None)

    def with_param(self, param: SweepParam) -> "SearchSpace":
        """A copy with ``param`` added, or replacing the one with its path (kept in place)."""
        if self.param(param.path) is None:
            return replace(self, params=(*self.params, param))
        return replace(self, params=tuple(param if p.path == param.path else p for p in self.params))

    def without_param(self, path: str) -> "SearchSpace":
        return replace(self, params=tuple(p for p in self.params if p.path != path))

    @classmethod
    def from_json(cls, data: Any, path: str = "$.sweep", problems: list[Problem] | None = None) -> "SearchSpace":
        """Read the ``sweep`` section; every problem goes into ``problems`` with its JSON path (a
        bad value falls back to its default so one pass finds them all). Without ``problems``
        a SpecError-like WorkbenchError lists them."""
        collect: list[Problem] = [] if problems is None else problems
        before = len(collect)
        space = _space_from_json(data, path, collect)
        if problems is None and len(collect) > before:
            raise SpecError(collect[before:])
        return space


def _space_from_json(data: Any, path: str, problems: list[Problem]) -> SearchSpace:
    if not isinstance(data, dict):
        problems.append(Problem(path, "must be an object with \"params\" and the sweep's options"))
        return SearchSpace()
    for key in sorted(data.keys() - _SPACE_KEYS):
        problems.append(Problem(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(_SPACE_KEYS))})"))
    params: list[SweepParam] = []
    raw = data.get("params", {})
    if not isinstance(raw, dict):
        problems.append(Problem(f"{path}.params", "must be an object: {PATH: {\"low\": .., \"high\": ..} or "
                                "{\"choices\": [...]}}"))
        raw = {}
    for name, spec in raw.items():
        if not name or any(not part for part in name.split(".")) or any(ch.isspace() for ch in name):
            problems.append(Problem(f"{path}.params.{name}", "not a setting or layer path (write "
                                    "training.optimizer.lr, conv1.out_channels or model.conv1.out_channels)"))
            continue
        param = SweepParam.from_json(name, spec, f"{path}.params.{name}", problems)
        if param is not None:
            params.append(param)
    values: dict[str, Any] = {}
    for key, allowed in (("sampler", SAMPLERS), ("pruner", PRUNERS), ("metric", tuple(METRICS))):
        if key in data:
            if data[key] in allowed:
                values[key] = data[key]
            else:
                problems.append(Problem(f"{path}.{key}",
                                        f"must be one of {', '.join(allowed)}, got {shown(data[key])}"))
    direction = data.get("direction")
    if direction is None:
        values["direction"] = METRICS[values.get("metric", "val_acc")]
    elif direction in DIRECTIONS:
        values["direction"] = direction
    else:
        problems.append(Problem(f"{path}.direction", f"must be maximize or minimize, got {shown(direction)}"))
    if "trials" in data:
        trials = data["trials"]
        if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= MAX_TRIALS:
            problems.append(Problem(f"{path}.trials", f"must be a whole number from 1 to {MAX_TRIALS}, "
                                    f"got {shown(trials)}"))
        else:
            values["trials"] = trials
    timeout = data.get("timeout")
    if timeout is not None:
        if not _is_number(timeout) or timeout <= 0:
            problems.append(Problem(f"{path}.timeout", f"must be seconds above 0 or null, got {shown(timeout)}"))
        else:
            values["timeout"] = float(timeout)
    return SearchSpace(tuple(params), **values)
