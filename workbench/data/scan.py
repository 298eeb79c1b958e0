"""A scan of a project's data for the Data browser: split sizes, class counts, per-channel (or
per-column) statistics of the training split, and the first problems found, plus samples to show.

``scan(settings, progress=, cancelled=, cache_dir=)`` works for every source: the ones held in
memory (digits, scikit-learn tables, CSV, MNIST idx) are read through their reader and split with
``bundle.split_parts``, exactly as ``load_data`` splits them, and their statistics are the ones
loading computes (``make_datasets``); an image folder is listed without its reader (which stops at
the first broken file) and every image is decoded once at the training size, so every broken file
is listed by path and the statistics are those of the pixels training sees, in ToTensor's 0..1
units; FakeData is generated item by item. A reader's own refusal (a text target for regression,
an empty target cell) becomes the first problem, naming what the reader names.

Results are cached by the data's fingerprint (the data settings that change what is read, and
the path, size and mtime of every file under ``data.path``): in memory, and as JSON under
``cache_dir`` when one is given (the window passes ``<project>.runs/data-scan``), so a second scan
of an unchanged folder only walks it. ``samples(settings, positions)`` returns what the grid shows
for a page: small images as uint8 arrays (HxWxC) or a table row's cells.

Positions count the source's examples, then its own validation part after them (MNIST's test
files), so one list of targets serves every split.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from workbench import fileio
from workbench.data import bundle
from workbench.data.sources import images, registry, tables
from workbench.data.sources.base import LazySource, TensorSource
from workbench.errors import WorkbenchError
from workbench.project.settings import DataSettings

SCAN_VERSION = 1  # bump when what a result holds changes: older cache files are not read
# data settings that do not change what a scan finds (the loader's and the training's business)
NOT_SCANNED = frozenset({"batch_size", "num_workers", "pin_memory", "persistent_workers", "augment",
                         "augment_train", "augment_eval", "normalize", "mean", "std", "download"})
MAX_LISTED = 50  # problems kept per kind (the count says how many there are in all)
MEMORY_ENTRIES = 8  # results kept in memory

Progress = Callable[[int, int, str], None]  # (done, total, what is being done)


class ScanCancelled(Exception):
    """The scan was asked to stop (``cancelled()`` returned True)."""


@dataclass(frozen=True)
class Finding:
    """One problem in the data: what it is, and the file / line / column it is in where there is one."""

    message: str
    severity: str = "warning"  # "error": training cannot use the data as it is
    path: str | None = None
    line: int | None = None
    column: str | None = None


@dataclass
class ScanResult:
    """What the browser shows about the data (plain data: cached as JSON)."""

    description: str
    kind: str  # "images", "table" or "none" (the reader refused the data)
    class_names: list[str] | None  # None: regression, or nothing read
    targets: list[int] = field(default_factory=list)  # class per position (regression: [])
    train: list[int] = field(default_factory=list)  # positions in each split
    val: list[int] = field(default_factory=list)
    test: list[int] = field(default_factory=list)
    stat_names: list[str] = field(default_factory=list)  # channel or input column names
    mean: list[float] = field(default_factory=list)  # of the training split, in the units the loader normalises
    std: list[float] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # tables: the header of the rows samples() gives
    findings: list[Finding] = field(default_factory=list)  # errors first
    counted: dict = field(default_factory=dict)  # findings in all per kind, where more than listed
    seconds: float = 0.0
    cached: bool = False  # this answer came from the cache

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def class_counts(self, split: str = "train") -> list[int]:
        """Examples per class in ``split`` ("train", "val", "test" or "all")."""
        if not self.class_names:
            return []
        positions = range(len(self.targets)) if split == "all" else getattr(self, split)
        counts = np.bincount(np.asarray(self.targets, dtype=np.int64)[list(positions)],
                             minlength=len(self.class_names)) if len(positions) else \
            np.zeros(len(self.class_names), dtype=np.int64)
        return [int(c) for c in counts]

    @property
    def first_problem(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("cached")
        return out

    @classmethod
    def from_json(cls, data: dict) -> ScanResult:
        data = dict(data)
        data["findings"] = [Finding(**f) for f in data.get("findings", [])]
        return cls(**data)


_memory: dict[str, ScanResult] = {}


def scan(settings: DataSettings, *, progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
         cache_dir: Path | str | None = None) -> ScanResult:
    """Scan the data ``settings`` name (see the module's docstring); a cached answer where the
    data has not changed. Raises ScanCancelled when ``cancelled()`` turns True."""
    say = progress or (lambda done, total, text: None)
    stop = cancelled or (lambda: False)
    say(0, 0, "checking for changes")
    key = fingerprint(settings, stop)
    hit = _memory.get(key) or _read_cache(cache_dir, key)
    if hit is not None:
        _remember(key, hit)
        return replace(hit, cached=True)
    started = time.perf_counter()
    result = _scan(settings, say, stop)
    result.seconds = round(time.perf_counter() - started, 3)
    _remember(key, result)
    _write_cache(cache_dir, key, result)
    return result


def fingerprint(settings: DataSettings, cancelled: Callable[[], bool] = lambda: False) -> str:
    """A key that changes when the data a scan reads changes: the data settings that matter and
    every file's path, size and modification time under each path the settings name."""
    h = hashlib.sha256()
    scanned = {k: v for k, v in sorted(settings.to_dict().items()) if k not in NOT_SCANNED}
    h.update(json.dumps([SCAN_VERSION, scanned], sort_keys=True, default=str).encode())
    for name in ("path", "val_path", "test_path"):
        value = getattr(settings, name, None)
        if value:
            _hash_files(h, Path(value).expanduser(), cancelled)
    return h.hexdigest()[:32]


def _hash_files(h, root: Path, cancelled: Callable[[], bool]) -> None:
    try:
        st = root.stat()
    except OSError as exc:
        h.update(f"{root}:missing:{type(exc).__name__}".encode())
        return
    h.update(f"{root}:{st.st_size}:{st.st_mtime_ns}".encode())
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        if cancelled():
            raise ScanCancelled()
        dirs.sort()
        for name in sorted(files):
            try:
                fs = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            h.update(f"{os.path.relpath(os.path.join(folder, name), root)}:{fs.st_size}:{fs.st_mtime_ns}\n".encode())


def clear_memory() -> None:
    """Forget the results kept in memory (tests)."""
    _memory.clear()


def _remember(key: str, result: ScanResult) -> None:
    _memory.pop(key, None)
    _memory[key] = result
    while len(_memory) > MEMORY_ENTRIES:
        _memory.pop(next(iter(_memory)))


def _read_cache(cache_dir, key: str) -> ScanResult | None:
    if cache_dir is None:
        return None
    try:
        return ScanResult.from_json(json.loads((Path(cache_dir) / f"{key}.json").read_text()))
    except (OSError, ValueError, TypeError):  # absent, or a damaged file: scan again
        return None


def _write_cache(cache_dir, key: str, result: ScanResult) -> None:
    if cache_dir is None:
        return
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        fileio.write_text(Path(cache_dir) / f"{key}.json", json.dumps(result.to_json()))
    except (OSError, WorkbenchError):  # a read-only folder: the memory cache still serves
        pass


# ---------------------------------------------------------------- the scan itself

def _scan(settings: DataSettings, say: Progress, stop: Callable[[], bool]) -> ScanResult:
    if settings.source == "image_folder":
        return _scan_image_folder(settings, say, stop)
    say(0, 0, "reading the data")
    try:
        raw = registry.read(settings)
    except WorkbenchError as exc:
        result = ScanResult(f"{settings.source}", "none", None, findings=[Finding(str(exc), "error",
                                                                                  path=settings.path)])
        if settings.source == "csv":
            result.findings += _csv_findings(settings, stop)
        return result
    if stop():
        raise ScanCancelled()
    if isinstance(raw, TensorSource):
        return _scan_tensors(raw, settings, say, stop)
    return _scan_lazy(raw, settings, say, stop)


def _parts(raw, settings: DataSettings) -> tuple[list[int], list[int], list[int]]:
    """Train / validation / test positions as ``load_data`` makes them (a source's own
    validation part follows its examples)."""
    parts = bundle.split_parts(raw, settings)
    train, val = list(parts[0]), list(parts[1])
    test = list(parts[2]) if len(parts) > 2 else []
    if raw.val is not None:
        val = list(range(raw.size, raw.size + len(raw.val[1])))
    return train, val, test


def _scan_tensors(raw: TensorSource, settings: DataSettings, say: Progress, stop) -> ScanResult:
    train, val, test = _parts(raw, settings)
    say(1, 3, "computing statistics")
    classes = raw.class_names
    targets = raw.y if raw.val is None else torch.cat([raw.y, raw.val[1]])
    result = ScanResult(raw.name, "images" if raw.is_image else "table", list(classes) if classes else None,
                        targets=targets.reshape(-1).tolist() if classes else [], train=train, val=val, test=test)
    if train:
        _, _, stats = raw.make_datasets(train, val if raw.val is None else [],
                                        replace(settings, normalize=True, mean=None, std=None))
        result.mean, result.std = stats.get("mean", []), stats.get("std", [])
    if raw.is_image:
        result.stat_names = _channel_names(len(result.mean))
    else:
        result.stat_names = list(raw.feature_names or [f"input {i}" for i in range(len(result.mean))])
        result.columns = list(raw.feature_names or [f"input {i}" for i in range(raw.x.shape[1])])
    if stop():
        raise ScanCancelled()
    say(2, 3, "looking for problems")
    if settings.source == "csv":
        result.findings += _csv_findings(settings, stop, result, raw.size)
    result.findings += _class_findings(result)
    result.findings.sort(key=lambda f: f.severity != "error")
    say(3, 3, "done")
    return result


def _channel_names(n: int) -> list[str]:
    return ["grey"] if n == 1 else ["red", "green", "blue"] if n == 3 else [f"channel {i}" for i in range(n)]


def _class_findings(result: ScanResult, empty_ok: bool = False) -> list[Finding]:
    out = []
    if not result.class_names:
        return out
    for name, count in zip(result.class_names, result.class_counts("all")):
        if count == 0 and not empty_ok:
            out.append(Finding(f"class {name!r} has no examples", "error"))
        elif count == 1:
            out.append(Finding(f"class {name!r} has only 1 example: it can be in training or validation, "
                               "never both; add examples or remove the class"))
    return out


def _csv_findings(settings: DataSettings, stop, result: ScanResult | None = None, size: int = -1) -> list[Finding]:
    """Missing cells (NaN, empty, NA, ...) of a CSV file, by line and column; the table's header
    and rows (as text) go to the result for the grid when they match its examples one for one."""
    file = Path(settings.path or "").expanduser()
    try:
        header, rows, lines = _read_csv_text(file)
    except (OSError, UnicodeDecodeError, csv.Error, WorkbenchError):
        return []  # the reader's own error is the finding
    if result is not None and len(rows) == size:
        result.columns = header
        _csv_rows[str(file)] = (header, rows)
    missing = [(line, header[c]) for r, line in zip(rows, lines) for c, cell in enumerate(r[:len(header)])
               if cell.strip().lower() in tables.MISSING]
    if stop():
        raise ScanCancelled()
    out = []
    for line, column in missing[:MAX_LISTED]:
        out.append(Finding(f"{file} line {line}: column {column!r} is empty or NaN", path=str(file), line=line,
                           column=column))
    if len(missing) > 1:
        out[0] = replace(out[0], message=out[0].message + f" ({len(missing)} missing cells in all)")
    return out


_csv_rows: dict[str, tuple[list[str], list[list[str]]]] = {}


def _read_csv_text(file: Path) -> tuple[list[str], list[list[str]], list[int]]:
    fileio.regular_file(file, "CSV file")
    text = file.read_text(encoding="utf-8-sig")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    records = [(n, r) for n, r in enumerate(csv.reader(text.splitlines(), dialect), 1) if any(c.strip() for c in r)]
    if not records:
        return [], [], []
    header = [c.strip() for c in records[0][1]]
    return header, [[c.strip() for c in r] for _, r in records[1:]], [n for n, _ in records[1:]]


# ---------------------------------------------------------------- images read file by file

@dataclass
class _Listing(torch.utils.data.Dataset):
    """An image folder's files and classes, listed without decoding (what ImageFolder lists)."""

    samples: list[tuple[str, int]]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        return self.samples[i]


def _list_folder(settings: DataSettings) -> tuple[list[str], list[tuple[str, int]], list[str]]:
    """(class names, (path, class) per image, class folders without images) of an image folder."""
    from torchvision.datasets.folder import find_classes, make_dataset

    root = Path(settings.path or "").expanduser()
    if not fileio.is_dir(root):
        raise WorkbenchError(f"image folder {root} does not exist; choose a folder with one subfolder per class")
    try:
        classes, to_index = find_classes(str(root))
        found = make_dataset(str(root), to_index, is_valid_file=images.is_image_file, allow_empty=True)
    except (FileNotFoundError, OSError) as exc:
        raise WorkbenchError(f"{root}: {exc}; put the images in one subfolder per class "
                             "(e.g. cats/001.jpg, dogs/001.jpg)") from None
    have = {c for _, c in found}
    return classes, found, [str(root / name) for name, i in to_index.items() if i not in have]


def _scan_image_folder(settings: DataSettings, say: Progress, stop) -> ScanResult:
    say(0, 0, "listing the images")
    try:
        classes, found, empty = _list_folder(settings)
    except WorkbenchError as exc:
        return ScanResult("image folder", "none", None, findings=[Finding(str(exc), "error", path=settings.path)])
    root = Path(settings.path or "").expanduser()
    targets = torch.as_tensor([c for _, c in found], dtype=torch.long)
    raw = LazySource(f"image folder {root}", _Listing(found), classes, (0, 0, 0), None, None, targets=targets)
    train, val, test = _parts(raw, settings) if found else ([], [], [])
    result = ScanResult(raw.name, "images", list(classes), targets=targets.tolist(), train=train, val=val, test=test)
    result.findings += [Finding(f"class folder {p} holds no images; add images or remove the folder", "error", path=p)
                        for p in empty]
    if len(classes) < 2:
        result.findings.append(Finding(f"{root} has {len(classes)} class folder(s); a classifier needs at least 2",
                                       "error", path=str(root)))
    mode = "L" if settings.grayscale else "RGB"
    paths = [p for p, _ in found]
    size = tuple(settings.image_size) if settings.image_size else None
    in_train = np.zeros(len(paths), dtype=bool)
    in_train[train] = True
    sums = _PixelSums()
    broken: list[tuple[str, str]] = []
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(8, os.cpu_count() or 1))  # decoders release the GIL
    with ThreadPoolExecutor(workers, thread_name_prefix="data-scan") as pool:
        if size is None and paths:  # the loader's size: the first image's
            first = _decode(paths[0], mode, None)
            size = first[1].shape[:2] if not isinstance(first, str) else None
        step = max(1, len(paths) // 100)
        for done, (i, got) in enumerate(zip(range(len(paths)), pool.map(lambda p: _decode(p, mode, size), paths)), 1):
            if isinstance(got, str):
                broken.append((paths[i], got))
            elif in_train[i]:
                sums.add(got[1])
            if done % step == 0 or done == len(paths):
                say(done, len(paths), f"decoding images ({done:,} of {len(paths):,})")
                if stop():
                    pool.shutdown(cancel_futures=True)
                    raise ScanCancelled()
    result.mean, result.std = sums.stats()
    result.stat_names = _channel_names(len(result.mean))
    result.findings += [Finding(f"cannot read image {p}: {why}; remove or replace the file", "error", path=p)
                        for p, why in broken[:MAX_LISTED]]
    if broken:
        result.counted["broken images"] = len(broken)
    result.findings += _class_findings(result, empty_ok=True)
    result.findings.sort(key=lambda f: f.severity != "error")
    return result


class _PixelSums:
    """Running per-channel sums of pixel values in 0..1 (float64: millions of pixels)."""

    def __init__(self):
        self.n, self.s, self.s2 = 0, None, None

    def add(self, pixels: np.ndarray) -> None:
        x = pixels.reshape(-1, pixels.shape[-1]).astype(np.float64) / 255.0
        s, s2 = x.sum(0), (x * x).sum(0)
        self.s = s if self.s is None else self.s + s
        self.s2 = s2 if self.s2 is None else self.s2 + s2
        self.n += len(x)

    def stats(self) -> tuple[list[float], list[float]]:
        if not self.n:
            return [], []
        mean = self.s / self.n
        var = np.maximum(self.s2 / self.n - mean * mean, 0.0) * (self.n / max(1, self.n - 1))
        std = np.sqrt(var)
        std = np.where(std > 1e-8, std, 1.0)
        return [float(v) for v in mean], [float(v) for v in std]


def _decode(path: str, mode: str, size) -> tuple[str, np.ndarray] | str:
    """(path, HxWxC uint8 pixels at ``size`` (height, width) as training resizes) or why the file
    cannot be read."""
    from PIL import Image

    try:
        fileio.regular_file(path, "image")
        with Image.open(path) as img:
            if size is not None:
                img.draft(mode, (size[1], size[0]))  # JPEG: decode at the nearest scale above
            img = img.convert(mode)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.uint8)
    except WorkbenchError as exc:
        return str(exc).replace(f"image {path} ", "it ")
    except Exception as exc:  # PIL raises many types for broken files
        return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return path, pixels if pixels.ndim == 3 else pixels[:, :, None]


def _scan_lazy(raw: LazySource, settings: DataSettings, say: Progress, stop) -> ScanResult:
    """A source read item by item (FakeData): labels and statistics from its items."""
    from PIL import Image

    labels, n = [], raw.size
    mode = "L" if raw.input_shape[0] == 1 else "RGB"
    size = tuple(raw.input_shape[1:])
    items = []
    for i in range(n):
        img, label = raw.base[i]
        labels.append(int(label))
        items.append(img)
        if i % 64 == 0:
            say(i, n, "reading the examples")
            if stop():
                raise ScanCancelled()
    train, val, test = _parts(raw, settings)  # split as loading does (FakeData: not stratified)
    result = ScanResult(raw.name, "images", list(raw.class_names), targets=labels, train=train, val=val, test=test)
    sums = _PixelSums()
    for i in train:
        img = items[i].convert(mode)
        if img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        px = np.asarray(img, dtype=np.uint8)
        sums.add(px if px.ndim == 3 else px[:, :, None])
    result.mean, result.std = sums.stats()
    result.stat_names = _channel_names(len(result.mean))
    result.findings += _class_findings(result)
    say(n, n, "done")
    return result


# ---------------------------------------------------------------- samples for the grid

@dataclass
class Sample:
    """One example as the grid shows it."""

    position: int
    label: str
    image: np.ndarray | None = None  # HxWxC uint8
    cells: list[str] | None = None  # a table row
    path: str | None = None
    error: str | None = None  # why it cannot be shown


_opened: dict[str, object] = {}


def samples(settings: DataSettings, positions: list[int], result: ScanResult) -> list[Sample]:
    """The examples at ``positions`` (see the module's docstring) to show in the grid; a file
    that cannot be read gives a Sample with ``error`` set, never an exception."""
    names = result.class_names

    def label(p: int) -> str:
        return names[result.targets[p]] if names and p < len(result.targets) else ""

    if settings.source == "image_folder":
        _, found, _ = _list_folder(settings)
        out = []
        for p in positions:
            path = found[p][0]
            got = _decode_thumbnail(path, "L" if settings.grayscale else "RGB")
            out.append(Sample(p, label(p), path=path, **({"error": got} if isinstance(got, str) else {"image": got})))
        return out
    key = fingerprint(settings)
    raw = _opened.get(key)
    if raw is None:
        raw = registry.read(settings)
        _opened.clear()
        _opened[key] = raw
    if isinstance(raw, LazySource):
        out = []
        for p in positions:
            img, _ = raw.base[p]
            px = np.asarray(img.convert("L" if raw.input_shape[0] == 1 else "RGB"), dtype=np.uint8)
            out.append(Sample(p, label(p), image=px if px.ndim == 3 else px[:, :, None]))
        return out
    n = raw.size

    def example(p: int):  # a position past the source's examples is in its own validation part
        return (raw.x[p], raw.y[p]) if p < n else (raw.val[0][p - n], raw.val[1][p - n])

    text_rows = _csv_rows.get(str(Path(settings.path or "").expanduser())) if settings.source == "csv" else None
    out = []
    for p in positions:
        x, y = example(p)
        shown = label(p) if names else f"{float(y.reshape(-1)[0]):.4g}"
        if raw.is_image and x.dim() == 3:
            px = (x.clamp(0, raw.pixel_max) * (255.0 / raw.pixel_max)).round().to(torch.uint8)
            out.append(Sample(p, shown, image=px.permute(1, 2, 0).numpy()))
        elif text_rows is not None and p < len(text_rows[1]):
            out.append(Sample(p, shown, cells=list(text_rows[1][p])))
        else:
            out.append(Sample(p, shown, cells=[f"{v:.4g}" for v in x.reshape(-1).tolist()]))
    return out


def _decode_thumbnail(path: str, mode: str, longest: int = 96) -> np.ndarray | str:
    from PIL import Image

    try:
        fileio.regular_file(path, "image")
        with Image.open(path) as img:
            img.draft(mode, (longest, longest))
            img = img.convert(mode)
            img.thumbnail((longest, longest))
            px = np.asarray(img, dtype=np.uint8)
    except WorkbenchError as exc:
        return str(exc)
    except Exception as exc:  # PIL raises many types for broken files
        why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return f"cannot read image {path}: {why}"
    return px if px.ndim == 3 else px[:, :, None]
