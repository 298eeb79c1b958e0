"""Every catalog layer: described for the palette, builds, and its inferred shape and parameter
count equal what a real forward pass and the real module give."""
from __future__ import annotations

import pytest
import torch

from workbench.model import build, catalog
from workbench.errors import Problem
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
