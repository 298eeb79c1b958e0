"""What the headless commands share: finding the project a command names, and turning an
error into the one ``error: ...`` line they print."""
from __future__ import annotations

from pathlib import Path


def load_project(file: Path):
    """A project from a path, or a template by name when no such file exists."""
    from workbench.project import project_file as project, templates

    if not file.exists() and file.suffix == "" and str(file) in templates.names():
        return templates.load(str(file))
    return project.load(file)


def one_line(exc: Exception) -> str:
    """An error's text on one line (its lines joined with `` | ``)."""
    return " | ".join(line.strip(" -") for line in str(exc).splitlines() if line.strip())
