"""Code a user brings (a custom layer module, a custom Dataset): the trust a user gives a file, and
importing a class from it with errors that name the file and the line.

Nothing here imports a file that is not trusted. A file is trusted by its absolute path and the
sha256 of its content, so an edited file asks again. Trust comes from two places:

- the trust store, a JSON file in the user's config folder (``$XDG_CONFIG_HOME/model-workbench/
  trusted.json``, or the file ``$WORKBENCH_TRUST_FILE`` names), where the window records a file
  the user trusted in its prompt; written atomically;
- ``grant``: trust for this process only (the headless commands' ``--trust-code``), never saved.

``load_class`` checks trust, imports the file under a unique module name (one import per path and
content; a changed file is a new module) and returns the class. Every failure is a
``UserCodeError`` naming the file, the line and the message (``where`` finds the line of an
exception raised later, in ``__init__``, ``forward`` or ``__getitem__``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import threading
import traceback
from pathlib import Path

from workbench import fileio
from workbench.errors import WorkbenchError

TRUST_FILE_ENV = "WORKBENCH_TRUST_FILE"  # overrides where the trust store lives (tests)
_FORMAT = "model-workbench/trusted-code"
_LOCK = threading.Lock()
_GRANTED: dict[str, str] = {}  # absolute path -> sha256 trusted for this process (--trust-code)
_MODULES: dict[tuple[str, str], object] = {}  # (absolute path, sha256) -> the imported module


class UntrustedCode(WorkbenchError):
    """Files a project would run that the user has not trusted (or that changed since)."""

    def __init__(self, files, hint: str = "open it in the window and trust it, or pass --trust-code"):
        self.files = [Path(f) for f in files]
        names = ", ".join(str(f) for f in self.files)
        several = len(self.files) > 1
        super().__init__(f"the project runs code from {names}, which {'are' if several else 'is'} not trusted; "
                         f"{hint}")


class UserCodeError(WorkbenchError):
    """A user's file failed: it does not import, lacks the class, or the class raised."""

    def __init__(self, file: Path | str, line: int | None = None, message: str | None = None):
        if message is None:  # remade from its text alone (a DataLoader worker passes errors on that way)
            self.file, self.line, self.message = None, None, str(file)
            super().__init__(str(file))
            return
        self.file = Path(file)
        self.line = line
        self.message = message
        place = f"{self.file}, line {line}" if line else str(self.file)
        super().__init__(f"{place}: {message}")


# ---------------------------------------------------------------- trust

def absolute(file: Path | str) -> Path:
    """The file's absolute path (``~`` expanded, symbolic links resolved)."""
    return Path(file).expanduser().resolve()


def digest(file: Path | str) -> str:
    """sha256 of the file's content; a missing or unreadable file is a WorkbenchError."""
    path = absolute(file)
    try:
        fileio.regular_file(path, "Python")
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise WorkbenchError(f"{path}: no such file") from None
    except OSError as exc:
        raise WorkbenchError(fileio.describe_os_error(exc, path)) from None


def store_path() -> Path:
    """Where the trust store lives: ``$WORKBENCH_TRUST_FILE``, else the config folder."""
    override = os.environ.get(TRUST_FILE_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "model-workbench" / "trusted.json"


def _read_store() -> dict[str, str]:
    path = store_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: nothing is trusted (the next trust rewrites it)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}


def trusted(file: Path | str) -> bool:
    """Whether this file, with its present content, is trusted (store or this process's grant)."""
    path = absolute(file)
    try:
        now = digest(path)
    except WorkbenchError:
        return False
    with _LOCK:
        if _GRANTED.get(str(path)) == now:
            return True
    return _read_store().get(str(path)) == now


def untrusted(files) -> list[Path]:
    """The files (absolute, once each, in order) that are not trusted as they are now."""
    out: list[Path] = []
    for f in files:
        path = absolute(f)
        if path not in out and not trusted(path):
            out.append(path)
    return out


def trust(files) -> None:
    """Record the files, with their present content, in the trust store (the window's Trust)."""
    entries = _read_store()
    for f in files:
        path = absolute(f)
        entries[str(path)] = digest(path)
    target = store_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(fileio.describe_os_error(exc, target.parent)) from None
    fileio.write_text(target, json.dumps({"format": _FORMAT, "files": entries}, indent=2, sort_keys=True) + "\n")


def forget(files) -> None:
    """Remove the files from the trust store (and from this process's grant)."""
    entries = _read_store()
    with _LOCK:
        for f in files:
            _GRANTED.pop(str(absolute(f)), None)
    removed = {str(absolute(f)) for f in files}
    if removed & entries.keys():
        fileio.write_text(store_path(), json.dumps({"format": _FORMAT, "files": {
            k: v for k, v in entries.items() if k not in removed}}, indent=2, sort_keys=True) + "\n")


def grant(files) -> None:
    """Trust the files as they are now for this process only (``--trust-code``); nothing is saved."""
    hashes = {str(absolute(f)): digest(f) for f in files}
    with _LOCK:
        _GRANTED.update(hashes)


def revoke_grants() -> None:
    """Drop every grant of this process (tests)."""
    with _LOCK:
        _GRANTED.clear()


def require_trust(files) -> None:
    """Raise UntrustedCode naming the files that are not trusted."""
    missing = untrusted(files)
    if missing:
        raise UntrustedCode(missing)


# ---------------------------------------------------------------- import

def load_module(file: Path | str):
    """The imported module of a trusted file (imported once per path and content)."""
    path = absolute(file)
    if not fileio.exists(path):
        raise UserCodeError(path, None, "no such file")
    text_hash = digest(path)
    if not trusted(path):
        raise UntrustedCode([path])
    key = (str(path), text_hash)
    with _LOCK:
        module = _MODULES.get(key)
    if module is not None:
        return module
    name = f"workbench_user_code_{_identifier(path.stem)}_{text_hash[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserCodeError(path, None, "cannot be imported as Python (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # classes defined in it pickle and show their module like any other
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise UserCodeError(path, exc.lineno, f"SyntaxError: {exc.msg}") from None
    except BaseException as exc:  # noqa: BLE001 - a user's module may raise anything, SystemExit included
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserCodeError(path, where(exc, path), f"does not import: {describe(exc)}") from None
    with _LOCK:
        _MODULES[key] = module
    return module


def load_class(file: Path | str, class_name: str, base: type | None = None) -> type:
    """The class ``class_name`` of a trusted file, checked to be a subclass of ``base``."""
    path = absolute(file)
    module = load_module(path)
    cls = getattr(module, class_name, None)
    if cls is None:
        defined = sorted(n for n, v in vars(module).items() if isinstance(v, type) and
                         getattr(v, "__module__", None) == module.__name__)
        have = f" (it defines: {', '.join(defined)})" if defined else " (it defines no class)"
        raise UserCodeError(path, None, f"has no class {class_name!r}{have}")
    if not isinstance(cls, type):
        raise UserCodeError(path, None, f"{class_name!r} is not a class but a {type(cls).__name__}")
    if base is not None and not issubclass(cls, base):
        raise UserCodeError(path, _class_line(cls), f"{class_name} is not a subclass of {_public_name(base)}")
    return cls


def where(exc: BaseException, file: Path | str) -> int | None:
    """The line of the innermost frame of ``exc``'s traceback that runs in ``file``."""
    path = str(absolute(file))
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            same = str(Path(frame.filename).resolve()) == path
        except (OSError, ValueError):
            same = False
        if same:
            line = frame.lineno
    if line is None and isinstance(exc, SyntaxError) and exc.filename and \
            str(Path(exc.filename).resolve()) == path:
        line = exc.lineno
    return line


def describe(exc: BaseException) -> str:
    """``ValueError: bad size`` (the type and the first line of the message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def failure(exc: BaseException, file: Path | str, doing: str) -> UserCodeError:
    """A user's code that raised while ``doing`` something, as a UserCodeError at its line."""
    if isinstance(exc, UserCodeError):
        return exc
    return UserCodeError(absolute(file), where(exc, file), f"{doing}: {describe(exc)}")


def _public_name(cls: type) -> str:
    """``torch.nn.Module`` rather than ``torch.nn.modules.module.Module``."""
    import torch.nn
    import torch.utils.data

    for package in (torch.nn, torch.utils.data):
        if getattr(package, cls.__name__, None) is cls:
            return f"{package.__name__}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_line(cls: type) -> int | None:
    try:
        import inspect

        return inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return None


def _identifier(stem: str) -> str:
    clean = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in stem)
    return clean if clean and not clean[0].isdigit() else f"m_{clean}"
