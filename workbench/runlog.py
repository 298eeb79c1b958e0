"""A run's metrics on disk: ``metrics.jsonl`` (one JSON object per event) and, when the
tensorboard package is installed, TensorBoard event files under ``tensorboard/``.

Both are append-only logs, written as the run goes (a file renamed into place could not
be followed live); a crash can cut at most the last line, which readers skip.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import events as ev

METRICS = "metrics.jsonl"


class RunLog:
    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = run_dir / METRICS
        self._fh = open(self.path, "a", encoding="utf-8")
        self._tb = None
        self.notes: list[str] = []
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.notes.append("TensorBoard files skipped: the tensorboard package is not installed")
            else:
                self._tb = SummaryWriter(str(run_dir / "tensorboard"))

    def write_steps(self, steps: list[ev.StepEvent]) -> None:
        """A batch of step events: every one to metrics.jsonl, their mean loss to TensorBoard
        (one point per read-out keeps TensorBoard's cost off the step time)."""
        self._fh.write("".join(json.dumps(e.to_dict(), separators=(",", ":")) + "\n" for e in steps))
        if self._tb is not None and steps:
            last = steps[-1]
            self._tb.add_scalar("train/loss", sum(e.loss for e in steps) / len(steps), last.step)
            self._tb.add_scalar("train/lr", last.lr, last.step)

    def write(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepEvent):
            self.write_steps([event])
            return
        self._fh.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
        tb = self._tb
        if tb is None:
            return
        if isinstance(event, ev.EpochEvent):
            tb.add_scalar("epoch/train_loss", event.train_loss, event.epoch)
            if event.val_loss is not None:
                tb.add_scalar("epoch/val_loss", event.val_loss, event.epoch)
            if event.val_acc is not None:
                tb.add_scalar("epoch/val_acc", event.val_acc, event.epoch)
        elif isinstance(event, ev.MemoryEvent):
            tb.add_scalar("memory/process_rss_mib", event.reading["process_rss"] / 2**20, event.step)
            for d in event.reading["devices"]:
                if d["allocated"] is not None:
                    tb.add_scalar(f"memory/{d['device']}_allocated_mib", d["allocated"] / 2**20, event.step)

    def flush(self) -> None:
        self._fh.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(run_dir: Path | str) -> list[dict]:
    """Every complete event line of a run (a torn last line is skipped)."""
    out = []
    path = Path(run_dir) / METRICS
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
