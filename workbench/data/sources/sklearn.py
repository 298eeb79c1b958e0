"""The data sets scikit-learn ships (no download): digits (8x8 images), iris, wine and
breast_cancer (tables; wine and breast_cancer can also be read as regression targets)."""
from __future__ import annotations

import torch

from workbench.data.sources.base import TensorSource
from workbench.project.settings import DataSettings


def read_digits(settings: DataSettings) -> TensorSource:
    """scikit-learn's 1,797 8x8 handwritten digits (shipped inside scikit-learn), values 0..16."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32).unsqueeze(1)
    y = torch.as_tensor(d.target, dtype=torch.long)
    return TensorSource("scikit-learn digits", x, y, [str(c) for c in d.target_names], is_image=True,
                        flip_ok=False, pixel_max=16.0)


def read_table(settings: DataSettings) -> TensorSource:
    """One of scikit-learn's small tables, named by ``settings.source`` (iris, wine, breast_cancer)."""
    from sklearn import datasets

    name, task = settings.source, settings.task
    d = getattr(datasets, f"load_{name}")()
    x = torch.as_tensor(d.data, dtype=torch.float32)
    features = [str(f) for f in d.feature_names]
    if task == "regression":
        return TensorSource(f"scikit-learn {name}", x, torch.as_tensor(d.target, dtype=torch.float32)[:, None],
                            None, feature_names=features)
    y = torch.as_tensor(d.target, dtype=torch.long)
    return TensorSource(f"scikit-learn {name}", x, y, [str(c) for c in d.target_names], feature_names=features)
