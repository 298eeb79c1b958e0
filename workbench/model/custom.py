"""The Custom layer kind: an ``nn.Module`` class from the user's own Python file.

Project JSON: ``{"id": "mine", "type": "Custom", "args": {"file": "blocks.py", "class": "MyBlock",
"kwargs": {"width": 64}}}``. ``file`` is absolute here (the project file makes one written relative
to its folder absolute when it loads, see ``workbench.project.code_refs``). The file is imported
only when it is trusted (``workbench.user_code``): an untrusted or edited file is the row's error
and nothing of it runs.

Shape: a forward pass of the module built on the meta device; a module that cannot run there
(it makes real tensors, calls ``.item()``, ...) is built on the CPU and run on a zero input, and the
row's advice says so. Freezable parts: the module's named children (like a backbone's stages,
``frozen_stages`` in the project file). Every failure of the user's code names the file and the
line (build.py adds the layer id).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workbench import user_code
from workbench.model import shapes
from workbench.model.params import REQUIRED, Param

NAME = "Custom"


@dataclass(frozen=True)
class Inferred:
    """What inference learns of a Custom layer at one input."""

    out_shape: tuple[int, ...]
    params: int
    buffers: int
    parts: tuple[tuple[str, int], ...]  # (child name, its parameter count): the freezable parts
    advice: tuple[str, ...] = ()


def file_of(args: dict) -> Path:
    return user_code.absolute(args["file"])


def stamp(args: dict) -> tuple:
    """What besides the layer's JSON decides its inference: the file's content and its trust (an
    edited or newly trusted file is inferred again)."""
    try:
        path = file_of(args)
        return str(path), user_code.digest(path), user_code.trusted(path)
    except Exception:  # noqa: BLE001 - a missing file: inference says so
        return (str(args.get("file")),)


def load(args: dict) -> type:
    """The module class the arguments name, or shapes.Bad naming the file and the line."""
    try:
        return user_code.load_class(file_of(args), args["class"], nn.Module)
    except user_code.UntrustedCode as exc:
        raise shapes.Bad(f"runs code from {exc.files[0]}, which is not trusted",
                         "open the project in the window and trust the file, or pass --trust-code") from None
    except user_code.UserCodeError as exc:
        raise shapes.Bad(str(exc), "fix the file, then edit the layer or open the project again") from None
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable file
        raise shapes.Bad(str(exc), "check the layer's file argument") from None


def make(args: dict) -> nn.Module:
    """The user's module, built on the current device (the catalog's factory)."""
    cls = load(args)
    return _construct(cls, args)


def _construct(cls: type, args: dict) -> nn.Module:
    try:
        return cls(**args.get("kwargs", {}))
    except Exception as exc:  # noqa: BLE001 - the user's __init__ may raise anything
        error = user_code.failure(exc, file_of(args), f"{args['class']}(**kwargs) raised")
        raise shapes.Bad(str(error), "fix the class or its kwargs") from None


def infer(args: dict, shape: tuple[int, ...], dtype: str, frozen_parts=()) -> Inferred:
    """Output shape, parameter and buffer counts and the freezable parts at ``shape``."""
    cls = load(args)  # imported outside the meta device: its module-level tensors are real
    advice: tuple[str, ...] = ()
    batch = (2,) + tuple(shape)
    tensor_type = torch.long if dtype == "int64" else torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            with torch.device("meta"):
                module = _construct(cls, args)
                out = _forward(module.eval(), torch.empty(batch, dtype=tensor_type))
        except Exception as meta_exc:  # noqa: BLE001 - not every module runs on meta: try the CPU
            module = _construct(cls, args)
            try:
                out = _forward(module.eval(), torch.zeros(batch, dtype=tensor_type))
            except Exception as exc:  # noqa: BLE001
                error = user_code.failure(exc, file_of(args), f"forward on input {shapes.fmt(shape)} raised")
                raise shapes.Bad(str(error), "fix the class's forward, or change the input shape") from None
            why = meta_exc.problem if isinstance(meta_exc, shapes.Bad) else user_code.describe(meta_exc)
            advice = (f"inferred on the CPU with a zero input: it does not run on the meta device ({why})",)
    if not isinstance(out, torch.Tensor):
        raise shapes.Bad(f"{args['class']}.forward returned {type(out).__name__}, not one tensor",
                         "return a single tensor from forward")
    parts = tuple((name, sum(p.numel() for p in child.parameters())) for name, child in module.named_children())
    unknown = [p for p in frozen_parts if p not in dict(parts)]
    if unknown:
        names = ", ".join(n for n, _ in parts) or "none"
        raise shapes.Bad(f"has no part {unknown[0]!r} to freeze (its parts: {names})",
                         "freeze one of its named children")
    params = sum(p.numel() for p in module.parameters())
    buffers = sum(b.numel() for b in module.buffers() if b.is_floating_point())
    return Inferred(tuple(out.shape[1:]), params, buffers, parts, advice)


def _forward(module: nn.Module, x: torch.Tensor):
    with torch.no_grad():
        return module(x)


def files(layer_args) -> list[Path]:
    """The files of Custom layers, from their arguments (absolute, in order, once each)."""
    out: list[Path] = []
    for args in layer_args:
        if isinstance(args.get("file"), str):
            path = user_code.absolute(args["file"])
            if path not in out:
                out.append(path)
    return out


PARAMS = (
    Param("file", "str", REQUIRED, "the Python file that defines the module (absolute, or relative to the "
          "project's folder)"),
    Param("class", "str", REQUIRED, "the nn.Module class in that file"),
    Param("kwargs", "json", {}, "keyword arguments for the class, a JSON object like {\"width\": 64}"),
)
