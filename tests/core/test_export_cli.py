"""`workbench export`: writes the file, prints the verification figures, exit 2 on bad input."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from workbench.model import build
from workbench.project import templates
from workbench.cli.main import main


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(3)
    model = build.build_model(templates.load("digits_cnn").model)
    torch.save({"model": model.state_dict(), "epoch": 2}, tmp_path / "ckpt.pth")
    return model, tmp_path / "ckpt.pth"


def test_export_with_training_checkpoint_prints_figures(checkpoint, tmp_path, capsys):
    model, ckpt = checkpoint
    code = main(["export", "digits_cnn", "--format", "state_dict", "-o", str(tmp_path / "out"),
                 "--weights", str(ckpt)])
    out = capsys.readouterr().out
    assert code == 0
    assert "training checkpoint: 11 of 11 model tensors" in out
    assert "verification: passed" in out and "max abs diff: 0" in out and "batch sizes: 1, 3" in out
    saved = torch.load(tmp_path / "out.pth", weights_only=True)["state_dict"]
    assert torch.equal(saved["fc.weight"], model.fc.weight.detach())


def test_bad_input_exits_2_with_one_error_line(checkpoint, tmp_path, capsys):
    _, ckpt = checkpoint
    other = build.build_model(templates.load("digits_mlp").model)
    torch.save(other.state_dict(), tmp_path / "mlp.pth")
    cases = [
        (["--format", "onnx", "-o", str(tmp_path / "m.pth")], "name it m.onnx"),
        (["--format", "onnx", "-o", str(tmp_path / "m"), "--opset", "7"], "opset (--opset) must be between"),
        (["--format", "pt2", "-o", str(tmp_path / "m"), "--weights", str(tmp_path / "nope.pth")], "no such file"),
        (["--format", "pt2", "-o", str(tmp_path / "m"), "--weights", str(tmp_path / "mlp.pth")], "does not fit"),
        (["--format", "pt2", "-o", str(tmp_path / "no" / "m")], "does not exist"),
    ]
    for extra, message in cases:
        assert main(["export", "digits_cnn", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert message in err, (extra, err)
        assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth", "mlp.pth"]


def test_console_onnx_export_in_a_real_process(checkpoint, tmp_path):
    _, ckpt = checkpoint
    proc = subprocess.run([sys.executable, "-m", "workbench", "export", "digits_cnn", "--format", "onnx",
                           "-o", str(tmp_path / "digits"), "--weights", str(ckpt), "--opset", "18"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "onnx: wrote" in proc.stdout and "verification: passed" in proc.stdout
    assert "full_check" in proc.stdout
    assert "[torch.onnx]" not in proc.stdout + proc.stderr  # progress lines stay in the log
    assert "FutureWarning" not in proc.stderr
    assert (tmp_path / "digits.onnx").is_file()


def test_untrained_exports_of_one_project_hold_the_same_weights(tmp_path, capsys):
    """Without --weights each command used to draw new random weights: files of separate
    commands disagreed. They are seeded from training.seed, as training's first weights are."""
    from workbench.project import project_file as project

    proj = templates.load("digits_cnn")
    path = project.save(proj, tmp_path / "p.wbproj")
    for name in ("a", "b"):
        torch.manual_seed(len(name) * 7 + ord(name))  # whatever the process drew before
        assert main(["export", str(path), "--format", "state_dict", "-o", str(tmp_path / f"{name}.pth"),
                     "--no-verify"]) == 0
    assert "training.seed 0" in capsys.readouterr().err
    a = torch.load(tmp_path / "a.pth", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(proj.training.seed)
    fresh = build.build_model(proj.model).state_dict()  # where training starts
    assert all(torch.equal(a[k], fresh[k]) for k in a)
