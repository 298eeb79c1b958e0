"""torchvision classifiers as one block whose named children are freezable stages.

Every classifier of ``torchvision.models.list_models(module=torchvision.models)`` (``ARCHS``) is
a backbone kind. Its stages come from the model's top-level children (``stage_plan``: ResNet's
stem / layer1..4, VGG's blocks between pools, MobileNet's features grouped where the resolution
halves, ...); the classifier head is dropped and 'pool' (average pool + flatten, or the model's
own pre-logits) added when pooled. Shapes come from the model built on the meta device
(``torchvision_model(meta=True)``: no values, no initialisation); the catalog only reads the
names and ``FAMILIES`` here and never imports torchvision. ``size_rule`` says which square
inputs an architecture takes (ViT and MaxViT exactly 224, the others a minimum).

Weights: 'none' (random init), a local file holding a torchvision state_dict (read by
``workbench.model.torch_files``: weights-only; checked key by key here), or 'download' which
fetches torchvision's published weights. A download is never attempted implicitly and gives a
clear error offline instead of hanging.
"""
from __future__ import annotations

import functools
import os
import socket
import tempfile
import urllib.error
import urllib.request
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from workbench import fileio
from workbench.errors import WorkbenchError
from workbench.model import torch_files

# Every classifier torchvision builds (``torchvision.models.list_models(module=torchvision.models)``,
# a test keeps the two equal), written out so that the catalog never imports torchvision.
ARCHS = (
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121", "densenet161",
    "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_l",
    "efficientnet_v2_m", "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t", "mnasnet0_5", "mnasnet0_75",
    "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_x_16gf",
    "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_8gf",
    "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf", "regnet_y_32gf", "regnet_y_3_2gf", "regnet_y_400mf",
    "regnet_y_800mf", "regnet_y_8gf", "resnet101", "resnet152", "resnet18", "resnet34", "resnet50",
    "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "squeezenet1_0", "squeezenet1_1", "swin_b", "swin_s", "swin_t",
    "swin_v2_b", "swin_v2_s", "swin_v2_t", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
    "vgg19_bn", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
)

# family -> (words for the palette's search, the input size rule). A rule is ("min", n): square
# images of at least n x n; ("exact", n): exactly n x n (position embeddings / fixed windows).
FAMILIES = {
    "resnet": ("ResNet residual network (He et al. 2015)", ("min", 32)),
    "resnext": ("ResNeXt grouped-convolution residual network", ("min", 32)),
    "wide_resnet": ("Wide ResNet residual network", ("min", 32)),
    "vgg": ("VGG plain convolutional network (Simonyan & Zisserman)", ("min", 32)),
    "alexnet": ("AlexNet (Krizhevsky 2012)", ("min", 63)),
    "densenet": ("DenseNet densely connected network", ("min", 32)),
    "squeezenet": ("SqueezeNet fire modules, small", ("min", 32)),
    "mobilenet_v2": ("MobileNetV2 inverted residual, mobile", ("min", 32)),
    "mobilenet_v3": ("MobileNetV3 inverted residual with squeeze-and-excitation, mobile", ("min", 32)),
    "efficientnet": ("EfficientNet compound-scaled MBConv, squeeze-and-excitation", ("min", 32)),
    "efficientnet_v2": ("EfficientNetV2 fused-MBConv", ("min", 32)),
    "mnasnet": ("MnasNet mobile architecture search", ("min", 32)),
    "shufflenet": ("ShuffleNetV2 channel shuffle, mobile", ("min", 32)),
    "regnet": ("RegNet designed network space (Facebook)", ("min", 32)),
    "convnext": ("ConvNeXt modernised convolutional network", ("min", 32)),
    "googlenet": ("GoogLeNet Inception v1", ("min", 32)),
    "inception": ("Inception v3", ("min", 75)),
    "vit": ("Vision Transformer ViT, patches and self-attention", ("exact", 224)),
    "swin": ("Swin Transformer shifted windows", ("min", 32)),
    "maxvit": ("MaxViT multi-axis attention transformer", ("exact", 224)),
}


def family(arch: str) -> str:
    for name in sorted(FAMILIES, key=len, reverse=True):
        if arch.startswith(name):
            return name
    raise KeyError(arch)


def size_rule(arch: str) -> tuple[str, int]:
    """("min", n) or ("exact", n): the square image sizes ``arch`` takes."""
    return FAMILIES[family(arch)][1]


DOWNLOAD_TIMEOUT_S = 20

# How each architecture is cut into stages: stage name -> the parts it is made of, each a module
# path in the torchvision model ('features.3', 'layer1') or one of the pieces below; the head
# (fc / classifier) is dropped, and 'pool' (when pooled) is POOL[family] or the average pool.
RELU, PERMUTE, VIT_EMBED, AVG, FLAT, TOKEN = "+relu", "+permute", "+vit_embed", "+avg", "+flatten", "+token"
_FIXED = {  # the three from before keep their stage names (old project files freeze them by name)
    "mobilenet_v3_small": OrderedDict(stem=(0,), stage1=(1,), stage2=(2, 3), stage3=(4, 5, 6, 7, 8),
                                      stage4=(9, 10, 11), head=(12,)),
    "efficientnet_b0": OrderedDict(stem=(0,), stage1=(1,), stage2=(2,), stage3=(3,), stage4=(4,),
                                   stage5=(5,), stage6=(6,), stage7=(7,), head=(8,)),
}
_POOL = {
    "convnext": (AVG, "classifier.0", FLAT),  # the LayerNorm2d torchvision puts before its classifier
    "maxvit": ("classifier.0", "classifier.1", "classifier.2", "classifier.3", "classifier.4"),  # pre-logits
    "vit": (TOKEN,),
}


class Backbone(nn.Sequential):
    """A torchvision feature extractor; children are its stages (plus 'pool' when pooled)."""


class VitEmbed(nn.Module):
    """The input step of torchvision's VisionTransformer: patches projected to tokens, the class
    token in front (the encoder adds the position embedding)."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.image_size, self.patch_size, self.hidden_dim = vit.image_size, vit.patch_size, vit.hidden_dim

    def forward(self, x):
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:  # the position embedding fits one size only
            raise ValueError(f"needs {self.image_size}x{self.image_size} images, got {h}x{w}")
        x = self.conv_proj(x).reshape(n, self.hidden_dim, -1).permute(0, 2, 1)
        return torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)


class ClassToken(nn.Module):
    """The class token's features from a (batch, tokens, features) sequence."""

    def forward(self, x):
        return x[:, 0]


_WRAPPER_SOURCE = {VIT_EMBED: """class VitEmbed(nn.Module):
    def __init__(self, vit):
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.hidden_dim = vit.hidden_dim

    def forward(self, x):
        n = x.shape[0]
        x = self.conv_proj(x).reshape(n, self.hidden_dim, -1).permute(0, 2, 1)
        return torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
""", TOKEN: """class ClassToken(nn.Module):
    def forward(self, x):
        return x[:, 0]
"""}


class MetaWeights(TorchFunctionMode):
    """Weights and buffers made inside are on the meta device and not initialised; the small
    arithmetic some constructors do (RegNet's widths from ``torch.arange``) stays on the CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _MAKERS and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        elif getattr(func, "__module__", None) == "torch.nn.init":
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


_MAKERS = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.empty_strided}


def torchvision_model(arch: str, meta: bool = False) -> nn.Module:
    """torchvision's ``arch`` with random weights (on the meta device, without values, if ``meta``)."""
    import torchvision.models as tvm

    if arch not in ARCHS:
        raise WorkbenchError(f"{arch!r} is not a torchvision classifier this version knows")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GoogLeNet / Inception's note on their initialisation
        if meta:
            with MetaWeights():
                return tvm.get_model(arch, weights=None).to("meta")
        return tvm.get_model(arch, weights=None)


@functools.lru_cache(maxsize=None)
def stage_plan(arch: str) -> "OrderedDict[str, tuple]":
    """Stage name -> its parts (module paths in torchvision's model, indices into its `features`,
    or the pieces RELU / PERMUTE / VIT_EMBED)."""
    if arch in _FIXED:
        return OrderedDict((k, tuple(f"features.{i}" for i in v)) for k, v in _FIXED[arch].items())
    fam = family(arch)
    net = torchvision_model(arch, meta=True)
    plan: OrderedDict[str, tuple] = OrderedDict()
    if fam in ("resnet", "resnext", "wide_resnet"):
        plan["stem"] = ("conv1", "bn1", "relu", "maxpool")
        plan.update((f"layer{i}", (f"layer{i}",)) for i in range(1, 5))
    elif fam in ("vgg", "alexnet", "squeezenet"):
        block: list[str] = []
        for i, child in enumerate(net.features):
            block.append(f"features.{i}")
            if isinstance(child, nn.MaxPool2d) or i == len(net.features) - 1:
                plan[f"block{len(plan) + 1}"] = tuple(block)
                block = []
    elif fam == "densenet":
        names = [n for n, _ in net.features.named_children()]
        plan["stem"] = tuple(f"features.{n}" for n in names[:4])
        for i in range(1, 5):
            plan[f"block{i}"] = (f"features.denseblock{i}",) + (
                (f"features.transition{i}",) if i < 4 else ("features.norm5", RELU))
    elif fam in ("mobilenet_v2", "mobilenet_v3"):
        last = len(net.features) - 1
        plan["stem"] = ("features.0",)
        for i in range(1, last):
            if i == 1 or _downsamples(net.features[i]):
                plan[f"stage{len(plan)}"] = ()
            key = next(reversed(plan))
            plan[key] += (f"features.{i}",)
        plan["head"] = (f"features.{last}",)
    elif fam in ("efficientnet", "efficientnet_v2"):
        last = len(net.features) - 1
        plan["stem"] = ("features.0",)
        plan.update((f"stage{i}", (f"features.{i}",)) for i in range(1, last))
        plan["head"] = (f"features.{last}",)
    elif fam == "mnasnet":
        plan["stem"] = tuple(f"layers.{i}" for i in range(8))
        plan.update((f"stage{i - 7}", (f"layers.{i}",)) for i in range(8, 14))
        plan["head"] = ("layers.14", "layers.15", "layers.16")
    elif fam == "shufflenet":
        plan.update(stem=("conv1", "maxpool"), stage2=("stage2",), stage3=("stage3",), stage4=("stage4",),
                    head=("conv5",))
    elif fam == "regnet":
        plan["stem"] = ("stem",)
        plan.update((n, (f"trunk_output.{n}",)) for n, _ in net.trunk_output.named_children())
    elif fam == "convnext":
        plan.update(stem=("features.0",), stage1=("features.1",), stage2=("features.2", "features.3"),
                    stage3=("features.4", "features.5"), stage4=("features.6", "features.7"))
    elif fam == "swin":
        plan.update(stem=("features.0",), stage1=("features.1",), stage2=("features.2", "features.3"),
                    stage3=("features.4", "features.5"), stage4=("features.6", "features.7", "norm", PERMUTE))
    elif fam == "maxvit":
        plan["stem"] = ("stem",)
        plan.update((f"block{i + 1}", (f"blocks.{i}",)) for i in range(len(net.blocks)))
    elif fam == "googlenet":
        plan.update(stem=("conv1", "maxpool1", "conv2", "conv3", "maxpool2"),
                    inception3=("inception3a", "inception3b", "maxpool3"),
                    inception4=tuple(f"inception4{c}" for c in "abcde") + ("maxpool4",),
                    inception5=("inception5a", "inception5b"))
    elif fam == "inception":
        plan.update(stem=("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                          "Conv2d_4a_3x3", "maxpool2"),
                    mixed5=("Mixed_5b", "Mixed_5c", "Mixed_5d"),
                    mixed6=tuple(f"Mixed_6{c}" for c in "abcde"), mixed7=("Mixed_7a", "Mixed_7b", "Mixed_7c"))
    elif fam == "vit":
        plan.update(embed=(VIT_EMBED,), encoder=("encoder",))
    return plan


def _downsamples(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and max(m.stride) > 1 for m in module.modules())


def stage_names(arch: str) -> tuple[str, ...]:
    """The freezable stages of a backbone kind; () for any other type (builds it on meta once)."""
    return tuple(stage_plan(arch)) if arch in ARCHS else ()


def pool_plan(arch: str) -> tuple[str, ...]:
    return _POOL.get(family(arch), (AVG, FLAT))


def _part(net: nn.Module, part: str) -> nn.Module:
    from torchvision.ops.misc import Permute

    pieces = {RELU: nn.ReLU, PERMUTE: lambda: Permute([0, 3, 1, 2]), VIT_EMBED: lambda: VitEmbed(net),
              AVG: lambda: nn.AdaptiveAvgPool2d(1), FLAT: nn.Flatten, TOKEN: ClassToken}
    return pieces[part]() if part in pieces else net.get_submodule(part)


def build_backbone(arch: str, weights: str = "none", pool: bool = True, meta: bool = False) -> Backbone:
    net = torchvision_model(arch, meta=meta)
    if not meta and weights and weights != "none":
        _load_weights(net, arch, weights)
    parts = OrderedDict()
    for stage, members in stage_plan(arch).items():
        mods = [_part(net, m) for m in members]
        parts[stage] = mods[0] if len(mods) == 1 else nn.Sequential(*mods)
    if pool:
        parts["pool"] = nn.Sequential(*(_part(net, m) for m in pool_plan(arch)))
    return Backbone(parts)


def helper_source(arch: str) -> str:
    """Python source of ``{arch}_backbone(pool=True)``, building what ``build_backbone`` builds
    from torchvision alone (for the Python source export), with any wrapper class it needs."""
    ind = "    "
    used = [p for parts in (*stage_plan(arch).values(), pool_plan(arch)) for p in parts]
    classes = [_WRAPPER_SOURCE[w] + "\n\n" for w in (VIT_EMBED, TOKEN) if w in used]
    expr = {RELU: "nn.ReLU()", PERMUTE: "Permute([0, 3, 1, 2])", VIT_EMBED: "VitEmbed(net)",
            AVG: "nn.AdaptiveAvgPool2d(1)", FLAT: "nn.Flatten()", TOKEN: "ClassToken()"}

    def code(part: str) -> str:
        if part in expr:
            return expr[part]
        return "net" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in part.split("."))

    lines = [f"def {arch}_backbone(pool=True):",
             f'{ind}"""torchvision\'s {arch} regrouped into named stages, as Model Workbench builds it."""',
             f"{ind}from torchvision import models"]
    if PERMUTE in used:
        lines.append(f"{ind}from torchvision.ops.misc import Permute")
    lines += ["", f"{ind}net = models.{arch}(weights=None)", f"{ind}stages = OrderedDict()"]
    for stage, members in stage_plan(arch).items():
        parts = [code(m) for m in members]
        built = parts[0] if len(parts) == 1 else f"nn.Sequential({', '.join(parts)})"
        lines.append(f"{ind}stages[{stage!r}] = {built}")
    pool_parts = ", ".join(code(m) for m in pool_plan(arch))
    lines += [f"{ind}if pool:", f"{ind * 2}stages['pool'] = nn.Sequential({pool_parts})",
              f"{ind}return nn.Sequential(stages)"]
    return "".join(classes) + "\n".join(lines) + "\n"


def _load_weights(net: nn.Module, arch: str, weights: str) -> None:
    """Copy a torchvision state_dict for ``arch`` into ``net``; a file for another architecture
    (or anything but weights) is a WorkbenchError naming the file and what does not fit."""
    if weights == "download":
        path = _cached_or_downloaded(arch)
    else:
        path = Path(weights).expanduser()
        if not fileio.exists(path):
            raise WorkbenchError(f"{arch} weights file not found: {path}; choose an existing .pth file "
                                 "or set weights to 'none'")
    data = torch_files.load(path, f"{arch} weights file")
    if isinstance(data, dict):
        for key in ("state_dict", "model"):  # a checkpoint or an export around the state_dict
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict):
        raise WorkbenchError(f"{path} holds a {type(data).__name__}, not a state_dict for {arch}")
    state = torch_files.checked_state(path, {k: v for k, v in data.items() if isinstance(v, torch.Tensor)})
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: file {list(state[k].shape)}, {arch} {list(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        kinds = (("missing", missing), ("not in " + arch, unexpected), ("of the wrong shape", wrong))
        found = [f"{len(items)} {what} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})"
                 for what, items in kinds if items]
        raise WorkbenchError(f"{path} does not hold {arch} weights: {'; '.join(found)}; choose a torchvision "
                             f"{arch} state_dict, or set weights to 'none'")
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:  # a dtype that cannot be copied in
        raise WorkbenchError(f"{path}: cannot load it into {arch} ({str(exc).strip().splitlines()[-1]})") from None


def _weights_url(arch: str) -> str:
    import torchvision.models as tvm

    return tvm.get_model_weights(arch).DEFAULT.url


def _cached_or_downloaded(arch: str) -> Path:
    url = _weights_url(arch)
    target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if target.is_file():
        return target
    if os.environ.get("WORKBENCH_OFFLINE") == "1":
        raise WorkbenchError(f"{arch} pretrained weights are not in {target.parent} and downloads are off "
                             "(WORKBENCH_OFFLINE=1); copy the file there or use a local weights file")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
                while chunk := resp.read(1 << 20):
                    tmp.write(chunk)
        os.replace(tmp.name, target)
    except (urllib.error.URLError, socket.timeout, OSError) as exc:
        if "tmp" in locals():
            Path(tmp.name).unlink(missing_ok=True)
        raise WorkbenchError(f"could not download {arch} weights from {url} ({exc}); you seem to be "
                             f"offline: put the file in {target.parent} or use weights 'none'") from None
    return target
