"""Every layer kind the palette offers: two tables, and a registry the rest of the code reads.

Type names and argument names are PyTorch's own (``torch.nn``), so users bring what they
know. Input-size arguments carry an ``infer`` rule and may be omitted. A kind's ``shape``
rule (shapes.py) gives its output shape in closed form; a kind without one is inferred by a
forward pass of its module on the ``meta`` device. The composite kinds (``Residual``, ``Parallel``
with its ``Branch`` rows, the torchvision backbones and ``Custom``, the user's own module:
custom.py) are inferred and built by ``workbench.model.build``; ``nests(type)`` says whether a
kind holds nested layers.

``_TABLE`` holds the first kinds, written by hand (their arguments and help are the project
file's contract and stay as they are). ``torch_kinds()`` holds every other ``torch.nn`` module
that takes one tensor and returns one, one ``_nn(...)`` line each: arguments, defaults and help
are generated from the constructor's signature and docstring (signatures.py); the line adds
what a signature cannot say (category, starting values, bounds, input rank, a shape rule).
``EXCLUDED`` names every other ``torch.nn`` module with the reason it is not a kind.

Adding a kind: one ``_nn(...)`` or ``LayerKind`` line in a table below (or, in a module of its
own, a ``LayerKind`` and one ``register_kind(...)`` line). The palette, the inspector, the project
file check, shape inference and ``build_model`` all read ``KINDS`` / ``BY_NAME``.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from workbench.model import backbones, custom, shapes
from workbench.model.params import REQUIRED, Param
from workbench.model.signatures import summary, torch_params

# Input-shape rules for the input-size arguments (shapes exclude the batch dimension).
_LAST = lambda s: s[-1]  # noqa: E731
_CHANNELS = lambda s: s[0]  # noqa: E731
_LAST_AS_SHAPE = lambda s: (s[-1],)  # noqa: E731


@dataclass(frozen=True)
class LayerKind:
    name: str
    category: str
    help: str
    params: tuple[Param, ...] = ()
    ranks: tuple[int, ...] | None = None  # accepted input ranks (without batch); None: any
    rank_hint: str = ""  # what the input should look like, for errors
    key_args: tuple[str, ...] = ()  # shown in the stack's "arguments" column
    composite: bool = False
    factory: Callable[[dict], nn.Module] | None = None  # resolved arguments -> the module
    shape: Callable[[dict, tuple[int, ...]], tuple[int, ...]] | None = None  # (args, input) -> output
    starter: dict[str, Any] = field(default_factory=dict)  # this kind's own starting values (below)
    tokens: bool = False  # takes integer token ids (the model input's dtype int64)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def starter_args(self) -> dict[str, Any]:
        """Arguments a layer dropped from the palette starts with: usable values for the
        required ones (and those in ``starter``); everything else keeps PyTorch's default."""
        values = {**_STARTER_VALUES, **self.starter}
        return {p.name: values.get(p.name, 1) for p in self.params if p.required or p.name in self.starter}


# Values given to required arguments when a layer is dropped from the palette.
_STARTER_VALUES = {
    "out_features": 10, "out_channels": 16, "kernel_size": 3, "hidden_size": 64,
    "num_embeddings": 1000, "embedding_dim": 64, "nhead": 4, "num_groups": 4,
    "dim": 1, "unflattened_size": [1, 8, 8], "output_size": 1,
}


def _torch(name: str, **fixed) -> Callable[[dict], nn.Module]:
    cls = getattr(nn, name)
    return lambda args: cls(**{**_plain(args), **fixed})


def _plain(args: dict) -> dict:
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in args.items()}


class Recurrent(nn.Module):
    """RNN, LSTM or GRU (batch first) that passes on either its final state or the whole sequence.

    ``last`` is the final hidden state of the top layer. Bidirectional, that is both directions'
    final states side by side (forward after the whole sequence, backward after reading it back to
    the first token), not ``out[:, -1]``, where the backward half has seen only the last token."""

    def __init__(self, rnn: nn.Module, output: str):
        super().__init__()
        self.rnn = rnn
        self.last = output == "last"
        self.both = bool(rnn.bidirectional)

    def forward(self, x):
        out, state = self.rnn(x)
        if not self.last:
            return out
        h = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c); h: (layers * directions, batch, hidden)
        return torch.cat((h[-2], h[-1]), dim=-1) if self.both else h[-1]


def _recurrent(cls_name: str) -> Callable[[dict], nn.Module]:
    def make(args: dict) -> nn.Module:
        args = dict(args)
        output = args.pop("output", "last")
        return Recurrent(getattr(nn, cls_name)(batch_first=True, **args), output)
    return make


def _p(name, kind, default=REQUIRED, help="", **kw) -> Param:
    return Param(name, kind, default, help, **kw)


MERGES = ("concat", "add", "mean", "mul")  # how a Parallel combines its branches
_BIAS = _p("bias", "bool", True, "learn an additive bias")
_EPS = _p("eps", "float", 1e-5, "added to the variance for numerical stability (> 0)", min=1e-12)
_DROP = _p("p", "float", 0.5, "probability of zeroing an element", min=0.0, max=1.0)


def _conv(dims: int) -> tuple[Param, ...]:
    return (
        _p("in_channels", "int", help="channels of the input (inferred)", min=1, infer=_CHANNELS),
        _p("out_channels", "int", help="number of filters", min=1, max=65536),
        _p("kernel_size", "ints", help="size of the sliding window", min=1, dims=dims),
        _p("stride", "ints", 1, "step of the window", min=1, dims=dims),
        _p("padding", "ints", 0, "zeros added on each side, or 'same' / 'valid'", min=0, dims=dims,
           words=("same", "valid")),
        _p("dilation", "ints", 1, "spacing between kernel elements", min=1, dims=dims),
        _p("groups", "int", 1, "blocked connections; in and out channels must divide by it", min=1),
        _BIAS,
        _p("padding_mode", "choice", "zeros", "how the border is padded",
           choices=("zeros", "reflect", "replicate", "circular")),
    )


def _pool(dims: int, avg: bool = False) -> tuple[Param, ...]:
    common = (
        _p("kernel_size", "ints", help="size of the pooling window", min=1, dims=dims),
        _p("stride", "ints", None, "step of the window (default: kernel_size)", min=1, dims=dims,
           nullable=True),
        _p("padding", "ints", 0, "implicit padding (at most half the kernel)", min=0, dims=dims),
    )
    if avg:
        return common + (
            _p("ceil_mode", "bool", False, "round the output size up"),
            _p("count_include_pad", "bool", True, "count padding zeros in the average"),
        )
    return common + (
        _p("dilation", "ints", 1, "spacing between window elements", min=1, dims=dims),
        _p("ceil_mode", "bool", False, "round the output size up"),
    )


_IMG = "(channels, height, width)"
_SEQ = "(channels, length)"
_TOK = "(sequence length, features)"

# LSTM and GRU take the same arguments (torch.nn.RNNBase) plus what feeds the next layer
_RECURRENT_PARAMS = (
    _p("input_size", "int", help="features per step (inferred)", min=1, infer=_LAST),
    _p("hidden_size", "int", help="features of the hidden state", min=1),
    _p("num_layers", "int", 1, "stacked recurrent layers", min=1, max=64), _BIAS,
    _p("dropout", "float", 0.0, "dropout between stacked layers", min=0.0, max=1.0),
    _p("bidirectional", "bool", False, "also read the sequence backwards"),
    _p("output", "choice", "last", "what feeds the next layer: 'last' is the final hidden state (bidirectional: "
       "both directions' final states side by side), 'sequence' every step's output",
       choices=("last", "sequence")))
_TABLE: tuple[LayerKind, ...] = (
    # Dense
    LayerKind("Linear", "Dense", "Fully connected layer: y = xW^T + b over the last dimension.",
              (_p("in_features", "int", help="size of each input sample (inferred)", min=1, infer=_LAST),
               _p("out_features", "int", help="size of each output sample", min=1, max=1 << 20), _BIAS),
              key_args=("out_features",), shape=shapes.linear, factory=_torch("Linear")),
    LayerKind("Identity", "Dense", "Passes its input through unchanged (a placeholder).",
              shape=shapes.same, factory=_torch("Identity")),
    # Convolution
    LayerKind("Conv1d", "Convolution", "1-D convolution over a sequence of channels.", _conv(1),
              ranks=(2,), rank_hint=_SEQ, key_args=("out_channels", "kernel_size", "stride", "padding"),
              shape=shapes.conv(1), factory=_torch("Conv1d")),
    LayerKind("Conv2d", "Convolution", "2-D convolution over an image: learns local filters.", _conv(2),
              ranks=(3,), rank_hint=_IMG, key_args=("out_channels", "kernel_size", "stride", "padding"),
              shape=shapes.conv(2), factory=_torch("Conv2d")),
    LayerKind("ConvTranspose2d", "Convolution", "Transposed 2-D convolution: learns to upsample.",
              (_p("in_channels", "int", help="channels of the input (inferred)", min=1, infer=_CHANNELS),
               _p("out_channels", "int", help="number of filters", min=1, max=65536),
               _p("kernel_size", "ints", help="size of the window", min=1, dims=2),
               _p("stride", "ints", 1, "upsampling factor", min=1, dims=2),
               _p("padding", "ints", 0, "removed from each side of the output", min=0, dims=2),
               _p("output_padding", "ints", 0, "extra size on one side (smaller than stride)", min=0, dims=2),
               _p("groups", "int", 1, "blocked connections", min=1), _BIAS,
               _p("dilation", "ints", 1, "spacing between kernel elements", min=1, dims=2)),
              ranks=(3,), rank_hint=_IMG, key_args=("out_channels", "kernel_size", "stride"),
              shape=shapes.conv_transpose2d, factory=_torch("ConvTranspose2d")),
    # Pooling
    LayerKind("MaxPool1d", "Pooling", "Maximum over a sliding window of a sequence.", _pool(1),
              ranks=(2,), rank_hint=_SEQ, key_args=("kernel_size", "stride"), shape=shapes.pool(1),
              factory=_torch("MaxPool1d")),
    LayerKind("MaxPool2d", "Pooling", "Maximum over a sliding window (the stride defaults to the kernel): "
              "kernel 3, as it is added, shrinks an image to a third; set kernel_size 2 to halve it.",
              _pool(2), ranks=(3,), rank_hint=_IMG, key_args=("kernel_size", "stride"),
              shape=shapes.pool(2), factory=_torch("MaxPool2d")),
    LayerKind("AvgPool2d", "Pooling", "Average over a sliding window of an image.", _pool(2, avg=True),
              ranks=(3,), rank_hint=_IMG, key_args=("kernel_size", "stride"), shape=shapes.pool(2, avg=True),
              factory=_torch("AvgPool2d")),
    LayerKind("AdaptiveAvgPool2d", "Pooling", "Averages each channel down to a fixed output size.",
              (_p("output_size", "ints", 1, "target height and width", min=1, dims=2),),
              ranks=(3,), rank_hint=_IMG, key_args=("output_size",), shape=shapes.adaptive_pool2d,
              factory=_torch("AdaptiveAvgPool2d")),
    # Normalization
    LayerKind("BatchNorm1d", "Normalization", "Normalises each feature over the batch.",
              (_p("num_features", "int", help="features or channels (inferred)", min=1, infer=_CHANNELS), _EPS,
               _p("momentum", "float", 0.1, "running-statistics update rate", min=0.0, max=1.0),
               _p("affine", "bool", True, "learn scale and shift"),
               _p("track_running_stats", "bool", True, "keep running mean and variance")),
              ranks=(1, 2), rank_hint="(features,) or (channels, length)", shape=shapes.same,
              factory=_torch("BatchNorm1d")),
    LayerKind("BatchNorm2d", "Normalization", "Normalises each channel of an image over the batch.",
              (_p("num_features", "int", help="channels (inferred)", min=1, infer=_CHANNELS), _EPS,
               _p("momentum", "float", 0.1, "running-statistics update rate", min=0.0, max=1.0),
               _p("affine", "bool", True, "learn scale and shift"),
               _p("track_running_stats", "bool", True, "keep running mean and variance")),
              ranks=(3,), rank_hint=_IMG, shape=shapes.same, factory=_torch("BatchNorm2d")),
    LayerKind("LayerNorm", "Normalization", "Normalises over the trailing dimensions of each sample.",
              (_p("normalized_shape", "shape", help="trailing dimensions to normalise (default: last)",
                  infer=_LAST_AS_SHAPE), _EPS,
               _p("elementwise_affine", "bool", True, "learn scale and shift"), _BIAS),
              shape=shapes.layer_norm, factory=_torch("LayerNorm")),
    LayerKind("GroupNorm", "Normalization", "Normalises groups of channels; independent of batch size.",
              (_p("num_groups", "int", help="groups the channels are split into", min=1),
               _p("num_channels", "int", help="channels (inferred)", min=1, infer=_CHANNELS), _EPS,
               _p("affine", "bool", True, "learn scale and shift")),
              ranks=(1, 2, 3), rank_hint="(channels, ...)", key_args=("num_groups",),
              shape=shapes.group_norm, factory=_torch("GroupNorm")),
    # Activation
    LayerKind("ReLU", "Activation", "max(0, x): the default non-linearity.", shape=shapes.same, factory=_torch("ReLU")),
    LayerKind("LeakyReLU", "Activation", "ReLU with a small slope for negative inputs.",
              (_p("negative_slope", "float", 0.01, "slope for x < 0", min=0.0),),
              key_args=("negative_slope",), shape=shapes.same, factory=_torch("LeakyReLU")),
    LayerKind("GELU", "Activation", "Gaussian error linear unit, used in transformers.",
              (_p("approximate", "choice", "none", "exact or tanh approximation", choices=("none", "tanh")),),
              shape=shapes.same, factory=_torch("GELU")),
    LayerKind("SiLU", "Activation", "x * sigmoid(x) (swish).", shape=shapes.same, factory=_torch("SiLU")),
    LayerKind("ELU", "Activation", "Exponential linear unit.",
              (_p("alpha", "float", 1.0, "saturation for negative inputs", min=0.0),), shape=shapes.same,
              factory=_torch("ELU")),
    LayerKind("Tanh", "Activation", "Hyperbolic tangent, output in (-1, 1).", shape=shapes.same,
              factory=_torch("Tanh")),
    LayerKind("Sigmoid", "Activation", "Logistic function, output in (0, 1).", shape=shapes.same,
              factory=_torch("Sigmoid")),
    LayerKind("Softmax", "Activation", "Turns scores into probabilities along a dimension. Not before "
              "CrossEntropyLoss, which applies its own.",
              (_p("dim", "int", -1, "dimension (counting the batch as 0) that sums to 1"),),
              key_args=("dim",), shape=shapes.softmax, factory=_torch("Softmax")),
    LayerKind("LogSoftmax", "Activation", "Log of softmax; pair with NLLLoss.",
              (_p("dim", "int", -1, "dimension (counting the batch as 0)"),),
              key_args=("dim",), shape=shapes.softmax, factory=_torch("LogSoftmax")),
    # Regularization
    LayerKind("Dropout", "Regularization", "Zeroes random elements while training.", (_DROP,),
              key_args=("p",), shape=shapes.same, factory=_torch("Dropout")),
    LayerKind("Dropout2d", "Regularization", "Zeroes whole random channels of an image while training.",
              (_DROP,), ranks=(3,), rank_hint=_IMG, key_args=("p",), shape=shapes.same, factory=_torch("Dropout2d")),
    # Reshape
    LayerKind("Flatten", "Reshape", "Flattens dimensions into one: (C, H, W) -> (C*H*W,).",
              (_p("start_dim", "int", 1, "first dimension to flatten (batch is 0)"),
               _p("end_dim", "int", -1, "last dimension to flatten")),
              shape=shapes.flatten, factory=_torch("Flatten")),
    LayerKind("Unflatten", "Reshape", "Splits one dimension into several: (64,) -> (1, 8, 8).",
              (_p("dim", "int", help="dimension to split (batch is 0)"),
               _p("unflattened_size", "shape", help="the new dimensions; their product must match")),
              key_args=("unflattened_size",), shape=shapes.unflatten, factory=_torch("Unflatten")),
    # Sequence
    LayerKind("Embedding", "Sequence", "Looks up a learned vector for each integer token id.",
              (_p("num_embeddings", "int", help="vocabulary size", min=1),
               _p("embedding_dim", "int", help="size of each vector", min=1),
               _p("padding_idx", "int", None, "token id whose vector stays zero", nullable=True, min=0)),
              key_args=("num_embeddings", "embedding_dim"), shape=shapes.embedding, factory=_torch("Embedding"),
              tokens=True),
    LayerKind("LSTM", "Sequence", "Long short-term memory over a (length, features) sequence.",
              _RECURRENT_PARAMS,
              ranks=(2,), rank_hint=_TOK, key_args=("hidden_size", "output"), shape=shapes.recurrent,
              factory=_recurrent("LSTM")),
    LayerKind("GRU", "Sequence", "Gated recurrent unit over a (length, features) sequence.",
              _RECURRENT_PARAMS,
              ranks=(2,), rank_hint=_TOK, key_args=("hidden_size", "output"), shape=shapes.recurrent,
              factory=_recurrent("GRU")),
    LayerKind("TransformerEncoderLayer", "Sequence", "Self-attention plus feed-forward block over a "
              "(length, features) sequence.",
              (_p("d_model", "int", help="features per token (inferred)", min=1, infer=_LAST),
               _p("nhead", "int", help="attention heads; d_model must divide by it", min=1),
               _p("dim_feedforward", "int", 2048, "width of the feed-forward part", min=1),
               _p("dropout", "float", 0.1, "dropout rate", min=0.0, max=1.0),
               _p("activation", "choice", "relu", "feed-forward activation", choices=("relu", "gelu")),
               _p("norm_first", "bool", False, "normalise before attention (pre-LN)"), _BIAS),
              ranks=(2,), rank_hint=_TOK, key_args=("nhead", "dim_feedforward"),
              shape=shapes.transformer, factory=_torch("TransformerEncoderLayer", batch_first=True)),
    # Composite
    LayerKind("Residual", "Composite", "Runs nested layers f and outputs x + f(x); a projection "
              "matches shapes when f changes them.",
              (_p("projection", "choice", "none", "'auto' adds a 1x1 conv or linear shortcut when "
                  "shapes differ; 'conv_bn' a 1x1 conv and BatchNorm2d (ResNet's downsample)",
                  choices=("none", "auto", "conv_bn")),),
              key_args=("projection",), composite=True),
    LayerKind("Parallel", "Composite", "Runs two or more Branch stacks on the same input and merges their "
              "outputs: concat along dim, or add, mean or mul (mul broadcasts, e.g. a Cx1x1 gate against CxHxW).",
              (_p("merge", "choice", "concat", "how the branch outputs combine: concat joins them along dim; add, "
                  "mean need equal shapes; mul multiplies, broadcasting sizes of 1",
                  choices=MERGES),
               _p("dim", "int", 1, "the concat dimension, counting the batch as 0 (1: channels or features; "
                  "negative counts from the end)", min=-4, max=4)),
              key_args=("merge", "dim"), composite=True),
    LayerKind("Branch", "Composite", "One stack of a Parallel block, run on the Parallel's input; a Branch with "
              "no layers passes its input on unchanged (the identity).", composite=True),
)

BACKBONES = backbones.ARCHS  # every torchvision classifier, by its torchvision name


def _backbone_help(arch: str) -> str:
    words, (rule, size) = backbones.FAMILIES[backbones.family(arch)]
    sizes = f"exactly {size}x{size}" if rule == "exact" else f"at least {size}x{size}"
    return (f"torchvision {arch}: {words}; pretrained backbone / feature extractor as one block with freezable "
            f"stages; outputs pooled features (or the last feature map); images {sizes}.")


NESTING = ("Residual", "Parallel", "Branch")  # the kinds that hold layers (LayerSpec.layers)


def nests(type_name: str) -> bool:
    """Whether a layer of this kind holds nested layers: a Residual its body, a Parallel its
    Branch rows, a Branch its stack. Everything that walks the layer tree asks this."""
    return type_name in NESTING


def child_prefix(type_name: str) -> str:
    """The module-path step from a nesting layer to its nested layers: a Residual keeps them in
    ``body`` ('res1.body.conv'), a Parallel its branches and a Branch its layers directly
    ('inc.inc_a.conv')."""
    return ".body." if type_name == "Residual" else "."


_BACKBONE_KINDS = tuple(
    LayerKind(arch, "Backbones", _backbone_help(arch),
              (_p("weights", "str", "none", "'none', a local .pth file, or 'download' (torchvision, needs "
                  "internet; off by default)"),
               _p("pool", "bool", True, "average-pool and flatten the last feature map")),
              ranks=(3,), rank_hint="(3, height, width) RGB images", key_args=("weights",), composite=True)
    for arch in BACKBONES
)

# ---------------------------------------------------------------- generated from torch.nn

class SelfAttention(nn.Module):
    """``nn.MultiheadAttention`` (batch first) as self-attention: query, key and value are all the
    input sequence; passes on the attention output (not the weights)."""

    def __init__(self, **args):
        super().__init__()
        self.attn = nn.MultiheadAttention(batch_first=True, **args)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


def transformer_encoder(args: dict) -> nn.Module:
    """``nn.TransformerEncoder`` of ``num_layers`` copies of an encoder layer (batch first) made from
    the arguments; ``norm`` true adds the final LayerNorm."""
    args = dict(args)
    num_layers, norm = args.pop("num_layers"), args.pop("norm", False)
    layer = nn.TransformerEncoderLayer(batch_first=True, **args)
    final = nn.LayerNorm(args["d_model"], eps=args.get("layer_norm_eps", 1e-5), bias=args.get("bias", True)) if norm \
        else None
    return nn.TransformerEncoder(layer, num_layers, norm=final, enable_nested_tensor=False)


_VOL = "(channels, depth, height, width)"
_RANK = {1: ((2,), _SEQ), 2: ((3,), _IMG), 3: ((4,), _VOL)}  # an N-d layer's input (no batch)
_ANY_SPATIAL = ((2, 3, 4), "(channels, length), (channels, height, width) or " + _VOL)
_WINDOW = ("kernel_size", "stride")


def _pads_last(d: int) -> dict:
    """Zero and constant padding pad the last ``d`` dims of any input, but an input with fewer
    than ``d`` dims besides the batch would have the batch padded (the fuzz test found ZeroPad2d
    on (1,) growing the batch from 2 to 4)."""
    return {"ranked": True, "ranks": tuple(range(d, 5)),
            "rank_hint": f"{d} to 4 dimensions besides the batch, e.g. {_RANK[d][1]}"}


def _nn(name: str, category: str, dims: int | None = None, *, shape=None, ranked: bool = True, ranks=None,
        rank_hint: str = "", key_args: tuple[str, ...] = (), skip: tuple[str, ...] = (), over: dict | None = None,
        starter: dict | None = None, params: tuple[Param, ...] | None = None, factory=None, help: str = "",
        tokens: bool = False) -> LayerKind:
    """A kind for ``torch.nn.<name>``: arguments from its signature (``over``: per-argument Param
    fields the signature cannot give), help from its docstring. ``dims``: a 1/2/3-d layer, whose
    input rank follows unless ``ranked`` is false."""
    cls = getattr(nn, name)
    if ranks is None and dims and ranked:
        ranks, rank_hint = _RANK[dims]
    return LayerKind(name, category, help or summary(cls),
                     params if params is not None else torch_params(cls, dims=dims or 1, skip=skip, **(over or {})),
                     ranks=ranks, rank_hint=rank_hint, key_args=key_args, factory=factory or _torch(name),
                     shape=shape, starter=starter or {}, tokens=tokens)


_SAME = shapes.same
_SOFTMAX_DIM = {"dim": {"default": -1, "help": "dimension (counting the batch as 0) that sums to 1 (torch's "
                        "implicit choice is deprecated, so -1 here)"}}
_ADAPTIVE = {"key_args": ("output_size",), "over": {"output_size": {
    "help": "size of the output (a size per spatial dimension, or one for all)"}}}

def torch_kinds() -> tuple[LayerKind, ...]:
    """The kinds generated from torch.nn, one line each (registered below; ``GENERATION_MS`` is
    what making them cost at import)."""
    return (
        # Convolution
        _nn("Conv3d", "Convolution", 3, shape=shapes.conv(3),
            key_args=("out_channels", "kernel_size", "stride", "padding")),
        _nn("ConvTranspose1d", "Convolution", 1, shape=shapes.conv_transpose(1), key_args=("out_channels",) + _WINDOW),
        _nn("ConvTranspose3d", "Convolution", 3, shape=shapes.conv_transpose(3), key_args=("out_channels",) + _WINDOW),
        # Pooling
        _nn("MaxPool3d", "Pooling", 3, shape=shapes.pool(3), key_args=_WINDOW),
        _nn("AvgPool1d", "Pooling", 1, shape=shapes.pool(1, avg=True), key_args=_WINDOW),
        _nn("AvgPool3d", "Pooling", 3, shape=shapes.pool(3, avg=True), key_args=_WINDOW),
        _nn("AdaptiveAvgPool1d", "Pooling", 1, shape=shapes.adaptive_pool(1), **_ADAPTIVE),
        _nn("AdaptiveAvgPool3d", "Pooling", 3, shape=shapes.adaptive_pool(3), **_ADAPTIVE),
        _nn("AdaptiveMaxPool1d", "Pooling", 1, shape=shapes.adaptive_pool(1), **_ADAPTIVE),
        _nn("AdaptiveMaxPool2d", "Pooling", 2, shape=shapes.adaptive_pool(2), **_ADAPTIVE),
        _nn("AdaptiveMaxPool3d", "Pooling", 3, shape=shapes.adaptive_pool(3), **_ADAPTIVE),
        _nn("LPPool1d", "Pooling", 1, shape=shapes.pool(1, avg=True), key_args=("norm_type",) + _WINDOW,
            starter={"norm_type": 2.0}),
        _nn("LPPool2d", "Pooling", 2, shape=shapes.pool(2, avg=True), key_args=("norm_type",) + _WINDOW,
            starter={"norm_type": 2.0}),
        _nn("LPPool3d", "Pooling", 3, shape=shapes.pool(3, avg=True), key_args=("norm_type",) + _WINDOW,
            starter={"norm_type": 2.0}),
        # Normalization
        _nn("BatchNorm3d", "Normalization", 3, shape=_SAME),
        _nn("InstanceNorm1d", "Normalization", 1, shape=shapes.instance_norm),
        _nn("InstanceNorm2d", "Normalization", 2, shape=shapes.instance_norm),
        _nn("InstanceNorm3d", "Normalization", 3, shape=shapes.instance_norm),
        _nn("RMSNorm", "Normalization", shape=shapes.layer_norm),
        _nn("LocalResponseNorm", "Normalization", shape=_SAME, ranks=_ANY_SPATIAL[0], rank_hint=_ANY_SPATIAL[1],
            key_args=("size",), starter={"size": 2}),
        _nn("CrossMapLRN2d", "Normalization", 2, shape=_SAME, key_args=("size",), starter={"size": 3},
            help="Local response normalisation across channels of an image (Lua Torch's LocalResponseNorm)."),
        # Activation
        *(_nn(n, "Activation", shape=_SAME) for n in (
            "ReLU6", "SELU", "Mish", "Hardswish", "Hardsigmoid", "LogSigmoid", "Softsign", "Tanhshrink")),
        # Hardtanh's constructor checks min_val < max_val
        *(_nn(n, "Activation", shape=_SAME) for n in ("Hardtanh", "Softplus", "Hardshrink")),
        _nn("Softshrink", "Activation", shape=_SAME, over={"lambd": {"min": 0.0}}),
        _nn("CELU", "Activation", shape=shapes.celu),
        _nn("PReLU", "Activation", shape=shapes.prelu),
        _nn("RReLU", "Activation", shape=shapes.rrelu),
        _nn("Threshold", "Activation", shape=_SAME, key_args=("threshold", "value"),
            starter={"threshold": 0.0, "value": 0.0}),
        _nn("GLU", "Activation", shape=shapes.glu, key_args=("dim",)),
        _nn("Softmin", "Activation", shape=shapes.softmax, key_args=("dim",), over=_SOFTMAX_DIM),
        _nn("Softmax2d", "Activation", shape=_SAME, ranks=(3,), rank_hint=_IMG),
        # Regularization
        _nn("Dropout1d", "Regularization", 1, shape=_SAME, key_args=("p",)),
        _nn("Dropout3d", "Regularization", 3, shape=_SAME, key_args=("p",)),
        _nn("AlphaDropout", "Regularization", shape=_SAME, key_args=("p",)),
        _nn("FeatureAlphaDropout", "Regularization", shape=_SAME, ranks=(2, 3, 4), rank_hint="(channels, ...)",
            key_args=("p",)),
        # Reshape: resampling, padding, rearranging
        _nn("Upsample", "Reshape", shape=shapes.upsample(), ranks=_ANY_SPATIAL[0], rank_hint=_ANY_SPATIAL[1],
            key_args=("scale_factor", "mode"),
            over={"size": {"kind": "shape"}, "mode": {"kind": "choice", "choices": (
                "nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")}},
            starter={"scale_factor": 2.0}),
        *(_nn(f"Upsampling{mode.capitalize()}2d", "Reshape", 2, shape=shapes.upsample(mode),
              key_args=("scale_factor",), starter={"scale_factor": 2.0}) for mode in ("nearest", "bilinear")),
        _nn("PixelShuffle", "Reshape", shape=shapes.pixel_shuffle, ranks=(3,), rank_hint=_IMG,
            key_args=("upscale_factor",), starter={"upscale_factor": 2}),
        _nn("PixelUnshuffle", "Reshape", shape=shapes.pixel_unshuffle, ranks=(3,), rank_hint=_IMG,
            key_args=("downscale_factor",), starter={"downscale_factor": 2}),
        _nn("ChannelShuffle", "Reshape", shape=shapes.channel_shuffle, ranks=_ANY_SPATIAL[0],
            rank_hint=_ANY_SPATIAL[1], key_args=("groups",)),
        _nn("Fold", "Reshape", 2, ranks=(2,), rank_hint="(channels x kernel positions, blocks)",
            key_args=("output_size", "kernel_size"), starter={"output_size": [4, 4], "kernel_size": 2}),
        _nn("Unfold", "Reshape", 2, key_args=_WINDOW, starter={"kernel_size": 2}),
        *(_nn(f"{kind}Pad{d}d", "Reshape", d, key_args=("padding",), starter={"padding": 1},
              **({} if kind not in ("Zero", "Constant") else _pads_last(d)))
          for kind in ("Zero", "Reflection", "Replication", "Circular") for d in (1, 2, 3)),
        *(_nn(f"ConstantPad{d}d", "Reshape", d, key_args=("padding", "value"),
              starter={"padding": 1, "value": 0.0}, **_pads_last(d)) for d in (1, 2, 3)),
        # Sequence
        _nn("RNN", "Sequence", help="Elman recurrent network (tanh or ReLU) over a (length, features) sequence.",
            params=_RECURRENT_PARAMS[:2] + (_p("nonlinearity", "choice", "tanh", "tanh or relu between steps",
                                                 choices=("tanh", "relu")),) + _RECURRENT_PARAMS[2:],
            ranks=(2,), rank_hint=_TOK, key_args=("hidden_size", "output"), shape=shapes.recurrent,
            factory=_recurrent("RNN")),
        _nn("RNNCell", "Sequence", ranks=(1,), rank_hint="(features,)", key_args=("hidden_size",)),
        _nn("GRUCell", "Sequence", ranks=(1,), rank_hint="(features,)", key_args=("hidden_size",)),
        _nn("EmbeddingBag", "Sequence", ranks=(1,), rank_hint="(tokens,) integer ids per sample",
            key_args=("num_embeddings", "embedding_dim", "mode"), tokens=True,
            over={"mode": {"kind": "choice", "choices": ("mean", "sum", "max")}}),
        _nn("MultiheadAttention", "Sequence", help="Multi-head self-attention over a (length, features) sequence: "
            "query, key and value are all the input; passes on the attention output.",
            params=torch_params(nn.MultiheadAttention, embed_dim={"kind": "int", "min": 1},
                                num_heads={"kind": "int"}),
            ranks=(2,), rank_hint=_TOK, key_args=("num_heads",), shape=shapes.attention,
            factory=lambda args: SelfAttention(**_plain(args))),
        _nn("TransformerEncoder", "Sequence", help="A stack of num_layers Transformer encoder layers over a (length, "
            "features) sequence, each made from the arguments below.",
            params=torch_params(nn.TransformerEncoderLayer, activation={"default": "relu"}) + (
                _p("num_layers", "int", help="encoder layers in the stack", min=1, max=64),
                _p("norm", "bool", False, "a LayerNorm after the last layer (usual with norm_first)")),
            ranks=(2,), rank_hint=_TOK, key_args=("num_layers", "nhead"), shape=shapes.transformer,
            factory=transformer_encoder, starter={"num_layers": 2}),
    )


_started = time.perf_counter()
GENERATED = torch_kinds()
GENERATION_MS = (time.perf_counter() - _started) * 1e3
del _started

# torch.nn modules that are not layer kinds, and why (tests check every torch.nn module is a kind
# or listed here).
EXCLUDED: dict[str, str] = {
    **{n: "a loss: the training settings choose it" for n in dir(nn) if n.endswith("Loss") or n == "NLLLoss2d"},
    **{n: "a container: the stack, Residual and Parallel are the containers" for n in (
        "Module", "Container", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict")},
    "DataParallel": "a multi-GPU wrapper: distributed training replaces it",
    **{n: "lazy: a kind infers its input sizes already" for n in dir(nn) if n.startswith("Lazy")},
    "RNNBase": "a base class (RNN, LSTM and GRU are kinds)", "RNNCellBase": "a base class (RNNCell, GRUCell are kinds)",
    "LSTMCell": "returns the pair (h, c); LSTM with output 'last' gives the final state",
    "Bilinear": "needs two inputs", "CosineSimilarity": "needs two inputs", "PairwiseDistance": "needs two inputs",
    "Transformer": "needs two inputs (source and target); TransformerEncoder is a kind",
    "TransformerDecoder": "needs two inputs (target and memory)",
    "TransformerDecoderLayer": "needs two inputs (target and memory)",
    **{f"MaxUnpool{d}d": "needs the indices of a max pooling as a second input" for d in (1, 2, 3)},
    "AdaptiveLogSoftmaxWithLoss": "needs the targets as a second input and returns a pair",
    **{f"FractionalMaxPool{d}d": "draws random pooling regions in eval mode too, so predictions and exports are "
       "not reproducible" for d in (2, 3)},
    "SyncBatchNorm": "needs a process group; distributed training converts BatchNorm to it",
    "quantized, qat, intrinsic (submodules)": "quantization modules: made by torch.ao.quantization from a "
                                              "trained float model, not built layer by layer",
}

# ---------------------------------------------------------------- the registry

KINDS: list[LayerKind] = []  # in palette order
BY_NAME: dict[str, LayerKind] = {}
CATEGORIES: list[str] = []  # in palette order
_version = 0


def register_kind(kind: LayerKind) -> LayerKind:
    """Offer a new layer kind everywhere (palette, project files, inference, build).

    A simple kind needs a ``factory``; give it a ``shape`` rule for friendlier errors than
    torch's, or leave it None to infer the shape by a forward pass on the meta device.
    """
    if kind.name in BY_NAME:
        raise ValueError(f"layer kind {kind.name!r} is registered already")
    if kind.factory is None and not kind.composite:
        raise ValueError(f"layer kind {kind.name!r} needs a factory (resolved arguments -> nn.Module)")
    _changed()
    KINDS.append(kind)
    BY_NAME[kind.name] = kind
    if kind.category not in CATEGORIES:
        CATEGORIES.append(kind.category)
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind added with ``register_kind`` (tests, plugins)."""
    kind = BY_NAME.pop(name)
    _changed()
    KINDS.remove(kind)
    if all(k.category != kind.category for k in KINDS):
        CATEGORIES.remove(kind.category)


def version() -> int:
    """Changes whenever the registry does (build.py keys its inference cache on it)."""
    return _version


def _changed() -> None:
    global _version
    _version += 1


def kind(name: str) -> LayerKind | None:
    return BY_NAME.get(name)


def _palette_order(table: tuple[LayerKind, ...], generated: tuple[LayerKind, ...]) -> list[LayerKind]:
    """The table's order, with each generated kind beside its family (Conv3d after Conv2d,
    Dropout1d before Dropout2d): a family is the name without its '1d' / '2d' / '3d'."""
    def family(k: LayerKind) -> str:
        return re.sub(r"[123]d$", "", k.name)

    members: dict[str, list[LayerKind]] = {}
    for k in table + generated:
        members.setdefault(family(k), []).append(k)
    out: list[LayerKind] = []
    for k in table + generated:
        group = members.pop(family(k), None)
        if group is not None:
            out.extend(sorted(group, key=lambda m: m.name) if len(group) > 1 and k in table else group)
    return out


for _kind in _palette_order(_TABLE + _BACKBONE_KINDS, GENERATED):
    register_kind(_kind)
del _kind
# Your own modules (custom.py): a class from a trusted Python file; build.py infers it (custom.infer)
register_kind(LayerKind(custom.NAME, "Custom", "Your own nn.Module class from a Python file, with keyword arguments; "
                        "its file runs only once you trust it.", custom.PARAMS, key_args=("class",),
                        factory=custom.make, starter={"file": "", "class": ""}, composite=True))
