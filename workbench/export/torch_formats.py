"""The PyTorch formats: state_dict (.pth), safetensors, TorchScript (.pt), ExportedProgram (.pt2).

Writers take a ``Job`` (base.py) and a temporary path; verifiers prove the file there. The four
``Format`` descriptions at the end are registered in registry.py.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch
from torch import nn

from workbench.model import build, weights
from workbench.export import spool
from workbench.export.base import EXACT, ExportError, Format, Job
from workbench.export.capture import captured, warning_names
from workbench.export.locate import failing_layer, first_line
from workbench.export.verify import HERE, Verification, VerifyLoadError
from workbench.model.spec import ModelSpec


def state_dict_of(job: Job) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in job.model.state_dict().items()}


def weight_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in itertools.chain(model.parameters(), model.buffers()))


def save_safely(job: Job, tmp: Path, save) -> None:
    """``save(file)`` through spool.write: in memory, then written from Python (a full disk is
    a clear error, not an abort of the C++ writer)."""
    spool.write(tmp, job.target, save, weight_bytes(job.model))


def write_state_dict(job: Job, tmp: Path) -> None:
    state = state_dict_of(job)
    if job.options.include_spec:
        data = {"format": weights.FORMAT, "version": weights.VERSION, "spec": job.spec.to_json(), "state_dict": state}
        job.log("the file holds {'state_dict': ..., 'spec': ...}; load it with "
                "torch.load(path, weights_only=True)['state_dict']")
    else:
        data = state
    save_safely(job, tmp, lambda f: torch.save(data, f))


def write_safetensors(job: Job, tmp: Path) -> None:
    from safetensors.torch import save, save_file

    meta = {"format": weights.FORMAT, "version": str(weights.VERSION)}
    if job.options.include_spec:
        meta["spec"] = json.dumps(job.spec.to_json(), separators=(",", ":"))
    tensors = {k: v.contiguous() for k, v in state_dict_of(job).items()}

    def write(f) -> None:
        if isinstance(f, str):
            save_file(tensors, f, metadata=meta)
        else:
            f.write(save(tensors, metadata=meta))

    try:
        save_safely(job, tmp, write)
    except RuntimeError as exc:  # tensors sharing memory (tied weights)
        if "share" in str(exc):
            raise ExportError(f"safetensors cannot store tensors that share memory ({first_line(exc)}); "
                              "export a state_dict (.pth) instead") from None
        raise


def buildable(spec: ModelSpec) -> ModelSpec:
    """The spec without pretrained-weight sources: the file's tensors replace them anyway, and a
    verification must never download."""
    spec = spec.copy()
    for _, layer in spec.walk():
        if "weights" in layer.args:
            layer.args["weights"] = "none"
    return spec


def verify_weights(job: Job, tmp: Path) -> Verification:
    """Reload with weights_only=True into a model built afresh from the file's own description."""
    loaded = weights.read(tmp)
    how = "torch.load(weights_only=True)" if tmp.suffix == ".pth" else "safetensors"
    notes = [f"{len(loaded.state_dict)} tensors reloaded with {how}"]
    spec = job.spec
    if job.options.include_spec:
        if loaded.spec is None:
            return Verification(False, float("inf"), float("inf"), job.verify_batches(), 0.0, 0.0, HERE,
                                notes + ["the model description is missing from the file"])
        spec = loaded.spec
        notes.append("model rebuilt from the description stored in the file")
    fresh = build.build_model(buildable(spec)).eval()
    report = weights.check(fresh, loaded.state_dict)
    if not report.ok:
        return Verification(False, float("inf"), float("inf"), job.verify_batches(), 0.0, 0.0, HERE,
                            notes + report.describe().splitlines())
    fresh.load_state_dict(loaded.state_dict)
    with torch.no_grad():
        got = [fresh(x).numpy() for x in job.inputs()]
    return job.check(got, HERE, notes)


def verify_fresh(job: Job, tmp: Path) -> Verification:
    """Load the file in a fresh plain Python process and run it on the check inputs."""
    return run_fresh(job, tmp)


def run_fresh(job: Job, tmp: Path, weights_file: Path | None = None) -> Verification:
    arrays = [x.numpy() for x in job.inputs()]
    process = job.fresh_process()
    try:
        got, notes = process.run(job.fmt.key, tmp, arrays, weights_file)
    except VerifyLoadError as exc:
        job.log(f"verify: {exc.trace.strip()}")
        raise ExportError(f"the exported {job.fmt.title} does not load in a plain Python process: {exc}; "
                          "it was not written") from None
    return job.check(got, process.where, notes)


# ---------------------------------------------------------------- TorchScript

def write_torchscript(job: Job, tmp: Path) -> None:
    job.log("note: TorchScript is deprecated upstream (torch.jit prints FutureWarnings); prefer .pt2 or ONNX")
    module = _torchscript(job)
    with captured(job.log):
        save_safely(job, tmp, lambda f: torch.jit.save(module, f))


def _torchscript(job: Job):
    mode = job.options.torchscript_mode
    if mode not in ("auto", "trace", "script"):
        raise ExportError(f"TorchScript mode must be auto, trace or script, got {mode!r}")
    if mode == "script":
        return _jit(job, "script")
    lines: list[str] = []
    traced = _jit(job, "trace", lines)
    if mode == "trace" or not warning_names(lines, "TracerWarning"):
        return traced
    job.log("tracing warned that the trace may not hold for other inputs; scripting instead")
    try:
        return _jit(job, "script")
    except ExportError as exc:
        job.log(f"scripting failed too ({exc}); keeping the trace (verification runs it at other batch sizes)")
        return traced


def _jit(job: Job, how: str, lines: list[str] | None = None):
    def log(line: str) -> None:
        if lines is not None:
            lines.append(line)
        job.log(line)

    def attempt(module, x):
        return torch.jit.trace(module, (x,), check_trace=False) if how == "trace" else torch.jit.script(module)

    job.log(f"torch.jit.{how}")
    try:
        with captured(log), torch.no_grad():
            return attempt(job.model, job.example)
    except Exception as exc:
        where, why = failing_layer(job.model, job.spec, job.example, attempt)
        other = "trace" if how == "script" else "script"
        raise ExportError(f"TorchScript ({how}) cannot handle {where or 'the model'}: {first_line(why or exc)}; "
                          f"try TorchScript mode '{other}', or export .pt2 or ONNX") from None


# ---------------------------------------------------------------- ExportedProgram

def dynamic_batch(job: Job):
    return ({0: torch.export.Dim("batch")},) if job.options.dynamic_batch else None


def write_pt2(job: Job, tmp: Path) -> None:
    dynamic = dynamic_batch(job)

    def attempt(module, x):
        return torch.export.export(module, (x,), dynamic_shapes=dynamic)

    try:
        with captured(job.log):
            program = attempt(job.model, job.example)
    except Exception as exc:
        where, why = failing_layer(job.model, job.spec, job.example, attempt)
        hint = "turn off dynamic batch, or " if dynamic else ""
        raise ExportError(f"torch.export cannot capture {where or 'the model'}: {first_line(why or exc)}; "
                          f"{hint}export TorchScript or ONNX instead") from None
    with captured(job.log):
        save_safely(job, tmp, lambda f: torch.export.save(program, f))


# ---------------------------------------------------------------- the formats

STATE_DICT = Format(
    "state_dict", ".pth", "PyTorch state_dict (.pth)",
    "PyTorch code that already has the model class (e.g. the Python source export): "
    "torch.load(path, weights_only=True)",
    "reloaded with weights_only=True into a freshly built model",
    write_state_dict, verify_weights, tolerance=EXACT)
SAFETENSORS = Format(
    "safetensors", ".safetensors", "safetensors (.safetensors)",
    "PyTorch, Hugging Face and other frameworks; safe to open from anyone, no code inside",
    "reloaded into a freshly built model",
    write_safetensors, verify_weights, tolerance=EXACT)
TORCHSCRIPT = Format(
    "torchscript", ".pt", "TorchScript (.pt)",
    "torch.jit.load in Python or LibTorch (C++) without the model's code",
    "torch.jit.load in a fresh Python process",
    write_torchscript, verify_fresh, names_modules=True,
    deprecated="TorchScript is deprecated upstream; PyTorch recommends ExportedProgram (.pt2) or "
               "ONNX for new work")
PT2 = Format(
    "pt2", ".pt2", "ExportedProgram (.pt2)",
    "torch.export.load in PyTorch 2.x without the model's code; input to AOTInductor and ExecuTorch",
    "torch.export.load in a fresh Python process",
    write_pt2, verify_fresh, batch_option=True, names_modules=True)
