"""Fuzz: data files (issue 12, "prove it"). CSV text, idx files (bytes with valid and invalid
headers, plain and gzip) and image files (random bytes, damaged real images) go through the
data loading a project does (load_data: read, split, normalise, and for images the scan). The
only outcomes allowed are success and a WorkbenchError."""
from __future__ import annotations

import gzip
import io
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.data.bundle import load_data
from workbench.data.sources.idx import read_idx
from workbench.errors import WorkbenchError

SCALE = int(os.environ.get("WORKBENCH_FUZZ_SCALE", "1"))  # WORKBENCH_FUZZ_SCALE=N: N times more examples
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("data-fuzz")


def load_or_refuse(data: dict):
    try:
        bundle = load_data(data)
    except WorkbenchError as exc:
        assert str(exc)
        return None
    assert bundle.task.train_size > 0
    return bundle


CELLS = ["1", "2.5", "-3", "0", "1e39", "-1e39", "inf", "-inf", "nan", "NaN", "", "?", "a", "b", "x y", '"q,r"',
         "1_000", "0x10", "1e-50", "  7 ", "true", "\u00e9", "9" * 400, "1e308", ";", "\t"]
cells = st.one_of(st.sampled_from(CELLS), st.text(max_size=6))


@st.composite
def csv_texts(draw):
    columns = draw(st.integers(1, 5))
    header = draw(st.one_of(st.just([f"c{i}" for i in range(columns)]),
                            st.lists(st.sampled_from(["a", "b", "c", "1", "", "a"]), min_size=columns,
                                     max_size=columns)))
    sep = draw(st.sampled_from([",", ";", "\t"]))
    rows = draw(st.lists(st.lists(cells, min_size=columns - 1, max_size=columns + 1), max_size=12))
    text = "\n".join(sep.join(r) for r in [header, *rows])
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text


@settings(FUZZ, max_examples=900 * SCALE)
@given(text=csv_texts(), target=st.one_of(st.none(), st.sampled_from(["c0", "c1", "a", "zz"])),
       task=st.sampled_from(["auto", "classification", "regression"]), normalize=st.booleans())
def test_csv_text(folder, text, target, task, normalize):
    path = folder / "t.csv"
    path.write_text(text, encoding="utf-8", newline="")
    load_or_refuse({"source": "csv", "path": str(path), "target": target, "task": task, "normalize": normalize,
                    "val_fraction": 0.25, "batch_size": 4})


@settings(FUZZ, max_examples=300 * SCALE)
@given(data=st.binary(max_size=300))
def test_csv_bytes(folder, data):
    path = folder / "b.csv"
    path.write_bytes(data)
    load_or_refuse({"source": "csv", "path": str(path)})


IDX_CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x07, 0xFF]
ITEM = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


@st.composite
def idx_files(draw, ndim=None):
    code = draw(st.sampled_from(IDX_CODES))
    dims = draw(st.lists(st.integers(0, 6) | st.sampled_from([2 ** 31, 2 ** 32 - 1]), min_size=0, max_size=4)
                if ndim is None else st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim))
    magic = bytes([draw(st.sampled_from([0, 0, 0, 1])), 0, code, len(dims)])
    count = 1
    for d in dims:
        count *= d
    size = count * ITEM.get(code, 1)
    body_len = draw(st.one_of(st.just(size), st.integers(0, 200))) if size < 10 ** 6 else draw(st.integers(0, 50))
    body = draw(st.binary(min_size=min(body_len, 2000), max_size=min(body_len, 2000)))
    raw = magic + b"".join(d.to_bytes(4, "big") for d in dims) + body
    if draw(st.booleans()):
        raw = raw[:draw(st.integers(0, len(raw)))]
    return raw


@settings(FUZZ, max_examples=700 * SCALE)
@given(raw=idx_files(), compress=st.sampled_from(["none", "gzip", "broken-gzip"]))
def test_idx_file_bytes(folder, raw, compress):
    name = "f-idx3-ubyte" + (".gz" if compress != "none" else "")
    if compress == "gzip":
        raw = gzip.compress(raw)
    elif compress == "broken-gzip":
        raw = gzip.compress(raw)[:-5]
    path = folder / name
    path.write_bytes(raw)
    try:
        read_idx(path)
    except WorkbenchError:
        pass


@settings(FUZZ, max_examples=250 * SCALE)
@given(images=idx_files(ndim=3), labels=idx_files(ndim=1), with_test=st.booleans())
def test_mnist_folders(folder, images, labels, with_test):
    root = folder / "mnist"
    root.mkdir(exist_ok=True)
    for old in root.iterdir():
        old.unlink()
    (root / "train-images-idx3-ubyte").write_bytes(images)
    (root / "train-labels-idx1-ubyte").write_bytes(labels)
    if with_test:
        (root / "t10k-images-idx3-ubyte").write_bytes(images)
        (root / "t10k-labels-idx1-ubyte").write_bytes(labels)
    load_or_refuse({"source": "mnist", "path": str(root), "batch_size": 4})


def real_image(fmt: str, size=(6, 5), mode="RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 120).save(buf, format=fmt)
    return buf.getvalue()


REAL = [real_image("PNG"), real_image("JPEG"), real_image("BMP"), real_image("PNG", mode="L"),
        real_image("PNG", mode="I;16"), real_image("TIFF"), real_image("PNG", mode="P"), real_image("WEBP"),
        real_image("PNG", mode="RGBA"), real_image("PPM")]


@st.composite
def image_bytes(draw):
    kind = draw(st.sampled_from(["real", "damaged", "cut", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=200))
    data = bytearray(draw(st.sampled_from(REAL)))
    if kind == "damaged":
        for at, byte in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=4)):
            data[at] = byte
    elif kind == "cut":
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(FUZZ, max_examples=400 * SCALE)
@given(files=st.lists(image_bytes(), min_size=2, max_size=4), suffix=st.sampled_from([".png", ".jpg", ".bmp"]),
       grayscale=st.booleans())
def test_image_files(folder, files, suffix, grayscale):
    """Each image in a two-class folder (the rest good). A folder that loads must give every batch."""
    root = folder / "images"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for old in (root / cls).iterdir():
            old.unlink()
        (root / cls / f"good{suffix}").write_bytes(REAL[0])
    for i, data in enumerate(files):
        (root / ("a", "b")[i % 2] / f"{i}{suffix}").write_bytes(data)
    bundle = load_or_refuse({"source": "image_folder", "path": str(root), "grayscale": grayscale,
                             "val_fraction": 0.0, "batch_size": 8, "image_size": [4, 4]})
    if bundle is not None:
        for x, y in bundle.loader("train"):
            assert x.shape[1:] == ((1 if grayscale else 3), 4, 4) and torch.isfinite(x).all()
