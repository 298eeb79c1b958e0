"""A run's metrics on disk, as two engine handlers: ``MetricsLog`` writes ``metrics.jsonl``
(one JSON object per event) and ``TensorBoardLog`` TensorBoard event files under
``tensorboard/`` when the tensorboard package is installed.

Both are append-only logs, written as the run goes (a file renamed into place could not
be followed live); a crash can cut at most the last line, which readers skip. Only the
main process writes (``engine.parallel.is_main``). A write that fails (disk full, folder
gone) stops that log and ends the run at the next checkpoint with a message that says so.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from workbench import fileio
from workbench.errors import WorkbenchError
from workbench.training import events as ev

METRICS = "metrics.jsonl"
_STEP_LINE = '{"event":"step","step":%d,"epoch":%d,"loss":%r,"lr":%r,"samples_per_s":%r}\n'


class _FileLog(ev.Handler):
    """What both logs share: open on the main process at the run's start, never let a failed
    write take the run down with it (remember it, stop logging, say so at the next checkpoint)."""

    def __init__(self):
        self.folder: Path | None = None
        self.error: str | None = None  # set when a write failed; later writes are skipped
        self.open = False

    def on_run_start(self, engine, notes: list[str]) -> None:
        if engine.parallel.is_main and engine.run_dir is not None:
            self.folder = Path(engine.run_dir)
            self.open = self.start(self.folder, notes)

    def start(self, folder: Path, notes: list[str]) -> bool:
        """Open the log in ``folder``; False when it will not write."""
        raise NotImplementedError

    def guard(self, fn, *args) -> None:
        if not self.open or self.error is not None:
            return
        try:
            fn(*args)
        except OSError as exc:
            self.error = fileio.describe_os_error(exc, self.folder)  # says "the disk is full" and the fix
        except ValueError as exc:
            self.error = f"cannot write to {self.folder}: {exc}; choose another run folder"

    def on_checkpoint(self, engine) -> None:
        self.guard(self.flush)
        if self.error:
            raise WorkbenchError(self.error)

    def flush(self) -> None:
        raise NotImplementedError


class MetricsLog(_FileLog):
    """``metrics.jsonl``: every event as one JSON line."""

    def __init__(self):
        super().__init__()
        self._fh = None

    @property
    def path(self) -> Path | None:
        return self.folder / METRICS if self.folder is not None else None

    def start(self, folder: Path, notes: list[str]) -> bool:
        self._fh = open(folder / METRICS, "a", encoding="utf-8")
        return True

    def on_steps(self, engine, steps: list[ev.StepEvent]) -> None:
        self.guard(self._write_steps, steps)

    def on_event(self, engine, event: ev.Event) -> None:
        self.guard(self._write, event)

    def _write_steps(self, steps: list[ev.StepEvent]) -> None:
        # printf instead of json.dumps: 1 us instead of 8 per step; the values are finite floats
        self._fh.write("".join(_STEP_LINE % (e.step, e.epoch, e.loss, e.lr, e.samples_per_s) for e in steps))

    def _write(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepEvent):
            self._write_steps([event])
        else:
            self._fh.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")

    def flush(self) -> None:
        self._fh.flush()

    def on_run_end(self, engine) -> None:
        if not self.open:
            return
        self.guard(self.flush)
        try:
            self._fh.close()
        except (OSError, ValueError) as exc:
            self.error = self.error or f"cannot write to {self.folder}: {exc}"
        self.open = False


class TensorBoardLog(_FileLog):
    """TensorBoard event files: the mean loss of each read-out, epoch metrics, memory, and of
    each health sample the per-layer figures (``health/...``) and histograms of the weights and
    gradients (what ``SummaryWriter.add_histogram`` writes, from the sample's buckets)."""

    def __init__(self):
        super().__init__()
        self._tb = None
        self._pending: list = []

    def start(self, folder: Path, notes: list[str]) -> bool:
        try:
            from torch.utils.tensorboard.writer import FileWriter
        except ImportError:
            notes.append("TensorBoard files skipped: the tensorboard package is not installed")
            return False
        self._tb = FileWriter(str(folder / "tensorboard"), flush_secs=10)  # what SummaryWriter writes through
        return True

    def on_steps(self, engine, steps: list[ev.StepEvent]) -> None:
        """One point per read-out keeps TensorBoard's cost off the step time."""
        if steps:
            self.guard(self._write_steps, steps)

    def on_event(self, engine, event: ev.Event) -> None:
        self.guard(self._write, event)

    def _write_steps(self, steps: list[ev.StepEvent]) -> None:
        last = steps[-1]
        self._scalars(last.step, {"train/loss": sum(e.loss for e in steps) / len(steps), "train/lr": last.lr})

    def _write(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepEvent):
            self._write_steps([event])
        elif isinstance(event, ev.EpochEvent):
            values = {"epoch/train_loss": event.train_loss, "epoch/val_loss": event.val_loss,
                      "epoch/val_acc": event.val_acc}
            self._scalars(event.epoch, {k: v for k, v in values.items() if v is not None})
        elif isinstance(event, ev.MemoryEvent):
            values = {"memory/process_rss_mib": event.reading["process_rss"] / 2**20}
            for d in event.reading["devices"]:
                if d["allocated"] is not None:
                    values[f"memory/{d['device']}_allocated_mib"] = d["allocated"] / 2**20
            self._scalars(event.step, values)
        elif isinstance(event, ev.HealthEvent):
            self._health(event)

    def _health(self, event: ev.HealthEvent) -> None:
        values = {}
        for column in ("grad_norm", "update_ratio", "dead_fraction", "act_std"):
            for layer, value in zip(event.layers, getattr(event, column)):
                if value is not None and math.isfinite(value):
                    values[f"health/{column}/{layer}"] = value
        if values:
            self._scalars(event.step, values)
        if event.histograms:
            from torch.utils.tensorboard.summary import histogram_raw

            for tag, h in event.histograms.items():
                counts = h["counts"]
                width = (h["max"] - h["min"]) / len(counts)
                limits = [h["min"] + width * (i + 1) for i in range(len(counts))]
                self._pending.append((histogram_raw(tag, h["min"], h["max"], h["num"], h["sum"], h["sum_squares"],
                                                    limits, counts), event.step))

    def _scalars(self, step: int, values: dict[str, float]) -> None:
        """Several scalars as one TensorBoard event (add_scalar makes one event per value).
        Events wait here until ``flush`` (once per epoch): each hand-over wakes TensorBoard's
        writer thread, which then competes with the training step for the CPU."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()])
        self._pending.append((summary, step))

    def flush(self) -> None:
        """Hand the waiting events to TensorBoard, which writes them to disk itself within
        10 s (its own flush waits on its thread: too slow for every epoch)."""
        if self._pending:
            for summary, step in self._pending:
                self._tb.add_summary(summary, step)
            self._pending.clear()

    def on_run_end(self, engine) -> None:
        if not self.open:
            return
        self.guard(self.flush)
        try:
            self._tb.flush()
            self._tb.close()
        except (OSError, ValueError) as exc:
            self.error = self.error or f"cannot write to {self.folder}: {exc}"
        self._tb = None
        self.open = False


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
