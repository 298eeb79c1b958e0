"""Where examples come from: each reader returns a source that data.py splits and wraps.

Two kinds of source: ``TensorSource`` (everything fits in memory as tensors: scikit-learn
data, CSV tables, MNIST-format files) and ``LazySource`` (files read per example through
a torchvision dataset: image folders, FakeData). Nothing here downloads unless the project
allows it, and then it fails at once when offline.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils.data import Dataset, Subset

from workbench.errors import WorkbenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class TensorSource:
    """Inputs ``x`` (N, *shape) float32 and targets ``y`` (N,) long or (N, 1) float in memory."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    class_names: list[str] | None  # None: regression
    is_image: bool = False
    val_x: torch.Tensor | None = None  # a validation part the source defines itself
    val_y: torch.Tensor | None = None
    flip_ok: bool = True  # horizontal flips are a fair augmentation (not for digits)

    @property
    def size(self) -> int:
        return len(self.y)

    def split_targets(self) -> torch.Tensor:
        return self.y.reshape(len(self.y), -1)[:, 0]

    @property
    def stratify(self) -> bool:
        return self.class_names is not None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def val(self):
        return None if self.val_x is None else (self.val_x, self.val_y)

    def make_datasets(self, train_idx: list[int], val_idx: list[int], cfg: dict):
        from workbench.data.bundle import TensorData

        ti = torch.as_tensor(train_idx, dtype=torch.long)
        xt, yt = self.x[ti].contiguous(), self.y[ti].contiguous()
        if self.val_x is not None:
            xv, yv = self.val_x, self.val_y
        else:
            vi = torch.as_tensor(val_idx, dtype=torch.long)
            xv, yv = self.x[vi].contiguous(), self.y[vi].contiguous()
        stats: dict = {}
        if cfg["normalize"]:
            dims = (0, 2, 3) if self.is_image and xt.dim() == 4 else (0,)
            mean = xt.mean(dim=dims, keepdim=True)
            std = xt.std(dim=dims, keepdim=True) if len(xt) > 1 else torch.ones_like(mean)
            std = torch.where(std > 1e-8, std, torch.ones_like(std))
            xt, xv = (xt - mean) / std, (xv - mean) / std
            stats = {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
        augment = None
        if cfg["augment"] and self.is_image and xt.dim() == 4:
            from workbench.data.sources.images import ShiftFlip

            augment = ShiftFlip(max(1, xt.shape[-1] // 8), flip=self.flip_ok)
        return TensorData(xt, yt, augment), (TensorData(xv, yv) if len(yv) else None), stats


@dataclass
class LazySource:
    """A dataset read example by example (PIL image, class index), with per-split transforms."""

    name: str
    base: Dataset
    class_names: list[str]
    input_shape: tuple[int, ...]
    train_transform: Callable
    val_transform: Callable
    targets: torch.Tensor | None = None  # known labels allow a stratified split
    stats: dict = field(default_factory=dict)
    is_image: bool = True
    val = None

    @property
    def size(self) -> int:
        return len(self.base)

    @property
    def stratify(self) -> bool:
        return self.targets is not None

    def split_targets(self) -> torch.Tensor:
        return self.targets if self.targets is not None else torch.zeros(self.size, dtype=torch.long)

    def make_datasets(self, train_idx: list[int], val_idx: list[int], cfg: dict):
        train = Transformed(Subset(self.base, train_idx), self.train_transform)
        val = Transformed(Subset(self.base, val_idx), self.val_transform) if val_idx else None
        return train, val, dict(self.stats)


class Transformed(Dataset):
    """Applies a transform to the input of (input, target) pairs."""

    def __init__(self, base: Dataset, transform: Callable):
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = self.base[i]
        return self.transform(x), y


# ---------------------------------------------------------------- dispatch

def read(cfg: dict):
    source = cfg["source"]
    if source == "digits":
        return digits()
    if source in ("iris", "wine", "breast_cancer"):
        return sklearn_table(source, cfg["task"])
    if source == "csv":
        from workbench.data.sources.tables import read_csv

        return read_csv(cfg["path"], cfg["target"], cfg["task"])
    if source in ("mnist", "fashion_mnist"):
        from workbench.data.sources.images import read_mnist

        return read_mnist(cfg["path"], source, cfg["download"])
    if source == "image_folder":
        from workbench.data.sources.images import read_image_folder

        return read_image_folder(cfg)
    if source == "fake":
        from workbench.data.sources.images import read_fake

        return read_fake(cfg)
    raise WorkbenchError(f"unknown data source {source!r}")


def digits() -> TensorSource:
    """scikit-learn's 1,797 8x8 handwritten digits (shipped inside scikit-learn), values 0..16."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1)
    y = torch.as_tensor(d.target, dtype=torch.long)
    return TensorSource("scikit-learn digits", x, y, [str(c) for c in d.target_names], is_image=True,
                        flip_ok=False)


def sklearn_table(name: str, task: str = "auto") -> TensorSource:
    from sklearn import datasets

    d = getattr(datasets, f"load_{name}")()
    x = torch.as_tensor(d.data, dtype=torch.float32)
    if task == "regression":
        return TensorSource(f"scikit-learn {name}", x, torch.as_tensor(d.target, dtype=torch.float32)[:, None],
                            None)
    y = torch.as_tensor(d.target, dtype=torch.long)
    return TensorSource(f"scikit-learn {name}", x, y, [str(c) for c in d.target_names])
