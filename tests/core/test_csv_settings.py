"""CSV settings: column types (data.columns), missing values (data.missing, statistics from the
training rows only), the detected task and its override, errors naming the column and line, and
a second file read with the first file's encoders (tables.read_like)."""
from __future__ import annotations

import pytest
import torch

from workbench.cli import main as cli
from workbench.data import bundle
from workbench.data.sources import tables
from workbench.errors import SpecError, WorkbenchError
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import project_file as project
from workbench.project.settings import DataSettings


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def load(**data):
    return bundle.load_data({"val_fraction": 0.25, "normalize": False, **data})


def people(tmp_path, rows=40):
    """age (numbers, two gaps), city (text, one gap), code (whole numbers), score (target)."""
    lines = ["age,city,code,score"]
    for i in range(rows):
        age = "" if i in (3, 17) else str(20 + i)
        city = "" if i == 5 else ["paris", "rome", "oslo"][i % 3]
        lines.append(f"{age},{city},{i % 4},{'hi' if i % 2 else 'lo'}")
    return write(tmp_path / "people.csv", "\n".join(lines) + "\n")


def test_detected_types_one_hot_text_and_numeric_numbers(tmp_path):
    b = load(source="csv", path=str(people(tmp_path)))
    # age (1), city one-hot over (missing), oslo, paris, rome (4), code (1)
    assert b.feature_names == ("age", "city=(missing)", "city=oslo", "city=paris", "city=rome", "code")
    assert b.task.kind == "classification" and b.task.class_names == ("hi", "lo")


def test_column_types_change_the_inputs(tmp_path):
    path = str(people(tmp_path))
    b = load(source="csv", path=path, columns={"code": "categorical", "city": "ignore"})
    assert b.feature_names == ("age", "code=0", "code=1", "code=2", "code=3")
    x = torch.cat([b.train.x, b.val.x])
    assert set(x[:, 1:].sum(dim=1).tolist()) == {1.0}


def test_mean_fill_comes_from_the_training_rows_only(tmp_path):
    path = str(people(tmp_path))
    b = load(source="csv", path=path, columns={"city": "ignore"})
    ages = [20 + i for i in range(40) if i not in (3, 17)]
    train_ages = [20 + i for i in b.train_index if i not in (3, 17)]
    assert sum(train_ages) / len(train_ages) != pytest.approx(sum(ages) / len(ages))  # the split matters
    filled = {i: v for i, v in zip(b.train_index, b.train.x[:, 0].tolist())}
    filled.update(zip(b.val_index, b.val.x[:, 0].tolist()))
    assert filled[3] == pytest.approx(sum(train_ages) / len(train_ages))
    assert filled[17] == pytest.approx(sum(train_ages) / len(train_ages))


def test_mode_and_drop(tmp_path):
    path = str(people(tmp_path))
    mode = load(source="csv", path=path, missing="mode")
    assert "city=(missing)" not in mode.feature_names  # the gap took the most common city
    x = torch.cat([mode.train.x, mode.val.x])
    assert not torch.isnan(x).any() and set(x[:, 1:4].sum(dim=1).tolist()) == {1.0}
    drop = load(source="csv", path=path, missing="drop")
    assert drop.task.train_size + drop.task.val_size == 37  # rows 3, 5 and 17 left out


def test_the_task_is_detected_and_overridden(tmp_path):
    path = str(people(tmp_path))
    assert load(source="csv", path=path, target="code").task.kind == "classification"  # 4 whole numbers
    assert load(source="csv", path=path, target="code", task="regression").task.kind == "regression"
    assert load(source="csv", path=path, target="code", columns={"code": "numeric"}).task.kind == "regression"
    assert load(source="csv", path=path, target="age", columns={"age": "categorical"},
                missing="drop").task.num_classes == 37  # ages of the rows without gaps (3, 5, 17 left out)


@pytest.mark.parametrize("data,message", [
    ({"target": "city", "task": "regression"},
     r"people\.csv line 2: regression needs a numeric target but column 'city' holds 'paris'"),
    ({"columns": {"cty": "ignore"}},
     r"the CSV columns \(data\.columns\) name column 'cty', which the file does not have; did you mean 'city'\?"),
    ({"columns": {"city": "numeric"}}, r"people\.csv line 2: column 'city' is set to numeric but holds 'paris'"),
    ({"columns": {"score": "ignore"}}, r"the target column 'score' is set to ignore"),
    ({"columns": {"score": "categorical"}, "task": "regression"}, r"'score' is set to categorical but data\.task"),
    ({"columns": {"age": "ignore", "city": "ignore", "code": "ignore"}}, r"no feature columns besides the target"),
])
def test_errors_name_the_column_and_line(tmp_path, data, message):
    with pytest.raises(WorkbenchError, match=message):
        load(source="csv", path=str(people(tmp_path)), **data)


def test_a_column_all_missing_is_named(tmp_path):
    path = write(tmp_path / "gap.csv", "a,empty,y\n1,,x\n2,,y\n3,NA,x\n")
    with pytest.raises(WorkbenchError, match=r"column 'empty' is empty in every row; set it to ignore"):
        load(source="csv", path=str(path))
    assert load(source="csv", path=str(path), columns={"empty": "ignore"}, val_fraction=0).task.input_shape == (1,)


def test_drop_that_leaves_too_few_rows_says_so(tmp_path):
    path = write(tmp_path / "gaps.csv", "a,b,y\n1,,x\n,2,y\n3,,x\n")
    with pytest.raises(WorkbenchError, match=r"data\.missing is 'drop' and 0 of 3 rows have no missing cell"):
        load(source="csv", path=str(path), missing="drop")


def test_bad_settings_values_are_refused_at_load(tmp_path):
    from workbench.project.settings import DataSettings

    problems = []
    DataSettings.from_json({"source": "csv", "path": "x.csv", "columns": {"a": "text"}, "missing": "zero"},
                           "$.data", problems)
    said = {p.path: p.message for p in problems}
    assert said["$.data.columns"] == "columns.a must be one of 'numeric', 'categorical', 'ignore', got 'text'"
    assert said["$.data.missing"].startswith("missing must be one of 'mean', 'mode', 'drop'")


def test_the_settings_are_saved_and_the_cli_trains_on_them(tmp_path, capsys):
    path = people(tmp_path)
    model = ModelSpec((5,), [LayerSpec("fc", "Linear", {"out_features": 4})])
    proj = project.new("T", model, data={"source": "csv", "path": str(path), "target": "code",
                                         "columns": {"city": "ignore"}, "missing": "mode", "batch_size": 8},
                       training={"epochs": 1, "tensorboard": False})
    saved = project.save(proj, tmp_path / "t.wbproj")
    loaded = project.load(saved)
    assert loaded.data.columns == {"city": "ignore"} and loaded.data.missing == "mode"
    assert cli.main(["train", str(saved), "--out", str(tmp_path / "run")]) == 2  # 3 inputs, model takes 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "[3]" in err[0]
    bad = project.new("T", model, data={"source": "csv", "path": str(path), "columns": {"nope": "numeric"}})
    project.save(bad, tmp_path / "bad.wbproj")
    assert cli.main(["train", str(tmp_path / "bad.wbproj"), "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "'nope'" in err[0]


def test_a_second_file_is_read_with_the_first_files_encoders(tmp_path):
    path = people(tmp_path)
    test = write(tmp_path / "test.csv", "score,code,city,age,extra\nhi,1,rome,\nlo,2,,30,z\n".replace(
        "hi,1,rome,\n", "hi,1,rome,,q\n"))
    source = tables.read_csv(DataSettings(source="csv", path=str(path)))
    x, y = tables.read_like(test, source, train_idx=range(20))
    assert x.shape == (2, 6) and y.tolist() == [0, 1]  # 'hi', 'lo' as the first file numbered them
    train_ages = [20 + i for i in range(20) if i not in (3, 17)]
    assert x[0, 0].item() == pytest.approx(sum(train_ages) / len(train_ages))  # filled from the training rows
    assert x[1, 1].item() == 1.0  # city missing -> the (missing) category of the first file
    assert x[0, 4].item() == 1.0 and x[0, 5].item() == 1.0  # rome; code 1
    other = write(tmp_path / "other.csv", "age,city,code,score\n1,berlin,1,hi\n")
    with pytest.raises(WorkbenchError, match=r"other\.csv line 2: column 'city' holds 'berlin', a category "
                                             r"people\.csv does not have"):
        tables.read_like(other, source)
    lacking = write(tmp_path / "lacking.csv", "age,code,score\n1,1,hi\n")
    with pytest.raises(WorkbenchError, match=r"lacking\.csv: no column 'city'"):
        tables.read_like(lacking, source)
    new_class = write(tmp_path / "new.csv", "age,city,code,score\n1,rome,1,mid\n")
    with pytest.raises(WorkbenchError, match=r"new\.csv line 2: target column 'score' holds 'mid'"):
        tables.read_like(new_class, source)


def test_the_column_report_for_the_window(tmp_path):
    report = {r.name: r for r in tables.column_report(people(tmp_path))}
    assert (report["age"].detected, report["age"].missing, report["age"].as_target) == ("numeric", 2, "regression")
    assert (report["city"].detected, report["city"].missing, report["city"].distinct) == ("categorical", 1, 3)
    assert report["code"].as_target == "classification" and report["score"].as_target == "classification"


def test_an_unknown_setting_key_still_refused():
    with pytest.raises(SpecError):
        bundle.load_data({"source": "csv", "path": "x.csv", "colums": {}})
