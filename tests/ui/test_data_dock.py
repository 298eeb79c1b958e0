"""The Data dock (ui.data): samples with their labels, class balance, split sizes, statistics
with one click to normalise with them, the first problem named, the scan off the UI thread and
cached."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from workbench.data import bundle, scan


@pytest.fixture(autouse=True)
def _fresh_scan_memory():
    scan.clear_memory()
    yield
    scan.clear_memory()


def show_data(qtbot, window):
    """Bring the Data dock forward and wait for its scan and first page."""
    dock = window.data
    window.docks["Data"].show()
    window.docks["Data"].raise_()
    qtbot.waitUntil(lambda: dock.result is not None and not dock.busy(), timeout=60_000)
    dock.wait()
    qtbot.wait(10)
    return dock


def set_data(window, **values):
    form = window.training.panel.form
    for name, value in values.items():
        form.set_value("data", name, value)


def test_digits_shows_ten_classes_with_the_real_split_counts(qtbot, window):
    dock = show_data(qtbot, window)
    loaded = bundle.load_data(window.doc.project.data)
    y = torch.as_tensor(dock.result.targets)
    train_counts = torch.bincount(y[loaded.train_index], minlength=10).tolist()
    val_counts = torch.bincount(y[loaded.val_index], minlength=10).tolist()
    assert dock.chart.counts["train"] == train_counts and dock.chart.counts["val"] == val_counts
    assert len(dock.chart.bars) == 2 and len(dock.result.class_names) == 10
    heights = dock.chart.bars[0].opts["height"]
    assert list(heights) == train_counts
    sizes = dock.stats.sizes.text()
    assert f"{loaded.task.train_size:,}" in sizes and f"{loaded.task.val_size:,}" in sizes
    assert dock.browser.grid.count() == 48  # the first page of thumbnails
    assert not dock.banner.isVisible()


def test_filter_by_class_shows_only_that_class(qtbot, window):
    dock = show_data(qtbot, window)
    dock.browser.set_class(7)
    qtbot.waitUntil(lambda: dock.browser.grid.count() > 0, timeout=20_000)
    dock.wait()
    qtbot.wait(10)
    labels = dock.browser.shown_labels()
    assert labels and set(labels) == {"7"}
    assert len(dock.browser.positions()) == dock.result.class_counts("train")[7]
    dock.browser.set_class(None)  # back to every class
    dock.wait()
    qtbot.waitUntil(lambda: len(set(dock.browser.shown_labels())) > 1, timeout=20_000)


def test_a_folder_with_a_corrupt_jpeg_names_its_path(qtbot, window, tmp_path):
    root = tmp_path / "pics"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((10, 10, 3), 30 * i, dtype=np.uint8)).save(root / c / f"{i}.jpg")
    bad = root / "dog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    dock = show_data(qtbot, window)
    set_data(window, source="image_folder", path=str(root))
    qtbot.waitUntil(lambda: dock.result is not None and dock.result.kind == "images"
                    and dock.result.description.startswith("image folder"), timeout=60_000)
    dock.wait()
    assert dock.banner.isVisible()
    assert str(bad) in dock.banner.text() and "Problem" in dock.banner.text()
    assert dock.result.class_names == ["cat", "dog"]


def test_one_click_sets_data_mean_and_std_and_undo_restores(qtbot, window):
    dock = show_data(qtbot, window)
    assert window.doc.project.data.mean is None and window.doc.project.data.std is None
    assert dock.stats.use_button.isEnabled()
    dock.stats.use_button.click()
    data = window.doc.project.data
    assert data.mean == pytest.approx(dock.result.mean) and data.std == pytest.approx(dock.result.std)
    assert len(data.mean) == 1  # digits: one channel
    assert not dock.stats.use_button.isEnabled() and "In use" in dock.stats.note.text()
    assert bundle.load_data(data).stats["mean"] == pytest.approx(dock.result.mean)
    window.doc.undo_stack.undo()
    assert window.doc.project.data.mean is None and window.doc.project.data.std is None
    assert dock.stats.use_button.isEnabled()
    window.doc.undo_stack.redo()
    assert window.doc.project.data.mean == pytest.approx(dock.result.mean)


def test_a_second_scan_hits_the_cache_and_settings_changes_rescan(qtbot, window):
    dock = show_data(qtbot, window)
    assert not dock.result.cached
    started = dock.scans
    dock.scan_now()
    dock.wait()
    qtbot.waitUntil(lambda: not dock.busy(), timeout=20_000)
    assert dock.scans == started + 1 and dock.result.cached
    assert "from the cache" in dock.status.text()
    set_data(window, val_fraction=0.5)  # a data setting: a new scan with the new split
    qtbot.waitUntil(lambda: dock.scans == started + 2, timeout=5_000)
    dock.wait()
    qtbot.waitUntil(lambda: not dock.busy() and dock.result.sizes["val"] > 800, timeout=60_000)


def test_a_table_shows_rows(qtbot, window):
    dock = show_data(qtbot, window)
    set_data(window, source="iris")
    qtbot.waitUntil(lambda: dock.result is not None and dock.result.kind == "table", timeout=60_000)
    dock.wait()
    qtbot.waitUntil(lambda: dock.browser.table.rowCount() > 0, timeout=20_000)
    assert dock.browser.views.currentWidget() is dock.browser.table
    assert dock.browser.table.columnCount() == 5  # the class and four measurements
    assert dock.stats.table.rowCount() == 4


def test_an_empty_class_folder_is_named_in_the_banner(qtbot, window, tmp_path):
    root = tmp_path / "pics"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((10, 10, 3), 30 * i, dtype=np.uint8)).save(root / c / f"{i}.png")
    (root / "zebra").mkdir()
    dock = show_data(qtbot, window)
    set_data(window, source="image_folder", path=str(root))
    qtbot.waitUntil(lambda: dock.result is not None and dock.result.description.startswith("image folder"),
                    timeout=60_000)
    dock.wait()
    assert dock.banner.isVisible() and str(root / "zebra") in dock.banner.text()
    assert "holds no images" in dock.banner.text()
