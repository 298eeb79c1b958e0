"""Live plots: growing buffers, the smoothed loss, x axes, level of detail for a million
points, freeze marks, earlier runs overlaid and labelled, PNG and CSV export."""
from __future__ import annotations

from dataclasses import replace

import csv
import io

import numpy as np
import pytest

from ui.training.plots import live_plots as plots_module
from ui.training.plots.series import EMA, Buffer, RunSeries, series_from_metrics
from ui.training.plots.level_of_detail import Peaks, visible_range
from ui.training.plots.overlay import describe, label, load_series, overlays_for
from workbench.training import events as ev, runlog
from workbench.project import templates
from workbench.training.engine import Engine


def ema_reference(values):
    out, s = [], 0.0
    for n, v in enumerate(values, 1):
        s = EMA * s + (1 - EMA) * v
        out.append(s / (1 - EMA ** n))
    return np.array(out)


def test_buffer_doubles_and_keeps_every_value():
    b = Buffer(16)
    caps = set()
    for i in range(0, 1000, 7):
        b.extend(np.arange(i, i + 7))
        caps.add(b.capacity)
    assert len(b) == 1001 and np.array_equal(b.view(), np.arange(1001))
    assert sorted(caps) == [16 * 2 ** k for k in range(len(caps))]  # grew by doubling only
    assert b.view().dtype == np.float64


def test_smoothed_loss_is_a_bias_corrected_ema_across_batches():
    s = RunSeries(10)
    rng = np.random.default_rng(0)
    losses = rng.random(250) + 1
    for start in range(0, 250, 37):  # arrives in uneven batches
        chunk = losses[start:start + 37]
        s.add_steps(list(range(start + 1, start + 1 + len(chunk))), list(chunk), [0.1] * len(chunk),
                    [0.0] * len(chunk))
    assert np.allclose(s.ema.view(), ema_reference(losses))
    assert s.ema.view()[0] == pytest.approx(losses[0])  # no drag towards zero at the start


def test_steps_arriving_together_are_spread_over_their_interval():
    s = RunSeries(4)
    s.add_steps([1, 2, 3, 4], [1.0] * 4, [0.1] * 4, [2.0, 2.0001, 2.0002, 2.0003])
    s.add_steps([5, 6], [1.0] * 2, [0.1] * 2, [3.0, 3.0001])
    assert np.allclose(s.time.view(), [0.5, 1.0, 1.5, 2.0003, 2.50015, 3.0001], atol=1e-3)


def test_x_axis_switches_between_step_epoch_and_wall_time(live):
    s = RunSeries(steps_per_epoch=10)
    s.add_steps(list(range(1, 31)), list(np.linspace(2, 1, 30)), [0.01] * 30, list(np.linspace(0.1, 3, 30)))
    s.add_epoch(1, 10, 1.0, 1.8, 1.7, 0.5)
    s.add_epoch(2, 20, 2.0, 1.5, 1.4, 0.7)
    live.begin(s)
    live.redraw()
    assert live.raw.xData[-1] == 30 and list(live.acc.xData) == [10, 20]
    live.set_axis("epoch")
    assert live.raw.xData[-1] == pytest.approx(3.0) and list(live.acc.xData) == [1, 2]
    assert live.loss_plot.getAxis("bottom").labelText == "epoch"
    live.set_axis("time")
    assert live.raw.xData[-1] == pytest.approx(3.0) and list(live.acc.xData) == [1.0, 2.0]
    assert live.axis_box.currentText() == "Wall time"
    live.set_log(True)
    assert live.loss_plot.getAxis("left").logMode


def test_epoch_points_appear_when_an_epoch_ends_between_frames(live):
    s = RunSeries(steps_per_epoch=10)
    s.add_steps(list(range(1, 11)), list(np.linspace(2, 1, 10)), [0.01] * 10, list(np.linspace(0.1, 1, 10)))
    s.add_epoch(1, 10, 1.0, 1.8, 1.7, 0.5)
    live.begin(s)
    for _ in range(3):  # frames with no new epoch leave the points as they are
        live.redraw()
    assert list(live.acc.yData) == [0.5] and list(live.val_loss.yData) == [1.7]
    s.add_steps(list(range(11, 21)), list(np.linspace(1, 0.5, 10)), [0.01] * 10, list(np.linspace(1.1, 2, 10)))
    s.add_epoch(2, 20, 2.0, 1.5, 1.4, 0.7)
    live.redraw()
    assert list(live.acc.yData) == [0.5, 0.7] and list(live.acc.xData) == [10, 20]
    live.begin(RunSeries(steps_per_epoch=10))  # a new run: its own (no) points, not the last run's
    live.redraw()
    assert live.acc.yData is None or len(live.acc.yData) == 0


def test_a_million_points_reach_the_plot_as_a_few_thousand_with_every_peak(live):
    n = 1_000_000
    s = RunSeries(1000)
    rng = np.random.default_rng(1)
    loss = rng.random(n)
    loss[123_457] = 50.0  # one spike must survive the reduction
    s.add_steps(np.arange(1, n + 1), loss, np.full(n, 1e-3), np.linspace(0, 100, n))
    live.begin(s)
    live.redraw()
    shown = live.raw.yData
    assert len(shown) < 4 * live.loss_plot.getViewBox().width() + 10
    assert shown.max() == 50.0 and shown.min() == loss.min()
    assert live.raw.opts["clipToView"] and live.raw.opts["autoDownsample"]
    assert live.raw.opts["downsampleMethod"] == "peak"
    assert live.raw.curve.opts["pen"].width() <= 1


def test_level_of_detail_matches_a_direct_min_max_when_built_piecewise():
    values = Buffer()
    peaks = Peaks(values)
    data = np.random.default_rng(2).normal(size=70_001)
    for start in range(0, len(data), 3_333):
        values.extend(data[start:start + 3_333])
        peaks.update()
    for level in range(5):
        size = 4 ** (level + 1)
        ref_min = [data[i:i + size].min() for i in range(0, len(data), size)]
        ref_max = [data[i:i + size].max() for i in range(0, len(data), size)]
        assert np.array_equal(peaks.mins[level].view(), ref_min)
        assert np.array_equal(peaks.maxs[level].view(), ref_max)
    x = np.arange(len(data), dtype=np.float64)
    first, last = visible_range(x, 1000.0, 1500.0)
    xs, ys = peaks.display(x, first, last, 2000)
    assert xs[0] <= 1000 and xs[-1] >= 1500 and np.array_equal(ys, data[first:last])  # zoomed in: raw points


def test_freeze_marks_follow_the_x_axis(live):
    s = RunSeries(steps_per_epoch=20)
    s.add_steps(list(range(1, 41)), [1.0] * 40, [0.1] * 40, list(np.linspace(0.05, 2, 40)))
    live.begin(s)
    s.add_mark(30, 1.5, "freeze conv1")
    live.add_mark(s.marks[-1])
    (mark, line), = live._mark_lines
    assert line.value() == 30 and line.label.format == "freeze conv1"
    live.set_axis("epoch")
    assert line.value() == pytest.approx(1.5)
    live.begin(RunSeries(1))  # a new run starts clean
    assert not live._mark_lines


def test_csv_and_png_export(live, tmp_path, monkeypatch):
    s = RunSeries(steps_per_epoch=5)
    s.add_steps(list(range(1, 11)), [float(10 - i) for i in range(10)], [0.01] * 10, list(np.arange(1, 11) / 10))
    s.add_epoch(1, 5, 0.5, 8.0, 7.5, 0.25)
    s.add_epoch(2, 10, 1.0, 3.0, None, None)
    s.add_mark(7, 0.7, "freeze fc")
    live.begin(s)
    target = tmp_path / "m.csv"
    monkeypatch.setattr(plots_module, "choose_save_path", lambda *a: str(target))
    said = []
    live.message.connect(said.append)
    live.csv_button.click()
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    steps = [r for r in rows if r["kind"] == "step"]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert [float(r["loss"]) for r in steps] == [float(10 - i) for i in range(10)]
    assert [(r["epoch"], r["val_loss"], r["val_acc"]) for r in epochs] == [("1", "7.5", "0.25"), ("2", "", "")]
    assert [r["note"] for r in rows if r["kind"] == "mark"] == ["freeze fc"]
    assert said == [f"Saved {target}"]
    png = tmp_path / "p.png"
    monkeypatch.setattr(plots_module, "choose_save_path", lambda *a: str(png))
    live.png_button.click()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary left behind


def test_export_into_a_missing_folder_says_why(live, tmp_path, monkeypatch):
    s = RunSeries(1)
    s.add_steps([1], [1.0], [0.1], [0.1])
    live.begin(s)
    monkeypatch.setattr(plots_module, "choose_save_path", lambda *a: str(tmp_path / "no" / "m.csv"))
    said = []
    live.message.connect(said.append)
    live.csv_button.click()
    assert said and "folder does not exist" in said[0]


# ---------------------------------------------------------------- earlier runs

def record(n, **settings):
    base = {"source": "digits", "batch_size": 64, "val_fraction": 0.2, "optimizer": "Adam", "lr": 0.003,
            "weight_decay": 0.0, "schedule": "none", "epochs": 15, "seed": 0, "device": "auto", "amp": False}
    return {"id": f"r{n}", "dir": f"/runs/r{n}", "status": "finished", "best_val_acc": 0.9, "settings":
            {**base, **settings}, "frozen": []}


def test_each_earlier_run_is_labelled_with_what_it_changed():
    now = record(0)["settings"]
    assert describe(record(1, lr=0.01, batch_size=32), now, []) == "batch 32, lr 0.01"
    frozen = {**record(2), "frozen": ["conv1"], "freezes": [{"step": 40, "path": "fc", "frozen": True}]}
    assert describe(frozen, now, []) == "frozen conv1, froze fc at step 40"
    assert describe(record(3), now, []) == "same settings"
    assert describe({"id": "cli"}, now, []) == "settings not recorded"
    assert label(4, record(4, optimizer="SGD"), now, []) == "run 4 (finished, acc 0.900): SGD"


def test_overlays_keep_one_per_run_folder_and_hide_on_request(live):
    runs = [record(1, lr=0.01), record(2), {**record(2), "status": "finished"}]  # run 2 was resumed
    overlays = overlays_for(runs, record(0)["settings"], [])
    assert [o.key for o in overlays] == ["/runs/r1", "/runs/r2"]
    assert overlays[0].label.startswith("run 1 (finished")
    live.set_overlays(overlays)
    s = RunSeries(10)
    s.add_steps(list(range(1, 21)), [1.0] * 20, [0.1] * 20, [0.0] * 20)
    s.add_epoch(1, 10, 1.0, 1.0, 1.0, 0.5)
    live.overlay_loaded("/runs/r1", s)
    loss, acc = live._overlay_items["/runs/r1"]
    assert loss.isVisible() and len(acc.yData) == 1
    menu = live.runs_menu.actions()
    assert menu[0].text() == overlays[0].label and menu[0].isChecked()
    menu[0].setChecked(False)  # hide it from the menu
    assert not loss.isVisible() and not overlays[0].visible
    assert live.runs_button.text() == "Earlier runs (1/2)"


def test_a_resumed_run_keeps_the_run_it_continued_and_both_runs_changes():
    first = {**record(1), "status": "stopped", "lr_changes": [{"step": 30, "lr": 0.001}]}
    resumed = {**record(1), "freezes": [{"step": 50, "path": "conv1", "frozen": True}], "started": "later"}
    overlays = overlays_for([first, record(2), resumed], record(0)["settings"], [])
    assert [o.key for o in overlays] == ["/runs/r2", "/runs/r1"]  # by newest run: the resumed folder last
    assert overlays[1].label == "runs 1+3 (finished, acc 0.900): lr 0.001 at step 30, froze conv1 at step 50"
    assert overlays[1].runs == 2 and overlays[0].label.startswith("run 2 (finished")


def test_a_real_runs_metrics_come_back_as_curves(tmp_path):
    proj = templates.load("digits_mlp")
    proj.training = replace(proj.training, epochs=2, tensorboard=False)
    end = Engine(proj, run_dir=tmp_path / "run").run()
    assert isinstance(end, ev.FinishedEvent)
    series = load_series(str(tmp_path / "run"))
    rows = runlog.read_metrics(tmp_path / "run")
    assert series.n_steps == end.step == sum(r["event"] == "step" for r in rows)
    assert list(series.epoch_no.view()) == [1, 2]
    assert np.isfinite(series.time.view()).all() and series.time.view()[-1] <= end.seconds + 1e-6
    assert load_series(str(tmp_path / "gone")) is None
    assert series_from_metrics([]).n_steps == 0


def test_nice_round_numbers():
    from ui.training.plots.steady_range import nice_ceil

    assert [nice_ceil(v) for v in (0.7, 1, 1.01, 2.2, 3, 7, 130, 0.0031)] == [1, 1, 2, 2.5, 5, 10, 200, 0.005]


def test_ranges_hold_still_while_data_grows_and_stop_following_a_zoom(live):
    s = RunSeries(steps_per_epoch=50)
    s.add_steps(list(range(1, 131)), list(np.linspace(2.0, 0.5, 130)), [0.01] * 130, [0.0] * 130)
    live.begin(s)
    live.redraw()
    box = live.loss_plot.getViewBox()
    (x0, x1), (y0, y1) = box.viewRange()
    assert (x0, x1) == (0, 200)  # room to grow, a round number
    assert y0 < 0.5 and y1 > 2.0
    s.add_steps(list(range(131, 181)), [0.45] * 50, [0.01] * 50, [0.0] * 50)
    live.redraw()
    assert box.viewRange() == [[x0, x1], [y0, y1]]  # nothing moved: no axis to regenerate
    s.add_steps(list(range(181, 211)), [0.4] * 30, [0.01] * 30, [0.0] * 30)
    live.redraw()
    assert box.viewRange()[0] == [0, 250]
    assert live.acc_plot.getViewBox().viewRange()[0] == [0, 250]  # x axes stay linked
    box.setXRange(50, 80, padding=0)  # a person zooms in (as the mouse does)
    box.sigRangeChangedManually.emit([True, False])
    s.add_steps(list(range(211, 400)), [0.3] * 189, [0.01] * 189, [0.0] * 189)
    live.redraw()
    assert box.viewRange()[0] == [50, 80]  # left where they put it, drawn in detail
    assert live.raw.xData[0] <= 50 and live.raw.xData[-1] >= 80 and len(live.raw.xData) < 40
    box.enableAutoRange()  # the "A" button
    live.redraw()
    assert box.viewRange()[0] == [0, 500] and live.follow[0].following
