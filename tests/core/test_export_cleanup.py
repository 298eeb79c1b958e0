"""What a killed export leaves is removed by the next one, which says so; slow formats are
announced with a figure before they start; odd output paths are one clear error."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
import torch

from workbench.cli.main import main
from workbench.errors import WorkbenchError
from workbench.export import exporter as export
from workbench.export import onnx_format
from workbench.export.verify import FreshProcess
from workbench.model import build
from workbench.model.spec import LayerSpec as L
from workbench.model.spec import ModelSpec


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def small():
    torch.manual_seed(0)
    spec = ModelSpec((6,), [L("fc1", "Linear", {"out_features": 8}), L("fc2", "Linear", {"out_features": 3})])
    return build.build_model(spec), spec


def test_the_next_export_removes_temps_of_a_killed_one_and_logs_it(tmp_path, dead_pid):
    model, spec = small()
    stale = [tmp_path / f".m.pth.{dead_pid}.abcd1234.tmp.pth", tmp_path / f".m.pth.{dead_pid}.x_y12345.tmp.pth"]
    for p in stale:
        p.write_bytes(b"half a file")
    (tmp_path / f".m.onnx.{dead_pid}.abcd1234.tmp").mkdir()  # an ONNX external-data folder of another target
    live = tmp_path / f".m.pth.{os.getpid()}.zzzz9999.tmp.pth"  # being written right now by a live process
    live.write_bytes(b"busy")
    lines: list[str] = []
    export.export(model, spec, "state_dict", tmp_path / "m.pth", log=lines.append)
    assert not any(p.exists() for p in stale)
    assert live.exists() and (tmp_path / f".m.onnx.{dead_pid}.abcd1234.tmp").is_dir()
    assert any(ln.startswith(f"removed 2 temporary file(s) left by an interrupted run in {tmp_path}")
               for ln in lines), lines


def test_the_cli_says_what_it_removed(tmp_path, dead_pid, capsys):
    (tmp_path / f".m.py.{dead_pid}.abcd1234.tmp.py").write_text("half")
    assert main(["export", "digits_mlp", "--format", "python", "-o", str(tmp_path / "m"), "--no-verify"]) == 0
    assert "note: removed 1 temporary file(s) left by an interrupted run" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["m.py"]


def test_verification_folders_carry_the_pid_and_dead_ones_are_removed(dead_pid):
    left = tempfile.mkdtemp(prefix=f".workbench-verify.{dead_pid}.", suffix=".tmp")
    open(os.path.join(left, "in1.npz"), "wb").close()
    lines: list[str] = []
    with FreshProcess(lines.append) as fresh:
        assert fresh.folder.name.startswith(f".workbench-verify.{os.getpid()}.")
        assert not os.path.exists(left)
        assert any("removed" in ln and os.path.basename(left) in ln for ln in lines), lines
    assert not fresh.folder.exists()


def test_the_onnx_external_data_folder_is_named_as_a_temp_of_ours(tmp_path, monkeypatch):
    from workbench import fileio

    model, spec = small()
    monkeypatch.setattr(onnx_format, "SINGLE_FILE_LIMIT", 0)
    seen = []
    real = onnx_format.tempfile.mkdtemp

    def spy(*a, **k):
        folder = real(*a, **k)
        seen.append(os.path.basename(folder))
        return folder
    monkeypatch.setattr(onnx_format.tempfile, "mkdtemp", spy)
    export.export(model, spec, "onnx", tmp_path / "big.onnx", export.ExportOptions(verify=False))
    assert seen and seen[0].startswith(fileio.temp_prefix("big.onnx")) and seen[0].endswith(".tmp")


def test_a_slow_format_is_announced_with_a_figure_before_it_starts(tmp_path, capsys, monkeypatch):
    spec = ModelSpec((4,), [L(f"fc{i}", "Linear", {"out_features": 4}) for i in range(10_000)])
    assert export.slow_notes(spec, ["state_dict", "python"]) == []
    (note,) = export.slow_notes(spec, ["onnx"])
    assert note.startswith("note: ONNX (.onnx) export of 10000 layers takes long: expect about 8 min")
    monkeypatch.setattr(onnx_format, "SECONDS_PER_LAYER", 20.0)  # as if each layer took 20 s
    model, small_spec = small()
    result = export.export(model, small_spec, "onnx", tmp_path / "m.onnx", export.ExportOptions(verify=False))
    assert result.log[0].startswith("note: ONNX (.onnx) export of 2 layers takes long: expect about 42 s")
    assert main(["export", "digits_mlp", "--format", "onnx", "-o", str(tmp_path / "d"), "--no-verify"]) == 0
    err = capsys.readouterr().err
    assert "note: ONNX (.onnx) export of" in err and "takes long: expect about" in err


@pytest.mark.parametrize("path, message", [("", "is a folder, not a file name"), (".", "is a folder"),
                                           ("..", "is a folder"), ("m\x00.pth", "contains a NUL character")])
def test_odd_output_paths_are_one_clear_error(tmp_path, monkeypatch, path, message):
    monkeypatch.chdir(tmp_path)
    model, spec = small()
    with pytest.raises(WorkbenchError, match=message):
        export.export(model, spec, "state_dict", path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(WorkbenchError, match="is a folder, not a file name"):
        export.export(model, spec, "state_dict", tmp_path / "sub")
    assert os.listdir(tmp_path) == ["sub"]
