"""Open weights: every kind of weights file loads into the model it fits, key by key, and a
file that does not fit loads nothing and says which keys are wrong."""
from __future__ import annotations

import collections

import pytest
import torch

from workbench.model import build, weights
from workbench.export import exporter as export
from workbench.errors import WorkbenchError
from workbench.model.spec import LayerSpec as L
from workbench.model.spec import ModelSpec


def spec(out: int = 3) -> ModelSpec:
    return ModelSpec((1, 6, 6), [L("conv", "Conv2d", {"out_channels": 4, "kernel_size": 3}), L("bn", "BatchNorm2d"),
                                 L("flat", "Flatten"), L("fc", "Linear", {"out_features": out})])


def trained(out: int = 3):
    torch.manual_seed(1)
    model = build.build_model(spec(out))
    with torch.no_grad():
        model.bn.running_mean.fill_(0.25)
    return model


class Hyper:
    """Stands for any Python object pickled into a checkpoint (its class would run on load)."""

    lr = 0.1


def same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("name", ["m.pth", "m.safetensors"])
def test_exports_load_back_with_their_spec(tmp_path, name):
    source = trained()
    fmt = "state_dict" if name.endswith(".pth") else "safetensors"
    export.export(source, spec(), fmt, tmp_path / name, export.ExportOptions(verify=False))
    w = weights.read(tmp_path / name)
    assert w.spec.to_json() == spec().to_json()
    target = build.build_model(spec())
    report = weights.load_into(target, w)
    assert report.ok and len(report.matched) == len(target.state_dict())
    assert same(source, target)


def test_training_checkpoint_plain_state_dict_and_ddp_prefix(tmp_path):
    source = trained()
    state = source.state_dict()
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "epoch": 3},
               tmp_path / "ckpt.pth")
    torch.save(state, tmp_path / "plain.pth")
    torch.save(collections.OrderedDict((f"module.{k}", v) for k, v in state.items()), tmp_path / "ddp.pth")
    for name, kind in (("ckpt.pth", "training checkpoint"), ("plain.pth", "plain state_dict"),
                       ("ddp.pth", "plain state_dict")):
        target = build.build_model(spec())
        report = weights.load_into(target, tmp_path / name)
        assert report.source == kind and report.ok, report.describe()
        assert same(source, target), name
    assert any("module." in n for n in report.notes)


def test_mismatched_file_loads_nothing_and_lists_the_keys(tmp_path):
    torch.save(trained(out=5).state_dict() | {"extra.weight": torch.zeros(2)}, tmp_path / "other.pth")
    target = build.build_model(spec(out=3))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    del_key = "conv.bias"
    data = torch.load(tmp_path / "other.pth", weights_only=True)
    del data[del_key]
    torch.save(data, tmp_path / "other.pth")
    with pytest.raises(weights.WeightsMismatch) as err:
        weights.load_into(target, tmp_path / "other.pth")
    text = str(err.value)
    assert "fc.weight: file (5, 64), model (3, 64)" in text and "fc.bias: file (5,), model (3,)" in text
    assert "missing from the file (1): conv.bias" in text
    assert "not in the model (1): extra.weight" in text
    assert "nothing was loaded" in text
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    report = weights.load_into(target, tmp_path / "other.pth", partial=True)
    assert "conv.weight" in report.matched and "fc.weight" not in report.matched
    assert torch.equal(target.conv.weight, data["conv.weight"])
    assert torch.equal(target.fc.weight, before["fc.weight"])


def test_files_that_hold_code_or_garbage_are_refused_clearly(tmp_path):
    torch.save({"model": trained().state_dict(), "hparams": Hyper()}, tmp_path / "pickled.pth")
    with pytest.raises(WorkbenchError, match="weights_only=True"):
        weights.read(tmp_path / "pickled.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file at all")
    with pytest.raises(WorkbenchError, match="damaged"):
        weights.read(tmp_path / "junk.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(WorkbenchError, match="safetensors"):
        weights.read(tmp_path / "junk.safetensors")
    with pytest.raises(WorkbenchError, match="no such file"):
        weights.read(tmp_path / "absent.pth")
    torch.save({"epoch": 3, "notes": "hello"}, tmp_path / "nostate.pth")
    with pytest.raises(WorkbenchError, match="no state_dict found"):
        weights.read(tmp_path / "nostate.pth")


def test_half_precision_weights_are_converted_and_said_so(tmp_path):
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in trained().state_dict().items()},
               tmp_path / "half.pth")
    report = weights.load_into(build.build_model(spec()), tmp_path / "half.pth")
    assert report.ok and any("float16 in the file; converted to float32" in n for n in report.notes)
