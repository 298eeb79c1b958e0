"""Checkpoints with wrong contents (issue 12, item 9): missing entries, a string version, a bad
rng, optimizer or position. checkpoint.load checks the structure and says what is missing or
wrong; `workbench train --resume` exits 2 with that one `error:` line, and writes nothing."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from workbench.cli.main import main
from workbench.errors import WorkbenchError
from workbench.training import checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory, wine_ddp_project):
    """A project, its finished one-epoch run, and the checkpoint's contents."""
    folder = tmp_path_factory.mktemp("ckpt")
    doc = copy.deepcopy(wine_ddp_project)
    doc["training"].update(epochs=1, tensorboard=False)
    project = folder / "wine.wbproj"
    project.write_text(json.dumps(doc))
    assert main(["train", str(project), "--out", str(folder / "run"), "--quiet"]) == 0
    state = checkpoint.load(folder / "run" / checkpoint.LAST)
    return project, folder / "run" / checkpoint.LAST, state


def edited(state: dict, change) -> dict:
    state = copy.deepcopy(state)
    change(state)
    return state


def setitem(path, value):
    def change(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def delitem(*path):
    def change(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


def split_groups(state):
    group = state["optimizer"]["param_groups"][0]
    state["optimizer"]["param_groups"] = [dict(group, params=group["params"][:2]),
                                          dict(group, params=group["params"][2:])]


CASES = [
    (lambda s: [s.pop(k) for k in list(s) if k not in ("format", "version")], "has no 'model' entry"),
    (delitem("model"), "has no 'model' entry"),
    (delitem("optimizer"), "has no 'optimizer' entry"),
    (delitem("rng"), "has no 'rng' entry"),
    (setitem(["version"], "a"), "'version' must be an integer, got 'a'"),
    (setitem(["version"], True), "'version' must be an integer, got True"),
    (setitem(["version"], 0), "'version' must be 1 or more"),
    (setitem(["version"], 99), "written by a newer Model Workbench"),
    (setitem(["model"], [1, 2]), "'model' must be a state_dict"),
    (setitem(["model", "fc1.weight"], "x"), "'model' entry fc1.weight is a str"),
    (setitem(["model", "fc1.weight"], torch.empty(2, device="meta")), "'model' tensor 'fc1.weight' has no values"),
    (setitem(["optimizer"], 5), "'optimizer' must be an optimizer state_dict"),
    (delitem("optimizer", "param_groups"), "'param_groups' must be a list"),
    (setitem(["optimizer", "state"], None), "optimizer state has no 'state' dict"),
    (setitem(["rng"], "abc"), "the rng state must be a dict with a 'torch' entry"),
    (setitem(["rng", "torch"], torch.zeros(5, dtype=torch.uint8)), "the rng state is damaged"),
    (setitem(["rng", "torch"], torch.zeros(5)), "the rng state is damaged"),
    (setitem(["rng", "python", "state"], torch.zeros(3, dtype=torch.int64)), "the rng state is damaged"),
    (setitem(["rng", "python", "gauss"], "g"), "the rng state is damaged"),
    (setitem(["rng", "numpy", "keys"], torch.zeros(3, dtype=torch.int64)), "the rng state is damaged"),
    (setitem(["rng", "numpy", "keys"], torch.zeros(3)), "the rng state is damaged"),
    (setitem(["rng", "cuda"], "x"), "the rng state is damaged"),
    (setitem(["position"], [0, 0]), "'position' must be a dict"),
    (delitem("position", "epoch"), "'position' has no 'epoch' entry"),
    (setitem(["position", "epoch"], "1"), "position['epoch'] has a wrong value: '1'"),
    (setitem(["position", "batch"], -4), "position['batch'] has a wrong value: -4"),
    (setitem(["position", "surprise"], 1), "'position' has an unknown entry surprise"),
    (setitem(["best", "epoch"], 1.5), "best['epoch'] has a wrong value: 1.5"),
    (setitem(["trainable"], {"fc1.weight": "yes"}), "'trainable' must map parameter names to true / false"),
    (setitem(["epochs"], 0), "'epochs' must be a whole number of 1 or more, got 0"),
    (setitem(["world_size"], "2"), "'world_size' must be a whole number of 1 or more, got '2'"),
    (setitem(["scheduler"], [1]), "'scheduler' must be a dict or None"),
    (setitem(["spec"], "x"), "'spec' must be the model description"),
    (setitem(["task"], {}), "'task' must describe the data"),
]


@pytest.mark.parametrize("change,words", CASES)
def test_load_says_what_is_missing_or_wrong(run, tmp_path, change, words):
    _, _, state = run
    path = tmp_path / "bad.ckpt"
    torch.save(edited(state, change), path)
    with pytest.raises(WorkbenchError) as err:
        checkpoint.load(path)
    text = str(err.value)
    assert words in text and str(path) in text and "\n" not in text, text


def test_a_good_checkpoint_passes_the_check_unchanged(run, tmp_path):
    _, last, state = run
    checkpoint.check(state, last)
    assert state["format"] == checkpoint.FORMAT


@pytest.mark.parametrize("change,words", [
    (lambda s: [s.pop(k) for k in list(s) if k not in ("format", "version")], "has no 'model' entry"),
    (setitem(["version"], "a"), "'version' must be an integer, got 'a'"),
    (setitem(["rng", "torch"], torch.zeros(5, dtype=torch.uint8)), "the rng state is damaged"),
    (setitem(["optimizer", "param_groups", 0, "lr"], "fast"),
     "its optimizer state does not fit this run (param_groups[0]['lr'] should be a number)"),
    (split_groups, "its optimizer state does not fit this run (ValueError: loaded state dict has a different number"),
    (setitem(["optimizer", "state", 0, "exp_avg"], torch.zeros(2)),
     "its optimizer state does not fit this run (its 'exp_avg' for a parameter of shape [32, 13] is [2])"),
    (delitem("optimizer", "state", 0, "exp_avg_sq"), "expected ['exp_avg', 'exp_avg_sq', 'step']"),
    (setitem(["optimizer", "state", 0, "step"], torch.tensor(-3.0)), "its 'step' for a parameter"),
    (setitem(["position", "epoch"], "x"), "position['epoch'] has a wrong value"),
])
def test_resume_from_a_bad_checkpoint_exits_2_with_one_line(run, tmp_path, capsys, change, words):
    project, _, state = run
    folder = tmp_path / "run"
    folder.mkdir()
    path = folder / checkpoint.LAST
    torch.save(edited(state, change), path)
    before = path.read_bytes()
    assert main(["train", str(project), "--resume", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and words in errors[0] and str(path) in errors[0], err
    assert not any("Traceback" in line for line in err)
    assert path.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == [checkpoint.LAST]


def test_text_and_code_as_a_checkpoint(tmp_path):
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(WorkbenchError, match="it is a text file"):
        checkpoint.load(tmp_path / "text.ckpt")
    torch.save({"format": checkpoint.FORMAT, "version": 1, "x": torch.zeros(2).to_sparse()}, tmp_path / "s.ckpt")
    with pytest.raises(WorkbenchError, match="has no 'model' entry"):
        checkpoint.load(tmp_path / "s.ckpt")


def test_optimizer_entries_of_the_wrong_kind(run, tmp_path):
    _, _, state = run
    for change, words in ((setitem(["optimizer", "state", 0], 3), "optimizer state of parameter 0 is a int"),
                          (setitem(["optimizer", "param_groups", 0, "params"], ["a"]), "'params' lists")):
        torch.save(edited(state, change), tmp_path / "o.ckpt")
        with pytest.raises(WorkbenchError, match=words):
            checkpoint.load(tmp_path / "o.ckpt")
