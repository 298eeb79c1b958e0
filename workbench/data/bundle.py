"""Data: a project's ``data`` section -> train / validation datasets, loaders and the task.

``load_data(settings)`` reads the source a project's ``DataSettings`` name (see
workbench.data.sources.registry), splits it deterministically from
``split_seed`` (stratified by class), normalises with statistics of the training part only,
runs the augmentation pipelines once on the first examples (workbench.data.augment: a step that
cannot apply is named here, and a pipeline that resizes sets the input shape), and returns a
``DataBundle``. The bundle's ``task`` says what the data implies: classes,
input shape and dtype, the default loss. ``check_fit`` refuses a model whose input or
output does not fit the task, naming the layer and the fix.

Batches come from ``EpochBatches``: the order is a pure function of (seed, epoch), a run can
start in the middle of an epoch (exact resume), and it shards by rank for torchrun.
"""
from __future__ import annotations

import math
import signal
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from workbench.data import augment
from workbench.data.sources import registry as sources
from workbench.data.sources.base import LazySource, TensorData
from workbench.errors import LayerError, SpecError, WorkbenchError
from workbench.model import build, remedies, shapes
from workbench.model.spec import ModelSpec
from workbench.project.settings import DataSettings

CLASS_LOSSES = ("CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss")
REGRESSION_LOSSES = ("MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss")


@dataclass(frozen=True)
class Task:
    """What the data asks of a model."""

    kind: str  # "classification" or "regression"
    input_shape: tuple[int, ...]
    input_dtype: str = "float32"
    num_classes: int | None = None
    class_names: tuple[str, ...] = ()
    is_image: bool = False
    default_loss: str = "CrossEntropyLoss"
    description: str = ""
    train_size: int = 0
    val_size: int = 0

    @property
    def is_classification(self) -> bool:
        return self.kind == "classification"

    def output_size(self, loss: str | None = None) -> int:
        """How many values the model must output per example for this loss."""
        if not self.is_classification:
            return 1
        if loss == "BCEWithLogitsLoss" and self.num_classes == 2:
            return 1
        return int(self.num_classes or 1)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        out["class_names"] = list(self.class_names)
        return out


def _already_batched(batch):
    return batch


class EpochBatches(Sampler[list[int]]):
    """Batches of indices, shuffled reproducibly per (seed, epoch).

    ``set_epoch(e, skip=k)`` makes the next iteration yield epoch ``e``'s batches from the
    ``k``-th on, without touching the skipped examples. With ``world_size > 1`` each rank
    gets every ``world_size``-th index of the (padded) permutation, like DistributedSampler;
    ``pad=False`` (validation) leaves the shards one example apart in size instead.
    A training epoch drops its last batch only when it would hold a single example
    (BatchNorm cannot train on one).
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1, drop_single: bool = True, pad: bool = True):
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_single, self.pad = rank, world_size, drop_single, pad
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        if self.world_size > 1:
            if self.pad:  # every rank takes as many steps: pad by wrapping, as DistributedSampler does
                order = (order * 2)[:math.ceil(self.n / self.world_size) * self.world_size]
            order = order[self.rank::self.world_size]
        return order

    def __len__(self) -> int:
        m = self.n if self.world_size == 1 else math.ceil(self.n / self.world_size) if self.pad \
            else len(range(self.rank, self.n, self.world_size))
        full, rest = divmod(m, self.batch_size)
        return full + (1 if rest > 1 or (rest == 1 and not self.drop_single) else 0)

    def __iter__(self) -> Iterator[list[int]]:
        order = self.indices()
        bs = self.batch_size
        for b in range(self.skip, len(self)):
            yield order[b * bs:(b + 1) * bs]


@dataclass
class DataBundle:
    """Split datasets plus what they imply; makes loaders on request."""

    task: Task
    train: Dataset
    val: Dataset | None
    settings: DataSettings
    train_index: list[int] = field(default_factory=list)  # positions in the source, for display
    val_index: list[int] = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # normalisation used, as plain lists
    # how an image from elsewhere (workbench.training.predict) becomes an input as validation
    # inputs are made: a source read file by file gives its validation transform (PIL image ->
    # tensor); an in-memory image source gives the value of a white pixel (then ``stats``)
    image_transform: Callable | None = None
    pixel_max: float = 1.0
    feature_names: tuple[str, ...] = ()  # one per input value where the source names them (CSV columns)

    def loader(self, split: str = "train", *, seed: int = 0, rank: int = 0, world_size: int = 1,
               device: torch.device | str | None = None) -> DataLoader:
        """A DataLoader whose ``batch_sampler`` is an ``EpochBatches`` (call its set_epoch)."""
        ds = self.train if split == "train" else self.val
        if ds is None:
            raise WorkbenchError("there is no validation data (data.val_fraction is 0)")
        bs = self.settings.batch_size
        batches = EpochBatches(len(ds), bs, shuffle=split == "train", seed=seed, rank=rank,
                               world_size=world_size, drop_single=split == "train", pad=split == "train")
        workers = self.settings.num_workers
        pin = bool(self.settings.pin_memory) and device is not None and torch.device(device).type == "cuda"
        return DataLoader(ds, batch_sampler=batches, num_workers=workers, pin_memory=pin,
                          collate_fn=_already_batched if isinstance(ds, TensorData) else None,
                          persistent_workers=workers > 0 and self.settings.persistent_workers,
                          worker_init_fn=_worker_init if workers else None,
                          generator=torch.Generator().manual_seed(seed))

    def val_example(self, i: int):
        """The i-th validation example (input tensor, target) for display."""
        if self.val is None:
            raise IndexError(i)
        return self.val[i]


def _worker_init(_worker_id: int) -> None:
    # Ctrl-C is the main process's business: it stops after the current step. A worker that
    # died of SIGINT would turn that clean stop into a DataLoader error.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ---------------------------------------------------------------- loading

def load_data(settings: DataSettings | dict, *, allow_download: bool | None = None) -> DataBundle:
    """Read, split and normalise the data a project's ``data`` settings describe (or a ``data``
    section as JSON, e.g. ``{"source": "wine", "batch_size": 32}``, validated here).

    Raises WorkbenchError with what to do for a missing or unreadable source.
    """
    if not isinstance(settings, DataSettings):
        problems: list = []
        settings = DataSettings.from_json(dict(settings or {}), "$.data", problems)
        if problems:
            raise SpecError(problems)
    if allow_download is not None:
        settings = replace(settings, download=bool(allow_download))
    raw = sources.read(settings)
    return _split(raw, settings)


def _split(raw, settings: DataSettings) -> DataBundle:
    n = raw.size
    train_idx, val_idx = split_parts(raw, settings)
    if not train_idx:
        raise WorkbenchError(f"{raw.name}: {n} examples leave none for training with val_fraction "
                             f"{settings.val_fraction:g}; lower val_fraction or add examples")
    train, val, stats = raw.make_datasets(train_idx, val_idx, settings)
    val_size = len(val) if val is not None else 0
    shape = tuple(raw.input_shape)
    if settings.augment_train or settings.augment_eval:  # each step meets the data now, not mid-run
        shape = augment.input_shape(train, val if val_size else None) or shape
    task = Task(
        kind="classification" if raw.class_names is not None else "regression",
        input_shape=shape, input_dtype=raw.input_dtype,
        num_classes=len(raw.class_names) if raw.class_names is not None else None,
        class_names=tuple(raw.class_names or ()), is_image=raw.is_image,
        default_loss="CrossEntropyLoss" if raw.class_names is not None else "MSELoss",
        description=f"{raw.name}: {len(train)} training / {val_size} validation examples",
        train_size=len(train), val_size=val_size)
    lazy = isinstance(raw, LazySource)
    return DataBundle(task, train, val if val_size else None, settings, train_idx,
                      val_idx if raw.val is None else list(range(val_size)), stats,
                      image_transform=raw.val_transform if lazy else None,
                      pixel_max=1.0 if lazy else float(getattr(raw, "pixel_max", 1.0)),
                      feature_names=tuple(getattr(raw, "feature_names", None) or ()))


def split_parts(raw, settings: DataSettings) -> tuple[list[int], list[int]]:
    """Positions in the source of the training and validation examples, as ``load_data`` splits
    them (the Data browser counts its splits with this); none for validation where the source
    has its own validation part (MNIST's test files)."""
    if raw.val is not None:
        return list(range(raw.size)), []
    return split_indices(raw.split_targets(), settings.val_fraction, settings.split_seed, stratify=raw.stratify)


def split_indices(targets: torch.Tensor, val_fraction: float, seed: int,
                  stratify: bool = True) -> tuple[list[int], list[int]]:
    """Deterministic train / validation indices; per class when stratified."""
    n = len(targets)
    if val_fraction <= 0 or n < 2:
        return list(range(n)), []
    g = torch.Generator().manual_seed(seed)
    groups = [torch.nonzero(targets == c).flatten() for c in torch.unique(targets)] if stratify \
        else [torch.arange(n)]
    val: list[int] = []
    for members in groups:
        perm = members[torch.randperm(len(members), generator=g)]
        val.extend(perm[:int(round(len(members) * val_fraction))].tolist())
    if not val:
        val = [int(torch.randint(n, (1,), generator=g))]
    chosen = set(val)
    return [i for i in range(n) if i not in chosen], sorted(val)


# ---------------------------------------------------------------- fit check

def check_fit(spec: ModelSpec, task: Task, loss: str | None = None) -> build.ModelInfo:
    """Raise a LayerError naming the layer and the fix when the model does not fit the data."""
    if not spec.layers:
        raise WorkbenchError(f"the model has no layers; add layers ending in Linear(out_features="
                             f"{task.output_size(loss)})")
    info = build.check(spec)
    first = spec.layers[0]
    if tuple(spec.input_shape) != tuple(task.input_shape):
        raise LayerError(first.id, first.type, "1",
                         f"the model input is {shapes.fmt(tuple(spec.input_shape))} but the data "
                         f"({task.description}) gives {shapes.fmt(task.input_shape)}",
                         f"set the model input shape to {list(task.input_shape)}",
                         remedy=remedies.match_input(task.input_shape) if spec.input_dtype == task.input_dtype
                         else None)  # a dtype change needs other layers (an Embedding): a choice
    if spec.input_dtype != task.input_dtype:
        raise LayerError(first.id, first.type, "1",
                         f"the model takes {spec.input_dtype} input but the data gives {task.input_dtype}",
                         f"set the model input dtype to {task.input_dtype}")
    loss = loss or task.default_loss
    _check_loss(spec, task, loss)
    want = (task.output_size(loss),)
    out = info.output_shape
    binary_pair = loss == "BCEWithLogitsLoss" and task.num_classes == 2 and out == (2,)  # one logit per class
    if out != want and not binary_pair:
        last = info.layers[-1]
        what = (f"{task.num_classes} classes" if task.is_classification else "one number to predict")
        if out is not None and len(out) == 1:
            linear = _last_linear(info)
            target = linear or last
            fix = (f"set out_features of '{linear.id}' to {want[0]}" if linear
                   else f"end the model with Linear(out_features={want[0]})")
            raise LayerError(target.id, target.type, target.position,
                             f"the model outputs {out[0]} values per example but the data has {what} "
                             f"(loss {loss} needs {want[0]})", fix,
                             remedy=remedies.set_args(linear.id, out_features=want[0]) if linear else None)
        raise LayerError(last.id, last.type, last.position,
                         f"the model outputs {shapes.fmt(out)} per example but the data has {what}, "
                         f"so it must output {shapes.fmt(want)}",
                         f"end the model with Flatten and Linear(out_features={want[0]})")
    return info


def _last_linear(info: build.ModelInfo):
    """The last top-level Linear, if only shape-keeping layers follow it."""
    for layer in reversed(info.layers):
        if layer.type == "Linear":
            return layer
        if layer.in_shape != layer.out_shape:
            return None
    return None


def _check_loss(spec: ModelSpec, task: Task, loss: str) -> None:
    last = spec.layers[-1]
    pos = str(len(spec.layers))
    if task.is_classification and loss in REGRESSION_LOSSES:
        raise WorkbenchError(f"loss {loss} compares numbers, but this data has {task.num_classes} classes; "
                             "set training.loss to CrossEntropyLoss (or auto)")
    if not task.is_classification and loss in CLASS_LOSSES:
        raise WorkbenchError(f"loss {loss} needs class labels, but this data's target is a number; set "
                             "training.loss to MSELoss (or auto), or data.task to classification")
    if loss == "NLLLoss" and last.type != "LogSoftmax":
        raise LayerError(last.id, last.type, pos, "NLLLoss expects log-probabilities but the model does "
                         "not end with LogSoftmax", "add LogSoftmax(dim=1) at the end, or use "
                         "CrossEntropyLoss")
    if loss in ("CrossEntropyLoss", "BCEWithLogitsLoss") and last.type in ("Softmax", "LogSoftmax", "Sigmoid"):
        raise LayerError(last.id, last.type, pos, f"{loss} applies {last.type.lower()} itself, so the "
                         "model must output raw scores", f"remove '{last.id}' (or use NLLLoss after "
                         "LogSoftmax)", remedy=remedies.remove(last.id) if len(spec.layers) > 1 else None)

