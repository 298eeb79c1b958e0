"""The project's ``data`` and ``training`` sections: typed fields, defaults, validation.

Fields are described with the same ``Param`` type as layer arguments, so the window can
generate its forms from them and the loader reports every problem with its JSON path.
"""
from __future__ import annotations

from typing import Any

from workbench.errors import Problem
from workbench.model.params import REQUIRED, Param

# The data.source names a project may use. The built-in ones are listed here so a project file
# validates without loading the data layer; workbench.data.sources.registry maps each name to
# its reader, and its register_source adds further names (add_data_source).
BUILT_IN_SOURCES = ("digits", "iris", "wine", "breast_cancer", "fake", "image_folder", "csv", "mnist",
                    "fashion_mnist")
DATA_SOURCES: list[str] = list(BUILT_IN_SOURCES)
PATH_SOURCES: list[str] = ["image_folder", "csv", "mnist", "fashion_mnist"]  # data.path is required
OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop")
LOSSES = ("auto", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "BCEWithLogitsLoss")
SCHEDULES = ("none", "step", "cosine", "onecycle")
TASKS = ("auto", "classification", "regression")

DATA_FIELDS = (
    Param("source", "choice", "digits", "where the examples come from", choices=DATA_SOURCES),
    Param("path", "str", None, "folder or file for image_folder, csv, mnist, fashion_mnist", nullable=True),
    Param("target", "str", None, "CSV column to predict (default: the last one)", nullable=True),
    Param("task", "choice", "auto", "classification or regression; 'auto' decides from the target values",
          choices=TASKS),
    Param("val_fraction", "float", 0.2, "share of examples held out for validation", min=0.0, max=0.9),
    Param("batch_size", "int", 64, "examples per step (per process under torchrun)", min=1, max=1 << 16),
    Param("num_workers", "int", 0, "DataLoader worker processes", min=0, max=64),
    Param("pin_memory", "bool", False, "page-locked host memory for faster GPU copies"),
    Param("image_size", "ints", None, "resize images to [height, width]", dims=2, min=1, nullable=True),
    Param("grayscale", "bool", False, "convert images to one channel"),
    Param("normalize", "bool", True, "standardise inputs (per channel for images, per column for tables)"),
    Param("augment", "bool", False, "random flips and crops for image training data"),
    Param("download", "bool", False, "allow torchvision to download MNIST-style data (needs internet)"),
    Param("split_seed", "int", 0, "seed of the train / validation split", min=0),
    Param("fake_size", "int", 512, "examples FakeData generates", min=2),
    Param("fake_shape", "shape", [3, 32, 32], "image shape FakeData generates"),
    Param("fake_classes", "int", 10, "classes FakeData generates", min=2),
)
OPTIMIZER_FIELDS = (
    Param("type", "choice", "Adam", "update rule", choices=OPTIMIZERS),
    Param("lr", "float", 1e-3, "learning rate", min=0.0, max=100.0),
    Param("weight_decay", "float", 0.0, "L2 penalty (decoupled for AdamW)", min=0.0),
    Param("momentum", "float", 0.9, "SGD / RMSprop momentum", min=0.0, max=1.0),
    Param("nesterov", "bool", False, "Nesterov momentum (SGD)"),
    Param("beta1", "float", 0.9, "Adam / AdamW first-moment decay", min=0.0, max=1.0),
    Param("beta2", "float", 0.999, "Adam / AdamW second-moment decay", min=0.0, max=1.0),
)
SCHEDULE_FIELDS = (
    Param("type", "choice", "none", "how the learning rate changes", choices=SCHEDULES),
    Param("step_size", "int", 10, "epochs between decays (step)", min=1),
    Param("gamma", "float", 0.1, "decay factor (step)", min=0.0, max=1.0),
    Param("max_lr", "float", None, "peak rate (onecycle; default 10x lr)", nullable=True, min=0.0),
)
TRAINING_FIELDS = (
    Param("loss", "choice", "auto", "objective; 'auto' picks what the data implies", choices=LOSSES),
    Param("epochs", "int", 10, "passes over the training data", min=1, max=100000),
    Param("device", "str", "auto", "auto, cpu, cuda, cuda:N or mps"),
    Param("seed", "int", 0, "seed for weights, shuffling and dropout", min=0),
    Param("grad_clip", "float", None, "clip the gradient norm to this value", nullable=True, min=0.0),
    Param("amp", "bool", False, "mixed precision (CUDA only)"),
    Param("log_every", "int", 10, "steps between loss read-outs (each step is still logged)", min=1),
    Param("tensorboard", "bool", True, "also write TensorBoard event files when tensorboard is installed"),
)


def check_fields(data: Any, fields: tuple[Param, ...], path: str, problems: list[Problem],
                 nested: dict[str, tuple[Param, ...]] | None = None) -> dict:
    """Validate an object against fields; return it with defaults filled in."""
    nested = nested or {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(Problem(path, "must be an object"))
        data = {}
    names = {f.name for f in fields} | set(nested)
    for key in sorted(data.keys() - names):
        problems.append(Problem(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(names))})"))
    out: dict[str, Any] = {}
    for f in fields:
        if f.name not in data:
            if f.default is REQUIRED:
                problems.append(Problem(f"{path}.{f.name}", f"missing ({f.help})"))
            out[f.name] = list(f.default) if isinstance(f.default, (list, tuple)) else f.default
            continue
        value, err = f.check(data[f.name])
        if err:
            problems.append(Problem(f"{path}.{f.name}", err))
            value = f.default
        out[f.name] = list(value) if isinstance(value, tuple) else value
    for key, sub in nested.items():
        out[key] = check_fields(data.get(key), sub, f"{path}.{key}", problems)
    return out


def data_from_json(data: Any, path: str, problems: list[Problem]) -> dict:
    out = check_fields(data, DATA_FIELDS, path, problems)
    if out["source"] in PATH_SOURCES and not out["path"]:
        problems.append(Problem(f"{path}.path", f"source {out['source']!r} needs a path"))
    return out


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


def training_from_json(data: Any, path: str, problems: list[Problem]) -> dict:
    out = check_fields(data, TRAINING_FIELDS, path, problems,
                       {"optimizer": OPTIMIZER_FIELDS, "schedule": SCHEDULE_FIELDS})
    dev = out["device"]
    if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        problems.append(Problem(f"{path}.device", f"must be auto, cpu, cuda, cuda:N or mps, got {dev!r}"))
        out["device"] = "auto"
    return out


def default_data() -> dict:
    return data_from_json({}, "$.data", [])


def default_training() -> dict:
    return training_from_json({}, "$.training", [])
