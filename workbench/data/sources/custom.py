"""``data.source = "custom"``: the user's own ``torch.utils.data.Dataset`` class.

``data.custom_file`` names a Python file (trusted, see ``workbench.user_code``: nothing of an
untrusted file runs), ``data.custom_class`` a Dataset class in it, ``data.custom_kwargs`` its
keyword arguments. Each item is ``(input, target)``.

The task comes from attributes the class defines where it does, else from the first items:
- classes: ``classes`` (a list of names), or ``num_classes``; otherwise whole-number targets mean
  classification with as many classes as the largest target of the first ``PROBE`` items (or of
  ``targets``, torchvision's list of labels, which also makes the split stratified) plus one, and
  other targets mean regression;
- input shape: ``input_shape``, else the first item's input;
- dtype: whole-number inputs are token ids (``int64``), others ``float32``.

The dataset's values are used as they are (no normalisation or augmentation is added). Every
failure of the class (in ``__init__``, ``__len__`` or ``__getitem__``, while probing or during
training) is a ``UserCodeError`` naming the file, the line and the item index.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from workbench import user_code
from workbench.data.sources.base import LazySource
from workbench.errors import WorkbenchError
from workbench.project.settings import DataSettings

PROBE = 64  # items read at load to learn the task


class Checked(Dataset):
    """The user's dataset with every item made (input tensor, target tensor), and any failure
    turned into an error naming the file, the line and the index."""

    def __init__(self, base: Dataset, file: Path, class_name: str, regression: bool, dtype: torch.dtype):
        self.base, self.file, self.class_name = base, file, class_name
        self.regression, self.dtype = regression, dtype

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = raw_item(self.base, i, self.file, self.class_name)
        try:
            x = torch.as_tensor(x).to(self.dtype)
            y = torch.as_tensor(y, dtype=torch.float32).reshape(-1) if self.regression else \
                torch.as_tensor(y).long().reshape(())
        except Exception as exc:  # noqa: BLE001 - a value torch cannot make a tensor of
            raise user_code.UserCodeError(self.file, None, f"{self.class_name}[{i}] is not (input, target) "
                                          f"tensors or numbers: {user_code.describe(exc)}") from None
        return x, y


def raw_item(ds: Dataset, i: int, file: Path, class_name: str):
    """``ds[i]`` as an (input, target) pair, or a UserCodeError naming the file, line and index."""
    try:
        item = ds[i]
    except Exception as exc:  # noqa: BLE001 - the user's __getitem__ may raise anything
        raise user_code.failure(exc, file, f"{class_name}[{i}] (item index {i}) raised") from None
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        size = f" of {len(item)}" if isinstance(item, (tuple, list)) else ""
        raise user_code.UserCodeError(file, None, f"{class_name}[{i}] must return (input, target), got "
                                      f"{type(item).__name__}{size}")
    return item


def read_custom(settings: DataSettings) -> LazySource:
    if not settings.custom_file or not settings.custom_class:
        raise WorkbenchError("the 'custom' source needs data.custom_file (a Python file) and data.custom_class "
                             "(a Dataset class in it)")
    file = user_code.absolute(settings.custom_file)
    name = settings.custom_class
    cls = user_code.load_class(file, name, Dataset)
    try:
        ds = cls(**(settings.custom_kwargs or {}))
    except Exception as exc:  # noqa: BLE001
        raise user_code.failure(exc, file, f"{name}(**custom_kwargs) raised") from None
    try:
        n = len(ds)
    except Exception as exc:  # noqa: BLE001
        raise user_code.failure(exc, file, f"len({name}(...)) raised") from None
    if n < 2:
        raise WorkbenchError(f"{file}: {name} holds {n} item{'s' if n != 1 else ''}; training needs at least 2")
    items = [raw_item(ds, i, file, name) for i in range(min(n, PROBE))]
    x0 = _tensor(items[0][0], file, name, 0, "input")
    ys = [_tensor(y, file, name, i, "target") for i, (_, y) in enumerate(items)]
    targets = _attribute_targets(ds)
    class_names = _class_names(ds, ys, targets)
    dtype = torch.long if not (x0.is_floating_point() or x0.is_complex()) and x0.dtype != torch.bool else torch.float32
    shape = tuple(getattr(ds, "input_shape", None) or x0.shape)
    checked = Checked(ds, file, name, class_names is None, dtype)
    return LazySource(f"{name} ({file.name})", checked, class_names, tuple(int(d) for d in shape),
                      _identity, _identity, targets=targets if class_names is not None else None, is_image=False,
                      input_dtype="int64" if dtype == torch.long else "float32")


def _identity(x):
    return x


def _tensor(value, file: Path, name: str, i: int, what: str) -> torch.Tensor:
    try:
        return torch.as_tensor(value)
    except Exception as exc:  # noqa: BLE001
        raise user_code.UserCodeError(file, None, f"{name}[{i}]'s {what} is not a tensor or number: "
                                      f"{user_code.describe(exc)}") from None


def _attribute_targets(ds) -> torch.Tensor | None:
    targets = getattr(ds, "targets", None)
    if targets is None:
        return None
    try:
        t = torch.as_tensor(targets).reshape(-1)
    except Exception:  # noqa: BLE001 - not a list of labels: read the items instead
        return None
    return t.long() if len(t) == len(ds) and not t.is_floating_point() else None


def _class_names(ds, ys: list[torch.Tensor], targets: torch.Tensor | None) -> list[str] | None:
    """Class names (classification) or None (regression), from attributes or the first targets."""
    classes = getattr(ds, "classes", None)
    if isinstance(classes, (list, tuple)) and classes:
        return [str(c) for c in classes]
    num = getattr(ds, "num_classes", None)
    if isinstance(num, int) and not isinstance(num, bool) and num >= 1:
        return [str(i) for i in range(num)]
    whole = all(y.numel() == 1 and not y.is_floating_point() and not y.is_complex() for y in ys)
    if not whole:
        return None
    top = int(targets.max()) if targets is not None else max(int(y) for y in ys)
    return [str(i) for i in range(max(top + 1, 2))]
