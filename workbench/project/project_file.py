"""The project file (``*.wbproj``): model spec + data + training settings + run history.

JSON, versioned, human-readable. Loading validates everything once and reports all problems
with their JSON path (the ``data`` and ``training`` sections become the typed settings of
workbench/project/settings.py); older versions are migrated; saving is atomic and compact
(settings at their default are not written). Weights never live in here.

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
from workbench.project.settings import DataSettings, TrainingSettings

FORMAT = "model-workbench/project"
VERSION = 1
SUFFIX = ".wbproj"
MAX_NAME = 200  # characters in a project name (the window title shows it)
MAX_FILE_BYTES = 64 << 20  # far above any real project (a model spec and settings are a few kB)
_TOP_KEYS = {"format", "version", "name", "description", "model", "data", "training", "runs"}
# version n -> function turning a version-n document into version n+1
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


@dataclass
class Project:
    name: str
    model: ModelSpec
    data: DataSettings = field(default_factory=DataSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    runs: list[dict] = field(default_factory=list)
    description: str = ""
    path: Path | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "name": self.name}
        if self.description:
            out["description"] = self.description
        out["model"] = self.model.to_json()
        out["data"] = self.data.to_json()
        out["training"] = self.training.to_json()
        if self.runs:
            out["runs"] = self.runs
        return out

    def rename(self, name: str) -> str:
        """Give the project a new name (saved in the file as ``name``); returns it cleaned."""
        clean = check_name(name)
        self.name = clean
        return clean

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
    runs = data.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        problems.append(Problem("$.runs", "must be a list of run records"))
        runs = []
    if problems:
        raise SpecError(problems, source)
    return Project(name, model, data_settings, training, runs, description)


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
    return project


def save(project: Project, path: Path | str | None = None) -> Path:
    """Write atomically (temp + fsync + rename); the old file survives any failure."""
    target = Path(path) if path is not None else project.path
    if target is None:
        raise WorkbenchError("the project has no file yet; choose where to save it")
    fileio.write_text(target, project.dumps())
    project.path = target
    return target


def new(name: str, model: ModelSpec, **sections) -> Project:
    """A project from a model and the ``data`` / ``training`` sections as JSON objects."""
    problems: list[Problem] = []
    data_settings = DataSettings.from_json(sections.get("data", {}), "$.data", problems)
    training = TrainingSettings.from_json(sections.get("training", {}), "$.training", problems)
    if problems:
        raise SpecError(problems)
    return Project(name, model, data_settings, training)
