"""A run's metrics on disk: ``metrics.jsonl`` (one JSON object per event) and, when the
tensorboard package is installed, TensorBoard event files under ``tensorboard/``.

Both are append-only logs, written as the run goes (a file renamed into place could not
be followed live); a crash can cut at most the last line, which readers skip.
"""
from __future__ import annotations

import json
from pathlib import Path

from workbench.training import events as ev

METRICS = "metrics.jsonl"
_STEP_LINE = '{"event":"step","step":%d,"epoch":%d,"loss":%r,"lr":%r,"samples_per_s":%r}\n'


class RunLog:
    def __init__(self, run_dir: Path, tensorboard: bool = True):
        self.path = run_dir / METRICS
        self._fh = open(self.path, "a", encoding="utf-8")
        self._tb = None
        self._tb_pending: list = []
        self.notes: list[str] = []
        self.error: str | None = None  # set when a write failed (disk full...); later writes are skipped
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.notes.append("TensorBoard files skipped: the tensorboard package is not installed")
            else:
                self._tb = SummaryWriter(str(run_dir / "tensorboard"), flush_secs=10)

    def write_steps(self, steps: list[ev.StepEvent]) -> None:
        """A batch of step events: every one to metrics.jsonl, their mean loss to TensorBoard
        (one point per read-out keeps TensorBoard's cost off the step time)."""
        self._guard(self._write_steps, steps)

    def write(self, event: ev.Event) -> None:
        self._guard(self._write, event)

    def flush(self) -> None:
        """metrics.jsonl to disk now; TensorBoard gets the waiting events and writes them to
        disk itself within 10 s (its own flush waits on its thread: too slow for every epoch)."""
        self._guard(self._flush)

    def _guard(self, fn, *args) -> None:
        """A failed log write must not take the run down with it: remember it, stop logging."""
        if self.error is not None:
            return
        try:
            fn(*args)
        except (OSError, ValueError) as exc:
            self.error = f"cannot write to {self.path.parent}: {getattr(exc, 'strerror', None) or exc}"

    def _write_steps(self, steps: list[ev.StepEvent]) -> None:
        # printf instead of json.dumps: 1 us instead of 8 per step; the values are finite floats
        self._fh.write("".join(_STEP_LINE % (e.step, e.epoch, e.loss, e.lr, e.samples_per_s) for e in steps))
        if self._tb is not None and steps:
            last = steps[-1]
            self._scalars(last.step, {"train/loss": sum(e.loss for e in steps) / len(steps), "train/lr": last.lr})

    def _write(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepEvent):
            self._write_steps([event])
            return
        self._fh.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
        if self._tb is None:
            return
        if isinstance(event, ev.EpochEvent):
            values = {"epoch/train_loss": event.train_loss, "epoch/val_loss": event.val_loss,
                      "epoch/val_acc": event.val_acc}
            self._scalars(event.epoch, {k: v for k, v in values.items() if v is not None})
        elif isinstance(event, ev.MemoryEvent):
            values = {"memory/process_rss_mib": event.reading["process_rss"] / 2**20}
            for d in event.reading["devices"]:
                if d["allocated"] is not None:
                    values[f"memory/{d['device']}_allocated_mib"] = d["allocated"] / 2**20
            self._scalars(event.step, values)

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        """Several scalars as one TensorBoard event (add_scalar makes one event per value).
        Events wait here until ``flush`` (once per epoch): each hand-over wakes TensorBoard's
        writer thread, which then competes with the training step for the CPU."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
        self._tb_pending.append((summary, step))

    def _flush(self) -> None:
        self._fh.flush()
        if self._tb is not None and self._tb_pending:
            writer = self._tb._get_file_writer()
            for summary, step in self._tb_pending:
                writer.add_summary(summary, step)
            self._tb_pending.clear()

    def close(self) -> None:
        self.flush()
        try:
            self._fh.close()
            if self._tb is not None:
                self._tb.close()
        except (OSError, ValueError) as exc:
            self.error = self.error or f"cannot write to {self.path.parent}: {exc}"
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
