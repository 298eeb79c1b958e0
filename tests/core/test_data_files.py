"""Data files that are not what they seem (issue 12, items 5 and 10): a FIFO as the CSV, idx or
image file is refused at once (tested in a child process with a timeout, so a regression cannot
hang the suite); an `inf` in a numeric CSV column names the column and line; a corrupt image in
an image folder is found by the data scan, so `workbench train` exits 2 naming it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.cli.main import main
from workbench.data.bundle import load_data
from workbench.errors import WorkbenchError

ROOT = Path(__file__).resolve().parents[2]

LOAD_IN_CHILD = """import json, sys
from workbench.data.bundle import load_data
from workbench.errors import WorkbenchError
try:
    load_data(json.loads(sys.argv[1]))
    print("loaded")
except WorkbenchError as e:
    print("error:", e)
"""


def load_in_child(data: dict) -> str:
    done = subprocess.run([sys.executable, "-c", LOAD_IN_CHILD, json.dumps(data)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done.stdout.strip()


def write_png(path: Path, colour: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (colour, 0, 255 - colour)).save(path)


def test_fifos_as_data_files_are_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "table.csv")
    out = load_in_child({"source": "csv", "path": str(tmp_path / "table.csv")})
    assert out.startswith("error: CSV file") and "is a FIFO (named pipe), not a regular file" in out
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    os.mkfifo(mnist / "train-images-idx3-ubyte")
    (mnist / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 0]))
    out = load_in_child({"source": "mnist", "path": str(mnist)})
    assert "error: idx file" in out and "train-images-idx3-ubyte is a FIFO" in out
    images = tmp_path / "images"
    for i in range(3):
        write_png(images / "a" / f"{i}.png", 10)
        write_png(images / "b" / f"{i}.png", 200)
    os.mkfifo(images / "b" / "pipe.png")
    out = load_in_child({"source": "image_folder", "path": str(images)})
    assert out.startswith("error: cannot read image") and "pipe.png: it is a FIFO" in out


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("cell,what", [("inf", "infinite"), ("-Infinity", "infinite"),
                                       ("1e39", "too large (beyond float32's 3.4e38)")])
def test_an_infinite_number_names_the_column_and_line(tmp_path, cell, what):
    path = write(tmp_path / "t.csv", f"size,rooms,kind\n1.5,3,a\n2.5,{cell},b\n\n3.5,4,a\n")
    with pytest.raises(WorkbenchError) as err:
        load_data({"source": "csv", "path": str(path)})
    assert str(err.value) == (f"{path} line 3: column 'rooms' holds {cell!r}, which is {what}; use a finite "
                              "number, or leave the cell empty to mark it missing")
    path = write(tmp_path / "y.csv", f"size,price\n1,2\n2,3\n3,{cell}\n")
    with pytest.raises(WorkbenchError, match=r"line 4: column 'price' holds"):
        load_data({"source": "csv", "path": str(path), "task": "regression"})


def test_inf_in_a_text_column_stays_a_category(tmp_path):
    path = write(tmp_path / "t.csv", "x,grade,y\n1,inf,a\n2,low,b\n3,inf,a\n4,low,b\n")
    bundle = load_data({"source": "csv", "path": str(path), "val_fraction": 0})
    assert bundle.task.input_shape == (3,)  # x, plus 'grade' one-hot over {inf, low}


def test_train_on_an_image_folder_with_a_corrupt_file_exits_2_naming_it(tmp_path, capsys):
    images = tmp_path / "images"
    for i in range(6):
        write_png(images / "cat" / f"{i}.png", 20)
        write_png(images / "dog" / f"{i}.png", 230)
    broken = images / "dog" / "4.png"
    broken.write_bytes(broken.read_bytes()[:45])  # a truncated PNG: the header reads, the pixels do not
    doc = {"format": "model-workbench/project", "version": 1, "name": "pets",
           "model": {"input": {"shape": [3, 8, 8]}, "layers": [
               {"id": "flat", "type": "Flatten"}, {"id": "fc", "type": "Linear", "args": {"out_features": 2}}]},
           "data": {"source": "image_folder", "path": str(images), "batch_size": 4},
           "training": {"epochs": 1, "device": "cpu", "tensorboard": False}}
    project = tmp_path / "pets.wbproj"
    project.write_text(json.dumps(doc))
    assert main(["train", str(project), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot read image {broken}: "), err
    assert "remove or replace the file" in err[0]
    assert not (tmp_path / "run").exists()  # refused before the run began
    broken.unlink()
    assert main(["train", str(project), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert (tmp_path / "run" / "last.ckpt").exists()


def test_several_broken_images_are_counted(tmp_path):
    images = tmp_path / "images"
    for i in range(4):
        write_png(images / "a" / f"{i}.png", 10)
        write_png(images / "b" / f"{i}.png", 200)
    for i in range(3):
        (images / "b" / f"{i}.png").write_bytes(b"GIF89a broken")
    with pytest.raises(WorkbenchError, match=r"\(3 broken images in all; the others: 1\.png, 2\.png\)"):
        load_data({"source": "image_folder", "path": str(images)})


def test_negative_idx_labels_are_refused(tmp_path):
    def idx(t: torch.Tensor, code: int) -> bytes:
        return bytes([0, 0, code, t.dim()]) + b"".join(d.to_bytes(4, "big") for d in t.shape) + t.numpy().tobytes()

    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx(torch.zeros(4, 2, 2, dtype=torch.uint8), 0x08))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx(torch.tensor([0, 1, -1, 2], dtype=torch.int8), 0x09))
    with pytest.raises(WorkbenchError, match="the train labels include -1; class labels start at 0"):
        load_data({"source": "mnist", "path": str(tmp_path)})


def test_idx_headers_with_empty_or_impossible_shapes(tmp_path):
    from workbench.data.sources.idx import read_idx

    empty = tmp_path / "empty-idx1-ubyte"
    empty.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 0]))  # found by the fuzz test: torch.frombuffer refused it
    assert read_idx(empty).shape == (0,)
    huge = tmp_path / "huge-idx3-ubyte"
    huge.write_bytes(bytes([0, 0, 8, 3]) + (0).to_bytes(4, "big") + (2 ** 31).to_bytes(4, "big") * 2)
    with pytest.raises(WorkbenchError, match=r"far beyond any data set"):
        read_idx(huge)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + bytes(12))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(empty.read_bytes())
    with pytest.raises(WorkbenchError, match="holds no images"):
        load_data({"source": "mnist", "path": str(tmp_path)})
