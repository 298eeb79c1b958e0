"""MNIST-format folders: the idx files of MNIST and FashionMNIST (optionally .gz), read
directly; downloaded by torchvision only when the project allows it (and never when
``WORKBENCH_OFFLINE=1``), failing at once when offline."""
from __future__ import annotations

import gzip
import math
import os
import socket
import zlib
from pathlib import Path

import torch

from workbench import fileio
from workbench.data.sources.base import TensorSource
from workbench.errors import WorkbenchError
from workbench.project.settings import DataSettings

_IDX_TYPES = {0x08: torch.uint8, 0x09: torch.int8, 0x0B: torch.int16, 0x0C: torch.int32,
              0x0D: torch.float32, 0x0E: torch.float64}
_MNIST = {"mnist": ("MNIST", [str(i) for i in range(10)]),
          "fashion_mnist": ("FashionMNIST", ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                             "Shirt", "Sneaker", "Bag", "Ankle boot"])}
DOWNLOAD_TIMEOUT_S = 20
MAX_ELEMENTS = 2 ** 40  # a header claiming more values than this is corrupt


def read_idx(path: Path) -> torch.Tensor:
    """One idx file (optionally .gz), the format of MNIST and FashionMNIST."""
    fileio.regular_file(path, "idx file")  # a FIFO would block the read forever
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise WorkbenchError(f"cannot read {path}: {exc}; replace the file") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise WorkbenchError(f"{path} is not an idx file (bad header); replace it with the original "
                             "MNIST-format file")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise WorkbenchError(f"{path} is truncated; replace the file")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    count = math.prod(dims)
    if math.prod(d for d in dims if d) > MAX_ELEMENTS:
        raise WorkbenchError(f"{path}: its header gives the shape {dims}, far beyond any data set; the file is "
                             "corrupt, replace it")
    itemsize = torch.empty((), dtype=dtype).element_size()
    body = raw[4 + 4 * ndim:]
    if len(body) != count * itemsize:
        raise WorkbenchError(f"{path} should hold {count * itemsize} bytes of data for shape {dims} but has "
                             f"{len(body)}; the file is truncated or corrupt, replace it")
    if count == 0:  # a dimension of 0: no data (frombuffer refuses an empty buffer)
        return torch.empty(dims, dtype=dtype)
    t = torch.frombuffer(bytearray(body), dtype=dtype)
    if itemsize > 1:
        t = t.view(torch.uint8).view(-1, itemsize).flip(1).contiguous().view(dtype)  # big-endian
    return t.reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if fileio.exists(folder / name):  # read_idx refuses what is not a regular file
            return folder / name
    return None


def _idx_folder(path: Path, cls_name: str) -> Path | None:
    for folder in (path, path / "raw", path / cls_name / "raw", path / cls_name):
        if _find_idx(folder, "train-images-idx3-ubyte") is not None:
            return folder
    return None


def read_mnist(settings: DataSettings) -> TensorSource:
    """MNIST or FashionMNIST (``settings.source``) from its idx files under ``settings.path``; the
    official test files, when present, are the validation part."""
    source, download = settings.source, settings.download
    cls_name, classes = _MNIST[source]
    root = Path(settings.path).expanduser()
    folder = _idx_folder(root, cls_name)
    if folder is None and download:
        _download_mnist(root, cls_name)
        folder = _idx_folder(root, cls_name)
    if folder is None:
        raise WorkbenchError(f"no {cls_name} files in {root} (looked for train-images-idx3-ubyte[.gz] there, "
                             f"in raw/ and in {cls_name}/raw/); copy the idx files there or set data.download "
                             "to true when online")
    x, y = _pair(folder, "train")
    if not len(y):
        raise WorkbenchError(f"{folder}: train-images-idx3-ubyte holds no images; replace it with the original file")
    vx = vy = None
    if _find_idx(folder, "t10k-images-idx3-ubyte") and _find_idx(folder, "t10k-labels-idx1-ubyte"):
        vx, vy = _pair(folder, "t10k")  # the official test set is the validation part
    for labels, part in ((y, "train"), (vy, "t10k")):
        if labels is not None and len(labels) and int(labels.min()) < 0:
            raise WorkbenchError(f"{folder}: the {part} labels include {int(labels.min())}; class labels start "
                                 "at 0. Are these the right files?")
    bad = int(y.max()) if len(y) else 0
    if bad >= len(classes) or (vy is not None and len(vy) and int(vy.max()) >= len(classes)):
        raise WorkbenchError(f"{folder}: labels go up to {max(bad, int(vy.max()) if vy is not None else 0)} but "
                             f"{cls_name} has {len(classes)} classes; are these the right files?")
    return TensorSource(f"{cls_name} ({folder})", x, y, list(classes), is_image=True, val_x=vx, val_y=vy,
                        flip_ok=source == "fashion_mnist")


def _pair(folder: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    images_path = _find_idx(folder, f"{prefix}-images-idx3-ubyte")
    labels_path = _find_idx(folder, f"{prefix}-labels-idx1-ubyte")
    if labels_path is None:
        raise WorkbenchError(f"{folder} has {prefix}-images but no {prefix}-labels-idx1-ubyte; copy it there")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise WorkbenchError(f"{images_path.name} ({list(images.shape)}) and {labels_path.name} "
                             f"({list(labels.shape)}) do not match: expected N images of HxW and N labels")
    return images.float().div_(255).unsqueeze(1), labels.long()


def _download_mnist(root: Path, cls_name: str) -> None:
    if os.environ.get("WORKBENCH_OFFLINE") == "1":
        raise WorkbenchError(f"{cls_name} is not in {root} and downloads are off (WORKBENCH_OFFLINE=1); copy "
                             "the idx files there")
    import torchvision.datasets as tvd

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        getattr(tvd, cls_name)(str(root), train=True, download=True)
    except Exception as exc:  # URLError, timeouts, checksum errors: one message
        raise WorkbenchError(f"could not download {cls_name} into {root} ({exc}); you seem to be offline: "
                             "copy the idx files there and set data.download to false") from None
    finally:
        socket.setdefaulttimeout(old)
