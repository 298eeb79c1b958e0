"""Hostile project files (issue 12, items 4 to 6): each ends in exit 2 and one `error:` line
that names the file and the field or layer; never a traceback, never a hang."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from workbench.errors import SpecError, WorkbenchError
from workbench.model import build
from workbench.model.spec import MAX_INT_DIGITS, id_problem
from workbench.project import project_file as project, templates
from workbench.project.settings import MAX_SEED


def doc(**over) -> dict:
    base = {"format": "model-workbench/project", "version": 1, "name": "T",
            "model": {"input": {"shape": [4]}, "layers": [
                {"id": "fc1", "type": "Linear", "args": {"out_features": 8}},
                {"id": "act", "type": "ReLU"},
                {"id": "fc", "type": "Linear", "args": {"out_features": 3}}]},
            "data": {"source": "iris"}, "training": {"device": "cpu"}}
    base.update(over)
    return base


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


class Result:
    def __init__(self, returncode: int, stderr: str):
        self.returncode, self.stderr = returncode, stderr


def summary_error(tmp_path, capsys, text: str, names_file: bool = True, in_process: bool = True) -> str:
    """`workbench summary` on a file holding ``text``: in this process (quick), or as a user
    runs it (where printing to the terminal's encoding can fail too)."""
    from workbench.cli import main as cli_main

    path = tmp_path / "bad.wbproj"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    if in_process:
        capsys.readouterr()
        code = cli_main.main(["summary", str(path)])
        line = one_error_line(Result(code, capsys.readouterr().err))
    else:
        line = one_error_line(cli("summary", path))
    if names_file:
        assert str(path) in line
    return line


# ---------------------------------------------------------------- item 4: numbers, text, size

def test_an_integer_of_5000_digits_is_refused_naming_the_field(tmp_path, capsys):
    text = json.dumps(doc(training={"seed": 7}))
    text = text.replace('"seed": 7', '"seed": ' + "9" * 5000)
    line = summary_error(tmp_path, capsys, text, in_process=False)
    assert "$.training.seed" in line and "5,000 digits" in line


@pytest.mark.parametrize("value", [10**400, -(10**150), 10**5000],
                         ids=["401-digits", "minus-151-digits", "5001-digits"])
def test_long_numbers_in_layer_arguments_never_overflow(value):
    d = doc()
    d["model"]["layers"][2]["args"]["out_features"] = value
    with pytest.raises(SpecError) as err:
        project.from_json(d)
    assert [p.path for p in err.value.problems] == ["$.model.layers[2].args.out_features"]
    assert f"more than {MAX_INT_DIGITS}" in str(err.value)


def test_numbers_just_past_a_bound_are_shown_in_full():
    d = doc()
    d["model"]["layers"][2]["args"]["out_features"] = 10**30
    with pytest.raises(SpecError, match=r"out_features must be <= 1048576, got 1000000000000000000000000000000"):
        project.from_json(d)


def test_a_lone_surrogate_in_the_name_is_refused_naming_the_field(tmp_path, capsys):
    line = summary_error(tmp_path, capsys, json.dumps(doc(name="Digits\ud800")), in_process=False)
    assert "$.name" in line and "lone surrogate" in line and "\\ud800" in line


def test_lone_surrogates_anywhere_are_refused_with_their_path():
    d = doc(description="ok")
    d["model"]["layers"][1]["id"] = "a\udcff"
    d["runs"] = [{"note\ud83d": 1}]
    with pytest.raises(SpecError) as err:
        project.from_json(d)
    paths = {p.path for p in err.value.problems}
    assert "$.model.layers[1].id" in paths and any(p.startswith("$.runs[0]") for p in paths)


def test_every_loaded_project_can_be_saved_and_printed(tmp_path):
    proj = project.from_json(doc(name="Ünïcode 日本 \x1b[31m", description="tab\there"))
    path = project.save(proj, tmp_path / "p.wbproj")
    assert project.load(path).name == proj.name


@pytest.mark.parametrize("shape,layers,figure", [
    ([3, 1 << 20, 1 << 20], [{"id": "act", "type": "ReLU"}], "TB"),
    ([1 << 20], [{"id": "fc", "type": "Linear", "args": {"out_features": 1 << 20}}], "4.4 TB"),
], ids=["huge-input", "2^40-parameters"])
def test_a_model_too_large_for_memory_is_refused_up_front_with_the_figure(tmp_path, capsys, shape, layers, figure):
    d = doc(model={"input": {"shape": shape}, "layers": layers})
    line = summary_error(tmp_path, capsys, json.dumps(d), names_file=False)
    assert "the model needs" in line and figure in line and "this machine has" in line
    assert "layer '" in line or "input" in line
    proj = project.from_json(d)
    with pytest.raises(WorkbenchError, match="the model needs"):
        build.build_model(proj.model)  # refused before any weight is allocated


def test_memory_need_counts_parameters_and_activations():
    proj = project.from_json(doc())
    info = build.infer(proj.model)
    weights, activations = build.memory_need(info, batch=2)
    assert weights == (4 * 8 + 8 + 8 * 3 + 3) * 4
    assert activations == 2 * 4 * (4 + 8 + 8 + 3)
    assert build.memory_problem(info) is None
    assert "this machine has 100 B" in build.memory_problem(info, available=100)


def test_training_checks_memory_for_its_own_batch_size(tmp_path, monkeypatch):
    """Summary checks a batch of 2; a run checks the batch it will train with, before building."""
    import dataclasses

    from workbench.training import events as ev
    from workbench.training.engine import Engine

    proj = templates.load("digits_mlp")
    proj.path = tmp_path / "p.wbproj"
    proj.training = dataclasses.replace(proj.training, epochs=1)
    info = build.infer(proj.model)
    weights, per_two = build.memory_need(info, batch=2)
    monkeypatch.setattr(build, "machine_memory", lambda: weights + per_two * 4)  # fits 8, not the batch
    assert build.memory_problem(info) is None and proj.data.batch_size > 8
    end = Engine(proj).run()
    assert isinstance(end, ev.FailedEvent) and "the model needs" in end.message, end


def test_a_file_far_too_large_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(project, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.wbproj"
    path.write_text(json.dumps(doc(description="x" * 2000)))
    with pytest.raises(SpecError, match="far too large for a project file"):
        project.load(path)


# ---------------------------------------------------------------- item 5: not a regular file

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_fifo_as_the_project_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.wbproj"
    os.mkfifo(fifo)
    line = one_error_line(cli("summary", fifo, timeout=60))  # a regression blocks: the timeout fails it
    assert "FIFO" in line and str(fifo) in line


def test_a_folder_as_the_project_is_refused(tmp_path):
    folder = tmp_path / "p.wbproj"
    folder.mkdir()
    with pytest.raises(WorkbenchError, match="is a folder"):
        project.load(folder)


# ---------------------------------------------------------------- item 6: ids, seeds, layer names

@pytest.mark.parametrize("bad_id", ["conv1\n", "conv1\r\n", "\nconv1", "conv\x001", "fc\u0660"])
def test_ids_with_a_trailing_newline_or_other_characters_are_refused(tmp_path, capsys, bad_id):
    d = doc()
    d["model"]["layers"][0]["id"] = bad_id
    line = summary_error(tmp_path, capsys, json.dumps(d))
    assert "$.model.layers[0].id" in line and "layer #1 (Linear)" in line
    assert "\n" not in line.strip()


@pytest.mark.parametrize("bad_id", ["__init__", "__call__", "__dict__", "__x", "__"])
def test_ids_starting_with_two_underscores_are_refused_at_load(tmp_path, capsys, bad_id):
    d = doc()
    d["model"]["layers"][1]["id"] = bad_id
    line = summary_error(tmp_path, capsys, json.dumps(d))
    assert "$.model.layers[1].id" in line and "two underscores" in line


def test_one_underscore_is_still_a_good_id():
    assert id_problem("_hidden") is None and id_problem("fc_1") is None


@pytest.mark.parametrize("section,key", [("training", "seed"), ("data", "split_seed")])
def test_seeds_are_bounded(tmp_path, capsys, section, key):
    d = doc()
    d[section][key] = 2**70
    line = summary_error(tmp_path, capsys, json.dumps(d))
    assert f"$.{section}.{key}" in line and f"must be <= {MAX_SEED}" in line
    d[section][key] = MAX_SEED
    assert project.from_json(d).setting(f"{section}.{key}") == MAX_SEED


def test_the_largest_seed_trains(tmp_path):
    """torch and numpy both take MAX_SEED, also as the engine derives per-epoch seeds from it."""
    from workbench.training import events as ev
    from workbench.training.engine import Engine

    d = doc()
    d["training"].update(seed=MAX_SEED, epochs=1, tensorboard=False)
    d["data"].update(split_seed=MAX_SEED, batch_size=256)
    end = Engine(project.from_json(d), run_dir=tmp_path / "run").run()
    assert isinstance(end, ev.FinishedEvent), getattr(end, "message", end)


def test_a_bad_argument_names_the_layer_as_well_as_the_path(tmp_path, capsys):
    d = doc()
    d["model"]["layers"][2]["args"]["out_features"] = -3
    line = summary_error(tmp_path, capsys, json.dumps(d))
    assert "$.model.layers[2].args.out_features: layer 'fc' (Linear, #3): out_features must be >= 1, got -3" in line


def test_nested_layers_are_named_with_their_position():
    d = doc()
    d["model"]["layers"].insert(1, {"id": "res", "type": "Residual", "layers": [
        {"id": "inner", "type": "Linear", "args": {"out_features": 0}}, {"id": "odd", "type": "Relu"}]})
    with pytest.raises(SpecError) as err:
        project.from_json(d)
    text = str(err.value)
    assert "layer 'inner' (Linear, #2.1): out_features must be >= 1, got 0" in text
    assert "layer 'odd' (unknown type, #2.2): unknown layer type 'Relu'; did you mean 'ReLU'?" in text


@pytest.mark.parametrize("device", ["cuda:\u0661", "cuda:1\n", "cuda:", "cuda:12345", "CPU"])
def test_device_names_are_plain_ascii(device):
    with pytest.raises(SpecError, match=r"\$\.training\.device"):
        project.from_json(doc(training={"device": device}))


def test_a_template_name_is_never_a_path():
    with pytest.raises(WorkbenchError, match="no template"):
        templates.load("../templates/digits_cnn")
