"""Training checkpoint files: the format, reading them back, and writing them off the training thread.

What goes in is a ``TrainingState.state_dict()`` (workbench/training/state.py: model,
optimiser, schedule, scaler, RNG states and position). Only tensors and plain containers go
in, so ``torch.load(..., weights_only=True)`` reads them back (``model.torch_files``); ``load``
checks every entry a resume reads (``check``) and names the first one missing or wrong. Files
are written to a temporary path and renamed into place. ``Writer`` does the writing off the training thread:
the state is serialised at once, the disk work overlaps the next steps.
"""
from __future__ import annotations

import io
import os
import random
import shutil
import threading
from pathlib import Path

import torch

from workbench import fileio
from workbench.errors import WorkbenchError
from workbench.model import torch_files

FORMAT = "model-workbench/checkpoint"
VERSION = 1
LAST, BEST = "last.ckpt", "best.ckpt"


class Writer:
    """Writes checkpoints in a background thread, one at a time.

    ``submit`` serialises the state to memory right away (later steps cannot change what is
    saved), then a thread writes it atomically (temp file, fsync, rename) and, for a new best,
    links it as best.ckpt. ``wait`` blocks until the write is on disk and raises its error
    (disk full, folder gone) as a WorkbenchError; ``submit`` waits for the previous write first.
    """

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, path: Path, state: dict, best: Path | None = None) -> None:
        self.wait()
        buf = io.BytesIO()
        torch.save({"format": FORMAT, "version": VERSION, **state}, buf)
        self._thread = threading.Thread(target=self._write, args=(path, buf, best), name="checkpoint-writer",
                                        daemon=True)
        self._thread.start()

    def _write(self, path: Path, buf: io.BytesIO, best: Path | None) -> None:
        try:
            fileio.write_with(path, lambda tmp: tmp.write_bytes(buf.getbuffer()))
            if best is not None:
                copy(path, best)
        except BaseException as exc:  # handed to the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, WorkbenchError):
                raise error
            raise WorkbenchError(f"cannot write a checkpoint: {error}") from error


def copy(src: Path, dst: Path) -> None:
    """Atomically make ``dst`` hold what ``src`` holds: a hard link where the file system
    allows (no bytes copied; ``src`` is later replaced by rename, never rewritten), else a copy."""
    fileio.write_with(dst, lambda tmp: _link_or_copy(src, tmp))


def _link_or_copy(src: Path, tmp: Path) -> None:
    try:
        tmp.unlink()
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)


def load(path: Path | str) -> dict:
    """Read a checkpoint onto the CPU and check its structure; WorkbenchError says what is
    missing or wrong in a bad file (``check``)."""
    path = Path(path)
    if fileio.is_dir(path):
        path = path / LAST
    if not fileio.exists(path):
        raise WorkbenchError(f"checkpoint {path} does not exist; pass a last.ckpt or best.ckpt from a run folder")
    state = torch_files.load(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise WorkbenchError(f"{path} is not a Model Workbench training checkpoint (a plain state_dict? "
                             "load it as backbone weights instead)")
    check(state, path)
    return state


def check(state: dict, path: Path | str) -> None:
    """Raise a WorkbenchError naming the first entry of a checkpoint that is missing or of the
    wrong kind: everything ``TrainingState.load_state_dict`` and ``set_rng_state`` read."""
    where = f"checkpoint {path}"
    version = state.get("version")
    if not _is_int(version):
        raise WorkbenchError(f"{where}: 'version' must be an integer, got {_shown(version)}")
    if version > VERSION:
        raise WorkbenchError(f"{path} was written by a newer Model Workbench (checkpoint version {version}); "
                             "please update")
    if version < 1:
        raise WorkbenchError(f"{where}: 'version' must be 1 or more, got {version}")
    for key in ("model", "optimizer", "rng", "position", "best", "trainable", "epochs", "spec", "task"):
        if key not in state:
            raise WorkbenchError(f"{where} has no {key!r} entry; it is damaged or was not written by "
                                 "Model Workbench")
    model = state["model"]
    if not isinstance(model, dict):
        raise WorkbenchError(f"{where}: 'model' must be a state_dict (a dict of tensors), got {_kind(model)}")
    for key, value in model.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WorkbenchError(f"{where}: 'model' entry {torch_files.key_text(key)} is {_kind(value)}, "
                                 "not a named tensor")
        problem = torch_files.tensor_problem(value)
        if problem:
            raise WorkbenchError(f"{where}: 'model' tensor {key!r} {problem}")
    _check_optimizer(state["optimizer"], where)
    for key in ("scheduler", "scaler"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            raise WorkbenchError(f"{where}: {key!r} must be a dict or None, got {_kind(state[key])}")
    _check_rng(state["rng"], where)
    _check_fields(state["position"], "position", {"epoch": _is_count, "batch": _is_count, "step": _is_count,
                                                  "loss_sum": _is_number, "loss_count": _is_count}, where)
    _check_fields(state["best"], "best", {"val_acc": _is_optional_number, "val_loss": _is_optional_number,
                                          "train_loss": _is_optional_number,
                                          "epoch": lambda v: v is None or _is_count(v)}, where, optional=True)
    trainable = state["trainable"]
    if not isinstance(trainable, dict) or not all(isinstance(k, str) and isinstance(v, bool)
                                                  for k, v in trainable.items()):
        raise WorkbenchError(f"{where}: 'trainable' must map parameter names to true / false, got {_kind(trainable)}")
    for key in ("epochs", "batch_size", "world_size"):
        value = state.get(key, 1)
        if not (_is_int(value) and value >= 1) and not (key == "batch_size" and value is None):
            raise WorkbenchError(f"{where}: {key!r} must be a whole number of 1 or more, got {_shown(value)}")
    if not isinstance(state["spec"], dict):
        raise WorkbenchError(f"{where}: 'spec' must be the model description (a dict), got {_kind(state['spec'])}")
    task = state["task"]
    if not isinstance(task, dict) or not _is_count(task.get("train_size")):
        raise WorkbenchError(f"{where}: 'task' must describe the data with a 'train_size' count, got "
                             f"{_shown(task)}")


def _check_optimizer(opt, where: str) -> None:
    if not isinstance(opt, dict):
        raise WorkbenchError(f"{where}: 'optimizer' must be an optimizer state_dict (a dict), got {_kind(opt)}")
    if not isinstance(opt.get("state"), dict):
        raise WorkbenchError(f"{where}: the optimizer state has no 'state' dict (got {_shown(opt.get('state'))})")
    bad = next((k for k, v in opt["state"].items() if not isinstance(v, dict)), None)
    if bad is not None:
        raise WorkbenchError(f"{where}: the optimizer state of parameter {torch_files.key_text(bad)} is "
                             f"{_kind(opt['state'][bad])}, not a dict")
    groups = opt.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                               and all(_is_int(i) for i in g["params"]) for g in groups):
        raise WorkbenchError(f"{where}: the optimizer state's 'param_groups' must be a list of dicts with "
                             f"'params' lists, got {_shown(groups)}")
    ids = [i for g in groups for i in g["params"]]
    if len(set(ids)) != len(ids):
        raise WorkbenchError(f"{where}: the optimizer's param_groups list a parameter twice")
    orphan = next((k for k in opt["state"] if k not in set(ids)), None)
    if orphan is not None:
        raise WorkbenchError(f"{where}: the optimizer has a state for parameter {torch_files.key_text(orphan)}, "
                             "which no param group lists")


def _check_rng(rng, where: str) -> None:
    """Each saved generator state must be one the generator accepts: tried on a fresh one."""
    if not isinstance(rng, dict) or "torch" not in rng:
        raise WorkbenchError(f"{where}: the rng state must be a dict with a 'torch' entry, got {_shown(rng)}")
    try:
        t = rng["torch"]
        if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or torch_files.tensor_problem(t):
            raise TypeError("'torch' is not a byte tensor")
        torch.Generator().set_state(t)
        for c in rng.get("cuda", []) if isinstance(rng.get("cuda", []), list) else [None]:
            if not isinstance(c, torch.Tensor) or c.dtype != torch.uint8 or c.dim() != 1:
                raise TypeError("'cuda' is not a list of byte tensors")
        if "python" in rng:
            py = rng["python"]
            state = py["state"]
            if not isinstance(state, torch.Tensor) or state.dim() != 1 or state.is_floating_point():
                raise TypeError("'python' state is not a tensor of integers")
            if py["gauss"] is not None and not isinstance(py["gauss"], float):
                raise TypeError("'python' gauss is not a number")
            random.Random().setstate((py["version"], tuple(state.tolist()), py["gauss"]))
        if "numpy" in rng:
            import numpy as np

            n = rng["numpy"]
            keys = n["keys"]
            if not isinstance(keys, torch.Tensor) or keys.dim() != 1 or keys.is_floating_point():
                raise TypeError("'numpy' keys are not a tensor of integers")
            np.random.RandomState().set_state(("MT19937", keys.numpy().astype("uint32"), n["pos"],
                                               n["has_gauss"], n["cached"]))
    except WorkbenchError:
        raise
    except Exception as exc:  # each generator says what it disliked its own way
        raise WorkbenchError(f"{where}: the rng state is damaged ({_reason(exc)})") from None


def _check_fields(value, name: str, fields: dict, where: str, optional: bool = False) -> None:
    if not isinstance(value, dict):
        raise WorkbenchError(f"{where}: {name!r} must be a dict, got {_kind(value)}")
    for key, ok in fields.items():
        if key not in value:
            if optional:
                continue
            raise WorkbenchError(f"{where}: {name!r} has no {key!r} entry")
        if not ok(value[key]):
            raise WorkbenchError(f"{where}: {name}[{key!r}] has a wrong value: {_shown(value[key])}")
    extra = [k for k in value if k not in fields]
    if extra:
        raise WorkbenchError(f"{where}: {name!r} has an unknown entry {torch_files.key_text(extra[0])}")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_count(v) -> bool:
    return _is_int(v) and 0 <= v < 2 ** 62


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_optional_number(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _kind(v) -> str:
    return f"a {type(v).__name__}"


def _shown(v) -> str:
    text = repr(v) if isinstance(v, (str, int, float, bool, type(None))) else _kind(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def resolve(path: Path | str) -> Path:
    path = Path(path)
    return path / LAST if path.is_dir() else path
