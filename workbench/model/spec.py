"""The model description: ``LayerSpec`` rows in a ``ModelSpec``, to and from plain JSON.

Parsing reports every problem with its JSON path instead of stopping at the first, and
names the layer it belongs to (``layer 'fc' (Linear, #9): ...``).

Limits. Layers nest (a Residual holds layers, a Parallel its Branch rows, a Branch layers;
``catalog.nests`` names the kinds that hold layers) at most ``MAX_DEPTH`` deep: the one depth
limit of the project, checked when a file is read and again by inference, so summary,
build, training and every export work at that depth (a Residual costs a few Python frames
per call and five brackets in the generated Python source, whose parser stops at 200).
A JSON document read here nests at most ``MAX_JSON_DEPTH`` levels, holds no whole number of
more than ``MAX_INT_DIGITS`` digits and no lone surrogate (text that cannot be saved or
printed): ``read_json`` and ``json_problems`` refuse those before anything walks the tree.
"""
from __future__ import annotations

import copy
import json
import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from torch import nn

from workbench.model import catalog
from workbench.errors import Problem, SpecError, layer_label
from workbench.model.params import shown

MAX_DEPTH = 32  # layers nest at most this deep: a top-level layer is at depth 1, one inside a Residual at 2
MAX_JSON_DEPTH = 4 * MAX_DEPTH  # room for a model at MAX_DEPTH (two JSON levels a layer) and its arguments
MAX_INT_DIGITS = 100  # no setting or argument needs a longer whole number
_MAX_REPORTED = 10  # problems json_problems lists before it stops looking
ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # used with fullmatch: "conv1\n" is no id
# Ids become attribute names of nn.Module children and of generated/exported code.
RESERVED_IDS = frozenset(keyword.kwlist) | {n for n in dir(nn.Module()) if not n.startswith("__")} | {"body", "proj"}
INPUT_DTYPES = ("float32", "int64")
_LAYER_KEYS = {"id", "type", "args", "frozen", "layers", "frozen_stages"}


@dataclass
class LayerSpec:
    id: str
    type: str
    args: dict[str, Any] = field(default_factory=dict)
    frozen: bool = False
    layers: list["LayerSpec"] = field(default_factory=list)  # kinds that nest (catalog.nests) only
    frozen_stages: list[str] = field(default_factory=list)  # backbones only

    def to_json(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.args:
            out["args"] = _jsonable(self.args)
        if self.frozen:
            out["frozen"] = True
        if catalog.nests(self.type):
            out["layers"] = [child.to_json() for child in self.layers]
        if self.frozen_stages:
            out["frozen_stages"] = list(self.frozen_stages)
        return out

    def key(self) -> str:
        """Canonical text of this layer: the cache key for shape inference."""
        return json.dumps(self.to_json(), sort_keys=True)

    def copy(self) -> "LayerSpec":
        return copy.deepcopy(self)


@dataclass
class ModelSpec:
    input_shape: tuple[int, ...]
    layers: list[LayerSpec] = field(default_factory=list)
    input_dtype: str = "float32"

    def to_json(self) -> dict:
        inp: dict[str, Any] = {"shape": list(self.input_shape)}
        if self.input_dtype != "float32":
            inp["dtype"] = self.input_dtype
        return {"input": inp, "layers": [layer.to_json() for layer in self.layers]}

    def walk(self) -> Iterator[tuple[str, LayerSpec]]:
        """Every layer, nested ones included, with its module path ('res1.body.conv', 'inc.inc_a.conv')."""
        yield from _walk(self.layers, "")

    def find(self, layer_id: str) -> LayerSpec | None:
        return next((layer for _, layer in self.walk() if layer.id == layer_id), None)

    def ids(self) -> set[str]:
        return {layer.id for _, layer in self.walk()}

    def unique_id(self, base: str) -> str:
        """A fresh id from a type name: 'Conv2d' -> 'conv2d_3'."""
        stem = re.sub(r"[^A-Za-z0-9_]", "_", base).lower() or "layer"
        taken = self.ids()
        n = 1
        while f"{stem}_{n}" in taken:
            n += 1
        return f"{stem}_{n}"

    def copy(self) -> "ModelSpec":
        return copy.deepcopy(self)


def id_problem(layer_id: Any) -> str | None:
    """Why a layer id cannot be used, or None when it can."""
    if not isinstance(layer_id, str) or not ID_RE.fullmatch(layer_id):
        return ("must be a name of letters, digits and _ that does not start with a digit (at most 64), "
                f"got {shown(layer_id)}")
    if layer_id.startswith("__"):
        return (f"{layer_id!r} starts with two underscores, which Python and nn.Module keep for their own "
                f"names; try {(layer_id.strip('_') or 'layer')!r}")
    if layer_id in RESERVED_IDS:
        return (f"{layer_id!r} is reserved (a Python keyword or an nn.Module attribute); "
                f"try {layer_id + '_1'!r}")
    return None


BRANCH_RESERVED = frozenset({"merge", "dim"})  # a Parallel module's own attributes


def nesting_problem(layer: LayerSpec | None, parent_type: str | None, count: int = 0) -> tuple[str, str] | None:
    """(problem, fix) when a layer cannot stand where it is (``parent_type``: the kind holding it,
    None at the top level) or, for ``layer`` None, when a Parallel's ``count`` branches are too few:
    a Branch sits only directly in a Parallel, a Parallel holds only Branch rows and at least two.
    Checked when a file is read and again by inference (a spec made in code or in the window)."""
    if layer is None:
        if count < 2:
            return (f"a Parallel needs at least two branches, it has {count}",
                    "add a Branch (an empty Branch is the identity), or replace the Parallel by its branch's layers")
        return None
    if layer.type == "Branch" and parent_type != "Parallel":
        return "a Branch sits only directly inside a Parallel", "put it in a Parallel, or move its layers out of it"
    if parent_type == "Parallel" and layer.type != "Branch":
        return f"a Parallel holds only Branch rows, not a {layer.type}", "put it inside a Branch"
    if layer.type == "Branch" and layer.id in BRANCH_RESERVED:
        return (f"a Branch cannot be called {layer.id!r} (a setting of the Parallel module has that name)",
                f"rename it, e.g. {layer.id + '_branch'!r}")
    return None


def _walk(layers: list[LayerSpec], prefix: str) -> Iterator[tuple[str, LayerSpec]]:
    for layer in layers:
        path = f"{prefix}{layer.id}"
        yield path, layer
        if catalog.nests(layer.type):
            yield from _walk(layer.layers, f"{path}{catalog.child_prefix(layer.type)}")


def _jsonable(args: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in args.items()}


# ---------------------------------------------------------------- reading JSON

class _LongNumber:
    """Stands in for a whole number too long to be a value (json.loads would fail on 4,300 digits)."""

    def __init__(self, digits: int):
        self.digits = digits

    def __repr__(self) -> str:
        return f"<a whole number of {self.digits:,} digits>"


def _parse_int(text: str) -> int | _LongNumber:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_INT_DIGITS else _LongNumber(digits)


def read_json(text: str, source: str | None = None) -> Any:
    """Parse JSON text as a project or model file holds it; a SpecError for anything that is
    not valid JSON or breaks the limits above (checked with ``json_problems``)."""
    try:
        data = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise SpecError([Problem(f"line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}")],
                        source) from None
    except RecursionError:
        raise SpecError([Problem("$", f"nested far too deeply to read (at most {MAX_JSON_DEPTH} levels; "
                                 f"layers nest at most {MAX_DEPTH} deep)")], source) from None
    problems = json_problems(data)
    if problems:
        raise SpecError(problems, source)
    return data


def json_problems(data: Any, path: str = "$") -> list[Problem]:
    """What makes a JSON tree unsafe to walk, save or print: nesting deeper than MAX_JSON_DEPTH,
    whole numbers longer than MAX_INT_DIGITS, lone surrogates in text. Iterative: any tree,
    however deep, is checked without recursion. At most a few problems are listed."""
    problems: list[Problem] = []
    stack = [(data, path, 1)]
    while stack and len(problems) < _MAX_REPORTED:
        value, where, depth = stack.pop()
        if isinstance(value, (dict, list)) and depth > MAX_JSON_DEPTH:
            problems.append(Problem(_short_path(where), f"nested deeper than {MAX_JSON_DEPTH} levels; no project or "
                                    f"model file nests this deep (layers nest at most {MAX_DEPTH})"))
        elif isinstance(value, dict):
            for key in reversed(list(value)):
                here = f"{where}.{key}" if isinstance(key, str) and ID_RE.fullmatch(key) else f"{where}[{shown(key)}]"
                if isinstance(key, str):
                    _check_text(key, f"{here} (the key)", problems)
                stack.append((value[key], here, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, str):
            _check_text(value, where, problems)
        elif isinstance(value, _LongNumber) or (isinstance(value, int) and value.bit_length() > 3.33 * MAX_INT_DIGITS):
            digits = value.digits if isinstance(value, _LongNumber) else int(value.bit_length() * 0.30103) + 1
            problems.append(Problem(_short_path(where), f"a whole number of {digits:,} digits is far too long "
                                    f"(no value here needs more than {MAX_INT_DIGITS})"))
    return problems


def _check_text(text: str, where: str, problems: list[Problem]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        problems.append(Problem(_short_path(where), f"holds a lone surrogate {shown(text[exc.start])} at character "
                                f"{exc.start + 1}, which is not text (it cannot be saved or shown); the file was "
                                "written by a broken tool: remove it"))


def _short_path(path: str, limit: int = 120) -> str:
    return path if len(path) <= limit else f"{path[:70]} ... {path[-45:]}"


# ---------------------------------------------------------------- parsing

def model_from_json(data: Any, path: str = "$.model", source: str | None = None) -> ModelSpec:
    """Validate and parse a model description; raise SpecError listing every problem."""
    problems = json_problems(data, path)
    if problems:
        raise SpecError(problems, source)
    spec = _parse_model(data, path, problems)
    if problems:
        raise SpecError(problems, source)
    return spec


def _parse_model(data: Any, path: str, problems: list[Problem]) -> ModelSpec:
    if not isinstance(data, dict):
        problems.append(Problem(path, "must be an object with 'input' and 'layers'"))
        return ModelSpec((1,))
    for key in data.keys() - {"input", "layers"}:
        problems.append(Problem(f"{path}.{key}", "unknown key (expected 'input' and 'layers')"))
    shape, dtype = _parse_input(data.get("input"), f"{path}.input", problems)
    layers_data = data.get("layers")
    if not isinstance(layers_data, list):
        problems.append(Problem(f"{path}.layers", "must be a list of layers"))
        layers_data = []
    seen: dict[str, str] = {}
    layers = _parse_layers(layers_data, f"{path}.layers", problems, seen)
    return ModelSpec(shape, layers, dtype)


def _parse_input(data: Any, path: str, problems: list[Problem]) -> tuple[tuple[int, ...], str]:
    if not isinstance(data, dict):
        problems.append(Problem(path, "must be an object like {\"shape\": [1, 28, 28]}"))
        return (1,), "float32"
    for key in data.keys() - {"shape", "dtype"}:
        problems.append(Problem(f"{path}.{key}", "unknown key (expected 'shape' and 'dtype')"))
    shape = data.get("shape")
    ok = (isinstance(shape, list) and 1 <= len(shape) <= 4
          and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 1 << 20 for d in shape))
    if not ok:
        problems.append(Problem(f"{path}.shape", "must list 1 to 4 positive whole numbers without the "
                                "batch dimension, e.g. [1, 28, 28] for grey images, got " + shown(shape)))
        shape = [1]
    dtype = data.get("dtype", "float32")
    if dtype not in INPUT_DTYPES:
        problems.append(Problem(f"{path}.dtype", f"must be one of {', '.join(INPUT_DTYPES)}, got {shown(dtype)}"))
        dtype = "float32"
    return tuple(shape), dtype


def _parse_layers(items: list, path: str, problems: list[Problem], seen: dict[str, str], depth: int = 1,
                  position: str = "", parent: str | None = None) -> list[LayerSpec]:
    layers = []
    for i, item in enumerate(items):
        layer = _parse_layer(item, f"{path}[{i}]", problems, seen, depth, f"{position}{i + 1}", parent)
        if layer is not None:
            layers.append(layer)
    return layers


def _parse_layer(item: Any, path: str, problems: list[Problem], seen: dict[str, str], depth: int,
                 position: str, parent: str | None = None) -> LayerSpec | None:
    if not isinstance(item, dict):
        problems.append(Problem(path, f"layer #{position}: must be an object with 'id' and 'type'"))
        return None
    own: list[Problem] = []  # this layer's problems; they are named after it at the end
    for key in sorted(item.keys() - _LAYER_KEYS, key=str):
        own.append(Problem(f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(_LAYER_KEYS))})"))
    layer_id = item.get("id")
    bad_id = id_problem(layer_id)
    if bad_id:
        own.append(Problem(f"{path}.id", bad_id))
        layer_id = f"_invalid{len(seen)}"
    elif layer_id in seen:
        own.append(Problem(f"{path}.id", f"duplicate id {layer_id!r} (first used at {seen[layer_id]})"))
    else:
        seen[layer_id] = path
    type_name = item.get("type")
    kind = catalog.kind(type_name) if isinstance(type_name, str) else None
    if kind is None:
        close = _close_names(type_name)
        hint = f"; did you mean {close}?" if close else "; see `workbench catalog` for the layer types"
        own.append(Problem(f"{path}.type", f"unknown layer type {shown(type_name)}{hint}"))
    if depth > MAX_DEPTH:
        own.append(Problem(path, f"nested {depth} levels deep; layers nest at most {MAX_DEPTH} deep (each "
                           "Residual, Parallel or Branch around a layer is one level): move it out of its block"))
    frozen = item.get("frozen", False)
    if not isinstance(frozen, bool):
        own.append(Problem(f"{path}.frozen", f"must be true or false, got {shown(frozen)}"))
        frozen = False
    args = item.get("args", {})
    if not isinstance(args, dict):
        own.append(Problem(f"{path}.args", "must be an object of constructor arguments"))
        args = {}
    if kind is not None:
        args = check_args(kind, args, f"{path}.args", own)
    stages = item.get("frozen_stages", [])
    if "frozen_stages" in item:
        from workbench.model.backbones import stage_names  # torchvision import only when a file uses backbones
        allowed = stage_names(type_name) if type_name in catalog.BACKBONES else ()
        if not allowed:
            own.append(Problem(f"{path}.frozen_stages", "only a backbone has stages"))
            stages = []
        elif not isinstance(stages, list) or any(s not in allowed for s in stages):
            own.append(Problem(f"{path}.frozen_stages", f"must list stage names from {', '.join(allowed)}"))
            stages = []
    nested = None
    if "layers" in item:
        if not (isinstance(type_name, str) and catalog.nests(type_name)):
            own.append(Problem(f"{path}.layers", "only a Residual, Parallel or Branch layer has nested layers"))
        elif not isinstance(item["layers"], list):
            own.append(Problem(f"{path}.layers", "must be a list of layers"))
        elif depth <= MAX_DEPTH:
            nested = item["layers"]
    if kind is not None:
        misplaced = nesting_problem(LayerSpec(str(layer_id), type_name), parent)
        if misplaced:
            own.append(Problem(path, "; ".join(misplaced)))
        if type_name == "Parallel" and (nested is not None or "layers" not in item):
            few = nesting_problem(None, None, len(nested or []))
            if few:
                own.append(Problem(f"{path}.layers", "; ".join(few)))
    label = layer_label(None if bad_id else layer_id, kind.name if kind else "unknown type", position)
    problems.extend(Problem(p.path, f"{label}: {p.message}") for p in own)
    layers = (_parse_layers(nested, f"{path}.layers", problems, seen, depth + 1, f"{position}.", type_name)
              if nested else [])
    return LayerSpec(layer_id, type_name if kind else str(type_name), args, frozen, layers, list(stages))


def check_args(kind: catalog.LayerKind, args: dict, path: str, problems: list[Problem]) -> dict:
    """Check constructor arguments against the catalog; return the normalised ones."""
    out = {}
    for name, value in args.items():
        param = kind.param(name)
        if param is None:
            known = ", ".join(p.name for p in kind.params) or "none"
            problems.append(Problem(f"{path}.{name}",
                                    f"{kind.name} has no argument {shown(name)} (arguments: {known})"))
            continue
        value, err = param.check(value)
        if err:
            problems.append(Problem(f"{path}.{name}", err))
        else:
            out[name] = value
    for param in kind.params:
        if param.required and param.name not in args:
            problems.append(Problem(f"{path}.{param.name}", f"{kind.name} needs {param.name} ({param.help})"))
    return out


def _close_names(name: Any) -> str:
    if not isinstance(name, str):
        return ""
    import difflib
    matches = difflib.get_close_matches(name, list(catalog.BY_NAME), n=2, cutoff=0.6)
    lower = {k.lower(): k for k in catalog.BY_NAME}
    if name.lower() in lower and lower[name.lower()] not in matches:
        matches.insert(0, lower[name.lower()])
    return " or ".join(repr(m) for m in matches)


def weights_key(spec: "ModelSpec") -> str:
    """What trained weights fit: the layers and their arguments without freeze flags (freezing
    changes no tensor), so weights trained or loaded for one spec stay usable after a freeze."""
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("frozen", "frozen_stages")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    return json.dumps(strip(spec.to_json()), sort_keys=True, default=str)
