"""The Training dock as a user sees it (issue 13): nothing of the last project after New /
Open, a failed run's banner that says one sentence and can be closed, Resume opening the
newest run, Stop that says so at once, plot text that neither overlaps nor clips, a legend
off the curves, Save PNG at 2x with legend and run labels, evaluation of table data."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage

from ui.training import dock as training_dock
from ui.training.evaluation import EvaluationPanel
from ui.training.plots import live_plots as plots_module
from ui.training.plots.live_plots import mark_label, stagger
from ui.training.plots.overlay import Overlay
from ui.training.plots.series import RunSeries
from window_helpers import short_runs, text_of, wait_end
from workbench.project import templates
from workbench.training import events as ev
from workbench.training.samples import Sample, SampleGrid, order


@pytest.fixture(autouse=True)
def never_block_on_close(monkeypatch):
    monkeypatch.setattr(training_dock, "ask_stop", lambda parent: True)


@pytest.fixture
def trainer(window, tmp_path):
    return short_runs(window, tmp_path, epochs=1)


def steady_series(n=200, lr=0.003, spe=50) -> RunSeries:
    s = RunSeries(steps_per_epoch=spe)
    s.add_steps(list(range(1, n + 1)), list(np.linspace(3.0, 0.2, n)), [lr] * n, list(np.arange(1, n + 1) / 10))
    for e in range(1, n // spe + 1):
        s.add_epoch(e, e * spe, e * spe / 10, 1.0 / e, 1.1 / e, 0.5 + 0.1 * e)
    return s


# ---------------------------------------------------------------- problem 1: stale state

def test_a_new_project_shows_nothing_of_the_last_run(qtbot, window, trainer):
    trainer.plots.set_log(True)
    trainer.start()
    end = wait_end(qtbot, trainer)
    assert isinstance(end, ev.FinishedEvent)
    panel = trainer.panel
    assert "parameters trainable" in text_of(panel.trainable) and "epoch 1" in text_of(panel.trainable)
    assert panel.status.text().startswith("Finished") and panel.bar.value() > 0
    window.doc.replace_project(templates.load("digits_mlp"))  # what File > New / Open do
    assert panel.status.text() == "Ready." and panel.status.toolTip() == ""
    assert text_of(panel.trainable) == "" and panel.epoch_line == ""
    assert panel.bar.value() == 0 and not panel.banner.isVisible()
    # the plots are empty, with the empty plot's range (on the log axis too), not the last run's
    for plot in (trainer.plots.loss_plot, trainer.plots.lr_plot):
        (x0, x1), (y0, y1) = plot.getViewBox().viewRange()
        assert (x0, x1) == pytest.approx((0.0, 1.0)) and (y0, y1) == pytest.approx((0.0, 1.0))
    assert not trainer.plots.raw.xData.size if trainer.plots.raw.xData is not None else True
    assert "No evaluation yet" in text_of(trainer.evaluation.title)


# ---------------------------------------------------------------- problem 2: the failure banner

def test_a_checkpoint_of_another_model_is_one_sentence_with_details_behind_a_link(qtbot, window, trainer,
                                                                                   monkeypatch):
    trainer.start()
    end = wait_end(qtbot, trainer)
    ckpt = end.run_dir + "/last.ckpt"
    other = templates.load("resnet18_transfer")
    other.path = window.doc.project.path.with_name("other.wbproj")
    other.training = replace(other.training, epochs=1, tensorboard=False)
    window.doc.replace_project(other)
    monkeypatch.setattr(training_dock, "choose_checkpoint", lambda parent, folder: ckpt)
    trainer.resume_from()
    failed = wait_end(qtbot, trainer)
    assert isinstance(failed, ev.FailedEvent)
    banner = trainer.panel.banner
    said = text_of(banner)
    assert banner.isVisible()
    assert "was made for a different model (" in said and "layers do not match, e.g. " in said
    assert "pick a checkpoint of this project" in said
    assert "Show the error details" in said
    assert "Missing key" not in said and said.count(".weight") == 0  # no list of state_dict keys
    assert len(failed.message) < 300
    assert "entries of this model are not in the checkpoint" in failed.detail
    assert "backbone.layer1.0.conv1.weight" in failed.detail  # the whole list is behind the link
    shown = []
    monkeypatch.setattr(training_dock, "show_details", lambda parent, message, detail: shown.append(detail))
    banner.linkActivated.emit("details")
    assert banner.details_button.isVisible()  # also a button, in sight when the text scrolls
    banner.details_button.click()
    assert shown == [failed.detail, failed.detail]
    # the banner wraps within a few lines and leaves the plots their room
    assert banner.height() <= banner.maximumHeight() <= 5 * banner.fontMetrics().lineSpacing() + 12
    assert trainer.plots.view.height() > 80
    banner.close_button.click()
    assert not banner.isVisible()


def test_a_long_failure_wraps_in_a_banner_of_bounded_height(qtbot, window, trainer):
    trainer.panel.show_failure("a very long message " * 200, True)
    qtbot.waitUntil(lambda: trainer.panel.banner.isVisible())
    banner = trainer.panel.banner
    assert banner.height() <= banner.maximumHeight()
    assert trainer.tabs.height() > 150  # the plots are not squashed to a sliver
    assert banner.label.wordWrap()


def test_resume_from_checkpoint_opens_the_newest_run(window, tmp_path):
    project = window.doc.project
    project.path = tmp_path / "p.wbproj"
    runs = tmp_path / "p.runs"
    for name in ("run-1", "run-2", "run-3"):
        (runs / name).mkdir(parents=True)
        (runs / name / "last.ckpt").write_bytes(b"x")
    project.runs = [{"dir": str(runs / "run-1"), "status": "stopped"},
                    {"dir": str(runs / "run-2"), "status": "finished"},
                    {"dir": str(runs / "run-3"), "status": "failed"}]
    assert window.training._checkpoint_folder() == str(runs / "run-3" / "last.ckpt")
    project.runs = []  # no record (a copied project): the newest folder on disk
    import os
    os.utime(runs / "run-1", (1, 1))
    os.utime(runs / "run-3", (2, 2))
    assert window.training._checkpoint_folder() == str(runs / "run-2" / "last.ckpt")


# ---------------------------------------------------------------- problem 17: Stop

def test_stop_says_stopping_at_once_and_stops_within_a_step(qtbot, window, trainer):
    window.doc.project.training = replace(window.doc.project.training, epochs=20)
    trainer.start()
    qtbot.waitUntil(lambda: trainer.series is not None and trainer.series.n_steps >= 3, timeout=30_000)
    trainer.panel.stop_button.click()
    # said before any event is handled: the button and the status line
    assert trainer.panel.stop_button.text() == "Stopping…" and not trainer.panel.stop_button.isEnabled()
    assert trainer.panel.status.text().startswith("Stopping after the current step")
    end = wait_end(qtbot, trainer, timeout=20_000)
    assert isinstance(end, ev.StoppedEvent)
    assert trainer.panel.stop_button.text() == "Stop"


# ---------------------------------------------------------------- problem 8: plot text

def test_mark_labels_show_the_layer_name_and_stagger_when_close():
    assert mark_label("freeze backbone.layer3") == "freeze layer3"
    assert mark_label("unfreeze conv2d_1") == "unfreeze conv2d_1" and mark_label("lr 0.01") == "lr 0.01"
    assert stagger([(0, 50), (10, 60), (20, 70), (200, 250)]) == [0, 1, 2, 0]
    assert stagger([(0, 50), (10, 60), (20, 70)], levels=2) == [0, 1, None]  # no room: hidden, not overlapped


def test_marks_close_together_neither_overlap_nor_leave_the_plot(live, qtbot):
    s = steady_series()
    marks = ((100, "freeze conv2d_1"), (102, "lr 0.01"), (104, "unfreeze backbone.layer4"), (195, "lr 0.001"))
    for step, text in marks:
        s.add_mark(step, step / 10, text)
    live.begin(s)
    for m in s.marks:
        live.add_mark(m)
    live.redraw()
    qtbot.wait(50)
    rects = live.mark_label_rects()
    assert len(rects) == 4
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not a.intersects(b), (a, b)
    plot_area = live.loss_plot.getViewBox().sceneBoundingRect()
    for r in rects:
        assert plot_area.left() - 1 <= r.left() and r.right() <= plot_area.right() + 1, (r, plot_area)


def test_the_legend_is_outside_the_plots(live, qtbot):
    live.begin(steady_series())
    live.set_overlays([Overlay("/r1", "run 1 (finished, acc 0.950): lr 0.01, batch 32, froze conv1 at step 40")])
    live.overlay_loaded("/r1", steady_series(lr=0.01))
    live.redraw()
    qtbot.wait(20)
    view = live.view.geometry()
    for legend in (live.legend, live.overlay_legend):
        assert legend.isVisible()
        assert not legend.geometry().intersects(view)  # under the plots, never over a curve
    assert "per step" in text_of(live.legend) and "validation" in text_of(live.legend)
    # earlier runs' labels are whole (wrapped, not cut on the left)
    assert "run 1 (finished, acc 0.950): lr 0.01, batch 32, froze conv1 at step 40" in text_of(live.overlay_legend)
    assert live.overlay_legend.wordWrap()


def test_lr_ticks_fit_a_narrow_plot_and_a_constant_lr_has_a_scale(live, qtbot):
    live.resize(560, 260)
    live.begin(steady_series(n=900, lr=0.003, spe=100))
    live.redraw()
    qtbot.wait(20)
    axis = live.lr_plot.getAxis("bottom")
    (x0, x1), width = live.lr_plot.getViewBox().viewRange()[0], live.lr_plot.getViewBox().width()
    labelled = sorted(v for _, values in axis.tickValues(x0, x1, width) for v in values)
    assert len(labelled) >= 2
    gaps_px = np.diff(labelled) / (x1 - x0) * width
    assert gaps_px.min() >= 40  # room for "800" beside "600"
    y0, y1 = live.lr_plot.getViewBox().viewRange()[1]
    assert y0 <= 0.0 and 0.003 < y1 < 0.01  # a constant rate has a scale from the first step
    ticks = [v for _, values in live.lr_plot.getAxis("left").tickValues(y0, y1, 100) for v in values]
    assert any(0 < v <= 0.003 for v in ticks)


def test_log_loss_labels_are_plain_values_that_fit(live, qtbot):
    live.resize(560, 260)
    live.begin(steady_series(n=900))  # loss 3.0 down to 0.2
    live.set_log(True)
    live.redraw()
    qtbot.wait(20)
    axis, box = live.loss_plot.getAxis("left"), live.loss_plot.getViewBox()
    (y0, y1), height = box.viewRange()[1], box.height()
    levels = axis.tickValues(y0, y1, height)
    labels = [label for spacing, values in levels for label in axis.tickStrings(values, 1, spacing or 1)]
    values = sorted(float(label) for label in labels)  # plain numbers: no "3·10²", no "316" (10^2.5)
    assert len(values) >= 2 and len(values) * 18 <= height + 18  # every label has its row
    for v in values:
        mantissa = v / 10 ** np.floor(np.log10(v))
        assert round(mantissa, 6) in (1, 2, 3, 4, 5, 6, 7, 8, 9)  # 1-2-5 (or 1..9) within a decade
    assert values[0] <= 0.3 and values[-1] >= 2  # the labels span the data


def test_earlier_runs_learning_rate_is_drawn(live):
    live.begin(steady_series(lr=0.003))
    live.set_overlays([Overlay("/r1", "run 1")])
    live.overlay_loaded("/r1", steady_series(lr=0.01))
    live.redraw()
    drawn = [item.yData for item in live.lr_plot.listDataItems() if item.isVisible() and item.yData is not None]
    assert any(len(y) and np.allclose(y, 0.01) for y in drawn)


# ---------------------------------------------------------------- problem 16: Save PNG

def test_save_png_is_twice_the_size_with_legend_and_run_labels(live, tmp_path, monkeypatch):
    s = steady_series()
    s.add_mark(100, 10.0, "freeze conv1")
    live.begin(s)
    live.add_mark(s.marks[0])
    live.set_overlays([Overlay("/r1", "run 1 (stopped): lr 0.01")])
    live.overlay_loaded("/r1", steady_series(lr=0.01))
    png = tmp_path / "plots.png"
    monkeypatch.setattr(plots_module, "choose_save_path", lambda *a: str(png))
    live.png_button.click()
    image = QImage(str(png))
    figure = live.figure.size()
    assert (image.width(), image.height()) == (2 * figure.width(), 2 * figure.height())
    assert image.width() >= 1900
    # not blank: many colours, and the legend rows (below the plots) have ink
    pixels = np.array([[image.pixel(x, y) for x in range(0, image.width(), 7)] for y in range(0, image.height(), 7)])
    assert len(np.unique(pixels)) > 20
    legend_top = 2 * live.legend.geometry().top()
    ink = [QColor(image.pixel(x, y)).lightness() < 200 for y in range(legend_top, image.height(), 2)
           for x in range(0, image.width(), 3)]
    assert sum(ink) > 100
    live.save_png(tmp_path / "big.png", scale=3)
    assert QImage(str(tmp_path / "big.png")).width() == 3 * figure.width()


# ---------------------------------------------------------------- problem 9: evaluation of table data

def test_table_data_evaluation_shows_whole_class_names_and_cards_apart(qtbot):
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.resize(640, 260)
    panel.show()
    qtbot.waitExposed(panel)
    names = ["class_0", "class_1", "class_2"]
    samples = [Sample(i, i % 3, (i + 1) % 3 if i < 4 else i % 3, 0.6 + i / 40, None,
                      "14.2, 1.71, 2.43, 15.6, 127, 2.8, 3.06, 0.28, 2.29, 5.64, 1.04, 3.92, 1065")
               for i in range(9)]
    panel.show_epoch(2, 0.8, [[10, 2, 0], [1, 12, 1], [0, 0, 9]], names, SampleGrid(2, names, order(samples)))
    qtbot.wait(20)
    texts = panel.matrix.texts()
    shown = [t.text for t in texts]
    assert not any("…" in text for text in shown)  # nothing cut ("clas" before)
    rows = [t for t in texts if t.rect.right() < panel.matrix._geometry()[0].left() and t.text != "true"]
    assert [t.text for t in rows] == names  # rows: the whole names
    columns = [t.text for t in texts if t.rect.bottom() < panel.matrix._geometry()[0].top() and t.text != "predicted"]
    assert len(set(columns)) == 3 and all(name.endswith(c) for name, c in zip(names, columns))
    true = next(t for t in texts if t.text == "true")
    for t in texts:
        if t is not true:
            assert not t.rect.intersects(true.rect), t.text
    area, _ = panel.matrix._geometry()
    for t in texts:
        assert not t.rect.intersects(area), t.text
        assert panel.matrix.rect().contains(t.rect), t.text
    tiles = panel.samples.tiles
    assert len(tiles) == 9
    for i, a in enumerate(tiles):
        assert a.height() >= a.layout().totalHeightForWidth(a.width())  # its text fits it
        for b in tiles[i + 1:]:
            assert not a.geometry().intersects(b.geometry())


# ---------------------------------------------------------------- small windows (problem 5)

def visible_width(widget) -> int:
    """How much of a widget's width its ancestors let the user see."""
    from PySide6.QtCore import QRect
    rect = QRect(widget.mapTo(widget.window(), widget.rect().topLeft()), widget.size())
    parent = widget.parentWidget()
    while parent is not None:
        rect = rect.intersected(QRect(parent.mapTo(parent.window(), parent.rect().topLeft()), parent.size()))
        parent = parent.parentWidget()
    return rect.width()


def test_at_1024x700_the_settings_fold_into_one_column_and_nothing_is_cut(qtbot, window):
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.training.panel.form.columns_shown == 1, timeout=5_000)
    dock, form = window.training, window.training.panel.form
    for label in form.labels.values():
        field = label.buddy()
        if field.isVisible():
            assert visible_width(field) >= field.minimumSizeHint().width(), label.text()
            assert visible_width(label) >= label.minimumSizeHint().width(), label.text()
    assert dock.tabs.width() >= 560  # the plots keep room to read
    window.resize(1920, 1080)
    qtbot.waitUntil(lambda: form.columns_shown == 2, timeout=5_000)
    assert dock.split.sizes()[0] >= dock.panel.full_width(2)


def test_a_dragged_splitter_keeps_the_widths_the_person_chose(qtbot, window):
    dock = window.training
    dock.split.moveSplitter(300, 1)  # as a drag of the first handle does
    chosen = dock.split.sizes()
    window.resize(1100, 760)
    qtbot.wait(50)
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: dock.split.sizes()[0] == chosen[0], timeout=5_000)
