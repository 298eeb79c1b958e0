"""The project file (``*.wbproj``): model spec + data + training settings + sweep + run history.

JSON, versioned, human-readable. Loading validates everything once and reports all problems
with their JSON path (the ``data`` and ``training`` sections become the typed settings of
workbench/project/settings.py); older versions are migrated; saving is atomic and compact
(settings at their default are not written). The optional ``sweep`` section is the search
space of a sweep (workbench/project/search_space.py); its form is checked at load, whether its
paths name layers and settings is checked when a sweep runs. Weights never live in here.

Only a regular file of at most ``MAX_FILE_BYTES`` is read (a FIFO would block the read
forever), and its JSON must keep the limits of workbench/model/spec.py (nesting depth, length
of numbers, valid text), so whatever a file holds ends in a Project or a SpecError.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench import fileio
from workbench.errors import Problem, SpecError, WorkbenchError
from workbench.model.params import shown
from workbench.model.spec import ModelSpec, json_problems, model_from_json, read_json
from workbench.model.backbones import stage_names
from workbench.project import code_refs
from workbench.project.search_space import SearchSpace
from workbench.project.settings import OLD_SCHEDULES, DataSettings, TrainingSettings

FORMAT = "model-workbench/project"
VERSION = 3  # 2: every torch.optim optimiser, scheduler and loss with its own arguments (see _v1_to_v2);
# 3: augmentation pipelines data.augment_train / data.augment_eval in place of data.augment (see _v2_to_v3)
SUFFIX = ".wbproj"
MAX_NAME = 200  # characters in a project name (the window title shows it)
MAX_FILE_BYTES = 64 << 20  # far above any real project (a model spec and settings are a few kB)
_TOP_KEYS = {"format", "version", "name", "description", "model", "data", "training", "sweep", "runs"}


def _v1_to_v2(doc: dict) -> dict:
    """Version 1 gave every optimiser workbench's own defaults (momentum 0.9, weight decay 0,
    AdamW included) and named schedules step / cosine / onecycle; version 2 leaves out what
    equals torch's default. The old meaning is written out, so an old project trains exactly
    as it did; only the arguments its optimiser took are kept."""
    training = doc.get("training")
    if not isinstance(training, dict):
        return doc
    training = dict(training)
    opt = training.get("optimizer")
    if isinstance(opt, dict):
        opt = dict(opt)
        kind = opt.get("type", "Adam")
        used = {"SGD": ("momentum", "nesterov", "weight_decay"), "Adam": ("beta1", "beta2", "weight_decay"),
                "AdamW": ("beta1", "beta2", "weight_decay"),
                "RMSprop": ("momentum", "weight_decay")}.get(kind) if isinstance(kind, str) else None
        if used is not None:  # another type is refused by the version-2 check, as it was by version 1
            for name in ("momentum", "nesterov", "beta1", "beta2", "weight_decay"):
                if name not in used:
                    opt.pop(name, None)
            if "momentum" in used:
                opt.setdefault("momentum", 0.9)
            if kind == "AdamW":
                opt.setdefault("weight_decay", 0.0)
        training["optimizer"] = opt
    elif opt is None and "optimizer" not in training:
        pass  # Adam with lr 1e-3: torch's defaults then and now
    schedule = training.get("schedule")
    if isinstance(schedule, dict):
        schedule = dict(schedule)
        kind = schedule.get("type", "none")
        if isinstance(kind, str) and kind in OLD_SCHEDULES:
            schedule["type"] = OLD_SCHEDULES[kind]
        if kind == "step":
            schedule.setdefault("gamma", 0.1)
        else:  # only step read them
            if kind != "onecycle":
                schedule.pop("max_lr", None)
            for name in ("step_size", "gamma"):
                schedule.pop(name, None)
        training["schedule"] = schedule
    doc["training"] = training
    return doc


# version n -> function turning a version-n document into version n+1
def _v2_to_v3(doc: dict) -> dict:
    """Version 2's ``data.augment: true`` (random shifts of up to an eighth of the image, zero
    filled, and horizontal flips except for handwritten digits) becomes the same as a training
    pipeline: RandomAffine(degrees=0, translate=(1/8, 1/8)) and RandomHorizontalFlip;
    ``augment: false`` is no pipeline."""
    data = doc.get("data")
    if not isinstance(data, dict) or "augment" not in data:
        return doc
    data = dict(data)
    on = data.pop("augment")
    if on is True and "augment_train" not in data:
        steps: list[dict] = [{"type": "RandomAffine", "args": {"degrees": 0, "translate": [0.125, 0.125]}}]
        if data.get("source", "digits") not in ("digits", "mnist"):
            steps.append({"type": "RandomHorizontalFlip"})
        data["augment_train"] = steps
    elif not isinstance(on, bool):
        data["augment"] = on  # not a version-2 value: reported as an unknown key
    doc["data"] = data
    return doc


MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2, 2: _v2_to_v3}


@dataclass
class Project:
    name: str
    model: ModelSpec
    data: DataSettings = field(default_factory=DataSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    runs: list[dict] = field(default_factory=list)
    description: str = ""
    path: Path | None = None
    sweep: SearchSpace | None = None  # the search space of `workbench sweep` and the window's Sweep dock


    def to_json(self) -> dict:
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": self.name}
        if self.description:
            out["description"] = self.description
        out["model"] = self.model.to_json()
        out["data"] = self.data.to_json()
        out["training"] = self.training.to_json()
        if self.sweep is not None:
            out["sweep"] = self.sweep.to_json()
        if self.runs:
            out["runs"] = self.runs
        return out

    def rename(self, name: str) -> str:
        """Give the project a new name (saved in the file as ``name``); returns it cleaned."""
        clean = check_name(name)
        self.name = clean
        return clean

    def set_sweep(self, space: SearchSpace | None) -> None:
        """Replace the search space (None: no sweep section); the space is a frozen value, so a
        running sweep keeps the one it started with."""
        if space is not None and not isinstance(space, SearchSpace):
            raise TypeError(f"a SearchSpace or None, got {type(space).__name__}")
        self.sweep = space

    def setting(self, name: str) -> Any:
        """A setting by dotted name: 'data.batch_size', 'training.optimizer.lr'."""
        section, _, rest = name.partition(".")
        return self._section(section).value(rest)

    def set_setting(self, name: str, value: Any) -> None:
        """Change one setting by dotted name. The section object is replaced, never changed in
        place: a run keeps the settings it started with."""
        section, _, rest = name.partition(".")
        changed = self._section(section).with_value(rest, value)
        if section == "data":
            self.data = changed
        else:
            self.training = changed

    def _section(self, section: str) -> DataSettings | TrainingSettings:
        if section not in ("data", "training"):
            raise KeyError(f"no settings section {section!r}; use data.NAME or training.NAME")
        return self.data if section == "data" else self.training

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def run_folder(self) -> Path:
        """Where runs of this project go by default: ``<file stem>.runs`` beside the file."""
        if self.path is None:
            return Path.cwd() / "runs"
        return self.path.with_name(self.path.stem + ".runs")


def check_name(name: Any) -> str:
    """A project name without surrounding spaces; WorkbenchError says what is wrong with it."""
    if not isinstance(name, str) or not name.strip():
        raise WorkbenchError("a project name cannot be empty; type a name")
    clean = " ".join(name.split())  # line breaks and tabs would break the title bar
    if len(clean) > MAX_NAME:
        raise WorkbenchError(f"a project name has at most {MAX_NAME} characters; this one has {len(clean)}")
    return clean


def loads(text: str, source: str | None = None) -> Project:
    return from_json(read_json(text, source), source)


def from_json(data: Any, source: str | None = None) -> Project:
    if not isinstance(data, dict):
        raise SpecError([Problem("$", "a project file must hold a JSON object")], source)
    unsafe = json_problems(data)
    if unsafe:
        raise SpecError(unsafe, source)
    if data.get("format") != FORMAT:
        raise SpecError([Problem("$.format", f"must be {FORMAT!r}; is this a Model Workbench project?")], source)
    data = migrate(data, source)
    problems: list[Problem] = []
    for key in sorted(data.keys() - _TOP_KEYS):
        problems.append(Problem(f"$.{key}", f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})"))
    name = data.get("name", "Untitled")
    if not isinstance(name, str) or not name.strip():
        problems.append(Problem("$.name", "must be a non-empty text"))
        name = "Untitled"
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append(Problem("$.description", "must be text"))
        description = ""
    if "model" not in data:
        problems.append(Problem("$.model", "missing: a project needs a model with 'input' and 'layers'"))
    model = _collect(lambda: model_from_json(data.get("model", {}), "$.model"), problems)
    data_settings = DataSettings.from_json(data.get("data"), "$.data", problems)
    training = TrainingSettings.from_json(data.get("training"), "$.training", problems)
    if model is not None:
        problems += lr_scale_problems(model, training)
    sweep = SearchSpace.from_json(data["sweep"], "$.sweep", problems) if data.get("sweep") is not None else None
    runs = data.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        problems.append(Problem("$.runs", "must be a list of run records"))
        runs = []
    if problems:
        raise SpecError(problems, source)
    return Project(name, model, data_settings, training, runs, description, sweep=sweep)


def layer_paths(model: ModelSpec) -> list[str]:
    """What ``training.optimizer.lr_scale`` (and freezing) can name: each layer's module path
    (a nested one as 'block.inner') and each backbone stage ('backbone.layer4')."""
    paths = [p for p, _ in model.walk()]
    return paths + [f"{p}.{s}" for p, layer in model.walk() for s in stage_names(layer.type)]


def lr_scale_problems(model: ModelSpec, training: TrainingSettings,
                      path: str = "$.training.optimizer.lr_scale") -> list[Problem]:
    """An ``lr_scale`` entry naming no layer or stage of the model."""
    known = layer_paths(model)
    out = []
    for key in training.optimizer.lr_scale:
        if key not in known:
            shown_ids = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
            out.append(Problem(f"{path}.{key}", f"no layer or backbone stage {key!r} in the model (layer ids: "
                               f"{shown_ids}; a nested layer as 'block.inner', a stage as 'backbone.layer4')"))
    return out


def _collect(fn, problems: list[Problem]):
    try:
        return fn()
    except SpecError as exc:
        problems.extend(exc.problems)
        return None


def migrate(data: dict, source: str | None = None) -> dict:
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SpecError([Problem("$.version", f"must be a whole number >= 1, got {shown(version)}")], source)
    if version > VERSION:
        raise SpecError([Problem("$.version", f"this file is version {shown(version)}, written by a newer Model "
                                 f"Workbench (this one reads up to {VERSION}); please update")], source)
    while version < VERSION:
        data = MIGRATIONS[version](dict(data))
        version += 1
        data["version"] = version
    return data


def load(path: Path | str) -> Project:
    path = Path(path)
    if not fileio.exists(path):
        raise WorkbenchError(f"{path}: no such file")
    fileio.regular_file(path, "project")  # before opening: a FIFO would block the read forever
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SpecError([Problem("$", f"{path.stat().st_size / 2**20:,.0f} MB is far too large for a project "
                                     f"file (at most {MAX_FILE_BYTES >> 20} MB); is it a data or weights file?")],
                            str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkbenchError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise SpecError([Problem("$", "not a text file (is it a checkpoint or an export?)")], str(path)) from None
    except OSError as exc:
        raise WorkbenchError(f"{path}: cannot read ({exc.strerror or exc})") from None
    project = loads(text, str(path))
    project.path = path
    code_refs.resolve(project, path.parent)  # code files named relative to the project's folder
    return project


def save(project: Project, path: Path | str | None = None) -> Path:
    """Write atomically (temp + fsync + rename); the old file survives any failure."""
    target = Path(path) if path is not None else project.path
    if target is None:
        raise WorkbenchError("the project has no file yet; choose where to save it")
    doc = code_refs.relative_json(project.to_json(), target.parent)  # code files beside it: relative
    fileio.write_text(target, json.dumps(doc, indent=2) + "\n")
    project.path = target
    return target


def new(name: str, model: ModelSpec, **sections) -> Project:
    """A project from a model and the ``data`` / ``training`` sections as JSON objects."""
    problems: list[Problem] = []
    data_settings = DataSettings.from_json(sections.get("data", {}), "$.data", problems)
    training = TrainingSettings.from_json(sections.get("training", {}), "$.training", problems)
    problems += lr_scale_problems(model, training)
    if problems:
        raise SpecError(problems)
    return Project(name, model, data_settings, training)
