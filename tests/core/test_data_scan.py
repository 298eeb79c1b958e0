"""The data scan behind the Data browser (workbench.data.scan): splits and counts as loading
makes them, statistics as loading uses them, problems named by file / line / column, the cache."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.data import bundle, scan
from workbench.data.sources.base import chosen_stats
from workbench.errors import WorkbenchError
from workbench.project.settings import DataSettings


@pytest.fixture(autouse=True)
def _fresh():
    scan.clear_memory()
    yield
    scan.clear_memory()


def image_folder(root, per_class=3, broken=()):
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            px = np.full((12, 10, 3), 40 * i + (100 if c == "dog" else 0), dtype=np.uint8)
            Image.fromarray(px).save(root / c / f"{i}.jpg")
    for name in broken:
        (root / name).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_digits_splits_and_counts_are_the_loaders():
    settings = DataSettings(source="digits")
    result = scan.scan(settings)
    loaded = bundle.load_data(settings)
    assert result.sizes == {"train": loaded.task.train_size, "val": loaded.task.val_size, "test": 0}
    assert result.train == loaded.train_index and result.val == loaded.val_index
    y = torch.as_tensor(result.targets)
    assert result.class_counts("train") == torch.bincount(y[loaded.train_index], minlength=10).tolist()
    assert result.mean == pytest.approx(loaded.stats["mean"]) and result.std == pytest.approx(loaded.stats["std"])
    assert len(result.class_names) == 10 and result.findings == []


def test_a_second_scan_of_an_unchanged_folder_is_a_cache_hit_and_a_changed_file_is_not(tmp_path):
    root = image_folder(tmp_path / "pics")
    settings = DataSettings(source="image_folder", path=str(root))
    first = scan.scan(settings, cache_dir=tmp_path / "cache")
    assert not first.cached and first.sizes["train"] + first.sizes["val"] == 6
    assert scan.scan(settings, cache_dir=tmp_path / "cache").cached
    scan.clear_memory()  # a new process: the file on disk answers
    assert scan.scan(settings, cache_dir=tmp_path / "cache").cached
    target = root / "cat" / "0.jpg"
    Image.fromarray(np.zeros((12, 10, 3), dtype=np.uint8)).save(target)
    os.utime(target, ns=(1, 1))
    assert not scan.scan(settings, cache_dir=tmp_path / "cache").cached


def test_corrupt_images_are_listed_by_path_and_statistics_come_from_the_training_pixels(tmp_path):
    root = image_folder(tmp_path / "pics", broken=("cat/bad.jpg", "dog/worse.jpg"))
    result = scan.scan(DataSettings(source="image_folder", path=str(root), val_fraction=0.0))
    first = result.first_problem
    assert first.severity == "error" and first.path == str(root / "cat" / "bad.jpg")
    assert str(root / "cat" / "bad.jpg") in first.message
    assert {f.path for f in result.findings} >= {str(root / "cat" / "bad.jpg"), str(root / "dog" / "worse.jpg")}
    assert result.counted["broken images"] == 2
    assert len(result.mean) == 3 and result.stat_names == ["red", "green", "blue"]
    assert 0.0 < result.mean[0] < 1.0


def test_an_empty_class_folder_is_named(tmp_path):
    root = image_folder(tmp_path / "pics")
    (root / "zebra").mkdir()
    result = scan.scan(DataSettings(source="image_folder", path=str(root)))
    assert result.first_problem.path == str(root / "zebra")
    assert "holds no images" in result.first_problem.message


def test_a_one_example_class_is_named(tmp_path):
    root = image_folder(tmp_path / "pics")
    (root / "emu").mkdir()
    Image.fromarray(np.zeros((12, 10, 3), dtype=np.uint8)).save(root / "emu" / "0.png")
    result = scan.scan(DataSettings(source="image_folder", path=str(root)))
    assert any("'emu' has only 1 example" in f.message for f in result.findings)


def test_missing_csv_cells_are_named_by_line_and_column(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("a,b,label\n1,2,x\n3,,y\n5,6,x\nNaN,8,y\n")
    result = scan.scan(DataSettings(source="csv", path=str(f)))
    first = result.first_problem
    assert (first.line, first.column) == (3, "b") and "2 missing cells in all" in first.message
    assert any(p.line == 5 and p.column == "a" for p in result.findings)
    rows = scan.samples(DataSettings(source="csv", path=str(f)), [0], result)
    assert rows[0].cells == ["1", "2", "x"] and result.columns == ["a", "b", "label"]


def test_a_reader_refusal_is_the_first_problem(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("a,label\n1,x\n2,y\n")
    result = scan.scan(DataSettings(source="csv", path=str(f), task="regression"))
    assert result.kind == "none" and result.first_problem.severity == "error"
    assert "'label'" in result.first_problem.message and str(f) in result.first_problem.message


def test_progress_is_reported_and_cancel_stops(tmp_path):
    root = image_folder(tmp_path / "pics")
    seen = []
    scan.scan(DataSettings(source="image_folder", path=str(root)), progress=lambda d, t, s: seen.append((d, t)))
    assert (6, 6) in seen
    scan.clear_memory()
    with pytest.raises(scan.ScanCancelled):
        scan.scan(DataSettings(source="image_folder", path=str(root)), cancelled=lambda: True)


def test_data_mean_and_std_replace_the_computed_normalisation():
    settings = DataSettings(source="iris", mean=[0.0, 0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0, 2.0])
    loaded = bundle.load_data(settings)
    assert loaded.stats == {"mean": [0.0] * 4, "std": [1.0, 1.0, 1.0, 2.0]}
    raw_first = bundle.load_data(DataSettings(source="iris", normalize=False)).train[0][0]
    assert torch.allclose(loaded.train[0][0], raw_first / torch.tensor([1.0, 1.0, 1.0, 2.0]))
    with pytest.raises(WorkbenchError, match=r"data.mean has 2 value\(s\) but the data has 4"):
        bundle.load_data(DataSettings(source="iris", mean=[0.0, 1.0]))
    assert chosen_stats(DataSettings(), [1.0], [2.0]) == ([1.0], [2.0])


def test_mean_and_std_are_checked_at_load():
    problems = []
    DataSettings.from_json({"mean": ["x"], "std": [0]}, "$.data", problems)
    assert [p.path for p in problems] == ["$.data.mean", "$.data.std"]
    assert "std must be >= 1e-12, got 0" in problems[1].message


def test_data_mean_and_std_reach_an_image_folders_transform(tmp_path):
    root = image_folder(tmp_path / "pics")
    loaded = bundle.load_data(DataSettings(source="image_folder", path=str(root), mean=[0.1, 0.2, 0.3],
                                           std=[0.5, 0.5, 0.5]))
    assert loaded.stats == {"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.5, 0.5]}
    with pytest.raises(WorkbenchError, match=r"data.std has 1 value\(s\) but the data has 3 channels"):
        bundle.load_data(DataSettings(source="image_folder", path=str(root), std=[0.5]))


def test_samples_of_digits_are_their_images_and_labels():
    settings = DataSettings(source="digits")
    result = scan.scan(settings)
    got = scan.samples(settings, result.val[:3], result)
    assert [s.position for s in got] == result.val[:3]
    assert [s.label for s in got] == [result.class_names[result.targets[p]] for p in result.val[:3]]
    assert got[0].image.shape == (8, 8, 1) and got[0].image.dtype == np.uint8 and got[0].image.max() > 200
