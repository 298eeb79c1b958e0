"""training.early_stopping: the run ends as finished with "stopped early at epoch N (best at M)",
restore_best puts the best epoch's weights back, a resume goes on counting, bad settings are
refused naming the field."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from workbench.cli import main as cli
from workbench.data import bundle as data
from workbench.project import project_file as project, templates
from workbench.project.settings import EarlyStoppingSettings
from workbench.training import events as ev
from workbench.training.engine import Engine
from workbench.training.loop import evaluate

from run_events import Recorder


def wine(epochs=200, **early):
    """The wine MLP (107 training examples) with a learning rate high enough to overfit soon."""
    proj = templates.load("tabular_mlp")
    proj.training = replace(proj.training, epochs=epochs, tensorboard=False, device="cpu",
                            optimizer=replace(proj.training.optimizer, lr=0.03),
                            early_stopping=EarlyStoppingSettings(**{"enabled": True, "patience": 3, **early}))
    return proj


def test_a_long_run_on_tiny_data_stops_early_and_says_so(tmp_path):
    proj = wine()
    rec = Recorder()
    engine = Engine(proj, run_dir=tmp_path / "run", handlers=[rec])
    end = engine.run()
    assert isinstance(end, ev.FinishedEvent)
    epochs = rec.of(ev.EpochEvent)
    assert end.epochs == len(epochs) < 200
    best = min(epochs, key=lambda e: e.val_loss)
    assert end.best_epoch == best.epoch and end.epochs - end.best_epoch == 3  # patience 3
    assert end.message == f"stopped early at epoch {end.epochs} (best at {end.best_epoch})"
    assert end.best_val_loss == best.val_loss
    assert engine.record["status"] == "finished" and engine.record["message"] == end.message
    assert engine.record["early_stopping"]["patience"] == 3
    assert end.restored_epoch is None  # restore_best is off by default
    saved = torch.load(tmp_path / "run" / "best.ckpt", weights_only=True)
    assert saved["position"]["epoch"] == end.best_epoch  # best.ckpt follows the watched metric


def test_off_by_default_and_a_run_reaching_its_last_epoch_is_not_early(tmp_path):
    assert not templates.load("tabular_mlp").training.early_stopping.enabled
    end = Engine(wine(epochs=3, patience=50), run_dir=tmp_path / "run").run()
    assert isinstance(end, ev.FinishedEvent) and end.epochs == 3 and end.message == ""


def test_restore_best_gives_the_best_epochs_metric_on_re_evaluation(tmp_path):
    proj = wine(metric="val_acc", restore_best=True, patience=2)
    rec = Recorder()
    engine = Engine(proj, run_dir=tmp_path / "run", handlers=[rec])
    end = engine.run()
    assert end.message and end.restored_epoch == end.best_epoch < end.epochs
    best = next(e for e in rec.of(ev.EpochEvent) if e.epoch == end.best_epoch)
    last = rec.of(ev.EpochEvent)[-1]
    assert (last.val_acc, last.val_loss) != (best.val_acc, best.val_loss)
    bundle = data.load_data(proj.data)
    again = evaluate(engine.runner, bundle.loader("val"), 3, engine.loss_name)
    assert again.acc == best.val_acc and again.loss == pytest.approx(best.val_loss, rel=1e-6)
    # the last checkpoint keeps the run's end (a resume goes on from there); best.ckpt has the best weights
    saved = torch.load(tmp_path / "run" / "best.ckpt", weights_only=True)["model"]
    assert all(torch.equal(saved[k], v) for k, v in engine.model.state_dict().items())
    assert engine.record["restored_epoch"] == end.best_epoch


def test_a_resume_mid_patience_continues_the_count(tmp_path):
    proj = wine(patience=3)
    full = Engine(proj, run_dir=tmp_path / "full").run()
    assert full.message
    # stop one epoch after the best: one epoch of patience used
    stop_at = full.best_epoch + 1
    engine = Engine(proj, run_dir=tmp_path / "part")

    def stop_after(e):
        if isinstance(e, ev.EpochEvent) and e.epoch == stop_at:
            engine.controls.stop()
    engine.add_handler(stop_after)
    stopped = engine.run()
    assert isinstance(stopped, ev.StoppedEvent)
    assert engine.state.epochs_since_best == 1
    saved = torch.load(tmp_path / "part" / "last.ckpt", weights_only=True)
    assert saved["position"]["epoch"] - saved["best"]["epoch"] == 1  # the count is in the checkpoint
    resumed = Engine(proj, resume_from=stopped.checkpoint).run()
    assert isinstance(resumed, ev.FinishedEvent)
    assert (resumed.epochs, resumed.best_epoch, resumed.message) == (full.epochs, full.best_epoch, full.message)


def test_min_delta_and_mode(tmp_path):
    settings = EarlyStoppingSettings(enabled=True, metric="val_acc")
    assert settings.direction() == "max" and EarlyStoppingSettings().direction() == "min"
    # a min_delta no epoch can beat: the first epoch stays the best, the run ends after patience
    end = Engine(wine(min_delta=10.0, patience=2), run_dir=tmp_path / "run").run()
    assert (end.best_epoch, end.epochs) == (1, 3)


@pytest.mark.parametrize("early,field,words", [
    ({"enabled": True, "metric": "val_acc", "mode": "min"}, "mode", "val_acc rises"),
    ({"patience": -1}, "patience", "must be >= 0"),
    ({"metric": "accuracy"}, "metric", "must be one of"),
    ({"min_delta": -0.1}, "min_delta", "must be >= 0"),
    ({"restore_best": "yes"}, "restore_best", "true or false"),
    ({"patients": 3}, "patients", "unknown key"),
])
def test_bad_settings_exit_2_with_one_line_naming_the_field(tmp_path, capsys, early, field, words):
    doc = templates.load("tabular_mlp").to_json()
    doc["training"]["early_stopping"] = early
    path = tmp_path / "p.wbproj"
    path.write_text(json.dumps(doc))
    assert cli.main(["train", str(path), "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert f"training.early_stopping.{field}" in err[0] and words in err[0]
    assert not (tmp_path / "run").exists()


def test_a_validation_metric_without_validation_data_is_refused(tmp_path, capsys):
    proj = wine()
    proj.data = replace(proj.data, val_fraction=0.0)
    path = tmp_path / "p.wbproj"
    project.save(proj, path)
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training.early_stopping.metric: val_loss needs validation data" in err[0]


def test_train_prints_it_and_records_it_in_the_project(tmp_path, capsys):
    path = tmp_path / "p.wbproj"
    project.save(wine(restore_best=True), path)
    assert cli.main(["train", str(path), "-q", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "stopped early at epoch" in out and "the model holds epoch" in out
    record = json.loads(path.read_text())["runs"][-1]
    assert record["message"].startswith("stopped early at epoch") and record["restored_epoch"] == record["best_epoch"]
    assert project.load(path).training.early_stopping.restore_best  # saved settings load back
