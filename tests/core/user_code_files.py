"""Python files a user brings (Custom layers, a custom Dataset) and projects that name them,
shared by the core and window tests of workbench.user_code."""
from __future__ import annotations

import json
from pathlib import Path

BLOCKS = '''import pathlib

import torch
from torch import nn

pathlib.Path(__file__).with_name("IMPORTED").write_text("the file ran")  # the marker: imported


class Block(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.conv(x))


class NeedsValues(nn.Module):
    """Runs only on real tensors (.item() on meta raises)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = x.flatten(1)
        if x.abs().sum().item() < 0:
            return x
        return self.fc(x)


class Broken(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        raise ValueError(f"width {width} is not supported")


class NotAModule:
    pass
'''

DATASET = '''import torch
from torch.utils.data import Dataset


class Squares(Dataset):
    """64 8x8 one-channel images: class 0 dark, class 1 bright."""

    def __init__(self, n=64, fail_at=-1):
        g = torch.Generator().manual_seed(0)
        self.y = [i % 2 for i in range(n)]
        self.x = [torch.rand(1, 8, 8, generator=g) * 0.5 + 0.5 * y for y in self.y]
        self.fail_at = fail_at

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if i == self.fail_at:
            raise RuntimeError(f"cannot read item {i}")
        return self.x[i], self.y[i]


class Named(Squares):
    classes = ["dark", "bright", "unused"]


class Values(Dataset):
    def __len__(self):
        return 20

    def __getitem__(self, i):
        return torch.full((3,), float(i)), float(i) * 0.5
'''


def write_blocks(folder: Path) -> Path:
    path = folder / "blocks.py"
    path.write_text(BLOCKS)
    return path


def write_dataset(folder: Path) -> Path:
    path = folder / "squares.py"
    path.write_text(DATASET)
    return path


def custom_layer_project(folder: Path, cls: str = "Block", name: str = "custom.wbproj") -> Path:
    """A project whose first layer is the Custom ``cls`` of blocks.py, named relative to it."""
    write_blocks(folder)
    doc = {"format": "model-workbench/project", "version": 2, "name": "Custom layer",
           "model": {"input": {"shape": [1, 8, 8]}, "layers": [
               {"id": "mine", "type": "Custom", "args": {"file": "blocks.py", "class": cls, "kwargs": {"width": 4}}},
               {"id": "flat", "type": "Flatten"}, {"id": "fc", "type": "Linear", "args": {"out_features": 10}}]},
           "data": {"source": "digits", "batch_size": 32}, "training": {"epochs": 1}}
    path = folder / name
    path.write_text(json.dumps(doc))
    return path


def custom_data_project(folder: Path, cls: str = "Squares", kwargs: dict | None = None,
                        name: str = "data.wbproj") -> Path:
    """A project reading squares.py's ``cls`` as its data (data.source "custom")."""
    write_dataset(folder)
    doc = {"format": "model-workbench/project", "version": 2, "name": "Custom data",
           "model": {"input": {"shape": [1, 8, 8]}, "layers": [
               {"id": "flat", "type": "Flatten"}, {"id": "fc", "type": "Linear", "args": {"out_features": 2}}]},
           "data": {"source": "custom", "custom_file": "squares.py", "custom_class": cls,
                    "custom_kwargs": kwargs or {}, "batch_size": 16},
           "training": {"epochs": 1, "device": "cpu"}}
    path = folder / name
    path.write_text(json.dumps(doc))
    return path
