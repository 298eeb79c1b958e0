"""workbench.progress: the one ETA rule the Training panel, `workbench train` and export share."""
from __future__ import annotations

import pytest

from workbench.progress import Progress, clock, numbered


class Clock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_eta_is_unknown_until_a_step_is_done():
    p = Progress(2, 10, now=Clock())
    assert p.eta() is None and p.eta_text() == "…" and p.fraction() == 0.0


def test_before_an_epoch_ends_the_eta_is_the_pace_since_the_start():
    now = Clock(100.0)
    p = Progress(10, 10, now=now)  # 100 steps
    now.t = 110.0
    p.on_step(10, 1, 500.0)  # 10 steps in 10 s
    assert p.eta() == pytest.approx(90.0) and p.eta_text() == "1:30"
    now.t = 130.0  # slower: 20 steps in 30 s
    p.on_step(20, 2, 100.0)
    assert p.eta() == pytest.approx(80 * 1.5)


def test_whole_epochs_decide_once_one_has_ended_the_last_three_count():
    now = Clock(0.0)
    p = Progress(10, 10, now=now)
    for epoch, seconds in enumerate((20.0, 30.0, 40.0, 50.0), 1):
        p.on_step(epoch * 10, epoch, 100.0)
        p.on_epoch(epoch, seconds)
    now.t = 1e6  # the wall clock no longer matters
    assert p.eta() == pytest.approx(60 * (30 + 40 + 50) / 3 / 10)
    assert p.epoch == 5 and p.fraction() == pytest.approx(0.4)


def test_a_resumed_run_counts_its_pace_from_where_it_restarted():
    now = Clock(0.0)
    p = Progress(4, 25, start_step=50, start_epoch=3, now=now)
    assert p.fraction() == 0.5 and p.eta() is None
    now.t = 20.0
    p.on_step(60, 3, 80.0)  # 10 steps in 20 s since the restart, not 60
    assert p.eta() == pytest.approx(40 * 2.0)


def test_rate_is_smoothed_and_the_text_says_it_all():
    p = Progress(2, 10, now=Clock())
    p.on_step(1, 1, 1000.0)
    p.on_step(2, 1, 2000.0)
    assert p.rate == pytest.approx(1300.0)
    assert p.text().startswith("Epoch 1/2 · step 2/20 · 1,300 samples/s · ETA ")


def test_clock_and_numbered_stages():
    assert (clock(0), clock(59.6), clock(61), clock(3661), clock(-5)) == ("0:00", "1:00", "1:01", "1:01:01", "0:00")
    lines: list[str] = []
    numbered(lines.append, 2, 6)("Writing ONNX")
    assert lines == ["[2/6] Writing ONNX"]
