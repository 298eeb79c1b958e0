"""The project's typed settings: ``DataSettings`` (the ``data`` section) and
``TrainingSettings`` (``training``, holding ``OptimizerSettings``, ``ScheduleSettings``,
``LossSettings`` and ``EarlyStoppingSettings``).

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
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from workbench.errors import Problem
from workbench.model.params import REQUIRED, Param, shown

# The data.source names a project may use. The built-in ones are listed here so a project file
# validates without loading the data layer; workbench.data.sources.registry maps each name to
# its reader, and its register_source adds further names (add_data_source).
BUILT_IN_SOURCES = ("digits", "iris", "wine", "breast_cancer", "fake", "image_folder", "csv", "mnist",
                    "fashion_mnist", "custom")
DATA_SOURCES: list[str] = list(BUILT_IN_SOURCES)  # the choices of data.source: a live list
PATH_SOURCES: list[str] = ["image_folder", "csv", "mnist", "fashion_mnist"]  # data.path is required
# what data.path names for each source that needs one: (the source in words, "file" or "folder", what it holds)
PATH_KINDS: dict[str, tuple[str, str, str]] = {
    "csv": ("CSV", "file", "a table with a header row"),
    "image_folder": ("image folder", "folder", "one sub-folder of images per class"),
    "mnist": ("MNIST", "folder", "the MNIST idx files"),
    "fashion_mnist": ("Fashion-MNIST", "folder", "the Fashion-MNIST idx files"),
}
# every torch.optim optimiser whose step needs no closure; the two left out and why
OPTIMIZERS = ("Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "ASGD", "NAdam", "RAdam", "RMSprop", "Rprop", "SGD")
NOT_OFFERED = {"LBFGS": "LBFGS needs a closure that runs the model several times per step, which a training loop "
                        "of single steps cannot give",
               "SparseAdam": "SparseAdam needs sparse gradients (nn.Embedding(sparse=True)), which no layer here "
                             "makes"}
# torch.optim arguments that are tuples, split into two settings each (a form shows numbers)
PAIRS = {"betas": ("beta1", "beta2"), "etas": ("eta_minus", "eta_plus"),
         "step_sizes": ("step_size_min", "step_size_max")}
# arguments that choose an implementation, not the update: left to torch
IMPLEMENTATION_ARGS = ("params", "foreach", "capturable", "differentiable", "fused")
LOSSES = ("auto", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "MSELoss", "L1Loss", "SmoothL1Loss",
          "HuberLoss", "KLDivLoss")
SCHEDULES = ("none", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts",
             "OneCycleLR", "ReduceLROnPlateau", "PolynomialLR")
OLD_SCHEDULES = {"step": "StepLR", "cosine": "CosineAnnealingLR", "onecycle": "OneCycleLR"}  # version 1 names
# the schedule settings each scheduler reads ("monitor": what ReduceLROnPlateau watches)
SCHEDULE_ARGS = {
    "none": (), "StepLR": ("step_size", "gamma"), "MultiStepLR": ("milestones", "gamma"),
    "ExponentialLR": ("gamma",), "CosineAnnealingLR": ("T_max", "eta_min"),
    "CosineAnnealingWarmRestarts": ("T_0", "T_mult", "eta_min"),
    "OneCycleLR": ("max_lr", "pct_start", "anneal_strategy", "div_factor", "final_div_factor", "three_phase"),
    "ReduceLROnPlateau": ("monitor", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr"),
    "PolynomialLR": ("total_iters", "power"),
}
WARMUP_ARGS = ("warmup_epochs", "warmup_start_factor")
# the loss settings each loss reads
LOSS_ARGS = {"auto": ("label_smoothing", "weight", "pos_weight"), "CrossEntropyLoss": ("label_smoothing", "weight"),
             "NLLLoss": ("weight",), "BCEWithLogitsLoss": ("pos_weight",), "MSELoss": (), "L1Loss": (),
             "SmoothL1Loss": ("beta",), "HuberLoss": ("delta",), "KLDivLoss": ("log_target",)}
TASKS = ("auto", "classification", "regression")
COLUMN_TYPES = ("numeric", "categorical", "ignore")  # data.columns values (CSV)
MISSING_RULES = ("mean", "mode", "drop")  # data.missing (CSV)
MAX_SEED = 2**32 - 1  # numpy's bound; torch takes up to 2**64 - 1, and a seed * 1_000_003 + epoch must fit
_DEVICE = re.compile(r"auto|cpu|cuda|mps|cuda:[0-9]{1,3}")  # used with fullmatch (ASCII digits only)

_PARAM = "workbench.param"
_CUSTOM = "workbench.custom"  # a field checked by its own function (see custom())
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
        params, nested, customs = cls.params(), cls.sections(), _customs(cls)
        names = {p.name for p in params} | set(nested) | set(customs)
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
        for name, (check, _help) in customs.items():
            if name in data:
                value, err = check(data[name], name)
                if err:
                    problems.append(Problem(f"{path}.{name}", err))
                else:
                    values[name] = value
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
        for name in _customs(type(self)):
            value = getattr(self, name)
            if value:
                out[name] = value
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
def _customs(cls: type[Settings]) -> dict[str, tuple]:
    """name -> (check, help) of the fields made with ``custom``."""
    return {f.name: f.metadata[_CUSTOM] for f in dataclasses.fields(cls) if _CUSTOM in f.metadata}


@functools.cache
def _params(cls: type[Settings]) -> tuple[Param, ...]:
    return tuple(Param(f.name, **f.metadata[_PARAM]) for f in dataclasses.fields(cls) if _PARAM in f.metadata)


MAX_STEPS = 100  # steps in one augmentation pipeline


def check_steps(value: Any, name: str) -> tuple[Any, str | None]:
    """An augmentation pipeline's form: a list of {"type": text, "args": {...}} (the data layer,
    workbench.data.augment, checks the types and arguments)."""
    if not isinstance(value, list):
        return None, f"{name} must be a list of steps like {{\"type\": \"RandomHorizontalFlip\"}}, got {shown(value)}"
    if len(value) > MAX_STEPS:
        return None, f"{name} has {len(value)} steps; at most {MAX_STEPS}"
    out = []
    for i, step in enumerate(value):
        if not isinstance(step, dict) or not isinstance(step.get("type"), str) or not step["type"]:
            return None, f"{name}[{i}] must be an object with a type, e.g. {{\"type\": \"RandomHorizontalFlip\"}}, " \
                         f"got {shown(step)}"
        extra = sorted(set(step) - {"type", "args"})
        if extra:
            return None, f"{name}[{i}] ({step['type']}): unknown key {extra[0]!r} (a step holds type and args)"
        args = step.get("args", {})
        if not isinstance(args, dict):
            return None, f"{name}[{i}] ({step['type']}): args must be an object, got {shown(args)}"
        out.append({"type": step["type"], "args": dict(args)} if args else {"type": step["type"]})
    return out, None


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
    pin_memory: bool = setting("bool", True, "page-locked host memory for faster GPU copies (used on CUDA only)")
    image_size: list[int] | None = setting("ints", None, "resize images to [height, width]", dims=2, min=1,
                                           nullable=True)
    grayscale: bool = setting("bool", False, "convert images to one channel")
    normalize: bool = setting("bool", True, "standardise inputs (per channel for images, per column for tables)")
    download: bool = setting("bool", False, "allow torchvision to download MNIST-style data (needs internet)")
    split_seed: int = setting("int", 0, "seed of the train / validation split", min=0, max=MAX_SEED)
    fake_size: int = setting("int", 512, "examples FakeData generates", min=2)
    fake_shape: list[int] = setting("shape", [3, 32, 32], "image shape FakeData generates")
    fake_classes: int = setting("int", 10, "classes FakeData generates", min=2)
    # Data browser (issue 15 §1): when set, used to normalise instead of the statistics computed at load
    mean: list[float] | None = setting("floats", None, "mean per channel (images) or input value (tables) to "
                                       "normalise with, instead of the one computed at load", nullable=True)
    std: list[float] | None = setting("floats", None, "std per channel (images) or input value (tables) to "
                                      "normalise with, instead of the one computed at load", min=1e-12,
                                      nullable=True)
    # CSV columns and missing values, and DataLoader throughput (helper V, issue 15 sections 3 and 6)
    columns: dict | None = setting("mapping", None, "CSV column types: {column: numeric | categorical | ignore}; "
                                   "a column left out is detected (numbers numeric, text categorical, "
                                   "one-hot encoded)", choices=COLUMN_TYPES, nullable=True)
    missing: str = setting("choice", "mean", "CSV missing cells: 'mean' (numbers take the training rows' mean, "
                           "a text column keeps them as its own category), 'mode' (every column takes its most "
                           "common value in the training rows) or 'drop' (rows with a missing cell are left out)",
                           choices=MISSING_RULES)
    persistent_workers: bool = setting("bool", True, "keep DataLoader worker processes between epochs "
                                       "(with num_workers > 0)")
    # Your own Dataset (issue 15 §4, data.source "custom"; read by workbench/data/sources/custom.py)
    custom_file: str | None = setting("str", None, "Python file defining the Dataset class for source 'custom' "
                                      "(absolute, or relative to the project's folder)", nullable=True)
    custom_class: str | None = setting("str", None, "the torch.utils.data.Dataset class in data.custom_file",
                                       nullable=True)
    custom_kwargs: dict | None = setting("json", None, "keyword arguments for data.custom_class (a JSON object)",
                                         nullable=True)
    # augmentation pipelines (issue 15 §2): ordered torchvision.transforms.v2 steps; their arguments
    # are checked by workbench.data.augment when the data loads (only their form here)
    augment_train: list = field(default_factory=list, metadata={_CUSTOM: (
        check_steps, "transforms applied to training images, in order, e.g. "
        "[{\"type\": \"RandomRotation\", \"args\": {\"degrees\": 15}}]")})
    augment_eval: list = field(default_factory=list, metadata={_CUSTOM: (
        check_steps, "transforms applied to validation and test images, in order")})
    # test split and separate validation / test files (evaluation)
    test_fraction: float = setting("float", 0.0, "share of examples held out for the test metrics (never trained "
                                   "or validated on)", min=0.0, max=0.9)
    val_path: str | None = setting("str", None, "a separate validation file or folder, read as data.path is "
                                   "(replaces val_fraction)", nullable=True)
    test_path: str | None = setting("str", None, "a separate test file or folder, read as data.path is "
                                    "(instead of test_fraction)", nullable=True)

    @classmethod
    def check_values(cls, values: dict[str, Any], path: str, problems: list[Problem]) -> None:
        source = values.get("source", "digits")
        if source in PATH_SOURCES and not values.get("path"):
            problems.append(Problem(f"{path}.path", path_needed(source), plain=True))
        if source == "custom":  # your own Dataset: its file and class
            for name in ("custom_file", "custom_class"):
                if not values.get(name):
                    problems.append(Problem(f"{path}.{name}", "the 'custom' source needs data.custom_file (a Python "
                                            "file) and data.custom_class (a Dataset class in it)"))
        # test split and separate validation / test files (evaluation)
        for name in ("val_path", "test_path"):
            if values.get(name) and source not in PATH_SOURCES:
                problems.append(Problem(f"{path}.{name}", f"the {source} source reads no file, so it cannot read a "
                                        f"separate one; remove {name} or use test_fraction"))
        test = values.get("test_fraction", 0.0)
        if test and values.get("test_path"):
            problems.append(Problem(f"{path}.test_fraction", "set either test_fraction or test_path, not both"))
        elif test and not values.get("val_path") and test + values.get("val_fraction", 0.2) >= 0.95:
            problems.append(Problem(f"{path}.test_fraction", f"val_fraction + test_fraction is "
                                    f"{test + values.get('val_fraction', 0.2):g}, which leaves almost nothing "
                                    "to train on; keep the sum below 0.95"))


def custom(check, help: str, default: Any = None) -> Any:
    """A settings field whose value is not one Param kind (a table, a list of numbers):
    ``check(value, name) -> (value, message or None)`` validates it; None / empty are not saved."""
    meta = {_CUSTOM: (check, help)}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def check_lr_scale(value: Any, name: str) -> tuple[Any, str | None]:
    """{module path (a layer id, 'block.inner', a backbone stage 'backbone.layer4'): factor > 0}."""
    if not isinstance(value, dict):
        return None, f"{name} must be an object of layer id: factor, e.g. {{\"backbone\": 0.1}}, got {shown(value)}"
    for key, factor in value.items():
        if not _positive(factor) or factor > 1000:
            return None, (f"{name}.{key} must be a number above 0 and at most 1000 (a factor of the lr), "
                          f"got {shown(factor)}")
    return dict(value), None


def check_weights(value: Any, name: str) -> tuple[Any, str | None]:
    """A non-empty list of numbers >= 0 (one per class or output), or null."""
    if value is None:
        return None, None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        return None, f"{name} must be a list of numbers (one per class), got {shown(value)}"
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            return None, f"{name}[{i}] must be a finite number >= 0, got {shown(v)}"
    return [float(v) for v in value], None


@functools.cache
def optimizer_arguments(kind: str) -> dict[str, Any]:
    """The settings ``torch.optim.<kind>`` takes, with torch's defaults, read from its
    constructor's signature (a tuple argument split as PAIRS says; implementation flags left out)."""
    import inspect

    import torch

    out: dict[str, Any] = {}
    for p in inspect.signature(getattr(torch.optim, kind).__init__).parameters.values():
        if p.name == "self" or p.name in IMPLEMENTATION_ARGS or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        if isinstance(default, torch.Tensor):
            default = float(default)
        if p.name in PAIRS:
            for half, value in zip(PAIRS[p.name], default):
                out[half] = value
        else:
            out[p.name] = default
    return out


def _not_taken(kind: str, taken: Any, path: str, name: str) -> Problem:
    return Problem(f"{path}.{name}", f"{kind} has no argument {name!r} (it takes: {', '.join(taken) or 'none'}); "
                   "remove it or choose another type")


@dataclass(frozen=True)
class OptimizerSettings(Settings):
    """``training.optimizer``: the update rule (any ``torch.optim`` optimiser in OPTIMIZERS) and
    its arguments. An argument left out (null) takes torch's default for the chosen type
    (``optimizer_arguments``); one the type does not take is refused at load. ``lr_scale``
    gives parts of the model their own learning rate: ``{"backbone": 0.1}`` trains the layer
    (or block, or backbone stage ``backbone.layer4``) with that id at a tenth of ``lr``."""

    ALWAYS_SAVED: ClassVar[tuple[str, ...]] = ("type", "lr")

    type: str = setting("choice", "Adam", "update rule (torch.optim; LBFGS and SparseAdam are not offered: "
                        "LBFGS needs a closure, SparseAdam sparse gradients)", choices=OPTIMIZERS)
    lr: float = setting("float", 1e-3, "learning rate", min=0.0, max=100.0)
    weight_decay: float | None = setting("float", None, "L2 penalty (decoupled for AdamW; torch's default: 0, "
                                         "0.01 for AdamW)", nullable=True, min=0.0)
    momentum: float | None = setting("float", None, "momentum (SGD, RMSprop; default 0)", nullable=True,
                                     min=0.0, max=1.0)
    dampening: float | None = setting("float", None, "dampening for momentum (SGD; default 0)", nullable=True,
                                      min=0.0, max=1.0)
    nesterov: bool | None = setting("bool", None, "Nesterov momentum (SGD; needs momentum > 0)", nullable=True)
    beta1: float | None = setting("float", None, "first-moment decay (Adam family; default 0.9)", nullable=True,
                                  min=0.0, max=1.0)
    beta2: float | None = setting("float", None, "second-moment decay (Adam family; default 0.999)",
                                  nullable=True, min=0.0, max=1.0)
    eps: float | None = setting("float", None, "term added for numerical stability", nullable=True, min=0.0)
    amsgrad: bool | None = setting("bool", None, "AMSGrad variant (Adam, AdamW)", nullable=True)
    rho: float | None = setting("float", None, "running-average decay (Adadelta; default 0.9)", nullable=True,
                                min=0.0, max=1.0)
    lr_decay: float | None = setting("float", None, "learning-rate decay (Adagrad)", nullable=True, min=0.0)
    initial_accumulator_value: float | None = setting("float", None, "starting sum of squares (Adagrad)",
                                                      nullable=True, min=0.0)
    lambd: float | None = setting("float", None, "decay term (ASGD; default 1e-4)", nullable=True, min=0.0)
    alpha: float | None = setting("float", None, "smoothing constant (RMSprop, 0.99) or eta power (ASGD, 0.75)",
                                  nullable=True, min=0.0)
    t0: float | None = setting("float", None, "step at which averaging starts (ASGD)", nullable=True, min=0.0)
    centered: bool | None = setting("bool", None, "centred RMSprop (normalise by the gradient's variance)",
                                    nullable=True)
    eta_minus: float | None = setting("float", None, "step-size decrease factor (Rprop; default 0.5)",
                                      nullable=True, min=0.0, max=1.0)
    eta_plus: float | None = setting("float", None, "step-size increase factor (Rprop; default 1.2)",
                                     nullable=True, min=1.0)
    step_size_min: float | None = setting("float", None, "smallest step (Rprop)", nullable=True, min=0.0)
    step_size_max: float | None = setting("float", None, "largest step (Rprop)", nullable=True, min=0.0)
    momentum_decay: float | None = setting("float", None, "momentum decay (NAdam)", nullable=True, min=0.0)
    decoupled_weight_decay: bool | None = setting("bool", None, "AdamW-style weight decay (NAdam, RAdam, and "
                                                  "Adam in newer torch)", nullable=True)
    maximize: bool | None = setting("bool", None, "maximise the objective instead of minimising", nullable=True)
    lr_scale: dict = custom(check_lr_scale, "learning-rate factor per layer id or backbone stage, e.g. "
                            "{\"backbone\": 0.1}", default={})

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments for ``torch.optim.<type>``: the ones set here, pairs joined."""
        taken = optimizer_arguments(self.type)
        out: dict[str, Any] = {"lr": self.lr}
        for name in taken:
            value = getattr(self, name, None)
            if name != "lr" and value is not None:
                out[name] = value
        for joined, (a, b) in PAIRS.items():
            if a in out or b in out:
                out[joined] = (out.pop(a, taken[a]), out.pop(b, taken[b]))
        return out

    def for_type(self, kind: str) -> "OptimizerSettings":
        """The same settings for another type: the arguments it does not take dropped."""
        taken = optimizer_arguments(kind)  # lr is one of them
        kept = {p.name: getattr(self, p.name) for p in self.params() if p.name in taken}
        return OptimizerSettings(type=kind, lr_scale=dict(self.lr_scale), **kept)

    @classmethod
    def from_json(cls, data: Any, path: str, problems: list[Problem]):
        kind = data.get("type") if isinstance(data, dict) else None
        mine: list[Problem] = []
        out = super().from_json(data, path, mine)
        for problem in mine:
            if problem.path == f"{path}.type" and isinstance(kind, str) and kind in NOT_OFFERED:
                problem = Problem(problem.path, f"{NOT_OFFERED[kind]}; use one of {', '.join(OPTIMIZERS)}")
            problems.append(problem)
        return out

    @classmethod
    def check_values(cls, values: dict[str, Any], path: str, problems: list[Problem]) -> None:
        kind = values.get("type", "Adam")
        taken = optimizer_arguments(kind)
        for p in cls.params():
            if values.get(p.name) is not None and p.name not in taken and p.name != "type":
                problems.append(_not_taken(kind, taken, path, p.name))
                values.pop(p.name)


@dataclass(frozen=True)
class ScheduleSettings(Settings):
    """``training.schedule``: how the learning rate changes over the run: a ``torch.optim.lr_scheduler``
    scheduler (SCHEDULES), optionally after a linear warm-up (LinearLR, chained before it the way
    torch's SequentialLR does). Arguments left out take torch's default; ``T_max`` and
    ``total_iters`` default to the run's epochs, ``max_lr`` to 10x lr. Epoch schedulers step once
    an epoch, OneCycleLR once a step; ReduceLROnPlateau steps on ``monitor`` after each validation."""

    type: str = setting("choice", "none", "how the learning rate changes (a torch.optim.lr_scheduler)",
                        choices=SCHEDULES)
    step_size: int = setting("int", 10, "epochs between decays (StepLR)", min=1)
    gamma: float | None = setting("float", None, "decay factor (StepLR, MultiStepLR: default 0.1; ExponentialLR: "
                                  "needed)", nullable=True, min=0.0, max=1.0)
    milestones: list[int] | None = setting("shape", None, "epochs at which the rate decays (MultiStepLR)",
                                           nullable=True)
    T_max: int | None = setting("int", None, "epochs of the cosine half-wave (default: the run's epochs)",
                                nullable=True, min=1)
    eta_min: float | None = setting("float", None, "lowest rate (cosine schedules; default 0)", nullable=True,
                                    min=0.0)
    T_0: int | None = setting("int", None, "epochs until the first restart (CosineAnnealingWarmRestarts)",
                              nullable=True, min=1)
    T_mult: int | None = setting("int", None, "growth of the period after each restart (default 1)",
                                 nullable=True, min=1)
    max_lr: float | None = setting("float", None, "peak rate (OneCycleLR; default 10x lr)", nullable=True, min=0.0)
    pct_start: float | None = setting("float", None, "share of the run spent rising (OneCycleLR; default 0.3)",
                                      nullable=True, min=0.0, max=1.0)
    anneal_strategy: str | None = setting("choice", None, "cos or linear (OneCycleLR)", nullable=True,
                                          choices=("cos", "linear"))
    div_factor: float | None = setting("float", None, "initial rate = max_lr / div_factor (default 25)",
                                       nullable=True, min=1.0)
    final_div_factor: float | None = setting("float", None, "final rate = initial / final_div_factor (default "
                                             "1e4)", nullable=True, min=1.0)
    three_phase: bool | None = setting("bool", None, "a third phase that anneals below the start (OneCycleLR)",
                                       nullable=True)
    monitor: str = setting("choice", "val_loss", "what ReduceLROnPlateau watches (losses must fall, accuracy "
                           "rise; without validation data the training loss)",
                           choices=("val_loss", "val_acc", "train_loss"))
    factor: float | None = setting("float", None, "rate multiplier on a plateau (default 0.1)", nullable=True,
                                   min=0.0, max=1.0)
    patience: int | None = setting("int", None, "epochs without improvement before a decay (default 10)",
                                   nullable=True, min=0)
    threshold: float | None = setting("float", None, "smallest change that counts (default 1e-4)", nullable=True,
                                      min=0.0)
    threshold_mode: str | None = setting("choice", None, "rel or abs", nullable=True, choices=("rel", "abs"))
    cooldown: int | None = setting("int", None, "epochs to wait after a decay (default 0)", nullable=True, min=0)
    min_lr: float | None = setting("float", None, "lowest rate (ReduceLROnPlateau; default 0)", nullable=True,
                                   min=0.0)
    total_iters: int | None = setting("int", None, "epochs of the polynomial decay (default: the run's epochs)",
                                      nullable=True, min=1)
    power: float | None = setting("float", None, "power of the polynomial decay (default 1)", nullable=True,
                                  min=0.0)
    warmup_epochs: int = setting("int", 0, "epochs of linear warm-up (LinearLR) before the schedule; 0: none",
                                 min=0, max=100000)
    warmup_start_factor: float = setting("float", 0.1, "the warm-up starts at this share of lr", min=1e-8,
                                         max=1.0)

    @classmethod
    def check_values(cls, values: dict[str, Any], path: str, problems: list[Problem]) -> None:
        kind = values.get("type", "none")
        taken = SCHEDULE_ARGS[kind] + WARMUP_ARGS + ("type",)
        for p in cls.params():
            if p.name in values and p.name not in taken and values[p.name] != p.default:
                problems.append(_not_taken(kind, SCHEDULE_ARGS[kind] + WARMUP_ARGS, path, p.name))
                values.pop(p.name)
        if kind == "ExponentialLR" and values.get("gamma") is None:
            problems.append(Problem(f"{path}.gamma", "ExponentialLR needs gamma (the factor per epoch, e.g. 0.9)"))
        if kind == "MultiStepLR" and not values.get("milestones"):
            problems.append(Problem(f"{path}.milestones", "MultiStepLR needs milestones (epochs, e.g. [30, 80])"))
        if kind == "CosineAnnealingWarmRestarts" and values.get("T_0") is None:
            problems.append(Problem(f"{path}.T_0", "CosineAnnealingWarmRestarts needs T_0 (epochs until the first "
                                    "restart, e.g. 10)"))


@dataclass(frozen=True)
class LossSettings(Settings):
    """``training.loss_options``: the arguments of the loss ``training.loss`` names."""

    label_smoothing: float = setting("float", 0.0, "share of the target spread over the other classes "
                                     "(CrossEntropyLoss)", min=0.0, max=1.0)
    weight: list[float] | None = custom(check_weights, "weight of each class (CrossEntropyLoss, NLLLoss)")
    pos_weight: list[float] | None = custom(check_weights, "weight of the positive examples, one per output "
                                            "(BCEWithLogitsLoss)")
    beta: float = setting("float", 1.0, "where SmoothL1Loss turns from squared to absolute", min=0.0)
    delta: float = setting("float", 1.0, "where HuberLoss turns from squared to absolute", min=1e-12)
    log_target: bool = setting("bool", False, "KLDivLoss: the targets are log-probabilities")


EARLY_METRICS = ("val_loss", "val_acc", "train_loss")


@dataclass(frozen=True)
class EarlyStoppingSettings(Settings):
    """``training.early_stopping``: end the run when ``metric`` has not improved by more than
    ``min_delta`` for ``patience`` epochs (as Keras' and Lightning's EarlyStopping do). Off
    unless ``enabled``. While it is on, the run's best epoch (``best.ckpt``, the best figures of
    the run record) is the best by ``metric``; ``restore_best`` puts that epoch's weights back
    in the model at the end of the run."""

    enabled: bool = setting("bool", False, "end the run when the metric stops improving")
    metric: str = setting("choice", "val_loss", "what is watched (val_acc needs validation data of a "
                          "classification task; without validation data use train_loss)", choices=EARLY_METRICS)
    mode: str = setting("choice", "auto", "min: the metric must fall, max: rise; auto: max for val_acc, else min",
                        choices=("auto", "min", "max"))
    patience: int = setting("int", 5, "epochs without improvement before the run ends", min=0, max=100000)
    min_delta: float = setting("float", 0.0, "smallest change that counts as an improvement", min=0.0)
    restore_best: bool = setting("bool", False, "put the best epoch's weights back in the model at the end")

    def direction(self) -> str:
        """"min" or "max": the mode, with auto resolved."""
        if self.mode != "auto":
            return self.mode
        return "max" if self.metric == "val_acc" else "min"

    @classmethod
    def check_values(cls, values: dict[str, Any], path: str, problems: list[Problem]) -> None:
        metric, mode = values.get("metric", "val_loss"), values.get("mode", "auto")
        rises = metric == "val_acc"
        if mode == ("min" if rises else "max"):
            problems.append(Problem(f"{path}.mode", f"{metric} {'rises' if rises else 'falls'} as the model "
                                    f"improves, so mode {mode} would take every gain for a setback; use "
                                    f"{'max' if rises else 'min'} or auto"))
            values.pop("mode")


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
    health_every: int = setting("int", 50, "steps between health samples (per-layer gradients, weights, activations) "
                                "and their alerts; 0 = off", min=0)
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    loss_options: LossSettings = field(default_factory=LossSettings)
    early_stopping: EarlyStoppingSettings = field(default_factory=EarlyStoppingSettings)

    @classmethod
    def check_values(cls, values: dict[str, Any], path: str, problems: list[Problem]) -> None:
        dev = values.get("device", "auto")
        if not _DEVICE.fullmatch(dev):
            problems.append(Problem(f"{path}.device", f"must be auto, cpu, cuda, cuda:N or mps, got {shown(dev)}"))
            values["device"] = "auto"
        loss, options = values.get("loss", "auto"), values.get("loss_options")
        if options is not None:
            taken = LOSS_ARGS[loss]
            for name, value in options.to_dict().items():
                default = getattr(LossSettings(), name)
                if value != default and name not in taken:
                    problems.append(_not_taken(loss, taken, f"{path}.loss_options", name))
                    values["loss_options"] = options = options.with_value(name, default)
