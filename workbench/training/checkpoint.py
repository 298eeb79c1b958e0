"""Training checkpoint files: the format, reading them back, and writing them off the training thread.

What goes in is a ``TrainingState.state_dict()`` (workbench/training/state.py: model,
optimiser, schedule, scaler, RNG states and position). Only tensors and plain containers go
in, so ``torch.load(..., weights_only=True)`` reads them back; files are written to a
temporary path and renamed into place. ``Writer`` does the writing off the training thread:
the state is serialised at once, the disk work overlaps the next steps.
"""
from __future__ import annotations

import io
import os
import shutil
import threading
from pathlib import Path

import torch

from workbench import fileio
from workbench.errors import WorkbenchError

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
