"""The engine on other tasks and losses: binary and multi-label BCE, NLL, regression."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from workbench.training import events as ev
from workbench.project import project_file as project
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.training.engine import Engine


def mlp(features: int, out: int, tail: list[LayerSpec] = ()) -> ModelSpec:
    return ModelSpec((features,), [LayerSpec("fc1", "Linear", {"out_features": 32}), LayerSpec("act", "ReLU"),
                                   LayerSpec("fc2", "Linear", {"out_features": out}), *tail])


def train(tmp_path, model, data, loss="auto", epochs=15, lr=0.01, **training):
    proj = project.new("t", model, data={"val_fraction": 0.25, "batch_size": 32, **data},
                       training={"loss": loss, "epochs": epochs, "tensorboard": False,
                                 "optimizer": {"type": "Adam", "lr": lr}, **training})
    events = []
    end = Engine(proj, run_dir=tmp_path / "run", handlers=[events.append]).run()
    return end, [e for e in events if isinstance(e, ev.EpochEvent)], events


@pytest.mark.parametrize("loss,out,tail", [
    ("BCEWithLogitsLoss", 1, []),  # one logit for two classes
    ("BCEWithLogitsLoss", 2, []),  # one logit per class
    ("NLLLoss", 2, [LayerSpec("logp", "LogSoftmax", {"dim": 1})]),
])
def test_binary_classification_with_each_fitting_loss(tmp_path, loss, out, tail):
    end, epochs, _ = train(tmp_path, mlp(30, out, tail), {"source": "breast_cancer"}, loss)
    assert isinstance(end, ev.FinishedEvent), end
    assert end.best_val_acc > 0.9 and len(epochs[-1].confusion) == 2
    assert epochs[-1].train_loss < epochs[0].train_loss


def test_regression_from_a_csv_reports_loss_without_accuracy(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 3, generator=g)
    y = 3 * x[:, 0] - 2 * x[:, 1] + 0.5 + 0.01 * torch.randn(200, generator=g)
    rows = ["a,b,c,y"] + [f"{a:.5f},{b:.5f},{c:.5f},{t:.5f}" for (a, b, c), t in zip(x.tolist(), y.tolist())]
    (tmp_path / "r.csv").write_text("\n".join(rows))
    end, epochs, _ = train(tmp_path, mlp(3, 1), {"source": "csv", "path": str(tmp_path / "r.csv")}, epochs=40)
    assert isinstance(end, ev.FinishedEvent), end
    assert end.best_val_acc is None and epochs[-1].val_acc is None and epochs[-1].confusion == []
    assert end.best_val_loss < 0.05 < epochs[0].val_loss  # MSE fell well below the targets' variance


def test_amp_on_cpu_trains_in_float32_with_a_note(tmp_path):
    end, _, events = train(tmp_path, mlp(4, 3), {"source": "iris"}, epochs=2, amp=True)
    assert isinstance(end, ev.FinishedEvent)
    started = events[0]
    assert isinstance(started, ev.StartedEvent) and any("CUDA only" in n for n in started.notes)


def test_resume_with_another_batch_size_says_it_is_not_exact(tmp_path):
    proj = project.new("t", mlp(4, 3), data={"source": "iris", "batch_size": 16},
                       training={"epochs": 2, "tensorboard": False})
    first = Engine(proj, run_dir=tmp_path / "run").run()
    proj.data = replace(proj.data, batch_size=8)
    proj.training = replace(proj.training, epochs=3)
    events = []
    end = Engine(proj, resume_from=first.checkpoint.replace("best", "last"), handlers=[events.append]).run()
    assert isinstance(end, ev.FinishedEvent) and end.epochs == 3
    assert any("not exactly" in n for n in events[0].notes)
