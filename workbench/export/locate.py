"""When an exporter fails on the whole model, find the layer it fails on.

Each layer is tried on its own with the very input it receives inside the model (captured
with forward pre-hooks), nested layers before the blocks (Residual, Parallel, Branch) that hold them. Only
runs after a failure, so its cost (one small export per layer) is paid only then.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from workbench.model import build, catalog
from workbench.export.capture import captured
from workbench.model.spec import ModelSpec


def first_line(exc: BaseException) -> str:
    from workbench.export.capture import clean

    lines = [ln.strip() for ln in clean(str(exc)).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def layer_inputs(model: nn.Module, spec: ModelSpec, example: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input each layer of ``spec`` receives when ``model`` runs on ``example``, by module path."""
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for path, _ in spec.walk():
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue

        def grab(_module, args, path=path):
            if args and isinstance(args[0], torch.Tensor):
                seen.setdefault(path, args[0].detach())
        hooks.append(module.register_forward_pre_hook(grab))
    try:
        with torch.no_grad():
            model(example)
    except Exception:  # the model itself cannot run: nothing to locate with
        pass
    finally:
        for h in hooks:
            h.remove()
    return seen


def failing_layer(model: nn.Module, spec: ModelSpec, example: torch.Tensor,
                  attempt: Callable[[nn.Module, torch.Tensor], Any]) -> tuple[str, BaseException | None]:
    """(``layer 'id' (Type, #pos)``, its exception) of the first layer ``attempt`` fails on alone.

    Leaves are tried before blocks, so the innermost culprit is named. Returns
    ("", None) when every layer passes alone.
    """
    inputs = layer_inputs(model, spec, example)
    positions = {row.path: row.position for row in build.infer(spec).rows()}
    rows = list(spec.walk())
    ordered = [r for r in rows if not catalog.nests(r[1].type)] + [r for r in rows if catalog.nests(r[1].type)]
    for path, layer in ordered:
        if path not in inputs:
            continue
        try:
            with captured(None), torch.no_grad():
                attempt(model.get_submodule(path), inputs[path])
        except Exception as exc:
            return f"layer '{layer.id}' ({layer.type}, #{positions.get(path, '?')})", exc
    return "", None
