"""Every torchvision classifier is a backbone kind: its stages, its shapes on meta at the
smallest input it takes, and a clear error (layer, size, fix) below that."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from workbench.model import backbones, build, catalog
from workbench.model.spec import LayerSpec, ModelSpec


def test_every_torchvision_classifier_is_a_backbone_kind():
    import torchvision.models as tvm

    assert set(tvm.list_models(module=tvm)) == set(catalog.BACKBONES) == set(backbones.ARCHS)
    for arch in catalog.BACKBONES:
        kind = catalog.kind(arch)
        assert kind is not None and kind.category == "Backbones", arch
        assert backbones.FAMILIES[backbones.family(arch)][0].split()[0] in kind.help  # searchable family words


def test_the_first_three_keep_their_stage_names():
    assert backbones.stage_names("resnet18") == ("stem", "layer1", "layer2", "layer3", "layer4")
    assert backbones.stage_names("mobilenet_v3_small") == ("stem", "stage1", "stage2", "stage3", "stage4", "head")
    assert backbones.stage_names("efficientnet_b0") == ("stem",) + tuple(f"stage{i}" for i in range(1, 8)) + ("head",)
    assert backbones.stage_names("Conv2d") == ()


def test_catalog_import_builds_no_model_and_imports_no_torchvision():
    code = ("import sys, torch; import workbench.model.catalog as c; "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'; print(len(c.BACKBONES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "80"


@pytest.mark.parametrize("arch", backbones.ARCHS)
def test_meta_inference_at_the_smallest_input_matches_a_forward(arch):
    _, size = backbones.size_rule(arch)
    shape = (3, size, size)
    info = build.infer(ModelSpec(shape, [LayerSpec("net", arch)]))
    row = info.layers[0]
    assert row.error is None, row.error
    net = backbones.build_backbone(arch, meta=True).eval()
    with torch.no_grad():
        real = net(torch.empty((2,) + shape, device="meta"))
    assert row.out_shape == tuple(real.shape[1:])
    assert [s.name for s in row.stages] == list(backbones.stage_names(arch))
    assert row.params == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("arch", ["vit_b_16", "maxvit_t", "inception_v3", "resnet50", "swin_t"])
def test_a_too_small_or_wrong_input_names_the_layer_and_the_fix(arch):
    rule, size = backbones.size_rule(arch)
    bad = (3, size + 16, size + 16) if rule == "exact" else (3, size - 1, size - 1)
    error = build.infer(ModelSpec(bad, [LayerSpec("net", arch)])).layers[0].error
    assert error is not None and error.layer_id == "net"
    assert arch in error.problem and f"{size}x{size}" in error.fix and "Upsample" in error.fix
    if rule == "exact":
        assert f"needs 3x{size}x{size} input" in error.problem
        assert error.remedy is not None  # one click inserts the Upsample


def test_pool_off_gives_the_feature_map():
    info = build.infer(ModelSpec((3, 64, 64), [LayerSpec("net", "densenet121", {"pool": False})]))
    assert info.layers[0].out_shape == (1024, 2, 2)
    info = build.infer(ModelSpec((3, 224, 224), [LayerSpec("net", "vit_b_16", {"pool": False})]))
    assert info.layers[0].out_shape == (197, 768)


def test_a_local_weights_file_is_checked_key_by_key_for_a_new_arch(tmp_path):
    from workbench.errors import WorkbenchError

    net = backbones.torchvision_model("squeezenet1_1")
    path = tmp_path / "sq.pth"
    torch.save(net.state_dict(), path)
    built = backbones.build_backbone("squeezenet1_1", weights=str(path))
    torch.testing.assert_close(built.block1[0].weight, net.features[0].weight)
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(WorkbenchError, match="does not hold squeezenet1_1 weights"):
        backbones.build_backbone("squeezenet1_1", weights=str(path))


@pytest.mark.parametrize("arch", backbones.ARCHS)
def test_python_source_helper_builds_the_same_stages(arch):
    """The Python source export's helper builds what build_backbone builds, key for key and
    shape for shape (on meta; test_export rebuilds the first three with real weights)."""
    ns = {"torch": torch, "nn": torch.nn, "OrderedDict": __import__("collections").OrderedDict}
    exec(backbones.helper_source(arch), ns)  # noqa: S102 - our own generated text
    for pool in (True, False):
        with backbones.MetaWeights():
            made = ns[f"{arch}_backbone"](pool=pool)
        ours = backbones.build_backbone(arch, pool=pool, meta=True)
        assert {k: v.shape for k, v in made.state_dict().items()} == \
            {k: v.shape for k, v in ours.state_dict().items()}, arch
        assert [n for n, _ in made.named_children()] == [n for n, _ in ours.named_children()]
