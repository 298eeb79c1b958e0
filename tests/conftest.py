"""Test set-up: Qt offscreen unless a test asks otherwise; small torch thread pools; no
downloads; ``@pytest.mark.cuda`` tests skipped where there is no CUDA device; a guard that fails
any test leaving a QThread running; project data that both the core and the window tests use;
and the bench/ scripts, run in their quick mode."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("WORKBENCH_OFFLINE", "1")  # nothing may download during tests
# the window's QSettings (recent files, geometry) go to a throwaway file, never the user's
os.environ["WORKBENCH_SETTINGS"] = os.path.join(tempfile.mkdtemp(prefix="wb-settings-"), "s.ini")
# the trust store of the user's code files (workbench.user_code) likewise
os.environ["WORKBENCH_TRUST_FILE"] = os.path.join(tempfile.mkdtemp(prefix="wb-trust-"), "trusted.json")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

_started: "weakref.WeakSet" = weakref.WeakSet()
try:
    from PySide6.QtCore import QThread

    _original_start = QThread.start

    def _tracking_start(self, *args, **kwargs):
        _started.add(self)
        return _original_start(self, *args, **kwargs)

    QThread.start = _tracking_start
except ImportError:  # core-only environments
    QThread = None


def pytest_collection_modifyitems(config, items):
    """The one skip condition of ``@pytest.mark.cuda`` tests: no CUDA device here.
    ``torch.cuda.is_available()`` asks the driver for a count; it creates no context."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_dangling_qthreads(request):
    """Fail any test that leaves a QThread running (they crash the process at exit)."""
    yield
    running = [t for t in list(_started) if _is_running(t)]
    if running:
        for t in running:
            t.requestInterruption()
            t.quit()
            t.wait(5000)
        pytest.fail(f"{request.node.nodeid} left {len(running)} QThread(s) running")


def _is_running(thread) -> bool:
    try:
        return thread.isRunning()
    except RuntimeError:  # C++ object already deleted
        return False


@pytest.fixture(scope="session")
def wine_ddp_project() -> dict:
    """The tiny project the distributed runs train (core and window tests): the wine table, an
    MLP with neither BatchNorm nor dropout, 142 training examples (divisible by 2). Shared by
    the session: copy it before changing it."""
    return {
        "format": "model-workbench/project", "version": 1, "name": "Wine DDP",
        "model": {"input": {"shape": [13]}, "layers": [
            {"id": "fc1", "type": "Linear", "args": {"out_features": 32}},
            {"id": "relu1", "type": "ReLU"},
            {"id": "fc2", "type": "Linear", "args": {"out_features": 3}}]},
        "data": {"source": "wine", "val_fraction": 0.2, "batch_size": 8},
        "training": {"optimizer": {"type": "Adam", "lr": 0.003}, "loss": "CrossEntropyLoss",
                     "epochs": 2, "device": "cpu", "seed": 0, "log_every": 4},
    }


ROOT = Path(__file__).resolve().parent.parent
QT_PACKAGES = ("PySide6", "shiboken6", "pyqtgraph", "ui")


def bench_needs_qt(script: Path) -> bool:
    """Whether a bench script imports Qt or the window anywhere in its code."""
    for node in ast.walk(ast.parse(script.read_text(), filename=str(script))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
        if any(name.split(".")[0] in QT_PACKAGES for name in names):
            return True
    return False


def pytest_generate_tests(metafunc):
    """A test that takes ``bench_script`` runs once per bench/*.py script: the ones that need Qt
    under tests/ui, the others under tests/core, so every script is covered exactly once."""
    if "bench_script" in metafunc.fixturenames:
        in_ui = "ui" in Path(str(metafunc.definition.path)).relative_to(ROOT / "tests").parts[:1]
        scripts = [p for p in sorted((ROOT / "bench").glob("*.py")) if bench_needs_qt(p) == in_ui]
        metafunc.parametrize("bench_script", scripts, ids=[p.stem for p in scripts])


@pytest.fixture
def run_bench(tmp_path):
    """Run a bench script with --quick from another folder, as a clean checkout would (the
    checkout first on the path, Qt offscreen). Returns the process and its RESULT line as a dict."""
    def run(script: Path, timeout: float = 480) -> tuple[subprocess.CompletedProcess, dict]:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "WORKBENCH_OFFLINE": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        proc = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=timeout)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        pairs = [token.split("=", 1) for token in last.split()[1:]] if last.startswith("RESULT ") else []
        return proc, {pair[0]: pair[1] if len(pair) == 2 else None for pair in pairs}
    return run


@pytest.fixture
def quick_bench_result(run_bench):
    """Run a bench script in quick mode and check what a person running it would: exit 0 and
    a last line ``RESULT name=value ... quick=1`` with every value given and no failure."""
    def check(script: Path) -> dict:
        proc, result = run_bench(script)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert result, f"the last line is not 'RESULT name=value ...':\n{proc.stdout[-2000:]}"
        assert all(value is not None for value in result.values()), proc.stdout.splitlines()[-1]
        assert result.get("quick") == "1" and "failed" not in result, proc.stdout.splitlines()[-1]
        return result
    return check
