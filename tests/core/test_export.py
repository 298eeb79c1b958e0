"""Export behaviour a user relies on: failures leave no file and say where, options do what
they say, exporters' chatter stays out of the terminal."""
from __future__ import annotations

import contextlib
import errno
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from workbench.model import build
from workbench.export import exporter as export, onnx_format as export_onnx
from workbench import fileio
from workbench.project import templates
from workbench.errors import WorkbenchError
from workbench.model.spec import LayerSpec as L
from workbench.model.spec import ModelSpec


def small_spec() -> ModelSpec:
    return ModelSpec((6,), [L("fc1", "Linear", {"out_features": 8}), L("act", "ReLU"),
                            L("drop", "Dropout", {"p": 0.5}), L("fc2", "Linear", {"out_features": 3})])


@pytest.fixture
def small():
    torch.manual_seed(0)
    spec = small_spec()
    return build.build_model(spec), spec


def files_in(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class SvdScale(nn.Module):
    """An operation ONNX has no operator for."""

    def forward(self, x):
        return x * torch.linalg.svdvals(x.unsqueeze(-1)).sum()


class Noisy(nn.Module):
    """Random in eval mode too: no exported file can reproduce it."""

    def forward(self, x):
        return x + torch.rand_like(x)


def test_onnx_failure_names_the_layer_and_leaves_no_file(small, tmp_path):
    model, spec = small
    model.act = SvdScale()
    with pytest.raises(WorkbenchError) as err:
        export.export(model, spec, "onnx", tmp_path / "m.onnx")
    assert "layer 'act' (ReLU, #2)" in str(err.value)
    assert "aten._linalg_svd" in str(err.value)
    assert files_in(tmp_path) == []


def test_a_file_that_does_not_reproduce_the_model_is_not_written(small, tmp_path):
    model, spec = small
    model.act = Noisy()
    (tmp_path / "m.pt").write_bytes(b"older export")
    with pytest.raises(WorkbenchError, match="did not reproduce the model"):
        export.export(model, spec, "torchscript", tmp_path / "m.pt")
    assert files_in(tmp_path) == ["m.pt"]
    assert (tmp_path / "m.pt").read_bytes() == b"older export"


def test_full_disk_leaves_no_partial_file(small, tmp_path, monkeypatch):
    model, spec = small

    def full_disk(obj, f, *a, **k):  # f: a path, or the file object the exporter serialises into
        with open(f, "wb") if isinstance(f, (str, os.PathLike)) else contextlib.nullcontext(f) as fh:
            fh.write(b"half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(WorkbenchError, match="disk is full") as err:
        export.export(model, spec, "state_dict", tmp_path / "m.pth")
    assert str(tmp_path / "m.pth") in str(err.value)
    assert files_in(tmp_path) == []


def test_a_library_write_failure_is_reported_as_a_write_problem(small, tmp_path, monkeypatch):
    model, spec = small

    def stream_writer_fails(program, f, *a, **k):  # what torch's zip writer raises on a full disk
        with open(f, "wb") if isinstance(f, (str, os.PathLike)) else contextlib.nullcontext(f) as fh:
            fh.write(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing "
                           "file data/0: file write failed")

    monkeypatch.setattr(torch.export, "save", stream_writer_fails)
    with pytest.raises(WorkbenchError, match="disk may be full") as err:
        export.export(model, spec, "pt2", tmp_path / "m.pt2")
    assert "m.pt2" in str(err.value)
    assert files_in(tmp_path) == []


def test_unwritable_or_missing_folder_says_which_path(small, tmp_path, monkeypatch):
    model, spec = small
    with pytest.raises(WorkbenchError, match="does not exist") as err:
        export.export(model, spec, "onnx", tmp_path / "nowhere" / "m.onnx")
    assert "nowhere" in str(err.value)

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fileio.tempfile, "mkstemp", denied)
    with pytest.raises(WorkbenchError, match="permission denied") as err:
        export.export(model, spec, "safetensors", tmp_path / "m.safetensors")
    assert str(tmp_path / "m.safetensors") in str(err.value)
    assert files_in(tmp_path) == []


def test_export_runs_in_eval_mode_and_restores_each_submodule(small, tmp_path):
    model, spec = small
    model.train()
    model.drop.eval()  # a mixed state must come back exactly
    result = export.export(model, spec, "python", tmp_path / "m.py")
    assert result.verification.passed  # Dropout active would make outputs differ
    assert model.training and model.fc1.training and not model.drop.training


def test_state_dict_file_holds_spec_as_plain_data_or_just_the_state_dict(small, tmp_path):
    model, spec = small
    export.export(model, spec, "state_dict", tmp_path / "with.pth")
    data = torch.load(tmp_path / "with.pth", weights_only=True)
    assert data["spec"] == spec.to_json()
    assert set(data["state_dict"]) == set(model.state_dict())
    export.export(model, spec, "state_dict", tmp_path / "plain", export.ExportOptions(include_spec=False))
    plain = torch.load(tmp_path / "plain.pth", weights_only=True)
    fresh = build.build_model(spec)
    fresh.load_state_dict(plain)  # loads directly, as PyTorch users expect
    assert torch.equal(fresh.fc2.weight, model.fc2.weight)


def test_safetensors_metadata_carries_the_spec(small, tmp_path):
    from safetensors import safe_open

    model, spec = small
    export.export(model, spec, "safetensors", tmp_path / "m.safetensors")
    with safe_open(str(tmp_path / "m.safetensors"), "pt") as fh:
        assert json.loads(fh.metadata()["spec"]) == spec.to_json()
        assert torch.equal(fh.get_tensor("fc1.weight"), model.fc1.weight.detach())


def test_extension_is_added_and_a_wrong_one_refused(small, tmp_path):
    model, spec = small
    result = export.export(model, spec, "pt2", tmp_path / "model", export.ExportOptions(verify=False))
    assert result.path == tmp_path / "model.pt2" and result.path.is_file()
    with pytest.raises(WorkbenchError, match="name it m.onnx"):
        export.export(model, spec, "onnx", tmp_path / "m.pth")
    with pytest.raises(WorkbenchError, match="unknown export format"):
        export.export(model, spec, "tflite", tmp_path / "m.tflite")


def test_exporters_chatter_goes_to_the_log_not_the_terminal(small, tmp_path, capfd):
    model, spec = small
    lines: list[str] = []
    export.export(model, spec, "torchscript", tmp_path / "m.pt", log=lines.append)
    export.export(model, spec, "onnx", tmp_path / "m.onnx", log=lines.append)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    deprecations = [ln for ln in lines if "FutureWarning" in ln and "torch.jit.trace` is deprecated" in ln]
    assert len(deprecations) == 1  # once, however often torch warned
    assert any("[torch.onnx]" in ln for ln in lines)  # the exporter's progress lines
    assert any("deprecated upstream" in ln for ln in lines)


def test_static_batch_onnx_is_checked_at_its_one_batch_size(small, tmp_path):
    import onnx

    model, spec = small
    result = export.export(model, spec, "onnx", tmp_path / "m.onnx", export.ExportOptions(dynamic_batch=False))
    assert result.verification.batch_sizes == (export.EXPORT_BATCH,)
    dim = onnx.load(tmp_path / "m.onnx").graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == export.EXPORT_BATCH


def test_onnx_opset_choice_is_honoured(small, tmp_path):
    import onnx

    model, spec = small
    result = export.export(model, spec, "onnx", tmp_path / "m.onnx", export.ExportOptions(opset=21))
    opsets = {o.domain: o.version for o in onnx.load(tmp_path / "m.onnx").opset_import}
    assert opsets[""] == 21 and "opset 21" in result.verification.notes


def test_large_onnx_keeps_weights_beside_it_and_moves_both_into_place(small, tmp_path, monkeypatch):
    model, spec = small
    monkeypatch.setattr(export_onnx, "SINGLE_FILE_LIMIT", 0)
    result = export.export(model, spec, "onnx", tmp_path / "big.onnx")
    assert result.verification.passed
    assert files_in(tmp_path) == ["big.onnx", "big.onnx.data"]
    assert result.files == [tmp_path / "big.onnx", tmp_path / "big.onnx.data"]


def test_torchscript_modes(tmp_path):
    spec = ModelSpec((5, 4), [L("lstm", "LSTM", {"hidden_size": 6}), L("fc", "Linear", {"out_features": 2})])
    model = build.build_model(spec)
    lines: list[str] = []
    result = export.export(model, spec, "torchscript", tmp_path / "auto.pt", log=lines.append)
    assert result.verification.passed
    assert any("scripting instead" in ln for ln in lines)  # LSTM tracing warns; auto scripts it
    scripted = export.export(model, spec, "torchscript", tmp_path / "s.pt",
                             export.ExportOptions(torchscript_mode="script"))
    assert scripted.verification.passed
    with pytest.raises(WorkbenchError, match="auto, trace or script"):
        export.export(model, spec, "torchscript", tmp_path / "x.pt", export.ExportOptions(torchscript_mode="jit"))


def test_python_keyword_ids_are_refused_by_graph_formats_but_work_as_source(tmp_path):
    spec = ModelSpec((4,), [L("lambda", "Linear", {"out_features": 4}), L("class", "ReLU"),
                            L("fc", "Linear", {"out_features": 2})])
    model = build.build_model(spec)
    with pytest.raises(WorkbenchError, match="layer 'lambda' has a Python keyword"):
        export.export(model, spec, "onnx", tmp_path / "m.onnx")
    result = export.export(model, spec, "python", tmp_path / "m.py")
    assert result.verification.passed
    source = (tmp_path / "m.py").read_text()
    assert "import workbench" not in source and "self.add_module('class'" in source


def test_sequence_model_with_embedding_lstm_gru_transformer(tmp_path):
    spec = ModelSpec((10,), [L("emb", "Embedding", {"num_embeddings": 30, "embedding_dim": 8}),
                             L("lstm", "LSTM", {"hidden_size": 8, "output": "sequence"}),
                             L("enc", "TransformerEncoderLayer", {"nhead": 2, "dim_feedforward": 16}),
                             L("gru", "GRU", {"hidden_size": 4, "bidirectional": True}),
                             L("head", "Linear", {"out_features": 3})], input_dtype="int64")
    model = build.build_model(spec)
    results = export.export_all(model, spec, tmp_path, "seq", formats=["python", "pt2"])
    assert [r.error for r in results] == ["", ""]
    source = (tmp_path / "seq.py").read_text()
    assert "Recurrent(nn.LSTM(input_size=8, hidden_size=8, batch_first=True), last=False)" in source
    assert "batch_first=True" in source.split("self.enc = ")[1].splitlines()[0]


def test_export_all_reports_each_format_and_continues_after_a_failure(small, tmp_path):
    model, spec = small
    model.act = SvdScale()
    results = export.export_all(model, spec, tmp_path / "out", "m", formats=["onnx", "state_dict"],
                                options=export.ExportOptions(verify=False))
    assert not results[0].ok and "layer 'act'" in results[0].error
    assert results[1].ok and results[1].path.is_file()
    assert files_in(tmp_path / "out") == ["m.pth"]


def test_digits_template_outputs_match_after_state_dict_roundtrip(tmp_path):
    proj = templates.load("digits_cnn")
    model = build.build_model(proj.model)
    result = export.export(model, proj.model, "state_dict", tmp_path / "d.pth")
    fresh = build.build_model(proj.model).eval()
    fresh.load_state_dict(torch.load(result.path, weights_only=True)["state_dict"])
    x = build.example_input(proj.model, 4)
    with torch.no_grad():
        np.testing.assert_array_equal(fresh(x).numpy(), model.eval()(x).numpy())
    assert os.stat(result.path).st_mode & 0o044  # readable by others, like any file the user saves


def test_a_bundled_app_without_python_verifies_in_its_own_process(small, tmp_path, monkeypatch):
    import sys

    from workbench.export.verify import BUNDLED

    model, spec = small
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.delenv("WORKBENCH_VERIFY_PYTHON", raising=False)
    result = export.export(model, spec, "python", tmp_path / "m.py")
    assert result.verification.passed and result.verification.where == BUNDLED


# the backbones rebuilt here with real weights (the first three); building all 80 for real takes
# minutes and gigabytes (regnet_y_128gf, vit_h_14)
_REBUILT_BACKBONES = ("resnet18", "mobilenet_v3_small", "efficientnet_b0")


def test_every_catalog_layer_kind_rebuilds_from_generated_source():
    """The generated class equals the workbench model, key for key and output for output."""
    from workbench.model import catalog
    from workbench.export import python_source as export_source

    candidates = [((3, 40, 40), "float32"), ((8, 8), "float32"), ((64,), "float32"), ((10,), "int64"),
                  ((2, 8, 8, 8), "float32"), ((8, 8, 8), "float32"), ((16, 9), "float32")]  # 3-D, PixelShuffle, Fold
    tried = 0
    skipped = [k for k in catalog.BACKBONES if k not in _REBUILT_BACKBONES]
    for kind in catalog.KINDS:
        if catalog.nests(kind.name):  # blocks: test_export_roundtrip exports them in every format
            continue
        if kind.name in skipped:  # test_backbones_all checks every backbone's generated source on meta
            continue
        if kind.name == "Custom":  # needs a user's file: test_user_code exports one to every format
            continue
        layer = L("layer", kind.name, kind.starter_args())
        for shape, dtype in candidates:
            spec = ModelSpec(shape, [layer], input_dtype=dtype)
            if build.infer(spec).ok:
                break
        else:
            pytest.fail(f"no input shape fits {kind.name}")
        torch.manual_seed(0)
        model = build.build_model(spec).eval()
        namespace: dict = {}
        exec(compile(export_source.generate(spec, kind.name), f"{kind.name}.py", "exec"), namespace)
        rebuilt = namespace["build_model"]().eval()
        rebuilt.load_state_dict(model.state_dict())  # strict: same keys, same shapes
        x = build.example_input(spec, 2)
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(x), model(x), msg=kind.name)
        tried += 1
    assert tried == len(catalog.KINDS) - len(catalog.NESTING) - len(skipped) - 1  # - 1: Custom
