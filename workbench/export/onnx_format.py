"""ONNX: ``torch.onnx.export(dynamo=True)``, one self-contained file where it fits, checked with
``onnx.checker`` (full check) and ONNX Runtime at two batch sizes in a fresh process.

Past protobuf's 2 GB limit the weights must go to ``<name>.onnx.data`` beside the model.
The graph refers to that file by name, so both are written in a temporary folder in the
target folder under their final names, verified there, and renamed into place.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.export import spool
from workbench.export.base import ExportError, Format, Job
from workbench.export.capture import captured
from workbench.export.locate import failing_layer, first_line
from workbench.export.torch_formats import dynamic_batch, run_fresh, weight_bytes
from workbench.export.verify import Verification
from workbench.fileio import atomic_path, describe_os_error, temp_prefix
from workbench.model.spec import ModelSpec

SINGLE_FILE_LIMIT = int(1.8 * 2**30)  # bytes of weights that still fit one protobuf file
# Export time grows with the layer count: about 50 ms a layer on a 2-core machine (measured with
# Linear stacks: 2,000 layers 92 s, 10,000 about 8 min), nearly all of it in torch.export's
# tracing and decompositions (the ONNX translation itself is a few percent). See estimated_seconds.
SECONDS_BASE, SECONDS_PER_LAYER = 2.0, 0.05
_NO_FUNCTION = re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)'")


def needs_external_data(model: nn.Module) -> bool:
    return weight_bytes(model) > SINGLE_FILE_LIMIT


def estimated_seconds(spec: ModelSpec) -> float:
    """A rough figure for writing the ONNX file (verification excluded), from the layer count."""
    return SECONDS_BASE + SECONDS_PER_LAYER * sum(1 for _ in spec.walk())


def reason(exc: BaseException) -> str:
    """What ONNX could not do, in one line: the missing operator when the exporter names it."""
    text = str(exc)
    cause = exc.__cause__
    while cause is not None:
        text += "\n" + str(cause)
        cause = cause.__cause__
    found = _NO_FUNCTION.search(text)
    if found:
        return f"ONNX has no operator for {found.group(1)}"
    return first_line(exc)


def write_onnx(job: Job, tmp: Path) -> None:
    options = job.options
    dynamic = dynamic_batch(job)

    def attempt(module, x):
        return torch.onnx.export(module, (x,), None, dynamo=True, opset_version=options.opset,
                                 dynamic_shapes=dynamic)

    job.log(f"torch.onnx.export(dynamo=True, opset_version={options.opset}, "
            f"dynamic batch {'on' if dynamic else 'off'})")
    try:
        with captured(job.log):
            program = torch.onnx.export(job.model, (job.example,), None, dynamo=True, opset_version=options.opset,
                                        dynamic_shapes=dynamic, input_names=["input"], output_names=["output"])
    except Exception as exc:
        job.log("locating the layer ONNX cannot express")
        where, why = failing_layer(job.model, job.spec, job.example, attempt)
        raise ExportError(f"ONNX export failed at {where or 'the model'}: {reason(why or exc)}; remove or "
                          "replace that layer, or export .pt2 or TorchScript instead") from None
    actual = program.model.opset_imports.get("", None)
    if actual is not None and actual != options.opset:
        job.log(f"warning: asked for opset {options.opset} but the exporter produced opset {actual} "
                "(it could not convert this model to that version)")
    if not job.external_data:  # serialised here, written from Python: a full disk is a clear error
        with captured(job.log):
            data = program.model_proto.SerializeToString()
        spool.write_bytes(tmp, job.target, data)
        return
    spool.check_space(job.target, weight_bytes(job.model), estimated=True)
    with captured(job.log):
        program.save(tmp, external_data=True)
    job.extra = [(p, job.target.parent / p.name) for p in sorted(tmp.parent.iterdir()) if p != tmp]
    job.log(f"weights exceed one file's 2 GB limit: written to {', '.join(p.name for _, p in job.extra)}; "
            "keep it beside the .onnx file")


def verify_onnx(job: Job, tmp: Path) -> Verification:
    return run_fresh(job, tmp)


@contextlib.contextmanager
def atomic(job: Job, target: Path):
    """One file through fileio.atomic_path; past the single-file limit, the model and its
    external-data file together (``job.external_data``)."""
    if needs_external_data(job.model):
        job.external_data = True
        with atomic_with_external_data(job, target) as tmp:
            yield tmp
        return
    with atomic_path(target, suffix=job.fmt.suffix) as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_with_external_data(job: Job, target: Path):
    """Like fileio.atomic_path, for a model file plus its external-data file."""
    try:
        folder = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name), suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise WorkbenchError(describe_os_error(exc, target)) from None
    tmp = folder / target.name
    try:
        yield tmp
        for path in [t for t, _ in job.extra] + [tmp]:
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
        for temp, final in job.extra:  # the data before the model that refers to it
            os.replace(temp, final)
        os.replace(tmp, target)
    except OSError as exc:
        raise WorkbenchError(describe_os_error(exc, target)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


ONNX = Format(
    "onnx", ".onnx", "ONNX (.onnx)",
    "ONNX Runtime, TensorRT, OpenVINO, browsers: any language, no PyTorch needed",
    "onnx.checker (full check) and ONNX Runtime in a fresh Python process",
    write_onnx, verify_onnx, tolerance=(1e-3, 1e-5), batch_option=True, names_modules=True, atomic=atomic,
    estimate=estimated_seconds)
