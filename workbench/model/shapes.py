"""Closed-form output-shape rules for the simple layer kinds.

Each rule takes the resolved arguments and the input shape (no batch dimension) and
returns the output shape, or raises ``Bad`` with what is wrong and how to fix it (in words,
and where the fix is mechanical also as a ``remedies.Remedy`` the window offers as a button). The
catalog gives each kind its rule (``LayerKind.shape``); kinds without one are inferred by a
forward pass on the ``meta`` device (see build.py). The fuzz test checks every rule against
a real forward pass.
"""
from __future__ import annotations

import math

from workbench.model import remedies
from workbench.model.params import as_tuple

Shape = tuple[int, ...]


class Bad(Exception):
    """A layer cannot take its input: ``problem`` and ``fix`` in words, and ``remedy`` (or None)
    the one-click edit that makes the fix, for the layer the rule judges (``remedies.HERE``)."""

    def __init__(self, problem: str, fix: str = "", remedy: remedies.Remedy | None = None):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.remedy = remedy


def fmt(shape: Shape | None) -> str:
    if shape is None:
        return "unknown"
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _spatial_out(size: int, k: int, s: int, p: int, d: int, ceil: bool = False) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1  # the last window must start inside the input or left padding
    return out


def _too_small(name: str, in_shape: Shape, kernel: tuple, dims: int) -> Bad:
    spatial = "x".join(map(str, in_shape[-dims:]))
    k = "x".join(map(str, kernel)) if len(set(kernel)) > 1 else str(kernel[0])
    return Bad(f"kernel {k} is larger than the {spatial} input",
               "reduce kernel_size, add padding, or remove a pooling layer before it")


def conv(dims: int):
    def rule(args: dict, in_shape: Shape) -> Shape:
        k = as_tuple(args["kernel_size"], dims)
        s = as_tuple(args.get("stride", 1), dims)
        d = as_tuple(args.get("dilation", 1), dims)
        groups = args.get("groups", 1)
        cin, cout = args["in_channels"], args["out_channels"]
        if cin % groups or cout % groups:
            raise Bad(f"groups={groups} must divide in_channels={cin} and out_channels={cout}",
                      "set groups to a common divisor (1 always works)")
        pad = args.get("padding", 0)
        if pad == "same":
            if any(x != 1 for x in s):
                raise Bad("padding='same' needs stride 1", "set stride to 1 or give padding as a number")
            _check_pad_mode(args, tuple((d[i] * (k[i] - 1) + 1) // 2 for i in range(dims)), in_shape[1:])
            return (cout,) + tuple(in_shape[1:])
        p = (0,) * dims if pad == "valid" else as_tuple(pad, dims)
        _check_pad_mode(args, p, in_shape[1:])
        out = tuple(_spatial_out(n, k[i], s[i], p[i], d[i]) for i, n in enumerate(in_shape[1:]))
        if min(out) < 1:
            raise _too_small("conv", in_shape, k, dims)
        return (cout,) + out
    return rule


def _check_pad_mode(args: dict, pad: tuple, spatial: tuple) -> None:
    """reflect padding must be smaller than the input side; circular at most as large."""
    mode = args.get("padding_mode", "zeros")
    limit = {"reflect": lambda p, n: p < n, "circular": lambda p, n: p <= n}.get(mode)
    if limit and not all(limit(p, n) for p, n in zip(pad, spatial)):
        size = "x".join(map(str, spatial))
        raise Bad(f"{mode} padding of {max(pad)} needs a larger input than {size}",
                  "lower padding, or use padding_mode 'zeros' or 'replicate'")


def conv_transpose(dims: int):
    def rule(args: dict, in_shape: Shape) -> Shape:
        k, s = as_tuple(args["kernel_size"], dims), as_tuple(args.get("stride", 1), dims)
        p, op = as_tuple(args.get("padding", 0), dims), as_tuple(args.get("output_padding", 0), dims)
        d = as_tuple(args.get("dilation", 1), dims)
        groups = args.get("groups", 1)
        if args["in_channels"] % groups or args["out_channels"] % groups:
            raise Bad(f"groups={groups} must divide in_channels and out_channels", "set groups to 1")
        if any(op[i] >= max(s[i], d[i]) for i in range(dims)):
            raise Bad(f"output_padding {op} must be smaller than stride {s} or dilation",
                      "lower output_padding or raise stride")
        out = tuple((n - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i, n in enumerate(in_shape[1:]))
        if min(out) < 1:
            raise Bad(f"padding {p} removes the whole output", "reduce padding")
        return (args["out_channels"],) + out
    return rule


conv_transpose2d = conv_transpose(2)


def pool(dims: int, avg: bool = False):
    def rule(args: dict, in_shape: Shape) -> Shape:
        k = as_tuple(args["kernel_size"], dims)
        stride = args.get("stride")
        s = k if stride is None else as_tuple(stride, dims)
        p = as_tuple(args.get("padding", 0), dims)
        d = (1,) * dims if avg else as_tuple(args.get("dilation", 1), dims)
        if any(p[i] * 2 > k[i] for i in range(dims)):
            raise Bad(f"padding {args.get('padding')} is more than half the kernel {args['kernel_size']}",
                      "use padding of at most kernel_size // 2")
        ceil = args.get("ceil_mode", False)
        out = tuple(_spatial_out(n, k[i], s[i], p[i], d[i], ceil) for i, n in enumerate(in_shape[1:]))
        if min(out) < 1:
            raise _too_small("pool", in_shape, k, dims)
        return (in_shape[0],) + out
    return rule


def adaptive_pool2d(args: dict, in_shape: Shape) -> Shape:
    return (in_shape[0],) + as_tuple(args.get("output_size", 1), 2)


def adaptive_pool(dims: int):
    def rule(args: dict, in_shape: Shape) -> Shape:
        return (in_shape[0],) + as_tuple(args["output_size"], dims)
    return rule


_INTERPOLATING = {"linear": 2, "bilinear": 3, "bicubic": 3, "trilinear": 4}  # mode -> input rank (no batch)


def upsample(mode: str | None = None):
    """Upsample (``mode`` None: the argument's) and UpsamplingNearest2d / UpsamplingBilinear2d."""
    def rule(args: dict, in_shape: Shape) -> Shape:
        how = mode or args.get("mode", "nearest")
        spatial = tuple(in_shape[1:])
        need = _INTERPOLATING.get(how)
        if need is not None and len(in_shape) != need:
            shape = {2: "(channels, length)", 3: "(channels, height, width)", 4: "(channels, depth, height, width)"}
            raise Bad(f"mode '{how}' needs input shaped {shape[need]} but receives {fmt(in_shape)}",
                      "choose the mode for this input ('linear' 1-D, 'bilinear' or 'bicubic' 2-D, 'trilinear' "
                      "3-D; 'nearest' any)")
        if mode is None and need is None and args.get("align_corners") is not None:
            raise Bad(f"align_corners only applies to the interpolating modes, not '{how}'",
                      "clear align_corners, or choose mode 'linear', 'bilinear', 'bicubic' or 'trilinear'")
        size, scale = args.get("size"), args.get("scale_factor")
        if (size is None) == (scale is None):
            raise Bad("needs either size or scale_factor (exactly one of them)",
                      "set scale_factor (2 doubles each side) and clear size" if size is not None else
                      "set scale_factor, e.g. 2", remedies.set_args(scale_factor=2.0) if size is None else None)
        if size is not None and args.get("recompute_scale_factor"):
            raise Bad("recompute_scale_factor only applies with scale_factor, not with an explicit size",
                      "clear recompute_scale_factor, or set scale_factor instead of size",
                      remedies.set_args(recompute_scale_factor=None))
        if size is not None:
            out = (size,) * len(spatial) if isinstance(size, int) else tuple(size)
            if len(out) != len(spatial):
                raise Bad(f"size {fmt(out)} gives {len(out)} sizes for {len(spatial)} spatial dimensions",
                          f"give one size per spatial dimension, e.g. {', '.join(str(2 * n) for n in spatial)}")
        else:
            out = tuple(math.floor(float(n) * scale) for n in spatial)
            if min(out) < 1:
                raise Bad(f"scale_factor {scale:g} leaves nothing of {fmt(spatial)}", "raise scale_factor")
        return (in_shape[0],) + out
    return rule


def same(args: dict, in_shape: Shape) -> Shape:
    return tuple(in_shape)


def linear(args: dict, in_shape: Shape) -> Shape:
    return tuple(in_shape[:-1]) + (args["out_features"],)


def _dim(dim: int, ndim: int, name: str) -> int:
    """Normalise a torch dim (batch counted as 0) for an input of ndim dims incl. batch."""
    if not -ndim <= dim < ndim:
        raise Bad(f"{name}={dim} is out of range for a {ndim}-D batch (dims -{ndim}..{ndim - 1})",
                  f"choose {name} between 1 and {ndim - 1}")
    return dim % ndim


def softmax(args: dict, in_shape: Shape) -> Shape:
    dim = _dim(args.get("dim", -1), len(in_shape) + 1, "dim")
    if dim == 0:
        raise Bad("dim=0 is the batch: each sample's scores would mix with other samples'", "use dim=-1",
                  remedies.set_args(dim=-1))
    return tuple(in_shape)


def pixel_shuffle(args: dict, in_shape: Shape) -> Shape:
    r = args["upscale_factor"]
    c, h, w = in_shape
    if c % (r * r):
        raise Bad(f"{c} channels do not divide by upscale_factor² = {r * r}",
                  f"give the layer before it a multiple of {r * r} channels, or lower upscale_factor")
    return (c // (r * r), h * r, w * r)


def pixel_unshuffle(args: dict, in_shape: Shape) -> Shape:
    r = args["downscale_factor"]
    c, h, w = in_shape
    if h % r or w % r:
        raise Bad(f"the {h}x{w} image does not divide by downscale_factor={r}",
                  f"choose a downscale_factor that divides {h} and {w}, or pad the image")
    return (c * r * r, h // r, w // r)


def channel_shuffle(args: dict, in_shape: Shape) -> Shape:
    g, c = args["groups"], in_shape[0]
    if c % g:
        raise Bad(f"{c} channels do not split into groups={g}",
                  f"choose groups among {', '.join(str(h) for h in _divisors(c))}")
    return tuple(in_shape)


def instance_norm(args: dict, in_shape: Shape) -> Shape:
    if math.prod(in_shape[1:]) <= 1:
        raise Bad(f"normalises each channel over its own values, but {fmt(in_shape)} has one value per channel",
                  "move it before the layer that shrinks the input to 1, or use BatchNorm or LayerNorm")
    return tuple(in_shape)


def prelu(args: dict, in_shape: Shape) -> Shape:
    n, channels = args.get("num_parameters", 1), in_shape[0]
    if n not in (1, channels):
        raise Bad(f"num_parameters={n} must be 1 (one slope for all) or the input's {channels} channels",
                  f"set num_parameters to 1 or {channels}", remedies.set_args(num_parameters=channels))
    return tuple(in_shape)


def celu(args: dict, in_shape: Shape) -> Shape:
    if abs(args.get("alpha", 1.0)) * 3.4028234663852886e38 <= 1:  # CELU divides by alpha, in float32
        raise Bad(f"alpha={args.get('alpha'):g} is too close to 0: CELU divides by it",
                  "set alpha to a non-zero value such as 1.0", remedies.set_args(alpha=1.0))
    return tuple(in_shape)


def rrelu(args: dict, in_shape: Shape) -> Shape:
    lower, upper = args.get("lower", 1 / 8), args.get("upper", 1 / 3)
    if lower > upper:
        raise Bad(f"lower={lower:g} is above upper={upper:g}", "make lower at most upper")
    return tuple(in_shape)


def glu(args: dict, in_shape: Shape) -> Shape:
    full = (0,) + tuple(in_shape)
    dim = _dim(args.get("dim", -1), len(full), "dim")
    if dim == 0:
        raise Bad("dim=0 is the batch: GLU would gate one half of the batch with the other", "use dim=-1",
                  remedies.set_args(dim=-1) if full[-1] % 2 == 0 else None)
    if full[dim] % 2:
        raise Bad(f"GLU halves dimension {dim}, but it has {full[dim]} values (an odd number)",
                  "choose a dimension of even size, or make this one even")
    return full[1:dim] + (full[dim] // 2,) + full[dim + 1:]


def flatten(args: dict, in_shape: Shape) -> Shape:
    full = (0,) + tuple(in_shape)
    start = _dim(args.get("start_dim", 1), len(full), "start_dim")
    end = _dim(args.get("end_dim", -1), len(full), "end_dim")
    if start == 0:
        raise Bad("start_dim=0 would merge the batch into the features", "use start_dim=1",
                  remedies.set_args(start_dim=1) if end >= 1 else None)
    if end < start:
        raise Bad(f"end_dim ({end}) comes before start_dim ({start})", "use end_dim=-1", remedies.set_args(end_dim=-1))
    return full[1:start] + (math.prod(full[start:end + 1]),) + full[end + 1:]


def unflatten(args: dict, in_shape: Shape) -> Shape:
    full = (0,) + tuple(in_shape)
    dim = _dim(args["dim"], len(full), "dim")
    size = tuple(args["unflattened_size"])
    if dim == 0:  # dim=1 is the fix only where the sizes fit it
        raise Bad("dim=0 is the batch", "use dim=1 to split the features",
                  remedies.set_args(dim=1) if len(full) > 1 and math.prod(size) == full[1] else None)
    if math.prod(size) != full[dim]:
        raise Bad(f"unflattened_size {fmt(size)} holds {math.prod(size)} values but dimension {dim} has "
                  f"{full[dim]}", f"choose sizes whose product is {full[dim]}")
    return full[1:dim] + size + full[dim + 1:]


def embedding(args: dict, in_shape: Shape) -> Shape:
    return tuple(in_shape) + (args["embedding_dim"],)


def recurrent(args: dict, in_shape: Shape) -> Shape:
    width = args["hidden_size"] * (2 if args.get("bidirectional") else 1)
    return (width,) if args.get("output", "last") == "last" else (in_shape[0], width)


def transformer(args: dict, in_shape: Shape) -> Shape:
    if args["d_model"] % args["nhead"]:
        raise Bad(f"d_model={args['d_model']} does not divide into nhead={args['nhead']} heads",
                  f"choose nhead among {', '.join(str(h) for h in _divisors(args['d_model']))}")
    return tuple(in_shape)


def attention(args: dict, in_shape: Shape) -> Shape:
    if args["embed_dim"] % args["num_heads"]:
        raise Bad(f"embed_dim={args['embed_dim']} does not divide into num_heads={args['num_heads']} heads",
                  f"choose num_heads among {', '.join(str(h) for h in _divisors(args['embed_dim']))}")
    return tuple(in_shape)


def group_norm(args: dict, in_shape: Shape) -> Shape:
    if args["num_channels"] % args["num_groups"]:
        raise Bad(f"{args['num_channels']} channels do not split into num_groups={args['num_groups']}",
                  f"choose num_groups among {', '.join(str(h) for h in _divisors(args['num_channels']))}")
    return tuple(in_shape)


def layer_norm(args: dict, in_shape: Shape) -> Shape:
    ns = tuple(args["normalized_shape"])
    if len(ns) > len(in_shape) or tuple(in_shape[-len(ns):]) != ns:
        raise Bad(f"normalized_shape {fmt(ns)} does not match the trailing dimensions of {fmt(in_shape)}",
                  f"remove normalized_shape to use the last dimension ({in_shape[-1]},)",
                  remedies.set_args(normalized_shape=[in_shape[-1]]))
    return tuple(in_shape)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, min(n, 64) + 1) if n % d == 0][:8]


def advice(kind: str, args: dict) -> list[str]:
    """Settings that work but are probably not what the user meant."""
    notes = []
    if kind in ("LSTM", "GRU", "RNN") and args.get("dropout", 0) > 0 and args.get("num_layers", 1) == 1:
        notes.append("dropout only acts between stacked layers, so it does nothing with num_layers=1; "
                     "raise num_layers or add a Dropout layer after it")
    dropouts = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")
    if kind in dropouts and args.get("p", 0.5) >= 1.0:
        notes.append("p=1 zeroes every value while training; use a p below 1")
    return notes


# ---------------------------------------------------------------- Parallel merges

def merge(how: str, dim: int, outputs: list[tuple[str, Shape, str]]) -> tuple[Shape, str, list[str]]:
    """The output (shape, dtype, advice) of a Parallel merging its branches' ``outputs``
    ((branch id, shape, dtype) each; ``dim`` counts the batch as 0, as torch does). ``Bad`` names
    the branch that does not fit against the first one, and the fix. ``mul`` broadcasts: a size
    of 1 stretches to the other branch's size (a Cx1x1 gate against a CxHxW map)."""
    first_id, first, first_dtype = outputs[0]
    for bid, shape, dtype in outputs[1:]:
        if dtype != first_dtype:
            raise Bad(f"branch {bid!r} gives {dtype} values but {first_id!r} gives {first_dtype}: "
                      f"{how} needs one kind of value", f"put the same Embedding (or none) in every branch")
    for bid, shape, _ in outputs[1:]:
        if len(shape) != len(first):
            raise Bad(f"branch {bid!r} gives {fmt(shape)}, {first_id!r} {fmt(first)}: {how} needs outputs of the "
                      "same rank", f"make {bid!r} output {len(first)}-D like {first_id!r} (Flatten and pooling "
                      "change the rank)")
    if how == "concat":
        return _concat(dim, outputs), first_dtype, []
    if how == "mul":
        return _broadcast(outputs)
    for bid, shape, _ in outputs[1:]:
        if shape != first:
            raise Bad(f"branch {bid!r} gives {fmt(shape)}, {first_id!r} {fmt(first)}: {how} needs equal shapes",
                      f"{_resize_fix(bid, shape, first)}, or merge by concat")
    return first, first_dtype, []


def _concat(dim: int, outputs: list[tuple[str, Shape, str]]) -> Shape:
    first_id, first, _ = outputs[0]
    rank = len(first) + 1  # with the batch
    d = dim + rank if dim < 0 else dim
    if not 0 <= d < rank:
        raise Bad(f"dim {dim} is outside the branches' outputs {fmt(first)} (batch + {rank - 1} dimensions)",
                  f"set dim between 1 and {rank - 1} (1 joins channels or features)")
    if d == 0:
        raise Bad("dim 0 is the batch: concat along it would stack examples, not features",
                  "set dim to 1 (channels or features)")
    for bid, shape, _ in outputs[1:]:
        other = [i for i in range(1, rank) if i != d and shape[i - 1] != first[i - 1]]
        if other:
            i = other[0]
            fix = (f"set dim to {i}" if len(other) == 1 else
                   f"make {bid!r} output the same sizes as {first_id!r} apart from dim {d}")
            raise Bad(f"branch {bid!r} gives {fmt(shape)}, {first_id!r} {fmt(first)}: concat along dim {d} needs "
                      f"equal sizes in every other dimension, and dim {i} differs ({shape[i - 1]} vs "
                      f"{first[i - 1]})", f"{fix}, or {_resize_fix(bid, shape, first, keep=d)}")
    return tuple(sum(s[d - 1] for _, s, _ in outputs) if i == d - 1 else n for i, n in enumerate(first))


def _broadcast(outputs: list[tuple[str, Shape, str]]) -> tuple[Shape, str, list[str]]:
    first_id, first, first_dtype = outputs[0]
    out = list(first)
    for bid, shape, _ in outputs[1:]:
        for i, (a, b) in enumerate(zip(out, shape)):
            if a != b and 1 not in (a, b):
                raise Bad(f"branch {bid!r} gives {fmt(shape)}, {first_id!r} {fmt(first)}: mul needs equal sizes or "
                          f"a size of 1 to broadcast, and dim {i + 1} differs ({b} vs {a})",
                          f"{_resize_fix(bid, shape, tuple(out))}, or merge by concat")
            out[i] = max(a, b)
    out_shape = tuple(out)
    notes = [f"mul broadcasts branch {bid!r} {fmt(shape)} to {fmt(out_shape)}"
             for bid, shape, _ in outputs if shape != out_shape]
    return out_shape, first_dtype, notes


def _resize_fix(bid: str, shape: Shape, want: Shape, keep: int | None = None) -> str:
    """How to make branch ``bid``'s output ``shape`` match ``want`` (``keep``: a dimension, counted
    with the batch, that may differ)."""
    differs = [i for i in range(len(want)) if shape[i] != want[i] and i + 1 != keep]
    if differs == [0] and len(want) == 3:
        return f"add a 1x1 Conv2d to {bid!r} with out_channels {want[0]}"
    if differs == [0] and len(want) in (2, 4):
        return f"add a 1x1 Conv{len(want) - 1}d to {bid!r} with out_channels {want[0]}"
    if differs == [len(want) - 1] and len(want) in (1, 2):
        return f"add a Linear to {bid!r} with out_features {want[-1]}"
    size = "x".join(str(want[i]) for i in range(1, len(want))) if len(want) > 1 else str(want[0])
    return f"make {bid!r} keep the size {size} (padding, or the same strides as the other branches)"
