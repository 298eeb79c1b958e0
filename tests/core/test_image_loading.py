"""Image folders (issue 15 section 6): every format decoded by PIL (torchvision's decoder crashed
the process on a fuzzed file), the transforms taking PIL images and uint8 tensors alike;
workers, persistent_workers and pin_memory as the settings say; batches exactly repeatable with
num_workers=0 (what exact resume relies on)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.data.bundle import load_data
from workbench.data.sources.images import ImageReader
from workbench.errors import WorkbenchError


def folder(tmp_path, suffix=".jpg", n=6):
    rng = np.random.default_rng(0)
    for k, name in enumerate(("cat", "dog")):
        (tmp_path / "img" / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = np.clip(rng.normal(80 + 90 * k, 20, (12, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "img" / name / f"{i}{suffix}")
    return tmp_path / "img"


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp"])
def test_the_decoded_pixels_match_pil(tmp_path, suffix):
    root = folder(tmp_path, suffix)
    path = str(next(root.glob(f"cat/*{suffix}")))
    got = ImageReader("RGB")(path)
    pil = np.array(Image.open(path).convert("RGB"))
    assert np.array_equal(np.array(got), pil)
    assert len(ImageReader("L")(path).getbands()) == 1
    bundle = load_data({"source": "image_folder", "path": str(root), "normalize": False, "val_fraction": 0.25})
    x, _y = bundle.train[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, 12, 10) and 0.0 <= x.min() and x.max() <= 1.0
    # the validation transform takes a PIL image (the Prediction dock) and a uint8 tensor alike
    from_pil = bundle.image_transform(Image.open(path).convert("RGB"))
    assert tuple(from_pil.shape) == (3, 12, 10)
    as_tensor = torch.as_tensor(pil).permute(2, 0, 1).contiguous()
    assert torch.allclose(from_pil, bundle.image_transform(as_tensor), atol=0.01)


def test_a_broken_jpeg_is_named(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(WorkbenchError, match=r"cannot read image .*bad\.jpg"):
        ImageReader("RGB")(str(bad))


def test_loader_options_follow_the_settings(tmp_path):
    root = str(folder(tmp_path))
    b = load_data({"source": "image_folder", "path": root, "num_workers": 1, "batch_size": 4})
    assert b.loader("train", device="cpu").persistent_workers and not b.loader("train", device="cpu").pin_memory
    off = load_data({"source": "image_folder", "path": root, "num_workers": 1, "persistent_workers": False})
    assert not off.loader("train").persistent_workers
    assert not load_data({"source": "image_folder", "path": root}).loader("train").persistent_workers  # 0 workers


def test_batches_repeat_exactly_with_no_workers(tmp_path):
    root = str(folder(tmp_path))
    b = load_data({"source": "image_folder", "path": root, "batch_size": 3, "val_fraction": 0.0})
    first, again = b.loader("train", seed=5), b.loader("train", seed=5)
    first.batch_sampler.set_epoch(1)
    full = list(first)
    again.batch_sampler.set_epoch(1, skip=2)  # a resumed run starts at the third batch
    tail = list(again)
    assert len(tail) == len(full) - 2
    for (xa, ya), (xb, yb) in zip(full[2:], tail):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("channels,side", [(3, 12), (3, 16), (1, 12)], ids=["rgb", "rgb-resized", "grey"])
def test_an_image_with_no_pipeline_steps_gives_the_numbers_of_the_v2_steps_and_of_totensor(tmp_path, channels, side):
    """A PIL image with no augmentation takes a shorter path to the tensor (bench_image_throughput);
    it must give exactly what resize + ToImage + ToDtype + Normalize give, and what a plain
    Resize + ToTensor + Normalize gives."""
    from torchvision import transforms as T
    from torchvision.transforms import v2

    from workbench.data import augment

    root = folder(tmp_path)
    img = Image.open(next(root.glob("cat/*.jpg"))).convert("L" if channels == 1 else "RGB")
    mean, std = ([0.5], [0.25]) if channels == 1 else ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    pipeline, _ = augment.pipelines(load_data({"source": "image_folder", "path": str(root)}).settings)
    assert not len(pipeline)
    got = augment.FileImage((side, side), channels, pipeline, (mean, std))(img)
    steps = v2.Compose([v2.Resize([side, side], antialias=True), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                        v2.Normalize(mean, std)])
    assert torch.equal(got, steps(img).as_subclass(torch.Tensor))
    plain = T.Compose([T.Resize((side, side)), T.ToTensor(), T.Normalize(mean, std)])(img)
    assert got.shape == (channels, side, side) and torch.allclose(got, plain, atol=1e-6)
    unnormalised = augment.FileImage((side, side), channels, pipeline, None)(img)
    assert torch.equal(unnormalised, v2.Compose(steps.transforms[:3])(img).as_subclass(torch.Tensor))
    assert torch.allclose(unnormalised, T.Compose([T.Resize((side, side)), T.ToTensor()])(img), atol=1e-6)


def test_with_pipeline_steps_a_tensor_or_pil_image_takes_the_steps(tmp_path):
    """Only a PIL image with no steps takes the short path; a uint8 tensor (the Prediction dock)
    or any image with steps goes through the pipeline."""
    from workbench.data import augment
    from workbench.project.settings import DataSettings

    problems: list = []
    section = {"source": "image_folder", "path": str(tmp_path),
               "augment_eval": [{"type": "CenterCrop", "args": {"size": 8}}]}
    settings = DataSettings.from_json(section, "$.data", problems)
    assert not problems
    _, crop = augment.pipelines(settings)
    image = augment.FileImage((12, 10), 3, crop, ([0.5] * 3, [0.5] * 3))
    pil = Image.open(next(folder(tmp_path).glob("cat/*.jpg"))).convert("RGB")
    as_tensor = torch.as_tensor(np.array(pil)).permute(2, 0, 1).contiguous()
    assert tuple(image(pil).shape) == tuple(image(as_tensor).shape) == (3, 8, 8)
    assert torch.allclose(image(pil), image(as_tensor), atol=0.01)
