"""Loads exported files in a fresh, plain Python process and runs them on given inputs.

This file is never imported by the workbench: ``workbench.export.verify`` starts
``python -I -c <this source>``, so the process has no user site, no current folder on
``sys.path`` and, below, no way to import ``workbench`` or ``ui``. A file that loads
here loads for anyone with PyTorch (or ONNX Runtime) installed.

Protocol: one JSON job per line on stdin, one JSON reply per line on stdout.
Job: {"format", "path", "inputs" (an .npz of b0, b1, ...), "outputs" (.npz to write),
"weights" (python only)}. Reply: {"ok": true, "notes": [...]} or {"ok": false, "error", "trace"}.
Anything the libraries print goes to stderr, which the parent keeps out of the terminal.
"""
import importlib.abc
import json
import os
import sys
import traceback
import warnings

BLOCKED = ("workbench", "ui")


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the exported file tried to import {name!r}, which is part of Model Workbench; "
                              "exports must load without it")
        return None


def _inputs(path):
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return [data[f"b{i}"] for i in range(len(data.files))]


def _torch_outputs(fn, arrays):
    import torch

    out = []
    with torch.no_grad():
        for a in arrays:
            y = fn(torch.from_numpy(a))
            out.append(y.detach().cpu().numpy())
    return out


def _run_torchscript(job, arrays, notes):
    import torch

    model = torch.jit.load(job["path"], map_location="cpu")
    model.eval()
    return _torch_outputs(model, arrays)


def _run_pt2(job, arrays, notes):
    import torch

    program = torch.export.load(job["path"])
    return _torch_outputs(program.module(), arrays)


def _run_python(job, arrays, notes):
    import importlib.util

    name = f"exported_model_{abs(hash(job['path']))}"
    spec = importlib.util.spec_from_file_location(name, job["path"])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    model = module.load_model(job["weights"])
    notes.append(f"class {type(model).__name__} rebuilt and its weights loaded without Model Workbench")
    return _torch_outputs(model, arrays)


def _run_onnx(job, arrays, notes):
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(job["path"], full_check=True)
    notes.append("onnx.checker.check_model(full_check=True) passed")
    opsets = {o.domain or "ai.onnx": o.version for o in onnx.load(job["path"], load_external_data=False).opset_import}
    notes.append(f"opset {opsets.get('ai.onnx', '?')}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(job["path"], options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [session.run(None, {name: a})[0] for a in arrays]


RUNNERS = {"torchscript": _run_torchscript, "pt2": _run_pt2, "python": _run_python, "onnx": _run_onnx}


def run_job(job):
    """Run one job; the reply as a dict (also used in-process where no separate Python exists)."""
    notes = []
    try:
        import numpy as np

        outputs = RUNNERS[job["format"]](job, _inputs(job["inputs"]), notes)
        np.savez(job["outputs"], **{f"b{i}": o for i, o in enumerate(outputs)})
        return {"ok": True, "notes": notes}
    except BaseException as exc:  # report every failure; the parent decides
        first = str(exc).strip().splitlines()
        return {"ok": False, "error": f"{type(exc).__name__}: {first[0][:400] if first else ''}".strip(),
                "trace": traceback.format_exc(limit=8)}


def main():
    sys.meta_path.insert(0, _Blocker())
    warnings.simplefilter("ignore")
    reply_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # library chatter must not corrupt the replies
    for line in sys.stdin:
        if line.strip():
            reply_out.write(json.dumps(run_job(json.loads(line))) + "\n")


if __name__ == "__main__":
    main()
