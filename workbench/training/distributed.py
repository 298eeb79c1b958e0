"""Training on several processes under ``torchrun``: PyTorch's own DDP, nothing home-made.

``torchrun --nproc-per-node N -m workbench train FILE`` starts N copies of ``workbench
train``; each learns its place from the environment torchrun sets (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR/PORT). ``session`` reads it, joins the process group (nccl on CUDA
with the device ``cuda:LOCAL_RANK``, gloo on CPU) with a timeout, and hands the engine a
``DistributedParallel``; the group is destroyed on the way out, after a failure too.

What a run means under DDP:

- ``data.batch_size`` is per process: the global batch is batch_size x world size. Process r
  takes every world_size-th example of the epoch's shuffled order (data.EpochBatches, like
  DistributedSampler), so global batch k holds exactly the examples of batch k of a single
  process with batch_size x world size, and DDP's gradient average over equal shards is the
  mean over that global batch. The two runs agree to float rounding (tests/core/test_distributed.py)
  when the training set divides by the world size (else the last batch is padded by wrapping,
  as DistributedSampler does), the model has no BatchNorm (it normalises each process's shard;
  running statistics are rank 0's) and no dropout (each process draws its own masks).
- Losses and validation metrics are summed over processes before they are logged: what the
  log says is global. Validation is sharded too, without padding.
- Only rank 0 writes: metrics.jsonl, TensorBoard, checkpoints, the project's run record and the
  progress bar (the engine's ``is_main``); other ranks are quiet except for their own errors.
- Stopping (Ctrl-C, or the SIGTERM torchrun forwards) is agreed: a process asked to stop says
  so at the next loss read-out, where all processes compare notes, and all stop at that step.
- Checkpoints hold the unwrapped model, the world size and the batch size, so a run resumes
  under another world size at the same example of the epoch (``resume_position``).
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
from torch import nn

from workbench.errors import WorkbenchError
from workbench.training.loop import Parallel

DEFAULT_TIMEOUT_S = 600
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Launch:
    """Where torchrun put this process."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def launched() -> bool:
    """True in a process started by torchrun (or anything setting its variables)."""
    return all(name in os.environ for name in ENV)


def read_env(env=os.environ) -> Launch:
    values = {}
    for name in (*ENV, "LOCAL_WORLD_SIZE"):
        raw = env.get(name, env.get("WORLD_SIZE") if name == "LOCAL_WORLD_SIZE" else None)
        try:
            values[name] = int(raw)
        except (TypeError, ValueError):
            raise WorkbenchError(f"torchrun's environment variable {name} is {raw!r}, not a number; start "
                                 "the run with torchrun (see README: Distributed training)") from None
    launch = Launch(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"], values["LOCAL_WORLD_SIZE"])
    if not 0 <= launch.rank < launch.world_size:
        raise WorkbenchError(f"RANK={launch.rank} does not fit WORLD_SIZE={launch.world_size}")
    return launch


def choose_device(requested: str | None, local_rank: int) -> tuple[torch.device, str, list[str]]:
    """(device, backend, notes) for this process: one GPU per process (cuda:LOCAL_RANK) with
    nccl, or the CPU with gloo."""
    requested = requested or "auto"
    notes: list[str] = []
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise WorkbenchError(f"device {requested!r} was asked for but PyTorch sees no CUDA GPU here; use "
                                 "--device cpu (gloo) or run where the GPUs are")
        if local_rank >= count:
            raise WorkbenchError(f"process LOCAL_RANK={local_rank} has no GPU of its own: this node has {count}; "
                                 f"use --nproc-per-node {count} (one process per GPU) or --device cpu")
        if requested not in ("cuda", f"cuda:{local_rank}"):
            notes.append(f"device {requested} ignored under torchrun: each process uses its own GPU, "
                         f"cuda:LOCAL_RANK (this one cuda:{local_rank})")
        return torch.device("cuda", local_rank), "nccl", notes
    if requested == "mps":
        raise WorkbenchError("DDP does not run on Apple's mps device; use --device cpu under torchrun")
    if requested != "cpu":
        raise WorkbenchError(f"unknown device {requested!r}; use auto, cpu or cuda under torchrun")
    return torch.device("cpu"), "gloo", notes


class DistributedParallel(Parallel):
    """``Parallel`` for a process in a torch.distributed group: DDP wrapping, sums over
    processes, an agreed stop. Every method here is a collective unless it says otherwise:
    all processes must call it, in the same order."""

    def __init__(self, rank: int, world_size: int, device: torch.device, backend: str,
                 local_world_size: int | None = None, notes: list[str] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__(rank, world_size)
        for name, value in (("device", device), ("backend", backend), ("timeout_s", timeout_s),
                            ("local_world_size", local_world_size or world_size),
                            ("notes", list(notes or [])), ("_stop", threading.Event())):
            object.__setattr__(self, name, value)  # the base is a frozen dataclass

    @property
    def device_name(self) -> str:
        return str(self.device)

    def describe(self, batch_size: int) -> str:
        return (f"distributed: {self.world_size} processes ({self.backend} on {self.device.type}); global batch "
                f"{batch_size * self.world_size} = {batch_size} per process x {self.world_size}")

    # -------------------------------------------------------------- any thread, not collective
    def request_stop(self) -> None:
        """Ask for a stop; it happens at the next loss read-out, on every process at once."""
        self._stop.set()

    # -------------------------------------------------------------- collectives
    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        if not any(p.requires_grad for p in model.parameters()):
            return model  # nothing learns, so there are no gradients to average (DDP refuses such a model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        with self._talking("starting DDP (it checks every process has the same model)"):
            return DDP(model, device_ids=ids, output_device=ids[0] if ids else None)

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        with self._talking("summing metrics"):
            dist.all_reduce(t)
        return t

    @contextmanager
    def _talking(self, what: str):
        """A collective that failed (a peer died, or none answered within the timeout) ends
        this process with a message that says so, not a bare gloo/nccl error."""
        try:
            yield
        except RuntimeError as exc:  # DistBackendError and gloo's timeouts are RuntimeErrors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WorkbenchError(f"process {self.rank} lost the other processes while {what} ({first}): one of them "
                                 f"failed or hangs (its own error is printed above) or did not answer within "
                                 f"{self.timeout_s:g} s (raise --dist-timeout if some are just slow)") from None

    def reduce_steps(self, losses: torch.Tensor, meta: list[tuple[float, int]]):
        """One all-reduce per read-out: each step's loss weighted by its examples, the examples,
        and whether any process was asked to stop."""
        n = torch.tensor([float(c) for _, c in meta], dtype=torch.float64, device=losses.device)
        stop = torch.tensor([1.0 if self._stop.is_set() else 0.0], dtype=torch.float64, device=losses.device)
        packed = self.sum(torch.cat([losses.double() * n, n, stop]))
        k = len(meta)
        counts = packed[k:2 * k]
        values = (packed[:k] / counts.clamp(min=1)).tolist()
        return values, [(lr, int(c)) for (lr, _), c in zip(meta, counts.tolist())], bool(packed[-1] > 0)

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The plain module, with rank 0's buffers (BatchNorm statistics): what the checkpoint
        holds is what every shard is validated with. Plain forwards: no DDP collectives, so
        shards of different sizes cannot deadlock."""
        import torch.distributed as dist

        inner = model.module if _is_ddp(model) else model
        with self._talking("sharing BatchNorm statistics"):
            for buf in inner.buffers():
                dist.broadcast(buf, src=0)
        return inner

    def gather(self, obj) -> list:
        import torch.distributed as dist

        out: list = [None] * self.world_size
        with self._talking("gathering results"):
            dist.all_gather_object(out, obj)
        return out


def _is_ddp(model: nn.Module) -> bool:
    from torch.nn.parallel import DistributedDataParallel as DDP

    return isinstance(model, DDP)


@contextmanager
def session(device: str | None, timeout_s: float | None = None) -> Iterator[DistributedParallel | None]:
    """Join torchrun's process group for the ``with`` block; yields None when not under
    torchrun (or with a world of one). ``timeout_s`` bounds every wait on other processes:
    one that died or hangs ends the others with an error instead of a hang."""
    if not launched():
        yield None
        return
    launch = read_env()
    if launch.world_size == 1:
        yield None
        return
    import torch.distributed as dist

    dev, backend, notes = choose_device(device, launch.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    timeout_s = float(timeout_s or DEFAULT_TIMEOUT_S)
    timeout = timedelta(seconds=timeout_s)
    try:
        dist.init_process_group(backend, timeout=timeout, device_id=dev if dev.type == "cuda" else None)
    except Exception as exc:  # noqa: BLE001 - rendezvous errors come in many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkbenchError(f"process {launch.rank} of {launch.world_size} could not join the others "
                             f"({backend}): {first}; check --rdzv-endpoint / MASTER_ADDR and that every node "
                             "can reach it") from None
    par = DistributedParallel(launch.rank, launch.world_size, dev, backend, launch.local_world_size, notes, timeout_s)
    try:
        yield par
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- after the run

def leave(code: int) -> None:
    """End a torchrun worker now, after the process group is destroyed and every file closed.

    PyTorch 2.14.1's gloo sometimes aborts a process in its C++ teardown at interpreter exit
    ("terminate called without an active exception", SIGABRT): 7 of 60 runs of a plain
    init / DDP / destroy_process_group script here, so torchrun reported a finished run as
    failed. Leaving with os._exit skips that teardown (0 of 45 runs)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


LOST = ("Timed out", "timed out", "Connection closed", "Connection reset", "Broken pipe", "DistBackendError",
        "NCCL error", "ProcessGroup")


def explain_failure(par: DistributedParallel, message: str) -> str:
    """A failure inside DDP's own collectives (the gradient all-reduce) reads as a bare
    gloo/nccl error: say what it means under torchrun."""
    if "lost the other processes" in message or not any(word in message for word in LOST):
        return message
    return (f"{message}; under torchrun this means another process failed or hangs (its own error is printed "
            f"above) or none answered within {par.timeout_s:g} s (raise --dist-timeout if some are just slow)")


def fingerprint(model: nn.Module) -> str:
    """A short hash of a module's parameters (names, shapes, dtypes, exact bytes)."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        t = p.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def compare_weights(par: DistributedParallel, model: nn.Module) -> list[str]:
    """Every process's parameter fingerprint, in rank order (a collective): DDP keeps the
    copies identical, this shows it."""
    return par.gather(fingerprint(model))


# ---------------------------------------------------------------- resuming elsewhere

def resume_position(state: dict, batch_size: int, world_size: int, notes: list[str],
                    total_steps: int | None = None) -> dict:
    """A checkpoint's position for a run with another world size or batch size.

    The position is kept as examples of the epoch's shuffled order (which does not depend on
    the world size): ``batch`` batches of batch_size x world_size. A checkpoint from an epoch's
    end always resumes exactly; one from the middle of an epoch resumes exactly when a
    global batch boundary of the new run falls on the same example, otherwise from the
    boundary before it (those few examples are seen twice, which the note says).
    ``total_steps``: the new run's one-cycle length; a schedule planned for another number of
    steps per epoch cannot go on, and that is refused."""
    pos = dict(state["position"])
    then_ws = int(state.get("world_size", 1))
    then_bs = int(state.get("batch_size") or batch_size)
    if (then_ws, then_bs) == (world_size, batch_size):
        return pos
    then_g, now_g = then_bs * then_ws, batch_size * world_size
    planned = (state.get("scheduler") or {}).get("total_steps")
    if total_steps is not None and planned is not None and planned != total_steps:
        raise WorkbenchError(f"the one-cycle schedule of this checkpoint was planned for {planned} steps with a "
                             f"global batch of {then_g} ({then_bs} per process x {then_ws}); this run would take "
                             f"{total_steps} steps with {now_g}: resume with a global batch of {then_g} "
                             "(data.batch_size x processes)")
    if then_ws != world_size:
        notes.append(f"the checkpoint was written by {then_ws} process(es) with a global batch of {then_g}; this run "
                     f"has {world_size} with a global batch of {now_g}" +
                     ("" if then_g == now_g else ": each step averages over a different number of examples"))
    seen = pos["batch"] * then_g
    pos["batch"], rest = divmod(seen, now_g)
    if rest:
        notes.append(f"the checkpoint is {seen} examples into epoch {pos['epoch'] + 1}, which is not a whole "
                     f"number of global batches of {now_g}: the epoch goes on from example {seen - rest}, so "
                     f"{rest} examples are seen twice (resume from an epoch's end to avoid this)")
    return pos


# ---------------------------------------------------------------- the command a person runs

def torchrun_command(project: str, nproc: int, *, nnodes: int = 1, endpoint: str = "", run_id: str = "",
                     out: str | None = None, device: str | None = None, launcher: list[str] | None = None) -> list[str]:
    """The argv of ``torchrun ... -m workbench train PROJECT``: ``--standalone`` on one node
    (a free local port), the c10d rendezvous at ``endpoint`` on several (the same command on
    every node). ``launcher`` is how to start torchrun (default: ``torchrun``)."""
    if nproc < 1 or nnodes < 1:
        raise WorkbenchError("processes per node and nodes must be 1 or more")
    argv = list(launcher or ["torchrun"])
    if nnodes == 1:
        argv += ["--standalone", f"--nproc-per-node={nproc}"]
    else:
        if not endpoint.strip():
            raise WorkbenchError("a multi-node run needs a rendezvous endpoint (host:port of one node every node "
                                 "can reach, e.g. node1:29400)")
        argv += [f"--nnodes={nnodes}", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
                 f"--rdzv-endpoint={endpoint.strip()}", f"--rdzv-id={run_id.strip() or 'workbench'}"]
    argv += ["-m", "workbench", "train", str(project)]
    if out:
        argv += ["--out", str(out)]
    if device:
        argv += ["--device", device]
    return argv
