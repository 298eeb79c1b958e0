"""The training dock's Health tab (per-layer strips over time, a metric chooser, layer names on
the y axis) and the alert banners above the training panel (layer and fix, dismissible)."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from ui.insight.health_view import MAX_BANNERS, AlertBanners, HealthView
from ui.training import dock as training_dock
from window_helpers import short_runs, wait_end
from workbench.training import events as ev


@pytest.fixture(autouse=True)
def never_block_on_close(monkeypatch):
    monkeypatch.setattr(training_dock, "ask_stop", lambda parent: True)


def sample(step, grad=1.0, ratio=1e-3, dead=0.1):
    return ev.HealthEvent(step, 1, ["conv1", "relu1", "fc"], [grad, None, grad * 2], [3.0, None, 2.0],
                          [ratio, None, ratio], [0.0, 0.4, 0.1], [1.0, 0.6, 2.0], [None, dead, None])


def alert(layer, n=0):
    return ev.AlertEvent(10 + n, 1, "dead_units", layer, f"90% of its units output 0 (#{n})",
                         "check the bias initialisation")


def test_strips_are_layers_by_samples_with_the_chosen_metric(qtbot):
    view = HealthView()
    qtbot.addWidget(view)
    view.resize(700, 300)
    view.show()
    for step, grad in ((1, 10.0), (51, 1.0), (101, 0.1)):
        view.add(sample(step, grad))
    assert view.matrix().shape == (3, 3)  # layers x samples
    assert view.value("conv1", 0) == pytest.approx(1.0) and view.value("conv1", -1) == pytest.approx(-1.0)  # log10
    assert view.value("relu1") is None  # no gradient of its own: blank
    ticks = view.plot.getAxis("left")._tickLevels[0]  # what the axis was given to draw
    assert [name for _, name in ticks] == ["conv1", "relu1", "fc"]
    assert view.image.image.shape == (3, 3)
    assert "3 layers, 3 samples at steps 1..101" in view.note.text()
    view.chooser.setCurrentText("Dead fraction")
    assert view.value("relu1") == pytest.approx(0.1) and view.value("conv1") is None
    assert view.image.getLevels() is not None and tuple(view.image.getLevels()) == (0.0, 1.0)
    view.chooser.setCurrentText("Activation std")
    assert view.value("fc") == pytest.approx(2.0)
    assert math.isnan(np.array(view.columns["grad_norm"])[0, 1])


def test_samples_that_arrive_while_the_tab_is_hidden_are_drawn_when_it_shows(qtbot):
    view = HealthView()
    qtbot.addWidget(view)
    view.resize(700, 300)
    for step in (1, 51):
        view.add(sample(step))
    assert view.image.image is None  # hidden: nothing drawn yet (the training keeps the CPU)
    view.show()
    assert view.image.image.shape == (3, 2)
    assert "3 layers, 2 samples at steps 1..51" in view.note.text()
    view.add(sample(101))  # shown: drawn at once
    assert view.image.image.shape == (3, 3)


def test_a_new_run_starts_the_strips_over(qtbot):
    view = HealthView()
    qtbot.addWidget(view)
    view.add(sample(1))
    other = replace(sample(1), layers=["a", "b", "c"])
    view.add(other)
    assert view.layers == ["a", "b", "c"] and view.steps == [1]
    view.clear()
    assert view.steps == [] and "appear here" in view.note.text()


def test_banners_show_the_layer_and_fix_newest_first_and_close(qtbot):
    banners = AlertBanners()
    qtbot.addWidget(banners)
    banners.resize(900, 120)
    banners.show()
    first = banners.add(alert("relu1", 0))
    assert banners.isVisible() and "relu1" in first.label.text() and "Fix:" in first.label.text()
    assert first.label.toolTip() == "layer 'relu1': 90% of its units output 0 (#0); fix: check the bias initialisation"
    for n in range(1, 4):
        banners.add(alert(f"relu{n + 1}", n))
    assert len(banners.banners) == MAX_BANNERS and banners.banners[0].alert.layer == "relu4"
    assert banners.more.isVisible() and banners.more.text() == "+2 more" and "relu1" in banners.more.toolTip()
    banners.banners[0].close_button.click()
    assert [b.alert.layer for b in banners.banners] == ["relu3"]
    banners.banners[0].close_button.click()
    assert not banners.isVisible()
    banners.add(alert("<b>x</b>"))  # project text is shown as text, never as markup
    assert "&lt;b&gt;x&lt;/b&gt;" in banners.banners[0].label.text()


@pytest.mark.slow
def test_a_run_with_a_huge_learning_rate_fills_the_health_tab_and_raises_banners(qtbot, window, tmp_path):
    dock = short_runs(window, tmp_path, epochs=1)
    window.doc.project.training = replace(window.doc.project.training, health_every=5)
    window.doc.project.set_setting("training.optimizer.lr", 1.0)
    assert [dock.tabs.tabText(i) for i in range(dock.tabs.count())] == ["Plots", "Evaluation", "Health"]
    assert dock.start()
    end = wait_end(qtbot, dock, timeout=120_000)
    assert isinstance(end, ev.FinishedEvent), end
    assert dock.health.steps == list(range(1, end.step + 1, 5))
    assert dock.health.layers == ["conv1", "bn1", "relu1", "conv2", "relu2", "fc"]
    assert dock.alerts.isVisible() and dock.alerts.banners
    texts = dock.alerts.texts() + [line for line in dock.alerts.more.toolTip().splitlines() if line]
    assert any("learning rate 1 is" in t for t in texts), texts
    dock.start()  # the next run starts with empty strips and no banners
    assert dock.health.steps == [] and not dock.alerts.isVisible()
    dock.stop()
    wait_end(qtbot, dock)


def test_healthy_template_run_shows_no_banner(qtbot, window, tmp_path):
    dock = short_runs(window, tmp_path, epochs=1)
    window.doc.project.training = replace(window.doc.project.training, health_every=10)
    assert dock.start()
    end = wait_end(qtbot, dock, timeout=120_000)
    assert isinstance(end, ev.FinishedEvent), end
    assert dock.health.steps == [1, 11, 21] and not dock.alerts.banners and not dock.alerts.isVisible()
