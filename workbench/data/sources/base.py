"""What a data source returns, and the datasets it makes for the split bundle.

Every reader (one module per source family beside this one, listed in ``registry.py``)
returns one of two kinds of source: ``TensorSource`` (everything fits in memory as tensors:
scikit-learn data, CSV tables, MNIST-format files) or ``LazySource`` (files read per example
through a torchvision dataset: image folders, FakeData). ``workbench.data.bundle`` splits a
source and asks it for its train / validation datasets (``make_datasets``); both kinds apply the
project's augmentation pipelines there (workbench.data.augment): data.augment_train to training
examples only, data.augment_eval to validation ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils.data import Dataset, Subset

from workbench.data import augment
from workbench.errors import WorkbenchError
from workbench.project.settings import DataSettings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def chosen_stats(settings: DataSettings, mean: list[float], std: list[float],
                 what: str = "channels") -> tuple[list[float], list[float]]:
    """The normalisation to use: ``data.mean`` / ``data.std`` where set (the data browser's
    "Use for normalisation"), else ``mean`` / ``std`` (computed at load, or a source's
    defaults). A list of the wrong length is a WorkbenchError naming the setting."""
    out = []
    for name, given, own in (("mean", settings.mean, mean), ("std", settings.std, std)):
        if isinstance(given, (int, float)):  # a "floats" setting may be one number
            given = [given]
        if given is not None and len(given) != len(own):
            raise WorkbenchError(f"data.{name} has {len(given)} value(s) but the data has {len(own)} {what}; "
                                 f"rescan in the Data dock and use its figures, or clear data.{name}")
        out.append(list(given) if given is not None else list(own))
    return out[0], out[1]


class TensorData(Dataset):
    """Examples held in memory as two tensors; batches are fetched with one indexing op."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor,
                 augment: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.x, self.y, self.augment = x, y, augment

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        x = self.x[i]
        if self.augment is not None:
            x = self.augment(x.unsqueeze(0))[0]
        return x, self.y[i]

    def __getitems__(self, indices: list[int]):
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.x[idx]
        if self.augment is not None:
            x = self.augment(x)
        return x, self.y[idx]


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
    flip_ok: bool = True  # horizontal flips are a fair augmentation (not for digits; as project_file._v2_to_v3)
    pixel_max: float = 1.0  # images: the value of a white pixel in x (scikit-learn's digits: 16)
    feature_names: list[str] | None = None  # tables: one name per input value (CSV columns, one-hot "col=value")
    input_dtype: str = "float32"  # "int64": token ids (a custom Dataset's whole-number inputs)

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

    def make_datasets(self, train_idx: list[int], val_idx: list[int], settings: DataSettings):
        ti = torch.as_tensor(train_idx, dtype=torch.long)
        xt, yt = self.x[ti].contiguous(), self.y[ti].contiguous()
        if self.val_x is not None:
            xv, yv = self.val_x, self.val_y
        else:
            vi = torch.as_tensor(val_idx, dtype=torch.long)
            xv, yv = self.x[vi].contiguous(), self.y[vi].contiguous()
        train_steps, eval_steps = augment.pipelines(settings)
        if (len(train_steps) or len(eval_steps)) and not (self.is_image and xt.dim() == 4):
            where = "data.augment_train" if len(train_steps) else "data.augment_eval"
            raise WorkbenchError(f"{where}: {self.name} holds tables, not images; augmentation applies to "
                                 "images (clear the pipeline)")
        stats: dict = {}
        mean = std = None
        if settings.normalize:
            dims = (0, 2, 3) if self.is_image and xt.dim() == 4 else (0,)
            mean = xt.mean(dim=dims, keepdim=True)
            std = xt.std(dim=dims, keepdim=True) if len(xt) > 1 else torch.ones_like(mean)
            std = torch.where(std > 1e-8, std, torch.ones_like(std))
            mean, std = (torch.tensor(v, dtype=xt.dtype).reshape(mean.shape)
                         for v in chosen_stats(settings, mean.flatten().tolist(), std.flatten().tolist(),
                                               "channels" if dims != (0,) else "input values"))
            stats = {"mean": mean.flatten().tolist(), "std": std.flatten().tolist()}
        own = train_steps.normalize_at is not None  # the pipelines normalise themselves
        if own:
            stats = augment.normalize_stats(train_steps)

        def dataset(x, y, steps):  # a pipeline draws per example; without one the values are scaled once
            if len(steps):
                return TensorData(x, y, augment.PerExample(steps, self.pixel_max, mean, std))
            return TensorData((x - mean) / std if mean is not None and not own else x, y)
        return dataset(xt, yt, train_steps), (dataset(xv, yv, eval_steps) if len(yv) else None), stats


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
    input_dtype: str = "float32"  # "int64": token ids (a custom Dataset's whole-number inputs)
    val = None

    @property
    def size(self) -> int:
        return len(self.base)

    @property
    def stratify(self) -> bool:
        return self.targets is not None

    def split_targets(self) -> torch.Tensor:
        return self.targets if self.targets is not None else torch.zeros(self.size, dtype=torch.long)

    def make_datasets(self, train_idx: list[int], val_idx: list[int], settings: DataSettings):
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


Source = TensorSource | LazySource
Reader = Callable[[DataSettings], Source]  # a project's data settings -> the source they name
