"""Prediction for one example: an image file, a pasted table row or a validation sample made
into a model input exactly as the data source makes its validation inputs, and the model's
answer for it (class probabilities, or the value of a regression).

- ``image_example(bundle, path)``: the file opened with PIL (never trusted: a FIFO, a folder, a
  corrupt or non-image file is a ``PredictError`` naming it), converted to the model input's
  channels (greyscale or RGB) and size. A source read file by file (image folders, FakeData)
  applies its own validation transform (``DataBundle.image_transform``); an in-memory image
  source (digits, MNIST) scales the pixels to its range (``DataBundle.pixel_max``: white is 16
  for scikit-learn's digits) and normalises with the training part's statistics.
- ``row_example(bundle, text)``: numbers separated by commas, semicolons, tabs or spaces, as
  many as the input holds (the features, without the target column), scaled with the
  training part's statistics as the source scales its own rows.
- ``sample_example(bundle, index)``: the validation example at ``index`` (already prepared),
  with its true label.
- ``predict(model, example, task, loss)``: a private copy of the model in eval mode under
  ``torch.no_grad``; probabilities as the loss reads the outputs (softmax, exp of
  log-probabilities, sigmoid for one BCE logit), every class named.
- ``model_from_weights(spec, path)``: the project's model with a weights file or checkpoint
  loaded through ``workbench.model.weights`` (weights-only, key by key).

Everything here runs on a worker thread in the window; it touches no widget and returns plain
data.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench import fileio
from workbench.data.bundle import DataBundle, Task
from workbench.errors import WorkbenchError
from workbench.model import build, weights as weights_files
from workbench.model.shapes import fmt
from workbench.model import spec as spec_module
from workbench.model.spec import ModelSpec
from workbench.training.samples import describe, to_image

SEPARATORS = re.compile(r"[,;\s]+")
MAX_IMAGE_PIXELS = 50_000_000  # a larger image is refused before it is decoded (a decompression bomb)


class PredictError(WorkbenchError):
    """An input the model cannot be asked about; the message names the file, position or index."""


@dataclass(frozen=True)
class Example:
    """One model input, prepared as the data source prepares validation inputs."""

    x: torch.Tensor  # the input without the batch dimension, float32
    what: str  # for people: "digit.png", "the pasted row", "validation sample 12"
    true: int | float | None = None  # the class index (classification) or value (regression), when known
    image: np.ndarray | None = None  # a small uint8 picture of the input (image data), for display
    text: str = ""  # a validation row's first values as the model sees them (scaled), for display


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one example, as plain data."""

    what: str
    classes: tuple[tuple[str, float], ...]  # (class name, probability) for every class, most probable first
    value: float | None = None  # a regression's predicted value (then ``classes`` is empty)
    true_name: str | None = None  # the true class's name, or the true value as text, when known
    image: np.ndarray | None = None
    text: str = ""

    @property
    def top(self) -> str | None:
        return self.classes[0][0] if self.classes else None


# ---------------------------------------------------------------- inputs

def image_example(bundle: DataBundle, path: str | Path) -> Example:
    """An image file as the model's input; PredictError names the file when it cannot be."""
    from PIL import Image, UnidentifiedImageError

    task = bundle.task
    path = Path(path).expanduser()
    shape = tuple(task.input_shape)
    if not (task.is_image and len(shape) == 3 and shape[0] in (1, 3)):
        raise PredictError(f"{path.name}: this model takes {fmt(shape)} values, not an image; paste a table "
                           "row instead")
    if not fileio.exists(path):
        raise PredictError(f"{path}: no such file; choose an image file (PNG, JPEG, ...)")
    try:
        fileio.regular_file(path, "image")  # a FIFO would block the open forever
    except WorkbenchError as exc:
        raise PredictError(str(exc)) from None
    mode = "L" if shape[0] == 1 else "RGB"
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise PredictError(f"{path.name}: {w}x{h} pixels is too large to read here (at most "
                                   f"{MAX_IMAGE_PIXELS:,}); scale it down first")
            img.load()
            picture = img.convert(mode)
    except PredictError:
        raise
    except UnidentifiedImageError:
        raise PredictError(f"{path.name}: not an image file PIL can read; open a PNG, JPEG, BMP, ... "
                           "image") from None
    except Exception as exc:  # PIL raises many types for truncated or corrupt files
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise PredictError(f"{path.name}: the image is damaged or incomplete ({reason}); open another "
                           "file") from None
    if bundle.image_transform is not None:
        x = bundle.image_transform(picture)
    else:
        from torchvision import transforms as T

        x = T.Compose([T.Resize(shape[1:]), T.ToTensor()])(picture) * bundle.pixel_max
        x = _normalised(x, bundle)
    x = torch.as_tensor(x, dtype=torch.float32)
    if tuple(x.shape) != shape:
        raise PredictError(f"{path.name}: became {fmt(tuple(x.shape))} after the data's transforms, but the "
                           f"model takes {fmt(shape)}; check the project's image size")
    return Example(x, path.name, image=to_image(x))


def row_example(bundle: DataBundle, text: str) -> Example:
    """A pasted row of numbers as the model's input; PredictError names a value that is not a
    number by its position, or says how many values were expected and how many came."""
    task = bundle.task
    shape = tuple(task.input_shape)
    want = math.prod(shape)
    tokens = [t for t in SEPARATORS.split(text.strip()) if t]
    if not tokens:
        raise PredictError(f"the row is empty; paste {want} numbers separated by commas, tabs or spaces")
    values = []
    for position, token in enumerate(tokens, 1):
        try:
            v = float(token)
        except ValueError:
            raise PredictError(f"value {position} of the row ({_shown(token)}) is not a number") from None
        if not math.isfinite(v) or abs(v) > float(torch.finfo(torch.float32).max):
            raise PredictError(f"value {position} of the row ({_shown(token)}) is not a finite number")
        values.append(v)
    if len(values) != want:
        what = "the features, without the target column" if len(shape) == 1 else f"an input of {fmt(shape)}"
        raise PredictError(f"the row has {len(values)} values but the model expects {want} ({what})")
    if bundle.image_transform is not None:
        raise PredictError("this data is read from image files; open or drop an image instead of a row")
    x = _normalised(torch.tensor(values, dtype=torch.float32).reshape(shape), bundle)
    return Example(x, "the pasted row", image=to_image(x) if task.is_image else None)


def sample_example(bundle: DataBundle, index: int) -> Example:
    """The validation example at ``index`` with its true label; PredictError names an index
    out of range."""
    n = len(bundle.val) if bundle.val is not None else 0
    if n == 0:
        raise PredictError("there is no validation data (data.val_fraction is 0); raise it to pick samples")
    if not 0 <= int(index) < n:
        raise PredictError(f"validation sample {index} does not exist; there are {n} (0 to {n - 1})")
    x, y = bundle.val_example(int(index))
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y)
    true = int(y) if bundle.task.is_classification else float(y.flatten()[0])
    image = to_image(x) if bundle.task.is_image else None
    return Example(x, f"validation sample {index}", true, image, "" if image is not None else describe(x, 6))


def _normalised(x: torch.Tensor, bundle: DataBundle) -> torch.Tensor:
    """Scale as the source scaled its training inputs (the training part's mean and std)."""
    stats = bundle.stats or {}
    if "mean" not in stats or "std" not in stats:
        return x
    mean = torch.tensor(stats["mean"], dtype=torch.float32)
    std = torch.tensor(stats["std"], dtype=torch.float32)
    if mean.numel() == x.numel():  # one per feature
        mean, std = mean.reshape(x.shape), std.reshape(x.shape)
    elif x.dim() == 3 and mean.numel() == x.shape[0]:  # one per channel
        mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
    elif mean.numel() != 1:
        return x
    return (x - mean) / std


def _shown(token: str) -> str:
    return repr(token if len(token) <= 20 else token[:20] + "...")


# ---------------------------------------------------------------- the model

def predict(model: nn.Module, example: Example, task: Task, loss: str | None = None) -> Prediction:
    """Run a private copy of ``model`` in eval mode on ``example``; the classes by probability.
    ``loss`` is the training loss ("auto" or None: the data's default), which says how to read
    the outputs."""
    loss = task.default_loss if loss in (None, "auto") else loss
    net = copy.deepcopy(model)  # the caller's model keeps its mode; nothing reads it while this runs
    net.eval()
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            out = net(example.x.unsqueeze(0).to(device))
    except RuntimeError as exc:
        raise PredictError(f"the model cannot run on {example.what}: {str(exc).splitlines()[0][:200]}") from None
    out = torch.as_tensor(out).detach().float().cpu().reshape(1, -1)
    if not task.is_classification:
        true = None if example.true is None else f"{float(example.true):.4g}"
        return Prediction(example.what, (), float(out[0, 0]), true, example.image, example.text)
    probs = probabilities(out, loss)[0].tolist()
    names = list(task.class_names) or [str(i) for i in range(len(probs))]
    if len(names) != len(probs):  # the model does not fit the data (the training panel says how)
        raise PredictError(f"the model outputs {len(probs)} values but the data has {len(names)} classes; "
                           "fix the model's last layer and train again")
    ranked = tuple(sorted(zip(names, probs), key=lambda item: -item[1]))
    true = None if example.true is None else names[int(example.true)]
    return Prediction(example.what, ranked, None, true, example.image, example.text)


def probabilities(out: torch.Tensor, loss: str) -> torch.Tensor:
    """Each class's probability for each output row, read as the loss reads the outputs
    (the same reading as ``optim.predict``)."""
    out = out.float()
    if loss == "BCEWithLogitsLoss" and out.shape[1] == 1:
        p1 = torch.sigmoid(out[:, 0])
        return torch.stack([1 - p1, p1], dim=1)
    if loss == "NLLLoss":
        p = out.exp()
        return p / p.sum(dim=1, keepdim=True).clamp_min(1e-12)
    if loss == "BCEWithLogitsLoss":
        p = torch.sigmoid(out)
        return p / p.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.softmax(out, dim=1)


def model_from_weights(spec: ModelSpec, path: str | Path) -> nn.Module:
    """The project's model holding a weights file's or checkpoint's tensors (every key must
    fit); WorkbenchError names the file and what does not fit."""
    model = build.build_model(spec)
    weights_files.load_into(model, path)
    return model


def weights_key(spec: ModelSpec) -> str:
    """What trained weights fit (``spec.weights_key``): a loaded file stays usable after a freeze."""
    return spec_module.weights_key(spec)
