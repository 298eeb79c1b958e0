"""Images per second from a folder of JPEGs: the workbench's image_folder loader against a plain
torchvision ``ImageFolder`` + ``DataLoader`` with the same transforms, workers and batch size.

The folder (default 20,000 JPEGs, 10 classes, 64x64) is generated once and cached under the
temp folder, keyed by its parameters. Ours: ``load_data`` of an ``image_folder`` source (its
one-off scan of every file is set-up, not timed) and ``DataBundle.loader``
(PIL decoding, ``pin_memory`` on CUDA, persistent workers). Plain: what a
person writes by hand: ``ImageFolder`` with PIL's loader, ``Resize`` + ``ToTensor`` +
``Normalize``, ``DataLoader(shuffle=True, num_workers=W, pin_memory=cuda,
persistent_workers=W > 0)``. One process runs the two alternately, pass after pass over the
whole folder (every batch moved to the device), and compares the median pass; the first pass
of each side (worker start-up, page cache) is left out.

Ratio: plain images/s divided by ours (above 1: ours is slower). Goal: <= 1.05.
Last line: RESULT throughput_ratio=... ours_ips=... plain_ips=...
(``--quick``: 300 images, 1 worker, 2 passes: a smoke run whose RESULT says quick=1).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_folder(images: int, classes: int, size: int) -> Path:
    """The cached JPEG folder: class k's pictures are smooth gradients of its own colour plus noise."""
    import numpy as np
    from PIL import Image

    root = Path(tempfile.gettempdir()) / f"wb-bench-jpegs-{images}-{classes}-{size}"
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    for i in range(images):
        k = i % classes
        folder = root / f"class_{k:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        colour = np.array([(37 * k) % 256, (91 * k + 40) % 256, (53 * k + 120) % 256], dtype=np.float32)
        base = colour * (0.5 + 0.5 * ramp[:, None, None]) * (0.7 + 0.3 * ramp[None, :, None])
        pixels = np.clip(base + rng.normal(0, 18, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=90)
    done.write_text("ok\n")
    return root


def ours_loader(root: Path, batch: int, workers: int, device: str):
    from workbench.data.bundle import load_data

    bundle = load_data({"source": "image_folder", "path": str(root), "batch_size": batch, "num_workers": workers,
                        "val_fraction": 0.0})
    return bundle.loader("train", seed=0, device=device), bundle.task.input_shape


def plain_loader(root: Path, batch: int, workers: int, device: str, size: tuple[int, int]):
    import torch
    from torch.utils.data import DataLoader
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    tf = T.Compose([T.Resize(size), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    ds = ImageFolder(str(root), transform=tf)
    return DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                      pin_memory=torch.device(device).type == "cuda", persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(0))


def one_pass(loader, device: str, epoch: int) -> tuple[float, int]:
    """(seconds, images) of one pass over the loader, every batch moved to the device."""
    import torch

    dev = torch.device(device)
    if hasattr(loader.batch_sampler, "set_epoch"):
        loader.batch_sampler.set_epoch(epoch)
    n = 0
    t = time.perf_counter()
    for x, _y in loader:
        x = x.to(dev, non_blocking=True)
        n += len(x)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t, n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--passes", type=int, default=4, help="passes per side (the first one is left out)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="300 images, 1 worker, 2 passes: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.images, args.workers, args.passes, args.batch = 300, 1, 2, 32

    import torch

    torch.set_num_threads(1)  # the workers decode; the main process only collects
    t = time.perf_counter()
    root = make_folder(args.images, args.classes, args.size)
    print(f"folder {root}: {args.images} JPEGs, {args.classes} classes, {args.size}x{args.size} "
          f"(ready in {time.perf_counter() - t:.1f} s)")
    ours, shape = ours_loader(root, args.batch, args.workers, args.device)
    plain = plain_loader(root, args.batch, args.workers, args.device, tuple(shape[1:]))
    times: dict[str, list[float]] = {"ours": [], "plain": []}
    counts: dict[str, int] = {}
    for p in range(args.passes):
        for kind in (("ours", "plain") if p % 2 == 0 else ("plain", "ours")):
            seconds, n = one_pass(ours if kind == "ours" else plain, args.device, p)
            counts[kind] = n
            if p > 0 or args.passes == 1:
                times[kind].append(seconds)
    ips = {k: counts[k] / statistics.median(v) for k, v in times.items()}
    ratio = ips["plain"] / ips["ours"]
    for kind in ("ours", "plain"):
        print(f"{kind:5s}: {counts[kind]} images a pass, median {statistics.median(times[kind]):.2f} s "
              f"over {len(times[kind])} passes: {ips[kind]:.0f} images/s")
    print(f"workers {args.workers}, batch {args.batch}, device {args.device}: ratio plain/ours {ratio:.3f} "
          "(goal <= 1.05)")
    print(f"RESULT throughput_ratio={ratio:.3f} ours_ips={ips['ours']:.0f} plain_ips={ips['plain']:.0f} "
          f"workers={args.workers} images={args.images} device={args.device}" + (" quick=1" if args.quick else ""))


if __name__ == "__main__":
    main()
