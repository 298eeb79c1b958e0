"""Export a model as a file other programs load, and prove that the file reproduces it.

Six formats (``FORMATS``). Every export runs in eval mode (the previous mode is restored),
on a CPU copy when the model lives elsewhere, writes a temporary file in the target folder,
verifies it, and only then renames it into place: a failure leaves no file (and an older
file at that path untouched) and says which layer or path.

The writers for each format family live in export_torch.py (state_dict, safetensors,
TorchScript, ExportedProgram), export_onnx.py and export_source.py (Python source).
"""
from __future__ import annotations

import contextlib
import copy
import itertools
import keyword
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from workbench.model import build
from workbench import fileio
from workbench.errors import WorkbenchError
from workbench.export.capture import Log
from workbench.export.locate import first_line
from workbench.export.verify import FreshProcess, Verification, compare
from workbench.model.spec import ModelSpec

Progress = Callable[[str], None]
EXPORT_BATCH = 2  # torch.export specialises batch sizes 0 and 1, so trace with 2


@dataclass(frozen=True)
class Format:
    key: str
    suffix: str
    title: str
    loads: str  # who loads this file, one line for the dialog
    verified: str  # how the export proves itself
    deprecated: str = ""


FORMATS: dict[str, Format] = {f.key: f for f in (
    Format("state_dict", ".pth", "PyTorch state_dict (.pth)",
           "PyTorch code that already has the model class (e.g. the Python source export): "
           "torch.load(path, weights_only=True)",
           "reloaded with weights_only=True into a freshly built model"),
    Format("safetensors", ".safetensors", "safetensors (.safetensors)",
           "PyTorch, Hugging Face and other frameworks; safe to open from anyone, no code inside",
           "reloaded into a freshly built model"),
    Format("torchscript", ".pt", "TorchScript (.pt)",
           "torch.jit.load in Python or LibTorch (C++) without the model's code",
           "torch.jit.load in a fresh Python process",
           deprecated="TorchScript is deprecated upstream; PyTorch recommends ExportedProgram (.pt2) or "
                      "ONNX for new work"),
    Format("onnx", ".onnx", "ONNX (.onnx)",
           "ONNX Runtime, TensorRT, OpenVINO, browsers: any language, no PyTorch needed",
           "onnx.checker (full check) and ONNX Runtime in a fresh Python process"),
    Format("pt2", ".pt2", "ExportedProgram (.pt2)",
           "torch.export.load in PyTorch 2.x without the model's code; input to AOTInductor and ExecuTorch",
           "torch.export.load in a fresh Python process"),
    Format("python", ".py", "Python source (.py)",
           "Anyone with PyTorch: a readable nn.Module class to read, edit and retrain; pair it with "
           "the .pth or .safetensors weights",
           "imported in a fresh Python process (without Model Workbench) with the weights loaded"),
)}
TORCHSCRIPT_MODES = ("auto", "trace", "script")
OPSET_RANGE = (13, 25)  # the dynamo exporter writes 18 natively and converts to the others
# (rtol, atol): ONNX Runtime computes in its own kernels; torch files reproduce closely;
# reloading a state_dict into the same code in this process must give equal outputs.
TOLERANCE = {"onnx": (1e-3, 1e-5), "state_dict": (0.0, 0.0), "safetensors": (0.0, 0.0)}
TORCH_TOLERANCE = (1e-5, 1e-6)


@dataclass
class ExportOptions:
    opset: int = 18  # ONNX operator set
    dynamic_batch: bool = True  # ONNX and .pt2: any batch size, not only the traced one
    torchscript_mode: str = "auto"  # trace; script when tracing warns it may be wrong
    include_spec: bool = True  # state_dict / safetensors carry the model description
    verify: bool = True
    class_name: str = ""  # Python source; default from the model name
    name: str = "model"  # a person's name for the model (the project name)


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
        static = self.fmt.key in ("onnx", "pt2") and not self.options.dynamic_batch
        return (EXPORT_BATCH,) if static else (1, 3)

    def inputs(self) -> list[torch.Tensor]:
        return [build.example_input(self.spec, b, seed=100 + b) for b in self.verify_batches()]

    def expected(self) -> list[np.ndarray]:
        with torch.no_grad():
            return [_as_array(self.model(x), self.fmt.title) for x in self.inputs()]

    def fresh_process(self) -> FreshProcess:
        if self.fresh is None:
            self.fresh = FreshProcess()
        return self.fresh

    def check(self, got: list[np.ndarray], where: str, notes: list[str] | None = None) -> Verification:
        rtol, atol = TOLERANCE.get(self.fmt.key, TORCH_TOLERANCE)
        return compare(self.expected(), got, self.verify_batches(), rtol, atol, where, notes)


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def human_time(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def target_path(path: Path | str, fmt: str) -> Path:
    """``path`` with the format's extension added when it has none; a wrong one is an error."""
    f = _format(fmt)
    path = Path(path).expanduser()
    if path.suffix == "":
        return path.with_name(path.name + f.suffix)
    if path.suffix.lower() != f.suffix:
        raise WorkbenchError(f"{path} ends in {path.suffix} but {f.title} files end in {f.suffix}; "
                             f"name it {path.with_suffix(f.suffix).name}")
    return path


def _format(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise WorkbenchError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Put every submodule in eval mode; restore each one's previous mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training


def _on_cpu(model: nn.Module, log: Log) -> nn.Module:
    devices = {t.device.type for t in itertools.chain(model.parameters(), model.buffers())}
    if devices <= {"cpu"}:
        return model
    log(f"the model lives on {', '.join(sorted(devices))}; exporting a CPU copy")
    return copy.deepcopy(model).cpu()


def _as_array(out, title: str) -> np.ndarray:
    if not isinstance(out, torch.Tensor):
        raise ExportError(f"{title}: the model returns {type(out).__name__}, not one tensor; only "
                          "single-output models can be exported")
    return out.detach().cpu().float().numpy() if out.is_floating_point() else out.detach().cpu().numpy()


def export(model: nn.Module, spec: ModelSpec, fmt: str, path: Path | str, options: ExportOptions | None = None,
           *, log: Log | None = None, progress: Progress | None = None,
           fresh: FreshProcess | None = None) -> ExportResult:
    """Write ``model`` to ``path`` as ``fmt``, verify it, and return the figures.

    Raises ExportError (a WorkbenchError) on failure; then no file is left at ``path``.
    ``fresh`` lets several exports share one verification process.
    """
    f = _format(fmt)
    options = options or ExportOptions()
    target = target_path(path, fmt)
    if not target.parent.is_dir():
        raise WorkbenchError(f"cannot write {target}: the folder {target.parent} does not exist; "
                             "create it or choose another")
    _precheck(spec, f)
    result = ExportResult(fmt, target)

    def say(line: str) -> None:
        result.log.append(line)
        if log:
            log(line)

    progress = progress or (lambda stage: None)
    writer, verifier = _writer(fmt)
    cpu_model = _on_cpu(model, say)
    own_fresh = fresh is None
    with eval_mode(cpu_model):
        job = Job(f, target, cpu_model, spec, options, build.example_input(spec, EXPORT_BATCH), say, fresh)
        try:
            with _atomic(job, target) as tmp:
                progress(f"Writing {f.title}")
                say(f"writing {f.title} to {target}")
                start = time.perf_counter()
                _write(writer, job, tmp, target)
                result.seconds = time.perf_counter() - start
                result.size_bytes = tmp.stat().st_size + sum(t.stat().st_size for t, _ in job.extra)
                if options.verify:
                    progress(f"Verifying {f.title}: {f.verified}")
                    result.verification = _verify(job, verifier, tmp, target)
        finally:
            if own_fresh and job.fresh is not None:
                job.fresh.close()
    result.files = [target, *(final for _, final in job.extra)]
    if f.deprecated:
        say(f"note: {f.deprecated}")
    say(f"wrote {target} ({human_size(result.size_bytes)}) in {human_time(result.seconds)}")
    return result


def _precheck(spec: ModelSpec, f: Format) -> None:
    """Problems known before any work: graph formats name modules after the layer ids."""
    if f.key in ("torchscript", "onnx", "pt2"):
        bad = [layer.id for _, layer in spec.walk() if keyword.iskeyword(layer.id)]
        if bad:
            raise ExportError(f"layer '{bad[0]}' has a Python keyword as its id, which {f.title} cannot use as a "
                              "module name; rename the layer (e.g. to "
                              f"'{bad[0]}_layer') and export again")


def _writer(fmt: str):
    """(write(job, tmp), verify(job, tmp) -> Verification) for a format; modules load when used."""
    from workbench.export import (
        onnx_format as export_onnx, python_source as export_source, torch_formats as export_torch)

    return {
        "state_dict": (export_torch.write_state_dict, export_torch.verify_weights),
        "safetensors": (export_torch.write_safetensors, export_torch.verify_weights),
        "torchscript": (export_torch.write_torchscript, export_torch.verify_fresh),
        "pt2": (export_torch.write_pt2, export_torch.verify_fresh),
        "onnx": (export_onnx.write_onnx, export_onnx.verify_onnx),
        "python": (export_source.write_python, export_source.verify_python),
    }[fmt]


def _write(writer, job: Job, tmp: Path, target: Path) -> None:
    """Run a writer; whatever goes wrong ends as a WorkbenchError that names the path or layer."""
    try:
        writer(job, tmp)
    except (WorkbenchError, OSError):
        raise  # atomic_path turns an OSError into "cannot write <path>: the disk is full" etc.
    except Exception as exc:
        os_error = _os_error_in(exc)
        if os_error is not None:
            raise os_error from None
        text = str(exc)
        job.log("error: " + "".join(traceback.format_exception(exc, limit=6)).strip())
        if "write" in text.lower() and "fail" in text.lower():
            raise ExportError(f"cannot write {target}: writing failed ({first_line(exc)}); the disk may be "
                              "full: free some space or choose another folder") from None
        raise ExportError(f"{job.fmt.title} export failed: {first_line(exc)}") from None


def _os_error_in(exc: BaseException) -> OSError | None:
    """An OSError that a library wrapped in its own exception, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def _atomic(job: Job, target: Path):
    """fileio.atomic_path, keeping the format's extension (torch.export.load needs .pt2)."""
    from workbench.export.onnx_format import atomic_with_external_data, needs_external_data

    if job.fmt.key == "onnx" and needs_external_data(job.model):
        job.external_data = True
        with atomic_with_external_data(job, target) as tmp:
            yield tmp
        return
    with fileio.atomic_path(target, suffix=job.fmt.suffix) as tmp:
        yield tmp


def _verify(job: Job, verifier, tmp: Path, target: Path) -> Verification:
    start = time.perf_counter()
    verification = verifier(job, tmp)
    verification.seconds = time.perf_counter() - start
    for note in verification.notes:
        job.log(f"verify: {note}")
    job.log(f"verification {verification.summary()}")
    if not verification.passed:
        raise ExportError(f"{job.fmt.title} did not reproduce the model ({verification.figures}, "
                          f"tolerance rtol {verification.rtol:g} atol {verification.atol:g}); {target} was "
                          "not written. Try another format, or report the model")
    return verification


def export_all(model: nn.Module, spec: ModelSpec, folder: Path | str, stem: str = "model",
               formats: list[str] | None = None, options: ExportOptions | None = None, *,
               log: Log | None = None, progress: Progress | None = None) -> list[ExportResult]:
    """Every format into ``folder`` as ``stem.<ext>``; one failure does not stop the rest.

    The verification process is shared, so PyTorch is imported there once.
    """
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(fileio.describe_os_error(exc, folder)) from None
    results = []
    with FreshProcess() as fresh:
        for n, fmt in enumerate(formats or list(FORMATS), 1):
            path = folder / f"{stem}{_format(fmt).suffix}"
            step = (lambda stage, n=n: progress(f"[{n}/{len(formats or FORMATS)}] {stage}")) if progress else None
            try:
                results.append(export(model, spec, fmt, path, options, log=log, progress=step, fresh=fresh))
            except WorkbenchError as exc:
                if log:
                    log(f"{fmt} failed: {exc}")
                results.append(ExportResult(fmt, path, error=str(exc)))
    return results
