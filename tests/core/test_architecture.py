"""The arrow points ui -> workbench: the core never imports Qt, pyqtgraph or ui; nor do the
core tests (tests/core runs without Qt)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6", "ui")
QT_FIXTURES = {"qtbot", "qapp", "qtmodeltester", "qtlog"}


def test_import_linter_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


def qt_imports(folder: Path, forbidden=FORBIDDEN) -> list[str]:
    """Every import of a forbidden package in the .py files under ``folder``, at any depth of
    the code (module level, in functions, through importlib strings)."""
    offenders = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            for name in names:
                if name.split(".")[0] in forbidden:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    return offenders


def test_no_core_module_imports_qt_even_lazily():
    """import-linter sees module-level and function-level imports; this also catches
    importlib strings and checks every file, including ones not yet imported anywhere."""
    offenders = qt_imports(ROOT / "workbench")
    assert not offenders, "\n".join(offenders)


def test_core_tests_never_import_qt_nor_use_qt_fixtures():
    """tests/core is the Qt-free half of the suite: window tests go in tests/ui. (Code run in a
    child process, such as the installed app in test_packaging, is a string and not counted.)"""
    offenders = qt_imports(ROOT / "tests" / "core", FORBIDDEN + ("pytestqt",))
    for path in sorted((ROOT / "tests" / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                used = QT_FIXTURES & {a.arg for a in node.args.args}
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} uses {u}" for u in sorted(used)]
    assert not offenders, "\n".join(offenders)


def test_core_tests_are_collected_with_qt_blocked():
    """Collecting tests/core (every module and conftest imported) where PySide6, pyqtgraph and
    the ui package cannot be imported: nothing they pull in, even indirectly, needs Qt."""
    blocked = ("PySide6", "shiboken6", "pyqtgraph", "pytestqt", "ui")
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ImportError(f'{name} is blocked: tests/core must run without Qt')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pytest\n"
        "sys.exit(pytest.main(['-q', '--collect-only', '-p', 'no:pytest-qt', '-p', 'no:cacheprovider',"
        " 'tests/core']))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " collected" in result.stdout or "tests collected" in result.stdout


def test_headless_commands_never_load_qt(tmp_path):
    code = (
        "import sys; from ui.app import main; rc = main(['summary', 'digits_cnn', '--json']);"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6')];"
        "print('LOADED', bad, file=sys.stderr); sys.exit(rc or (3 if bad else 0))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stderr


def test_ruff_finds_nothing():
    """The [tool.ruff] rules in pyproject.toml (errors and likely bugs, lines <= 120) hold everywhere."""
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                             "workbench", "ui", "tests", "bench", "packaging"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


# Underscore names of libraries we use on purpose, each with its reason.
LIBRARY_PRIVATES = {
    "os._exit": "torchrun workers leave without gloo's exit teardown (it aborted 7 of 60 runs)",
    "torch._C": "whether this process already has a CUDA context (polling must never create one)",
    "torch._foreach_copy_": "one fused copy of every weight for the last-good-weights snapshot",
    "nn.modules.batchnorm._BatchNorm": "the base class of every BatchNorm kind (frozen ones stay in eval)",
    "scheduler._last_lr": "torch's schedulers have no public setter for the rate they report after a live change",
}


def private_reaches(folder: Path, root: Path = ROOT) -> list[str]:
    """``obj._name`` where ``obj`` is not self / cls / super() and ``_name`` is not defined in
    the same file: a module reaching into another module's object."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        own = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            if isinstance(base, ast.Call) and getattr(base.func, "id", "") == "super":
                continue
            text = ast.unparse(node)
            if node.attr in own or text in LIBRARY_PRIVATES:
                continue
            found.append(f"{path.relative_to(root)}:{node.lineno}: {text}")
    return found


def test_no_module_reaches_into_another_modules_privates():
    """The window, the core, the benchmarks and the packaging scripts use public methods of
    each other's objects (issue 10: no calls of another object's underscore methods)."""
    found = [line for folder in ("workbench", "ui", "bench", "packaging") for line in private_reaches(ROOT / folder)]
    assert not found, "\n".join(found)


def test_the_private_reach_check_can_fail(tmp_path):
    (tmp_path / "a.py").write_text("import other\n\ndef f(engine):\n    return engine._flush() + other._helper\n")
    (tmp_path / "b.py").write_text("class W:\n    def __init__(self):\n        self._t = 1\n\n"
                                   "def alive(w):\n    return w._t\n")
    found = private_reaches(tmp_path, root=tmp_path)
    assert sorted(line.split(": ")[1] for line in found) == ["engine._flush", "other._helper"]
