"""Headless commands as a user types them: output, exit codes, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.cli import main as cli
from workbench.project import project_file as project


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=180)


def test_summary_json_has_the_documented_keys(tmp_path):
    path = tmp_path / "d.wbproj"
    assert cli.main(["new", "-t", "digits_cnn", "-o", str(path)]) == 0
    result = run("summary", path, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert {"layers", "total_params", "trainable_params"} <= out.keys()
    assert set(out["layers"][0]) == {"id", "type", "output_shape", "params", "trainable_params"}
    assert out["layers"][-1]["output_shape"] == [10]
    assert out["total_params"] == sum(layer["params"] for layer in out["layers"])


def test_summary_json_has_the_backbone_stage_rows_and_sizes_in_torchinfos_units(capsys):
    assert cli.main(["summary", "resnet18_transfer"]) == 0
    text = capsys.readouterr().out
    assert "backbone.layer4  stage" in text
    assert "params size 44.73 MB, buffers size 0.04 MB (float32; MB = 10^6 bytes" in text  # torchinfo: 44.73
    assert cli.main(["summary", "resnet18_transfer", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    backbone = out["layers"][0]
    stages = {s["id"]: s for s in backbone["stages"]}
    assert list(stages) == ["backbone.stem", "backbone.layer1", "backbone.layer2", "backbone.layer3",
                            "backbone.layer4"]
    assert stages["backbone.stem"]["frozen"] and stages["backbone.stem"]["trainable_params"] == 0
    assert stages["backbone.layer4"] == {"id": "backbone.layer4", "name": "layer4", "params": 8393728,
                                         "trainable_params": 8393728, "frozen": False}
    assert sum(s["params"] for s in stages.values()) == backbone["params"]
    assert (out["params_size_mb"], out["buffers_size_mb"]) == (44.7266, 0.0384)
    assert out["frozen_params"] == 683072


def test_summary_table_and_templates(capsys):
    assert cli.main(["summary", "digits_mlp"]) == 0
    out = capsys.readouterr().out
    assert "fc2" in out and "(10,)" in out and "total 9,610 params" in out
    assert cli.main(["templates"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"digits_mlp", "digits_cnn", "tabular_mlp", "resnet18_transfer"} <= set(names)


def test_new_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "p.wbproj"
    path.write_text("mine")
    assert cli.main(["new", "-o", str(path)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert path.read_text() == "mine"
    assert cli.main(["new", "-o", str(path), "--force"]) == 0
    assert project.load(path).name == "Digits CNN"


@pytest.mark.parametrize("content,needle", [
    ('{"format": "model-workbench/project", "version": 1, "model": {"input": {"shape": [4]}, '
     '"layers": [{"id": "a", "type": "Linar"}]}}', "unknown layer type 'Linar'"),
    ("not json", "not valid JSON"),
])
def test_bad_files_exit_2_with_one_line(tmp_path, content, needle):
    path = tmp_path / "bad.wbproj"
    path.write_text(content)
    result = run("summary", path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in result.stderr


def test_impossible_stack_exits_2_naming_the_layer(tmp_path):
    doc = {"format": "model-workbench/project", "version": 1, "name": "x",
           "model": {"input": {"shape": [1, 8, 8]},
                     "layers": [{"id": "fc", "type": "Linear", "args": {"out_features": 3}}]}}
    path = tmp_path / "x.wbproj"
    path.write_text(json.dumps(doc))
    result = run("summary", path)
    assert result.returncode == 2
    assert "layer 'fc' (Linear, #1)" in result.stderr and "insert Flatten" in result.stderr


def test_usage_errors_exit_2():
    result = run("summary")
    assert result.returncode == 2 and "error:" in result.stderr
    result = run("new", "-t", "nope", "-o", "x.wbproj")
    assert result.returncode == 2 and "no template 'nope'" in result.stderr


def test_summary_prints_no_terminal_escape_from_the_file(tmp_path):
    doc = {"format": "model-workbench/project", "version": 1,
           "name": "Evil\x1b[2J\x1b]0;pwned\x07\r\x9b31m\u202eName",
           "model": {"input": {"shape": [4]}, "layers": [{"id": "fc", "type": "Linear", "args": {"out_features": 2}}]}}
    path = tmp_path / "e.wbproj"
    path.write_text(json.dumps(doc))
    result = run("summary", path)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("Evil\\x1b[2J\\x1b]0;pwned\\x07\\r\\x9b31m\\u202eName")
    for shown in (result.stdout, result.stderr):
        assert not any(ord(ch) < 32 and ch != "\n" or 0x7f <= ord(ch) < 0xa0 or ch == "\u202e" for ch in shown)


def test_error_lines_are_printable_whatever_the_path_holds(tmp_path):
    path = tmp_path / "a\x1b[31m\udcff.wbproj"  # an undecodable byte reaches Python as a lone surrogate
    result = run("summary", path)
    line = result.stderr.strip()
    assert result.returncode == 2 and line.startswith("error: ") and "\\x1b[31m\\udcff.wbproj" in line
    assert "\x1b" not in line and "Traceback" not in result.stderr


WINDOW = ("import sys; from ui.app import main; rc = main(sys.argv[1:]); "
          "print('qt loaded' if 'PySide6.QtWidgets' in sys.modules else 'qt not loaded'); sys.exit(rc)")


def launcher(*args, cwd):
    """The `workbench` console script (ui.app:main) without a display."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return subprocess.run([sys.executable, "-c", WINDOW, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=180)


@pytest.mark.parametrize("typo,hint", [("sumary", "did you mean 'summary'?"), ("exprot", "did you mean 'export'?"),
                                       ("evaulate", "did you mean 'evaluate'?"),  # a command since issue 15
                                       ("frobnicate", "commands: summary, templates, new, catalog, train, export")])
def test_a_mistyped_command_is_named_with_close_matches(tmp_path, typo, hint):
    window, module = launcher(typo, "x", cwd=tmp_path), run(typo, "x", cwd=tmp_path)
    for result in (window, module):
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert lines == [lines[0]] and lines[0].startswith(f"error: unknown command '{typo}'; {hint}")
    assert window.stdout.strip() == "qt not loaded" and module.stdout == ""


@pytest.mark.parametrize("target", ["mine.wbproj", "missing/other.wbproj", "plain"])
def test_a_project_path_still_goes_to_the_window(tmp_path, target):
    """Without a display the window says so: proof that the path went to the window, not the parser."""
    (tmp_path / "mine.wbproj").write_text("{}")
    (tmp_path / "plain").write_text("{}")  # an existing file without the suffix
    result = launcher(target, cwd=tmp_path)
    assert result.returncode == 2 and "no display" in result.stderr and "unknown command" not in result.stderr
