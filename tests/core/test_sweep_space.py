"""The sweep's search space: --param text, the project file's "sweep" section (problems by JSON
path, round trip), problems naming the parameter, apply and current_value."""
from __future__ import annotations

import json

import pytest

from workbench.errors import SpecError, WorkbenchError
from workbench.experiments import space as S
from workbench.project import project_file, templates


@pytest.fixture
def cnn():
    return templates.load("digits_cnn")


@pytest.mark.parametrize("text, expected", [
    ("training.optimizer.lr=log:1e-4..1e-1", S.SweepParam("training.optimizer.lr", 1e-4, 0.1, log=True)),
    ("drop.p=0..0.5", S.SweepParam("drop.p", 0.0, 0.5)),
    ("data.batch_size=int:16..128", S.SweepParam("data.batch_size", 16, 128, integer=True)),
    ("data.batch_size=int:16..128:16", S.SweepParam("data.batch_size", 16, 128, step=16, integer=True)),
    ("conv1.out_channels=16,32,64", S.SweepParam("conv1.out_channels", choices=(16, 32, 64))),
    ("training.optimizer.type=SGD,Adam", S.SweepParam("training.optimizer.type", choices=("SGD", "Adam"))),
    ("conv1.bias=true,false", S.SweepParam("conv1.bias", choices=(True, False))),
])
def test_parse_param(text, expected):
    param = S.parse_param(text)
    assert param == expected
    assert S.parse_param(param.spec_text()) == param  # the text the window shows parses back


@pytest.mark.parametrize("text, words", [
    ("training.optimizer.lr=log:0..0.1", ["training.optimizer.lr", "log range", "above 0"]),
    ("training.optimizer.lr=log:-1..0.1", ["training.optimizer.lr", "above 0"]),
    ("drop.p=0.5..0.1", ["drop.p", "empty range"]),
    ("drop.p=0.5..0.5", ["drop.p", "empty range"]),
    ("drop.p=a..b", ["drop.p", "not a number"]),
    ("conv1.out_channels=int:16.5..32", ["conv1.out_channels", "whole number"]),
    ("conv1.out_channels=16,,32", ["conv1.out_channels", "empty item"]),
    ("conv1.out_channels", ["PATH=SPEC"]),
    ("conv1..x=1,2", ["conv1..x", "not a setting or layer path"]),
])
def test_parse_param_errors_name_the_parameter(text, words):
    with pytest.raises(WorkbenchError) as info:
        S.parse_param(text)
    for word in words:
        assert word in str(info.value)


def test_describe():
    assert S.parse_param("a.b=log:1e-4..0.1").describe() == "log 0.0001..0.1"
    assert S.parse_param("a.b=int:16..128:16").describe() == "int 16..128 step 16"
    assert S.parse_param("a.b=16,32,64").describe() == "16, 32, 64"
    assert S.parse_param("a.b=SGD,Adam").describe() == "SGD, Adam"


@pytest.mark.parametrize("text, words", [
    ("nosuch.out_channels=16,32", ["sweep parameter nosuch.out_channels", "no layer 'nosuch'", "conv1"]),
    ("conv1.widthx=16,32", ["sweep parameter conv1.widthx", "no argument 'widthx'", "out_channels"]),
    ("training.optimizer.nope=1,2", ["training.optimizer.nope", "no setting 'nope'"]),
    ("training.nothing.lr=1,2", ["training.nothing.lr", "no settings section 'nothing'"]),
    ("conv1.out_channels=0..64", ["conv1.out_channels", "whole numbers", "int:"]),
    ("conv1.out_channels=0,16", ["conv1.out_channels", ">= 1"]),
    ("drop.p=0..2", ["drop.p", "<= 1"]),
    ("training.optimizer.type=SGD,Nope", ["training.optimizer.type", "one of"]),
    ("training.device=cpu,cuda", ["training.device", "not a hyperparameter"]),
])
def test_problems_name_the_parameter(cnn, text, words):
    found = S.problems(S.SearchSpace((S.parse_param(text),)), cnn)
    assert len(found) == 1, found
    for word in words:
        assert word in found[0]


def test_good_space_has_no_problems_and_model_prefix_works(cnn):
    space = S.SearchSpace(tuple(S.parse_param(t) for t in (
        "training.optimizer.lr=log:1e-4..1e-1", "model.conv1.out_channels=16,32,64", "drop.p=0..0.5",
        "data.batch_size=int:16..128:16", "training.optimizer.type=SGD,Adam", "conv1.kernel_size=3,5")))
    assert S.problems(space, cnn) == []
    assert S.problems(S.SearchSpace(), cnn) and "empty" in S.problems(S.SearchSpace(), cnn)[0]


def test_grid_refuses_a_continuous_range_and_steps_integer_ranges(cnn):
    space = S.SearchSpace((S.parse_param("training.optimizer.lr=log:1e-4..1e-1"),
                           S.parse_param("data.batch_size=int:16..64:16")), sampler="grid")
    found = S.problems(space, cnn)
    assert len(found) == 1 and "training.optimizer.lr" in found[0] and "grid" in found[0]
    grid = space.without_param("training.optimizer.lr")
    assert S.problems(grid, cnn) == []
    assert S.grid_values(grid) == {"data.batch_size": [16, 32, 48, 64]}


def test_apply_writes_a_copy_and_checks_values(cnn):
    changed = S.apply(cnn, {"training.optimizer.lr": 0.01, "conv1.out_channels": 16, "drop.p": 0.1,
                            "training.optimizer.type": "SGD", "data.batch_size": 32})
    assert changed.training.optimizer.lr == 0.01 and changed.training.optimizer.type == "SGD"
    assert changed.model.find("conv1").args["out_channels"] == 16 and changed.data.batch_size == 32
    assert S.current_value(changed, "model.drop.p") == 0.1
    assert cnn.model.find("conv1").args["out_channels"] == 32 and cnn.training.optimizer.type == "Adam"
    assert S.current_value(cnn, "training.optimizer.lr") == cnn.training.optimizer.lr
    assert S.current_value(cnn, "conv1.stride") == 1  # left out: its default
    with pytest.raises(SpecError) as info:
        S.apply(cnn, {"conv1.out_channels": -3})
    assert "out_channels" in str(info.value) and "conv1" in str(info.value)
    with pytest.raises(KeyError):
        S.current_value(cnn, "nosuch.p")


def test_project_file_sweep_round_trip(cnn, tmp_path):
    space = S.SearchSpace((S.parse_param("training.optimizer.lr=log:1e-4..1e-1"),
                           S.parse_param("conv1.out_channels=16,32,64"), S.parse_param("drop.p=0..0.5"),
                           S.parse_param("data.batch_size=int:16..128:16")),
                          sampler="random", pruner="hyperband", trials=7, timeout=60.0)
    cnn.sweep = space
    path = project_file.save(cnn, tmp_path / "p.wbproj")
    doc = json.loads(path.read_text())
    assert doc["sweep"]["params"]["conv1.out_channels"] == {"choices": [16, 32, 64]}
    assert doc["sweep"]["params"]["data.batch_size"] == {"low": 16, "high": 128, "step": 16, "int": True}
    again = project_file.load(path)
    assert again.sweep == space
    cnn.sweep = None
    assert "sweep" not in json.loads(project_file.save(cnn, tmp_path / "q.wbproj").read_text())
    assert project_file.load(tmp_path / "q.wbproj").sweep is None


@pytest.mark.parametrize("sweep, where, words", [
    ({"params": {"drop.p": {"low": 0.5, "high": 0.1}}}, "$.sweep.params.drop.p.high", ["empty range"]),
    ({"params": {"training.optimizer.lr": {"low": 0, "high": 0.1, "log": True}}},
     "$.sweep.params.training.optimizer.lr.low", ["log range"]),
    ({"params": {"conv1.out_channels": {"choices": []}}}, "$.sweep.params.conv1.out_channels.choices",
     ["non-empty"]),
    ({"params": {"drop.p": {"low": 0, "high": 1, "width": 2}}}, "$.sweep.params.drop.p.width", ["unknown key"]),
    ({"params": {"drop.p": {"high": 1}}}, "$.sweep.params.drop.p.low", ["missing"]),
    ({"params": {"drop.p": [0, 1]}}, "$.sweep.params.drop.p", ["must be an object"]),
    ({"params": {}, "sampler": "cmaes"}, "$.sweep.sampler", ["tpe, random, grid"]),
    ({"params": {}, "pruner": "always"}, "$.sweep.pruner", ["median"]),
    ({"params": {}, "trials": 0}, "$.sweep.trials", ["whole number"]),
    ({"params": {}, "timeout": -1}, "$.sweep.timeout", ["seconds"]),
    ({"params": {}, "direction": "up"}, "$.sweep.direction", ["maximize"]),
    ({"params": {}, "extra": 1}, "$.sweep.extra", ["unknown key"]),
    ([1], "$.sweep", ["must be an object"]),
])
def test_project_file_sweep_problems_name_the_json_path(cnn, sweep, where, words):
    doc = cnn.to_json()
    doc["sweep"] = sweep
    with pytest.raises(SpecError) as info:
        project_file.from_json(doc, "p.wbproj")
    paths = [p.path for p in info.value.problems]
    assert paths == [where], info.value.problems
    for word in words:
        assert word in str(info.value)


def test_project_file_keeps_a_stale_layer_path(cnn):
    """A sweep naming a layer removed since still opens: the check is the sweep's, at run time."""
    doc = cnn.to_json()
    doc["sweep"] = {"params": {"gone.p": {"low": 0.0, "high": 0.5}}}
    loaded = project_file.from_json(doc)
    assert loaded.sweep.params[0].path == "gone.p"
    assert "no layer 'gone'" in S.problems(loaded.sweep, loaded)[0]


def test_direction_follows_the_metric(cnn):
    space = S.SearchSpace.from_json({"params": {}, "metric": "val_loss"})
    assert space.direction == "minimize"
    assert S.SearchSpace.from_json({"params": {}}).direction == "maximize"
