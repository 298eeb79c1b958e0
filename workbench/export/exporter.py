"""Export a model as a file other programs load, and prove that the file reproduces it.

The formats are the registered ones (registry.py). Every export runs in eval mode (the
previous mode is restored), on a CPU copy when the model lives elsewhere, writes a temporary
file in the target folder, verifies it, and only then renames it into place: a failure
leaves no file (and an older file at that path untouched) and says which layer or path.
Temp files that a killed export of the same target left in the folder are removed first (and
logged); a format that will take long (``Format.estimate``) is announced with a figure before
it starts.
"""
from __future__ import annotations

import contextlib
import copy
import itertools
import keyword
import os
import time
import traceback
from pathlib import Path

from torch import nn

from workbench import fileio
from workbench.errors import WorkbenchError
from workbench.export import registry
from workbench.export.base import EXPORT_BATCH, ExportError, ExportOptions, ExportResult, Format, Job, human_size, \
    human_time
from workbench.export.capture import Log
from workbench.export.locate import first_line
from workbench.export.registry import FORMATS
from workbench.export.verify import FreshProcess, Verification
from workbench.model import build
from workbench.model.spec import ModelSpec
from workbench.progress import Stage, numbered

__all__ = ["FORMATS", "EXPORT_BATCH", "ExportError", "ExportOptions", "ExportResult", "export", "export_all",
           "target_path", "eval_mode", "slow_notes"]
SLOW_S = 30.0  # a format expected to take longer is announced before it starts, with the figure


def slow_notes(spec: ModelSpec, formats: list[str]) -> list[str]:
    """One line for each of ``formats`` expected to take over SLOW_S seconds for ``spec``."""
    notes = []
    for key in formats:
        f = registry.get(key)
        seconds = f.estimate(spec) if f.estimate else 0.0
        if seconds > SLOW_S:
            layers = sum(1 for _ in spec.walk())
            notes.append(f"note: {f.title} export of {layers} layers takes long: expect about "
                         f"{_duration(seconds)} (it grows with the layer count); state_dict and "
                         "safetensors take seconds")
    return notes


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def target_path(path: Path | str, fmt: str) -> Path:
    """``path`` with the format's extension added when it has none; a wrong one is an error."""
    f = registry.get(fmt)
    path = _checked_path(path, "output file")
    if path.name in ("", ".", "..") or os.path.isdir(path):  # isdir: False for a name too long, too
        raise WorkbenchError(f"the output {str(path)!r} is a folder, not a file name; give a file name such as "
                             f"{path / ('model' + f.suffix)}")
    if path.suffix == "":
        return path.with_name(path.name + f.suffix)
    if path.suffix.lower() != f.suffix:
        raise WorkbenchError(f"{path} ends in {path.suffix} but {f.title} files end in {f.suffix}; "
                             f"name it {path.with_suffix(f.suffix).name}")
    return path


def _checked_path(path: Path | str, what: str) -> Path:
    if "\x00" in str(path):
        raise WorkbenchError(f"the {what} {str(path)!r} contains a NUL character, which no file name may hold")
    try:
        return Path(path).expanduser()
    except RuntimeError:  # "~" without a home folder: take the name as written
        return Path(path)


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


def export(model: nn.Module, spec: ModelSpec, fmt: str, path: Path | str, options: ExportOptions | None = None,
           *, log: Log | None = None, progress: Stage | None = None,
           fresh: FreshProcess | None = None) -> ExportResult:
    """Write ``model`` to ``path`` as ``fmt``, verify it, and return the figures.

    Raises ExportError (a WorkbenchError) on failure; then no file is left at ``path``.
    ``fresh`` lets several exports share one verification process.
    """
    f = registry.get(fmt)
    options = options or ExportOptions()
    target = target_path(path, fmt)
    if not os.path.isdir(target.parent):
        raise WorkbenchError(f"cannot write {target}: the folder {target.parent} does not exist; "
                             "create it or choose another")
    _precheck(spec, f)
    result = ExportResult(fmt, target)

    def say(line: str) -> None:
        result.log.append(line)
        if log:
            log(line)

    # temp files of an export of this target that was killed (kill -9, power cut) before its rename
    fileio.clean_stale_temps(target.parent, names=[target.name], log=say)

    progress = progress or (lambda stage: None)
    for note in slow_notes(spec, [fmt]):
        say(note)
    cpu_model = _on_cpu(model, say)
    own_fresh = fresh is None
    with eval_mode(cpu_model):
        job = Job(f, target, cpu_model, spec, options, build.example_input(spec, EXPORT_BATCH), say, fresh)
        try:
            with _atomic(job, target) as tmp:
                progress(f"Writing {f.title}")
                say(f"writing {f.title} to {target}")
                start = time.perf_counter()
                _write(job, tmp, target)
                result.seconds = time.perf_counter() - start
                result.size_bytes = tmp.stat().st_size + sum(t.stat().st_size for t, _ in job.extra)
                if options.verify:
                    progress(f"Verifying {f.title}: {f.verified}")
                    result.verification = _verify(job, tmp, target)
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
    if f.names_modules:
        bad = [layer.id for _, layer in spec.walk() if keyword.iskeyword(layer.id)]
        if bad:
            raise ExportError(f"layer '{bad[0]}' has a Python keyword as its id, which {f.title} cannot use as a "
                              "module name; rename the layer (e.g. to "
                              f"'{bad[0]}_layer') and export again")


def _write(job: Job, tmp: Path, target: Path) -> None:
    """Run the format's writer; whatever goes wrong ends as a WorkbenchError that names the path or layer."""
    try:
        job.fmt.write(job, tmp)
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
    """The format's own atomic write, else fileio.atomic_path keeping the format's extension
    (torch.export.load needs .pt2)."""
    if job.fmt.atomic is not None:
        with job.fmt.atomic(job, target) as tmp:
            yield tmp
        return
    with fileio.atomic_path(target, suffix=job.fmt.suffix) as tmp:
        yield tmp


def _verify(job: Job, tmp: Path, target: Path) -> Verification:
    start = time.perf_counter()
    verification = job.fmt.verify(job, tmp)
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
               log: Log | None = None, progress: Stage | None = None) -> list[ExportResult]:
    """Every format into ``folder`` as ``stem.<ext>``; one failure does not stop the rest.

    The verification process is shared, so PyTorch is imported there once.
    """
    folder = _checked_path(folder, "output folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(fileio.describe_os_error(exc, folder)) from None
    results = []
    with FreshProcess(log) as fresh:
        for n, fmt in enumerate(formats or list(FORMATS), 1):
            path = folder / f"{stem}{registry.get(fmt).suffix}"
            step = numbered(progress, n, len(formats or FORMATS)) if progress else None
            try:
                results.append(export(model, spec, fmt, path, options, log=log, progress=step, fresh=fresh))
            except WorkbenchError as exc:
                if log:
                    log(f"{fmt} failed: {exc}")
                results.append(ExportResult(fmt, path, error=str(exc)))
    return results
