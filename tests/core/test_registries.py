"""A layer kind, a data source and an export format each plug in with one registry call, from
outside the package (this module), and work end to end through the normal paths; and they
are gone again afterwards, so no other test sees them."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch import nn

from workbench.data import bundle as data
from workbench.data.sources import registry as sources
from workbench.data.sources.base import TensorSource
from workbench.export import exporter as export, registry as formats
from workbench.export.base import EXACT, Format, Job
from workbench.export.verify import HERE
from workbench.model import build, catalog, shapes
from workbench.model.params import Param
from workbench.model.spec import LayerSpec, ModelSpec, model_from_json
from workbench.project import project_file as project, settings
from workbench.training import events as ev
from workbench.training.engine import Engine

# ---------------------------------------------------------------- a toy layer kind


class Repeat(nn.Module):
    """Repeats the last dimension ``times`` times."""

    def __init__(self, times: int):
        super().__init__()
        self.times = times

    def forward(self, x):
        return x.repeat_interleave(self.times, dim=-1)


def repeat_shape(args: dict, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    if args["times"] > 8:
        raise shapes.Bad(f"times={args['times']} is too many", "use at most 8")
    return tuple(in_shape[:-1]) + (in_shape[-1] * args["times"],)


TOY_KIND = catalog.LayerKind(
    "ToyRepeat", "Toys", "Repeats each value of the last dimension a few times.",
    (Param("times", "int", 2, "how often each value is repeated", min=1),),
    key_args=("times",), factory=lambda args: Repeat(args["times"]), shape=repeat_shape)

# ---------------------------------------------------------------- a toy data source


def read_toy(settings) -> TensorSource:
    """Two well separated blobs of 4 features; 60 examples."""
    g = torch.Generator().manual_seed(7)
    y = torch.arange(60) % 2
    x = torch.randn(60, 4, generator=g) + 4.0 * y[:, None].float()
    return TensorSource("toy blobs", x, y.long(), ["left", "right"])

# ---------------------------------------------------------------- a toy export format


def write_npz(job: Job, tmp) -> None:
    with open(tmp, "wb") as fh:  # np.savez would append .npz to a path
        np.savez(fh, **{k: v.detach().numpy() for k, v in job.model.state_dict().items()})


def verify_npz(job: Job, tmp):
    arrays = np.load(tmp)
    fresh = build.build_model(job.spec).eval()
    fresh.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files})
    with torch.no_grad():
        got = [fresh(x).numpy() for x in job.inputs()]
    return job.check(got, HERE, [f"{len(arrays.files)} arrays reloaded with numpy"])


TOY_FORMAT = Format("toy_npz", ".npz", "NumPy arrays (.npz)", "numpy.load", "reloaded into a fresh model",
                    write_npz, verify_npz, tolerance=EXACT)

# ---------------------------------------------------------------- registration


@contextlib.contextmanager
def toys():
    catalog.register_kind(TOY_KIND)
    sources.register_source("toy_blobs", read_toy)
    formats.register_format(TOY_FORMAT)
    try:
        yield
    finally:
        catalog.unregister_kind(TOY_KIND.name)
        sources.unregister_source("toy_blobs")
        formats.unregister_format(TOY_FORMAT.key)


@pytest.fixture
def registered():
    with toys():
        yield


def toy_model() -> ModelSpec:
    return ModelSpec((4,), [LayerSpec("rep", "ToyRepeat", {"times": 3}), LayerSpec("act", "ReLU"),
                            LayerSpec("fc", "Linear", {"out_features": 2})])


def test_a_registered_kind_infers_builds_and_is_checked(registered):
    assert catalog.kind("ToyRepeat") is TOY_KIND and "Toys" in catalog.CATEGORIES
    spec = model_from_json(toy_model().to_json())  # the project file check knows it
    info = build.infer(spec)
    assert info.ok, info.error
    assert info.layers[0].out_shape == (12,) and info.output_shape == (2,)
    model = build.build_model(spec).eval()
    with torch.no_grad():
        out = model[0](build.example_input(spec, batch=3))
    assert tuple(out.shape[1:]) == info.layers[0].out_shape
    bad = build.infer(ModelSpec((4,), [LayerSpec("rep", "ToyRepeat", {"times": 9})]))
    assert bad.error is not None and "too many" in str(bad.error) and "at most 8" in str(bad.error)


def test_a_registered_source_loads_batches_and_trains(registered, tmp_path):
    bundle = data.load_data({"source": "toy_blobs", "val_fraction": 0.2, "batch_size": 16})
    assert bundle.task.input_shape == (4,) and bundle.task.num_classes == 2
    assert bundle.task.train_size == 48 and bundle.task.val_size == 12  # stratified: 6 of each class
    x, y = next(iter(bundle.loader("train")))
    assert x.shape == (16, 4) and y.dtype == torch.long
    proj = project.new("toy", toy_model(), data={"source": "toy_blobs", "val_fraction": 0.2, "batch_size": 16},
                       training={"epochs": 8, "tensorboard": False, "optimizer": {"type": "Adam", "lr": 0.05}})
    end = Engine(proj, run_dir=tmp_path / "run").run()
    assert isinstance(end, ev.FinishedEvent), end
    assert end.best_val_acc >= 0.9


def test_a_registered_format_exports_and_verifies(registered, tmp_path):
    spec = toy_model()
    model = build.build_model(spec)
    assert "toy_npz" in export.FORMATS
    result = export.export(model, spec, "toy_npz", tmp_path / "m")
    assert result.ok and result.path == tmp_path / "m.npz" and result.path.is_file()
    assert result.verification.passed and result.verification.max_abs == 0.0
    assert set(np.load(result.path).files) == set(model.state_dict())


def test_registrations_are_removed_again():
    before = (list(catalog.KINDS), list(catalog.CATEGORIES), dict(sources.SOURCES), list(settings.DATA_SOURCES),
              list(settings.PATH_SOURCES), dict(formats.FORMATS))
    with toys():
        assert "ToyRepeat" in catalog.BY_NAME and "toy_blobs" in settings.DATA_SOURCES
    after = (list(catalog.KINDS), list(catalog.CATEGORIES), dict(sources.SOURCES), list(settings.DATA_SOURCES),
             list(settings.PATH_SOURCES), dict(formats.FORMATS))
    assert after == before
    assert "ToyRepeat" not in catalog.BY_NAME and "toy_blobs" not in sources.SOURCES
    assert "toy_npz" not in formats.FORMATS
    assert not build.infer(ModelSpec((4,), [LayerSpec("rep", "ToyRepeat", {"times": 2})])).ok
    with pytest.raises(Exception, match="toy_blobs"):
        data.load_data({"source": "toy_blobs"})
    with pytest.raises(Exception, match="unknown export format 'toy_npz'"):
        export.target_path("m.npz", "toy_npz")
