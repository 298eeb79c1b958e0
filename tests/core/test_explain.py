"""Explanations (issue 17, section 3): Grad-CAM points at the region the class depends on,
integrated gradients rank the one informative feature first, the last conv layer is found
inside Residual blocks and torchvision backbones, the confusion matrix's cells as sample
lists, and `workbench explain` (a PNG, the predicted class printed, exit 2 naming a bad index)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from workbench.cli.main import main
from workbench.data.bundle import DataBundle, Task, load_data
from workbench.data.sources.base import TensorData
from workbench.insight import explain, explain_picture
from workbench.model import build
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import templates
from workbench.project.settings import DataSettings
from workbench.training.predict import PredictError


def image_bundle(x: torch.Tensor, y: torch.Tensor, names=("off", "on")) -> DataBundle:
    task = Task("classification", tuple(x.shape[1:]), num_classes=len(names), class_names=tuple(names),
                is_image=True)
    return DataBundle(task, TensorData(x, y), TensorData(x, y), DataSettings())


def quadrant_data(n: int = 40, side: int = 16, seed: int = 0):
    """Two channels: channel 0 holds the evidence (a small square, only ever in the top-left
    quadrant, present for class "on"); channel 1 larger, brighter distractor squares in the
    other quadrants for every sample. A map of input brightness would point at the distractors."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 2, side, side)
    y = torch.arange(n) % 2
    h = side // 2
    for i in range(n):
        if y[i] == 1:
            r, c = torch.randint(0, h - 3, (2,), generator=g).tolist()
            x[i, 0, r:r + 3, c:c + 3] = 1.0
        for qr, qc in ((0, h), (h, 0), (h, h)):
            r, c = torch.randint(0, h - 5, (2,), generator=g).tolist()
            x[i, 1, qr + r:qr + r + 5, qc + c:qc + c + 5] = 3.0
    return x, y


def quadrant_model(side: int = 16) -> nn.Module:
    """Hand-set: a 1x1 conv passing both channels on, ReLU, and a head that reads only the
    evidence channel's top-left quadrant (class "on" score = its sum, "off" = minus it)."""
    conv = nn.Conv2d(2, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(2).reshape(2, 2, 1, 1))
        conv.bias.zero_()
    head = nn.Linear(2 * side * side, 2)
    with torch.no_grad():
        mask = torch.zeros(2, side, side)
        mask[0, :side // 2, :side // 2] = 1.0
        head.weight.copy_(torch.stack([-mask.flatten(), mask.flatten()]))
        head.bias.copy_(torch.tensor([0.5, -0.5]))
    return nn.Sequential(conv, nn.ReLU(inplace=True), nn.Flatten(), head)


def test_grad_cam_highlights_the_informative_quadrant():
    x, y = quadrant_data()
    bundle = image_bundle(x, y)
    model = quadrant_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    on = [i for i in range(len(y)) if y[i] == 1]
    for index in on[:5]:
        ex = explain.explain(model, bundle, index)
        assert ex.method == explain.GRAD_CAM and ex.layer == "0 (Conv2d)"
        assert ex.predicted == "on" and ex.true == "on" and ex.target == "on"
        heat = ex.heat
        assert heat.shape == ex.image.shape[:2] and heat.shape[0] >= explain.MIN_PICTURE_SIDE
        h = heat.shape[0] // 2
        quadrants = [heat[:h, :h].sum(), heat[:h, h:].sum(), heat[h:, :h].sum(), heat[h:, h:].sum()]
        assert quadrants[0] > 0.9 * sum(quadrants), (index, quadrants)
        peak = np.unravel_index(np.argmax(heat), heat.shape)
        assert peak[0] < h and peak[1] < h
    # the model asked is never touched: same weights, in-place ReLU kept
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model[1].inplace is True and model.training is True


def test_last_conv_is_found_in_residual_blocks_and_torchvision_backbones():
    from torchvision.models import resnet18

    net = resnet18(weights=None).eval()
    name, layer = explain.last_conv(net, torch.zeros(3, 64, 64))
    assert name == "layer4.1.conv2" and isinstance(layer, nn.Conv2d)
    spec = ModelSpec(input_shape=[1, 8, 8], layers=[
        LayerSpec("stem", "Conv2d", {"in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1}),
        LayerSpec("res", "Residual", {}, layers=[
            LayerSpec("inner", "Conv2d", {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1}),
            LayerSpec("act", "ReLU", {})]),
        LayerSpec("flat", "Flatten", {}),
        LayerSpec("fc", "Linear", {"in_features": 256, "out_features": 2}),
    ])
    model = build.build_model(spec).eval()
    assert explain.last_conv(model, torch.zeros(1, 8, 8))[0] == "res.body.inner"
    assert explain.last_conv(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.zeros(4)) is None


def test_integrated_gradients_rank_the_informative_feature_first(tmp_path):
    g = torch.Generator().manual_seed(1)
    rows = torch.randn(300, 5, generator=g)
    names = ["age", "noise_a", "signal", "noise_b", "height"]
    lines = [",".join(names + ["label"])]
    lines += [",".join(f"{v:.4f}" for v in r.tolist()) + f",{'yes' if r[2] > 0 else 'no'}" for r in rows]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    bundle = load_data({"source": "csv", "path": str(tmp_path / "t.csv"), "target": "label"})
    assert bundle.feature_names == tuple(names)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
    xt = bundle.train.x if hasattr(bundle.train, "x") else torch.stack([bundle.train[i][0] for i in range(200)])
    yt = bundle.train.y if hasattr(bundle.train, "y") else torch.tensor([bundle.train[i][1] for i in range(200)])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    firsts = []
    for index in range(10):
        ex = explain.explain(model, bundle, index)
        assert ex.method == explain.INTEGRATED_GRADIENTS and ex.image is None and ex.heat is None
        assert sorted(n for n, _ in ex.features) == sorted(names)
        firsts.append(ex.features[0][0])
    assert firsts.count("signal") >= 9, firsts


def test_a_token_model_gets_a_clear_message():
    x = torch.randint(0, 10, (6, 4)).float()
    bundle = DataBundle(Task("classification", (4,), num_classes=2, class_names=("a", "b")),
                        TensorData(x, torch.zeros(6, dtype=torch.long)),
                        TensorData(x, torch.zeros(6, dtype=torch.long)), DataSettings())
    model = nn.Sequential(nn.Embedding(10, 3), nn.Flatten(), nn.Linear(12, 2))
    model.forward = lambda t, _m=model: nn.Sequential.forward(_m, t.long())
    with pytest.raises(explain.ExplainError, match="no explanation for this model: it starts from token ids"):
        explain.explain(model, bundle, 0)


def test_cells_list_exactly_the_samples_of_the_confusion_matrix():
    x, y = quadrant_data(n=30)
    bundle = image_bundle(x, y)
    model = quadrant_model()
    with torch.no_grad():  # make mistakes: the bias outweighs the evidence, every sample is "off"
        model[3].bias.copy_(torch.tensor([10.0, -10.0]))
    preds = explain.validation_predictions(model, bundle)
    with torch.no_grad():
        expected = model(x).argmax(1).numpy()
    assert (preds.predicted == expected).all() and (preds.true == y.numpy()).all()
    m = preds.matrix()
    assert m.tolist() == [[15, 0], [15, 0]]
    for t in range(2):
        for p in range(2):
            cell = explain.cell_samples(preds, t, p)
            assert len(cell) == m[t, p]
            assert all(y[i] == t and expected[i] == p for i in cell)
            conf = [preds.confidence[i] for i in cell]
            assert conf == sorted(conf, reverse=True)
    thumbs = explain.thumbnails(bundle, preds, explain.cell_samples(preds, 1, 0)[:3])
    assert all(t.image is not None and t.image.dtype == np.uint8 for t in thumbs)


def test_bad_index_names_it():
    x, y = quadrant_data(n=8)
    with pytest.raises(PredictError, match="validation sample 8 does not exist; there are 8"):
        explain.explain(quadrant_model(), image_bundle(x, y), 8)


def test_overlay_blends_by_opacity():
    image = np.full((4, 4), 100, dtype=np.uint8)
    heat = np.zeros((4, 4), dtype=np.float32)
    heat[0, 0] = 1.0
    assert (explain_picture.overlay(image, heat, 0.0) == 100).all()
    hot = explain_picture.overlay(image, heat, 1.0)
    assert hot.shape == (4, 4, 3) and tuple(hot[0, 0]) == tuple(explain_picture.heat_colors(heat)[0, 0])


# ---------------------------------------------------------------- the CLI

@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(3)
    model = build.build_model(templates.load("digits_cnn").model)
    torch.save({"model": model.state_dict(), "epoch": 1}, tmp_path / "ckpt.pth")
    return model, tmp_path / "ckpt.pth"


def test_cli_writes_the_png_and_prints_the_predicted_class(checkpoint, tmp_path, capsys):
    model, ckpt = checkpoint
    out = tmp_path / "why.png"
    assert main(["explain", "digits_cnn", "--weights", str(ckpt), "--index", "3", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    bundle = load_data(templates.load("digits_cnn").data)
    x, y = bundle.val_example(3)
    with torch.no_grad():
        predicted = bundle.task.class_names[int(model.eval()(x.unsqueeze(0)).argmax())]
    true = bundle.task.class_names[int(y)]
    assert printed.startswith(f"validation sample 3: true {true}, predicted {predicted} (")
    assert "saliency: Grad-CAM on conv2 (Conv2d)" in printed and f"wrote {out}" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(out) as picture:
        assert picture.size[0] > 800


def test_cli_table_project(tmp_path, capsys):
    torch.manual_seed(0)
    model = build.build_model(templates.load("tabular_mlp").model)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    out = tmp_path / "t.png"
    assert main(["explain", "tabular_mlp", "--weights", str(tmp_path / "w.pth"), "--index", "0", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "saliency: integrated gradients" in printed and "strongest features:" in printed
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_input_exits_2_with_one_error_line(checkpoint, tmp_path, capsys):
    _, ckpt = checkpoint
    other = build.build_model(templates.load("digits_mlp").model)
    torch.save(other.state_dict(), tmp_path / "mlp.pth")
    cases = [
        (["--weights", str(ckpt), "--index", "9999", "-o", str(tmp_path / "a.png")],
         "validation sample 9999 does not exist"),
        (["--weights", str(ckpt), "--index", "-1", "-o", str(tmp_path / "a.png")], "validation sample -1 does not"),
        (["--weights", str(tmp_path / "mlp.pth"), "--index", "0", "-o", str(tmp_path / "a.png")],
         "mlp.pth does not fit this model"),
        (["--weights", str(tmp_path / "nope.pth"), "--index", "0", "-o", str(tmp_path / "a.png")], "nope.pth"),
        (["--weights", str(ckpt), "--index", "0", "-o", str(tmp_path / "a.jpg")],
         "a.jpg: the picture is written as PNG"),
        (["--weights", str(ckpt), "--index", "0", "-o", str(tmp_path / "no" / "a.png")], "does not exist"),
    ]
    for extra, message in cases:
        assert main(["explain", "digits_cnn", *extra]) == 2, extra
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (extra, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth", "mlp.pth"]
