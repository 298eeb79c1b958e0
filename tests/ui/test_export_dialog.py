"""The export dialog as a user drives it (offscreen): pick a format, export without freezing
the window, read the figures; failures say where and leave no file; open weights."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

pytest.importorskip("pytestqt")
from PySide6.QtWidgets import QLabel  # noqa: E402

from ui.export.dialog import ExportDialog  # noqa: E402
from workbench.model import build
from workbench.export import exporter as export
from workbench.project import templates  # noqa: E402

WAIT_MS = 180_000


@pytest.fixture
def project():
    return templates.load("digits_cnn")


@pytest.fixture
def dialog(qtbot, project):
    d = ExportDialog(project, None)
    qtbot.addWidget(d)
    d.show()
    return d


def run(qtbot, dialog, start):
    with qtbot.waitSignal(dialog.exportFinished, timeout=WAIT_MS) as blocker:
        start()
    return blocker.args[0]


def test_each_format_explains_who_loads_it_and_sets_the_extension(dialog):
    labels = " ".join(lbl.text() for lbl in dialog.findChildren(QLabel))
    for key, f in export.FORMATS.items():
        assert f.loads in labels
        dialog.select_format(key)
        assert dialog.path_edit.text().endswith("digits_cnn" + f.suffix)
        assert f.verified in dialog.verify_how.text()
    dialog.select_format("torchscript")
    assert "deprecated upstream" in labels
    assert "29,130 parameters" in dialog.summary.text() and "(1, 8, 8)" in dialog.summary.text()


def test_options_are_read_as_plain_data(dialog):
    dialog.select_format("onnx")
    dialog.opset.setValue(21)
    dialog.dynamic["onnx"].setChecked(False)
    assert not dialog.dynamic["pt2"].isChecked()  # one setting, shown on both pages
    options = dialog.options()
    assert (options.opset, options.dynamic_batch, options.name) == (21, False, "Digits CNN")
    dialog.select_format("torchscript")
    dialog.mode.setCurrentIndex(dialog.mode.findData("script"))
    assert dialog.options().torchscript_mode == "script"


def test_export_runs_off_the_ui_thread_and_reports_the_figures(qtbot, dialog, tmp_path):
    dialog.select_format("onnx")
    returned = []

    def start():
        t0 = time.perf_counter()
        dialog.export_to(str(tmp_path / "digits"))
        returned.append(time.perf_counter() - t0)
        assert dialog.busy() and dialog.progress.isVisible()
        assert not dialog.export_button.isEnabled()

    results = run(qtbot, dialog, start)
    assert returned[0] < 0.5  # the window kept responding while ONNX exported for seconds
    assert results[0].seconds > returned[0]
    row = dialog.table.texts(0)
    assert row[0] == "ONNX" and row[1] == "digits.onnx" and row[4].startswith("passed")
    assert float(row[5]) < 1e-4 and row[7] == "1, 3"
    assert (tmp_path / "digits.onnx").is_file() and not dialog.busy()
    assert "Wrote" in dialog.status.text()
    assert "[torch.onnx]" in dialog.log.toPlainText()


def test_failure_names_the_layer_and_leaves_no_file(qtbot, project, tmp_path):
    class SvdScale(nn.Module):
        def forward(self, x):
            return x * torch.linalg.svdvals(x).sum()

    model = build.build_model(project.model)
    model.relu2 = SvdScale()
    dialog = ExportDialog(project, model)
    qtbot.addWidget(dialog)
    dialog.select_format("onnx")
    assert run(qtbot, dialog, lambda: dialog.export_to(str(tmp_path / "m.onnx"))) == []
    assert "layer 'relu2' (ReLU, #5)" in dialog.status.text()
    assert list(tmp_path.iterdir()) == []
    assert dialog.export_button.isEnabled()


def test_wrong_extension_is_refused_at_once(qtbot, dialog, tmp_path):
    dialog.select_format("pt2")
    assert run(qtbot, dialog, lambda: dialog.export_to(str(tmp_path / "m.onnx"))) == []
    assert "name it m.pt2" in dialog.status.text() and not dialog.busy()


@pytest.mark.slow
def test_export_all_formats_into_a_folder(qtbot, dialog, tmp_path):
    results = run(qtbot, dialog, lambda: dialog.export_all_to(str(tmp_path / "all")))
    assert [r.format for r in results] == list(export.FORMATS)
    assert dialog.table.rowCount() == len(export.FORMATS)
    assert all(dialog.table.texts(i)[4].startswith("passed") for i in range(dialog.table.rowCount()))
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == sorted(
        f"digits_cnn{f.suffix}" for f in export.FORMATS.values())


def test_close_waits_for_a_running_export(qtbot, dialog, tmp_path):
    dialog.select_format("pt2")
    with qtbot.waitSignal(dialog.exportFinished, timeout=WAIT_MS):
        dialog.export_to(str(tmp_path / "m"))
        dialog.reject()
        assert dialog.isVisible()
    dialog.reject()
    assert not dialog.isVisible()


def test_open_weights_fits_or_lists_the_keys(qtbot, project, tmp_path, monkeypatch):
    dialog = ExportDialog(project, None)
    qtbot.addWidget(dialog)
    trained = build.build_model(project.model)
    torch.save({"model": trained.state_dict(), "epoch": 1}, tmp_path / "ckpt.pth")
    with qtbot.waitSignal(dialog.weightsLoaded, timeout=WAIT_MS) as got:
        dialog.open_weights(str(tmp_path / "ckpt.pth"))
    assert got.args == [str(tmp_path / "ckpt.pth")]
    assert torch.equal(dialog.model.fc.weight, trained.fc.weight)

    wrong = dict(trained.state_dict(), **{"fc.weight": torch.zeros(3, 1024)})
    torch.save(wrong, tmp_path / "wrong.pth")
    asked = []
    monkeypatch.setattr(dialog, "ask_partial", lambda report: asked.append(report) or False)
    before = dialog.model.fc.weight.clone()
    with qtbot.waitSignal(dialog.weightsLoaded, timeout=WAIT_MS) as got:
        dialog.open_weights(str(tmp_path / "wrong.pth"))
    assert got.args == [""] and "nothing was loaded" in dialog.status.text()
    assert asked[0].mismatched[0][0] == "fc.weight"
    assert "fc.weight: file (3, 1024), model (10, 1024)" in dialog.log.toPlainText()
    assert torch.equal(dialog.model.fc.weight, before)
