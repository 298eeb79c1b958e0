"""Open weights: read a ``.pth`` / ``.safetensors`` file (an export, a plain state_dict or a
training checkpoint) and load it into a model, checked key by key.

``torch.load`` always runs with ``weights_only=True`` (``workbench.model.torch_files``): a
file that holds anything but tensors and plain data is refused, never executed, and so is a
tensor without plain values (meta, sparse, nested, quantized). The report lists missing, unexpected
and mis-shaped keys; nothing is loaded unless every key fits, or the caller asks for the
matching ones only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from workbench import fileio
from workbench.errors import SpecError, WorkbenchError
from workbench.model import torch_files
from workbench.model.shapes import fmt
from workbench.model.spec import ModelSpec, model_from_json

FORMAT = "model-workbench/weights"
VERSION = 1
SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
DDP_PREFIX = "module."


@dataclass
class Weights:
    """A state_dict read from a file, and the model description stored with it, if any."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    source: str  # what kind of file it was, for people
    spec: ModelSpec | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class WeightsReport:
    """How a state_dict fits a model, key by key."""

    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # the model has them, the file does not
    unexpected: list[str] = field(default_factory=list)  # the file has them, the model does not
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, file shape, model shape
    notes: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def total(self) -> int:
        return len(self.matched) + len(self.missing) + len(self.mismatched)

    def describe(self, limit: int = 12) -> str:
        head = f"{len(self.matched)} of {self.total} model tensors found in the file with the right shape"
        if self.source:
            head = f"{self.source}: {head}"
        lines = [head]
        if self.missing:
            lines.append(f"missing from the file ({len(self.missing)}): {_cut(self.missing, limit)}")
        if self.unexpected:
            lines.append(f"not in the model ({len(self.unexpected)}): {_cut(self.unexpected, limit)}")
        if self.mismatched:
            shown = [f"{k}: file {_shape(f)}, model {_shape(m)}" for k, f, m in self.mismatched]
            lines.append(f"wrong shape ({len(self.mismatched)}): {_cut(shown, limit)}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _cut(items: list[str], limit: int) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def _shape(shape: tuple) -> str:
    return fmt(tuple(shape)) if shape else "() (a scalar)"


# ---------------------------------------------------------------- reading

def read(path: Path | str) -> Weights:
    """Read a weights file; raise WorkbenchError saying what is wrong with it."""
    path = Path(path).expanduser()
    if not fileio.exists(path):
        raise WorkbenchError(f"{path}: no such file; choose a .pth or .safetensors weights file")
    fileio.regular_file(path, "weights file")
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    return unpack(path, torch_files.load(path, "weights file"))


def _read_safetensors(path: Path) -> Weights:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise WorkbenchError(f"{path}: not a readable safetensors file ({_first(exc)}); is it complete?") from None
    weights = Weights(path, torch_files.checked_state(path, state), "safetensors file")
    if meta.get("format") == FORMAT:
        weights.source = "Model Workbench safetensors export"
        if "spec" in meta:
            weights.spec = _spec(meta["spec"], weights)
    return weights


def unpack(path: Path, data) -> Weights:
    """The state_dict inside what ``torch.load`` returned: an export, a checkpoint or a plain one."""
    if not isinstance(data, dict):
        raise WorkbenchError(f"{path}: holds a {type(data).__name__}, not a state_dict (a dict of tensors)")
    if data.get("format") == FORMAT and isinstance(data.get("state_dict"), dict):
        weights = Weights(path, data["state_dict"], "Model Workbench export")
        if data.get("spec") is not None:
            weights.spec = _spec(data["spec"], weights)
    elif isinstance(data.get("model"), dict) and _tensors(data["model"]):
        weights = Weights(path, data["model"], "training checkpoint")
        if isinstance(data.get("spec"), (dict, str)):
            weights.spec = _spec(data["spec"], weights)
    elif isinstance(data.get("state_dict"), dict) and _tensors(data["state_dict"]):
        weights = Weights(path, data["state_dict"], "checkpoint")
    elif data and _tensors(data):
        weights = Weights(path, data, "plain state_dict")
    else:
        keys = ", ".join(sorted(map(torch_files.key_text, data))[:8]) or "none"
        raise WorkbenchError(f"{path}: no state_dict found (top-level keys: {keys}); expected a dict of "
                             "tensors or a checkpoint with a 'model' state_dict")
    weights.state_dict = torch_files.checked_state(path, {k: v for k, v in weights.state_dict.items()
                                               if isinstance(v, torch.Tensor)})
    return weights


def _tensors(d: dict) -> bool:
    return bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def _spec(raw, weights: Weights) -> ModelSpec | None:
    try:
        return model_from_json(json.loads(raw) if isinstance(raw, str) else raw, "$.spec", str(weights.path))
    except (SpecError, json.JSONDecodeError) as exc:
        weights.notes.append(f"its model description is unreadable and was ignored ({_first(exc)})")
    except RecursionError:
        weights.notes.append("its model description is nested too deeply to read and was ignored")
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a description of the wrong shape
        weights.notes.append(f"its model description is malformed and was ignored ({type(exc).__name__})")
    return None


def _first(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(exc).__name__


# ---------------------------------------------------------------- checking and loading

def check(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "") -> WeightsReport:
    """Compare a state_dict with ``model``'s, key by key."""
    own = model.state_dict()
    report = WeightsReport(source=source)
    state_dict = _strip_ddp(state_dict, own, report)
    for key, target in own.items():
        if key not in state_dict:
            report.missing.append(key)
        elif tuple(state_dict[key].shape) != tuple(target.shape):
            report.mismatched.append((key, tuple(state_dict[key].shape), tuple(target.shape)))
        else:
            report.matched.append(key)
            if state_dict[key].dtype != target.dtype and target.is_floating_point():
                report.notes.append(f"{key} is {str(state_dict[key].dtype)[6:]} in the file; converted to "
                                    f"{str(target.dtype)[6:]}")
    report.unexpected = [k for k in state_dict if k not in own]
    return report


def _strip_ddp(state_dict: dict, own: dict, report: WeightsReport) -> dict:
    """Checkpoints saved from a DistributedDataParallel wrapper prefix every key with 'module.'."""
    if (state_dict and all(k.startswith(DDP_PREFIX) for k in state_dict)
            and not all(k.startswith(DDP_PREFIX) for k in own)):
        report.notes.append("keys started with 'module.' (saved from a DDP wrapper); the prefix was removed")
        return {k[len(DDP_PREFIX):]: v for k, v in state_dict.items()}
    return state_dict


class WeightsMismatch(WorkbenchError):
    """The file does not fit the model; ``report`` says key by key how."""

    def __init__(self, path: Path, report: WeightsReport):
        self.report = report
        super().__init__(f"{path} does not fit this model; nothing was loaded.\n{report.describe()}\n"
                         "Open the project the weights were trained with, or load the matching tensors only")


def load_into(model: nn.Module, weights: Weights | Path | str, partial: bool = False) -> WeightsReport:
    """Copy the file's tensors into ``model``. Every key must fit unless ``partial``; then
    only the matching ones are copied. Returns the key-by-key report."""
    if not isinstance(weights, Weights):
        weights = read(weights)
    report = check(model, weights.state_dict, weights.source)
    report.notes[:0] = weights.notes
    if not report.ok and not partial:
        raise WeightsMismatch(weights.path, report)
    if not report.matched:
        raise WeightsMismatch(weights.path, report)
    state = _strip_ddp(weights.state_dict, model.state_dict(), WeightsReport())
    own = model.state_dict()
    converted = {}
    for key in report.matched:  # converted first: a tensor that cannot be converted loads nothing
        try:
            converted[key] = state[key].to(dtype=own[key].dtype)
        except (RuntimeError, TypeError) as exc:
            raise WorkbenchError(f"{weights.path}: tensor {key!r} cannot be converted to "
                                 f"{str(own[key].dtype).removeprefix('torch.')} ({_first(exc)}); nothing "
                                 "was loaded") from None
    with torch.no_grad():
        for key, value in converted.items():
            own[key].copy_(value)
    return report
