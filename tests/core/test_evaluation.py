"""The test split, separate validation / test files, the test metrics (checked against
scikit-learn's own functions on the same predictions) and ``workbench evaluate``."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn import metrics

from workbench.cli.main import main
from workbench.data import bundle as data
from workbench.data.bundle import load_data, split_indices
from workbench.data.sources import registry as sources
from workbench.errors import SpecError, WorkbenchError
from workbench.model import build
from workbench.project import templates
from workbench.project.settings import DataSettings
from workbench.training import evaluation
from workbench.training.engine import Engine
from workbench.training.predict import probabilities

# ---------------------------------------------------------------- the split


@pytest.mark.parametrize("section", [{"source": "digits"}, {"source": "iris", "split_seed": 7},
                                     {"source": "wine", "val_fraction": 0.35, "split_seed": 123}])
def test_without_a_test_split_train_and_validation_are_as_before(section):
    settings = DataSettings.from_json(section, "$.data", [])
    raw = sources.read(settings)
    train, val = split_indices(raw.split_targets(), settings.val_fraction, settings.split_seed, stratify=raw.stratify)
    for extra in ({}, {"test_fraction": 0.0}):
        b = load_data({**section, **extra})
        assert (b.train_index, b.val_index) == (train, val)  # the split the data layer always made
        assert b.test is None and b.test_index == [] and b.task.test_size == 0
        assert len(b.train) == len(train) and len(b.val) == len(val)
        with pytest.raises(WorkbenchError, match="no test data; set data.test_fraction"):
            b.loader("test")


def test_a_test_split_never_enters_training_or_validation():
    before = load_data({"source": "digits"})
    b = load_data({"source": "digits", "test_fraction": 0.25})
    train, val, test = set(b.train_index), set(b.val_index), set(b.test_index)
    assert not train & test and not val & test and not train & val
    assert train | val | test == set(range(1797))
    assert b.val_index == before.val_index  # validation stays the same examples
    assert abs(len(test) - 0.25 * 1797) <= 10 and b.task.test_size == len(b.test) == len(test)
    raw = sources.read(b.settings)
    counts = torch.bincount(raw.y[torch.as_tensor(b.test_index)], minlength=10)
    assert counts.min() >= 40  # stratified: every class has its share
    # the test tensors are the raw examples, normalised with the training part's statistics
    x_train = raw.x[torch.as_tensor(b.train_index)]
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    expected = (raw.x[torch.as_tensor(b.test_index)] - mean) / std
    assert torch.allclose(b.test.x, expected, atol=1e-5)
    assert load_data({"source": "digits", "test_fraction": 0.25}).test_index == b.test_index  # seeded
    assert load_data({"source": "digits", "test_fraction": 0.25, "split_seed": 1}).test_index != b.test_index
    assert sum(len(batch) for batch in b.loader("test").batch_sampler) == len(test)


def test_split_settings_are_checked_with_their_paths(tmp_path):
    cases = [({"source": "digits", "val_fraction": 0.5, "test_fraction": 0.5}, "$.data.test_fraction",
              "leaves almost nothing to train on"),
             ({"source": "csv", "path": "a.csv", "test_fraction": 0.2, "test_path": "b.csv"}, "$.data.test_fraction",
              "either test_fraction or test_path"),
             ({"source": "digits", "val_path": "v.csv"}, "$.data.val_path", "the digits source reads no file"),
             ({"source": "iris", "test_path": "t.csv"}, "$.data.test_path", "the iris source reads no file")]
    for section, path, words in cases:
        with pytest.raises(SpecError) as info:
            load_data(section)
        assert any(p.path == path and words in p.message for p in info.value.problems), (section, info.value)


def write_csv(path, rows, header=("a", "b", "label")):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


def test_separate_csv_files_are_validation_and_test_with_classes_matched_by_name(tmp_path):
    g = np.random.default_rng(0)
    train_rows = [(round(g.normal(), 3), round(g.normal() * 5, 3), c) for c in ("ant", "bee", "cat") * 20]
    write_csv(tmp_path / "train.csv", train_rows)
    write_csv(tmp_path / "val.csv", [(1.5, 2.0, "cat"), (0.5, -1.0, "ant"), (0.0, 3.0, "cat")])
    write_csv(tmp_path / "test.csv", [(2.0, 1.0, "cat"), (-1.0, 4.0, "bee")])  # no 'ant': indices would shift
    b = load_data({"source": "csv", "path": str(tmp_path / "train.csv"), "val_path": str(tmp_path / "val.csv"),
                   "test_path": str(tmp_path / "test.csv")})
    assert b.task.class_names == ("ant", "bee", "cat")
    assert (b.task.train_size, b.task.val_size, b.task.test_size) == (60, 3, 2)  # every row of train.csv trains
    assert b.val.y.tolist() == [2, 0, 2] and b.test.y.tolist() == [2, 1]
    x = torch.tensor([[a, bb] for a, bb, _ in train_rows], dtype=torch.float32)
    mean, std = x.mean(dim=0), x.std(dim=0)
    assert torch.allclose(b.test.x, (torch.tensor([[2.0, 1.0], [-1.0, 4.0]]) - mean) / std, atol=1e-5)
    # with test_fraction instead of a test file, the val file still replaces the validation split
    b2 = load_data({"source": "csv", "path": str(tmp_path / "train.csv"), "val_path": str(tmp_path / "val.csv"),
                    "test_fraction": 0.2})
    assert (b2.task.train_size, b2.task.val_size, b2.task.test_size) == (48, 3, 12)


def test_a_bad_separate_file_is_named(tmp_path):
    write_csv(tmp_path / "train.csv", [(i, i * 2, "ab"[i % 2]) for i in range(20)])
    write_csv(tmp_path / "other.csv", [(1, 2, "zebra"), (2, 3, "a")])
    write_csv(tmp_path / "wide.csv", [(1, 2, 3, "a"), (2, 3, 4, "b")], header=("a", "b", "c", "label"))
    base = {"source": "csv", "path": str(tmp_path / "train.csv")}
    # a CSV is read with data.path's encoders (tables.read_like): columns by name, classes by name
    with pytest.raises(WorkbenchError, match=r"data.test_path: .*other.csv line 2: target column 'label' holds "
                                             r"'zebra', a class train.csv does not have \(a, b\)"):
        load_data({**base, "test_path": str(tmp_path / "other.csv")})
    write_csv(tmp_path / "narrow.csv", [(1, "a"), (2, "b")], header=("a", "label"))
    with pytest.raises(WorkbenchError, match=r"data.val_path: .*narrow.csv: no column 'b', which train.csv has"):
        load_data({**base, "val_path": str(tmp_path / "narrow.csv")})
    wide = load_data({**base, "val_path": str(tmp_path / "wide.csv")})  # an extra column is not read
    assert wide.task.input_shape == (2,) and wide.task.val_size == 2
    with pytest.raises(WorkbenchError, match="missing.csv"):
        load_data({**base, "val_path": str(tmp_path / "missing.csv")})


def test_separate_image_folders(tmp_path):
    from PIL import Image

    def folder(root, counts):
        for name, n in counts.items():
            (root / name).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (40 * i % 255, 100 if name == "cat" else 0, 30)).save(root / name / f"{i}.png")
    folder(tmp_path / "train", {"ant": 4, "bee": 4, "cat": 4})
    folder(tmp_path / "test", {"bee": 2, "cat": 3})  # no 'ant' folder: torchvision would number 'bee' 0
    b = load_data({"source": "image_folder", "path": str(tmp_path / "train"), "test_path": str(tmp_path / "test")})
    assert b.task.test_size == 5 and [int(b.test[i][1]) for i in range(5)] == [1, 1, 2, 2, 2]
    assert tuple(b.test[0][0].shape) == (3, 8, 8)
    assert len(set(b.train_index) | set(b.val_index)) == 12  # the test folder took nothing from the training folder


# ---------------------------------------------------------------- metrics against scikit-learn

def trained_digits(tmp_path, **data_settings):
    proj = templates.load("digits_mlp")
    proj.data = replace(proj.data, **data_settings)
    proj.training = replace(proj.training, epochs=1, tensorboard=False)
    engine = Engine(proj, run_dir=tmp_path / "run")
    end = engine.run()
    return proj, engine, end


def model_outputs(model, dataset) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(dataset.x)


def test_the_finished_event_carries_the_test_metrics_of_the_final_model(tmp_path):
    proj, engine, end = trained_digits(tmp_path, test_fraction=0.2)
    assert end.kind == "finished" and end.evaluation is not None
    r = evaluation.Report.from_dict(end.evaluation)
    test = engine.data.test
    y = test.y.numpy()
    pred = model_outputs(engine.model, test).argmax(dim=1).numpy()
    p, rc, f, s = metrics.precision_recall_fscore_support(y, pred, labels=range(10), zero_division=0)
    assert r.split == "test" and r.size == len(y) == engine.data.task.test_size
    assert [row.precision for row in r.rows] == pytest.approx(p.tolist())
    assert [row.recall for row in r.rows] == pytest.approx(rc.tolist())
    assert [row.f1 for row in r.rows] == pytest.approx(f.tolist())
    assert [row.support for row in r.rows] == s.tolist()
    assert r.accuracy == pytest.approx(metrics.accuracy_score(y, pred))
    assert r.confusion == metrics.confusion_matrix(y, pred).tolist()
    for avg in ("macro", "weighted"):
        expected = metrics.precision_recall_fscore_support(y, pred, average=avg, zero_division=0)[:3]
        got = r.averages[avg]
        assert (got.precision, got.recall, got.f1) == pytest.approx(expected)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1]["event"] == "finished" and logged[-1]["evaluation"] == end.evaluation  # in the run log


def test_without_a_test_split_the_run_reports_validation_and_without_either_nothing(tmp_path):
    _, engine, end = trained_digits(tmp_path / "a")
    assert end.evaluation["split"] == "val" and end.evaluation["size"] == len(engine.data.val)
    _, _, end = trained_digits(tmp_path / "b", val_fraction=0.0)
    assert end.kind == "finished" and end.evaluation is None


def test_binary_curves_and_areas_match_scikit_learn():
    task = data.Task("classification", (3,), num_classes=2, class_names=("no", "yes"))
    g = np.random.default_rng(5)
    y = g.integers(0, 2, 300)
    logits = torch.tensor(g.normal(size=(300, 2)) + np.stack([np.zeros(300), y * 1.5], axis=1))
    scores = probabilities(logits, "CrossEntropyLoss").numpy()
    r = evaluation.report(y, scores, task, "test")
    fpr, tpr, _ = metrics.roc_curve(y, scores[:, 1])
    precision, recall, _ = metrics.precision_recall_curve(y, scores[:, 1])
    assert r.roc.area == pytest.approx(metrics.roc_auc_score(y, scores[:, 1]))
    assert r.pr.area == pytest.approx(metrics.average_precision_score(y, scores[:, 1]))
    assert r.roc.x == pytest.approx(fpr.tolist()) and r.roc.y == pytest.approx(tpr.tolist())
    assert r.pr.x == pytest.approx(recall.tolist()) and r.pr.y == pytest.approx(precision.tolist())
    assert r.accuracy == pytest.approx(metrics.accuracy_score(y, scores.argmax(axis=1)))
    one_class = evaluation.report(np.ones(10, dtype=int), scores[:10], task, "test")
    assert one_class.roc is None and "both classes" in one_class.note
    assert evaluation.Report.from_dict(json.loads(json.dumps(r.to_dict()))) == r  # JSON and back


def test_regression_metrics_match_scikit_learn():
    task = data.Task("regression", (4,), default_loss="MSELoss")
    g = np.random.default_rng(1)
    y = g.normal(size=200) * 3
    pred = y + g.normal(size=200)
    r = evaluation.report(y, pred, task, "val")
    assert r.mae == pytest.approx(metrics.mean_absolute_error(y, pred))
    assert r.rmse == pytest.approx(np.sqrt(metrics.mean_squared_error(y, pred)))
    assert r.r2 == pytest.approx(metrics.r2_score(y, pred))
    assert len(r.pairs) == 200 and r.pairs[0] == pytest.approx([y[0], pred[0]])
    assert any("R²" in line for line in r.lines())


def test_a_regression_run_reports_mae_rmse_r2(tmp_path):
    g = np.random.default_rng(2)
    rows = [(round(a, 3), round(b, 3), round(2 * a - b + 0.1 * g.normal(), 3)) for a, b in g.normal(size=(80, 2))]
    write_csv(tmp_path / "t.csv", rows, header=("a", "b", "y"))
    bundle = load_data({"source": "csv", "path": str(tmp_path / "t.csv"), "task": "regression",
                        "test_fraction": 0.25})
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    r = evaluation.evaluate(model, bundle, loss="MSELoss")
    with torch.no_grad():
        pred = model(bundle.test.x)[:, 0].numpy()
    y = bundle.test.y[:, 0].numpy()
    assert r.split == "test" and r.kind == "regression" and r.size == 20
    assert r.mae == pytest.approx(metrics.mean_absolute_error(y, pred), rel=1e-5)
    assert r.r2 == pytest.approx(metrics.r2_score(y, pred), rel=1e-5)


# ---------------------------------------------------------------- workbench evaluate

@pytest.fixture
def digits_project(tmp_path):
    proj, engine, end = trained_digits(tmp_path, test_fraction=0.2)
    from workbench.project import project_file

    project_file.save(proj, tmp_path / "d.wbproj")
    return tmp_path / "d.wbproj", tmp_path / "run" / "last.ckpt", engine


def test_cli_prints_the_table_and_writes_json(digits_project, tmp_path, capsys):
    path, ckpt, engine = digits_project
    out = tmp_path / "report.json"
    assert main(["evaluate", str(path), "--weights", str(ckpt), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    test = engine.data.test
    pred = model_outputs(engine.model, test).argmax(dim=1).numpy()
    f1 = metrics.f1_score(test.y.numpy(), pred, average=None)
    assert written["split"] == "test" and [r["f1"] for r in written["rows"]] == pytest.approx(f1.tolist())
    assert printed.startswith(f"test split: {len(test)} examples")
    assert "macro avg" in printed and "weighted avg" in printed and f"accuracy {written['accuracy']:.4f}" in printed
    assert f"wrote {out}" in printed
    assert main(["evaluate", str(path), "--weights", str(ckpt), "--split", "val"]) == 0
    assert capsys.readouterr().out.startswith(f"validation split: {len(engine.data.val)} examples")


def test_workbench_train_prints_the_final_models_test_metrics_where_there_is_a_test_split(tmp_path, capsys):
    from workbench.project import project_file

    proj = templates.load("digits_mlp")
    proj.data = replace(proj.data, test_fraction=0.2)
    proj.training = replace(proj.training, epochs=1)
    project_file.save(proj, tmp_path / "t.wbproj")
    assert main(["train", str(tmp_path / "t.wbproj"), "--out", str(tmp_path / "run"), "-q"]) == 0
    printed = capsys.readouterr().out
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["evaluation"]
    assert f"final weights on the test split: {logged['size']} examples" in printed
    assert "macro avg" in printed and f"accuracy {logged['accuracy']:.4f}" in printed
    proj.data = replace(proj.data, test_fraction=0.0)  # validation only: the summary line says it all
    project_file.save(proj, tmp_path / "v.wbproj")
    assert main(["train", str(tmp_path / "v.wbproj"), "--out", str(tmp_path / "run2"), "-q"]) == 0
    assert "test split" not in capsys.readouterr().out


def test_cli_bad_input_exits_2_with_one_error_line(digits_project, tmp_path, capsys):
    path, ckpt, _ = digits_project
    other = build.build_model(templates.load("digits_cnn").model)
    torch.save(other.state_dict(), tmp_path / "cnn.pth")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    no_test = tmp_path / "no_test.wbproj"
    no_test.write_text(path.read_text().replace('"test_fraction": 0.2', '"test_fraction": 0.0'))
    cases = [(["evaluate", str(path), "--weights", str(tmp_path / "cnn.pth")], "cnn.pth does not fit this model"),
             (["evaluate", str(path), "--weights", str(tmp_path / "junk.ckpt")], "junk.ckpt"),
             (["evaluate", str(path), "--weights", str(tmp_path / "none.ckpt")], "none.ckpt"),
             (["evaluate", str(no_test), "--weights", str(ckpt), "--split", "test"],
              "there is no test data; set data.test_fraction"),
             (["evaluate", str(path), "--weights", str(ckpt), "--json", str(tmp_path)], "is a folder"),
             (["evaluate", str(path), "--weights", str(ckpt), "--json", str(tmp_path / "no" / "r.json")], "r.json")]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (argv, err)
    assert not (tmp_path / "no").exists()
