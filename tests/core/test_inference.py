"""Shape and parameter inference: right numbers, and errors that name the layer and the fix."""
from __future__ import annotations

import pytest
import torch

from workbench.model import build
from workbench.errors import LayerError
from workbench.model.spec import LayerSpec as L, ModelSpec


def _spec(shape, *layers, dtype="float32"):
    return ModelSpec(tuple(shape), list(layers), dtype)


def _real_out(spec):
    model = build.build_model(spec).eval()
    with torch.no_grad():
        return tuple(model(build.example_input(spec, batch=3)).shape[1:])


def test_digits_cnn_shapes_and_counts_match_torch():
    spec = _spec((1, 8, 8), L("conv1", "Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1}),
                 L("relu1", "ReLU"), L("pool1", "MaxPool2d", {"kernel_size": 2}), L("flat", "Flatten"),
                 L("fc", "Linear", {"out_features": 10}))
    info = build.infer(spec)
    assert [r.out_shape for r in info.rows()] == [(16, 8, 8), (16, 8, 8), (16, 4, 4), (256,), (10,)]
    model = build.build_model(spec)
    assert [name for name, _ in model.named_children()] == ["conv1", "relu1", "pool1", "flat", "fc"]
    assert info.total_params == sum(p.numel() for p in model.parameters()) == 160 + 2570
    assert _real_out(spec) == info.output_shape == (10,)
    assert set(model.state_dict()) == {"conv1.weight", "conv1.bias", "fc.weight", "fc.bias"}


def test_frozen_layers_count_as_frozen_and_build_without_grad():
    spec = _spec((20,), L("a", "Linear", {"out_features": 5}, frozen=True), L("b", "Linear", {"out_features": 2}))
    info = build.infer(spec)
    assert (info.total_params, info.trainable_params, info.frozen_params) == (105 + 12, 12, 105)
    model = build.build_model(spec)
    assert not any(p.requires_grad for p in model.a.parameters())
    assert all(p.requires_grad for p in model.b.parameters())


def test_linear_after_feature_map_says_insert_flatten():
    spec = _spec((1, 8, 8), L("conv", "Conv2d", {"out_channels": 4, "kernel_size": 3}),
                 L("fc", "Linear", {"out_features": 10}), L("out", "ReLU"))
    info = build.infer(spec)
    err = info.error
    assert isinstance(err, LayerError) and err.layer_id == "fc" and err.position == "2"
    assert "insert Flatten before it" in str(err)
    assert "(4, 6, 6)" in str(err)
    assert info.rows()[2].out_shape is None and info.rows()[2].in_shape is None  # unknown, not wrong
    with pytest.raises(LayerError, match="layer 'fc'"):
        build.build_model(spec)


def test_kernel_larger_than_input_names_sizes_and_fix():
    spec = _spec((1, 3, 3), L("c", "Conv2d", {"out_channels": 2, "kernel_size": 5}))
    err = build.infer(spec).error
    assert "kernel 5 is larger than the 3x3 input" in err.problem
    assert "reduce kernel_size, add padding" in err.fix


def test_given_input_size_that_disagrees_is_an_error():
    spec = _spec((12,), L("fc", "Linear", {"in_features": 10, "out_features": 2}))
    err = build.infer(spec).error
    assert "in_features is 10 but the input (12,) has 12" in err.problem
    assert "remove in_features" in err.fix


def test_wrong_rank_suggests_reshaping():
    err = build.infer(_spec((64,), L("c", "Conv2d", {"out_channels": 2, "kernel_size": 3}))).error
    assert "(channels, height, width)" in err.problem and "Unflatten" in err.fix
    err = build.infer(_spec((16,), L("bn", "BatchNorm2d"))).error
    assert "BatchNorm1d" in err.fix


def test_residual_same_shape_and_projection():
    body = [L("c1", "Conv2d", {"out_channels": 8, "kernel_size": 3, "padding": 1}), L("r", "ReLU")]
    spec = _spec((8, 6, 6), L("res", "Residual", {}, layers=body))
    assert build.infer(spec).output_shape == (8, 6, 6)
    assert _real_out(spec) == (8, 6, 6)

    wider = [L("c2", "Conv2d", {"out_channels": 16, "kernel_size": 3, "padding": 1, "stride": 2})]
    bad = _spec((8, 6, 6), L("res", "Residual", {}, layers=wider))
    err = build.infer(bad).error
    assert err.layer_id == "res" and "set projection to 'auto'" in err.fix
    good = _spec((8, 6, 6), L("res", "Residual", {"projection": "auto"}, layers=wider))
    info = build.infer(good)
    assert info.ok and info.output_shape == (16, 3, 3)
    model = build.build_model(good)
    assert info.total_params == sum(p.numel() for p in model.parameters())
    assert _real_out(good) == (16, 3, 3)
    assert "res.body.c2.weight" in model.state_dict()


def test_error_inside_residual_names_the_nested_layer():
    spec = _spec((4,), L("res", "Residual", {}, layers=[L("c", "Conv2d", {"out_channels": 2, "kernel_size": 1})]),
                 L("after", "ReLU"))
    info = build.infer(spec)
    assert info.error.layer_id == "c" and info.error.position == "1.1"
    assert info.rows()[-1].out_shape is None


@pytest.mark.parametrize("kind,shape,out", [
    ("LSTM", (7, 5), (6,)), ("GRU", (7, 5), (6,)),
])
def test_recurrent_last_step_or_sequence(kind, shape, out):
    last = _spec(shape, L("rnn", kind, {"hidden_size": 6}))
    seq = _spec(shape, L("rnn", kind, {"hidden_size": 6, "output": "sequence", "bidirectional": True}))
    assert build.infer(last).output_shape == out == _real_out(last)
    assert build.infer(seq).output_shape == (7, 12) == _real_out(seq)


def test_embedding_needs_token_input_and_transformer_heads_divide():
    tokens = _spec((12,), L("emb", "Embedding", {"num_embeddings": 50, "embedding_dim": 16}),
                   L("enc", "TransformerEncoderLayer", {"nhead": 4, "dim_feedforward": 32}),
                   L("flat", "Flatten"), L("fc", "Linear", {"out_features": 3}), dtype="int64")
    assert build.infer(tokens).output_shape == (3,) == _real_out(tokens)
    err = build.infer(_spec((12,), L("emb", "Embedding", {"num_embeddings": 5, "embedding_dim": 4}))).error
    assert "int64" in err.fix
    bad_heads = _spec((12, 10), L("enc", "TransformerEncoderLayer", {"nhead": 4}))
    assert "choose nhead among 1, 2, 5, 10" in str(build.infer(bad_heads).error)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_backbones_infer_on_meta_and_match_a_real_forward(arch):
    spec = _spec((3, 64, 64), L("bb", arch, {}, frozen_stages=["stem"]), L("fc", "Linear", {"out_features": 4}))
    info = build.infer(spec)
    assert info.ok, info.error
    bb = info.layers[0]
    assert [s.name for s in bb.stages][0] == "stem" and bb.stages[0].frozen
    model = build.build_model(spec)
    total, trainable = build.param_count(model)
    assert (total, trainable) == (info.total_params, info.trainable_params)
    assert not any(p.requires_grad for p in model.bb.stem.parameters())
    assert _real_out(spec) == (4,)


def test_backbone_rejects_grey_images_with_a_fix():
    err = build.infer(_spec((1, 64, 64), L("bb", "resnet18", {}))).error
    assert "3-channel" in err.problem and "Conv2d(out_channels=3" in err.fix


def test_missing_weights_file_is_a_clear_error(tmp_path):
    from workbench.errors import WorkbenchError
    spec = _spec((3, 32, 32), L("bb", "resnet18", {"weights": str(tmp_path / "none.pth")}))
    with pytest.raises(WorkbenchError, match="weights file not found"):
        build.build_model(spec)


def test_local_backbone_weights_load_with_weights_only(tmp_path):
    import torchvision
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    spec = _spec((3, 32, 32), L("bb", "resnet18", {"weights": str(tmp_path / "r18.pth")}))
    model = build.build_model(spec)
    assert torch.equal(model.bb.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_download_offline_fails_fast_without_network(monkeypatch):
    import time
    from workbench.model import backbones
    from workbench.errors import WorkbenchError
    monkeypatch.setenv("WORKBENCH_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: "/nonexistent-hub")
    start = time.monotonic()
    with pytest.raises(WorkbenchError, match="downloads are off"):
        backbones.build_backbone("resnet18", weights="download")
    assert time.monotonic() - start < 5


def test_edit_reinfers_only_from_the_edited_row(monkeypatch):
    layers = []
    for i in range(50):
        layers += [L(f"fc{i}", "Linear", {"out_features": 32}), L(f"act{i}", "ReLU")]
    spec = _spec((32,), *layers)
    build.infer(spec)
    computed = []
    original = build._compute_leaf
    monkeypatch.setattr(build, "_compute_leaf", lambda *a: computed.append(a[0].id) or original(*a))
    spec.layers[90].args["out_features"] = 32 + 1  # fc45
    info = build.infer(spec)
    assert info.ok
    # fc45 changed; act45 and fc46 see a new input; below fc46 the shape is back to (32,): cache hits
    assert computed == ["fc45", "act45", "fc46"]


def test_settings_that_do_nothing_get_advice_not_a_torch_warning(recwarn):
    spec = _spec((7, 5), L("rnn", "LSTM", {"hidden_size": 4, "dropout": 0.5}))
    info = build.infer(spec)
    assert info.ok and "does nothing with num_layers=1" in info.layers[0].advice[0]
    build.build_model(spec)
    assert not [w for w in recwarn if "dropout" in str(w.message)]
    deeper = _spec((7, 5), L("rnn", "LSTM", {"hidden_size": 4, "dropout": 0.5, "num_layers": 2}))
    assert build.infer(deeper).layers[0].advice == []


def test_zero_and_constant_padding_need_the_dims_they_pad_besides_the_batch():
    """ZeroPad2d on (1,) padded the batch (2 -> 4 examples) inside a Residual: found by the stack fuzzer in CI."""
    b = build
    for kind, shape in (("ZeroPad2d", (1,)), ("ZeroPad3d", (2, 3)), ("ConstantPad2d", (5,))):
        args = {"padding": 1, **({"value": 0.0} if kind.startswith("Constant") else {})}
        spec = ModelSpec(shape, [L("res", "Residual", {"projection": "auto"}, layers=[L("p", kind, args)])])
        info = b.infer(spec)
        assert not info.ok and "'p'" in str(info.error) and "besides the batch" in str(info.error)
    ok = b.infer(ModelSpec((1, 8, 8), [L("p", "ZeroPad2d", {"padding": 1})]))
    assert ok.ok and ok.layers[0].out_shape == (1, 10, 10)
