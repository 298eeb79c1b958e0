"""Every catalog layer: described for the palette, builds, and its inferred shape and parameter
count equal what a real forward pass and the real module give."""
from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from workbench.model import build, catalog
from workbench.errors import Problem
from workbench.model.params import REQUIRED
from workbench.model.signatures import LEFT_OUT
from workbench.model.spec import LayerSpec, ModelSpec, check_args

NATURAL_INPUT = {  # a shape each kind is meant for (no batch), and the dtype
    "Conv1d": (4, 16), "MaxPool1d": (4, 16), "BatchNorm1d": (6,), "Embedding": (9,),
    "LSTM": (7, 5), "GRU": (7, 5), "TransformerEncoderLayer": (7, 8), "Unflatten": (64,),
    "Linear": (20,), "LayerNorm": (7, 8), "Softmax": (10,), "LogSoftmax": (10,), "Identity": (5,),
}
REQUIRED_ISSUE_KINDS = {
    "Linear", "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool1d", "MaxPool2d", "AvgPool2d",
    "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "Dropout", "Dropout2d",
    "ReLU", "LeakyReLU", "GELU", "SiLU", "ELU", "Tanh", "Sigmoid", "Softmax", "LogSoftmax", "Identity",
    "Flatten", "Unflatten", "Embedding", "LSTM", "GRU", "TransformerEncoderLayer", "Residual",
    "resnet18", "mobilenet_v3_small", "efficientnet_b0",
}
SIMPLE = [k for k in catalog.KINDS if not k.composite]
BY_RANK = {1: (6,), 2: (4, 16), 3: (4, 9, 9), 4: (2, 5, 6, 6)}  # generated kinds: a shape of the rank they take
INPUT_FOR = {  # kinds whose arguments need a particular input
    "Fold": (8, 9), "RNNCell": (5,), "GRUCell": (5,), "EmbeddingBag": (6,), "ChannelShuffle": (4, 9, 9),
    "LocalResponseNorm": (4, 9, 9), "Upsample": (4, 9, 9), "FeatureAlphaDropout": (4, 9, 9),
    "MultiheadAttention": (7, 8), "TransformerEncoder": (7, 8), "RNN": (7, 5), "PixelShuffle": (8, 3, 3),
    "PixelUnshuffle": (4, 8, 8), "GLU": (4, 8),
}


def natural_input(kind: catalog.LayerKind) -> tuple[int, ...]:
    if kind.name in NATURAL_INPUT or kind.name in INPUT_FOR:
        return NATURAL_INPUT.get(kind.name) or INPUT_FOR[kind.name]
    return BY_RANK[max(kind.ranks)] if kind.ranks else (4, 9, 9)


def test_catalog_offers_at_least_what_the_issue_lists():
    assert REQUIRED_ISSUE_KINDS <= set(catalog.BY_NAME)


@pytest.mark.parametrize("kind", catalog.KINDS, ids=lambda k: k.name)
def test_kind_is_described_for_the_palette(kind):
    assert kind.category in catalog.CATEGORIES
    assert len(kind.help) > 15 and kind.help.endswith(".")
    for p in kind.params:
        assert p.help, f"{kind.name}.{p.name} has no help text"
        if not p.required and p.infer is None:
            value, err = p.check(p.default)
            assert err is None, f"{kind.name}.{p.name} default {p.default!r} fails its own check: {err}"
    problems: list[Problem] = []
    check_args(kind, kind.starter_args(), "$", problems)
    assert problems == []


@pytest.mark.parametrize("kind", SIMPLE, ids=lambda k: k.name)
def test_dropped_layer_infers_builds_and_matches_a_real_forward(kind):
    shape = natural_input(kind)
    args = kind.starter_args()
    if kind.name == "GroupNorm":
        args["num_groups"] = 2
    if kind.name == "Unflatten":
        args["unflattened_size"] = [1, 8, 8]
    dtype = "int64" if kind.tokens else "float32"
    spec = ModelSpec(shape, [LayerSpec("x", kind.name, args)], dtype)
    info = build.infer(spec)
    assert info.ok, info.error
    model = build.build_model(spec).eval()
    with torch.no_grad():
        out = model(build.example_input(spec, batch=3))
    assert tuple(out.shape[1:]) == info.output_shape
    assert info.total_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kind", SIMPLE, ids=lambda k: k.name)
def test_unknown_argument_is_named_with_the_real_ones(kind):
    problems: list[Problem] = []
    check_args(kind, {**kind.starter_args(), "colour": 1}, "$.args", problems)
    assert [p.path for p in problems] == ["$.args.colour"]
    assert "has no argument 'colour'" in problems[0].message


def test_bounds_and_types_are_enforced():
    conv = catalog.kind("Conv2d")
    problems: list[Problem] = []
    out = check_args(conv, {"out_channels": 0, "kernel_size": [3, 3, 3], "padding": "same", "bias": "yes"},
                     "$", problems)
    messages = {p.path: p.message for p in problems}
    assert "must be >= 1" in messages["$.out_channels"]
    assert "needs 2 values" in messages["$.kernel_size"]
    assert "true or false" in messages["$.bias"]
    assert out["padding"] == "same"


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_bidirectional_last_output_is_both_directions_final_states(kind, num_layers, tmp_path):
    """'last' must not be out[:, -1]: there the backward direction has read only the last token.
    The backward half is the backward direction's state after reading back to the first token."""
    from workbench.export import exporter as export

    spec = ModelSpec((6, 5), [LayerSpec("rnn", kind, {"hidden_size": 4, "bidirectional": True,
                                                      "num_layers": num_layers})])
    assert build.infer(spec).output_shape == (8,)
    model = build.build_model(spec).eval()
    x = torch.randn(3, 6, 5)
    with torch.no_grad():
        y = model(x)
        out, _ = model.rnn.rnn(x)
    assert y.shape == (3, 8)
    torch.testing.assert_close(y[:, :4], out[:, -1, :4])  # forward direction: after the last token
    torch.testing.assert_close(y[:, 4:], out[:, 0, 4:])  # backward direction: after the first token
    assert not torch.allclose(y[:, 4:], out[:, -1, 4:])
    # the readable Python export, TorchScript and ONNX compute the same thing (verified against the model)
    results = export.export_all(model, spec, tmp_path, "rnn", formats=["python", "torchscript", "onnx"])
    assert [r.error for r in results] == ["", "", ""]
    assert all(r.verification.passed for r in results)


def test_recurrent_help_says_what_last_means():
    output = next(p for p in catalog.BY_NAME["LSTM"].params if p.name == "output")
    assert "final hidden state" in output.help and "both directions" in output.help


# ---------------------------------------------------------------- kinds generated from torch.nn

def _modules() -> list[str]:
    return [n for n in dir(nn) if inspect.isclass(getattr(nn, n)) and issubclass(getattr(nn, n), nn.Module)]


def test_every_torch_nn_module_is_a_kind_or_left_out_with_a_reason():
    missing = [n for n in _modules() if n not in catalog.BY_NAME and n not in catalog.EXCLUDED]
    assert missing == []
    assert all(reason for reason in catalog.EXCLUDED.values())
    assert not set(catalog.EXCLUDED) & set(catalog.BY_NAME)
    issue = {"Conv3d", "ConvTranspose1d", "ConvTranspose3d", "MaxPool1d", "MaxPool3d", "AvgPool1d", "AvgPool3d",
             "AdaptiveMaxPool2d", "LPPool2d", "InstanceNorm2d", "RMSNorm", "LocalResponseNorm", "Upsample",
             "PixelShuffle", "PixelUnshuffle", "ZeroPad2d", "ReflectionPad1d", "ChannelShuffle", "Fold", "Unfold",
             "Mish", "Hardswish", "PReLU", "AlphaDropout", "Dropout3d", "RNN", "TransformerEncoder",
             "MultiheadAttention"}
    assert issue <= set(catalog.BY_NAME)
    assert len(catalog.KINDS) >= 100


@pytest.mark.parametrize("kind", [k for k in catalog.GENERATED if k.name not in ("RNN", "TransformerEncoder")],
                         ids=lambda k: k.name)
def test_generated_kind_offers_its_constructors_arguments_and_defaults(kind):
    signature = inspect.signature(getattr(nn, kind.name).__init__).parameters
    taken = {n for n, p in signature.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    offered = {p.name for p in kind.params}
    assert offered <= taken
    assert taken - offered <= set(LEFT_OUT), f"{kind.name} leaves out {taken - offered - set(LEFT_OUT)} silently"
    for p in kind.params:
        torch_default = signature[p.name].default
        if p.infer is not None or (kind.name, p.name) in {("Softmin", "dim")}:
            continue
        if torch_default is inspect.Parameter.empty:
            assert p.default is REQUIRED, f"{kind.name}.{p.name}"
        else:
            expected = list(torch_default) if isinstance(torch_default, tuple) else torch_default
            assert p.default == expected, f"{kind.name}.{p.name}: {p.default!r} is not torch's {torch_default!r}"


def test_help_comes_from_the_docstrings():
    conv3d = catalog.kind("Conv3d")
    assert conv3d.help == "Applies a 3D convolution over an input signal composed of several input planes."
    assert conv3d.param("out_channels").help == "number of channels produced by the convolution"
    assert "inferred" in conv3d.param("in_channels").help
    assert catalog.kind("Upsample").param("mode").choices[:3] == ("nearest", "linear", "bilinear")
    for kind in catalog.GENERATED:  # no reStructuredText marks reach the palette
        for text in [kind.help] + [p.help for p in kind.params]:
            assert ":math:" not in text and ":attr:" not in text and "``" not in text, (kind.name, text)


def test_a_torch_error_from_the_meta_forward_names_the_layer(tmp_path):
    """A kind without a closed-form rule: torch's own check, said for the row, in the window and the CLI."""
    spec = ModelSpec((3, 4, 4), [LayerSpec("pad", "ReflectionPad2d", {"padding": 5})])
    error = build.infer(spec).error
    assert error is not None and error.layer_id == "pad"
    assert "layer 'pad' (ReflectionPad2d, #1)" in str(error) and "(3, 4, 4)" in str(error)
    doc = {"format": "model-workbench/project", "version": 1, "name": "x",
           "model": {"input": {"shape": [3, 4, 4]}, "layers": [spec.layers[0].to_json()]}}
    path = tmp_path / "x.wbproj"
    path.write_text(json.dumps(doc))
    result = subprocess.run([sys.executable, "-m", "workbench", "summary", str(path)], capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "layer 'pad' (ReflectionPad2d, #1)" in lines[0]


def test_closed_form_rules_say_the_fix_for_new_kinds():
    spec = ModelSpec((6, 10), [LayerSpec("attn", "MultiheadAttention", {"num_heads": 4})])
    error = build.infer(spec).error
    assert "num_heads" in error.problem and "choose num_heads among 1, 2, 5, 10" in error.fix
    spec = ModelSpec((2, 4, 4, 4), [LayerSpec("c", "Conv3d", {"out_channels": 2, "kernel_size": 5})])
    assert "kernel 5 is larger than the 4x4x4 input" in build.infer(spec).error.problem
    spec = ModelSpec((4, 16), [LayerSpec("up", "Upsample", {"scale_factor": 2.0, "mode": "bilinear"})])
    error = build.infer(spec).error
    assert "mode 'bilinear' needs input shaped (channels, height, width)" in error.problem
    assert "'linear' 1-D" in error.fix
    spec.layers[0].args["mode"] = "linear"
    assert build.infer(spec).output_shape == (4, 32)
    spec = ModelSpec((3, 1, 1), [LayerSpec("norm", "InstanceNorm2d")])
    assert "one value per channel" in build.infer(spec).error.problem
    spec = ModelSpec((8, 5), [LayerSpec("act", "PReLU", {"num_parameters": 3})])
    error = build.infer(spec).error
    assert "set num_parameters to 1 or 8" in error.fix and error.remedy is not None


def test_project_file_checks_new_kinds_arguments():
    problems: list[Problem] = []
    check_args(catalog.kind("Upsample"), {"scale_factor": -1.0, "mode": "cubic", "align_corners": "yes"}, "$", problems)
    messages = {p.path: p.message for p in problems}
    assert "must be >=" in messages["$.scale_factor"]
    assert "must be one of" in messages["$.mode"]
    assert "true or false" in messages["$.align_corners"]
    problems = []
    check_args(catalog.kind("ZeroPad2d"), {"padding": [1, 2]}, "$", problems)
    assert "needs 4 values" in problems[0].message
    problems = []
    check_args(catalog.kind("MultiheadAttention"), {"kdim": 3, "num_heads": 2}, "$", problems)
    assert [p.path for p in problems] == ["$.kdim"]


EXPORT_SPECS = {
    "image": ModelSpec((3, 8, 8), [
        LayerSpec("pad", "ReflectionPad2d", {"padding": 1}),
        LayerSpec("c", "Conv2d", {"out_channels": 8, "kernel_size": 3}),
        LayerSpec("inorm", "InstanceNorm2d", {"affine": True}), LayerSpec("act", "Hardswish"),
        LayerSpec("unshuf", "PixelUnshuffle", {"downscale_factor": 2}),
        LayerSpec("up", "Upsample", {"scale_factor": 2.0, "mode": "bilinear"}),
        LayerSpec("shuffle", "ChannelShuffle", {"groups": 2}),
        LayerSpec("pool", "AdaptiveMaxPool2d", {"output_size": 2}),
        LayerSpec("flat", "Flatten"), LayerSpec("fc", "Linear", {"out_features": 5}), LayerSpec("prelu", "PReLU")]),
    "sequence": ModelSpec((6, 8), [
        LayerSpec("attn", "MultiheadAttention", {"num_heads": 2}),
        LayerSpec("enc", "TransformerEncoder", {"nhead": 2, "num_layers": 2, "dim_feedforward": 16, "norm": True}),
        LayerSpec("rnn", "RNN", {"hidden_size": 8, "bidirectional": True}),
        LayerSpec("fc", "Linear", {"out_features": 3}), LayerSpec("sm", "Softmin")]),
    "volume": ModelSpec((2, 4, 6, 6), [
        LayerSpec("c3", "Conv3d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), LayerSpec("bn", "BatchNorm3d"),
        LayerSpec("mp", "MaxPool3d", {"kernel_size": 2}),
        LayerSpec("ct", "ConvTranspose3d", {"out_channels": 2, "kernel_size": 2, "stride": 2}),
        LayerSpec("rows", "Flatten", {"start_dim": 2}), LayerSpec("glu", "GLU", {"dim": 1}),
        LayerSpec("flat", "Flatten"), LayerSpec("fc", "Linear", {"out_features": 3})]),
}


@pytest.mark.parametrize("name", EXPORT_SPECS)
def test_new_kinds_export_to_python_onnx_and_torchscript(name, tmp_path):
    """Every file is verified against the live model by the exporter (python in a fresh process)."""
    from workbench.export import exporter as export
    from workbench.export import python_source

    spec = EXPORT_SPECS[name]
    model = build.build_model(spec).eval()
    results = export.export_all(model, spec, tmp_path, name, formats=["python", "onnx", "torchscript"])
    assert [r.error for r in results] == ["", "", ""]
    assert all(r.verification.passed for r in results)
    source = python_source.generate(spec, name)
    if name == "sequence":
        assert "class SelfAttention(nn.Module):" in source and "nn.TransformerEncoder(" in source
        assert "Recurrent(nn.RNN(" in source


def test_upsample_with_size_refuses_recompute_scale_factor_with_the_fix():
    """torch refuses recompute_scale_factor with an explicit size at the forward; the rule says
    so at inference instead of passing a shape the model cannot produce (found by the fuzz test)."""
    spec = ModelSpec((3, 4, 4), [LayerSpec("up", "Upsample", {"size": [8, 8], "recompute_scale_factor": True})])
    error = build.infer(spec).layers[0].error
    assert error is not None and "recompute_scale_factor" in str(error) and "layer 'up'" in str(error)
    fixed = ModelSpec((3, 4, 4), [LayerSpec("up", "Upsample", {"size": [8, 8]})])
    assert build.infer(fixed).output_shape == (3, 8, 8)
