"""A CSV project whose target is not the last column: the chosen column is what the model
learns (through the project file and `workbench train`), the header is read for the window's
picker, and a project left without its data file says so in words, in the CLI too."""
from __future__ import annotations

import json
import random

import pytest

from workbench.cli import main as cli
from workbench.data import bundle
from workbench.data.sources import tables
from workbench.errors import SpecError, WorkbenchError
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import project_file as project


def write_table(path, rows=60):
    """'species' (3 classes, first column) follows from x1; 'size' (last column) is noise."""
    rng = random.Random(0)
    lines = ["species,x1,x2,size"]
    for i in range(rows):
        label = i % 3
        lines.append(f"{'abc'[label]},{label * 2 + rng.random():.3f},{rng.random():.3f},{rng.randint(1, 90)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def csv_project(tmp_path, target):
    table = write_table(tmp_path / "table.csv")
    model = ModelSpec((3,), [LayerSpec("fc", "Linear", {"out_features": 3})])
    data = {"source": "csv", "path": str(table), "batch_size": 16}
    if target is not None:
        data["target"] = target
    proj = project.new("Table", model, data=data, training={"epochs": 2, "tensorboard": False})
    return project.save(proj, tmp_path / "table.wbproj")


def test_a_first_column_target_is_saved_loaded_and_used(tmp_path):
    path = csv_project(tmp_path, "species")
    assert json.loads(path.read_text())["data"]["target"] == "species"
    loaded = project.load(path)
    assert loaded.data.target == "species"
    task = bundle.load_data(loaded.data).task
    assert task.kind == "classification"
    assert list(task.class_names) == ["a", "b", "c"]  # the species letters, not the 'size' numbers
    assert tuple(task.input_shape) == (3,)  # x1, x2 and size are the features


def test_workbench_train_learns_the_chosen_column(tmp_path, capsys):
    path = csv_project(tmp_path, "species")
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("finished 2 epochs") and "best val acc" in out  # classes: the target is 'species'


def test_without_a_target_the_last_column_is_predicted(tmp_path):
    loaded = project.load(csv_project(tmp_path, None))
    task = bundle.load_data(loaded.data).task
    assert task.class_names is None or "a" not in task.class_names  # 'size': numbers, not the letters


def test_a_missing_target_column_names_the_columns(tmp_path):
    loaded = project.load(csv_project(tmp_path, "specis"))
    with pytest.raises(WorkbenchError, match=r"no column 'specis'; did you mean 'species'\?"):
        bundle.load_data(loaded.data)


def test_the_header_is_read_for_the_picker(tmp_path):
    assert tables.columns(write_table(tmp_path / "t.csv")) == ["species", "x1", "x2", "size"]
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b;c\n1;2;3\n4;5;6\n")
    assert tables.columns(semi) == ["a", "b", "c"]
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("1,2\n3,4\n")
    assert tables.columns(numbers) == []  # no header row: nothing to pick
    big = tmp_path / "big.csv"
    big.write_text("p,q\n" + "1,2\n" * 100_000)  # only the start is read
    assert tables.columns(big) == ["p", "q"]
    with pytest.raises(WorkbenchError, match="does not exist"):
        tables.columns(tmp_path / "gone.csv")


@pytest.mark.parametrize("source,what", [("csv", "the CSV source needs a file"),
                                         ("mnist", "the MNIST source needs a folder")])
def test_a_source_without_its_path_says_so_in_words(tmp_path, capsys, source, what):
    text = json.dumps({"format": "model-workbench/project", "version": 1, "name": "x",
                       "model": {"input": {"shape": [4]}, "layers": []}, "data": {"source": source}})
    (tmp_path / "p.wbproj").write_text(text)
    with pytest.raises(SpecError) as err:
        project.load(tmp_path / "p.wbproj")
    assert err.value.problems[0].path == "$.data.path"  # the place stays known to code
    assert cli.main(["summary", str(tmp_path / "p.wbproj")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"Data: {what}" in lines[0]
    assert "$.data" not in lines[0] and "needs a path" not in lines[0]
    assert "Browse" in lines[0] and "data.path" in lines[0]


def test_settings_changed_to_a_path_source_say_so_when_read():
    """The window sets the source before the path: reading says what is missing, no TypeError."""
    from workbench.project.settings import DataSettings

    with pytest.raises(WorkbenchError, match=r"^Data: the CSV source needs a file \(a table with a header row\)"):
        bundle.load_data(DataSettings(source="csv"))
