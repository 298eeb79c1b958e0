"""Validation samples with predicted and true labels, gathered in the engine thread.

``collect`` runs right after an epoch's validation (the engine hands its EpochEvent to the
handlers there, with the model idle in eval mode; ``SampleCollector`` is that handler): it
reads the picks' predictions from that pass (``engine.last_validation``), predicting them
again only where the pass has none (several processes, a split that changed size), and
returns plain data only: small uint8 images (or a short text for table rows), labels and
confidences, worst mistakes first. The window draws it; no tensor and no Qt object crosses
the thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from workbench.training import events as ev
from workbench.training import optim

MAX_SIDE = 96  # images are shrunk to at most this many pixels a side before they cross threads


@dataclass
class Sample:
    index: int  # position in the validation set
    true: int
    predicted: int
    confidence: float  # probability the model gives its prediction
    image: np.ndarray | None  # HxW or HxWx3 uint8, for image data
    text: str = ""  # for other data: the first input values

    @property
    def wrong(self) -> bool:
        return self.true != self.predicted


@dataclass
class SampleGrid:
    epoch: int
    class_names: list[str]
    samples: list[Sample]  # wrong ones first (most confident first), then right ones (least sure first)


def pick_indices(size: int, n: int, exclude: set[int]) -> list[int]:
    """``n`` validation positions spread evenly over the set (the same every epoch)."""
    if size <= 0 or n <= 0:
        return []
    spread = np.unique(np.linspace(0, size - 1, num=min(size, n + len(exclude))).round().astype(int))
    return [int(i) for i in spread if int(i) not in exclude][:n]


def order(samples: list[Sample]) -> list[Sample]:
    wrong = sorted((s for s in samples if s.wrong), key=lambda s: -s.confidence)
    right = sorted((s for s in samples if not s.wrong), key=lambda s: s.confidence)
    return wrong + right


def collect(engine, event: ev.EpochEvent, n: int = 12) -> SampleGrid | None:
    """Evaluate ``n`` samples (the epoch's worst mistakes plus evenly spread ones)."""
    task, bundle = engine.task, engine.data
    if task is None or bundle is None or bundle.val is None or not task.is_classification:
        return None
    mistakes = {m.index: m for m in event.mistakes}
    picks = list(mistakes)[:n] + pick_indices(len(bundle.val), n - min(n, len(mistakes)), set(mistakes))
    if not picks:
        return None
    examples = [bundle.val_example(i) for i in picks]
    seen = engine.last_validation
    if seen is not None and seen.predicted is not None and len(seen.predicted) == len(bundle.val):
        # the epoch's validation pass predicted every example already: the same verdicts, no second forward
        pred, conf = seen.predicted[picks].tolist(), seen.confidence[picks].float().tolist()
    else:
        x = torch.stack([torch.as_tensor(e[0]) for e in examples])
        runner = engine.runner
        with torch.no_grad(), runner.autocast():
            out = runner.model(x.to(engine.device))
        pred, conf = optim.predict(out, engine.loss_name)
        conf, pred = conf.float().cpu().tolist(), pred.cpu().tolist()
    samples = []
    for i, (idx, (xi, yi)) in enumerate(zip(picks, examples)):
        image, text = (to_image(xi), "") if task.is_image else (None, describe(xi))
        samples.append(Sample(idx, int(yi), int(pred[i]), float(conf[i]), image, text))
    return SampleGrid(event.epoch, list(task.class_names), order(samples))


class SampleCollector(ev.Handler):
    """The engine handler: after each epoch, ``deliver(epoch_event, grid)`` in the engine
    thread (``grid`` is None where there is nothing to show: no validation split, regression)."""

    def __init__(self, deliver: Callable[[ev.EpochEvent, SampleGrid | None], None], n: int = 12):
        self.deliver, self.n = deliver, n

    def on_event(self, engine, event: ev.Event) -> None:
        if isinstance(event, ev.EpochEvent):
            self.deliver(event, collect(engine, event, self.n))


def to_image(x: torch.Tensor) -> np.ndarray | None:
    """A (C, H, W) input as uint8 pixels, contrast-stretched (normalisation undone visually)."""
    x = torch.as_tensor(x).detach().float().cpu()
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        return None
    side = max(x.shape[1:])
    if side > MAX_SIDE:
        size = [max(1, round(s * MAX_SIDE / side)) for s in x.shape[1:]]
        x = F.interpolate(x.unsqueeze(0), size=size, mode="area")[0]
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    pixels = (x * 255).round().clamp(0, 255).to(torch.uint8)
    arr = pixels[0].numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).contiguous().numpy()
    return np.ascontiguousarray(arr)


def describe(x: torch.Tensor, k: int = 4) -> str:
    flat = torch.as_tensor(x).detach().flatten()
    values = ", ".join(f"{float(v):.3g}" for v in flat[:k])
    return f"[{values}{', ...' if flat.numel() > k else ''}]"
