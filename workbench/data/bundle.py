"""Data: a project's ``data`` section -> train / validation datasets, loaders and the task.

``load_data(settings)`` reads the source a project's ``DataSettings`` name (see
workbench.data.sources.registry), splits it deterministically from
``split_seed`` (stratified by class), normalises with statistics of the training part only,
runs the augmentation pipelines once on the first examples (workbench.data.augment: a step that
cannot apply is named here, and a pipeline that resizes sets the input shape), and returns a
``DataBundle``. A test part (``data.test_fraction``, carved from what the validation split
leaves for training, so validation stays as it was) or separate validation / test files
(``data.val_path`` / ``data.test_path``, read as ``data.path`` is, classes matched by name,
normalised with the training part's statistics) never enter training or validation.
The bundle's ``task`` says what the data implies: classes, input shape and dtype,
the default loss. ``check_fit`` refuses a model whose input or
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
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from workbench.data import augment
from workbench.data.sources import registry as sources, tables
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
    test_size: int = 0

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
    test: Dataset | None = None  # the test part (data.test_fraction or data.test_path): never trained on
    test_index: list[int] = field(default_factory=list)
    stats: dict = field(default_factory=dict)  # normalisation used, as plain lists
    # how an image from elsewhere (workbench.training.predict) becomes an input as validation
    # inputs are made: a source read file by file gives its validation transform (PIL image ->
    # tensor); an in-memory image source gives the value of a white pixel (then ``stats``)
    image_transform: Callable | None = None
    pixel_max: float = 1.0
    feature_names: tuple[str, ...] = ()  # one per input value where the source names them (CSV columns)

    def loader(self, split: str = "train", *, seed: int = 0, rank: int = 0, world_size: int = 1,
               device: torch.device | str | None = None) -> DataLoader:
        """A DataLoader whose ``batch_sampler`` is an ``EpochBatches`` (call its set_epoch);
        ``split`` is "train", "val" or "test"."""
        ds = self.split(split)
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

    def split(self, name: str) -> Dataset:
        """The dataset of a split ("train", "val" or "test"); WorkbenchError when it is empty."""
        ds = {"train": self.train, "val": self.val, "test": self.test}.get(name)
        if ds is None and name == "val":
            raise WorkbenchError("there is no validation data (data.val_fraction is 0 and no data.val_path)")
        if ds is None and name == "test":
            raise WorkbenchError("there is no test data; set data.test_fraction (e.g. 0.2) or data.test_path")
        if ds is None:
            raise WorkbenchError(f"unknown split {name!r}; use train, val or test")
        return ds

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
    train_idx, val_idx, test_idx = split_parts(raw, settings)
    if not train_idx:
        raise WorkbenchError(f"{raw.name}: {n} examples leave none for training with val_fraction "
                             f"{settings.val_fraction:g} and test_fraction {settings.test_fraction:g}; lower them "
                             "or add examples")
    val_file = read_other(raw, settings, settings.val_path, train_idx) if settings.val_path else None
    test_file = read_other(raw, settings, settings.test_path, train_idx) if settings.test_path else None
    source, (val_pos, test_pos) = _appended(raw, [val_file, test_file])
    if val_file is not None:
        val_idx = val_pos
    if test_file is not None:
        test_idx = test_pos
    train, val, stats = source.make_datasets(train_idx, val_idx, settings)
    test = _own_val_dropped(source).make_datasets(train_idx, test_idx, settings)[1] if test_idx else None
    val_size = len(val) if val is not None else 0
    shape = tuple(raw.input_shape)
    if settings.augment_train or settings.augment_eval:  # each step meets the data now, not mid-run
        shape = augment.input_shape(train, val if val_size else None) or shape
    test_size = len(test) if test is not None else 0
    task = Task(
        kind="classification" if raw.class_names is not None else "regression",
        input_shape=shape, input_dtype=raw.input_dtype,
        num_classes=len(raw.class_names) if raw.class_names is not None else None,
        class_names=tuple(raw.class_names or ()), is_image=raw.is_image,
        default_loss="CrossEntropyLoss" if raw.class_names is not None else "MSELoss",
        description=f"{raw.name}: {len(train)} training / {val_size} validation "
                    f"{f'/ {test_size} test ' if test_size else ''}examples",
        train_size=len(train), val_size=val_size, test_size=test_size)
    lazy = isinstance(raw, LazySource)
    return DataBundle(task, train, val if val_size else None, settings, train_idx,
                      val_idx if raw.val is None else list(range(val_size)),
                      test if test_size else None, test_idx, stats,
                      image_transform=raw.val_transform if lazy else None,
                      pixel_max=1.0 if lazy else float(getattr(raw, "pixel_max", 1.0)),
                      feature_names=tuple(getattr(raw, "feature_names", None) or ()))


def split_parts(raw, settings: DataSettings) -> tuple[list[int], list[int], list[int]]:
    """Positions in the ``data.path`` source of the training, validation and test examples, as
    ``load_data`` splits them. Validation: none where the source has its own validation part
    (MNIST's test files) or data.val_path names a file; test: none unless data.test_fraction
    (data.test_path's examples come from that file)."""
    if raw.val is not None or settings.val_path:
        train_idx, val_idx = list(range(raw.size)), []
    else:
        train_idx, val_idx = split_indices(raw.split_targets(), settings.val_fraction, settings.split_seed,
                                           stratify=raw.stratify)
    test_idx: list[int] = []
    if not settings.test_path and settings.test_fraction > 0 and train_idx:
        train_idx, test_idx = _carve_test(raw, train_idx, settings)
    return train_idx, val_idx, test_idx


def _carve_test(raw, train_idx: list[int], settings: DataSettings) -> tuple[list[int], list[int]]:
    """The test part taken out of the training indices: ``test_fraction`` of all examples
    (per class when stratified), seeded by ``split_seed``; the validation part is untouched."""
    share = min(1.0, settings.test_fraction * raw.size / len(train_idx))
    targets = raw.split_targets()[torch.as_tensor(train_idx, dtype=torch.long)]
    keep, held = split_indices(targets, share, settings.split_seed, stratify=raw.stratify)
    return [train_idx[i] for i in keep], [train_idx[i] for i in held]


def read_other(raw, settings: DataSettings, path: str, train_idx: list[int]):
    """A separate validation or test file / folder, read by the source that read ``data.path``
    with the same settings. Its classes are matched to ``raw``'s by name in ``_appended``.
    A CSV file is read with the first file's column types, categories, classes and the training
    rows' (``train_idx``) fill values (``tables.read_like``), so its classes are raw's already."""
    if isinstance(raw, tables.TableSource):
        which = "data.val_path" if path == settings.val_path else "data.test_path"
        try:
            x, y = tables.read_like(path, raw, train_idx)
        except WorkbenchError as exc:
            raise WorkbenchError(f"{which}: {exc}") from None
        return replace(raw, x=x, y=y, val_x=None, val_y=None)
    return sources.read(replace(settings, path=path, val_path=None, test_path=None))


class Relabelled(Dataset):
    """(input, target) pairs of another file's dataset with its class indices mapped to ours."""

    def __init__(self, base: Dataset, lut: list[int]):
        self.base, self.lut = base, lut

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = self.base[i]
        return x, self.lut[int(y)]


def _class_lut(raw, other, path: str) -> list[int] | None:
    """Map ``other``'s class indices to ``raw``'s by name (None: regression)."""
    if (raw.class_names is None) != (other.class_names is None):
        what = "classes" if raw.class_names is not None else "a number to predict"
        raise WorkbenchError(f"{path}: its target is not like data.path's, which has {what}; use a file of the "
                             "same kind (data.task applies to both)")
    if raw.class_names is None:
        return None
    ours = {name: i for i, name in enumerate(raw.class_names)}
    unknown = [name for name in other.class_names if name not in ours]
    if unknown:
        more = ", ..." if len(raw.class_names) > 10 else ""
        raise WorkbenchError(f"{path}: class {unknown[0]!r} is not among data.path's classes "
                             f"({', '.join(map(repr, raw.class_names[:10]))}{more}); the model can only learn the "
                             "classes it trains on")
    return [ours[name] for name in other.class_names]


def _appended(raw, others: list) -> tuple[object, list[list[int]]]:
    """``raw`` with each of ``others`` (separate files; None: absent) appended after its
    examples, and the positions each one's examples got."""
    source, positions, end = raw, [], raw.size
    for other, path in zip(others, ("data.val_path", "data.test_path")):
        if other is None:
            positions.append([])
            continue
        if not other.size:
            raise WorkbenchError(f"{path}: the file holds no examples")
        lut = _class_lut(raw, other, path)
        source = _joined(source, other, lut, path)
        positions.append(list(range(end, end + other.size)))
        end += other.size
    return source, positions


def _joined(source, other, lut: list[int] | None, path: str):
    """One source holding ``source``'s examples, then ``other``'s (targets in ``source``'s classes)."""
    if isinstance(source, LazySource) != isinstance(other, LazySource):
        raise WorkbenchError(f"{path}: read as another kind of data than data.path")
    if isinstance(source, LazySource):
        base = other.base if lut is None else Relabelled(other.base, lut)
        targets = None
        if source.targets is not None and other.targets is not None:
            targets = torch.cat([source.targets, torch.as_tensor(lut)[other.targets]])
        return replace(source, base=ConcatDataset([source.base, base]), targets=targets)
    x, y = other.x, other.y
    if tuple(x.shape[1:]) != tuple(source.x.shape[1:]):
        raise WorkbenchError(f"{path}: its examples have shape {list(x.shape[1:])} but data.path's have "
                             f"{list(source.x.shape[1:])}; the files must hold the same columns (or image size)")
    names_then, names_now = source.feature_names, getattr(other, "feature_names", None)
    if names_then and names_now and list(names_then) != list(names_now):
        first = next(a for a, b in zip(names_then, names_now) if a != b)
        raise WorkbenchError(f"{path}: its columns encode differently from data.path's (input {first!r} differs); "
                             "the files must hold the same columns and values")
    if lut is not None:
        y = torch.as_tensor(lut, dtype=y.dtype)[y]
    return replace(_own_val_dropped(source), x=torch.cat([source.x, x.to(source.x.dtype)]),
                   y=torch.cat([source.y, y.to(source.y.dtype)]))


def _own_val_dropped(source):
    """The source without the validation part it defines itself (MNIST's test files), so its
    ``make_datasets`` makes the second dataset from the indices it is given."""
    return replace(source, val_x=None, val_y=None) if getattr(source, "val_x", None) is not None else source


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

