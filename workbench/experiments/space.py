"""A search space against a project: which PATHs name something, the values a trial writes,
the value a project has now.

A PATH is a setting's dotted name (``training.optimizer.lr``, ``data.batch_size``: what
``Project.setting`` takes) or a layer argument ``<layer id>.<argument>`` (``conv1.out_channels``);
``model.<id>.<argument>`` is accepted for every layer and is the only way to name a layer whose
id is ``data``, ``training`` or ``model``. Ids are unique across the model, nested blocks
included, so an id finds its layer wherever it sits.

The space as data (``SweepParam``, ``SearchSpace``, ``parse_param``) is the project file's
(workbench/project/search_space.py, which ``Project.sweep`` needs one layer down); it is
re-exported here so sweep code imports one module.
"""
from __future__ import annotations

from typing import Any

from workbench.errors import SpecError, WorkbenchError
from workbench.model import catalog
from workbench.model.params import Param, shown
from workbench.model.spec import ModelSpec
from workbench.project import project_file
from workbench.project.project_file import Project
from workbench.project.search_space import (PRUNERS, SAMPLERS, SearchSpace, SweepParam, parse_param,
                                            range_problem, read_number)
from workbench.project.settings import DataSettings, Settings, TrainingSettings

__all__ = ["PRUNERS", "SAMPLERS", "SearchSpace", "SweepParam", "parse_param", "range_problem", "read_number",
           "problems", "apply", "current_value", "target", "grid_values", "MAX_GRID"]

MAX_GRID = 10_000  # points a grid sampler may enumerate (the product over every parameter)
_SECTIONS: dict[str, type[Settings]] = {"data": DataSettings, "training": TrainingSettings}
_NOT_SWEPT = {"training.device": "the device is where trials run, not a hyperparameter (use --device)"}


def target(path: str) -> tuple[str, str, str]:
    """What a PATH names: ``("setting", "training.optimizer.lr", "")`` or
    ``("layer", "conv1", "out_channels")``."""
    head = path.split(".", 1)[0]
    if head in _SECTIONS:
        return "setting", path, ""
    rest = path[len("model."):] if head == "model" else path
    layer_id, _, arg = rest.partition(".")
    return "layer", layer_id, arg


def _setting_param(name: str) -> tuple[Param | None, str | None]:
    """The Param of a setting by dotted name, or (None, why not)."""
    section, _, rest = name.partition(".")
    cls: type[Settings] | None = _SECTIONS.get(section)
    parts = rest.split(".") if rest else []
    if not parts:
        return None, f"{name!r} is a section; name one setting, e.g. {section}.batch_size"
    for part in parts[:-1]:
        nested = cls.sections() if cls is not None else {}
        if part not in nested:
            return None, f"no settings section {part!r} in {section} (sections: {', '.join(nested) or 'none'})"
        cls = nested[part]
        section = f"{section}.{part}"
    known = {p.name: p for p in cls.params()}
    if parts[-1] not in known:
        shown_names = ", ".join(list(known)[:20]) + (", ..." if len(known) > 20 else "")
        sections = ", ".join(f"{section}.{n}" for n in cls.sections())
        return None, (f"no setting {parts[-1]!r} in {section} (settings: {shown_names}"
                      + (f"; sections: {sections})" if sections else ")"))
    return known[parts[-1]], None


def _layer_param(model: ModelSpec, layer_id: str, arg: str) -> tuple[Param | None, str | None]:
    layer = model.find(layer_id)
    if layer is None:
        ids = sorted(model.ids())
        listed = ", ".join(ids[:15]) + (", ..." if len(ids) > 15 else "")
        return None, (f"no layer {layer_id!r} in the model (layer ids: {listed}; a setting starts with data. "
                      "or training.)")
    kind = catalog.kind(layer.type)
    if kind is None:
        return None, f"layer {layer_id!r} has the unknown type {layer.type!r}"
    if not arg:
        return None, f"name one argument of layer {layer_id!r}, e.g. {layer_id}.{kind.params[0].name}" \
            if kind.params else f"layer {layer_id!r} ({layer.type}) takes no arguments"
    param = kind.param(arg)
    if param is None:
        known = ", ".join(p.name for p in kind.params) or "none"
        return None, f"layer {layer_id!r} ({layer.type}) has no argument {arg!r} (arguments: {known})"
    return param, None


def _value_problem(param: Param, sp: SweepParam) -> str | None:
    """A range or choice the parameter cannot take."""
    values = list(sp.choices) if sp.is_choice else [sp.low, sp.high]
    if not sp.is_choice and param.kind in ("int", "ints") and not sp.integer:
        return (f"takes whole numbers: write int:{sp.low:g}..{sp.high:g} (or a choice list), not a continuous "
                "range")
    if not sp.is_choice and param.kind not in ("int", "ints", "float"):
        return f"takes {param.kind} values, not a range: give a choice list"
    for v in values:
        _, err = param.check(v)
        if err:
            return err
    return None


def problems(space: SearchSpace, project: Project) -> list[str]:
    """Everything that stops this space from running on this project, one line each, each
    naming its parameter: an unknown layer id / argument / setting, a range or choice the
    value cannot take, an empty range, a log range reaching 0 or below, an empty choice list,
    a continuous range under the grid sampler."""
    out: list[str] = []
    if not space.params:
        out.append("the search space is empty: add a parameter (--param PATH=SPEC or the project's sweep section)")
    seen: set[tuple[str, str, str]] = set()
    for sp in space.params:
        name = f"sweep parameter {sp.path}"
        if sp.is_choice and not sp.choices:
            out.append(f"{name}: the choice list is empty")
            continue
        if not sp.is_choice:
            bad = range_problem(sp.low, sp.high, sp.log, sp.step, sp.integer)
            if bad:
                out.append(f"{name}: {bad[1]}")
                continue
        kind, a, b = target(sp.path)
        if (kind, a, b) in seen:
            out.append(f"{name}: names a value another parameter already sweeps")
            continue
        seen.add((kind, a, b))
        if kind == "setting":
            if a in _NOT_SWEPT:
                out.append(f"{name}: {_NOT_SWEPT[a]}")
                continue
            param, why = _setting_param(a)
        else:
            param, why = _layer_param(project.model, a, b)
        if param is None:
            out.append(f"{name}: {why}")
            continue
        why = _value_problem(param, sp)
        if why:
            out.append(f"{name}: {why}")
            continue
        if space.sampler == "grid" and not sp.is_choice:
            if not sp.integer:
                out.append(f"{name}: the grid sampler needs a choice list or an integer range, not the continuous "
                           f"range {sp.describe()} (use tpe or random, or list the values: 1e-3,1e-2,1e-1)")
    if space.sampler == "grid" and not out:
        size = 1
        for values in grid_values(space).values():
            size *= len(values)
        if size > MAX_GRID:
            out.append(f"the grid has {size:,} points, more than {MAX_GRID:,}: use fewer values or tpe / random")
    return out


def grid_values(space: SearchSpace) -> dict[str, list]:
    """The grid sampler's values per parameter: a choice list as it is, an integer range
    stepped (step 1 by default). Call after ``problems`` found none."""
    out: dict[str, list] = {}
    for sp in space.params:
        if sp.is_choice:
            out[sp.path] = list(sp.choices)
        else:
            step = int(sp.step or 1)
            count = (int(sp.high) - int(sp.low)) // step + 1
            out[sp.path] = [int(sp.low) + i * step for i in range(min(count, MAX_GRID + 1))]
    return out


def apply(project: Project, values: dict[str, Any]) -> Project:
    """A copy of ``project`` with each PATH set to its value, checked as a project file is: a
    value the setting or argument cannot take is a SpecError naming its JSON path (a model that
    does not infer is not checked here: that is ``build.infer``'s). The original is unchanged;
    the copy keeps its file path, run history and sweep."""
    data = project.to_json()
    for path, value in values.items():
        kind, a, b = target(path)
        if kind == "setting":
            _set_setting(data, a, value)
        else:
            layer = _find_layer_json(data["model"]["layers"], a)
            if layer is None:
                raise WorkbenchError(f"sweep parameter {path}: no layer {a!r} in the model")
            layer.setdefault("args", {})[b] = value
    try:
        changed = project_file.from_json(data, "the trial's values")
    except SpecError as exc:
        raise SpecError(exc.problems, f"the values {_values_text(values)}") from None
    changed.path = project.path
    changed.runs = project.runs
    return changed


def _values_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={shown(v)}" for k, v in values.items())


def _set_setting(data: dict, name: str, value: Any) -> None:
    parts = name.split(".")
    section = data.setdefault(parts[0], {})
    for part in parts[1:-1]:
        section = section.setdefault(part, {})
    if parts[1:] == ["optimizer", "type"]:  # arguments the new type does not take are dropped, as the window does
        from workbench.project.settings import OptimizerSettings

        problems_: list = []
        current = OptimizerSettings.from_json(section, "$.training.optimizer", problems_)
        if isinstance(value, str):
            section.clear()
            section.update(current.for_type(value).to_json() if not problems_ else {})
    section[parts[-1]] = value


def _find_layer_json(layers: list, layer_id: str) -> dict | None:
    for layer in layers:
        if layer.get("id") == layer_id:
            return layer
        found = _find_layer_json(layer.get("layers", []), layer_id)
        if found is not None:
            return found
    return None


def current_value(project: Project, path: str) -> Any:
    """The value ``path`` has in ``project`` now (a layer argument left out: its default, or
    None where it is inferred or required). KeyError where the path names nothing."""
    kind, a, b = target(path)
    if kind == "setting":
        param, why = _setting_param(a)
        if param is None:
            raise KeyError(why)
        return project.setting(a)
    param, why = _layer_param(project.model, a, b)
    if param is None:
        raise KeyError(why)
    layer = project.model.find(a)
    if b in layer.args:
        return layer.args[b]
    from workbench.model.params import REQUIRED

    return None if param.default is REQUIRED else param.default
