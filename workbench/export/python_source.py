"""Python source export: a readable ``nn.Module`` class that rebuilds the model with nothing
but PyTorch (and torchvision for backbones), plus a loader for its weights. Blocks are written
with small helper classes (``Residual``, ``Parallel``) whose children carry the layer ids. A
Custom layer's class comes from the user's own file: copied beside the export as
``<stem>_<file>`` or imported from where it lives (``ExportOptions.custom_code``), through the
generated ``user_class``.

The class's attribute names are the layer ids, so its state_dict keys equal the
workbench model's: the .pth / .safetensors exports load into it directly. Verified by
importing the file in a fresh process that cannot import Model Workbench.
"""
from __future__ import annotations

import inspect
import keyword
import re
import unicodedata
from pathlib import Path

import torch
from torch import nn

from workbench import __version__, fileio
from workbench.model import backbones, build, catalog
from workbench.model.params import REQUIRED, as_tuple
from workbench.export.base import ExportError, Format, Job
from workbench.export.torch_formats import run_fresh, state_dict_of
from workbench.export.verify import Verification
from workbench.model.shapes import fmt
from workbench.model.spec import LayerSpec, ModelSpec

IND = "    "
_RECURRENT = ("LSTM", "GRU", "RNN")
_FIXED = {"TransformerEncoderLayer": {"batch_first": True}}  # arguments catalog factories add


def class_name(name: str) -> str:
    """'Digits CNN' -> 'DigitsCNN'; always a valid identifier that clashes with no helper."""
    words = re.findall(r"[A-Za-z0-9]+", name)
    out = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    if out[0].isdigit():
        out = "Model" + out
    if out in ("Residual", "Parallel", "Recurrent", "SelfAttention", "OrderedDict") or keyword.iskeyword(out):
        out += "Model"
    return out


def doc_text(text: str, limit: int = 120) -> str:
    """``text`` made safe for a docstring or comment of generated code: one line of printable
    characters without quotes or backslashes (so it can never end the string or start an
    escape), at most ``limit`` characters. Whatever a project file holds, it stays text."""
    kept = []
    for ch in str(text):
        if ch in "\\\"'`":  # backslash and quotes
            continue
        if ch.isspace():
            ch = " "
        elif unicodedata.category(ch)[0] == "C":  # control, format, surrogate, unassigned
            continue
        kept.append(ch)
    line = " ".join("".join(kept).split())
    return (line[: limit - 3] + "...") if len(line) > limit else line


def _plain_attr(layer_id: str) -> bool:
    """Whether ``self.<id>`` is safe: a plain identifier, not a keyword and not something
    nn.Module already has. Anything else is written through ``repr`` (add_module)."""
    return (layer_id.isidentifier() and layer_id.isascii() and not keyword.iskeyword(layer_id)
            and not layer_id.startswith("_") and not hasattr(nn.Module, layer_id) and layer_id != "training")


def _value(v) -> str:
    if isinstance(v, list):
        v = tuple(v)
    return repr(v)


def _given(kind: catalog.LayerKind | None, args: dict) -> dict:
    """The arguments that differ from PyTorch's own defaults (required ones always stay)."""
    if kind is None:
        return dict(args)
    try:
        signature = inspect.signature(getattr(nn, kind.name)).parameters
    except (AttributeError, TypeError, ValueError):
        signature = {}
    out = {}
    for name, value in args.items():
        param = kind.param(name)
        if name in signature:
            default = signature[name].default
            if default is inspect.Parameter.empty:
                out[name] = value
                continue
        elif param is not None and param.default is not REQUIRED and param.infer is None:
            default = param.default  # LSTM / GRU take **kwargs; the catalog mirrors their defaults
        else:
            out[name] = value
            continue
        dims = param.dims if param is not None else 1
        same = value == default or (isinstance(value, (list, tuple, int)) and isinstance(default, (list, tuple, int))
                                    and as_tuple(value, dims) == as_tuple(default, dims))
        if not same:
            out[name] = value
    return out


def _call(name: str, args: dict, order: list[str]) -> str:
    keys = [k for k in order if k in args] + [k for k in args if k not in order]
    return f"{name}({', '.join(f'{k}={_value(args[k])}' for k in keys)})"


def _constructor(layer: LayerSpec, info: build.LayerInfo, depth: int, aliases: dict | None = None) -> str:
    """The Python expression that builds one layer (multi-line for Residual and Parallel blocks)."""
    kind = catalog.kind(layer.type)
    order = [p.name for p in kind.params] if kind else []
    args = _given(kind, info.args)
    if layer.type == "Residual":
        return _residual(layer, info, depth, aliases)
    if layer.type == "Parallel":
        return _parallel(layer, info, depth, aliases)
    if layer.type == "Custom":  # your own module: the alias user_classes() binds (below)
        kwargs = info.args.get("kwargs", {})
        alias = (aliases or {}).get((str(info.args["file"]), info.args["class"])) or _alias(info.args["class"])
        if all(k.isidentifier() and not keyword.iskeyword(k) for k in kwargs):
            return _call(alias, kwargs, [])
        return f"{alias}(**{kwargs!r})"
    if layer.type in catalog.BACKBONES:
        return f"{layer.type}_backbone(pool={args.get('pool', True)!r})"
    if layer.type in _RECURRENT:
        last = args.pop("output", "last") == "last"
        rnn = _call(f"nn.{layer.type}", {**args, "batch_first": True}, order)
        return f"Recurrent({rnn}, last={last!r})"
    if layer.type == "MultiheadAttention":
        return _call("SelfAttention", args, order)
    if layer.type == "TransformerEncoder":
        return _encoder(info.args, order)
    return _call(f"nn.{layer.type}", {**args, **_FIXED.get(layer.type, {})}, order)


def _encoder(args: dict, order: list[str]) -> str:
    """nn.TransformerEncoder with its encoder layer written out, as catalog.transformer_encoder builds it."""
    layer_args = {k: v for k, v in args.items() if k not in ("num_layers", "norm") and (k, v) != ("activation", "relu")}
    layer = _call("nn.TransformerEncoderLayer", {**_given(catalog.kind("TransformerEncoderLayer"), layer_args),
                                                 "batch_first": True}, order)
    norm = "None"
    if args.get("norm"):
        norm = _call("nn.LayerNorm", {"normalized_shape": args["d_model"], "eps": args.get("layer_norm_eps", 1e-5),
                                      "bias": args.get("bias", True)}, [])
    return f"nn.TransformerEncoder({layer}, num_layers={args['num_layers']!r}, norm={norm}, enable_nested_tensor=False)"


def _residual(layer: LayerSpec, info: build.LayerInfo, depth: int, aliases: dict | None = None) -> str:
    pad = IND * depth
    lines = ["Residual(", f"{pad}{IND}body=nn.Sequential(OrderedDict(["]
    for child, child_info in zip(layer.layers, info.children):
        expr = _constructor(child, child_info, depth + 2, aliases)
        note = f"  # -> {fmt(child_info.out_shape)}" if child_info.out_shape else ""
        lines.append(f"{pad}{IND * 2}({child.id!r}, {expr}),{note}")
    lines.append(f"{pad}{IND}])),")
    if info.in_shape != info.out_shape:
        proj = build.projection(info.in_shape, info.out_shape, info.args.get("projection", "auto"))
        conv = proj[0] if isinstance(proj, nn.Sequential) else proj
        if isinstance(proj, nn.Linear):
            text = f"nn.Linear({proj.in_features}, {proj.out_features}, bias=False)"
        else:
            text = (f"nn.Conv2d({conv.in_channels}, {conv.out_channels}, kernel_size=1, "
                    f"stride={conv.stride[0]}, bias=False)")
        if isinstance(proj, nn.Sequential):  # conv_bn: ResNet's downsample
            text = f"nn.Sequential({text}, nn.BatchNorm2d({conv.out_channels}))"
        lines.append(f"{pad}{IND}proj={text},  # shortcut from {fmt(info.in_shape)} to {fmt(info.out_shape)}")
    lines.append(f"{pad})")
    return "\n".join(lines)


def _parallel(layer: LayerSpec, info: build.LayerInfo, depth: int, aliases: dict | None = None) -> str:
    """Parallel(OrderedDict([(branch id, nn.Sequential(OrderedDict([...]))), ...]), merge=..., dim=...)."""
    pad = IND * depth
    lines = ["Parallel(OrderedDict([", ]
    for branch, branch_info in zip(layer.layers, info.children):
        note = f"  # -> {fmt(branch_info.out_shape)}"
        if not branch.layers:
            lines.append(f"{pad}{IND}({branch.id!r}, nn.Sequential()),{note} (the identity)")
            continue
        lines.append(f"{pad}{IND}({branch.id!r}, nn.Sequential(OrderedDict([")
        for child, child_info in zip(branch.layers, branch_info.children):
            expr = _constructor(child, child_info, depth + 2, aliases)
            child_note = f"  # -> {fmt(child_info.out_shape)}" if child_info.out_shape else ""
            lines.append(f"{pad}{IND * 2}({child.id!r}, {expr}),{child_note}")
        lines.append(f"{pad}{IND}]))),{note}")
    merge = info.args.get("merge", "concat")
    tail = f"merge={merge!r}" + (f", dim={info.args.get('dim', 1)!r}" if merge == "concat" else "")
    lines.append(f"{pad}]), {tail})")
    return "\n".join(lines)


def _helpers(spec: ModelSpec) -> list[str]:
    types = {layer.type for _, layer in spec.walk()}
    out = []
    if "Residual" in types:
        out.append(RESIDUAL)
    if "Parallel" in types:
        out.append(PARALLEL)
    if types & set(_RECURRENT):
        out.append(RECURRENT)
    if "MultiheadAttention" in types:
        out.append(SELF_ATTENTION)
    for arch in sorted(types & set(catalog.BACKBONES)):
        out.append(_backbone_helper(arch))
    return out


def _backbone_helper(arch: str) -> str:
    return backbones.helper_source(arch)


# ---------------------------------------------------------------- Custom layers (your own modules)

def _alias(class_name: str) -> str:
    ok = class_name.isidentifier() and class_name.isascii() and not keyword.iskeyword(class_name)
    return class_name if ok else "Custom"


def _user_aliases(spec: ModelSpec) -> dict[tuple[str, str], str]:
    """(file, class) of each Custom layer -> the name the generated file binds its class to."""
    out: dict[tuple[str, str], str] = {}
    for _, layer in spec.walk():
        if layer.type == "Custom":
            key = (str(layer.args["file"]), layer.args["class"])
            if key not in out:
                base = _alias(key[1])
                taken = set(out.values()) | {"Residual", "Recurrent", "SelfAttention", "OrderedDict", "user_class"}
                alias, n = base, 1
                while alias in taken:
                    n += 1
                    alias = f"{base}{n}"
                out[key] = alias
    return out


def companion_name(target_stem: str, file: str) -> str:
    """The name a Custom layer's file is copied to beside the export: ``model_blocks.py``."""
    return f"{target_stem}_{Path(file).name}"


def user_files(spec: ModelSpec) -> list[str]:
    """The Custom layers' files, once each, in order."""
    return list(dict.fromkeys(str(layer.args["file"]) for _, layer in spec.walk() if layer.type == "Custom"))


def _user_bindings(spec: ModelSpec, mode: str, stem: str) -> str:
    aliases = _user_aliases(spec)
    if not aliases:
        return ""
    lines = []
    for (file, cls), alias in aliases.items():
        where = companion_name(stem, file) if mode == "copy" else file
        note = "copied beside this file" if mode == "copy" else "imported from where it lives"
        lines.append(f"{alias} = user_class({where!r}, {cls!r})  # your own module ({note})")
    return USER_CLASS + "\n\n" + "\n".join(lines) + "\n\n\n"


def generate(spec: ModelSpec, name: str = "model", cls: str = "", module: str = "model",
             custom_code: str = "copy") -> str:
    """The whole source file for ``spec``; ``module`` is the file's stem (for the usage example).
    ``custom_code``: a Custom layer's file is "copy" (copied beside the export as
    ``<module>_<file>``, see ``companion_name``) or "import" (loaded from its absolute path)."""
    info = build.check(spec)
    aliases = _user_aliases(spec)
    cls = class_name(cls or name)
    init, forward = [], []
    for layer, row in zip(spec.layers, info.layers):
        expr = _constructor(layer, row, 2, aliases)
        shape = f"  # -> {fmt(row.out_shape)}"
        if _plain_attr(layer.id):
            init.append(f"{IND * 2}self.{layer.id} = {expr}")
            forward.append(f"{IND * 2}x = self.{layer.id}(x){shape}")
        else:
            init.append(f"{IND * 2}self.add_module({layer.id!r}, {expr})")
            forward.append(f"{IND * 2}x = self._modules[{layer.id!r}](x){shape}")
    dtype = "torch.long" if spec.input_dtype == "int64" else "torch.float32"
    example = ("torch.randint(0, 2, (2, *INPUT_SHAPE))" if spec.input_dtype == "int64"
               else "torch.randn(2, *INPUT_SHAPE)")
    params = info.total_params
    stem = module if module.isidentifier() and module.isascii() and not keyword.iskeyword(module) else "model"
    title = doc_text(name) or "Model"
    types = {layer.type for _, layer in spec.walk()}
    needs = "PyTorch and torchvision" if types & set(catalog.BACKBONES) else "PyTorch"
    ordered = "from collections import OrderedDict\n\n" if types & {"Residual", "Parallel", *catalog.BACKBONES} else ""
    text = HEADER.format(name=title, version=__version__, stem=stem, needs=needs, ordered=ordered,
                         dtype=spec.input_dtype, params=f"{params:,}",
                         shape_inner=", ".join(map(str, spec.input_shape)),
                         out_inner=", ".join(map(str, info.output_shape)),
                         input_shape=tuple(spec.input_shape), torch_dtype=dtype)
    text += "\n\n".join(_helpers(spec)) + ("\n\n" if _helpers(spec) else "")
    text += _user_bindings(spec, custom_code, module)
    text += CLASS.format(cls=cls, name=title, shape=fmt(spec.input_shape), out=fmt(info.output_shape),
                         init="\n".join(init), forward="\n".join(forward))
    text += FOOTER.format(cls=cls, example=example)
    return text


def write_python(job: Job, tmp: Path) -> None:
    mode = job.options.custom_code
    if mode not in ("copy", "import"):
        raise ExportError(f"custom_code must be 'copy' or 'import', got {mode!r}")
    source = generate(job.spec, job.options.name, job.options.class_name, job.target.stem, mode)
    compile(source, job.target.name, "exec")  # a syntax error here is a bug: fail before writing
    tmp.write_text(source, encoding="utf-8")
    if mode == "copy":
        for file in user_files(job.spec):
            copy = job.target.parent / companion_name(job.target.stem, file)
            fileio.write_bytes(copy, Path(file).read_bytes())
            job.extra.append((copy, copy))
            job.log(f"copied {file} to {copy} (the Custom layer's code, imported by the .py)")
    job.log(f"generated class {class_name(job.options.class_name or job.options.name)} "
            f"({source.count(chr(10))} lines); weights load with load_model('<weights>.pth' or '.safetensors')")


def verify_python(job: Job, tmp: Path) -> Verification:
    """Import the file in a fresh process (Model Workbench blocked), load the weights, run it."""
    weights = job.fresh_process().folder / "weights.pth"
    fileio.write_with(weights, lambda p: torch.save(state_dict_of(job), p))
    return run_fresh(job, tmp, weights)


HEADER = '''"""{name}: generated by Model Workbench {version}. Needs only {needs}.

Input: {dtype} tensors shaped (batch, {shape_inner}); output (batch, {out_inner}); {params} parameters.

    from {stem} import load_model
    model = load_model("{stem}.safetensors")  # or the .pth weights export
    y = model(x)

Edit the class freely: its attribute names are the state_dict keys of the weights files.
"""
{ordered}import torch
from torch import nn

INPUT_SHAPE = {input_shape}  # without the batch dimension
INPUT_DTYPE = {torch_dtype}


'''

RESIDUAL = '''class Residual(nn.Module):
    """x + body(x); ``proj`` maps x to body(x)'s shape when the body changes it."""

    def __init__(self, body, proj=None):
        super().__init__()
        self.body = body
        self.proj = proj if proj is not None else nn.Identity()

    def forward(self, x):
        return self.proj(x) + self.body(x)
'''

PARALLEL = '''class Parallel(nn.Module):
    """Runs every branch on the same input and merges their outputs: "concat" joins them along
    ``dim`` (1: channels or features), "add" sums them, "mean" averages them and "mul" multiplies
    them (a size of 1 broadcasts, e.g. a (C, 1, 1) gate against a (C, H, W) map). The branches are
    the children, by name; an empty nn.Sequential passes the input on unchanged."""

    def __init__(self, branches, merge="concat", dim=1):
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)
        self.merge = merge
        self.dim = dim

    def forward(self, x):
        outs = [branch(x) for branch in self.children()]
        if self.merge == "concat":
            return torch.cat(outs, dim=self.dim)
        out = outs[0]
        for other in outs[1:]:
            out = out * other if self.merge == "mul" else out + other
        return out / len(outs) if self.merge == "mean" else out
'''

RECURRENT = '''class Recurrent(nn.Module):
    """An RNN, LSTM or GRU (batch first) passing on its final hidden state (both directions side by
    side when bidirectional), or the whole sequence."""

    def __init__(self, rnn, last=True):
        super().__init__()
        self.rnn = rnn
        self.last = last
        self.both = bool(rnn.bidirectional)

    def forward(self, x):
        out, state = self.rnn(x)
        if not self.last:
            return out
        h = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c); h: (layers * directions, batch, hidden)
        return torch.cat((h[-2], h[-1]), dim=-1) if self.both else h[-1]
'''

SELF_ATTENTION = '''class SelfAttention(nn.Module):
    """nn.MultiheadAttention (batch first) as self-attention: query, key and value are all the
    input; passes on the attention output (not the weights)."""

    def __init__(self, **args):
        super().__init__()
        self.attn = nn.MultiheadAttention(batch_first=True, **args)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]
'''

USER_CLASS = '''def user_class(file, name):
    """Class ``name`` from a Python file (a Custom layer's own code; a relative name is beside this file)."""
    import importlib.util
    import os
    import sys

    path = file if os.path.isabs(file) else os.path.join(os.path.dirname(os.path.abspath(__file__)), file)
    module_name = "user_code_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path))
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return getattr(module, name)
'''

CLASS = '''class {cls}(nn.Module):
    """{name}: input {shape}, output {out} (batch dimension not shown)."""

    def __init__(self):
        super().__init__()
{init}

    def forward(self, x):
{forward}
        return x


'''

FOOTER = '''def build_model():
    """A new {cls} with freshly initialised weights."""
    return {cls}()


def load_state_dict(path, map_location="cpu"):
    """The tensors in a weights file: a .safetensors file, a plain state_dict .pth, a Model
    Workbench .pth export ({{"state_dict": ..., "spec": ...}}) or a training checkpoint
    ({{"model": ..., ...}}). Never runs code from the file (weights_only=True)."""
    path = str(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device=str(map_location))
    data = torch.load(path, map_location=map_location, weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            return data[key]
    return data


def load_model(path, map_location="cpu"):
    """{cls} with the weights from ``path``, in eval mode."""
    model = build_model()
    model.load_state_dict(load_state_dict(path, map_location))
    return model.eval()


if __name__ == "__main__":
    import sys

    model = load_model(sys.argv[1]) if len(sys.argv) > 1 else build_model().eval()
    x = {example}
    with torch.no_grad():
        print(type(model).__name__, "output shape:", tuple(model(x).shape))
'''


PYTHON = Format(
    "python", ".py", "Python source (.py)",
    "Anyone with PyTorch: a readable nn.Module class to read, edit and retrain; pair it with "
    "the .pth or .safetensors weights",
    "imported in a fresh Python process (without Model Workbench) with the weights loaded",
    write_python, verify_python)
