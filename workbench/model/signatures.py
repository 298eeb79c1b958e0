"""Layer arguments read from a ``torch.nn`` constructor: names, defaults and types from its
signature, help text from its docstring (the summary's first sentence, each argument's line in
the ``Args:`` section). What a signature cannot say (bounds, starting values, the input-size
arguments inferred from the input, the choices of a text argument) comes from the small tables
below, by argument name, or from the caller per kind.

The catalog (catalog.py) calls ``torch_params`` and ``summary`` once per kind at import; the
whole generation costs a few milliseconds (``bench/bench_inference.py`` reports it).
"""
from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any, Callable

from workbench.model.params import REQUIRED, Param

# Constructor arguments a layer kind never offers, and why (a test checks every kind's arguments
# are its constructor's, less these).
LEFT_OUT = {
    "device": "the layer is built where the model runs",
    "dtype": "the model's dtype is the project's",
    "inplace": "an in-place layer would overwrite the input a Residual adds back",
    "return_indices": "a layer passes on one tensor; indices would make a pair",
    "batch_first": "every sequence kind is batch first",
    "_weight": "private initial weights", "_freeze": "private", "_random_samples": "private",
    "sparse": "sparse gradients suit only the sparse optimisers; the project's optimiser is dense",
    "min_value": "deprecated for min_val", "max_value": "deprecated for max_val",
    "process_group": "set up by distributed training",
    "include_last_offset": "EmbeddingBag takes no offsets: each sample is one bag",
    "kdim": "self-attention: keys are the input", "vdim": "self-attention: values are the input",
}

# Bounds and help by argument name, where a name means the same thing in every layer.
BOUNDS: dict[str, dict[str, Any]] = {
    "kernel_size": {"min": 1}, "stride": {"min": 1}, "dilation": {"min": 1}, "padding": {"min": 0},
    "output_padding": {"min": 0}, "groups": {"min": 1}, "out_channels": {"min": 1, "max": 65536},
    "out_features": {"min": 1, "max": 1 << 20}, "hidden_size": {"min": 1}, "num_layers": {"min": 1, "max": 64},
    "p": {"min": 0.0, "max": 1.0}, "dropout": {"min": 0.0, "max": 1.0}, "eps": {"min": 1e-12},
    "momentum": {"min": 0.0, "max": 1.0}, "output_size": {"min": 1}, "upscale_factor": {"min": 1},
    "downscale_factor": {"min": 1}, "num_heads": {"min": 1}, "nhead": {"min": 1}, "size": {"min": 1},
    "num_parameters": {"min": 1}, "norm_type": {"min": 1e-6}, "scale_factor": {"min": 1e-6},
    "num_embeddings": {"min": 1}, "embedding_dim": {"min": 1}, "dim_feedforward": {"min": 1},
    "divisor_override": {"min": 1}, "beta": {"min": 1e-6}, "padding_idx": {"min": 0},
}

# The values a text argument takes.
CHOICES: dict[str, tuple[str, ...]] = {
    "padding_mode": ("zeros", "reflect", "replicate", "circular"),
    "approximate": ("none", "tanh"), "nonlinearity": ("tanh", "relu"), "activation": ("relu", "gelu"),
}

# Input-size arguments: derived from the input shape (no batch dimension) when left out.
CHANNELS = lambda s: s[0]  # noqa: E731
LAST = lambda s: s[-1]  # noqa: E731
LAST_AS_SHAPE = lambda s: (s[-1],)  # noqa: E731
INFER: dict[str, Callable[[tuple], Any]] = {
    "in_channels": CHANNELS, "num_features": CHANNELS, "num_channels": CHANNELS, "in_features": LAST,
    "input_size": LAST, "embed_dim": LAST, "d_model": LAST, "normalized_shape": LAST_AS_SHAPE,
}
_INFER_HELP = {CHANNELS: "channels of the input (inferred)", LAST: "size of the input's last dimension (inferred)",
               LAST_AS_SHAPE: "trailing dimensions to normalise (default: the last, inferred)"}


def torch_params(cls: type, *, dims: int = 1, skip: tuple[str, ...] = (), **over: dict) -> tuple[Param, ...]:
    """The ``Param`` of every argument of ``cls``'s constructor but those in LEFT_OUT and ``skip``.

    ``dims``: how many values a per-dimension argument (kernel_size of a 3-D layer) takes where its
    annotation does not say. ``over``: per argument, Param fields that replace the generated ones
    (``kernel_size={"min": 2}``; ``{"default": ...}`` sets a default the signature lacks)."""
    helps = arg_help(cls)
    out = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in LEFT_OUT or p.name in skip:
            continue
        fields = _fields(p, dims)
        fields.update(BOUNDS.get(p.name, {}))
        if p.name in CHOICES and fields["kind"] == "str":
            fields.update(kind="choice", choices=CHOICES[p.name])
        if p.name in INFER:
            fields.update(infer=INFER[p.name], default=REQUIRED)
        fields["help"] = helps.get(p.name) or _INFER_HELP.get(fields.get("infer")) or _generic_help(p)
        if p.name in INFER and "inferred" not in fields["help"]:
            fields["help"] += " (inferred from the input)"
        fields.update(over.get(p.name, {}))
        out.append(Param(p.name, **fields))
    unknown = set(over) - {q.name for q in out}
    if unknown:
        raise ValueError(f"{cls.__name__} has no argument {', '.join(sorted(unknown))}")
    return tuple(out)


def _fields(p: inspect.Parameter, dims: int) -> dict[str, Any]:
    """Param kind, default, dims, nullable and words from an argument's annotation and default."""
    default = REQUIRED if p.default is inspect.Parameter.empty else p.default
    members = _members(p.annotation) if p.annotation is not inspect.Parameter.empty else []
    if not members and default is not REQUIRED and default is not None:
        members = [type(default)]
    nullable = type(None) in members or default is None
    members = [m for m in members if m is not type(None)]
    plain = {m for m in members if isinstance(m, type)}
    tuples = [m for m in members if typing.get_origin(m) is tuple]
    fields: dict[str, Any] = {"default": default, "nullable": nullable}
    if tuples and int in plain:
        inner = typing.get_args(tuples[0])
        fields.update(kind="ints", dims=dims if Ellipsis in inner or not inner else len(inner))
        if str in plain:
            fields["words"] = ("same", "valid")
    elif any(typing.get_origin(m) is list for m in members) or (tuples and not plain):
        fields["kind"] = "shape"
    elif plain == {bool}:
        fields["kind"] = "bool"
    elif float in plain:  # a float or a per-dimension tuple of floats: one float for every dimension
        fields["kind"] = "float"
    elif int in plain:
        fields["kind"] = "int"
    else:
        fields["kind"] = "str"
    if isinstance(default, tuple):
        fields["default"] = list(default)
    return fields


def _members(annotation: Any) -> list:
    """The types of a (possibly Optional / Union / ``X | Y``) annotation; [] where unknown."""
    if isinstance(annotation, str):
        return []
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    if getattr(annotation, "__name__", "") == "Size":
        return [list[int]]
    return [annotation]


def _generic_help(p: inspect.Parameter) -> str:
    words = p.name.strip("_").replace("_", " ")
    if p.default is inspect.Parameter.empty:
        return f"{words} (see the PyTorch documentation)"
    return f"{words} (PyTorch's default: {p.default!r})"


_ROLES = re.compile(r":(?:math|attr|class|func|meth|obj):`~?([^`]*)`")
_TICKS = re.compile(r"`+([^`]*)`+")
_ARG = re.compile(r"^(\s*)(\w+)\s*(?:\([^)]*\)(?:[^:]*\))?)?\s*:\s*(.*)$")
_ARGS_HEAD = re.compile(r"^[ \t]*(?:Args|Arguments|Parameters):[ \t]*$", re.M)
_SENTENCE_END = re.compile(r"(?<![ .][a-z])(?<!e\.g)(?<!i\.e)\.(\s|$)")
_DEFAULT = re.compile(r"\s*Default:")
_ASIDE = re.compile(r"\s*\((required|optional|default=[^)]*)\)")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")


def plain_text(text: str) -> str:
    """Docstring text without reStructuredText marks, on one line."""
    text = _TICKS.sub(r"\1", _ROLES.sub(r"\1", text)).replace("\\", "")
    return " ".join(text.split())


def first_sentence(text: str, limit: int = 160) -> str:
    text = plain_text(text)
    match = _SENTENCE_END.search(text)
    sentence = text[:match.start() + 1] if match else text.rstrip(".") + "."
    if len(sentence) > limit:
        sentence = sentence[:limit - 4].rsplit(" ", 1)[0] + "..."
    return sentence


def summary(cls: type) -> str:
    """The docstring's first sentence: the layer's one-line help."""
    paragraph = _PARAGRAPH.split((cls.__doc__ or "").strip(), 1)[0]
    return first_sentence(paragraph) if paragraph.strip() else f"torch.nn.{cls.__name__}."


def arg_help(cls: type) -> dict[str, str]:
    """Each argument's help from the docstring's ``Args:`` section: its first sentence, without
    the 'Default: ...' that the form shows anyway. Arguments it does not describe are left out."""
    doc = cls.__doc__ or ""
    start = _ARGS_HEAD.search(doc)
    if not start:
        return {}
    out: dict[str, str] = {}
    indent, name, parts = None, None, []
    for line in doc[start.end():].splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is not None and depth < indent:
            break
        match = _ARG.match(line)
        if match and (indent is None or depth == indent):
            if name:
                out[name] = _arg_line(parts)
            indent, name, parts = depth, match.group(2), [match.group(3)]
        elif name:
            parts.append(line)
    if name:
        out[name] = _arg_line(parts)
    return {k: v for k, v in out.items() if v}


def _arg_line(parts: list[str]) -> str:
    text = _ASIDE.sub("", _DEFAULT.split(" ".join(parts))[0])
    text = first_sentence(text, 140)
    text = (text if text.endswith("...") else text.rstrip(".")).strip()
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text
