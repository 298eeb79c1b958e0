"""``workbench train FILE [--epochs N] [--device D] [--out DIR] [--resume CKPT] [--set NAME=VALUE ...]``.

``--set training.optimizer.type=Adadelta --set training.optimizer.lr=1.0`` changes any setting
of the project for this run (the file is not changed): the value is JSON (numbers, true/false,
lists, objects) or else text, and the changed project is checked as a file would be, so a bad
name or value is one ``error:`` line naming the setting (exit 2).

Runs the same Engine the window runs, in the main thread, with a progress line on stderr
and a summary on stdout. Ctrl-C asks the engine to stop after the current step; it saves
``last.ckpt`` and the command prints how to resume (exit 130). A second Ctrl-C aborts.
Exit 0 when training finished, 2 on bad input and on anything else the message asks the person
to fix (a run folder another run is using, a full disk), 1 when training itself failed (a loss
that became NaN, out of memory, an unexpected error).

The engine locks the run folder (workbench/training/run_lock.py): a second run into a folder a
live run is using ends at once with exit 2 and one ``error:`` line naming the folder and the
other run's pid. A run that takes over the lock of a killed run, or removes the temp files a
killed run left, says so in a ``note:`` line.

Under ``torchrun ... -m workbench train FILE`` every process runs this command and trains
with DDP (workbench/training/distributed.py): only rank 0 prints and writes; Ctrl-C or the SIGTERM
torchrun forwards stops all processes at the same step, with a checkpoint.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from workbench import fileio
from workbench.cli.common import load_project, printable
from workbench.errors import WorkbenchError
from workbench.progress import Progress, clock
from workbench.training import events as ev


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a .wbproj project or a template name")
    parser.add_argument("--epochs", type=int, help="train to this many epochs in total (overrides the project)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (overrides the project)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="run folder for metrics.jsonl and checkpoints (default: <project>.runs/<time>)")
    parser.add_argument("--resume", type=Path, metavar="CKPT",
                        help="continue from a checkpoint (last.ckpt, or the run folder holding it)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="settings",
                        help="change a setting for this run, e.g. training.optimizer.type=Adadelta, "
                        "training.schedule={\"type\": \"StepLR\", \"step_size\": 1, \"gamma\": 0.7}, "
                        "training.optimizer.lr_scale={\"backbone\": 0.1} (repeatable; the file is not changed)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output, only the summary")
    parser.add_argument("--dist-timeout", type=float, metavar="SECONDS",
                        help="under torchrun: how long a process waits for the others before it gives up with an "
                        "error (default 600), so one failed or stuck process cannot hang the rest forever")
    parser.epilog = ("Distributed: torchrun --nproc-per-node N -m workbench train FILE runs N processes with DDP "
                     "(nccl on CUDA, one GPU each; gloo on CPU). data.batch_size is per process: the global batch "
                     "is data.batch_size x N (x nodes). Only rank 0 prints progress and writes metrics.jsonl, "
                     "checkpoints, TensorBoard and the project's run record. A checkpoint resumes under any number "
                     "of processes.")


def run(args) -> int:
    from workbench.training import distributed
    from workbench.training.engine import resolve_device

    proj = load_project(args.file)
    if getattr(args, "settings", None):
        proj = with_settings(proj, args.settings)
    if args.epochs is not None and args.epochs < 1:
        raise WorkbenchError(f"the number of epochs (--epochs) must be 1 or more, got {args.epochs}")
    if args.device is not None:
        resolve_device(args.device)
    if args.resume is not None:
        from workbench.training.checkpoint import resolve

        if not fileio.is_file(resolve(args.resume)):
            raise WorkbenchError(f"no checkpoint at {args.resume} (--resume); pass a last.ckpt or its run folder")
    with distributed.session(args.device or proj.training.device, getattr(args, "dist_timeout", None)) as par:
        code = _train(args, proj, par)
    if par is not None:
        distributed.leave(code)  # never returns: see there
    return code


def with_settings(proj, assignments: list[str]):
    """The project with ``NAME=VALUE`` settings changed, checked as a project file is."""
    import json

    from workbench.project import project_file as project

    data = proj.to_json()
    for text in assignments:
        name, eq, raw = text.partition("=")
        parts = name.strip().split(".")
        if not eq or parts[0] not in ("data", "training") or len(parts) < 2 or not all(parts):
            raise WorkbenchError(f"{text!r} (--set): give NAME=VALUE with a setting name such as "
                                 "training.optimizer.lr or data.batch_size")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        section = data.setdefault(parts[0], {})
        for part in parts[1:-1]:
            section = section.setdefault(part, {})
            if not isinstance(section, dict):
                raise WorkbenchError(f"{text!r} (--set): {part} is not a section of settings")
        section[parts[-1]] = value
    changed = project.from_json(data, f"{proj.path or 'the project'} with --set")
    changed.path = proj.path
    changed.runs = proj.runs
    return changed


def _train(args, proj, par) -> int:
    """Train in this process; ``par`` is this process's place under torchrun (None alone)."""
    from workbench.insight import health
    from workbench.training import distributed
    from workbench.training.engine import Engine

    main = par is None or par.is_main
    progress = ProgressLine(sys.stderr, quiet=args.quiet or not main)
    engine = Engine(proj, run_dir=args.out, handlers=[*health.handlers(), progress], resume_from=args.resume,
                    device=args.device if par is None else par.device_name, epochs=args.epochs, parallel=par)
    if par is not None and main and not args.quiet:
        for line in [par.describe(engine.data_settings.batch_size), *(f"note: {n}" for n in par.notes)]:
            progress.line(line)
    signals = (signal.SIGINT,) if par is None else (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signals}

    def on_sigint(signum, frame):
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts at once
        progress.message("stopping after this step (Ctrl-C again to abort)")
        engine.controls.stop()

    def on_stop_signal(signum, frame):  # torchrun forwards Ctrl-C / SIGTERM to every process once
        if main:
            progress.message(f"stopping: every process stops at the next loss read-out "
                             f"(within {engine.settings.log_every} steps) and rank 0 saves a checkpoint")
        par.request_stop()

    for s in signals:
        signal.signal(s, on_sigint if par is None else on_stop_signal)
    try:
        end = engine.run()
        if par is not None and isinstance(end, (ev.FinishedEvent, ev.StoppedEvent)):  # both agreed: all ranks here
            prints = distributed.compare_weights(par, engine.model)
            if engine.record is not None:
                engine.record.update(processes=par.world_size, weights=prints)
            if len(set(prints)) > 1:
                progress.message(f"warning: the processes ended with different weights ({', '.join(prints)}); "
                                 "rank 0's were saved")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    progress.close()
    if main:
        _save_record(proj, engine.record)
    if isinstance(end, ev.FinishedEvent):
        if main:
            print(summary(end))
            for line in test_lines(end):
                print(printable(line))
        return 0
    if isinstance(end, ev.StoppedEvent):
        if main:
            print(f"stopped at step {end.step} (epoch {end.epoch}) after {clock(end.seconds)}; resume with: "
                  f"workbench train {args.file} --resume {end.checkpoint}")
        return 130
    who, message = "", end.message
    if par is not None:  # a failure may be one process's own: never silent on other ranks
        who, message = ("" if main else f"rank {par.rank}: "), distributed.explain_failure(par, message)
    text = ' | '.join(line.strip() for line in message.splitlines() if line.strip())
    # one write: stderr to a pipe is unbuffered, and print() writes the text and its newline apart, so
    # under torchrun two processes' lines could run together into one (seen in CI)
    sys.stderr.write(f"{who}error: {text}\n")
    return 2 if end.phase == "setup" or end.fixable else 1


def summary(end: ev.FinishedEvent) -> str:
    if end.best_val_acc is not None:
        best = f"best val acc {end.best_val_acc:.4f} (epoch {end.best_epoch}, val loss {end.best_val_loss:.4f})"
    elif end.best_val_loss is not None:
        best = f"best val loss {end.best_val_loss:.4f} (epoch {end.best_epoch})"
    else:
        best = "no validation data"
    early = f", {end.message}" if end.message else ""
    held = f"; the model holds epoch {end.restored_epoch}'s weights (best.ckpt)" if end.restored_epoch else ""
    return (f"finished {end.epochs} epochs ({end.step} steps) in {clock(end.seconds)}{early}: {best}{held}; "
            f"run folder {end.run_dir}")


def test_lines(end: ev.FinishedEvent) -> list[str]:
    """The final model's test metrics as ``workbench evaluate`` prints them, where the data has a
    test part (with only validation data the summary line already gives its best figure)."""
    if not end.evaluation or end.evaluation.get("split") != "test":
        return []
    from workbench.training import evaluation

    title, *table = evaluation.Report.from_dict(end.evaluation).lines()
    return [f"final weights on the {title}", *table]


def _save_record(proj, record: dict | None) -> None:
    """Add the run to the project file's history, re-reading it so edits made meanwhile stay."""
    if record is None or proj.path is None:
        return
    from workbench.project import project_file as project

    try:
        current = project.load(proj.path)
        current.runs.append(record)
        project.save(current)
    except WorkbenchError as exc:
        print(f"warning: the run was not added to {proj.path}: {exc}", file=sys.stderr)


class ProgressLine:
    """Turns engine events into a progress line (a terminal) or one line per epoch (a log);
    the counting and the ETA are workbench.progress.Progress's."""

    BAR = 20

    def __init__(self, stream, quiet: bool = False):
        self.stream, self.quiet = stream, quiet
        self.live = hasattr(stream, "isatty") and stream.isatty()
        self.progress: Progress | None = None
        self.t_drawn = 0.0
        self.drawn = False

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.AlertEvent):  # a warning, not progress: said under --quiet too
            self.line(f"warning: {printable(event.text())}")
            return
        if self.quiet:
            return
        if isinstance(event, ev.StartedEvent):
            self.progress = Progress(event.epochs, event.steps_per_epoch, start_step=event.start_step,
                                     start_epoch=event.start_epoch)
            self.line(f"training on {event.device}: {event.epochs} epochs x {event.steps_per_epoch} steps, batch "
                      f"{event.batch_size}, {event.params:,} parameters ({event.trainable:,} trainable); "
                      f"{event.task['description']}; run folder {event.run_dir}")
            for note in event.notes:
                self.line(f"note: {note}")
        elif isinstance(event, ev.StepEvent) and self.progress is not None:
            self.progress.on_step(event.step, event.epoch, event.samples_per_s)
            now = time.monotonic()
            if self.live and (now - self.t_drawn >= 0.1 or event.step == self.progress.total):
                self.t_drawn = now
                self.draw(event)
        elif isinstance(event, ev.EpochEvent) and self.progress is not None:
            self.progress.on_epoch(event.epoch, event.seconds)
            parts = [f"epoch {event.epoch}/{self.progress.epochs}", f"train loss {event.train_loss:.4f}"]
            if event.val_loss is not None:
                parts.append(f"val loss {event.val_loss:.4f}")
            if event.val_acc is not None:
                parts.append(f"val acc {event.val_acc:.4f}")
            self.line(", ".join(parts) + f" ({event.seconds:.1f} s, {self.progress.rate:,.0f} samples/s, "
                      f"ETA {self.progress.eta_text()})" + (" *best" if event.best else ""))
        elif isinstance(event, (ev.FreezeEvent, ev.LrEvent, ev.PausedEvent, ev.ResumedEvent)):
            self.line(f"{event.kind}: " + ", ".join(f"{k}={v}" for k, v in event.to_dict().items() if k != "event"))

    def draw(self, e: ev.StepEvent) -> None:
        p = self.progress
        filled = int(self.BAR * e.step / max(1, p.total))
        bar = "#" * filled + "." * (self.BAR - filled)
        text = (f"\repoch {e.epoch}/{p.epochs} [{bar}] step {e.step}/{p.total} loss {e.loss:.4f} "
                f"{e.samples_per_s:,.0f} samples/s ETA {p.eta_text()}")
        self.stream.write(text + "\x1b[K")
        self.stream.flush()
        self.drawn = True

    def line(self, text: str) -> None:
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.line(text)

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.drawn = False
        self.stream.flush()
