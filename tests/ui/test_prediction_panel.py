"""The Prediction dock as a user meets it: after a real (short) training run, a validation
sample, a dropped PNG, a pasted table row and a checkpoint loaded from the run folder each
give bars of class probabilities; bad input gives one clear message, never a traceback;
without a trained model the panel says so instead of guessing with random weights."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from ui.prediction import panel as prediction_panel
from ui.training import dock as training_dock
from window_helpers import text_of, wait_end
from workbench.training import checkpoint, events as ev


@pytest.fixture(autouse=True)
def never_block_on_close(monkeypatch):
    monkeypatch.setattr(training_dock, "ask_stop", lambda parent: True)


def show_prediction(window):
    """View > Predict…: the dock comes forward (from behind the Training dock's tab)."""
    assert not window.prediction.on_screen  # behind the Training dock's tab: no data read yet
    assert not window.prediction.busy() and window.prediction.title.text() == ""
    action = next(a for a in window.menu("view").actions() if a.text().replace("&", "") == "Predict…")
    action.trigger()
    panel = window.prediction
    assert panel.on_screen
    return panel


def trained(qtbot, window, tmp_path, template: str | None = None, epochs: int = 1):
    """The window on a saved project (runs under tmp_path), trained for ``epochs``."""
    if template is not None:
        from workbench.project import project_file as projects, templates

        proj = templates.load(template)
        projects.save(proj, tmp_path / f"{template}.wbproj")
        assert window.open_file(str(tmp_path / f"{template}.wbproj"))
    project = window.doc.project
    project.path = tmp_path / "p.wbproj"
    project.training = replace(project.training, epochs=epochs, log_every=2, tensorboard=False)
    dock = window.training
    dock.panel.probe.wait()
    assert dock.start()
    assert isinstance(wait_end(qtbot, dock, timeout=180_000), ev.FinishedEvent)
    return dock


def drop_files(widget, paths: list[Path]) -> QDropEvent:
    """A drag from a file manager: urls, entering, moving over and dropped on ``widget``."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    mime.setText("\n".join(str(p) for p in paths))  # file managers send the paths as text too
    pos = QPoint(widget.width() // 2, widget.height() // 2)
    buttons, mods = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(widget, QDragMoveEvent(pos, Qt.DropAction.CopyAction, mime, buttons, mods))
    drop = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, buttons, mods)
    QApplication.sendEvent(widget, drop)
    return drop


def shown(panel) -> list[tuple[str, float, bool]]:
    assert panel.wait()
    return panel.bars.rows()


def model_argmax(model, x: torch.Tensor) -> int:
    import copy

    net = copy.deepcopy(model).eval()
    with torch.no_grad():
        return int(net(x.unsqueeze(0))[0].argmax())


def test_without_a_trained_model_the_panel_says_so_and_shows_the_sample(qtbot, window):
    panel = show_prediction(window)
    assert panel.wait()
    assert "none trained yet" in text_of(panel.model_label)
    assert panel.message.isVisible()
    assert panel.message.text() == prediction_panel.NO_MODEL  # no guess with random weights
    assert panel.bars.rows() == []
    assert panel.thumb.pixmap() is not None and not panel.thumb.pixmap().isNull()  # sample 0 and its label
    assert "validation sample 0" in text_of(panel.title) and "true:" in text_of(panel.title)
    from workbench.data.bundle import load_data

    assert panel.sample_spin.maximum() == len(load_data(window.doc.project.data).val) - 1


def test_digits_sample_png_drop_corrupt_file_and_checkpoint(qtbot, window, tmp_path, monkeypatch):
    dock = trained(qtbot, window, tmp_path)
    panel = show_prediction(window)
    assert panel.wait()
    assert "last training run" in text_of(panel.model_label)

    # a validation sample: the top bar is the model's own argmax, the true class is marked
    i = 17
    panel.sample_spin.setValue(i)
    rows = shown(panel)
    from workbench.data.bundle import load_data

    bundle = load_data(window.doc.project.data)
    x, y = bundle.val_example(i)
    names = bundle.task.class_names
    assert rows[0][0] == names[model_argmax(dock.live_model, x)]
    assert abs(sum(p for _, p in panel.bars.classes) - 1) < 1e-4
    assert len(rows) == 10 and [p for _, p, _ in rows] == sorted((p for _, p, _ in rows), reverse=True)
    assert [n for n, _, true in rows if true] == [names[int(y)]]
    assert f"true: {names[int(y)]}" in text_of(panel.title)
    live = list(panel.bars.classes)

    # a PNG of a digit dropped from a file manager onto the bars (not a widget that takes drops)
    from sklearn.datasets import load_digits

    digit = load_digits().images[bundle.val_index[i]]
    png = tmp_path / "my digit.png"
    Image.fromarray(np.round(digit * 255 / 16).astype(np.uint8)).resize((64, 64), Image.NEAREST).save(png)
    drop_files(panel.bars, [png])
    rows = shown(panel)
    assert rows and "my digit.png" in text_of(panel.title) and not panel.message.isVisible()
    assert abs(sum(p for _, p in panel.bars.classes) - 1) < 1e-4
    # dropped on the row field, a file is an image to predict too, not text pasted into the field
    drop_files(panel.row_edit, [png])
    assert shown(panel) and panel.row_edit.text() == ""

    # a corrupt file: one clear message naming it, no bars, no traceback
    bad = tmp_path / "broken.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[:2000])  # cut off, as a download that stopped
    drop_files(panel.bars, [bad])
    assert shown(panel) == []
    message = panel.message.text()
    assert panel.message.isVisible() and "broken.png" in message and "damaged" in message
    assert "Traceback" not in message and "\n" not in message
    assert window.load_errors == []

    # Open Image... with a text file
    note = tmp_path / "notes.txt"
    note.write_text("hello")
    monkeypatch.setattr(prediction_panel, "choose_image", lambda parent, folder: str(note))
    panel.open_button.click()
    assert shown(panel) == [] and "notes.txt: not an image file" in panel.message.text()

    # an index typed past the end cannot be asked: the spin box holds the range it says
    assert panel.sample_spin.maximum() == len(bundle.val) - 1
    assert f"0 to {len(bundle.val) - 1}" in panel.sample_range.text()

    # the run's checkpoint, loaded here, predicts exactly what the live model does
    ckpt = Path(window.doc.project.runs[-1]["dir"]) / checkpoint.LAST
    monkeypatch.setattr(prediction_panel, "choose_weights", lambda parent, folder: str(ckpt))
    panel.load_button.click()
    assert panel.wait()
    assert "last.ckpt" in text_of(panel.model_label) and panel.trained_button.isVisible()
    panel.sample_spin.setFocus()
    qtbot.keyClick(panel.sample_spin, Qt.Key.Key_Return)  # the sample shown again, with the loaded weights
    shown(panel)
    assert f"validation sample {i}" in text_of(panel.title)
    assert [n for n, _ in panel.bars.classes] == [n for n, _ in live]
    assert [p for _, p in panel.bars.classes] == pytest.approx([p for _, p in live], abs=1e-6)
    panel.trained_button.click()
    assert panel.wait() and "last training run" in text_of(panel.model_label)

    # weights of another model: the message names the file, the bars stay as they were
    other = tmp_path / "other.pth"
    torch.save({"w": torch.zeros(3)}, other)
    monkeypatch.setattr(prediction_panel, "choose_weights", lambda parent, folder: str(other))
    panel.load_button.click()
    assert panel.wait()
    assert "other.pth does not fit this model" in panel.message.text()
    assert "last training run" in text_of(panel.model_label)


def test_while_training_runs_the_panel_asks_to_pause(qtbot, window, tmp_path):
    project = window.doc.project
    project.path = tmp_path / "p.wbproj"
    project.training = replace(project.training, epochs=500, log_every=1, tensorboard=False)
    dock = window.training
    dock.panel.probe.wait()
    panel = show_prediction(window)
    assert panel.wait()
    assert dock.start()
    panel.predict_sample(2)
    assert panel.wait()
    assert panel.message.text() == prediction_panel.RUNNING and panel.bars.rows() == []
    qtbot.waitUntil(lambda: dock.series is not None and dock.series.n_steps >= 2, timeout=60_000)
    dock.pause()
    qtbot.waitUntil(lambda: dock.panel.state == "paused", timeout=20_000)
    panel.predict_sample(2)
    rows = shown(panel)  # a paused run's weights are a consistent copy
    assert len(rows) == 10 and not panel.message.isVisible()
    dock.stop()
    wait_end(qtbot, dock)
    qtbot.waitUntil(lambda: "last training run" in text_of(panel.model_label), timeout=10_000)
    assert panel.wait() and len(panel.bars.rows()) == 10  # predicted again with the finished model


def test_a_pasted_wine_row_gives_the_prediction_of_its_validation_sample(qtbot, window, tmp_path):
    trained(qtbot, window, tmp_path, "tabular_mlp", epochs=3)
    panel = show_prediction(window)
    assert panel.wait()
    from sklearn.datasets import load_wine
    from workbench.data.bundle import load_data

    bundle = load_data(window.doc.project.data)
    i = 6
    panel.sample_spin.setValue(i)
    sample = (shown(panel), list(panel.bars.classes))
    raw = load_wine().data[bundle.val_index[i]]
    panel.row_edit.setText("\t".join(str(float(v)) for v in raw))
    qtbot.keyClick(panel.row_edit, Qt.Key.Key_Return)
    rows = shown(panel)
    assert len(rows) == 3 and "the pasted row" in text_of(panel.title)
    assert [n for n, _ in panel.bars.classes] == [n for n, _ in sample[1]]
    assert [p for _, p in panel.bars.classes] == pytest.approx([p for _, p in sample[1]], abs=1e-5)
    assert abs(sum(p for _, p in panel.bars.classes) - 1) < 1e-5

    panel.row_edit.setText("13.2, 1.78, abc, 11.2")
    panel.row_button.click()
    assert shown(panel) == [] and panel.message.text() == "value 3 of the row ('abc') is not a number"
    panel.row_edit.setText(", ".join(["1"] * 12))
    panel.row_button.click()
    assert shown(panel) == []
    assert panel.message.text().startswith("the row has 12 values but the model expects 13")


def test_at_1024x700_every_bar_and_control_fits(qtbot, window, tmp_path):
    trained(qtbot, window, tmp_path)
    window.resize(1024, 700)
    panel = show_prediction(window)
    panel.predict_sample(4)
    assert panel.wait()
    qtbot.wait(50)  # layouts settle
    assert panel.bars.shown() == 10 == len(panel.bars.rows())  # top 10 of 10 classes, none cut
    for widget in (panel.load_button, panel.open_button, panel.row_button, panel.sample_spin, panel.row_edit):
        assert widget.isVisible() and widget.width() >= widget.minimumSizeHint().width(), widget
    assert panel.title.width() >= panel.title.fontMetrics().horizontalAdvance(text_of(panel.title))
    assert panel.thumb.pixmap() is not None and not panel.thumb.pixmap().isNull()


def test_a_new_project_leaves_nothing_of_the_last_prediction(qtbot, window, tmp_path):
    trained(qtbot, window, tmp_path)
    panel = show_prediction(window)
    assert panel.wait() and len(panel.bars.rows()) == 10
    from workbench.project import project_file as projects, templates

    projects.save(templates.load("tabular_mlp"), tmp_path / "wine.wbproj")
    assert window.open_file(str(tmp_path / "wine.wbproj"))
    assert panel.wait()
    assert panel.bars.rows() == [] and panel.message.text() == prediction_panel.NO_MODEL
    assert "validation sample 0" in text_of(panel.title)
    assert panel.sample_spin.maximum() == 44  # wine's 45 validation rows
    assert "13 numbers" in panel.row_edit.placeholderText()


def test_the_model_line_is_current_when_the_tab_comes_forward_right_after_a_run(window):
    # a run ends (the lock lifts) and the tab is brought forward before the panel's deferred
    # end-of-run handling ran (CI caught "the running training's" shown after the run had ended)
    window.doc.set_edit_lock("training runs")
    window.doc.set_edit_lock("")
    panel = show_prediction(window)
    assert "running training" not in text_of(panel.model_label)
    assert "none trained yet" in text_of(panel.model_label)
