"""Prediction for one example (workbench.training.predict), without Qt: an image file, a pasted
row and a validation sample become exactly the input the data source makes for validation;
bad input is one WorkbenchError naming the file, the position or the index."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.data.bundle import load_data
from workbench.errors import WorkbenchError
from workbench.model import build
from workbench.project import templates
from workbench.training import predict as P


@pytest.fixture(scope="module")
def digits():
    return load_data({"source": "digits"})


@pytest.fixture(scope="module")
def wine():
    return load_data({"source": "wine"})


def raw_digit(bundle, i: int) -> np.ndarray:
    """Validation sample i as scikit-learn ships it (8x8, values 0..16)."""
    from sklearn.datasets import load_digits

    return load_digits().images[bundle.val_index[i]]


def write_png(path, pixels: np.ndarray, mode: str = "L", scale: int = 1):
    img = Image.fromarray(pixels.astype(np.uint8), mode="L")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.convert(mode).save(path)
    return path


# ---------------------------------------------------------------- images

def test_a_png_of_a_validation_digit_becomes_that_sample_s_input(digits, tmp_path):
    i = 7
    png = write_png(tmp_path / "digit.png", np.round(raw_digit(digits, i) * 255 / 16))
    example = P.image_example(digits, png)
    expected, _ = digits.val_example(i)
    assert example.x.shape == (1, 8, 8) and example.what == "digit.png"
    # the same scale (0..16) and normalisation (training mean / std) as validation inputs; uint8 rounding only
    assert torch.allclose(example.x, expected, atol=0.5 / 255 * 16 / digits.stats["std"][0] + 1e-5)
    assert example.image is not None and example.image.shape == (8, 8)


def test_an_rgb_image_of_another_size_is_converted_to_the_model_input(digits, tmp_path):
    pixels = np.round(raw_digit(digits, 3) * 255 / 16)
    png = write_png(tmp_path / "big.png", pixels, mode="RGB", scale=8)  # 64x64 RGB
    example = P.image_example(digits, png)
    assert example.x.shape == (1, 8, 8)
    want = digits.val_example(3)[0]
    # antialiased down-scaling blurs the block edges a little; the picture and its scale stay
    assert torch.corrcoef(torch.stack([example.x.flatten(), want.flatten()]))[0, 1] > 0.97
    assert abs(float(example.x.mean() - want.mean())) < 0.1


def test_an_image_source_read_from_files_applies_its_own_validation_transform(tmp_path):
    bundle = load_data({"source": "fake", "fake_shape": [3, 16, 16], "fake_size": 20, "fake_classes": 3})
    png = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 30, 3), 200, dtype=np.uint8)).save(png)
    example = P.image_example(bundle, png)
    assert example.x.shape == (3, 16, 16)
    want = bundle.image_transform(Image.open(png).convert("RGB"))
    assert torch.equal(example.x, want)
    with pytest.raises(P.PredictError, match="image"):
        P.row_example(bundle, ",".join(["1"] * (3 * 16 * 16)))


@pytest.mark.parametrize("content, says", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR garbage", "damaged or incomplete"),
    (b"just some text, not a picture", "not an image file"),
    (b"", "not an image file"),
])
def test_a_file_that_is_no_image_is_named(digits, tmp_path, content, says):
    bad = tmp_path / "broken.png"
    bad.write_bytes(content)
    with pytest.raises(P.PredictError) as info:
        P.image_example(digits, bad)
    assert "broken.png" in str(info.value) and says in str(info.value)
    assert isinstance(info.value, WorkbenchError) and "\n" not in str(info.value)


def test_a_cut_off_png_is_named(digits, tmp_path):
    good = write_png(tmp_path / "whole.png", np.arange(64 * 64).reshape(64, 64) % 256)
    data = good.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(P.PredictError, match="cut.png: the image is damaged"):
        P.image_example(digits, cut)


def test_a_folder_a_missing_file_and_a_fifo_are_refused_by_name(digits, tmp_path):
    with pytest.raises(WorkbenchError, match="folder"):
        P.image_example(digits, tmp_path)
    with pytest.raises(P.PredictError, match="nothere.png: no such file"):
        P.image_example(digits, tmp_path / "nothere.png")
    fifo = tmp_path / "pipe.png"
    import os
    os.mkfifo(fifo)
    with pytest.raises(WorkbenchError, match="pipe.png"):
        P.image_example(digits, fifo)  # refused at once, never blocks on the open


def test_an_image_for_a_table_model_says_to_paste_a_row(wine, tmp_path):
    png = write_png(tmp_path / "x.png", np.zeros((8, 8)))
    with pytest.raises(P.PredictError, match="x.png: this model takes \\(13,\\) values, not an image"):
        P.image_example(wine, png)


# ---------------------------------------------------------------- rows

def test_a_pasted_wine_row_is_scaled_as_the_source_scales_its_rows(wine):
    from sklearn.datasets import load_wine

    i = 4
    raw = load_wine().data[wine.val_index[i]]
    for sep in (",", "\t", " ", "; "):
        example = P.row_example(wine, sep.join(repr(float(v)) for v in raw))
        assert torch.allclose(example.x, wine.val_example(i)[0], atol=1e-5)
    assert example.image is None
    assert P.sample_example(wine, i).text.startswith("[")


@pytest.mark.parametrize("text, says", [
    ("1, 2, abc, 4", "value 3 of the row ('abc') is not a number"),
    ("1 2 3", "the row has 3 values but the model expects 13 (the features, without the target column)"),
    (",".join(["1"] * 14), "the row has 14 values but the model expects 13"),
    ("1, inf, 3", "value 2 of the row ('inf') is not a finite number"),
    ("1e999", "value 1 of the row ('1e999') is not a finite number"),
    ("   ", "the row is empty; paste 13 numbers"),
])
def test_a_bad_row_names_the_position_or_the_count(wine, text, says):
    with pytest.raises(P.PredictError) as info:
        P.row_example(wine, text)
    assert str(info.value).startswith(says)


# ---------------------------------------------------------------- validation samples

def test_a_validation_sample_is_the_bundle_s_example_with_its_label(digits):
    example = P.sample_example(digits, 12)
    x, y = digits.val_example(12)
    assert torch.equal(example.x, x) and example.true == int(y)
    assert example.what == "validation sample 12"
    n = len(digits.val)
    for bad in (n, -1, 10**6):
        with pytest.raises(P.PredictError, match=f"validation sample {bad} does not exist; there are {n} "
                                                 f"\\(0 to {n - 1}\\)"):
            P.sample_example(digits, bad)


def test_no_validation_data_is_said(tmp_path):
    bundle = load_data({"source": "iris", "val_fraction": 0})
    with pytest.raises(P.PredictError, match="no validation data"):
        P.sample_example(bundle, 0)


# ---------------------------------------------------------------- the model

def test_probabilities_sum_to_one_and_the_top_class_is_the_model_s_argmax(digits):
    torch.manual_seed(0)
    project = templates.load("digits_cnn")
    model = build.build_model(project.model)
    model.train()  # the prediction runs a copy in eval mode and leaves this one as it was
    example = P.sample_example(digits, 5)
    result = P.predict(model, example, digits.task, "auto")
    assert model.training
    probs = [p for _, p in result.classes]
    assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-5 and probs == sorted(probs, reverse=True)
    model.eval()
    with torch.no_grad():
        logits = model(example.x.unsqueeze(0))[0]
    assert result.top == digits.task.class_names[int(logits.argmax())]
    assert result.true_name == digits.task.class_names[example.true]


def test_a_regression_model_gives_its_value():
    bundle = load_data({"source": "wine", "task": "regression"})
    project = templates.load("tabular_mlp")
    project.model.layers[-1].args["out_features"] = 1
    model = build.build_model(project.model)
    result = P.predict(model, P.sample_example(bundle, 0), bundle.task)
    assert result.classes == () and isinstance(result.value, float)
    assert result.true_name is not None


def test_probabilities_follow_the_loss():
    out = torch.tensor([[0.3]])
    assert torch.allclose(P.probabilities(out, "BCEWithLogitsLoss"),
                          torch.tensor([[1 - torch.sigmoid(out[0, 0]), torch.sigmoid(out[0, 0])]]))
    logp = torch.log_softmax(torch.tensor([[1.0, 2.0, 3.0]]), dim=1)
    assert torch.allclose(P.probabilities(logp, "NLLLoss"), logp.exp())
    assert torch.allclose(P.probabilities(torch.tensor([[1.0, 2.0]]), "CrossEntropyLoss"),
                          torch.softmax(torch.tensor([[1.0, 2.0]]), dim=1))


def test_weights_from_a_file_give_the_same_predictions(digits, tmp_path):
    project = templates.load("digits_cnn")
    model = build.build_model(project.model)
    torch.save(model.state_dict(), tmp_path / "w.pth")
    loaded = P.model_from_weights(project.model, tmp_path / "w.pth")
    example = P.sample_example(digits, 1)
    assert P.predict(loaded, example, digits.task) == P.predict(model, example, digits.task)
    other = templates.load("digits_mlp")
    with pytest.raises(WorkbenchError, match="does not fit this model"):
        P.model_from_weights(other.model, tmp_path / "w.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(WorkbenchError, match="junk.pth"):
        P.model_from_weights(project.model, tmp_path / "junk.pth")


def test_weights_key_ignores_freezing_but_not_arguments():
    spec = templates.load("digits_cnn").model
    key = P.weights_key(spec)
    frozen = spec.copy()
    frozen.layers[0].frozen = True
    assert P.weights_key(frozen) == key
    changed = spec.copy()
    changed.layers[-1].args["bias"] = False
    assert P.weights_key(changed) != key
