"""What the headless commands share: finding the project a command names (and refusing one that
runs the user's Python files unless ``--trust-code`` was given), turning an error into the one
``error: ...`` line they print, and making text from a file safe for a terminal."""
from __future__ import annotations

from pathlib import Path

from workbench import fileio


_TRUST = {"code": False}  # --trust-code of the command running in this process


def trust_code(given: bool) -> None:
    """Whether this command's ``--trust-code`` was given (main() calls this once)."""
    _TRUST["code"] = bool(given)


def load_project(file: Path):
    """A project from a path, or a template by name when no such file exists. A project that
    names Python files (Custom layers, a custom Dataset) loads only with ``--trust-code``, which
    trusts those files as they are now for this process; nothing of them runs before."""
    from workbench import user_code
    from workbench.project import code_refs, project_file as project, templates

    if not fileio.exists(file) and file.suffix == "" and str(file) in templates.names():
        return templates.load(str(file))
    proj = project.load(file)
    code = code_refs.files(proj)
    if code and not _TRUST["code"]:
        raise user_code.UntrustedCode(code, "pass --trust-code to run it (only for files you trust)")
    if code:
        user_code.grant(code)
    return proj


def one_line(exc: Exception) -> str:
    """An error's text on one line (its lines joined with `` | ``), safe for a terminal."""
    return printable(" | ".join(line.strip(" -") for line in str(exc).splitlines() if line.strip()))


def printable(text: str) -> str:
    """``text`` as a terminal may show it: control characters (escape sequences, carriage
    returns, bells), other unprintable ones and lone surrogates written as Python escapes
    (``\\x1b``), so a project file can neither drive the terminal nor break the output."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
