"""Memory probes with one reading type: CUDA devices, Apple MPS, and process / system RAM.

``read()`` never creates a CUDA context: CUDA counters are read only when CUDA is already
initialised in this process (the engine uses it) or when the caller passes the devices it
trains on. Without CUDA, NVML (nvidia-ml-py) reports device totals and usage when installed,
which needs no context either. Process and system RAM come from psutil everywhere.
``MemoryMonitor`` is the engine handler that polls these readings during a run.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import psutil
import torch

from workbench.training import events as ev

_PROCESS = psutil.Process()


@dataclass(frozen=True)
class DeviceMemory:
    """One accelerator, in bytes. ``None`` where the backend cannot tell."""

    device: str  # "cuda:0", "mps"
    allocated: int | None  # held by tensors
    reserved: int | None  # held by the caching allocator (>= allocated)
    peak: int | None  # max allocated since the last reset
    total: int | None  # the device's memory
    used: int | None = None  # in use by every process on the device (NVML / cudaMemGetInfo)
    source: str = "torch"

    @property
    def fraction(self) -> float | None:
        """Reserved (else used) share of the device, 0..1."""
        held = self.reserved if self.reserved is not None else self.used
        if held is None or not self.total:
            return None
        return held / self.total


@dataclass(frozen=True)
class MemoryReading:
    time: float
    process_rss: int  # resident memory of this process, bytes
    process_peak: int | None  # peak resident memory of this process, bytes
    system_total: int
    system_available: int
    devices: tuple[DeviceMemory, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["devices"] = [asdict(d) for d in self.devices]
        return out

    def device(self, name: str) -> DeviceMemory | None:
        return next((d for d in self.devices if d.device == name), None)


def read(devices: list[torch.device | str] | None = None) -> MemoryReading:
    """One reading now. ``devices`` adds those accelerators even if CUDA is not yet initialised
    (only pass a device the caller is about to use: reading it creates its context)."""
    vm = psutil.virtual_memory()
    found: list[DeviceMemory] = []
    wanted = [torch.device(d) for d in (devices or [])]
    found.extend(_cuda(wanted))
    if any(d.type == "mps" for d in wanted):
        mps = _mps()
        if mps is not None:
            found.append(mps)
    rss = _PROCESS.memory_info().rss
    peak = process_peak_rss()
    return MemoryReading(time.time(), rss, None if peak is None else max(peak, rss), vm.total, vm.available,
                         tuple(found))


def process_peak_rss() -> int | None:
    """Peak resident set size of this process in bytes."""
    try:
        import resource
    except ImportError:  # Windows
        info = _PROCESS.memory_info()
        return getattr(info, "peak_wset", None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def _cuda(wanted: list[torch.device]) -> list[DeviceMemory]:
    asked = sorted({d.index or 0 for d in wanted if d.type == "cuda"})
    if not (torch.cuda.is_initialized() or asked):
        return _nvml()
    indices = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else asked
    out = []
    skipped = False
    for i in indices:
        if i not in asked and not _has_context(i):  # reading it would create a context there (~0.5 GB)
            skipped = True
            continue
        free, total = torch.cuda.mem_get_info(i)
        out.append(DeviceMemory(f"cuda:{i}", torch.cuda.memory_allocated(i), torch.cuda.memory_reserved(i),
                                torch.cuda.max_memory_allocated(i), total, used=total - free))
    if skipped:  # the devices this process does not use: NVML can still tell their totals
        read_here = {d.device for d in out}
        out += [d for d in _nvml() if d.device not in read_here]
        out.sort(key=lambda d: int(d.device.split(":")[1]))
    return out


def _has_context(index: int) -> bool:
    """Whether this process already has a CUDA context on the device (reading one without
    creates it). torch keeps the check private; without it only the current device counts."""
    check = getattr(torch._C, "_cuda_hasPrimaryContext", None)
    return bool(check(index)) if check is not None else index == torch.cuda.current_device()


def _nvml() -> list[DeviceMemory]:
    """Device totals without a CUDA context, when nvidia-ml-py is installed."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: no devices
        return []
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i))
            out.append(DeviceMemory(f"cuda:{i}", None, None, None, int(info.total), used=int(info.used),
                                    source="nvml"))
        return out
    finally:
        pynvml.nvmlShutdown()


def _mps() -> DeviceMemory | None:
    backend = getattr(torch.backends, "mps", None)
    if backend is None or not backend.is_available():
        return None
    try:
        total = int(torch.mps.recommended_max_memory())
    except (AttributeError, RuntimeError):
        total = None
    return DeviceMemory("mps", int(torch.mps.current_allocated_memory()), int(torch.mps.driver_allocated_memory()),
                        None, total, source="torch.mps")


def reset_peak(device: torch.device | str) -> None:
    """Start a new peak window on a device the caller uses."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats(device)


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    if abs(n) < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{value:.1f} TiB"


class MemoryMonitor(ev.Handler):
    """Memory readings during a run, as MemoryEvents: one when the run starts, then at a loss
    read-out or an epoch's end once ``every_s`` seconds have passed since the last one."""

    def __init__(self, every_s: float = 2.0):
        self.every_s = every_s
        self.last = 0.0

    def on_event(self, engine, event: ev.Event) -> None:
        if isinstance(event, ev.StartedEvent) or (isinstance(event, ev.EpochEvent) and self.due()):
            self.poll(engine)

    def on_steps(self, engine, steps: list[ev.StepEvent]) -> None:
        if self.due():
            self.poll(engine)

    def due(self) -> bool:
        return time.perf_counter() - self.last >= self.every_s

    def poll(self, engine) -> None:
        """Read now (the training device only: never a context on another GPU) and emit it."""
        self.last = time.perf_counter()
        device = engine.device
        engine.emit(ev.MemoryEvent(engine.step, read([device] if device is not None and device.type != "cpu"
                                                     else None).to_dict()))
