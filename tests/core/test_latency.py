"""Per-layer latency (issue 17): forward + backward time per row with torch.profiler, the median
of N steps after warm-up, the slowest rows named; bad input refused in words."""
from __future__ import annotations

import pytest

from workbench.errors import LayerError, WorkbenchError
from workbench.insight import latency
from workbench.model.spec import LayerSpec, ModelSpec
from workbench.project import templates


def heavy_middle() -> ModelSpec:
    """A wide Linear between two tiny ones: it must come out slowest."""
    return ModelSpec((64,), [LayerSpec("small", "Linear", {"out_features": 8}), LayerSpec("act", "ReLU"),
                             LayerSpec("big", "Linear", {"out_features": 2048}),
                             LayerSpec("wide", "Linear", {"out_features": 2048}),
                             LayerSpec("head", "Linear", {"out_features": 4})])


def test_every_row_gets_forward_and_backward_times_and_the_slowest_are_named():
    report = latency.profile(heavy_middle(), batch=64, device="cpu", warmup=1, repeats=3)
    assert list(report.layers) == ["small", "act", "big", "wide", "head"]
    for t in report.layers.values():
        assert t.forward_ms > 0 and t.backward_ms > 0, t
    assert report.top(1)[0].path == "wide"  # 2048 x 2048 multiply-adds per example, 100x the rest
    assert len(report.top(3)) == 3 and report.step_ms >= sum(t.total_ms for t in report.layers.values()) * 0.9
    assert latency.top_text(report).startswith("slowest: wide ")
    assert 0 < report.share("wide") <= 1 and report.repeats == 3 and report.device == "cpu"


def test_a_block_is_timed_and_its_nested_rows_rank_on_their_own():
    spec = ModelSpec((16,), [LayerSpec("res", "Residual", layers=[LayerSpec("inner", "Linear", {"out_features": 16}),
                                                                  LayerSpec("act", "ReLU")]),
                             LayerSpec("fc", "Linear", {"out_features": 4})])
    report = latency.profile(spec, batch=8, warmup=0, repeats=2)
    assert set(report.layers) == {"res", "res.body.inner", "res.body.act", "fc"}
    assert report.layers["res"].total_ms >= report.layers["res.body.inner"].total_ms
    assert "res" not in {t.path for t in report.top(3)}  # the block is the sum of its rows, not a rival


def test_the_digits_template_profiles_with_inplace_activations_and_frozen_layers():
    proj = templates.load("digits_cnn")
    proj.model.layers[0].frozen = True
    report = latency.profile(proj.model, batch=16, warmup=1, repeats=2)
    assert set(report.layers) == {layer.id for layer in proj.model.layers}


def test_a_model_with_a_problem_is_refused_with_its_layer_named():
    spec = ModelSpec((3, 8, 8), [LayerSpec("fc", "Linear", {"out_features": 4})])
    with pytest.raises(LayerError) as err:
        latency.profile(spec)
    assert err.value.layer_id == "fc"


def test_bad_arguments_and_missing_devices_are_refused_in_words():
    with pytest.raises(WorkbenchError, match="batch and repeats of at least 1"):
        latency.profile(heavy_middle(), batch=0)
    import torch
    if not torch.cuda.is_available():
        with pytest.raises(WorkbenchError, match="no CUDA GPU"):
            latency.profile(heavy_middle(), device="cuda:0")


def test_stop_ends_it_between_steps():
    with pytest.raises(latency.Stopped):
        latency.profile(heavy_middle(), stop=lambda: True)


def test_milliseconds_are_compact():
    assert latency.milliseconds(0.0123) == "12.3 µs"
    assert latency.milliseconds(1.5) == "1.5 ms"
    assert latency.milliseconds(2345) == "2.35 s"
    assert latency.milliseconds(0.9997) == "1 ms" and latency.milliseconds(999.7) == "1 s"  # never '1e+03 µs'
