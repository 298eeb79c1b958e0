"""Augmentation pipelines: the ``torchvision.transforms.v2`` transforms a project may use, their
arguments, validation, and the transforms the image sources apply.

A pipeline is the project's ``data.augment_train`` or ``data.augment_eval``: an ordered list of
``{"type": "RandomRotation", "args": {"degrees": 15}}``. ``catalog()`` offers the transforms in
``OFFERED``; each one's arguments (``TransformKind.params``) are read from its constructor's
signature (names, defaults, required ones) and docstring (help, through
``workbench.model.signatures``), typed by the ``ARGS`` table by argument name (what an annotation
like ``Union[int, Sequence[int], None]`` cannot say plainly), with ``OVER`` for the few arguments
whose bounds depend on the transform. ``LEFT_OUT_ARGS`` names the arguments never offered.

``Pipeline(steps, where)`` checks every step (an unknown type or argument, a value out of
bounds, what torchvision's own constructor refuses, a colour step after Normalize, Normalize in
one pipeline only) and raises a ``WorkbenchError`` naming the step:
``data.augment_train[2] (RandomRotation): degrees must be ...``. Calling it applies the steps
in order to one image tensor (C, H, W); a step that cannot apply to the image (ColorJitter hue
on one channel, a Normalize with another channel count) is named the same way.
``workbench.data.bundle`` runs both pipelines on one example when the data loads, so these
errors come when the project is checked, not in the middle of a run.

What a pipeline sees: an image source read file by file gives 8-bit tensors (after its resize
to data.image_size and greyscale conversion; ``image_transforms``); an in-memory image source
(digits, MNIST) gives float tensors scaled to 0..1 (``PerExample``). After the pipeline the
image becomes float 0..1 and data.normalize's statistics apply, unless the pipeline holds its
own Normalize (then it must be in both pipelines). Random draws come from torch's global
generator, so a run resumed with num_workers=0 draws what the uninterrupted run drew.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch

from workbench.errors import WorkbenchError
from workbench.model.params import REQUIRED, Param, shown
from workbench.model.signatures import arg_help, summary
from workbench.project.settings import DataSettings

# (type, category) of every transform offered, in the order the window lists them
OFFERED = (
    ("Resize", "size and crops"), ("RandomResizedCrop", "size and crops"), ("CenterCrop", "size and crops"),
    ("RandomCrop", "size and crops"), ("Pad", "size and crops"),
    ("RandomHorizontalFlip", "flips and geometry"), ("RandomVerticalFlip", "flips and geometry"),
    ("RandomRotation", "flips and geometry"), ("RandomAffine", "flips and geometry"),
    ("RandomPerspective", "flips and geometry"), ("ElasticTransform", "flips and geometry"),
    ("ColorJitter", "colour"), ("Grayscale", "colour"), ("RandomGrayscale", "colour"),
    ("RandomInvert", "colour"), ("RandomPosterize", "colour"), ("RandomSolarize", "colour"),
    ("RandomAdjustSharpness", "colour"), ("RandomAutocontrast", "colour"), ("RandomEqualize", "colour"),
    ("GaussianBlur", "blur and noise"), ("GaussianNoise", "blur and noise"),
    ("RandAugment", "automatic policies"), ("TrivialAugmentWide", "automatic policies"),
    ("AutoAugment", "automatic policies"), ("AugMix", "automatic policies"),
    ("RandomErasing", "erasing and normalisation"), ("Normalize", "erasing and normalisation"),
)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
# Constructor arguments never offered, and why (a test checks each kind's arguments are its constructor's less these).
LEFT_OUT_ARGS = {
    "inplace": "the pipeline works on copies",
    "antialias": "resizing always antialiases (torchvision's default)",
    "center": "rotations turn about the image's centre",
    "max_size": "images have one size (data.image_size)",
}
# How an argument is typed, by name (bounds that hold wherever the name appears)
ARGS: dict[str, dict[str, Any]] = {
    "size": {"kind": "ints", "dims": 2, "min": 1},
    "kernel_size": {"kind": "ints", "dims": 2, "min": 1},
    "padding": {"kind": "int", "min": 0},
    "interpolation": {"kind": "choice", "choices": INTERPOLATIONS},
    "padding_mode": {"kind": "choice", "choices": ("constant", "edge", "reflect", "symmetric")},
    "policy": {"kind": "choice", "choices": ("imagenet", "cifar10", "svhn")},
    "p": {"kind": "float", "min": 0.0, "max": 1.0},
    "degrees": {"kind": "floats", "dims": 2},
    "translate": {"kind": "floats", "dims": 2, "min": 0.0, "max": 1.0},
    "scale": {"kind": "floats", "dims": 2, "min": 0.0},
    "ratio": {"kind": "floats", "dims": 2, "min": 1e-6},
    "shear": {"kind": "floats", "dims": 0},
    "fill": {"kind": "floats", "dims": 0},
    "brightness": {"kind": "floats", "dims": 2, "min": 0.0},
    "contrast": {"kind": "floats", "dims": 2, "min": 0.0},
    "saturation": {"kind": "floats", "dims": 2, "min": 0.0},
    "hue": {"kind": "floats", "dims": 2, "min": -0.5, "max": 0.5},
    "sigma": {"kind": "floats", "dims": 2, "min": 0.0},
    "alpha": {"kind": "floats", "dims": 2, "min": 0.0},
    "mean": {"kind": "floats", "dims": 0},
    "std": {"kind": "floats", "dims": 0, "min": 1e-12},
    "value": {"kind": "float"},
    "expand": {"kind": "bool"}, "pad_if_needed": {"kind": "bool"}, "clip": {"kind": "bool"},
    "all_ops": {"kind": "bool"},
    "num_ops": {"kind": "int", "min": 0, "max": 100}, "magnitude": {"kind": "int", "min": 0},
    "num_magnitude_bins": {"kind": "int", "min": 2, "max": 1000},
    "num_output_channels": {"kind": "choice", "choices": (1, 3)},
    "distortion_scale": {"kind": "float", "min": 0.0, "max": 1.0},
    "bits": {"kind": "int", "min": 0, "max": 8}, "threshold": {"kind": "float"},
    "sharpness_factor": {"kind": "float", "min": 0.0},
    "severity": {"kind": "int", "min": 1, "max": 10}, "mixture_width": {"kind": "int", "min": 1, "max": 10},
    "chain_depth": {"kind": "int", "min": -1, "max": 10},
}
# (type, argument) -> Param fields that differ from ARGS for that transform
OVER: dict[tuple[str, str], dict[str, Any]] = {
    ("RandomResizedCrop", "scale"): {"max": 1.0},
    ("RandomErasing", "scale"): {"max": 1.0},
    ("RandomAffine", "scale"): {"min": 1e-6},
    ("GaussianNoise", "mean"): {"kind": "float"},
    ("GaussianNoise", "sigma"): {"kind": "float"},
    ("ElasticTransform", "alpha"): {"kind": "floats", "dims": 0},
    ("ElasticTransform", "sigma"): {"kind": "floats", "dims": 0},
    ("AugMix", "alpha"): {"kind": "float"},
    ("RandomSolarize", "threshold"): {"min": 0.0},
}
# steps whose results assume pixel values of 0..1 (or 0..255): refused after a Normalize
PIXEL_STEPS = frozenset({"ColorJitter", "RandAugment", "TrivialAugmentWide", "AutoAugment", "AugMix",
                         "RandomPosterize", "RandomSolarize", "RandomEqualize", "RandomAutocontrast", "RandomInvert",
                         "RandomAdjustSharpness"})


@dataclass(frozen=True)
class TransformKind:
    """One transform offered: its type name, category, one-line help and arguments."""

    name: str
    category: str
    help: str
    params: tuple[Param, ...]
    factory: Callable[..., Any]

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def build(self, args: dict[str, Any]):
        """The torchvision transform for checked ``args`` (choices turned into torchvision's types)."""
        kwargs = dict(args)
        if "policy" in kwargs:
            from torchvision.transforms import AutoAugmentPolicy
            kwargs["policy"] = AutoAugmentPolicy(kwargs["policy"])
        if "interpolation" in kwargs:
            from torchvision.transforms import InterpolationMode
            kwargs["interpolation"] = InterpolationMode(kwargs["interpolation"])
        for name in ("size", "kernel_size"):  # an int, or [height, width]
            if isinstance(kwargs.get(name), tuple):
                kwargs[name] = list(kwargs[name])
        return self.factory(**kwargs)


def _params(name: str, cls: type) -> tuple[Param, ...]:
    helps = arg_help(cls)
    out = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in LEFT_OUT_ARGS:
            continue
        fields = dict(ARGS.get(p.name, {"kind": "str"}))
        fields.update(OVER.get((name, p.name), {}))
        default = REQUIRED if p.default is inspect.Parameter.empty else p.default
        if isinstance(default, tuple):
            default = list(default)
        if hasattr(default, "value") and not isinstance(default, (int, float)):  # an enum: its text
            default = default.value
        fields["default"] = default
        fields["nullable"] = default is None
        fields["help"] = helps.get(p.name) or f"{p.name.replace('_', ' ')} (see the torchvision documentation)"
        out.append(Param(p.name, **fields))
    return tuple(out)


@functools.cache
def catalog() -> dict[str, TransformKind]:
    """Every transform offered, by type name (built once, on first use)."""
    from torchvision.transforms import v2

    out = {}
    for name, category in OFFERED:
        cls = getattr(v2, name)
        out[name] = TransformKind(name, category, summary(cls).replace("torch.nn.", "v2."), _params(name, cls), cls)
    return out


def names() -> list[str]:
    return [name for name, _ in OFFERED]


def step_label(where: str, index: int, step: Any) -> str:
    kind = step.get("type") if isinstance(step, dict) else None
    return f"{where}[{index}]" + (f" ({kind})" if isinstance(kind, str) else "")


def check_step(step: Any, where: str, index: int) -> tuple[TransformKind, dict[str, Any]]:
    """The kind and checked arguments of one step, or a WorkbenchError naming the step and argument."""
    label = step_label(where, index, step)
    if not isinstance(step, dict) or not isinstance(step.get("type"), str):
        raise WorkbenchError(f"{label}: a step must be an object like {{\"type\": \"RandomRotation\", "
                             f"\"args\": {{\"degrees\": 15}}}}, got {shown(step)}")
    kind = catalog().get(step["type"])
    if kind is None:
        raise WorkbenchError(f"{label}: unknown transform {shown(step['type'])}; offered: {', '.join(names())}")
    extra = sorted(set(step) - {"type", "args"})
    if extra:
        raise WorkbenchError(f"{label}: unknown key {extra[0]!r} (a step holds type and args)")
    given = step.get("args", {}) or {}
    if not isinstance(given, dict):
        raise WorkbenchError(f"{label}: args must be an object of argument: value, got {shown(given)}")
    known = [p.name for p in kind.params]
    for name in given:
        if name not in known:
            why = f" ({LEFT_OUT_ARGS[name]})" if name in LEFT_OUT_ARGS else ""
            takes = ", ".join(known) if known else "no arguments"
            raise WorkbenchError(f"{label}: unknown argument {name!r}{why}; {kind.name} takes {takes}")
    args: dict[str, Any] = {}
    for p in kind.params:
        if p.name not in given:
            if p.required:
                raise WorkbenchError(f"{label}: {p.name} is required ({p.help})")
            continue
        value, err = p.check(given[p.name])
        if err:
            raise WorkbenchError(f"{label}: {err}")
        args[p.name] = value
    try:
        kind.build(args)
    except (ValueError, TypeError) as exc:  # torchvision's own checks (odd kernel sizes, ranges)
        raise WorkbenchError(f"{label}: {exc}") from None
    return kind, args


class Pipeline:
    """A checked pipeline; calling it applies the steps in order to one image tensor (C, H, W)."""

    def __init__(self, steps: list, where: str):
        if not isinstance(steps, list):
            raise WorkbenchError(f"{where}: must be a list of steps, got {shown(steps)}")
        self.where = where
        self.steps: list[tuple[str, TransformKind, Callable]] = []
        self.normalize_at: int | None = None
        for i, step in enumerate(steps):
            kind, args = check_step(step, where, i)
            label = step_label(where, i, step)
            if kind.name in PIXEL_STEPS and self.normalize_at is not None:
                raise WorkbenchError(f"{label}: comes after Normalize ({where}[{self.normalize_at}]); it expects "
                                     "pixel values of 0 to 1, which Normalize has shifted; move it before Normalize")
            if kind.name == "Normalize" and self.normalize_at is None:
                self.normalize_at = i
            self.steps.append((label, kind, kind.build(args)))
        self.normalize = next((t for _, k, t in self.steps if k.name == "Normalize"), None)

    def __len__(self) -> int:
        return len(self.steps)

    def compose(self):
        """The steps as one ``v2.Compose`` (without the checks ``__call__`` makes)."""
        from torchvision.transforms import v2
        return v2.Compose([t for _, _, t in self.steps])

    def __call__(self, x):
        for label, kind, transform in self.steps:
            channels = x.shape[-3] if isinstance(x, torch.Tensor) and x.dim() >= 3 else None
            if channels == 1 and kind.name == "ColorJitter" and (transform.hue or transform.saturation):
                what = "hue" if transform.hue else "saturation"
                raise WorkbenchError(f"{label}: {what} needs colour images but these have 1 channel "
                                     f"(data.grayscale or a greyscale source); remove {what} or the step")
            if kind.name == "Normalize":
                if isinstance(x, torch.Tensor) and not x.is_floating_point():
                    from torchvision.transforms import v2
                    x = v2.functional.to_dtype(x, torch.float32, scale=True)
                n = len(transform.mean)
                if channels is not None and n not in (1, channels) or len(transform.std) != n:
                    raise WorkbenchError(f"{label}: mean and std need one value per channel ({channels}), "
                                         f"got {n} and {len(transform.std)}")
            try:
                x = transform(x)
            except WorkbenchError:
                raise
            except Exception as exc:  # torchvision raises many types for an image it cannot take
                raise WorkbenchError(f"{label}: cannot apply to {describe(x)}: {exc}") from None
        return x


def describe(x) -> str:
    if isinstance(x, torch.Tensor):
        shape = "x".join(str(s) for s in x.shape)
        return f"a {shape} {str(x.dtype).replace('torch.', '')} image"
    return f"a {type(x).__name__}"


def pipelines(settings: DataSettings) -> tuple[Pipeline, Pipeline]:
    """The checked train and eval pipelines; Normalize must be in both or in neither."""
    train = Pipeline(settings.augment_train, "data.augment_train")
    ev = Pipeline(settings.augment_eval, "data.augment_eval")
    for a, b in ((train, ev), (ev, train)):
        if a.normalize_at is not None and b.normalize_at is None:
            raise WorkbenchError(f"{b.where}: {a.where}[{a.normalize_at}] normalises but this pipeline does not; "
                                 f"add the same Normalize to {b.where} so both splits are scaled alike")
    return train, ev


def normalize_stats(pipeline: Pipeline) -> dict:
    """The statistics of a pipeline's own Normalize, as ``DataBundle.stats`` holds them."""
    t = pipeline.normalize
    return {} if t is None else {"mean": list(t.mean), "std": list(t.std)}


# ---------------------------------------------------------------- what the sources apply

def image_head(size: tuple[int, int], channels: int) -> list:
    """An image read from a file (PIL or a decoded tensor) to the project's size and channels."""
    from torchvision.transforms import v2

    head = [v2.Resize(list(size), antialias=True)]
    if channels == 1:
        head.append(v2.Grayscale(1))
    return head + [v2.ToImage()]


def image_transforms(size: tuple[int, int], channels: int, settings: DataSettings, mean, std):
    """(train transform, validation transform, statistics) of an image source read file by file:
    resize and greyscale, the pipeline on 8-bit images, then float 0..1 and normalisation (the
    pipeline's own Normalize, else ``mean`` / ``std`` when data.normalize)."""
    train, ev = pipelines(settings)
    own = train.normalize_at is not None
    stats = normalize_stats(train) if own else ({"mean": list(mean), "std": list(std)} if settings.normalize else {})
    norm = (list(mean), list(std)) if settings.normalize and not own else None
    return FileImage(size, channels, train, norm), FileImage(size, channels, ev, norm), stats


class FileImage:
    """One image read from a file (PIL or a uint8 tensor) to the model's input: resize (antialiased),
    greyscale, 8-bit image, the pipeline, float 0..1, normalise, as ``image_head`` + the pipeline +
    ``v2.ToDtype`` + ``v2.Normalize`` in a ``v2.Compose`` would, with the fixed steps called as v2's
    functional kernels: as transforms, their per-call input flattening made a 64x64 JPEG's read
    about a quarter slower than a plain ToTensor pipeline (bench_image_throughput)."""

    def __init__(self, size: tuple[int, int], channels: int, pipeline: "Pipeline", norm: tuple | None):
        self.size, self.channels, self.pipeline, self.norm = list(size), channels, pipeline, norm
        # With no pipeline steps, a PIL image already in the source's mode goes to a tensor in a
        # few torch calls (as ToTensor + Normalize do), with the same numbers as the steps below.
        self._direct_mode = None if len(pipeline) else ("L" if channels == 1 else "RGB")
        self._mean = self._std = None
        if norm is not None and all(norm[1]):  # a zero std is left to v2's own error
            self._mean = torch.as_tensor(norm[0], dtype=torch.float32).view(-1, 1, 1)
            self._std = torch.as_tensor(norm[1], dtype=torch.float32).view(-1, 1, 1)
        elif norm is not None:
            self._direct_mode = None

    def __call__(self, img) -> torch.Tensor:
        from PIL import Image
        from torchvision.transforms.v2 import functional as F

        if self._direct_mode is not None and isinstance(img, Image.Image) and img.mode == self._direct_mode:
            return self._direct(img)
        img = F.resize(img, self.size, antialias=True)
        if self.channels == 1:
            img = F.rgb_to_grayscale(img, num_output_channels=1)  # PIL or tensor, as v2.Grayscale(1)
        x = F.to_image(img)
        if len(self.pipeline):
            x = self.pipeline(x)
        x = F.to_dtype(x, torch.float32, scale=True)
        if self.norm is not None:
            x = F.normalize(x, *self.norm)
        return x.as_subclass(torch.Tensor)

    def _direct(self, img) -> torch.Tensor:
        """A PIL image in the source's mode, with no pipeline: resized only when its size differs
        (PIL's resize to the same size is a copy), 8-bit to float 0..1 as ``v2.ToDtype(scale=True)``
        does (``mul_(1 / 255)``), then ``(x - mean) / std`` as ``v2.Normalize`` does."""
        import numpy as np
        from torchvision.transforms.v2 import functional as F

        height, width = self.size
        if img.size != (width, height):
            img = F.resize(img, self.size, antialias=True)
        x = torch.from_numpy(np.array(img, copy=True)).view(height, width, -1).permute(2, 0, 1).contiguous()
        x = x.to(torch.float32).mul_(1.0 / 255)
        if self._mean is not None:
            x.sub_(self._mean).div_(self._std)
        return x

    def __repr__(self) -> str:
        return f"FileImage(size={self.size}, channels={self.channels}, steps={len(self.pipeline)}, norm={self.norm})"


class PerExample:
    """A pipeline over a batch of in-memory images (B, C, H, W) scaled so that ``pixel_max`` is
    white: each example drawn on its own (v2 would share one draw over a batch), on 0..1 values,
    then put back in the source's units and normalised with ``mean`` / ``std`` (shape (1, C, 1, 1)
    or None)."""

    def __init__(self, pipeline: Pipeline, pixel_max: float, mean: torch.Tensor | None, std: torch.Tensor | None):
        self.pipeline, self.pixel_max, self.mean, self.std = pipeline, pixel_max, mean, std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import v2

        out = []
        for xi in x:
            y = self.pipeline(xi / self.pixel_max)
            y = v2.functional.to_dtype(torch.as_tensor(y), torch.float32, scale=True).as_subclass(torch.Tensor)
            out.append(y)
        batch = torch.stack(out)
        if self.pipeline.normalize_at is not None or self.mean is None:
            return batch if self.pipeline.normalize_at is not None else batch * self.pixel_max
        batch = batch * self.pixel_max
        mean, std = self.mean, self.std
        if mean.shape[1] != batch.shape[1]:  # the pipeline changed the channels (Grayscale)
            mean, std = mean.mean(), std.mean()
        return (batch - mean) / std


def input_shape(train, val) -> tuple[int, ...] | None:
    """Run the pipelines on the first training and validation examples (as the data loads, so a
    step that cannot apply is named before training) and return the input shape they give; a
    mismatch between them is an error. torch's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        shapes = {}
        for name, ds in (("data.augment_train", train), ("data.augment_eval", val)):
            if ds is not None and len(ds):
                shapes[name] = tuple(ds[0][0].shape)
    if len(set(shapes.values())) > 1:
        (a, sa), (b, sb) = shapes.items()
        raise WorkbenchError(f"{a} gives {_fmt(sa)} images but {b} gives {_fmt(sb)}; the model takes one shape: "
                             "end both pipelines with the same size (e.g. Resize or CenterCrop)")
    return next(iter(shapes.values()), None)


def _fmt(shape) -> str:
    return "x".join(str(s) for s in shape)


# ---------------------------------------------------------------- preview

def preview_input(source, index: int = 0) -> torch.Tensor:
    """One example of a source as its pipelines see it (8-bit for a file source, 0..1 floats for
    an in-memory one)."""
    if not source.is_image:
        raise WorkbenchError(f"{source.name} holds tables, not images; augmentation applies to images")
    index = max(0, min(index, source.size - 1))
    if hasattr(source, "base"):  # a LazySource (read file by file; the sources import this module)
        from torchvision.transforms import v2
        x = source.base[index][0]
        channels, *size = source.input_shape
        return v2.Compose(image_head(tuple(size), channels))(x).as_subclass(torch.Tensor)
    return source.x[index] / float(getattr(source, "pixel_max", 1.0))


def draws(steps: list, x: torch.Tensor, n: int = 8, seed: int = 0, where: str = "data.augment_train") -> list:
    """``n`` draws of a pipeline on one example, as float 0..1 images for display (a normalised one
    stretched to its own range); the same seeds every time, so an edit's effect can be compared."""
    from torchvision.transforms import v2

    pipeline = Pipeline(steps, where)
    out = []
    with torch.random.fork_rng(devices=[]):
        for k in range(n):
            torch.manual_seed(seed * 1000 + k)
            y = v2.functional.to_dtype(torch.as_tensor(pipeline(x.clone())), torch.float32, scale=True)
            y = y.as_subclass(torch.Tensor)
            if y.min() < 0 or y.max() > 1:
                y = (y - y.min()) / (y.max() - y.min()).clamp_min(1e-12)
            out.append(y)
    return out



# starting values of the arguments a transform requires (size-like ones come from the image)
STARTING: dict[str, dict[str, Any]] = {
    "RandomRotation": {"degrees": 15}, "RandomAffine": {"degrees": 10, "translate": [0.1, 0.1]},
    "Pad": {"padding": 2}, "RandomPosterize": {"bits": 4}, "RandomSolarize": {"threshold": 0.5},
    "RandomAdjustSharpness": {"sharpness_factor": 2.0}, "GaussianBlur": {"kernel_size": 3},
    "ColorJitter": {"brightness": 0.2, "contrast": 0.2},
}


def new_step(name: str, size: tuple[int, int] | None = None, channels: int = 3) -> dict:
    """A step of ``name`` with starting values for what it requires: ``size`` arguments the
    image's own (height, width), crops three quarters of it, Normalize 0.5 per channel."""
    kind = catalog()[name]
    args = dict(STARTING.get(name, {}))
    if "size" in {p.name for p in kind.params if p.required}:
        h, w = size or (32, 32)
        args["size"] = [max(1, h * 3 // 4), max(1, w * 3 // 4)] if name in ("CenterCrop", "RandomCrop") else [h, w]
    if name == "Normalize":
        args = {"mean": [0.5] * channels, "std": [0.5] * channels}
    return {"type": name, "args": args} if args else {"type": name}


def step_text(step: dict) -> str:
    """One line for a step: 'RandomRotation  degrees=15, fill=0'."""
    args = step.get("args") or {}
    shown_args = ", ".join(f"{k}={_short(v)}" for k, v in args.items())
    return f"{step.get('type')}  {shown_args}".rstrip()


def _short(value) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)
