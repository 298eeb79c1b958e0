"""The project's typed settings: ``DataSettings`` (the ``data`` section) and
``TrainingSettings`` (``training``, holding ``OptimizerSettings`` and ``ScheduleSettings``).

Frozen dataclasses: read them as attributes (``project.training.optimizer.lr``) and change
them with ``dataclasses.replace`` or ``with_value("optimizer.lr", 0.01)``, which give a new
object; a run can keep the one it started with while the window edits the project.

Each field carries its ``Param`` (workbench/model/params.py: kind, default, bounds, help) in
its metadata, the same type layer arguments use: ``params()`` gives them to the window's
form, and ``from_json`` validates a project file's section with them, reporting every
problem with its JSON path. ``to_json`` writes a section back compactly: only the values
that differ from the default, plus the few every file shows (``ALWAYS_SAVED``).
"""
from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from workbench.errors import Problem
from workbench.model.params import REQUIRED, Param, shown

# The data.source names a project may use. The built-in ones are listed here so a project file
# validates without loading the data layer; workbench.data.sources.registry maps each name to
# its reader, and its register_source adds further names (add_data_source).
BUILT_IN_SOURCES = ("digits", "iris", "wine", "breast_cancer", "fake", "image_folder", "csv", "mnist",
                    "fashion_mnist")
DATA_SOURCES: list[str] = list(BUILT_IN_SOURCES)  # the choices of data.source: a live list
PATH_SOURCES: list[str] = ["image_folder", "csv", "mnist", "fashion_mnist"]  # data.path is required
# what data.path names for each source that needs one: (the source in words, "file" or "folder", what it holds)
PATH_KINDS: dict[str, tuple[str, str, str]] = {
    "csv": ("CSV", "file", "a table with a header row"),
    "image_folder": ("image folder", "folder", "one sub-folder of images per class"),
    "mnist": ("MNIST", "folder", "the MNIST idx files"),
    "fashion_mnist": ("Fashion-MNIST", "folder", "the Fashion-MNIST idx files"),
}
OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop")
LOSSES = ("auto", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "BCEWithLogitsLoss")
SCHEDULES = ("none", "step", "cosine", "onecycle")
TASKS = ("auto", "classification", "regression")
MAX_SEED = 2**32 - 1  # numpy's bound; torch takes up to 2**64 - 1, and a seed * 1_000_003 + epoch must fit
_DEVICE = re.compile(r"auto|cpu|cuda|mps|cuda:[0-9]{1,3}")  # used with fullmatch (ASCII digits only)

_PARAM = "workbench.param"
S = TypeVar("S", bound="Settings")


def setting(kind: str, default: Any, help: str, **options) -> Any:
    """A settings field described by a ``Param`` (its name is the field's)."""
    meta = {_PARAM: dict(kind=kind, default=default, help=help, **options)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


class Settings:
    """What the sections share: their Params, validation from JSON, compact JSON, changes."""

    ALWAYS_SAVED: ClassVar[tuple[str, ...]] = ()  # written even when they hold the default

    @classmethod
    def params(cls) -> tuple[Param, ...]:
        """The Params of this section's own values (nested sections not included), in order."""
        return _params(cls)

    @classmethod
    def sections(cls) -> dict[str, type[Settings]]:
        """The nested sections: field name -> their Settings class."""
        return {f.name: f.default_factory for f in dataclasses.fields(cls)
                if _PARAM not in f.metadata and isinstance(f.default_factory, type)
                and issubclass(f.default_factory, Settings)}

    @classmethod
    def from_json(cls: type[S], data: Any, path: str, problems: list[Problem]) -> S:
        """Validate a section read from JSON; every problem goes into ``problems`` with its
        JSON path (a bad value falls back to its default, so one pass finds them all)."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(Problem(path, "must be an object"))
            data = {}
        params, nested = cls.params(), cls.sections()
        names = {p.name for p in params} | set(nested)
        for key in sorted(data.keys() - names):
            problems.append(Problem(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(names))})"))
        values: dict[str, Any] = {}
        for p in params:
            if p.name not in data:
                if p.default is REQUIRED:
                    problems.append(Problem(f"{path}.{p.name}", f"missing ({p.help})"))
                continue
            value, err = p.check(data[p.name])
            if err:
                problems.append(Problem(f"{path}.{p.name}", err))
                continue
            values[p.name] = list(value) if isinstance(value, tuple) else value
        for name, sub in nested.items():
            values[name] = sub.from_json(data.get(name), f"{path}.{name}", problems)
        cls.check_values(values, path, problems)
        return cls(**values)

    @classmethod
    def check_values(cls, values: dict[str, Any], path: str, problems: list[Problem]) -> None:
        """Checks across fields, on the values ``from_json`` read (may correct them)."""

    def to_json(self) -> dict:
        """The section as a project file holds it: values that differ from their default and
        those in ALWAYS_SAVED, then each nested section that has something to say."""
        out: dict[str, Any] = {}
        for p in self.params():
            value = getattr(self, p.name)
            default = list(p.default) if isinstance(p.default, (list, tuple)) else p.default
            if p.name in self.ALWAYS_SAVED or value != default:
                out[p.name] = list(value) if isinstance(value, tuple) else value
        for name in self.sections():
            sub = getattr(self, name).to_json()
            if sub:
                out[name] = sub
        return out

    def to_dict(self) -> dict:
        """Every value, nested sections as dicts (plain data: JSON, cache keys, run records)."""
        return dataclasses.asdict(self)

    def value(self, name: str) -> Any:
        """A value by name; a dotted name reaches into a nested section ('optimizer.lr')."""
        head, _, rest = name.partition(".")
        return getattr(self, head).value(rest) if rest else getattr(self, head)

    def with_value(self: S, name: str, value: Any) -> S:
        """A copy with one value changed (a dotted name changes a nested section's)."""
        head, _, rest = name.partition(".")
        if rest:
            value = getattr(self, head).with_value(rest, value)
        return dataclasses.replace(self, **{head: value})


def path_kind(source: str) -> tuple[str, str, str]:
    """(the source in words, "file" / "folder" / "file or folder", what it holds) of a source
    whose data.path is required."""
    return PATH_KINDS.get(source, (f"{source!r}", "file or folder", "its data"))


def path_needed(source: str) -> str:
    """The one message for a source left without its data.path (the window and the CLI say it)."""
    title, what, holds = path_kind(source)
    return (f"Data: the {title} source needs a {what} ({holds}); pick one with Browse next to Path in the "
            "Training panel, or set data.path in the project file")


def add_data_source(name: str, needs_path: bool = False) -> None:
    """Accept ``data.source = name`` (called by the data layer's ``register_source``)."""
    if name not in DATA_SOURCES:
        DATA_SOURCES.append(name)
    if needs_path and name not in PATH_SOURCES:
        PATH_SOURCES.append(name)


def remove_data_source(name: str) -> None:
    """Forget a name added with ``add_data_source``; the built-in names stay."""
    if name in BUILT_IN_SOURCES:
        return
    for names in (DATA_SOURCES, PATH_SOURCES):
        if name in names:
            names.remove(name)


@functools.cache
def _params(cls: type[Settings]) -> tuple[Param, ...]:
    return tuple(Param(f.name, **f.metadata[_PARAM]) for f in dataclasses.fields(cls) if _PARAM in f.metadata)


@dataclass(frozen=True)
class DataSettings(Settings):
    """The project's ``data`` section: where the examples come from and how they are fed."""

    ALWAYS_SAVED: ClassVar[tuple[str, ...]] = ("source", "val_fraction", "batch_size")

    source: str = setting("choice", "digits", "where the examples come from", choices=DATA_SOURCES)
    path: str | None = setting("str", None, "folder or file for image_folder, csv, mnist, fashion_mnist",
                               nullable=True)
    target: str | None = setting("str", None, "CSV column to predict (default: the last one)", nullable=True)
    task: str = setting("choice", "auto", "classification or regression; 'auto' decides from the target values",
                        choices=TASKS)
    val_fraction: float = setting("float", 0.2, "share of examples held out for validation", min=0.0, max=0.9)
    batch_size: int = setting("int", 64, "examples per step (per process under torchrun)", min=1, max=1 << 16)
    num_workers: int = setting("int", 0, "DataLoader worker processes", min=0, max=64)
    pin_memory: bool = setting("bool", False, "page-locked host memory for faster GPU copies")
    image_size: list[int] | None = setting("ints", None, "resize images to [height, width]", dims=2, min=1,
                                           nullable=True)
    grayscale: bool = setting("bool", False, "convert images to one channel")
    normalize: bool = setting("bool", True, "standardise inputs (per channel for images, per column for tables)")
    augment: bool = setting("bool", False, "random flips and crops for image training data")
    download: bool = setting("bool", False, "allow torchvision to download MNIST-style data (needs internet)")
    split_seed: int = setting("int", 0, "seed of the train / validation split", min=0, max=MAX_SEED)
    fake_size: int = setting("int", 512, "examples FakeData generates", min=2)
    fake_shape: list[int] = setting("shape", [3, 32, 32], "image shape FakeData generates")
    fake_classes: int = setting("int", 10, "classes FakeData generates", min=2)

    @classmethod
    def check_values(cls, values: dict[str, Any], path: str, problems: list[Problem]) -> None:
        source = values.get("source", "digits")
        if source in PATH_SOURCES and not values.get("path"):
            problems.append(Problem(f"{path}.path", path_needed(source), plain=True))


@dataclass(frozen=True)
class OptimizerSettings(Settings):
    """``training.optimizer``: the update rule and its hyper-parameters."""

    ALWAYS_SAVED: ClassVar[tuple[str, ...]] = ("type", "lr")

    type: str = setting("choice", "Adam", "update rule", choices=OPTIMIZERS)
    lr: float = setting("float", 1e-3, "learning rate", min=0.0, max=100.0)
    weight_decay: float = setting("float", 0.0, "L2 penalty (decoupled for AdamW)", min=0.0)
    momentum: float = setting("float", 0.9, "SGD / RMSprop momentum", min=0.0, max=1.0)
    nesterov: bool = setting("bool", False, "Nesterov momentum (SGD)")
    beta1: float = setting("float", 0.9, "Adam / AdamW first-moment decay", min=0.0, max=1.0)
    beta2: float = setting("float", 0.999, "Adam / AdamW second-moment decay", min=0.0, max=1.0)


@dataclass(frozen=True)
class ScheduleSettings(Settings):
    """``training.schedule``: how the learning rate changes over the run."""

    type: str = setting("choice", "none", "how the learning rate changes", choices=SCHEDULES)
    step_size: int = setting("int", 10, "epochs between decays (step)", min=1)
    gamma: float = setting("float", 0.1, "decay factor (step)", min=0.0, max=1.0)
    max_lr: float | None = setting("float", None, "peak rate (onecycle; default 10x lr)", nullable=True, min=0.0)


@dataclass(frozen=True)
class TrainingSettings(Settings):
    """The project's ``training`` section."""

    ALWAYS_SAVED: ClassVar[tuple[str, ...]] = ("loss", "epochs", "device", "seed")

    loss: str = setting("choice", "auto", "objective; 'auto' picks what the data implies", choices=LOSSES)
    epochs: int = setting("int", 10, "passes over the training data", min=1, max=100000)
    device: str = setting("str", "auto", "auto, cpu, cuda, cuda:N or mps")
    seed: int = setting("int", 0, "seed for weights, shuffling and dropout", min=0, max=MAX_SEED)
    grad_clip: float | None = setting("float", None, "clip the gradient norm to this value", nullable=True, min=0.0)
    amp: bool = setting("bool", False, "mixed precision (CUDA only)")
    log_every: int = setting("int", 10, "steps between loss read-outs (each step is still logged)", min=1)
    tensorboard: bool = setting("bool", True, "also write TensorBoard event files when tensorboard is installed")
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)

    @classmethod
    def check_values(cls, values: dict[str, Any], path: str, problems: list[Problem]) -> None:
        dev = values.get("device", "auto")
        if not _DEVICE.fullmatch(dev):
            problems.append(Problem(f"{path}.device", f"must be auto, cpu, cuda, cuda:N or mps, got {shown(dev)}"))
            values["device"] = "auto"
