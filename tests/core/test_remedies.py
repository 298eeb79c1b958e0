"""One-click fixes (issue 13, "Add"): a problem whose fix is mechanical carries a
``remedies.Remedy`` computed from inference; applying it to the spec leaves that layer (or the
model against the data) without a problem, for many shapes. Problems whose fix is a choice
get none, and every message reads as before."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.data.bundle import Task, check_fit
from workbench.errors import LayerError
from workbench.model import build, remedies, shapes
from workbench.model.spec import LayerSpec, ModelSpec

SCALE = int(os.environ.get("WORKBENCH_FUZZ_SCALE", "1"))
CASES = settings(deadline=None, max_examples=25 * SCALE, suppress_health_check=list(HealthCheck))


def L(layer_id, layer_type, layers=None, **args):
    return LayerSpec(layer_id, layer_type, args, layers=layers or [])


def error_of(spec: ModelSpec, layer_id: str) -> LayerError | None:
    return next(r.error for r in build.infer(spec).rows() if r.id == layer_id)


def fixed(spec: ModelSpec, layer_id: str, label: str | None = None) -> ModelSpec:
    """Apply the layer's remedy; check it is one, has the label, and cures the layer."""
    error = error_of(spec, layer_id)
    assert error is not None and error.remedy is not None, error
    if label is not None:
        assert error.remedy.label == label
    before = spec.to_json()
    out = remedies.apply(error.remedy, spec)
    assert spec.to_json() == before  # applied to a copy
    assert error_of(out, layer_id) is None, error_of(out, layer_id)
    return out


# ---------------------------------------------------------------- the issue's examples, exactly

def test_the_issue_examples_read_as_the_issue_says():
    conv_fc = ModelSpec((1, 8, 8), [L("conv", "Conv2d", out_channels=16, kernel_size=3, padding=1),
                                    L("fc", "Linear", out_features=10)])
    out = fixed(conv_fc, "fc", "Insert Flatten before 'fc'")
    assert [(x.id, x.type) for x in out.layers] == [("conv", "Conv2d"), ("flatten_1", "Flatten"), ("fc", "Linear")]
    assert build.infer(out).output_shape == (10,)

    wrong_in = ModelSpec((1024,), [L("fc", "Linear", in_features=512, out_features=10)])
    assert fixed(wrong_in, "fc", "Set in_features to 1024").layers[0].args["in_features"] == 1024

    block = ModelSpec((64,), [L("res", "Residual", [L("fc1", "Linear", out_features=32)])])
    assert fixed(block, "res", "Set projection to auto").layers[0].args["projection"] == "auto"

    spec = ModelSpec((1, 16, 16), [L("flat", "Flatten"), L("fc", "Linear", out_features=10)])
    task = Task("classification", (1, 8, 8), num_classes=10, description="digits")
    with pytest.raises(LayerError) as caught:
        check_fit(spec, task)
    remedy = caught.value.remedy
    assert remedy.label == "Match the model input to the data (1, 8, 8)"
    check_fit(remedies.apply(remedy, spec), task)  # fits now


def test_messages_are_unchanged_by_the_remedy():
    spec = ModelSpec((1024,), [L("fc", "Linear", in_features=512, out_features=10)])
    assert str(error_of(spec, "fc")) == ("layer 'fc' (Linear, #1): in_features is 512 but the input (1024,) has "
                                          "1024; remove in_features to infer it, or set it to 1024")


# ---------------------------------------------------------------- each kind, many shapes

@CASES
@given(c=st.integers(1, 6), h=st.integers(3, 12), w=st.integers(3, 12), out=st.integers(1, 8),
       given_in=st.one_of(st.none(), st.integers(1, 5000)), nested=st.booleans())
def test_insert_flatten_before_a_linear_on_a_map(c, h, w, out, given_in, nested):
    args = {"out_features": out} if given_in is None else {"out_features": out, "in_features": given_in}
    fc = LayerSpec("fc", "Linear", args)
    layers = [L("conv", "Conv2d", out_channels=c, kernel_size=3, padding=1), fc]
    spec = ModelSpec((2, h, w), [L("res", "Residual", layers, projection="auto")] if nested else layers)
    fixed_spec = fixed(spec, "fc", "Insert Flatten before 'fc'")
    info = next(r for r in build.infer(fixed_spec).rows() if r.id == "fc")
    assert info.in_shape == (c * h * w,) and info.out_shape == (out,)
    assert build.infer(fixed_spec).ok or nested  # a block from a map to a vector has no projection


KIND_OF_INFERRED = [("Linear", "in_features", lambda s: s[-1], {"out_features": 4}, 1),
                    ("Conv2d", "in_channels", lambda s: s[0], {"out_channels": 4, "kernel_size": 1}, 3),
                    ("Conv1d", "in_channels", lambda s: s[0], {"out_channels": 4, "kernel_size": 1}, 2),
                    ("BatchNorm2d", "num_features", lambda s: s[0], {}, 3),
                    ("BatchNorm1d", "num_features", lambda s: s[0], {}, 1),
                    ("GroupNorm", "num_channels", lambda s: s[0], {"num_groups": 1}, 3)]


@CASES
@given(case=st.sampled_from(KIND_OF_INFERRED), dims=st.lists(st.integers(1, 9), min_size=3, max_size=3),
       wrong=st.integers(1, 700))
def test_set_an_inferred_size_that_disagrees_with_the_input(case, dims, wrong):
    kind, name, derived, args, rank = case
    shape = tuple(dims[:rank])
    if wrong == derived(shape):
        wrong += 1
    spec = ModelSpec(shape, [LayerSpec("x", kind, {**args, name: wrong})])
    out = fixed(spec, "x", f"Set {name} to {derived(shape)}")
    assert out.layers[0].args[name] == derived(shape)
    assert build.infer(out).ok


@CASES
@given(width=st.integers(1, 64), inner=st.integers(1, 64), channels=st.integers(1, 6), size=st.integers(2, 12),
       stride=st.integers(1, 3), maps=st.booleans())
def test_set_projection_to_auto_where_a_projection_exists(width, inner, channels, size, stride, maps):
    if maps:
        body = [L("conv", "Conv2d", out_channels=channels + 1, kernel_size=3, padding=1, stride=stride)]
        spec = ModelSpec((channels, size, size), [L("res", "Residual", body)])
    else:
        if inner == width:
            inner += 1
        spec = ModelSpec((width,), [L("res", "Residual", [L("fc", "Linear", out_features=inner)])])
    out = fixed(spec, "res", "Set projection to auto")
    assert build.infer(out).ok


def test_no_remedy_where_no_projection_maps_the_shapes():
    spec = ModelSpec((2, 4, 4), [L("res", "Residual", [L("flat", "Flatten")])])
    error = error_of(spec, "res")
    assert error is not None and "set projection to 'auto'" in error.fix and error.remedy is None


@CASES
@given(dims=st.lists(st.integers(1, 6), min_size=1, max_size=3), log=st.booleans())
def test_softmax_over_the_batch_becomes_the_last_dim(dims, log):
    spec = ModelSpec(tuple(dims), [LayerSpec("sm", "LogSoftmax" if log else "Softmax", {"dim": 0})])
    assert fixed(spec, "sm", "Set dim to -1").layers[0].args["dim"] == -1


@CASES
@given(dims=st.lists(st.integers(1, 6), min_size=1, max_size=3))
def test_flatten_dims(dims):
    spec = ModelSpec(tuple(dims), [LayerSpec("f", "Flatten", {"start_dim": 0})])
    assert fixed(spec, "f", "Set start_dim to 1").layers[0].args["start_dim"] == 1
    if len(dims) >= 2:
        backwards = ModelSpec(tuple(dims), [LayerSpec("f", "Flatten", {"start_dim": 2, "end_dim": 1})])
        assert fixed(backwards, "f", "Set end_dim to -1").layers[0].args["end_dim"] == -1


@CASES
@given(a=st.integers(1, 6), b=st.integers(1, 6), fits=st.booleans())
def test_unflatten_over_the_batch_only_where_dim_1_fits(a, b, fits):
    size = [a, b] if fits else [a, b + 1]
    spec = ModelSpec((a * b,), [LayerSpec("u", "Unflatten", {"dim": 0, "unflattened_size": size})])
    if fits:
        fixed(spec, "u", "Set dim to 1")
    else:
        assert error_of(spec, "u").remedy is None  # dim=1 would not fit either: no button


@CASES
@given(dims=st.lists(st.integers(1, 9), min_size=1, max_size=3), wrong=st.integers(1, 50))
def test_layer_norm_shape_follows_the_last_dim(dims, wrong):
    if wrong == dims[-1]:
        wrong += 1
    spec = ModelSpec(tuple(dims), [LayerSpec("ln", "LayerNorm", {"normalized_shape": [wrong]})])
    assert fixed(spec, "ln", f"Set normalized_shape to ({dims[-1]},)").layers[0].args["normalized_shape"] == [dims[-1]]


def test_choices_get_no_remedy():
    """Where the fix is a choice (which stride? which groups? which input?), no button."""
    for spec, layer in [
        (ModelSpec((3, 8, 8), [L("c", "Conv2d", out_channels=4, kernel_size=3, padding="same", stride=2)]), "c"),
        (ModelSpec((3, 8, 8), [L("c", "Conv2d", out_channels=4, kernel_size=3, groups=2)]), "c"),
        (ModelSpec((1, 8, 8), [L("c", "Conv2d", out_channels=4, kernel_size=30)]), "c"),
        (ModelSpec((10,), [L("e", "Embedding", num_embeddings=5, embedding_dim=4)]), "e"),
        (ModelSpec((12,), [L("t", "TransformerEncoderLayer", nhead=5)]), "t"),
    ]:
        error = error_of(spec, layer)
        assert error is not None and error.remedy is None, (spec, error.remedy)


# ---------------------------------------------------------------- the model against the data

@CASES
@given(model_in=st.lists(st.integers(1, 9), min_size=3, max_size=3), data_in=st.lists(st.integers(1, 9), min_size=3,
                                                                                     max_size=3))
def test_match_the_model_input_to_the_data(model_in, data_in):
    if model_in == data_in:
        data_in[0] += 1
    spec = ModelSpec(tuple(model_in), [L("flat", "Flatten"), L("fc", "Linear", out_features=3)])
    task = Task("classification", tuple(data_in), num_classes=3, description="data")
    with pytest.raises(LayerError) as caught:
        check_fit(spec, task)
    assert caught.value.remedy.label == f"Match the model input to the data {shapes.fmt(tuple(data_in))}"
    assert check_fit(remedies.apply(caught.value.remedy, spec), task).output_shape == (3,)


def test_out_features_and_a_softmax_before_cross_entropy_but_not_a_dtype():
    tokens = ModelSpec((6,), [L("emb", "Embedding", num_embeddings=9, embedding_dim=4), L("flat", "Flatten"),
                              L("fc", "Linear", out_features=2)], "int64")
    floats = Task("classification", (6,), "float32", num_classes=2, description="numbers")
    with pytest.raises(LayerError) as caught:
        check_fit(tokens, floats)
    assert "dtype" in caught.value.fix and caught.value.remedy is None  # float input would break the Embedding

    spec = ModelSpec((5,), [L("fc", "Linear", out_features=7), L("relu", "ReLU")])
    task = Task("classification", (5,), num_classes=3, description="three")
    with pytest.raises(LayerError) as caught:
        check_fit(spec, task)
    assert caught.value.remedy.label == "Set out_features of 'fc' to 3"
    check_fit(remedies.apply(caught.value.remedy, spec), task)

    spec = ModelSpec((5,), [L("fc", "Linear", out_features=3), L("softmax", "Softmax")])
    with pytest.raises(LayerError) as caught:
        check_fit(spec, task)
    assert caught.value.remedy.label == "Remove 'softmax'"
    assert [x.id for x in check_fit(remedies.apply(caught.value.remedy, spec), task).layers] == ["fc"]


def test_a_remedy_naming_a_layer_that_is_gone_is_refused():
    remedy = remedies.set_args("fc", out_features=3)
    with pytest.raises(KeyError):
        remedies.apply(remedy, ModelSpec((5,), [L("other", "Linear", out_features=3)]))
    assert remedy.layers() == {"fc"}
