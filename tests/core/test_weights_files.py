"""Weights files that are not what they claim (issue 12, item 3): text, meta / sparse / nested
tensors, a model description nested 100,000 deep, a pickle that asks to run code, a FIFO, a
backbone file for another architecture. Each is one WorkbenchError naming the file; through
`workbench export --weights` and a project's backbone weights, exit 2 and one `error:` line."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.cli.main import main
from workbench.errors import WorkbenchError
from workbench.model import backbones, build, weights
from workbench.project import project_file, templates

ROOT = Path(__file__).resolve().parents[2]


class RunsCode:
    """A pickle whose loading would call os.system (what a malicious weights file does)."""

    def __reduce__(self):
        return os.system, ("touch /tmp/workbench-test-PWNED",)


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3))


def read_error(path: Path) -> str:
    with pytest.raises(WorkbenchError) as err:
        weights.load_into(small_model(), path)
    text = str(err.value)
    assert str(path) in text
    return text


def test_a_text_file_is_said_to_be_text(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("epoch 3: loss 0.12\nthese are not weights\n")
    assert "it is a text file" in read_error(path)
    (tmp_path / "empty.pth").write_bytes(b"")
    assert "empty" in read_error(tmp_path / "empty.pth")
    (tmp_path / "bin.pth").write_bytes(bytes(range(1, 200)))
    assert "neither a zip archive nor a pickle" in read_error(tmp_path / "bin.pth")


@pytest.mark.parametrize("tensor,words", [
    (lambda: torch.empty(3, 4, device="meta"), "has no values (saved from the meta device)"),
    (lambda: torch.eye(3, 4).to_sparse(), "sparse_coo tensor; save it dense"),
    (lambda: torch.eye(3, 4).to_sparse_csr(), "sparse_csr tensor"),
    (lambda: torch.quantize_per_tensor(torch.ones(3, 4), 0.1, 0, torch.qint8), "is quantized"),
    (lambda: torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]), "nested tensor"),
])
def test_tensors_without_plain_values_are_refused_by_name(tmp_path, tensor, words):
    path = tmp_path / "odd.pth"
    torch.save({"0.weight": tensor(), "0.bias": torch.zeros(3)}, path)
    text = read_error(path)
    assert "tensor '0.weight'" in text and words in text


def test_a_state_dict_with_a_number_for_a_name_is_refused(tmp_path):
    path = tmp_path / "keys.pth"
    torch.save({"format": weights.FORMAT, "state_dict": {7: torch.ones(2)}}, path)
    assert "named 7, not a string" in read_error(path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_model_description_nested_100000_deep_is_ignored_with_a_note(tmp_path, suffix):
    model = small_model()
    path = tmp_path / f"deep{suffix}"
    if suffix == ".pth":
        torch.save({"format": weights.FORMAT, "spec": "[" * 100000, "state_dict": model.state_dict()}, path)
    else:
        from safetensors.torch import save_file

        save_file(dict(model.state_dict()), str(path), metadata={"format": weights.FORMAT, "spec": "[" * 100000})
    loaded = weights.read(path)
    assert loaded.spec is None
    assert loaded.notes == ["its model description is nested too deeply to read and was ignored"]
    report = weights.load_into(small_model(), loaded)
    assert report.ok and "nested too deeply" in report.describe()
    torch.save({"format": weights.FORMAT, "spec": {"layers": 5}, "state_dict": model.state_dict()},
               tmp_path / "odd.pth")
    assert weights.read(tmp_path / "odd.pth").spec is None  # a description of the wrong shape


def test_pickles_that_ask_to_run_code_are_refused_naming_the_function(tmp_path):
    marker = Path("/tmp/workbench-test-PWNED")
    marker.unlink(missing_ok=True)
    torch.save({"0.weight": torch.ones(3, 4), "hook": RunsCode()}, tmp_path / "torch_saved.pth")
    with open(tmp_path / "plain_pickle.pth", "wb") as fh:  # protocol 4: torch stops before the global
        pickle.dump(RunsCode(), fh, protocol=4)
    with open(tmp_path / "protocol2.pth", "wb") as fh:
        pickle.dump({"w": RunsCode()}, fh, protocol=2)
    for name in ("torch_saved.pth", "plain_pickle.pth", "protocol2.pth"):
        text = read_error(tmp_path / name)
        assert "refused: the file asks to run code (posix.system)" in text, text
        assert "weights_only=True" in text
    from workbench.training import checkpoint

    with pytest.raises(WorkbenchError, match=r"refused: the file asks to run code \(posix\.system\)"):
        checkpoint.load(tmp_path / "torch_saved.pth")
    assert not marker.exists()


def test_a_fifo_is_refused_without_blocking(tmp_path):
    """In a child process with a timeout, so a regression cannot hang the suite."""
    fifo = tmp_path / "w.pth"
    os.mkfifo(fifo)
    code = ("import sys; from workbench.model import weights\n"
            "try:\n    weights.read(sys.argv[1])\nexcept weights.WorkbenchError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "is a FIFO (named pipe), not a regular file" in done.stdout and str(fifo) in done.stdout


def test_backbone_weights_for_another_architecture_name_the_file(tmp_path):
    import torchvision

    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    with pytest.raises(WorkbenchError) as err:
        backbones.build_backbone("resnet18", weights=str(path))
    text = str(err.value)
    assert text.startswith(f"{path} does not hold resnet18 weights") and "missing" in text
    assert "set weights to 'none'" in text and "\n" not in text
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(WorkbenchError, match="it is a text file"):
        backbones.build_backbone("resnet18", weights=str(tmp_path / "text.pth"))
    resnet = torchvision.models.resnet18(weights=None).state_dict()
    resnet["fc.weight"] = resnet["fc.weight"][:10]
    torch.save(resnet, tmp_path / "r18_10.pth")
    wrong_fc = r"1 of the wrong shape \(fc.weight: file \[10, 512\], resnet18 \[1000, 512\]"
    with pytest.raises(WorkbenchError, match=wrong_fc):
        backbones.build_backbone("resnet18", weights=str(tmp_path / "r18_10.pth"))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def test_export_weights_cli_bad_files_exit_2_with_one_line(tmp_path, capsys):
    (tmp_path / "text.pth").write_text("not weights")
    torch.save({"w": torch.empty(2, device="meta")}, tmp_path / "meta.pth")
    torch.save({"w": RunsCode()}, tmp_path / "code.pth")
    for name, words in (("text.pth", "it is a text file"), ("meta.pth", "has no values"),
                        ("code.pth", "refused: the file asks to run code (posix.system)")):
        path = tmp_path / name
        assert main(["export", "digits_mlp", "--format", "state_dict", "-o", str(tmp_path / "out"),
                     "--weights", str(path)]) == 2
        line = one_error_line(capsys)
        assert str(path) in line and words in line
    assert not (tmp_path / "out.pth").exists()


def test_train_with_backbone_weights_of_another_arch_exits_2(tmp_path, capsys):
    import torchvision

    wrong = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), wrong)
    doc = {"format": "model-workbench/project", "version": 1, "name": "bb",
           "model": {"input": {"shape": [3, 32, 32]}, "layers": [
               {"id": "bb", "type": "resnet18", "args": {"weights": str(wrong)}},
               {"id": "fc", "type": "Linear", "args": {"out_features": 2}}]},
           "data": {"source": "fake", "fake_size": 8, "fake_shape": [3, 32, 32], "fake_classes": 2,
                    "batch_size": 4},
           "training": {"epochs": 1, "device": "cpu", "tensorboard": False}}
    path = tmp_path / "bb.wbproj"
    path.write_text(json.dumps(doc))
    project_file.load(path)  # a valid project: only the weights file is wrong
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    line = one_error_line(capsys)
    assert f"{wrong} does not hold resnet18 weights" in line
    assert not (tmp_path / "run" / "last.ckpt").exists()


def test_the_window_path_reads_through_the_same_checks(tmp_path):
    """The export dialog's Open weights calls weights.read then weights.check: same errors."""
    model = build.build_model(templates.load("digits_mlp").model)
    torch.save({k: v.to_sparse() for k, v in model.state_dict().items()}, tmp_path / "sparse.pth")
    with pytest.raises(WorkbenchError, match="sparse_coo tensor"):
        weights.read(tmp_path / "sparse.pth")
