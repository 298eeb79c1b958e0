"""Every format round-trips in a separate plain Python process, checked independently of the
exporter's own verification: the digits CNN, a residual stack, a stack of Parallel blocks (every
merge, nested, an identity branch, a broadcast gate) and a resnet18 block.

The plain process below cannot import Model Workbench and loads each file the way a user
would (torch.load with weights_only=True into the generated class, torch.jit.load,
torch.export.load, ONNX Runtime), at batch sizes the exporter did not verify with.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from workbench.model import build
from workbench.export import exporter as export
from workbench.project import templates
from workbench.model.spec import LayerSpec as L
from workbench.model.spec import ModelSpec

BATCHES = (2, 5)
PLAIN = r'''
import importlib.abc, importlib.util, json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("workbench", "ui"):
            raise ImportError("no Model Workbench here")
sys.meta_path.insert(0, Block())

import torch
folder, stem, inputs_file = sys.argv[1:4]
inputs = dict(np.load(inputs_file))
spec = importlib.util.spec_from_file_location("generated", f"{folder}/{stem}.py")
generated = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generated)

def run(fn):
    with torch.no_grad():
        return {k: fn(torch.from_numpy(v)).numpy() for k, v in inputs.items()}

def from_weights(path):
    model = generated.build_model()
    model.load_state_dict(generated.load_state_dict(path))  # strict: every key must fit
    return run(model.eval())

raw = torch.load(f"{folder}/{stem}.pth", weights_only=True)
outputs = {
    "state_dict": from_weights(f"{folder}/{stem}.pth"),
    "safetensors": from_weights(f"{folder}/{stem}.safetensors"),
    "python": run(generated.load_model(f"{folder}/{stem}.safetensors")),
    "torchscript": run(torch.jit.load(f"{folder}/{stem}.pt").eval()),
    "pt2": run(torch.export.load(f"{folder}/{stem}.pt2").module()),
}
import onnxruntime as ort
session = ort.InferenceSession(f"{folder}/{stem}.onnx", providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
outputs["onnx"] = {k: session.run(None, {name: v})[0] for k, v in inputs.items()}
np.savez(f"{folder}/plain_outputs.npz", **{f"{fmt}:{k}": v for fmt, d in outputs.items() for k, v in d.items()})
print(json.dumps({"pth_keys": sorted(raw), "workbench_loaded": "workbench" in sys.modules,
                  "onnx_batch_dim": session.get_inputs()[0].shape[0]}))
'''


def residual_spec() -> ModelSpec:
    return ModelSpec((3, 16, 16), [
        L("conv", "Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}),
        L("res1", "Residual", {}, layers=[L("c1", "Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}),
                                          L("bn", "BatchNorm2d"), L("act", "ReLU")]),
        L("res2", "Residual", {"projection": "auto"}, layers=[
            L("down", "Conv2d", {"out_channels": 16, "kernel_size": 3, "stride": 2, "padding": 1}),
            L("inner", "Residual", {}, layers=[L("mix", "Conv2d", {"out_channels": 16, "kernel_size": 1})])]),
        L("gap", "AdaptiveAvgPool2d"), L("flat", "Flatten"), L("drop", "Dropout", {"p": 0.5}),
        L("fc", "Linear", {"out_features": 5}),
    ])


def parallel_spec() -> ModelSpec:
    def conv(i, c, k=1):
        return L(i, "Conv2d", {"out_channels": c, "kernel_size": k, "padding": k // 2})

    return ModelSpec((3, 8, 8), [
        conv("stem", 8, 3),
        L("inc", "Parallel", {"merge": "concat"}, layers=[
            L("inc_a", "Branch", layers=[conv("c1", 4)]),
            L("inc_b", "Branch", layers=[conv("r3", 2), conv("c3", 4, 3)]),
            L("inc_c", "Branch", layers=[L("pool", "MaxPool2d", {"kernel_size": 3, "stride": 1, "padding": 1}),
                                         conv("cp", 4)]),
            L("inc_id", "Branch")]),  # the identity: 4 + 4 + 4 + 8 = 20 channels
        L("se", "Parallel", {"merge": "mul"}, layers=[
            L("keep", "Branch"),
            L("gate", "Branch", layers=[L("squeeze", "AdaptiveAvgPool2d", {"output_size": 1}), conv("fc1", 5),
                                        L("relu", "ReLU"), conv("fc2", 20), L("sig", "Sigmoid")])]),
        L("mix", "Parallel", {"merge": "add"}, layers=[
            L("m1", "Branch", layers=[conv("a", 6)]),
            L("m2", "Branch", frozen=True, layers=[
                L("deep", "Parallel", {"merge": "mean"}, layers=[
                    L("d1", "Branch", layers=[conv("b", 6, 3)]), L("d2", "Branch", layers=[conv("e", 6)])])])]),
        L("gap", "AdaptiveAvgPool2d"), L("flat", "Flatten"),
        L("head", "Parallel", {"merge": "concat", "dim": -1}, layers=[
            L("h1", "Branch", layers=[L("fc", "Linear", {"out_features": 3})]), L("h2", "Branch")]),
        L("out", "Linear", {"out_features": 4}),
    ])


def _model(name: str):
    if name == "parallel":
        return parallel_spec()
    if name == "digits_cnn":
        return templates.load("digits_cnn").model
    if name == "residual":
        return residual_spec()
    return templates.load("resnet18_transfer").model


@pytest.fixture(scope="module", params=["digits_cnn", "residual", "parallel",
                                        pytest.param("resnet18", marks=pytest.mark.slow)])
def exported(request, tmp_path_factory):
    """Every format exported (and self-verified) once per model, then reloaded in a plain process."""
    torch.manual_seed(0)
    spec = _model(request.param)
    model = build.build_model(spec)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval vs train mode shows
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    model.train()  # the exporter must switch to eval and back
    folder = tmp_path_factory.mktemp(request.param)
    results = export.export_all(model, spec, folder, request.param, options=export.ExportOptions(name=request.param))
    inputs = {f"b{b}": build.example_input(spec, b, seed=7 + b).numpy() for b in BATCHES}
    np.savez(folder / "inputs.npz", **inputs)
    proc = subprocess.run([sys.executable, "-I", "-B", "-c", PLAIN, str(folder), request.param,
                           str(folder / "inputs.npz")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(folder / "plain_outputs.npz") as data:
        plain = {k: data[k] for k in data.files}
    assert model.training, "export must restore the model's training mode"
    model.eval()
    with torch.no_grad():
        expected = {k: model(torch.from_numpy(v)).numpy() for k, v in inputs.items()}
    return {"results": {r.format: r for r in results}, "plain": plain, "expected": expected, "info": info,
            "folder": folder}


@pytest.mark.parametrize("fmt", list(export.FORMATS))
def test_each_format_reproduces_the_model_in_a_plain_process(exported, fmt):
    result = exported["results"][fmt]
    assert result.ok, result.error
    assert result.verification.passed and result.path.is_file()
    rtol, atol = (1e-3, 1e-5) if fmt == "onnx" else (1e-5, 1e-6)
    for key, want in exported["expected"].items():
        got = exported["plain"][f"{fmt}:{key}"]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{fmt} at batch {key}")


def test_plain_process_never_imported_workbench_and_onnx_batch_is_dynamic(exported):
    info = exported["info"]
    assert info["workbench_loaded"] is False
    assert info["pth_keys"] == ["format", "spec", "state_dict", "version"]
    assert isinstance(info["onnx_batch_dim"], str)  # a symbolic dimension: any batch size
    leftovers = [p.name for p in exported["folder"].iterdir() if p.name.startswith(".") or "tmp" in p.name]
    assert leftovers == []


def test_verification_figures_are_reported(exported):
    onnx = exported["results"]["onnx"].verification
    assert onnx.batch_sizes == (1, 3) and onnx.rtol == 1e-3 and onnx.atol == 1e-5
    assert 0 <= onnx.max_abs < 1e-4 and onnx.where == "a fresh Python process"
    assert any("full_check" in n for n in onnx.notes)
    weights = exported["results"]["state_dict"].verification
    assert weights.max_abs == 0.0 and weights.where == "this process"
