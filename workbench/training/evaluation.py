"""Test metrics of a trained model: computed with scikit-learn, kept as plain data.

``evaluate(model, bundle, split, loss)`` predicts every example of a split ("test", or "val"
where the data has no test part: ``default_split``) and returns a ``Report``:

- classification: per class precision, recall, F1 and support, the macro and weighted
  averages (``precision_recall_fscore_support``), accuracy, the confusion matrix (rows: true
  class, columns: predicted), and for two classes the ROC curve with its AUC and the
  precision-recall curve with its average precision (the second class is the positive one);
- regression: MAE, RMSE, R² and the (true, predicted) pairs for a scatter figure.

The engine attaches the report of the model it ends with to its ``FinishedEvent``
(``evaluation``: ``Report.to_dict()``, so it is in the run's metrics.jsonl);
``evaluate_weights`` does the same for any checkpoint or weights file (``workbench evaluate``,
the window's Evaluate Checkpoint). Nothing here touches Qt: the window calls it on a worker.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.data.bundle import DataBundle, Task, load_data
from workbench.errors import WorkbenchError
from workbench.model.spec import ModelSpec
from workbench.project.settings import DataSettings
from workbench.training.predict import model_from_weights, probabilities

SPLITS = ("test", "val")
MAX_CURVE_POINTS = 2000  # ROC / PR curves and regression pairs are thinned to this many points
AVERAGES = ("macro", "weighted")


@dataclass
class ClassRow:
    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Curve:
    """A binary task's curve: ``x`` / ``y`` are (false positive rate, true positive rate) for
    ROC and (recall, precision) for PR; ``area`` is the ROC AUC or the average precision."""

    x: list[float]
    y: list[float]
    area: float


@dataclass
class Report:
    split: str  # "test" or "val"
    kind: str  # "classification" or "regression"
    size: int  # examples evaluated
    class_names: list[str] = field(default_factory=list)
    rows: list[ClassRow] = field(default_factory=list)
    averages: dict[str, ClassRow] = field(default_factory=dict)  # "macro", "weighted"
    accuracy: float | None = None
    confusion: list[list[int]] = field(default_factory=list)
    roc: Curve | None = None
    pr: Curve | None = None
    mae: float | None = None
    rmse: float | None = None
    r2: float | None = None
    pairs: list[list[float]] = field(default_factory=list)  # regression: [true, predicted], thinned
    note: str = ""  # what could not be computed and why (a curve needs both classes present)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        data = dict(data)
        data["rows"] = [ClassRow(**r) for r in data.get("rows", [])]
        data["averages"] = {k: ClassRow(**v) for k, v in data.get("averages", {}).items()}
        for key in ("roc", "pr"):
            data[key] = Curve(**data[key]) if data.get(key) else None
        return cls(**data)

    def lines(self) -> list[str]:
        """The report as a text table (the CLI prints it)."""
        title = "test" if self.split == "test" else "validation"
        out = [f"{title} split: {self.size} examples"]
        if self.kind == "regression":
            out += [f"  MAE   {_fmt(self.mae)}", f"  RMSE  {_fmt(self.rmse)}", f"  R²    {_fmt(self.r2)}"]
        else:
            width = max([len("weighted avg")] + [len(r.name) for r in self.rows])
            out.append(f"  {'class'.ljust(width)}  precision  recall     f1  support")
            named = [(r.name, r) for r in self.rows] + [("", None)] + \
                [(f"{k} avg", self.averages[k]) for k in AVERAGES if k in self.averages]
            for name, r in named:
                if r is None:
                    out.append("")
                    continue
                out.append(f"  {name.ljust(width)}  {r.precision:9.3f}  {r.recall:6.3f}  {r.f1:5.3f}  {r.support:7d}")
            out.append(f"  accuracy {self.accuracy:.4f}")
            if self.roc is not None:
                out.append(f"  ROC AUC {self.roc.area:.4f} · average precision {self.pr.area:.4f} "
                           f"(positive class {self.class_names[1]!r})")
            out.append("  confusion matrix (rows: true, columns: predicted):")
            cell = max(3, max(len(str(v)) for row in self.confusion for v in row))
            for name, row in zip(self.class_names, self.confusion):
                out.append(f"  {name[:width].ljust(width)}  " + " ".join(str(v).rjust(cell) for v in row))
        if self.note:
            out.append(f"  note: {self.note}")
        return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def default_split(bundle: DataBundle) -> str:
    """"test" where the data has a test part, else "val"; WorkbenchError when it has neither."""
    if bundle.test is not None:
        return "test"
    if bundle.val is not None:
        return "val"
    raise WorkbenchError("there is neither test nor validation data to evaluate on; set data.test_fraction "
                         "(e.g. 0.2), data.val_fraction or data.test_path")


def predictions(model: nn.Module, bundle: DataBundle, split: str, loss: str | None = None,
                device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(true targets, class probabilities (N, C) or predicted values (N,)) over a split, in
    order. The model runs in eval mode under no_grad; its mode is put back afterwards."""
    task = bundle.task
    loss = task.default_loss if loss in (None, "auto") else loss
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    loader = bundle.loader(split, device=device)
    was_training = model.training
    model.eval()
    outs, targets = [], []
    try:
        with torch.no_grad():
            for x, y in loader:
                out = torch.as_tensor(model(x.to(device))).detach().float().cpu()
                outs.append(out.reshape(len(out), -1))
                targets.append(torch.as_tensor(y).cpu())
    except RuntimeError as exc:
        raise WorkbenchError(f"the model cannot run on the {split} data: {str(exc).splitlines()[0][:200]}") from None
    finally:
        model.train(was_training)
    out = torch.cat(outs) if outs else torch.zeros(0, task.output_size(loss))
    y = torch.cat(targets) if targets else torch.zeros(0)
    if task.is_classification:
        probs = probabilities(out, loss)
        if probs.shape[1] != task.num_classes:
            raise WorkbenchError(f"the model outputs {probs.shape[1]} class scores but the data has "
                                 f"{task.num_classes} classes; fix the model's last layer and train again")
        return y.long().numpy(), probs.numpy()
    return y.reshape(-1).float().numpy(), out[:, 0].numpy()


def report(y_true: np.ndarray, scores: np.ndarray, task: Task, split: str) -> Report:
    """The metrics of predictions (``predictions``' pair) with scikit-learn."""
    from sklearn import metrics

    n = int(len(y_true))
    if task.is_classification:
        classes = int(task.num_classes)
        names = list(task.class_names) or [str(i) for i in range(classes)]
        labels = list(range(classes))
        pred = scores.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
        p, r, f, s = metrics.precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
        rows = [ClassRow(names[i], float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i in labels]
        averages = {}
        for avg in AVERAGES:
            ap, ar, af, _ = metrics.precision_recall_fscore_support(y_true, pred, labels=labels, average=avg,
                                                                    zero_division=0)
            averages[avg] = ClassRow(avg, float(ap), float(ar), float(af), n)
        out = Report(split, "classification", n, names, rows, averages,
                     float(metrics.accuracy_score(y_true, pred)) if n else None,
                     metrics.confusion_matrix(y_true, pred, labels=labels).tolist())
        if classes == 2:
            if len(np.unique(y_true)) < 2:
                out.note = "ROC and PR curves need examples of both classes"
            else:
                positive = scores[:, 1]
                fpr, tpr, _ = metrics.roc_curve(y_true, positive)
                precision, recall, _ = metrics.precision_recall_curve(y_true, positive)
                out.roc = Curve(*_thin(fpr, tpr), float(metrics.roc_auc_score(y_true, positive)))
                out.pr = Curve(*_thin(recall, precision), float(metrics.average_precision_score(y_true, positive)))
        return out
    out = Report(split, "regression", n)
    if n:
        out.mae = float(metrics.mean_absolute_error(y_true, scores))
        out.rmse = float(math.sqrt(metrics.mean_squared_error(y_true, scores)))
        xs, ys = _thin(y_true, scores)
        out.pairs = [[a, b] for a, b in zip(xs, ys)]
    if n >= 2:
        out.r2 = float(metrics.r2_score(y_true, scores))
    else:
        out.note = "R² needs at least two examples"
    return out


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """At most MAX_CURVE_POINTS points, evenly picked, the first and last kept."""
    if len(x) > MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, len(x) - 1, MAX_CURVE_POINTS).round().astype(int))
        x, y = np.asarray(x)[keep], np.asarray(y)[keep]
    return [float(v) for v in x], [float(v) for v in y]


def evaluate(model: nn.Module, bundle: DataBundle, split: str | None = None, loss: str | None = None,
             device: torch.device | str | None = None) -> Report:
    """The report of ``model`` on a split of ``bundle`` (default: test, else validation)."""
    split = split or default_split(bundle)
    if split not in SPLITS:
        raise WorkbenchError(f"unknown split {split!r}; use {' or '.join(SPLITS)}")
    bundle.split(split)  # a missing split is a WorkbenchError that says how to make one
    y, scores = predictions(model, bundle, split, loss, device)
    return report(y, scores, bundle.task, split)


def evaluate_weights(spec: ModelSpec, data: DataSettings, weights: str | Path, split: str | None = None,
                     loss: str | None = None, bundle: DataBundle | None = None) -> Report:
    """The report of a project's model (``spec``) holding a checkpoint's or weights file's
    tensors (every key must fit; read weights-only) on its data, on CPU. ``loss``: the
    training loss ("auto" / None: the data's default); ``bundle``: the data, when loaded."""
    bundle = bundle if bundle is not None else load_data(data)
    split = split or default_split(bundle)
    bundle.split(split)  # before the weights: a missing test split is said first
    model = model_from_weights(spec, weights)
    return evaluate(model, bundle, split, loss, "cpu")
