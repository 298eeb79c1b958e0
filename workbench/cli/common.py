"""What the headless commands share: finding the project a command names, turning an error
into the one ``error: ...`` line they print, and making text from a file safe for a terminal."""
from __future__ import annotations

from pathlib import Path

from workbench import fileio


def load_project(file: Path):
    """A project from a path, or a template by name when no such file exists."""
    from workbench.project import project_file as project, templates

    if not fileio.exists(file) and file.suffix == "" and str(file) in templates.names():
        return templates.load(str(file))
    return project.load(file)


def one_line(exc: Exception) -> str:
    """An error's text on one line (its lines joined with `` | ``), safe for a terminal."""
    return printable(" | ".join(line.strip(" -") for line in str(exc).splitlines() if line.strip()))


def printable(text: str) -> str:
    """``text`` as a terminal may show it: control characters (escape sequences, carriage
    returns, bells), other unprintable ones and lone surrogates written as Python escapes
    (``\\x1b``), so a project file can neither drive the terminal nor break the output."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
