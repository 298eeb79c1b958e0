"""Reading files that ``torch.save`` wrote, safely: ``torch.load(..., weights_only=True)``
onto the CPU, with every failure said as a WorkbenchError naming the file.

A pickle that names a function or class to call on load is refused and the message says which
(``refused: the file asks to run code (posix.system)``), read from torch's refusal or, for a
plain pickle torch stops at earlier, from the pickle's opcodes (disassembled, never run).
``checked_state`` refuses tensors a model cannot take: meta, sparse, nested, quantized.
Used by weights files (``model.weights``), backbone weights (``model.backbones``) and training
checkpoints (``training.checkpoint``).
"""
from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import torch

from workbench import fileio
from workbench.errors import WorkbenchError


def load(path: Path, what: str = "weights file"):
    """``torch.load(path, weights_only=True)`` onto the CPU, every failure said as a WorkbenchError
    naming ``path``: a file that asks to run code on load says which function it names."""
    fileio.regular_file(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = _unsafe_global(exc, path)
        if name is not None:
            raise WorkbenchError(f"{path}: refused: the file asks to run code ({name}) when loaded; it was not "
                                 "loaded (weights_only=True). If it holds a model object, save a plain "
                                 "state_dict instead: torch.save(model.state_dict(), path)") from None
        raise WorkbenchError(f"cannot read {what} {path}: not a PyTorch file or it is damaged "
                             f"({_kind_of_file(path) or _first_reason(exc)})") from None
    except OSError as exc:
        raise WorkbenchError(f"cannot read {what} {path} ({exc.strerror or exc})") from None
    except MemoryError:
        raise WorkbenchError(f"cannot read {what} {path}: too large to load into memory") from None
    except RecursionError:
        raise WorkbenchError(f"cannot read {what} {path}: not a PyTorch file or it is damaged (nested too "
                             "deeply)") from None
    except Exception as exc:  # torch's unpickler raises KeyError, RuntimeError, ValueError... for foreign files
        hint = _kind_of_file(path) or _first_reason(exc)
        raise WorkbenchError(f"cannot read {what} {path}: not a PyTorch file or it is damaged ({hint})") from None


_GLOBAL = re.compile(r"unsupported (?:global:? )?GLOBAL (\S+)", re.IGNORECASE)


def _unsafe_global(exc: BaseException, path: Path) -> str | None:
    """The function or class a refused pickle names: from torch's message ("unsupported GLOBAL
    posix.system ..."), else read from the pickle's opcodes (nothing is executed)."""
    found = _GLOBAL.search(str(exc))
    if found:
        return found.group(1).rstrip(".,;")
    return _scan_globals(path)


_HARMLESS_MODULES = ("torch", "collections", "_codecs", "numpy", "builtins", "copyreg")


def _scan_globals(path: Path, limit: int = 64 << 20) -> str | None:
    """The first global outside torch's own kind that a plain pickle file imports, by reading
    its opcodes with ``pickletools`` (a disassembler: it never imports or calls anything)."""
    import pickletools

    try:
        with open(path, "rb") as fh:
            data = fh.read(limit)
    except OSError:
        return None
    if not data.startswith(b"\x80"):
        return None
    stream = io.BytesIO(data)
    strings: list[str] = []
    try:
        for _ in range(8):  # torch's legacy format is a few pickles in a row
            if stream.tell() >= len(data) or data[stream.tell()] != 0x80:
                break
            for op, arg, _pos in pickletools.genops(stream):
                if op.name == "GLOBAL" and isinstance(arg, str):
                    name = arg.replace(" ", ".")
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    name = f"{strings[-2]}.{strings[-1]}"
                else:
                    if isinstance(arg, str):
                        strings.append(arg)
                    continue
                if name.split(".")[0] not in _HARMLESS_MODULES:
                    return name
    except Exception:  # a damaged pickle: nothing more to learn from it
        return None
    return None


def _kind_of_file(path: Path) -> str:
    """What a file that torch cannot read looks like, when its first bytes tell ('' if not)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return ""
    if not head:
        return "the file is empty"
    if head.startswith((b"PK\x03\x04", b"\x80")):
        return ""  # a zip archive or a pickle: torch's own reason says more
    try:
        head.decode("utf-8")
        text = b"\0" not in head
    except UnicodeDecodeError as exc:
        text = exc.start >= len(head) - 4 and b"\0" not in head  # a character cut at the end is still text
    return "it is a text file" if text else "it is neither a zip archive nor a pickle"


def _first_reason(exc: BaseException) -> str:
    """The useful line of a torch error (its first lines are boilerplate about weights_only)."""
    text = str(exc)
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Weights only load failed", "(1)", "(2)", "Check the documentation",
                                          "Please file an issue", "In PyTorch 2.6")):
            return line.replace("WeightsUnpickler error: ", "")[:300]
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def key_text(k) -> str:
    return k if isinstance(k, str) else repr(k)[:40]


def checked_state(path: Path, state: dict) -> dict[str, torch.Tensor]:
    """``state`` if every entry is a named tensor that holds its values on the CPU (dense,
    not on the meta device, not quantized); else a WorkbenchError naming the entry."""
    if not state:
        raise WorkbenchError(f"{path}: holds no tensors; expected a state_dict (a dict of tensors)")
    for key, t in state.items():
        if not isinstance(key, str):
            raise WorkbenchError(f"{path}: a tensor is named {key_text(key)}, not a string; a state_dict names "
                                 "every tensor with a text key")
        problem = tensor_problem(t)
        if problem:
            raise WorkbenchError(f"{path}: tensor {key!r} {problem}")
    return state


def tensor_problem(t: torch.Tensor) -> str:
    """Why a loaded tensor cannot go into a model ('' when it can)."""
    if t.is_meta or t.device.type != "cpu":
        return f"has no values (saved from the {t.device.type} device); save the weights from a real model"
    if t.is_nested:
        return "is a nested tensor; weights must be plain dense tensors"
    if t.layout != torch.strided:
        return f"is a {str(t.layout).removeprefix('torch.')} tensor; save it dense (tensor.to_dense())"
    if t.is_quantized:
        return f"is quantized ({str(t.dtype).removeprefix('torch.')}); save the float weights"
    if not (t.is_floating_point() or t.is_complex() or t.dtype in _PLAIN_DTYPES):
        return f"has an unsupported type ({str(t.dtype).removeprefix('torch.')})"
    return ""


_PLAIN_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
