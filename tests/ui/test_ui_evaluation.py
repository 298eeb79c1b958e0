"""Evaluation after each epoch: the confusion matrix as an image, validation samples with
predicted and true labels, worst mistakes first."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QMouseEvent
from PySide6.QtWidgets import QApplication

from workbench.training.samples import Sample, SampleGrid, collect, order, pick_indices, to_image
from ui.training.evaluation import EvaluationPanel, matrix_image
from window_helpers import text_of
from workbench.training import events as ev
from workbench.project import templates
from workbench.training.engine import Engine


def test_matrix_image_is_blue_where_right_red_where_wrong_white_where_empty():
    image = matrix_image(np.array([[9, 1, 0], [0, 10, 0], [5, 0, 5]]))
    assert (image.width(), image.height()) == (3, 3)
    right, wrong, empty = QColor(image.pixel(0, 0)), QColor(image.pixel(1, 0)), QColor(image.pixel(2, 0))
    assert right.blue() > 150 and right.red() < 120  # 90% of class 0 right: strong blue
    assert wrong.red() > 200 and wrong.blue() < wrong.red()  # 10% of class 0 taken for 1: reddish
    assert empty.name() == "#ffffff"
    half = QColor(image.pixel(0, 2))  # half of class 2 taken for 0: redder than the 10% cell
    assert half.green() < wrong.green()


def test_evaluation_panel_shows_the_epoch_and_explains_cells(qtbot):
    panel = EvaluationPanel()
    qtbot.addWidget(panel)
    panel.resize(700, 300)
    panel.show()
    names = ["cat", "dog"]
    grid = SampleGrid(3, names, order([
        Sample(4, 0, 0, 0.99, np.zeros((8, 8), np.uint8)),
        Sample(7, 1, 0, 0.6, np.full((8, 8), 255, np.uint8)),
        Sample(2, 0, 1, 0.9, np.zeros((8, 8, 3), np.uint8)),
    ]))
    panel.show_epoch(3, 0.75, [[3, 1], [1, 3]], names, grid)
    assert text_of(panel.title).startswith("Epoch 3 · validation accuracy 0.750 · 2 of 8 wrong")
    captions = [t.findChildren(type(panel.title))[-1] for t in panel.samples.tiles]
    assert [text_of(c) for c in captions] == ["✗ dog (90%) true cat", "✗ cat (60%) true dog", "✓ cat (99%) true cat"]
    assert panel.samples.tiles[0].objectName() == "sampleWrong"
    matrix = panel.matrix
    area, cell = matrix._geometry()
    inside = QPoint(int(area.left() + 1.5 * cell), int(area.top() + 0.5 * cell))  # row 0 (cat), column 1 (dog)
    assert matrix.cell_at(inside) == (0, 1)
    # A real move event (qtbot.mouseMove sends none when the offscreen cursor already sits there)
    move = QMouseEvent(QEvent.Type.MouseMove, QPointF(inside), QPointF(matrix.mapToGlobal(inside)),
                       Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(matrix, move)
    assert matrix.toolTip() == "true cat, predicted dog: 1 example (25.0% of class cat)"
    panel.grab()
    panel.clear()
    assert panel.matrix.matrix is None and not panel.samples.tiles


def test_worst_mistakes_come_first_then_the_least_sure_right_ones():
    s = [Sample(0, 1, 1, 0.99, None), Sample(1, 1, 2, 0.6, None), Sample(2, 0, 0, 0.55, None),
         Sample(3, 2, 1, 0.95, None)]
    assert [x.index for x in order(s)] == [3, 1, 2, 0]
    assert pick_indices(100, 4, set()) == [0, 33, 66, 99]
    assert 33 not in pick_indices(100, 4, {33}) and len(pick_indices(100, 4, {33})) == 4
    assert pick_indices(3, 10, set()) == [0, 1, 2]


def test_to_image_undoes_normalisation_for_display():
    x = np.linspace(-2, 3, 64, dtype=np.float32).reshape(1, 8, 8)
    img = to_image(x)
    assert img.shape == (8, 8) and img.dtype == np.uint8 and img.min() == 0 and img.max() == 255
    big = to_image(np.random.rand(3, 224, 160).astype(np.float32))
    assert big.shape == (96, 69, 3)  # shrunk before it crosses threads
    assert to_image(np.zeros(5, np.float32)) is None


def test_collect_evaluates_the_epochs_mistakes_and_spread_samples(tmp_path):
    proj = templates.load("digits_cnn")
    proj.training = replace(proj.training, epochs=1, tensorboard=False)
    grids = []
    engine = None

    def on_event(e):
        if isinstance(e, ev.EpochEvent):
            grids.append((e, collect(engine, e, n=12)))
    engine = Engine(proj, run_dir=tmp_path / "r", handlers=[on_event])
    assert isinstance(engine.run(), ev.FinishedEvent)
    event, grid = grids[0]
    assert len(grid.samples) == 12 and grid.class_names == [str(i) for i in range(10)]
    shown = {s.index: s for s in grid.samples}
    for m in event.mistakes:  # the engine's worst mistakes are all there, with the same verdict
        assert shown[m.index].predicted == m.predicted and shown[m.index].true == m.true
        assert shown[m.index].confidence == pytest.approx(m.confidence, abs=1e-4)
    wrong = [s.wrong for s in grid.samples]
    assert wrong == sorted(wrong, reverse=True)  # mistakes first
    assert all(s.image is not None and s.image.shape == (8, 8) for s in grid.samples)
    true_labels = [int(engine.data.val[s.index][1]) for s in grid.samples]
    assert true_labels == [s.true for s in grid.samples]


def test_collect_reads_the_validation_pass_verdicts_without_predicting_again(tmp_path):
    """The sample grid costs the training thread no second forward pass: its predictions are the
    epoch's validation pass's, the same as predicting those examples afresh."""
    import torch

    from workbench.training.optim import predict

    proj = templates.load("digits_cnn")
    proj.training = replace(proj.training, epochs=2, tensorboard=False)
    grids, forwards = [], []
    engine = None

    def on_event(e):
        if isinstance(e, ev.EpochEvent):
            hook = engine.model.register_forward_hook(lambda *_: forwards.append(1))
            try:
                grids.append(collect(engine, e, n=12))
            finally:
                hook.remove()
            with torch.no_grad():  # the truth: those examples predicted now, by the same weights
                x = torch.stack([torch.as_tensor(engine.data.val_example(s.index)[0]) for s in grids[-1].samples])
                pred, conf = predict(engine.model(x), engine.loss_name)
            grids[-1] = (grids[-1], pred.tolist(), conf.tolist())
    engine = Engine(proj, run_dir=tmp_path / "r", handlers=[on_event])
    assert isinstance(engine.run(), ev.FinishedEvent)
    assert len(grids) == 2 and forwards == []
    for grid, pred, conf in grids:
        assert [s.predicted for s in grid.samples] == pred
        assert [s.confidence for s in grid.samples] == pytest.approx(conf, abs=1e-5)
