"""Explanations in the window (issue 17, section 3): a click on a confusion-matrix cell opens
the gallery of exactly that cell's validation samples; a click on a sample shows its class
probabilities and the Grad-CAM overlay (opacity slider), or feature bars for a table; while a
run trains the window says the samples come when it ends, and fills itself when it does."""
from __future__ import annotations

import numpy as np
import torch
from PySide6.QtCore import QPoint, Qt

from workbench.data.bundle import load_data
from workbench.insight import explain
from workbench.model import build
from workbench.project import templates
from window_helpers import short_runs, text_of, wait_end

from ui.insight.explanation_view import ExplanationView
from ui.insight.explanations_window import RUNNING


def cell_contents(model, bundle):
    """Each validation sample's (true, predicted) from the model, computed here independently."""
    net = model.eval()
    with torch.no_grad():
        x = torch.stack([bundle.val_example(i)[0] for i in range(len(bundle.val))])
        predicted = net(x).argmax(1).numpy()
    true = np.array([int(bundle.val_example(i)[1]) for i in range(len(bundle.val))])
    return true, predicted


def click_cell(qtbot, matrix, t: int, p: int) -> None:
    area, cell = matrix._geometry()
    qtbot.mouseClick(matrix, Qt.MouseButton.LeftButton,
                     pos=QPoint(int(area.left() + (p + 0.5) * cell), int(area.top() + (t + 0.5) * cell)))


def test_a_confusion_cell_opens_its_samples_and_a_sample_its_explanation(window, qtbot, tmp_path):
    dock = short_runs(window, tmp_path, 1)
    assert dock.start()
    wait_end(qtbot, dock)
    dock.tabs.setCurrentWidget(dock.evaluation)
    panel = dock.evaluation
    qtbot.waitUntil(lambda: panel.matrix.matrix is not None)
    bundle = load_data(window.doc.project.data)
    true, predicted = cell_contents(dock.live_model, bundle)
    shown = panel.matrix.matrix
    # the biggest mistake cell (off the diagonal), else the first class's right answers
    off = shown - np.diag(np.diag(shown))
    t, p = np.unravel_index(np.argmax(off), off.shape) if off.max() > 0 else (0, 0)
    expected = {int(i) for i in np.flatnonzero((true == t) & (predicted == p))}
    assert len(expected) == shown[t, p]  # the matrix is of the model the window explains

    click_cell(qtbot, panel.matrix, t, p)
    win = panel.explanations
    assert win is not None and win.isVisible()
    gallery = win.gallery
    qtbot.waitUntil(lambda: gallery.list.count() == len(expected), timeout=30_000)
    assert set(gallery.shown_indices()) == expected
    names = panel.matrix.names
    assert text_of(win.title).startswith(f"true {names[t]}, predicted {names[p]}: {len(expected)} validation sample")
    assert "changed since" not in text_of(win.title) and not win.message.isVisible()

    item = gallery.list.item(0)
    index = item.data(Qt.ItemDataRole.UserRole)
    qtbot.mouseClick(gallery.list.viewport(), Qt.MouseButton.LeftButton,
                     pos=gallery.list.visualItemRect(item).center())
    view = win.view
    qtbot.waitUntil(lambda: view.explanation is not None, timeout=30_000)
    ex = view.explanation
    assert ex.index == index and ex.method == explain.GRAD_CAM and ex.layer == "conv2 (Conv2d)"
    assert ex.true == names[t] and ex.predicted == names[p]
    assert view.picture_box.isVisible() and not view.features.isVisible()
    assert view.overlay.image is not None and not view.overlay.picture_rect().isEmpty()
    assert view.bars.rows()[0][0] == names[p] and len(view.bars.classes) == len(names)
    assert text_of(view.title).startswith(f"validation sample {index}: predicted {names[p]}")
    strong = view.overlay.image.copy()
    view.opacity.setValue(0)  # no heat map: the overlay is the input itself
    plain = view.overlay.image
    assert plain != strong and plain.convertToFormat(strong.format()) == view.input.image.convertToFormat(
        strong.format())
    win.grab()

    # a new run: the model is not read while it trains; the window fills again when it ends
    assert dock.start()
    qtbot.waitUntil(lambda: win.message.isVisible() and text_of(win.message) == RUNNING, timeout=10_000)
    assert gallery.list.count() == 0
    wait_end(qtbot, dock)
    true, predicted = cell_contents(dock.live_model, bundle)
    expected = {int(i) for i in np.flatnonzero((true == t) & (predicted == p))}
    qtbot.waitUntil(lambda: not win.message.isVisible() or not expected, timeout=30_000)
    qtbot.waitUntil(lambda: set(gallery.shown_indices()) == expected, timeout=30_000)


def test_a_table_sample_shows_feature_bars(qtbot):
    project = templates.load("tabular_mlp")
    bundle = load_data(project.data)
    torch.manual_seed(0)
    model = build.build_model(project.model)
    ex = explain.explain(model, bundle, 2)
    view = ExplanationView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    view.show_explanation(ex)
    assert not view.picture_box.isVisible() and view.features.isVisible()
    rows = view.features.rows()
    assert rows and rows[0] == ex.features[0] and rows[0][0] in bundle.feature_names
    assert "integrated gradients" in text_of(view.how)
    view.grab()
