"""Training checkpoints: model, optimiser, schedule, scaler, RNG states and position.

Only tensors and plain containers go in, so ``torch.load(..., weights_only=True)`` reads
them back; files are written to a temporary path and renamed into place. ``Writer`` does the
writing off the training thread: the state is serialised at once, the disk work overlaps
the next steps.
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

FORMAT = "model-workbench/checkpoint"
VERSION = 1
LAST, BEST = "last.ckpt", "best.ckpt"


def rng_state() -> dict:
    """Every random generator a training step can touch, as tensors and plain values."""
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    version, internal, gauss = random.getstate()
    out["python"] = {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}
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
        random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    if "numpy" in state:
        import numpy as np

        n = state["numpy"]
        np.random.set_state(("MT19937", n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["cached"]))


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


# ---------------------------------------------------------------- an engine's state

def capture(engine) -> dict:
    """Everything a training.Engine needs to continue exactly from here."""
    e = engine
    return {"model": e.model.state_dict(), "optimizer": e.optimizer.state_dict(),
            "scheduler": e.scheduler.state_dict() if e.scheduler is not None else None,
            "scaler": e.runner.scaler.state_dict() if e.runner.scaler is not None else None,
            "rng": rng_state(), "position": vars(e.pos).copy(), "best": dict(e.best),
            "trainable": {n: p.requires_grad for n, p in e.model.named_parameters()},
            "epochs": e.cfg["epochs"], "batch_size": e.data_cfg["batch_size"], "world_size": e.parallel.world_size,
            "spec": e.spec.to_json(), "task": e.task.to_dict()}


def restore(engine, state: dict, notes: list[str]) -> None:
    """Put a captured state back into a set-up engine; the RNG state is left in
    ``engine._resume_rng`` for the engine to apply last."""
    from workbench.training.loop import Position

    e = engine
    try:
        e.model.load_state_dict(state["model"])
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else ""
        raise WorkbenchError(f"checkpoint {e.resume_from} was made for a different model ({detail}); "
                             "resume with the project that made it") from None
    for name, p in e.model.named_parameters():
        p.requires_grad_(state["trainable"].get(name, p.requires_grad))
    e.optimizer.load_state_dict(state["optimizer"])
    if e.scheduler is not None and state["scheduler"] is not None:
        if e.sched_per_step and state["epochs"] != e.cfg["epochs"]:
            raise WorkbenchError(f"the one-cycle schedule of this checkpoint was planned for {state['epochs']} "
                                 f"epochs; resume with --epochs {state['epochs']}")
        e.scheduler.load_state_dict(state["scheduler"])
    if e.runner.scaler is not None and state.get("scaler"):
        e.runner.scaler.load_state_dict(state["scaler"])
    from workbench.training.distributed import resume_position  # another world size or batch size: the same example

    e.pos = Position(**resume_position(state, e.data_cfg["batch_size"], e.parallel.world_size, notes,
                                       max(1, e.cfg["epochs"] * e.steps_per_epoch) if e.sched_per_step else None))
    e.best = dict(state["best"])
    e._resume_rng = state["rng"]
    notes.append(f"resumed from {e.resume_from} at epoch {e.pos.epoch + 1}, step {e.pos.step}")
    then, batch = state["task"], e.data_cfg["batch_size"] * e.parallel.world_size  # global batches
    then_batch = (state.get("batch_size") or 0) * state.get("world_size", 1)
    if (then["train_size"], then_batch) != (e.task.train_size, batch):
        notes.append(f"the data or batch size changed since the checkpoint ({then['train_size']} examples in "
                     f"batches of {then_batch}, now {e.task.train_size} in batches of {batch}): "
                     "the run goes on, but not exactly as it would have")
