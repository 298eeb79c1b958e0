"""Proving an export: compare the file's outputs with the live model's, and the fresh process
that loads the file with plain PyTorch / ONNX Runtime (``runner.py``).
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench import fileio
from workbench.errors import WorkbenchError

FRESH = "a fresh Python process"
HERE = "this process"
BUNDLED = "this process (a bundled app has no separate Python to start)"
START_TIMEOUT_S = 120
JOB_TIMEOUT_S = 600
FOLDER_NAME = "workbench-verify"  # temp folders .workbench-verify.<pid>.<random>.tmp (fileio's naming)


def clean_stale_folders(log=None) -> list[Path]:
    """Remove verification folders that killed processes left in the temp folder; logged."""
    return fileio.clean_stale_temps(tempfile.gettempdir(), names=[FOLDER_NAME], log=log)


@dataclass
class Verification:
    """How closely an exported file reproduces the model it came from."""

    passed: bool
    max_abs: float
    max_rel: float
    batch_sizes: tuple[int, ...]
    rtol: float
    atol: float
    where: str
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def figures(self) -> str:
        return f"max abs diff {self.max_abs:.3g}, max rel diff {self.max_rel:.3g}"

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        sizes = ", ".join(str(b) for b in self.batch_sizes)
        return (f"{verdict}: {self.figures} at batch sizes {sizes} (tolerance rtol {self.rtol:g}, "
                f"atol {self.atol:g}; loaded in {self.where})")


def compare(expected: list[np.ndarray], got: list[np.ndarray], batch_sizes: tuple[int, ...], rtol: float,
            atol: float, where: str, notes: list[str] | None = None) -> Verification:
    """Element-wise ``|got - expected| <= atol + rtol * |expected|`` over every batch.

    The relative figure is taken over elements with ``|expected| > atol`` (near zero a
    relative difference means nothing).
    """
    notes = list(notes or [])
    max_abs = max_rel = 0.0
    passed = len(expected) == len(got)
    for b, (e, g) in enumerate(zip(expected, got)):
        e = np.asarray(e, dtype=np.float64)
        g = np.asarray(g, dtype=np.float64)
        if e.shape != g.shape:
            notes.append(f"batch {batch_sizes[b]}: output shape {g.shape} but the model gives {e.shape}")
            passed = False
            max_abs = max_rel = float("inf")
            continue
        if e.size == 0:
            continue
        diff = np.abs(g - e)
        bad_nan = np.isnan(g) != np.isnan(e)
        diff = np.where(np.isnan(diff) & ~bad_nan, 0.0, diff)
        if bad_nan.any():
            notes.append(f"batch {batch_sizes[b]}: NaN where the model has a number (or the reverse)")
            diff = np.where(bad_nan, np.inf, diff)
        max_abs = max(max_abs, float(diff.max()))
        big = np.abs(e) > atol
        if big.any():
            max_rel = max(max_rel, float((diff[big] / np.abs(e[big])).max()))
        passed = passed and bool((diff <= atol + rtol * np.abs(np.nan_to_num(e))).all())
    return Verification(passed, max_abs, max_rel, tuple(batch_sizes), rtol, atol, where, notes)


class FreshProcess:
    """A plain ``python -I`` process that loads exported files and runs them (see runner.py).

    One process serves several jobs (``export_all`` verifies every format in one), so
    PyTorch is imported once. It cannot import ``workbench``: what loads there loads anywhere.
    """

    def __init__(self, log=None) -> None:
        clean_stale_folders(log)
        # A frozen (PyInstaller) app's sys.executable is the app itself: load the files here
        # instead, unless WORKBENCH_VERIFY_PYTHON names an interpreter.
        self.in_process = bool(getattr(sys, "frozen", False)) and not os.environ.get("WORKBENCH_VERIFY_PYTHON")
        self.where = BUNDLED if self.in_process else FRESH
        self._dir = tempfile.TemporaryDirectory(prefix=fileio.temp_prefix(FOLDER_NAME), suffix=".tmp")
        self.folder = Path(self._dir.name)
        self._proc: subprocess.Popen | None = None
        self._replies: queue.Queue = queue.Queue()
        self._stderr = None
        self._jobs = 0

    def __enter__(self) -> "FreshProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        source = Path(__file__).with_name("runner.py").read_text(encoding="utf-8")
        python = os.environ.get("WORKBENCH_VERIFY_PYTHON") or sys.executable
        env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONIOENCODING="utf-8", PYTHONDONTWRITEBYTECODE="1")
        self._stderr = open(self.folder / "stderr.txt", "w+", encoding="utf-8", errors="replace")
        try:
            self._proc = subprocess.Popen([python, "-I", "-B", "-c", source], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                          encoding="utf-8", cwd=self.folder, env=env)
        except OSError as exc:
            raise WorkbenchError(f"cannot start a Python process ({python}) to verify the export: {exc}; "
                                 "turn verification off or set WORKBENCH_VERIFY_PYTHON") from None
        threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self._replies.put(line)
        self._replies.put(None)

    def run(self, fmt: str, path: Path, inputs: list[np.ndarray], weights: Path | None = None
            ) -> tuple[list[np.ndarray], list[str]]:
        """Load ``path`` as ``fmt`` there, run it on each input batch; (outputs, notes)."""
        if self._proc is None and not self.in_process:
            self._start()
        self._jobs += 1
        inp = self.folder / f"in{self._jobs}.npz"
        out = self.folder / f"out{self._jobs}.npz"
        np.savez(inp, **{f"b{i}": a for i, a in enumerate(inputs)})
        job = {"format": fmt, "path": str(Path(path).resolve()), "inputs": str(inp), "outputs": str(out),
               "weights": str(weights) if weights else None}
        if self.in_process:
            from workbench.export.runner import run_job

            return self._outputs(run_job(job), out, inp)
        try:
            self._proc.stdin.write(json.dumps(job) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkbenchError(f"the verification process stopped: {self._stderr_tail()}") from None
        timeout = JOB_TIMEOUT_S + (START_TIMEOUT_S if self._jobs == 1 else 0)
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise WorkbenchError(f"verifying {Path(path).name} took over {timeout} s; export without "
                                 "verification or try a smaller model") from None
        if line is None:
            raise WorkbenchError(f"the verification process died loading {Path(path).name}: "
                                 f"{self._stderr_tail()}")
        return self._outputs(json.loads(line), out, inp)

    @staticmethod
    def _outputs(reply: dict, out: Path, inp: Path) -> tuple[list[np.ndarray], list[str]]:
        if not reply["ok"]:
            raise VerifyLoadError(reply["error"], reply.get("trace", ""))
        with np.load(out, allow_pickle=False) as data:
            outputs = [data[f"b{i}"] for i in range(len(data.files))]
        inp.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
        return outputs, reply.get("notes", [])

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return "no output"
        self._stderr.flush()
        self._stderr.seek(0)
        lines = [ln.strip() for ln in self._stderr.read().splitlines() if ln.strip()]
        return lines[-1] if lines else "no output"

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc.stdout.close()
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._dir.cleanup()


class VerifyLoadError(WorkbenchError):
    """The exported file did not load or run in the fresh process."""

    def __init__(self, message: str, trace: str = ""):
        self.trace = trace
        super().__init__(message)
