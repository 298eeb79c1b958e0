"""Training checkpoints: model, optimiser, schedule, scaler, RNG states and position.

Only tensors and plain containers go in, so ``torch.load(..., weights_only=True)`` reads
them back; files are written to a temporary path and renamed into place.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import torch

from . import fileio
from .errors import WorkbenchError

FORMAT = "model-workbench/checkpoint"
VERSION = 1
LAST, BEST = "last.ckpt", "best.ckpt"


def rng_state() -> dict:
    """Every random generator a training step can touch, as tensors and plain values."""
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    version, internal, gauss = random.getstate()
    out["python"] = {"version": version, "state": list(internal), "gauss": gauss}
    try:
        import numpy as np

        _, keys, pos, has_gauss, cached = np.random.get_state()
        out["numpy"] = {"keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached": float(cached)}
    except ImportError:
        pass
    return out


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"][:torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)
    if "python" in state:
        py = state["python"]
        random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if "numpy" in state:
        import numpy as np

        n = state["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["cached"]))


def save(path: Path, state: dict) -> None:
    state = {"format": FORMAT, "version": VERSION, **state}
    fileio.write_with(path, lambda tmp: torch.save(state, tmp))


def copy(src: Path, dst: Path) -> None:
    fileio.write_with(dst, lambda tmp: shutil.copyfile(src, tmp))


def load(path: Path | str) -> dict:
    """Read a checkpoint onto the CPU; WorkbenchError says what is wrong with a bad file."""
    path = Path(path)
    if path.is_dir():
        path = path / LAST
    if not path.is_file():
        raise WorkbenchError(f"checkpoint {path} does not exist; pass a last.ckpt or best.ckpt from a run folder")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, foreign pickle, not a torch file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkbenchError(f"cannot read checkpoint {path} ({first}); it is damaged or not a Model "
                             "Workbench checkpoint") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise WorkbenchError(f"{path} is not a Model Workbench training checkpoint (a plain state_dict? "
                             "load it as backbone weights instead)")
    if state.get("version", 0) > VERSION:
        raise WorkbenchError(f"{path} was written by a newer Model Workbench (checkpoint version "
                             f"{state['version']}); please update")
    return state


def resolve(path: Path | str) -> Path:
    path = Path(path)
    return path / LAST if path.is_dir() else path
