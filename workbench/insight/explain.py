"""Why a model predicts what it does, for one validation sample: its class probabilities and a
saliency map made by Captum (never home-made attribution code).

- **Image models** (an image input and a ``Conv2d`` somewhere, also inside a Residual block
  or a torchvision backbone): Grad-CAM (``captum.attr.LayerGradCam``) on the last conv layer
  the forward pass runs, upsampled to the input with ``LayerAttribution.interpolate``
  (bilinear), negative evidence cut (ReLU) and scaled to 0..1: a heat map over the input.
- **Tables** (a 1-D input): integrated gradients (``captum.attr.IntegratedGradients``) from
  the all-zero input (after normalisation: the training part's mean) to the sample, one
  signed attribution per feature, named by the data source where it names them (CSV columns,
  scikit-learn's feature names), largest first.
- **Anything else** with real-valued inputs (an image model without convolutions, a
  sequence of vectors): integrated gradients over the input (an image-shaped input as a heat
  map of the absolute attributions, other shapes as the largest input positions). A model
  that starts from token ids (an ``Embedding``) gets ``ExplainError("no explanation for this
  model: ...")``: whole numbers cannot be varied smoothly.

The explained class is the predicted one unless ``target`` names another. Everything runs on
a private CPU copy of the model in eval mode (in-place activations turned off in the copy,
which Captum's hooks need), so a model in use elsewhere is never touched; the window runs
this on a worker thread. ``validation_predictions`` evaluates the whole validation part once
(the confusion matrix's cells as lists of samples), ``cell_samples`` lists one cell, most
confident first. Errors are ``WorkbenchError``s naming the index (``PredictError``) or what
the model lacks (``ExplainError``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from workbench.data.bundle import DataBundle
from workbench.errors import WorkbenchError
from workbench.training import predict as prediction
from workbench.training.samples import describe

GRAD_CAM = "Grad-CAM"
INTEGRATED_GRADIENTS = "integrated gradients"
IG_STEPS = 50  # integration steps (Captum's default); evaluated in batches of this many
TOP_POSITIONS = 20  # attributions listed for an input that is neither an image nor a table row
MAX_PICTURE_SIDE = 512  # the input picture (and heat map) is shrunk to at most this many pixels a side
MIN_PICTURE_SIDE = 128  # ... and a small one enlarged by a whole factor to at least this (sharp pixels, smooth map)
EVAL_BATCH = 256


class ExplainError(WorkbenchError):
    """The model or sample cannot be explained; the message says why and what would do."""


@dataclass(frozen=True)
class Explanation:
    """One sample's explanation as plain data (crosses threads; the window and the CLI draw it)."""

    index: int
    what: str  # "validation sample 12"
    prediction: prediction.Prediction  # classes by probability, the true class's name
    target: str  # the class the saliency explains (the predicted one by default)
    method: str  # GRAD_CAM or INTEGRATED_GRADIENTS
    layer: str = ""  # Grad-CAM: the conv layer, as "features.conv2 (Conv2d)"
    image: np.ndarray | None = None  # the input as uint8 pixels (H, W) or (H, W, 3), for image data
    heat: np.ndarray | None = None  # (H, W) float32 in 0..1, the same size as ``image``
    features: tuple[tuple[str, float], ...] = ()  # (name, attribution), largest magnitude first
    text: str = ""  # a table row's first values as the model sees them
    note: str = ""  # said beside the picture (e.g. "Grad-CAM is zero: no region speaks for this class")

    @property
    def predicted(self) -> str | None:
        return self.prediction.top

    @property
    def true(self) -> str | None:
        return self.prediction.true_name


# ---------------------------------------------------------------- the model

def model_for(project, weights: str | None = None, live: nn.Module | None = None) -> nn.Module:
    """The project's model with a weights file or checkpoint loaded (every key must fit;
    the error names the file), or a private copy of ``live`` (a model in use elsewhere)."""
    if weights is not None:
        return prediction.model_from_weights(project.model, weights)
    if live is None:
        raise ExplainError("no trained model: train the model or give a weights file or checkpoint")
    return copy.deepcopy(live)


def _private(model: nn.Module) -> nn.Module:
    """A CPU float32 copy in eval mode with in-place activations off (Captum's hooks see each
    layer's output, which an in-place ReLU would overwrite)."""
    net = copy.deepcopy(model).cpu().float().eval()
    for module in net.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False
    return net


class _Scores(nn.Module):
    """The model's outputs as one score per class: a single BCE logit becomes (-z, z)."""

    def __init__(self, net: nn.Module, single_logit: bool):
        super().__init__()
        self.net, self.single_logit = net, single_logit

    def forward(self, x):
        out = self.net(x)
        out = out.reshape(out.shape[0], -1)
        return torch.cat([-out, out], dim=1) if self.single_logit else out


def last_conv(model: nn.Module, x: torch.Tensor) -> tuple[str, nn.Conv2d] | None:
    """The last ``Conv2d`` the forward pass of ``x`` (one input, no batch dimension) runs,
    with its module path; None for a model without one. Found by running the model, so a
    conv inside a Residual block or a torchvision backbone counts in the order it runs."""
    names = {id(m): n for n, m in model.named_modules()}
    called: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: called.append(mod))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not hooks:
        return None
    try:
        with torch.no_grad():
            model(x.unsqueeze(0))
    finally:
        for h in hooks:
            h.remove()
    if not called:
        return None
    return names.get(id(called[-1]), "?"), called[-1]


# ---------------------------------------------------------------- one sample

def explain(model: nn.Module, bundle: DataBundle, index: int, loss: str | None = None,
            target: int | None = None) -> Explanation:
    """Class probabilities and a saliency map for validation sample ``index``; PredictError
    names an index out of range, ExplainError says why a model cannot be explained."""
    task = bundle.task
    if not task.is_classification:
        raise ExplainError("no explanation for this model: explanations are for classification (this data's "
                           "target is a number)")
    example = prediction.sample_example(bundle, index)
    answer = prediction.predict(model, example, task, loss)
    names = list(task.class_names) or [name for name, _ in answer.classes]
    explained = names.index(answer.top) if target is None else int(target)
    if not 0 <= explained < len(names):
        raise ExplainError(f"class {target} does not exist; there are {len(names)} (0 to {len(names) - 1})")
    if any(isinstance(m, nn.Embedding) for m in model.modules()):
        raise ExplainError("no explanation for this model: it starts from token ids (an Embedding), whole numbers "
                           "that integrated gradients cannot vary smoothly, and it has no image for Grad-CAM")
    loss = task.default_loss if loss in (None, "auto") else loss
    net = _private(model)
    single = loss == "BCEWithLogitsLoss" and task.output_size(loss) == 1
    scores = _Scores(net, single).eval()
    x = example.x.detach().float().cpu()
    base = dict(index=int(index), what=example.what, prediction=answer, target=names[explained], text=example.text)
    try:
        with torch.enable_grad():
            if task.is_image and x.dim() == 3:
                conv = last_conv(net, x)
                if conv is not None:
                    return _grad_cam(scores, conv, x, explained, base)
                return _image_gradients(scores, x, explained, base)
            return _feature_gradients(scores, x, explained, bundle, base)
    except RuntimeError as exc:  # the model cannot be differentiated here (an op without a gradient)
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ExplainError(f"no explanation for this model: its gradients cannot be computed ({first})") from None


def _grad_cam(scores: nn.Module, conv: tuple[str, nn.Conv2d], x: torch.Tensor, target: int,
              base: dict) -> Explanation:
    from captum.attr import LayerAttribution, LayerGradCam

    name, layer = conv
    cam = LayerGradCam(scores, layer).attribute(x.unsqueeze(0), target=target, relu_attributions=True)
    size = _picture_size(tuple(x.shape[1:]))
    heat = LayerAttribution.interpolate(cam.detach(), size, interpolate_mode="bilinear")
    heat = heat.sum(dim=1)[0]  # one map (Captum sums over the layer's channels already)
    note = ""
    if float(heat.max()) <= 0:
        note = f"Grad-CAM is zero everywhere: nothing in {name} speaks for {base['target']}"
    return Explanation(**base, method=GRAD_CAM, layer=f"{name} ({type(layer).__name__})",
                       image=_picture(x, size), heat=_unit(heat), note=note)


def _image_gradients(scores: nn.Module, x: torch.Tensor, target: int, base: dict) -> Explanation:
    attr = _integrated(scores, x, target)
    size = _picture_size(tuple(x.shape[1:]))
    heat = attr.abs().sum(dim=0, keepdim=True).unsqueeze(0)
    heat = torch.nn.functional.interpolate(heat, size=size, mode="bilinear", align_corners=False)[0, 0]
    return Explanation(**base, method=INTEGRATED_GRADIENTS, image=_picture(x, size), heat=_unit(heat),
                       note="no conv layer for Grad-CAM: integrated gradients over the input (magnitude)")


def _feature_gradients(scores: nn.Module, x: torch.Tensor, target: int, bundle: DataBundle,
                       base: dict) -> Explanation:
    attr = _integrated(scores, x, target).flatten()
    if x.dim() == 1:
        names = list(bundle.feature_names) if len(bundle.feature_names) == x.numel() else \
            [f"feature {i}" for i in range(x.numel())]
        order = sorted(range(len(names)), key=lambda i: -abs(float(attr[i])))
        features = tuple((names[i], float(attr[i])) for i in order)
        return Explanation(**base, method=INTEGRATED_GRADIENTS, features=features)
    shape = tuple(x.shape)
    order = attr.abs().argsort(descending=True)[:TOP_POSITIONS].tolist()
    features = tuple((f"x[{', '.join(map(str, np.unravel_index(i, shape)))}]", float(attr[i])) for i in order)
    return Explanation(**base, method=INTEGRATED_GRADIENTS, features=features,
                       note=f"the {len(features)} input positions with the largest attributions")


def _integrated(scores: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    inputs = x.unsqueeze(0).clone().requires_grad_(True)
    attr = IntegratedGradients(scores).attribute(inputs, baselines=torch.zeros_like(inputs), target=target,
                                                n_steps=IG_STEPS, internal_batch_size=IG_STEPS)
    return attr.detach()[0]


def _picture_size(shape: tuple[int, int]) -> tuple[int, int]:
    side = max(shape)
    if side < MIN_PICTURE_SIDE:
        factor = math.ceil(MIN_PICTURE_SIDE / max(1, side))
        return int(shape[0]) * factor, int(shape[1]) * factor
    if side <= MAX_PICTURE_SIDE:
        return int(shape[0]), int(shape[1])
    return tuple(max(1, round(s * MAX_PICTURE_SIDE / side)) for s in shape)


def _picture(x: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """The (C, H, W) input as uint8 pixels of ``size``, contrast-stretched as the evaluation
    tiles are (the normalisation undone visually)."""
    x = x.detach().float()
    if tuple(x.shape[1:]) != tuple(size):  # larger: each pixel a sharp block; smaller: averaged
        mode = "nearest" if size[0] >= x.shape[1] else "area"
        x = torch.nn.functional.interpolate(x.unsqueeze(0), size=size, mode=mode)[0]
    if x.shape[0] not in (1, 3):
        x = x.mean(dim=0, keepdim=True)
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    pixels = (x * 255).round().clamp(0, 255).to(torch.uint8)
    arr = pixels[0].numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).contiguous().numpy()
    return np.ascontiguousarray(arr)


def _unit(heat: torch.Tensor) -> np.ndarray:
    heat = heat.detach().float().clamp_min(0)
    top = float(heat.max())
    out = heat / top if top > 0 and math.isfinite(top) else torch.zeros_like(heat)
    return np.ascontiguousarray(out.numpy().astype(np.float32))


# ---------------------------------------------------------------- the whole validation part

@dataclass(frozen=True)
class ValidationPredictions:
    """Every validation sample's true class, predicted class and confidence (plain arrays)."""

    true: np.ndarray  # (N,) int64
    predicted: np.ndarray  # (N,) int64
    confidence: np.ndarray  # (N,) float32: the probability of the predicted class
    class_names: tuple[str, ...]

    def matrix(self) -> np.ndarray:
        n = len(self.class_names)
        m = np.zeros((n, n), dtype=np.int64)
        np.add.at(m, (self.true, self.predicted), 1)
        return m


def validation_predictions(model: nn.Module, bundle: DataBundle, loss: str | None = None,
                           stop: Callable[[], bool] | None = None) -> ValidationPredictions:
    """Run a private CPU copy of ``model`` over the validation part in order; ``stop()``
    returning True abandons it (ExplainError)."""
    task = bundle.task
    n = len(bundle.val) if bundle.val is not None else 0
    if not task.is_classification:
        raise ExplainError("explanations are for classification; this data's target is a number")
    if n == 0:
        raise ExplainError("there is no validation data (data.val_fraction is 0); raise it to see samples")
    loss = task.default_loss if loss in (None, "auto") else loss
    net = copy.deepcopy(model).cpu().float().eval()
    true, predicted, confidence = [], [], []
    with torch.no_grad():
        for start in range(0, n, EVAL_BATCH):
            if stop is not None and stop():
                raise ExplainError("stopped")
            items = [bundle.val_example(i) for i in range(start, min(n, start + EVAL_BATCH))]
            x = torch.stack([torch.as_tensor(xi, dtype=torch.float32) for xi, _ in items])
            out = torch.as_tensor(net(x)).float().reshape(len(items), -1)
            p = prediction.probabilities(out, loss)
            conf, pred = p.max(dim=1)
            true.extend(int(torch.as_tensor(yi)) for _, yi in items)
            predicted.extend(pred.tolist())
            confidence.extend(conf.tolist())
    names = tuple(task.class_names) or tuple(str(i) for i in range(int(max(true + predicted)) + 1))
    return ValidationPredictions(np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64),
                                 np.asarray(confidence, dtype=np.float32), names)


def cell_samples(preds: ValidationPredictions, true: int, predicted: int) -> list[int]:
    """The validation positions whose true class is ``true`` and predicted class ``predicted``,
    most confident first."""
    hits = np.flatnonzero((preds.true == true) & (preds.predicted == predicted))
    return [int(i) for i in hits[np.argsort(-preds.confidence[hits], kind="stable")]]


@dataclass(frozen=True)
class Thumbnail:
    index: int
    confidence: float
    image: np.ndarray | None  # uint8 pixels for image data
    text: str  # a table row's first values otherwise


def thumbnails(bundle: DataBundle, preds: ValidationPredictions, indices: list[int]) -> list[Thumbnail]:
    """Small pictures (or values) of the given validation samples, for a gallery page."""
    from workbench.training.samples import to_image

    out = []
    for i in indices:
        x, _ = bundle.val_example(int(i))
        x = torch.as_tensor(x, dtype=torch.float32)
        image = None
        if bundle.task.is_image:  # channels other than grey or RGB shown as their mean
            image = to_image(x if x.dim() != 3 or x.shape[0] in (1, 3) else x.mean(dim=0, keepdim=True))
        out.append(Thumbnail(int(i), float(preds.confidence[i]), image, "" if image is not None else describe(x, 4)))
    return out
