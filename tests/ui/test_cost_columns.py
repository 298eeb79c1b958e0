"""The cost columns as a user meets them (issue 17): MACs and Memory per row beside the stack's
columns, brought up to date after an edit, shown or hidden from the header (remembered); the
totals in the status bar; the largest batch that fits beside the batch size; View > Profile
Layers filling the Latency column with bars and naming the three slowest rows."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from ui.editor.stack_model import BAR_ROLE, COST_COLUMNS, ID, LATENCY, MACS, MEMORY, RANK_ROLE
from window_helpers import text_of
from workbench.insight import costs as insight_costs
from workbench.project import templates
from workbench.training import forecast

TIP = Qt.ItemDataRole.ToolTipRole


def fresh(window, qtbot):
    """The figures of the model as it stands (computed on a worker after each change)."""
    qtbot.waitUntil(lambda: window.doc.costs.wait(0.1), timeout=30_000)
    return window.doc.costs.report


def cell(window, layer_id: str, col: int, role=Qt.ItemDataRole.DisplayRole):
    return window.stack_model.index_of(layer_id, col).data(role)


def test_macs_and_memory_show_per_row_and_follow_an_edit(window, qtbot):
    report = fresh(window, qtbot)
    assert not window.stack.isColumnHidden(MACS) and not window.stack.isColumnHidden(MEMORY)  # room at 1280 px
    assert cell(window, "conv2", MACS) == "1.18M"  # 64 x 8 x 8 outputs x (32 x 3 x 3)
    assert "1,179,648 multiply-adds (2,359,296 FLOPs)" in cell(window, "conv2", MACS, TIP)
    assert cell(window, "relu1", MEMORY) == insight_costs.size(report.row_memory("relu1"))
    assert "at batch 64" in cell(window, "relu1", MEMORY, TIP)
    window.doc.set_arg("conv2", "out_channels", 128)  # doubled: twice the multiply-adds
    qtbot.waitUntil(lambda: cell(window, "conv2", MACS) == "2.36M", timeout=30_000)
    assert "2,359,296 multiply-adds" in cell(window, "conv2", MACS, TIP)
    window.doc.undo_stack.undo()
    qtbot.waitUntil(lambda: cell(window, "conv2", MACS) == "1.18M", timeout=30_000)


def test_the_header_menu_hides_and_shows_cost_columns_and_remembers(window, qtbot):
    fresh(window, qtbot)
    menu = window.stack.header_menu()
    actions = {a.text(): a for a in menu.actions()}
    assert actions["MACs"].isChecked() and actions["Memory"].isChecked() and not actions["Latency"].isChecked()
    actions["MACs"].trigger()  # unchecks: hidden by hand
    assert window.stack.isColumnHidden(MACS) and window.stack.column_choice(MACS) is False
    from ui.editor.stack_view import StackView
    from ui import project_io
    again = StackView(window.stack_model, settings=project_io.settings)  # the next window reads the choice
    qtbot.addWidget(again)
    assert again.column_choice(MACS) is False and again.isColumnHidden(MACS)
    window.stack.header_menu().actions()[0].trigger()  # MACs again
    assert not window.stack.isColumnHidden(MACS) and window.stack.column_choice(MACS) is True


def test_a_narrow_window_keeps_the_layer_names_and_hides_cost_columns_left_to_the_room(window, qtbot):
    fresh(window, qtbot)
    window.resize(1024, 700)
    qtbot.wait(20)
    view = window.stack
    for layer_id in ("conv1", "relu2", "drop"):
        index = view.stack_model.index_of(layer_id, ID)
        assert view.visualRect(index).width() >= view.sizeHintForIndex(index).width(), layer_id
    assert not view.horizontalScrollBar().isVisible()
    shown = [col for col in COST_COLUMNS if not view.isColumnHidden(col)]
    view.set_column_choice(MEMORY, True)  # asked for by hand: shown even where room is short
    assert not view.isColumnHidden(MEMORY)
    assert shown == [col for col in shown if col != LATENCY]  # never an empty Latency column


def test_the_status_bar_has_the_totals_and_the_forecast_by_part(window, qtbot):
    report = fresh(window, qtbot)
    text = text_of(window.summary.costs)
    assert "1.21M MACs" in text and "to train at batch 64" in text
    assert "optimizer state (2 values per weight)" in window.summary.costs.toolTip()
    assert insight_costs.size(report.forecast.total) in text
    window.resize(1024, 700)
    window.doc.replace_project(templates.load("resnet18_transfer"))  # long counts: short of room
    fresh(window, qtbot)
    qtbot.wait(20)
    text = text_of(window.summary.costs)  # the words went, the figures stayed, nothing else is cut
    assert window.summary.costs.isHidden() or ("MACs" in text and "to train" not in text)
    bar = window.summary
    for label in (bar.shapes, bar.params, bar.weights_size, bar.costs, bar.status):
        assert label.isHidden() or label.width() >= label.sizeHint().width(), label.objectName()


def test_the_batch_label_says_what_fits_and_warns_when_the_batch_does_not(window, qtbot, monkeypatch):
    form = window.training.panel.form
    fresh(window, qtbot)
    assert form.batch_fit.text().startswith("≤ ") and "fits the free RAM" in form.batch_fit.toolTip()
    monkeypatch.setattr(forecast, "capacity", lambda device: 20_000_000)  # a device of 20 MB
    form.set_value("data", "batch_size", 8)
    qtbot.waitUntil(lambda: window.doc.costs.report.forecast.batch == 8, timeout=30_000)
    most = window.doc.costs.report.largest_batch
    assert 8 < most < 10_000 and form.batch_fit.text() == f"≤ {most:,}"
    form.set_value("data", "batch_size", most + 1)
    qtbot.waitUntil(lambda: form.batch_fit.text().startswith(">"), timeout=30_000)
    assert form.batch_fit.text() == f"> {most:,} fits"
    assert "#b91c1c" in form.batch_fit.styleSheet()  # theme.BAD
    assert f"too big: a batch of at most {most:,} fits" in form.batch_fit.toolTip()
    window.doc.undo_stack.undo()
    qtbot.waitUntil(lambda: form.batch_fit.text().startswith("≤"), timeout=30_000)


def profile(window, qtbot):
    action = next(a for a in window.menu("view").actions() if a.text().replace("&", "") == "Profile Layers")
    action.trigger()
    qtbot.waitUntil(lambda: window.doc.costs.latency is not None, timeout=120_000)
    return window.doc.costs.latency


def test_profile_fills_the_latency_column_and_names_the_slowest_layers(window, qtbot):
    fresh(window, qtbot)
    report = profile(window, qtbot)
    assert not window.stack.isColumnHidden(LATENCY)
    ids = [layer.id for layer in window.doc.spec.layers]
    assert all(cell(window, i, LATENCY).endswith(("s", "ms", "µs")) for i in ids)
    ranks = {i: cell(window, i, LATENCY, RANK_ROLE) for i in ids}
    top = [t.path for t in report.top(3)]
    assert sorted(r for r in ranks.values() if r) == [1, 2, 3] and [i for i in ids if ranks[i] == 1] == top[:1]
    assert max(cell(window, i, LATENCY, BAR_ROLE) for i in ids) == pytest.approx(1.0)
    message = window.statusBar().currentMessage()
    assert message.startswith("Latency per training step") and f"slowest: {top[0]} " in message
    header = window.stack_model.headerData(LATENCY, Qt.Orientation.Horizontal, TIP)
    assert f"slowest: {top[0]} " in header
    window.doc.set_arg("fc", "out_features", 12)  # another model: its old times would mislead
    assert window.doc.costs.latency is None and cell(window, "fc", LATENCY) is None
    qtbot.waitUntil(lambda: window.stack.isColumnHidden(LATENCY), timeout=5_000)


def test_profile_is_refused_while_a_run_trains_and_says_why(window, qtbot):
    window.doc.set_edit_lock("training runs")
    action = window.profiler.action
    action.trigger()
    assert window.profiler.job is None
    assert window.statusBar().currentMessage().startswith("Profile is off while training runs: the run holds")
    window.doc.set_edit_lock("")
    window.doc.set_arg("fc", "in_features", 3)  # a broken row: said, not attempted
    action.trigger()
    assert window.profiler.job is None and "cannot work. Fix that row first" in window.statusBar().currentMessage()
