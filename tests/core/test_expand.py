"""Expand to stack: a backbone becomes plain rows, Residual and Parallel blocks computing the
same function; torchvision's weights, renamed by the key map, give the same outputs."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from workbench.errors import WorkbenchError
from workbench.model import backbones, build, expand, weights
from workbench.model.spec import LayerSpec, ModelSpec, model_from_json


def _random_torchvision_file(arch: str, path):
    """torchvision's model with random weights and random BatchNorm statistics, saved as a .pth."""
    torch.manual_seed(0)
    net = backbones.torchvision_model(arch).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), path)
    return path


@pytest.mark.parametrize("arch, size", [("resnet18", 64), ("mobilenet_v3_small", 64)])
def test_the_expanded_stack_loads_torchvision_weights_and_gives_the_same_outputs(arch, size, tmp_path):
    path = _random_torchvision_file(arch, tmp_path / f"{arch}.pth")
    spec = ModelSpec((3, size, size), [LayerSpec("backbone", arch, {"weights": str(path)})])
    reference = build.build_model(spec).eval()  # the backbone block with the file's weights
    expanded, expansion = expand.expand_layer(spec, "backbone")
    expanded = model_from_json(json.loads(json.dumps(expanded.to_json())))  # survives the project file
    stack = build.build_model(expanded).eval()
    file = weights.read(path)
    report = weights.load_into(stack, weights.Weights(path, expand.translate(file.state_dict, expansion.keys),
                                                      file.source))
    assert report.ok and not report.missing
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(stack(x), reference(x))


def test_resnet_blocks_are_residual_with_a_conv_bn_shortcut_and_relu_after():
    spec, _ = expand.expand_layer(ModelSpec((3, 64, 64), [LayerSpec("net", "resnet18")]), "net")
    types = [row.type for row in spec.layers]
    assert types[:4] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert types.count("Residual") == 8 and types[-2:] == ["AdaptiveAvgPool2d", "Flatten"]
    first_down = spec.find("layer2_0")
    assert first_down.args == {"projection": "conv_bn"}
    assert [r.type for r in first_down.layers] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d"]
    assert spec.layers[spec.layers.index(first_down) + 1].type == "ReLU"


def test_mobilenet_squeeze_excitation_is_a_parallel_mul():
    spec, _ = expand.expand_layer(ModelSpec((3, 64, 64), [LayerSpec("net", "mobilenet_v3_small")]), "net")
    se = [layer for _, layer in spec.walk() if layer.type == "Parallel"]
    assert se and all(layer.args == {"merge": "mul"} for layer in se)
    assert [len(b.layers) for b in se[0].layers] == [0, 5]  # identity x gate


def test_frozen_stages_stay_frozen_and_the_expansion_replaces_the_row_in_place():
    spec = ModelSpec((3, 64, 64), [LayerSpec("net", "resnet18", frozen_stages=["stem", "layer1"]),
                                   LayerSpec("fc", "Linear", {"out_features": 3})])
    out, _ = expand.expand_layer(spec, "net")
    assert out.layers[-1].id == "fc" and spec.layers[0].type == "resnet18"  # the original is untouched
    frozen = {layer.id for layer in out.layers if layer.frozen}
    assert {"conv1", "bn1", "layer1_0", "layer1_1", "layer1_1_relu_out"} <= frozen
    assert "layer2_0" not in frozen
    assert build.check(out).output_shape == (3,)


@pytest.mark.parametrize("arch", ["vit_b_16", "densenet121", "efficientnet_b0", "inception_v3"])
def test_architectures_that_do_not_map_are_refused_with_the_reason(arch):
    assert expand.why_not(arch)
    with pytest.raises(WorkbenchError, match=f"{arch} \\(layer 'net'\\) cannot be expanded into layers: "):
        expand.expand_layer(ModelSpec((3, 224, 224), [LayerSpec("net", arch)]), "net")


def test_every_expandable_family_expands_to_the_same_shape():
    for arch in ("resnet50", "resnext50_32x4d", "wide_resnet50_2", "vgg11_bn", "alexnet", "mobilenet_v2",
                 "mobilenet_v3_large"):
        spec = ModelSpec((3, 64, 64), [LayerSpec("net", arch)])
        out, expansion = expand.expand_layer(spec, "net")
        assert build.check(out).output_shape == build.check(spec).output_shape, arch
        stack_keys = set(build.build_model(out).state_dict()) if arch == "resnet50" else None
        if stack_keys is not None:
            assert stack_keys == set(expansion.keys.values())


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_cli_expand_writes_the_project_and_refuses_with_one_error_line(tmp_path):
    from workbench.project import project_file, templates

    path = tmp_path / "r.wbproj"
    project_file.save(templates.load("resnet18_transfer"), path)
    bad = _cli("expand", path, "head")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: layer 'head' is a Linear, not a torchvision backbone; only a backbone expands into layers"]
    ok = _cli("expand", path, "backbone")
    assert ok.returncode == 0, ok.stderr
    assert "expanded backbone (resnet18) into 22 rows" in ok.stdout
    spec = project_file.load(path).model
    assert spec.find("backbone") is None and spec.find("layer4_1").type == "Residual"


def test_the_python_source_export_of_an_expanded_resnet_verifies(tmp_path):
    from workbench.export import exporter as export

    spec, _ = expand.expand_layer(ModelSpec((3, 32, 32), [LayerSpec("net", "resnet18")]), "net")
    model = build.build_model(spec)
    result = export.export(model, spec, "python", tmp_path / "expanded.py")
    assert result.ok and result.verification.passed
    assert "nn.Sequential(nn.Conv2d(64, 128, kernel_size=1, stride=2, bias=False), nn.BatchNorm2d(128))" in \
        result.path.read_text()
