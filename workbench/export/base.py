"""What every export format shares: the ``Format`` description (with its writer and verifier),
the options, the ``Job`` handed to a writer, the result, and ``ExportError``.

This module imports no writer. Each writer module (torch_formats.py, onnx_format.py,
python_source.py) imports it and describes its formats as ``Format`` objects; registry.py
lists them, and exporter.py runs an export through the registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np
import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.export.capture import Log
from workbench.export.verify import FreshProcess, Verification, compare
from workbench.model import build
from workbench.model.spec import ModelSpec

EXPORT_BATCH = 2  # torch.export specialises batch sizes 0 and 1, so trace with 2
TORCHSCRIPT_MODES = ("auto", "trace", "script")
OPSET_RANGE = (13, 25)  # the dynamo exporter writes 18 natively and converts to the others
# (rtol, atol) a file must reproduce the model within. Torch files reproduce closely; ONNX Runtime
# computes in its own kernels; reloading weights into the same code here gives equal outputs.
TORCH_TOLERANCE = (1e-5, 1e-6)
EXACT = (0.0, 0.0)


@dataclass(frozen=True)
class Format:
    """One export format: what the dialog says about it and how it is written and proven.

    ``write(job, tmp)`` writes the file at ``tmp`` (a temporary path in the target folder);
    ``verify(job, tmp)`` loads it back and returns a ``Verification`` (``job.check`` compares).
    """

    key: str
    suffix: str
    title: str
    loads: str  # who loads this file, one line for the dialog
    verified: str  # how the export proves itself
    write: Callable[[Job, Path], None]
    verify: Callable[[Job, Path], Verification]
    deprecated: str = ""
    tolerance: tuple[float, float] = TORCH_TOLERANCE  # (rtol, atol) of the verification
    batch_option: bool = False  # honours ExportOptions.dynamic_batch (static: verified at the traced size)
    names_modules: bool = False  # a graph whose module names are the layer ids (no Python keywords)
    # how the file is written atomically; None: fileio.atomic_path with the format's suffix
    atomic: Callable[[Job, Path], ContextManager[Path]] | None = None
    # rough seconds the writer takes for a model, where that can be long; None: quick
    estimate: Callable[[ModelSpec], float] | None = None


@dataclass
class ExportOptions:
    opset: int = 18  # ONNX operator set
    dynamic_batch: bool = True  # ONNX and .pt2: any batch size, not only the traced one
    torchscript_mode: str = "auto"  # trace; script when tracing warns it may be wrong
    include_spec: bool = True  # state_dict / safetensors carry the model description
    verify: bool = True
    class_name: str = ""  # Python source; default from the model name
    name: str = "model"  # a person's name for the model (the project name)
    custom_code: str = "copy"  # Python source with Custom layers: "copy" their files beside it, or "import" them


@dataclass
class ExportResult:
    format: str
    path: Path
    size_bytes: int = 0
    seconds: float = 0.0  # writing the file, verification excluded
    verification: Verification | None = None
    files: list[Path] = field(default_factory=list)  # every file written (ONNX external data)
    log: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def summary(self) -> str:
        if self.error:
            return f"{self.format}: FAILED: {self.error}"
        text = f"{self.format}: {self.path} ({human_size(self.size_bytes)}) in {human_time(self.seconds)}"
        if self.verification:
            text += f"; verified in {human_time(self.verification.seconds)}, {self.verification.summary()}"
        return text


class ExportError(WorkbenchError):
    """An export failed; no file was left behind."""


@dataclass
class Job:
    """Everything one export needs, handed to the format's writer and verifier."""

    fmt: Format
    target: Path
    model: nn.Module
    spec: ModelSpec
    options: ExportOptions
    example: torch.Tensor
    log: Log
    fresh: FreshProcess | None = None
    extra: list[tuple[Path, Path]] = field(default_factory=list)  # (temporary, final) beside the main file
    external_data: bool = False  # ONNX past 2 GB: weights in <name>.onnx.data

    def verify_batches(self) -> tuple[int, ...]:
        static = self.fmt.batch_option and not self.options.dynamic_batch
        return (EXPORT_BATCH,) if static else (1, 3)

    def inputs(self) -> list[torch.Tensor]:
        return [build.example_input(self.spec, b, seed=100 + b) for b in self.verify_batches()]

    def expected(self) -> list[np.ndarray]:
        with torch.no_grad():
            return [_as_array(self.model(x), self.fmt.title) for x in self.inputs()]

    def fresh_process(self) -> FreshProcess:
        if self.fresh is None:
            self.fresh = FreshProcess(self.log)
        return self.fresh

    def check(self, got: list[np.ndarray], where: str, notes: list[str] | None = None) -> Verification:
        rtol, atol = self.fmt.tolerance
        return compare(self.expected(), got, self.verify_batches(), rtol, atol, where, notes)


def human_size(n: float) -> str:
    """1234567 -> '1.2 MB' (binary units, as the export log and results have always shown)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_time(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _as_array(out, title: str) -> np.ndarray:
    if not isinstance(out, torch.Tensor):
        raise ExportError(f"{title}: the model returns {type(out).__name__}, not one tensor; only "
                          "single-output models can be exported")
    return out.detach().cpu().float().numpy() if out.is_floating_point() else out.detach().cpu().numpy()
