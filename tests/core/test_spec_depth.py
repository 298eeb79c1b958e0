"""One depth limit (spec.MAX_DEPTH) for nested layers, and every stage honours it: a model at
the limit goes through summary, build, a training step and the Python, TorchScript and ONNX
exports; one level more is refused when the file is read, and by inference for a spec made in
code, naming the layer. Far deeper JSON never reaches a recursion."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.errors import LayerError, SpecError
from workbench.model import build
from workbench.model.spec import MAX_DEPTH, MAX_JSON_DEPTH, LayerSpec, ModelSpec
from workbench.project import project_file as project


def nested_doc(depth: int) -> dict:
    """Iris: Residual blocks nested so that the innermost Linear sits at ``depth``, then a head."""
    inner = {"id": f"fc{depth}", "type": "Linear", "args": {"out_features": 4}}
    for level in range(depth - 1, 0, -1):
        inner = {"id": f"res{level}", "type": "Residual", "layers": [inner]}
    return {"format": "model-workbench/project", "version": 1, "name": f"Deep {depth}",
            "model": {"input": {"shape": [4]}, "layers": [
                inner, {"id": "head", "type": "Linear", "args": {"out_features": 3}}]},
            "data": {"source": "iris", "batch_size": 256},
            "training": {"epochs": 1, "device": "cpu", "tensorboard": False}}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_a_model_at_the_depth_limit_works_in_every_stage(tmp_path):
    from workbench.export import exporter
    from workbench.training import events as ev
    from workbench.training.engine import Engine

    path = tmp_path / "deep.wbproj"
    path.write_text(json.dumps(nested_doc(MAX_DEPTH)))
    summary = cli("summary", path, "--json")
    assert summary.returncode == 0, summary.stderr
    rows = json.loads(summary.stdout)["layers"]
    assert rows[MAX_DEPTH - 1]["id"] == f"fc{MAX_DEPTH}" and rows[-1]["output_shape"] == [3]

    proj = project.load(path)
    model = build.build_model(proj.model)
    assert model.get_submodule(".".join(["res1"] + [f"body.res{i}" for i in range(2, MAX_DEPTH)]))

    events = []
    end = Engine(proj, run_dir=tmp_path / "run", handlers=[events.append]).run()  # one step: 120 examples
    assert isinstance(end, ev.FinishedEvent), getattr(end, "message", end)
    assert [e.step for e in events if isinstance(e, ev.StepEvent)] == [1]

    results = exporter.export_all(model, proj.model, tmp_path / "out", formats=["python", "torchscript", "onnx"])
    for result in results:
        assert result.ok and result.verification.passed, result.summary()


def test_one_level_more_is_refused_naming_the_layer(tmp_path):
    path = tmp_path / "deeper.wbproj"
    path.write_text(json.dumps(nested_doc(MAX_DEPTH + 1)))
    line = one_error_line(cli("summary", path))
    assert f"layer 'fc{MAX_DEPTH + 1}' (Linear, #1{'.1' * MAX_DEPTH})" in line
    assert f"nested {MAX_DEPTH + 1} levels deep; layers nest at most {MAX_DEPTH} deep" in line
    assert str(path) in line


def test_a_spec_made_in_code_is_held_to_the_same_limit():
    """The window nests layers by drag and drop: inference refuses what a file could not hold."""
    inner = LayerSpec(f"fc{MAX_DEPTH + 1}", "Linear", {"out_features": 4})
    for level in range(MAX_DEPTH, 0, -1):
        inner = LayerSpec(f"res{level}", "Residual", layers=[inner])
    spec = ModelSpec((4,), [inner, LayerSpec("head", "Linear", {"out_features": 3})])
    info = build.infer(spec)
    assert info.error is not None and info.error.layer_id == f"fc{MAX_DEPTH + 1}"
    assert f"nest at most {MAX_DEPTH} deep" in str(info.error)
    with pytest.raises(LayerError, match=f"fc{MAX_DEPTH + 1}"):
        build.build_model(spec)


@pytest.mark.parametrize("text", [
    "[" * 5000 + "]" * 5000,
    '{"format": "model-workbench/project", "version": 1, "runs": [' + "{\"a\": " * 200 + "1" + "}" * 200 + "]}",
    json.dumps(nested_doc(MAX_JSON_DEPTH)),  # past the JSON limit: no layer is parsed
], ids=["5000-deep-list", "deep-run-record", "deep-model"])
def test_json_nested_far_too_deep_is_one_clear_error(tmp_path, text):
    path = tmp_path / "deep.wbproj"
    path.write_text(text)
    line = one_error_line(cli("summary", path))
    assert "nest" in line and str(path) in line
    with pytest.raises(SpecError) as err:
        project.loads(text)
    assert len(err.value.problems) <= 10


def test_a_model_half_again_too_deep_is_still_reported_by_its_layer():
    """The JSON depth limit leaves room: a model too deep is named by its first layer past the
    limit (not a bare JSON path), and nothing below it is parsed."""
    with pytest.raises(SpecError) as err:
        project.from_json(nested_doc(MAX_DEPTH + MAX_DEPTH // 2))
    assert len(err.value.problems) == 1
    assert f"layer 'res{MAX_DEPTH + 1}' (Residual, #1{'.1' * MAX_DEPTH})" in str(err.value)
