"""Whatever is typed into the export dialog's path field, with whichever format: the file is
written or the dialog shows one error; no exception escapes a slot, nothing lands elsewhere."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("pytestqt")

from ui.export.dialog import ExportDialog  # noqa: E402
from workbench.export import exporter as export  # noqa: E402
from workbench.model.spec import LayerSpec as L  # noqa: E402
from workbench.model.spec import ModelSpec  # noqa: E402
from workbench.project import project_file  # noqa: E402

WAIT_MS = 60_000
TEXT = st.text(max_size=10) | st.sampled_from(
    ["", ".", "..", "/", "sub/", "a/b/c", "m.onnx", "m.PTH", "m.", ".m", " ", "x" * 300, "m\x00", "~", "sub"])


@pytest.mark.slow
def test_typed_paths_and_format_switches_give_a_file_or_one_error(qtbot, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    project = project_file.new("tiny", ModelSpec((3,), [L("fc", "Linear", {"out_features": 2})]))
    dialog = ExportDialog(project, None)
    qtbot.addWidget(dialog)
    dialog.verify.setChecked(False)
    tried = []

    @settings(max_examples=120, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.sampled_from(list(export.FORMATS)), TEXT), min_size=1, max_size=3),
           st.sampled_from(["state_dict", "python", "safetensors"]))
    def check(switches, final):
        for key, text in switches:  # typing, then picking another format rewrites the extension
            dialog.path_edit.setText(text)
            dialog.select_format(key)
        dialog.select_format(final)
        text = dialog.path_edit.text()
        tried.append(text)
        with qtbot.waitSignal(dialog.exportFinished, timeout=WAIT_MS) as blocker:
            dialog.export_to(text)
        results = blocker.args[0]
        if results:
            assert results[0].ok and results[0].path.is_file(), results[0].error
        else:
            assert dialog.error, text  # said in the dialog's status line and log
        assert not [n for n in os.listdir(tmp_path) if n.startswith(".") and ".tmp" in n]

    check()
    assert len(tried) >= 120
