"""Fuzzing the project loader (issue 12, "Prove it"): arbitrary bytes as a .wbproj file, and
JSON trees grown from valid projects by random edits (keys, values, types, depth, nesting,
hostile text and numbers). Every outcome is a Project or the project's own WorkbenchError
with a printable message; a loaded project also goes through summary's inference and the
memory estimate, saves, and loads back to the same text. Anything else fails the test.

WORKBENCH_FUZZ_EXAMPLES sets the examples per test (default 1500: about 3,000 per run)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from workbench.cli import main as cli
from workbench.cli.common import one_line
from workbench.errors import WorkbenchError
from workbench.model import build
from workbench.model.spec import MAX_DEPTH
from workbench.project import project_file as project, templates

EXAMPLES = int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "1500"))
FOLDER = Path(tempfile.mkdtemp(prefix="wb-project-fuzz-"))

RESIDUAL_DOC = {
    "format": "model-workbench/project", "version": 1, "name": "Res", "description": "nested",
    "model": {"input": {"shape": [2, 8, 8]}, "layers": [
        {"id": "conv", "type": "Conv2d", "args": {"out_channels": 4, "kernel_size": 3, "padding": "same"}},
        {"id": "res", "type": "Residual", "args": {"projection": "auto"}, "layers": [
            {"id": "inner", "type": "Conv2d", "args": {"out_channels": 8, "kernel_size": [3, 3], "stride": 2}},
            {"id": "bn", "type": "BatchNorm2d", "frozen": True}]},
        {"id": "flat", "type": "Flatten"},
        {"id": "fc", "type": "Linear", "args": {"out_features": 10}}]},
    "data": {"source": "fake", "fake_shape": [2, 8, 8], "image_size": [8, 8]},
    "training": {"optimizer": {"type": "SGD", "lr": 0.1}, "schedule": {"type": "step"}, "seed": 3},
    "runs": [{"dir": "x", "status": "finished"}],
}
BASES = [json.dumps(RESIDUAL_DOC)] + [templates.load(name).dumps() for name in templates.names()]

KEYS = ("format", "version", "name", "description", "model", "data", "training", "runs", "input", "shape",
        "dtype", "layers", "id", "type", "args", "frozen", "frozen_stages", "out_features", "kernel_size",
        "padding", "stride", "projection", "source", "path", "batch_size", "seed", "split_seed", "device",
        "optimizer", "lr", "epochs", "schedule", "image_size", "fake_shape", "weights", "pool", "__init__")
ODD = (0, -1, 1, -3, 2**31, 2**32, 2**32 - 1, 2**63, 2**64, 2**70, 10**100, 10**101, 10**400, 1e308,
       float("inf"), float("nan"), -0.0, 0.5, True, False, None, "", " ", "\ud800", "a\udcff", "conv1\n",
       "__init__", "__x", "\x1b[31m", "\u202e", "\x00", "Linear", "Residual", "resnet18", "Conv2d", "Flatten",
       "auto", "none", "digits", "csv", "image_folder", "same", "valid", "cuda:0", "cuda:\u0661", "int64",
       "float32", "model-workbench/project", "download", "x" * 300, [], {}, [1 << 20], [3, 100000, 100000])

scalars = st.one_of(st.sampled_from(ODD), st.integers(), st.floats(), st.text(max_size=12),
                    st.integers(-(1 << 70), 1 << 70))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4),
                           max_leaves=10)


def _places(tree, path=()):
    """Every (container path, key or index) in the tree: where an edit can land."""
    out = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.append((path, key))
            out.extend(_places(value, path + (key,)))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            out.append((path, i))
            out.extend(_places(value, path + (i,)))
    return out


def _at(tree, path):
    for step in path:
        tree = tree[step]
    return tree


def _wrap(value, depth: int, kind: str):
    for _ in range(depth):
        value = [value] if kind == "list" else {"layers": [value], "id": "r", "type": "Residual"}
    return value


def _tweak(draw, value):
    """A nearby value of the same type: edits that a valid project may survive."""
    if isinstance(value, bool):
        return draw(st.booleans())
    if isinstance(value, int):
        return draw(st.integers(-2, 70) | st.sampled_from((2**32 - 1, 2**32, 1 << 20)))
    if isinstance(value, float):
        return draw(st.floats(0, 2) | st.sampled_from((1e-12, 0.9, 100.0)))
    if isinstance(value, str):
        return draw(st.sampled_from([v for v in ODD if isinstance(v, str)]) | st.text(max_size=8))
    return draw(json_values)


@st.composite
def mutated_projects(draw):
    """A valid project's JSON with one to three random edits."""
    doc = json.loads(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        places = _places(doc)
        if not places:
            break
        path, key = draw(st.sampled_from(places))
        parent = _at(doc, path)
        value = parent[key]
        edit = draw(st.sampled_from(("tweak", "tweak", "replace", "delete", "add", "wrap", "nest", "duplicate")))
        if edit == "tweak":
            parent[key] = _tweak(draw, value)
        elif edit == "replace":
            parent[key] = draw(json_values)
        elif edit == "delete":
            del parent[key]
        elif edit == "add":
            if isinstance(parent, dict):
                parent[draw(st.sampled_from(KEYS) | st.text(max_size=6))] = draw(json_values)
            else:
                parent.insert(key, draw(json_values))
        elif edit == "wrap":  # deep JSON: around and past MAX_JSON_DEPTH
            parent[key] = _wrap(value, draw(st.sampled_from((1, 2, 60, 130, 400))), "list")
        elif edit == "nest" and isinstance(value, dict) and "type" in value:  # a Residual chain round a layer
            parent[key] = _wrap(value, draw(st.sampled_from((1, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH))),
                                "residual")
        elif isinstance(parent, list):  # a copy beside it: the same id, or a fresh one
            twin = json.loads(json.dumps(value))
            if isinstance(twin, dict) and draw(st.booleans()):
                twin["id"] = f"twin{len(parent)}"
            parent.insert(key, twin)
    return doc


@st.composite
def mutated_bytes(draw):
    """Random bytes, or a valid project's bytes with bytes flipped, inserted, cut or cropped
    (none at all now and then: a plain valid file)."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=400))
    data = bytearray(draw(st.sampled_from(BASES)).encode("utf-8"))
    for _ in range(draw(st.integers(0, 5))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(("flip", "insert", "cut", "crop", "text")))
        if edit == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "cut":
            del data[at:at + draw(st.integers(1, 40))]
        elif edit == "crop":
            del data[at:]
        else:  # JSON-shaped trouble where a value may stand
            data[at:at] = draw(st.sampled_from((b'"\\ud800"', b"9" * 5000, b"[" * 3000, b"1e999", b"NaN",
                                                b"-Infinity", b'"\\u0000"', b"{}", b'"\x1b]0;t\x07"')))
    return bytes(data)


def summary(path: Path) -> tuple[int, str, str]:
    """`workbench summary PATH` in this process, printing to strict UTF-8 streams as a terminal
    would (text that cannot be encoded fails here as it would there)."""
    out, err = io.TextIOWrapper(io.BytesIO(), "utf-8"), io.TextIOWrapper(io.BytesIO(), "utf-8")
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["summary", str(path)])
    out.flush(), err.flush()
    return code, out.buffer.getvalue().decode(), err.buffer.getvalue().decode()


def check_outcome(load, path: Path | None = None) -> None:
    """``load()`` gives a Project (which then survives summary, saving and reloading) or a
    WorkbenchError with a printable one-line message; nothing else."""
    try:
        proj = load()
    except WorkbenchError as exc:
        line = one_line(exc)
        assert line and line.isprintable(), line
        event("refused")
        return
    event("loaded")
    info = build.infer(proj.model)  # what `workbench summary` runs; records problems, never raises
    build.memory_problem(info)
    text = proj.dumps()
    assert project.loads(text).dumps() == text
    if path is not None:
        code, out, err = summary(path)
        assert code in (0, 2) and all(line.isprintable() for line in (out + err).splitlines()), err
        assert code == 0 or err.startswith("error: "), err
        event(f"summary exit {code}")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_bytes())
def test_any_bytes_as_a_project_file_load_or_are_refused(data):
    path = FOLDER / "fuzz.wbproj"
    path.write_bytes(data)
    check_outcome(lambda: project.load(path), path)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_projects(), st.booleans())
def test_edited_project_trees_load_or_are_refused(doc, as_text):
    if as_text:  # through the file format, hostile text and all
        text = json.dumps(doc, ensure_ascii=False)
        path = FOLDER / "tree.wbproj"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        check_outcome(lambda: project.load(path), path)
    else:  # the same tree handed over as Python data (the window's and tests' way in)
        check_outcome(lambda: project.from_json(doc))
