"""Starter projects shipped in ``resources/templates``, and the empty project."""
from __future__ import annotations

from pathlib import Path

from workbench.model.spec import ModelSpec
from workbench.project import project_file as project
from workbench.errors import WorkbenchError
from workbench.resources import resource_path

EMPTY_NAME = "Untitled"
EMPTY_INPUT = (1, 8, 8)  # the default data's (digits) examples; the user sets their own


def template_dir() -> Path:
    return resource_path("templates")


def names() -> list[str]:
    return sorted(p.stem for p in template_dir().glob(f"*{project.SUFFIX}"))


def load(name: str) -> project.Project:
    if name not in names():  # a name, never a path: '../x' must not reach outside the templates
        raise WorkbenchError(f"no template {name!r}; available: {', '.join(names())}")
    path = template_dir() / f"{name}{project.SUFFIX}"
    proj = project.load(path)
    proj.path = None  # a template is a starting point, never saved over
    return proj


def describe(name: str) -> str:
    proj = load(name)
    return proj.description or proj.name


def empty() -> project.Project:
    """A project with no layers: the default data and settings, an input shape to set."""
    return project.Project(EMPTY_NAME, ModelSpec(EMPTY_INPUT),
                           description="An empty project: set the input shape, then add layers")
