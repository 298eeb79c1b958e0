"""Fuzz: weights files (issue 12, "prove it"). Random bytes, damaged copies of real files,
torch.save'd dicts of odd contents (wrong dtypes; meta, sparse, nested, quantized and
huge-shape tensors; values that are not tensors) and safetensors files with odd headers go
through weights.read and weights.load_into, the way `--weights` and Open weights use them; the
bytes also go through checkpoint.load and backbone weights. The only outcomes allowed are
success and a WorkbenchError."""
from __future__ import annotations

import io
import json
import os
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.errors import WorkbenchError
from workbench.model import backbones, weights
from workbench.training import checkpoint

SCALE = int(os.environ.get("WORKBENCH_FUZZ_SCALE", "1"))  # WORKBENCH_FUZZ_SCALE=N: N times more examples
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def good_bytes() -> bytes:
    buf = io.BytesIO()
    torch.save(small_model().state_dict(), buf)
    return buf.getvalue()


GOOD = good_bytes()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("weights-fuzz")


def open_weights(path) -> None:
    """What --weights and Open weights do: read, check, load what fits (all or the matching ones)."""
    try:
        loaded = weights.read(path)
        model = small_model()
        report = weights.check(model, loaded.state_dict, loaded.source)
        report.describe()
        weights.load_into(model, loaded, partial=True)
    except WorkbenchError as exc:
        assert str(exc), "an error says something"


PREFIXES = [b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", b"\x80\x02}q\x00(X", GOOD[:40], GOOD[:200],
            b"\x08\x00\x00\x00\x00\x00\x00\x00{}", b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."]


def saved(path, data):
    """``data`` as torch.save writes it, at ``path``."""
    torch.save(data, path)
    return path


@settings(FUZZ, max_examples=700 * SCALE)
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=400),
       suffix=st.sampled_from([".pth", ".ckpt", ".safetensors"]))
def test_random_bytes(folder, prefix, body, suffix):
    path = folder / f"bytes{suffix}"
    path.write_bytes(prefix + body)
    open_weights(path)
    try:
        checkpoint.load(path)
    except WorkbenchError:
        pass


@settings(FUZZ, max_examples=500 * SCALE)
@given(edits=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, len(GOOD))))
def test_damaged_copies_of_a_real_file(folder, edits, cut):
    data = bytearray(GOOD)
    for at, byte in edits:
        data[at] = byte
    path = folder / "damaged.pth"
    path.write_bytes(bytes(data[:cut] if cut is not None else data))
    open_weights(path)


DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool, torch.complex64, torch.float8_e4m3fn]
KEYS = ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
        "module.0.weight", "x", ""]
SHAPES = [(3, 4), (3,), (), (4, 3), (0,), (1, 3, 4)]


@st.composite
def odd_tensors(draw):
    shape = draw(st.sampled_from(SHAPES))
    dtype = draw(st.sampled_from(DTYPES))
    kind = draw(st.sampled_from(["plain", "plain", "plain", "meta", "sparse", "nested", "huge", "quantized",
                                 "noncontiguous"]))
    if kind == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    if kind == "huge":  # a 2^40-element view of one value: small on disk
        return torch.zeros(1, dtype=dtype).expand(2 ** 20, 2 ** 20)
    if kind == "quantized":
        return torch.quantize_per_tensor(torch.zeros(shape), 0.1, 0, torch.qint8)
    if kind == "nested":
        return torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)])
    t = torch.zeros(shape, dtype=dtype) if dtype != torch.float8_e4m3fn else torch.zeros(shape).to(dtype)
    if kind == "sparse" and t.dim() > 0 and dtype in (torch.float32, torch.float64, torch.int64):
        return t.to_sparse()
    if kind == "noncontiguous" and t.dim() == 2:
        return t.t()
    return t


leaf = st.one_of(odd_tensors(), odd_tensors(), st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                 st.floats(), st.text(max_size=5))
value = st.recursive(leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                    st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
                     max_leaves=6)
state_dicts = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.integers(0, 3)), value, max_size=7)


@st.composite
def containers(draw):
    """A plain state_dict, or one wrapped as an export, a training checkpoint or a 'state_dict' entry."""
    inner = draw(state_dicts)
    wrap = draw(st.sampled_from(["plain", "export", "checkpoint", "state_dict", "nested-export"]))
    spec = draw(st.one_of(st.none(), st.text(max_size=8), st.just("[" * 5000), st.just('{"input": 3}'),
                          st.dictionaries(st.sampled_from(["input", "layers"]), leaf, max_size=2)))
    if wrap == "export":
        return {"format": weights.FORMAT, "version": 1, "spec": spec, "state_dict": inner}
    if wrap == "checkpoint":
        return {"format": checkpoint.FORMAT, "version": 1, "model": inner, "spec": spec}
    if wrap == "state_dict":
        return {"state_dict": inner, "epoch": 3}
    if wrap == "nested-export":
        return {"format": weights.FORMAT, "state_dict": {"state_dict": inner}}
    return inner


@settings(FUZZ, max_examples=700 * SCALE)
@given(data=containers())
def test_saved_dicts_of_odd_contents(folder, data):
    open_weights(saved(folder / "odd.pth", data))


SAFE_DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "C64", "XX", 3]


@st.composite
def safetensors_files(draw):
    entries, offset = {}, 0
    for name in draw(st.lists(st.sampled_from(KEYS[:6]), max_size=4, unique=True)):
        shape = draw(st.lists(st.integers(0, 5) | st.sampled_from([-1, 2 ** 62]), max_size=3))
        size = draw(st.integers(0, 64))
        entries[name] = {"dtype": draw(st.sampled_from(SAFE_DTYPES)), "shape": shape,
                         "data_offsets": draw(st.sampled_from([[offset, offset + size], [offset + size, offset],
                                                               [0, 2 ** 40]]))}
        offset += size
    meta = draw(st.one_of(st.none(), st.dictionaries(st.sampled_from(["format", "spec", "x"]),
                                                     st.sampled_from([weights.FORMAT, "[" * 3000, '{"a":1}', "z"]),
                                                     max_size=3)))
    if meta is not None:
        entries["__metadata__"] = meta
    header = json.dumps(entries).encode()
    if draw(st.booleans()):
        header = header[:draw(st.integers(0, len(header)))]
    declared = draw(st.one_of(st.just(len(header)), st.integers(0, 2 ** 64 - 1)))
    return struct.pack("<Q", declared) + header + draw(st.binary(min_size=0, max_size=offset + 8))


@settings(FUZZ, max_examples=500 * SCALE)
@given(data=safetensors_files())
def test_safetensors_files_with_odd_headers(folder, data):
    path = folder / "odd.safetensors"
    path.write_bytes(data)
    open_weights(path)


@settings(FUZZ, max_examples=60 * SCALE)
@given(data=containers())
def test_backbone_weights_of_odd_contents(folder, data):
    path = saved(folder / "backbone.pth", data)
    try:
        backbones.build_backbone("mobilenet_v3_small", weights=str(path))
    except WorkbenchError:
        pass
