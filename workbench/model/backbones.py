"""torchvision backbones as one block whose named children are freezable stages.

Weights: 'none' (random init), a local file holding a torchvision state_dict (read by
``workbench.model.torch_files``: weights-only; checked key by key here), or 'download' which
fetches torchvision's published weights. A download is never attempted implicitly and gives a
clear error offline instead of hanging.
"""
from __future__ import annotations

import os
import socket
import tempfile
import urllib.error
import urllib.request
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from workbench import fileio
from workbench.errors import WorkbenchError
from workbench.model import torch_files

# stage name -> indices into torchvision's `features` (mobilenet / efficientnet) or
# attribute names (resnet). Grouped where the resolution changes.
_STAGES = {
    "resnet18": OrderedDict(stem=("conv1", "bn1", "relu", "maxpool"), layer1=("layer1",),
                            layer2=("layer2",), layer3=("layer3",), layer4=("layer4",)),
    "mobilenet_v3_small": OrderedDict(stem=(0,), stage1=(1,), stage2=(2, 3), stage3=(4, 5, 6, 7, 8),
                                      stage4=(9, 10, 11), head=(12,)),
    "efficientnet_b0": OrderedDict(stem=(0,), stage1=(1,), stage2=(2,), stage3=(3,), stage4=(4,),
                                   stage5=(5,), stage6=(6,), stage7=(7,), head=(8,)),
}
DOWNLOAD_TIMEOUT_S = 20


def stage_names(arch: str) -> tuple[str, ...]:
    return tuple(_STAGES.get(arch, ()))


class Backbone(nn.Sequential):
    """A torchvision feature extractor; children are its stages (plus 'pool' when pooled)."""


def build_backbone(arch: str, weights: str = "none", pool: bool = True, meta: bool = False) -> Backbone:
    import torchvision.models as tvm

    ctor = getattr(tvm, arch)
    if meta:
        with torch.device("meta"):
            net = ctor(weights=None)
    else:
        net = ctor(weights=None)
        if weights and weights != "none":
            _load_weights(net, arch, weights)
    parts = OrderedDict()
    for stage, members in _STAGES[arch].items():
        if isinstance(members[0], int):
            mods = [net.features[i] for i in members]
        else:
            mods = [getattr(net, name) for name in members]
        parts[stage] = mods[0] if len(mods) == 1 else nn.Sequential(*mods)
    if pool:
        parts["pool"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Backbone(parts)


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
