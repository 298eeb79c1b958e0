"""Image sources read file by file through torchvision: folders of images (ImageFolder, one
subfolder per class) and torchvision's FakeData. Their transforms (resize, the project's
augmentation pipelines, normalisation) come from workbench.data.augment."""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import torch

from workbench import fileio
from workbench.data import augment
from workbench.data.sources.base import IMAGENET_MEAN, IMAGENET_STD, LazySource, chosen_stats
from workbench.errors import WorkbenchError
from workbench.project.settings import DataSettings

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


class ImageReader:
    """Opens one image file as RGB or greyscale (``mode`` "RGB" / "L") with PIL; names the file
    when it cannot. (torchvision.io.decode_image was about twice as fast on JPEGs here, but it
    crashed the process with a segmentation fault on a file of the hypothesis fuzz test
    (test_data_fuzz.test_image_files, in CI), where PIL raises an error we can name: a corrupt
    file must never take the window down.)"""

    def __init__(self, mode: str):
        self.mode = mode

    def __call__(self, path: str):
        from PIL import Image

        try:
            with fileio.open_regular(path, "image") as fh:  # a FIFO would block a plain open forever
                return Image.open(fh).convert(self.mode)
        except WorkbenchError:
            raise
        except Exception as exc:  # PIL raises many types for broken files
            raise WorkbenchError(f"cannot read image {path}: {exc}; remove or replace the file") from None


def _transforms(size: tuple[int, int], channels: int, settings: DataSettings):
    mean, std = chosen_stats(settings, *((IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,))))
    return augment.image_transforms(size, channels, settings, mean, std)  # resize, the pipelines, normalise


def read_image_folder(settings: DataSettings) -> LazySource:
    from torchvision.datasets import ImageFolder

    root = Path(settings.path).expanduser()
    if not fileio.is_dir(root):
        raise WorkbenchError(f"image folder {root} does not exist; choose a folder with one subfolder per class")
    mode = "L" if settings.grayscale else "RGB"
    try:
        ds = ImageFolder(str(root), loader=ImageReader(mode), is_valid_file=is_image_file)
    except (FileNotFoundError, OSError) as exc:
        raise WorkbenchError(f"{root}: {exc}; put the images in one subfolder per class "
                             "(e.g. cats/001.jpg, dogs/001.jpg)") from None
    if len(ds.classes) < 2:
        raise WorkbenchError(f"{root} has {len(ds.classes)} class folder(s); a classifier needs at least 2")
    sizes = scan_images([p for p, _ in ds.samples], mode)
    size = tuple(settings.image_size) if settings.image_size else sizes[0]
    channels = 1 if settings.grayscale else 3
    train_tf, val_tf, stats = _transforms(size, channels, settings)
    return LazySource(f"image folder {root}", ds, list(ds.classes), (channels, *size), train_tf, val_tf,
                      targets=torch.as_tensor(ds.targets, dtype=torch.long), stats=stats)


def scan_images(paths: list[str], mode: str = "RGB") -> list[tuple[int, int]]:
    """Decode every image once (JPEGs at a reduced scale, which still reads the whole file),
    convert it to ``mode`` as training will, and return each one's (height, width). A broken or
    unreadable file is a WorkbenchError naming it, here before training rather than in the
    middle of a run; the error counts the others."""
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(8, os.cpu_count() or 1))  # decoders release the GIL
    with ThreadPoolExecutor(workers, thread_name_prefix="image-scan") as pool:
        results = list(pool.map(partial(_image_size, mode=mode), paths))
    broken = [(path, r) for path, r in zip(paths, results) if isinstance(r, str)]
    if broken:
        path, reason = broken[0]
        more = f" ({len(broken)} broken images in all; the others: {', '.join(Path(p).name for p, _ in broken[1:4])}" \
               f"{', ...' if len(broken) > 4 else ''})" if len(broken) > 1 else ""
        raise WorkbenchError(f"cannot read image {path}: {reason}; remove or replace the file{more}")
    return results  # type: ignore[return-value]


def _image_size(path: str, mode: str) -> tuple[int, int] | str:
    """(height, width) of an image file that decodes and converts to ``mode``, or why it cannot."""
    from PIL import Image

    try:
        fileio.regular_file(path, "image")
        with Image.open(path) as img:
            w, h = img.size
            img.draft("RGB", (max(1, w // 8), max(1, h // 8)))  # JPEG: decode at 1/8 scale
            img.load()
            img.convert(mode)
    except WorkbenchError as exc:
        return str(exc).replace(f"image {path} ", "it ")
    except Exception as exc:  # PIL raises many types for broken files
        return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return h, w


def read_fake(settings: DataSettings) -> LazySource:
    from torchvision.datasets import FakeData

    shape = tuple(settings.fake_shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise WorkbenchError(f"data.fake_shape must be [channels, height, width] with 1 or 3 channels, "
                             f"got {list(shape)}")
    ds = FakeData(settings.fake_size, shape, settings.fake_classes)
    size = tuple(settings.image_size) if settings.image_size else shape[1:]
    channels = 1 if settings.grayscale else shape[0]
    if channels == 3 and shape[0] == 1:
        raise WorkbenchError("FakeData with 1 channel cannot be read as RGB; set fake_shape to 3 channels")
    train_tf, val_tf, stats = _transforms(size, channels, settings)
    names = [str(i) for i in range(settings.fake_classes)]
    return LazySource(f"FakeData {list(shape)}", ds, names, (channels, *size), train_tf, val_tf, stats=stats)
