"""Fuzz the export command's arguments (format names, output paths with odd characters, opsets,
modes, batch option, weights paths): every outcome is success (0), a failed format of
``--format all`` (1) or one ``error:`` line with exit 2. Never a traceback."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.cli.main import main
from workbench.export.registry import FORMATS
from workbench.model.spec import LayerSpec as L
from workbench.model.spec import ModelSpec
from workbench.project import project_file

FAST = ["state_dict", "safetensors", "python", "torchscript"]  # the slow ones come up less often
ODD = st.text(max_size=12) | st.sampled_from(  # lone surrogates: how Python passes argv bytes that are not UTF-8
    ["", ".", "..", "a/b", "-o", "--format", "x" * 300, "m.onnx", "m.pth", "m.PT", " m ", "\\", "m.", ".m",
     "\n", "m\x00", "m\udcff"])


@pytest.fixture(scope="module")
def project():
    folder = Path(tempfile.mkdtemp(prefix="fuzz-export-"))
    path = folder / "tiny.wbproj"
    project_file.save(project_file.new("tiny", ModelSpec((3,), [L("fc", "Linear", {"out_features": 2})])), path)
    yield path
    shutil.rmtree(folder, ignore_errors=True)


@st.composite
def arguments(draw, project: Path, out: Path) -> list[str]:
    fmt = draw(st.sampled_from(FAST) | st.sampled_from([*FORMATS, "all"]) | ODD)
    name = draw(ODD)
    args = ["export", str(project), "--format", fmt, "-o", str(out / name) if draw(st.booleans()) else name]
    if draw(st.booleans()):
        args += ["--opset", draw(st.sampled_from(["18", "13", "25", "7", "99", "-1", "x", "1e3", ""]))]
    if draw(st.booleans()):
        args += ["--torchscript-mode", draw(st.sampled_from(["auto", "trace", "script", "jit", ""]))]
    for flag in ("--static-batch", "--no-spec", "--no-verify"):
        if draw(st.booleans()):
            args.append(flag)
    if draw(st.integers(0, 5)) == 0:
        args += ["--weights", draw(st.sampled_from([str(out / "missing.pth"), str(out), str(out / name), ""]))]
    return args


@pytest.mark.slow
def test_export_arguments_give_success_or_one_error_line(project, tmp_path_factory, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # relative output paths land here
    tried = []

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        out = tmp_path_factory.mktemp("out")
        args = data.draw(arguments(project, out))
        tried.append(args)
        try:
            code = main(args)
        except SystemExit as exc:  # argparse: a bad choice or value
            code = exc.code
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err, (args, captured.err)
        if code == 2:
            errors = [ln for ln in captured.err.splitlines() if ln.startswith("error:")]
            assert len(errors) == 1 or "usage:" in captured.err, (args, captured.err)
        else:
            assert code == 0 or (code == 1 and "all" in args), (args, code, captured.err)

    check()
    assert len(tried) >= 300
