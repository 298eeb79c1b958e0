"""Data sources, the deterministic split, batch order and the model/data fit check."""
from __future__ import annotations

import gzip
import time

import pytest
import torch

from workbench.data import bundle as data
from workbench.project import templates
from workbench.errors import LayerError, WorkbenchError
from workbench.model.spec import LayerSpec, ModelSpec


def load(**cfg):
    return data.load_data(cfg)


def all_batches(loader, epoch=0, skip=0):
    loader.batch_sampler.set_epoch(epoch, skip)
    return [(x.clone(), y.clone()) for x, y in loader]


# ---------------------------------------------------------------- built-in sources

def test_digits_is_the_real_offline_set_split_by_class():
    b = load(source="digits", val_fraction=0.2)
    t = b.task
    assert (t.kind, t.num_classes, t.input_shape, t.is_image) == ("classification", 10, (1, 8, 8), True)
    assert t.train_size + t.val_size == 1797 and t.val_size == len(b.val) == 359
    assert t.default_loss == "CrossEntropyLoss"
    val_y = b.val.y
    per_class = torch.bincount(val_y, minlength=10)
    assert per_class.min() >= 34 and per_class.max() <= 38  # ~20 % of every class (stratified)
    # normalised with statistics of the training part only
    assert abs(float(b.train.x.mean())) < 1e-4 and abs(float(b.train.x.std()) - 1) < 1e-2
    assert abs(float(b.val.x.mean())) > 1e-4


def test_split_is_deterministic_from_the_seed():
    a, b = load(source="digits", split_seed=3), load(source="digits", split_seed=3)
    c = load(source="digits", split_seed=4)
    assert a.val_index == b.val_index and a.val_index != c.val_index
    assert not set(a.val_index) & set(a.train_index)
    assert len(set(a.val_index) | set(a.train_index)) == 1797


@pytest.mark.parametrize("name,features,classes", [("iris", 4, 3), ("wine", 13, 3), ("breast_cancer", 30, 2)])
def test_sklearn_tables(name, features, classes):
    b = load(source=name, val_fraction=0.25)
    assert b.task.input_shape == (features,) and b.task.num_classes == classes and not b.task.is_image
    x, y = next(iter(b.loader("train")))
    assert x.shape[1:] == (features,) and x.dtype == torch.float32 and y.dtype == torch.long
    assert len(b.task.class_names) == classes and all(b.task.class_names)


def test_fake_data_is_torchvision_fakedata_and_reproducible():
    a = load(source="fake", fake_size=40, fake_shape=[3, 16, 16], fake_classes=4)
    b = load(source="fake", fake_size=40, fake_shape=[3, 16, 16], fake_classes=4)
    assert a.task.input_shape == (3, 16, 16) and a.task.num_classes == 4 and a.task.train_size == 32
    xa, ya = all_batches(a.loader("train"))[0]
    xb, yb = all_batches(b.loader("train"))[0]
    assert xa.shape[1:] == (3, 16, 16) and torch.equal(xa, xb) and torch.equal(ya, yb)
    grey = load(source="fake", fake_size=10, fake_shape=[3, 16, 16], grayscale=True, image_size=[8, 8])
    assert grey.task.input_shape == (1, 8, 8)
    assert next(iter(grey.loader("train")))[0].shape[1:] == (1, 8, 8)


# ---------------------------------------------------------------- CSV

def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_numeric_and_categorical_features_and_text_classes(tmp_path):
    rows = ["size,colour,weight,kind"]
    for i in range(30):
        colour = ["red", "green", ""][i % 3]
        weight = "" if i == 5 else str(1.5 * i)
        rows.append(f"{i},{colour},{weight},{'apple' if i % 2 else 'pear'}")
    b = load(source="csv", path=str(write(tmp_path / "t.csv", "\n".join(rows))), normalize=False, val_fraction=0.2)
    t = b.task
    # size (1) + colour one-hot over (missing), green, red (3) + weight (1)
    assert t.input_shape == (5,) and t.class_names == ("apple", "pear") and t.kind == "classification"
    x = torch.cat([b.train.x, b.val.x])
    assert set(x[:, 1:4].sum(dim=1).tolist()) == {1.0}  # exactly one category per row
    assert not torch.isnan(x).any()  # the missing weight became the column mean


def test_csv_target_column_and_regression(tmp_path):
    lines = ["price,rooms,area"] + [f"{100 + 7.3 * i},{i % 5},{20 + i}" for i in range(40)]
    path = write(tmp_path / "h.csv", "\n".join(lines))
    reg = load(source="csv", path=str(path), target="price")
    assert reg.task.kind == "regression" and reg.task.default_loss == "MSELoss" and reg.task.input_shape == (2,)
    assert reg.train.y.dtype == torch.float32 and reg.train.y.shape[1:] == (1,)
    cls = load(source="csv", path=str(path), target="rooms")  # whole numbers, 5 values: classes
    assert cls.task.kind == "classification" and cls.task.class_names == ("0", "1", "2", "3", "4")
    forced = load(source="csv", path=str(path), target="rooms", task="regression")
    assert forced.task.kind == "regression"


@pytest.mark.parametrize("text,target,words", [
    ("a,b\n1,2\n3,4\n", "c", ["no column 'c'", "'a', 'b'"]),
    ("a,b\n1,2\n3\n4,5\n", None, ["line 3", "1 fields", "header has 2"]),
    ("1,2\n3,4\n5,6\n", None, ["header row"]),
    ("a,b\n1,2\n", None, ["at least 2"]),
    ("a,b\n1,x\n2,\n", None, ["empty in data row 2"]),
])
def test_csv_problems_are_named(tmp_path, text, target, words):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(WorkbenchError) as info:
        load(source="csv", path=str(path), target=target)
    for w in words:
        assert w in str(info.value)


def test_csv_missing_file(tmp_path):
    with pytest.raises(WorkbenchError, match="does not exist"):
        load(source="csv", path=str(tmp_path / "nope.csv"))


# ---------------------------------------------------------------- image folders

def make_images(root, sizes=((12, 10),) * 6, classes=("cat", "dog")):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i, (w, h) in enumerate(sizes):
            pixels = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
            pixels[..., c] = 255  # the class is visible in one channel
            Image.fromarray(pixels.numpy()).save(root / name / f"{i}.png")
    return root


def test_image_folder_reads_classes_and_sizes(tmp_path):
    root = make_images(tmp_path / "imgs", sizes=((12, 10), (12, 10), (20, 16), (12, 10), (12, 10), (12, 10)))
    b = load(source="image_folder", path=str(root), val_fraction=0.34)
    assert b.task.class_names == ("cat", "dog") and b.task.input_shape == (3, 10, 12)
    assert b.task.train_size == 8 and b.task.val_size == 4
    batches = all_batches(b.loader("train"))
    assert all(x.shape[1:] == (3, 10, 12) for x, _ in batches)  # the odd-sized image is resized
    grey = load(source="image_folder", path=str(root), grayscale=True, image_size=[8, 8],
                augment_train=[{"type": "RandomAffine", "args": {"degrees": 0, "translate": [0.125, 0.125]}},
                               {"type": "RandomHorizontalFlip"}])
    assert grey.task.input_shape == (1, 8, 8)
    assert next(iter(grey.loader("train")))[0].shape[1:] == (1, 8, 8)


def test_image_folder_broken_file_names_it(tmp_path):
    root = make_images(tmp_path / "imgs")
    (root / "dog" / "9.png").write_bytes(b"not an image at all")
    with pytest.raises(WorkbenchError, match=r"cannot read image .*9\.png"):  # found by the scan, before training
        load(source="image_folder", path=str(root), val_fraction=0.0, batch_size=64)
    (root / "dog" / "9.png").unlink()
    b = load(source="image_folder", path=str(root), val_fraction=0.0, batch_size=64)
    (root / "dog" / "3.png").write_bytes(b"broken after the scan")  # and while reading batches
    with pytest.raises(WorkbenchError, match=r"cannot read image .*3\.png"):
        all_batches(b.loader("train"))


def test_image_folder_missing_or_flat(tmp_path):
    with pytest.raises(WorkbenchError, match="does not exist"):
        load(source="image_folder", path=str(tmp_path / "none"))
    (tmp_path / "flat").mkdir()
    with pytest.raises(WorkbenchError, match="subfolder per class"):
        load(source="image_folder", path=str(tmp_path / "flat"))


# ---------------------------------------------------------------- MNIST-format folders

def idx_bytes(t: torch.Tensor) -> bytes:
    header = bytes([0, 0, 0x08, t.dim()]) + b"".join(d.to_bytes(4, "big") for d in t.shape)
    return header + t.to(torch.uint8).numpy().tobytes()


def write_mnist(folder, n_train=30, n_test=10, size=28, compress=False, classes=10):
    g = torch.Generator().manual_seed(1)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        if not n:
            continue
        files[f"{prefix}-images-idx3-ubyte"] = torch.randint(0, 256, (n, size, size), generator=g)
        files[f"{prefix}-labels-idx1-ubyte"] = torch.arange(n) % classes
    for name, t in files.items():
        if compress:
            with gzip.open(folder / (name + ".gz"), "wb") as fh:
                fh.write(idx_bytes(t))
        else:
            (folder / name).write_bytes(idx_bytes(t))
    return files


def test_mnist_folder_matches_torchvision_reading(tmp_path):
    from torchvision.datasets import MNIST

    files = write_mnist(tmp_path / "MNIST" / "raw")
    b = load(source="mnist", path=str(tmp_path), normalize=False)
    assert b.task.input_shape == (1, 28, 28) and b.task.num_classes == 10
    assert b.task.train_size == 30 and b.task.val_size == 10  # the t10k files are the validation part
    tv = MNIST(str(tmp_path), train=False, download=False)  # torchvision reads the same files
    assert torch.equal(tv.data, files["t10k-images-idx3-ubyte"].to(torch.uint8))
    assert torch.equal((b.val.x[:, 0] * 255).round().to(torch.uint8), tv.data)
    assert torch.equal(b.val.y, tv.targets)


def test_fashion_mnist_gz_without_test_files_is_split(tmp_path):
    write_mnist(tmp_path, n_train=40, n_test=0, compress=True)
    b = load(source="fashion_mnist", path=str(tmp_path), val_fraction=0.25)
    assert b.task.class_names[0] == "T-shirt/top" and b.task.train_size == 30 and b.task.val_size == 10


def test_mnist_missing_truncated_and_offline(tmp_path, monkeypatch):
    with pytest.raises(WorkbenchError, match="train-images-idx3-ubyte"):
        load(source="mnist", path=str(tmp_path / "empty"))
    write_mnist(tmp_path / "cut")
    f = tmp_path / "cut" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(WorkbenchError, match="truncated or corrupt"):
        load(source="mnist", path=str(tmp_path / "cut"))
    monkeypatch.setenv("WORKBENCH_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(WorkbenchError, match="downloads are off"):
        load(source="mnist", path=str(tmp_path / "empty"), download=True)
    assert time.perf_counter() - t0 < 2  # fails at once, never hangs


# ---------------------------------------------------------------- batches

def test_batch_order_is_a_function_of_seed_and_epoch_and_can_skip():
    b = load(source="iris", val_fraction=0.2, batch_size=16)
    loader = b.loader("train", seed=7)
    e0, e0_again, e1 = all_batches(loader, 0), all_batches(loader, 0), all_batches(loader, 1)
    assert all(torch.equal(a[1], c[1]) for a, c in zip(e0, e0_again))
    assert not all(torch.equal(a[1], c[1]) for a, c in zip(e0, e1))
    tail = all_batches(loader, 0, skip=3)
    assert len(tail) == len(e0) - 3 and all(torch.equal(a[0], c[0]) for a, c in zip(tail, e0[3:]))
    seen = torch.cat([x for x, _ in e0])
    assert len(seen) == 120 and len(torch.unique(seen, dim=0)) == len(torch.unique(b.train.x, dim=0))


def test_single_example_last_batch_is_dropped_for_training():
    sampler = data.EpochBatches(65, 16, shuffle=True)
    assert [len(b) for b in sampler] == [16, 16, 16, 16]
    assert [len(b) for b in data.EpochBatches(66, 16, shuffle=True)][-1] == 2
    assert sum(len(b) for b in data.EpochBatches(65, 16, shuffle=False, drop_single=False)) == 65


def test_shards_for_two_ranks_are_disjoint_and_cover_everything():
    ranks = [data.EpochBatches(50, 8, True, seed=1, rank=r, world_size=2, drop_single=False) for r in (0, 1)]
    got = [sum((list(b) for b in s), []) for s in ranks]
    assert len(got[0]) == len(got[1]) == 25 and set(got[0]) | set(got[1]) == set(range(50))


def test_worker_processes_give_the_same_batches():
    a = load(source="wine", batch_size=32)
    b = load(source="wine", batch_size=32, num_workers=1)
    ba, bb = all_batches(a.loader("train", seed=2)), all_batches(b.loader("train", seed=2))
    assert len(ba) == len(bb) and all(torch.equal(x, y) for (x, _), (y, _) in zip(ba, bb))


# ---------------------------------------------------------------- fit check

def test_input_shape_mismatch_names_the_first_layer_and_the_fix():
    spec = templates.load("digits_mlp").model
    task = load(source="iris").task
    with pytest.raises(LayerError) as info:
        data.check_fit(spec, task)
    assert info.value.layer_id == "flat" and "set the model input shape to [4]" in str(info.value)


def test_output_size_mismatch_names_the_last_linear():
    spec = templates.load("tabular_mlp").model  # wine: 13 features, 3 classes
    spec.find("fc3").args["out_features"] = 5
    task = load(source="wine").task
    with pytest.raises(LayerError) as info:
        data.check_fit(spec, task)
    assert info.value.layer_id == "fc3" and "set out_features of 'fc3' to 3" in str(info.value)
    spec.find("fc3").args["out_features"] = 3
    assert data.check_fit(spec, task).output_shape == (3,)


def test_feature_map_output_and_loss_mismatches():
    task = load(source="digits").task
    conv = ModelSpec((1, 8, 8), [LayerSpec("c", "Conv2d", {"out_channels": 10, "kernel_size": 3})])
    with pytest.raises(LayerError, match="Flatten and Linear"):
        data.check_fit(conv, task)
    mlp = templates.load("digits_mlp").model
    with pytest.raises(LayerError, match="LogSoftmax"):
        data.check_fit(mlp, task, "NLLLoss")
    with pytest.raises(WorkbenchError, match="CrossEntropyLoss"):
        data.check_fit(mlp, task, "MSELoss")
    with pytest.raises(WorkbenchError, match="no layers"):
        data.check_fit(ModelSpec((1, 8, 8), []), task)
