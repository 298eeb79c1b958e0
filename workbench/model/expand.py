"""A torchvision backbone block expanded into an editable stack of plain kinds.

``expand_layer(spec, layer_id)`` replaces the backbone row with the layers torchvision's model
is made of: convolutions, norms, activations and pools as their own rows, every residual block
(ResNet's BasicBlock / Bottleneck, MobileNet's inverted residual with a shortcut) as a Residual
block, and squeeze-and-excitation as a Parallel block (an identity branch times the gate,
``merge: "mul"``). The stack computes exactly what the backbone computes: ``Expansion.keys``
maps every key of torchvision's ``state_dict`` to the stack's key, so ``translate`` turns a
torchvision weights file into the stack's weights (same outputs, tested for resnet18 and
mobilenet_v3_small).

Families that do not map onto the stack are refused with the reason (``why_not``): their
forward does more than run children in order (DenseNet concatenates every earlier output,
Inception / GoogLeNet and SqueezeNet's Fire run branches whose outputs torchvision concatenates
inside its own code, ViT / Swin / MaxViT reshape tokens and hold position tables, EfficientNet,
ConvNeXt and RegNet blocks add stochastic depth or layer scale, ShuffleNet shuffles channels
between split halves).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.model import backbones, catalog
from workbench.model.params import REQUIRED
from workbench.model.spec import LayerSpec, ModelSpec

EXPANDABLE = ("resnet", "resnext", "wide_resnet", "vgg", "alexnet", "mobilenet_v2", "mobilenet_v3")
_WHY_NOT = {
    "densenet": "each dense layer concatenates the outputs of every layer before it",
    "squeezenet": "its Fire modules concatenate two branches inside torchvision's own code",
    "googlenet": "its Inception modules and input transform are torchvision code, not layers in order",
    "inception": "its Inception modules and input transform are torchvision code, not layers in order",
    "efficientnet": "its MBConv blocks use stochastic depth, which no stack kind provides",
    "efficientnet_v2": "its MBConv blocks use stochastic depth, which no stack kind provides",
    "mnasnet": "it is close, but not mapped yet",
    "shufflenet": "its blocks split the channels and shuffle them between halves",
    "regnet": "its blocks are torchvision classes with their own forward",
    "convnext": "its blocks use layer scale and stochastic depth, which no stack kind provides",
    "vit": "it reshapes patches into tokens and adds a learned position table",
    "swin": "its shifted-window attention is torchvision code, not layers in order",
    "maxvit": "its block and grid attention is torchvision code, not layers in order",
}
_LEAVES = ("Conv2d", "BatchNorm2d", "ReLU", "ReLU6", "Hardswish", "Hardsigmoid", "SiLU", "MaxPool2d",
           "AdaptiveAvgPool2d", "Dropout", "Linear", "Flatten")


@dataclass
class Expansion:
    """The rows that replace the backbone, and torchvision key -> the stack's state_dict key."""

    layers: list[LayerSpec]
    keys: dict[str, str] = field(default_factory=dict)


def why_not(arch: str) -> str | None:
    """Why ``arch`` cannot be expanded into a stack; None when it can."""
    if arch not in backbones.ARCHS:
        return f"{arch} is not a torchvision backbone"
    fam = backbones.family(arch)
    return None if fam in EXPANDABLE else _WHY_NOT.get(fam, "it does not map onto the stack")


def expand_layer(spec: ModelSpec, layer_id: str) -> tuple[ModelSpec, Expansion]:
    """A copy of ``spec`` with the backbone ``layer_id`` replaced by its layers, where it stood."""
    found = next(((path, layer) for path, layer in spec.walk() if layer.id == layer_id), None)
    if found is None:
        ids = sorted(spec.ids())
        shown = ", ".join(ids[:8]) + (f", ... ({len(ids)} in all)" if len(ids) > 8 else "")
        raise WorkbenchError(f"no layer {layer_id!r} in the model (layer ids: {shown})")
    path, layer = found
    if layer.type not in backbones.ARCHS:
        raise WorkbenchError(f"layer {layer_id!r} is a {layer.type}, not a torchvision backbone; only a backbone "
                             "expands into layers")
    reason = why_not(layer.type)
    if reason:
        raise WorkbenchError(f"{layer.type} (layer {layer_id!r}) cannot be expanded into layers: {reason}; keep it "
                             "as one block")
    prefix = path[: len(path) - len(layer.id)]  # the module path of the list it stands in
    taken = spec.ids() - {layer_id}
    expansion = expand(layer, taken, prefix)
    out = spec.copy()
    siblings = _list_holding(out.layers, layer_id)
    i = next(i for i, row in enumerate(siblings) if row.id == layer_id)
    siblings[i:i + 1] = expansion.layers
    return out, expansion


def _list_holding(layers: list[LayerSpec], layer_id: str) -> list[LayerSpec] | None:
    for row in layers:
        if row.id == layer_id:
            return layers
    for row in layers:
        found = _list_holding(row.layers, layer_id)
        if found is not None:
            return found
    return None


def expand(layer: LayerSpec, taken: set[str] | None = None, prefix: str = "") -> Expansion:
    """The rows for a backbone layer (ids fresh against ``taken``; ``prefix`` is the module path
    of the list the rows go into, for ``Expansion.keys``)."""
    arch = layer.type
    reason = why_not(arch)
    if reason:
        raise WorkbenchError(f"{arch} cannot be expanded into layers: {reason}")
    net = backbones.torchvision_model(arch, meta=True)
    maker = _Maker(set(taken or ()), prefix)
    fam = backbones.family(arch)
    if fam in ("resnet", "resnext", "wide_resnet"):
        rows = [maker.leaf(getattr(net, n), n) for n in ("conv1", "bn1", "relu", "maxpool")]
        for stage in ("layer1", "layer2", "layer3", "layer4"):
            for i, block in enumerate(getattr(net, stage)):
                rows += maker.resnet_block(block, f"{stage}.{i}")
    elif fam in ("vgg", "alexnet"):
        rows = [maker.leaf(child, f"features.{i}") for i, child in enumerate(net.features)]
    else:  # mobilenet_v2 / v3
        rows = [row for i, child in enumerate(net.features) for row in maker.mobile(child, f"features.{i}")]
    if layer.args.get("pool", True):
        rows += [maker.leaf(nn.AdaptiveAvgPool2d(1), "pool"), maker.leaf(nn.Flatten(), "flatten", keys=False)]
    frozen = _frozen_roots(layer)
    for row, root in zip(rows, maker.roots):
        row.frozen = row.frozen or layer.frozen or any(root == r or root.startswith(r + ".") for r in frozen)
    return Expansion(rows, maker.keys)


def _frozen_roots(layer: LayerSpec) -> list[str]:
    """torchvision module paths of the backbone's frozen stages."""
    plan = backbones.stage_plan(layer.type)
    return [part for stage in layer.frozen_stages for part in plan.get(stage, ()) if not part.startswith("+")]


def translate(state_dict: dict[str, torch.Tensor], keys: dict[str, str]) -> dict[str, torch.Tensor]:
    """A torchvision state_dict renamed for the expanded stack (keys it does not map are left out:
    the classifier head, GoogLeNet's auxiliary heads)."""
    return {keys[k]: v for k, v in state_dict.items() if k in keys}


class _Maker:
    """Builds rows while recording their torchvision paths and state_dict keys."""

    def __init__(self, taken: set[str], prefix: str):
        self.taken = taken
        self.prefix = prefix
        self.keys: dict[str, str] = {}
        self.roots: list[str] = []  # per top-level row: the torchvision path it came from

    def fresh(self, tv_path: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", tv_path)[:56] or "layer"
        if base[0].isdigit():
            base = f"l{base}"
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def leaf(self, module: nn.Module, tv_path: str, where: str | None = None, keys: bool = True) -> LayerSpec:
        kind_name = type(module).__name__
        kind = catalog.kind(kind_name)
        if kind_name not in _LEAVES or kind is None:
            raise WorkbenchError(f"cannot expand {tv_path} ({kind_name}) into a layer")
        args = {}
        for p in kind.params:
            if p.infer is not None or p.name == "inplace" or not hasattr(module, p.name):
                continue
            value = module.bias is not None if p.name == "bias" else getattr(module, p.name)
            if isinstance(value, tuple):
                value = value[0] if len(set(value)) == 1 else list(value)
            if p.default is REQUIRED or value != p.default:
                args[p.name] = value
        row = LayerSpec(self.fresh(tv_path), kind_name, args)
        if keys:
            self.record(module, tv_path, row.id, where)
        if where is None:
            self.roots.append(tv_path)
        return row

    def record(self, module: nn.Module, tv_path: str, local: str, where: str | None) -> None:
        """torchvision '<tv_path>.<name>' -> '<prefix><where><local>.<name>' for the module's state."""
        base = f"{self.prefix}{where or ''}{local}"
        for name in module.state_dict():
            self.keys[f"{tv_path}.{name}"] = f"{base}.{name}"

    def resnet_block(self, block: nn.Module, tv: str) -> list[LayerSpec]:
        """BasicBlock / Bottleneck: Residual(conv, bn, relu, ..., bn) with a conv+BN shortcut, then ReLU."""
        res_id = self.fresh(tv)
        inner = f"{res_id}.body."
        names = ["conv1", "bn1", "relu", "conv2", "bn2"] + (["relu", "conv3", "bn3"] if hasattr(block, "conv3") else [])
        body, relus = [], 0
        for name in names:
            relus += name == "relu"
            path = f"{tv}.{name}" if name != "relu" else f"{tv}.relu{relus}"
            body.append(self.leaf(getattr(block, name), path, where=inner, keys=name != "relu"))
        projection = "none"
        if block.downsample is not None:
            projection = "conv_bn"
            for i, part in enumerate(block.downsample):
                self.record(part, f"{tv}.downsample.{i}", f"{res_id}.proj.{i}", None)
        row = LayerSpec(res_id, "Residual", {"projection": projection} if projection != "none" else {}, layers=body)
        self.roots.append(tv)
        return [row, self.leaf(block.relu, f"{tv}.relu_out", keys=False)]

    def mobile(self, module: nn.Module, tv: str, where: str | None = None) -> list[LayerSpec]:
        """A MobileNet part: a conv-norm-activation run, an inverted residual (a Residual block when
        it has a shortcut), squeeze-and-excitation (Parallel: identity x gate)."""
        from torchvision.ops import SqueezeExcitation

        name = type(module).__name__
        if name in _LEAVES:
            return [self.leaf(module, tv, where)]
        if isinstance(module, SqueezeExcitation):
            return [self.squeeze_excitation(module, tv, where)]
        if name == "InvertedResidual":
            inner = module.block if hasattr(module, "block") else module.conv
            path = f"{tv}.block" if hasattr(module, "block") else f"{tv}.conv"
            if not module.use_res_connect:
                return [row for i, child in enumerate(inner) for row in self.mobile(child, f"{path}.{i}", where)]
            res_id = self.fresh(tv)
            body_where = f"{where or ''}{res_id}.body."
            body = [row for i, child in enumerate(inner) for row in self.mobile(child, f"{path}.{i}", body_where)]
            if where is None:
                self.roots.append(tv)
            return [LayerSpec(res_id, "Residual", {}, layers=body)]
        if isinstance(module, nn.Sequential):  # Conv2dNormActivation
            return [row for i, child in enumerate(module) for row in self.mobile(child, f"{tv}.{i}", where)]
        raise WorkbenchError(f"cannot expand {tv} ({name}) into layers")

    def squeeze_excitation(self, se: nn.Module, tv: str, where: str | None) -> LayerSpec:
        par_id = self.fresh(tv)
        keep_id, gate_id = self.fresh(f"{tv}_x"), self.fresh(f"{tv}_gate")
        gate_where = f"{where or ''}{par_id}.{gate_id}."
        gate = [self.leaf(se.avgpool, f"{tv}.avgpool", gate_where, keys=False),
                self.leaf(se.fc1, f"{tv}.fc1", gate_where),
                self.leaf(se.activation, f"{tv}.activation", gate_where, keys=False),
                self.leaf(se.fc2, f"{tv}.fc2", gate_where),
                self.leaf(se.scale_activation, f"{tv}.scale_activation", gate_where, keys=False)]
        if where is None:
            self.roots.append(tv)
        return LayerSpec(par_id, "Parallel", {"merge": "mul"},
                         layers=[LayerSpec(keep_id, "Branch"), LayerSpec(gate_id, "Branch", layers=gate)])
