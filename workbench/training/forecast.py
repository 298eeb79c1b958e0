"""The memory a training run will need at batch B, before it starts, and the largest batch that fits.

A forecast adds up what a training step holds at its worst moment:

- **parameters** (and buffers): ``build.memory_need``'s weight figure, in the chosen dtype;
- **gradients**: one per trainable parameter;
- **optimizer state**: values per trainable parameter, read from the optimizer itself (one
  step of the project's optimizer, with its own settings, on a small parameter: Adam and AdamW
  keep 2, SGD with momentum 1, plain SGD 0, AMSGrad 3; any torch optimiser is measured the same
  way, so no table goes stale);
- **activations**: what the forward pass saves for the backward pass, per layer
  (``model.costs``), times the batch;
- **workspace**: beyond the saved activations, the gradients of activations alive at the worst
  moment of the backward pass (``ModelCosts.peak_activations``), or the optimizer update's own
  temporaries when they are larger (they live when the activations are gone);
- **overhead** on CUDA: the CUDA context and the caching allocator's rounding. These two are
  estimates from the allocator's rules (blocks rounded up to 512 B, large ones to 2 MiB
  segments) and a typical context size; they are not measured here.

Everything but the overhead is measured on the meta device and checked against the peak that
torch's profiler records on the CPU (tests/core/test_costs.py, bench/bench_costs.py).
``capacity`` is what the device offers: a CUDA device's total memory, or the RAM free now on
the CPU (psutil). ``largest_batch`` solves the (linear in B) forecast for it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import psutil
import torch
from torch import nn

from workbench.model import build, costs
from workbench.model.spec import ModelSpec
from workbench.project.settings import OptimizerSettings
from workbench.training import memory, optim

CUDA_CONTEXT = 500 * 2**20  # bytes a CUDA context takes on the device (CUDA 12 with lazy loading: ~300-600 MiB)
_SMALL_BLOCK = 512  # the caching allocator rounds every block up to 512 B
_SEGMENT = 2 * 2**20  # and keeps large blocks in 2 MiB-rounded segments
_STATE_CACHE: dict[str, float] = {}


@dataclass(frozen=True)
class Forecast:
    """Bytes one training step needs at ``batch`` on ``device``, by part."""

    batch: int
    device: str
    dtype: str
    parameters: int
    gradients: int
    optimizer: int
    activations: int
    workspace: int
    overhead: int
    per_example: int  # activations + workspace of one example (the part that grows with the batch)
    state_per_value: float  # optimizer values kept per trainable parameter

    @property
    def fixed(self) -> int:
        """Bytes that do not grow with the batch."""
        return self.parameters + self.gradients + self.optimizer + self.overhead

    @property
    def total(self) -> int:
        return self.fixed + self.activations + self.workspace

    def parts(self) -> dict[str, int]:
        return {"parameters": self.parameters, "gradients": self.gradients, "optimizer": self.optimizer,
                "activations": self.activations, "workspace": self.workspace, "overhead": self.overhead}

    def to_dict(self) -> dict:
        return {"batch": self.batch, "device": self.device, "dtype": self.dtype, **self.parts(),
                "total": self.total, "optimizer_values_per_parameter": self.state_per_value}


def state_per_value(o: OptimizerSettings) -> float:
    """Optimizer values kept per parameter value: one step of ``o``'s optimizer, with its own
    arguments, on a small parameter, and its state counted (per-parameter tensors only)."""
    o = dataclasses.replace(o, lr_scale={})
    key = repr(o)
    if key not in _STATE_CACHE:
        size = 64
        p = nn.Parameter(torch.zeros(size))
        opt = optim.make_optimizer([p], o)
        p.grad = torch.full((size,), 1e-3)
        opt.step()
        kept = sum(v.numel() for v in opt.state[p].values() if torch.is_tensor(v) and v.numel() == size)
        _STATE_CACHE[key] = kept / size
    return _STATE_CACHE[key]


def forecast(spec: ModelSpec, batch: int, optimizer: OptimizerSettings | None = None, device: str = "cpu",
             dtype: str = "float32", info: build.ModelInfo | None = None,
             model_costs: costs.ModelCosts | None = None) -> Forecast:
    """The forecast for ``spec`` trained at ``batch`` with ``optimizer`` (Adam by default)."""
    info = build.infer(spec) if info is None else info
    model_costs = costs.costs(spec, info, dtype) if model_costs is None else model_costs
    size = costs.element_size(dtype)
    weights = build.memory_need(info, batch)[0] * size // 4  # memory_need counts float32 weights
    trainable = info.trainable_params * size
    per_value = state_per_value(optimizer or OptimizerSettings())
    state = int(trainable * per_value)
    saved = model_costs.activations
    per_example = model_costs.peak_activations
    cuda = device.startswith("cuda")
    # the update's own temporaries: torch's CPU optimisers go tensor by tensor (about two copies of
    # the largest); on CUDA the foreach versions work on every tensor at once (about one copy of all)
    largest = max((r.trainable or 0 for r in info.rows() if not r.children), default=0) * size
    update = (trainable if cuda else 2 * largest) if per_value else 0
    overhead = _cuda_overhead(info, per_value, model_costs) if cuda else 0
    workspace = max(per_example * batch, update) - saved * batch
    return Forecast(batch, device, dtype, weights, trainable, state, saved * batch, workspace,
                    overhead, per_example, per_value)


def _cuda_overhead(info: build.ModelInfo, per_value: float, model_costs: costs.ModelCosts) -> int:
    """The CUDA context and the allocator's rounding: every parameter, gradient and state tensor
    and every saved activation rounded up to 512 B, and the last 2 MiB segment of each pool."""
    tensors = sum(1 for r in info.rows() if r.params and not r.children) * 2  # weight and bias, roughly
    tensors *= 2 + max(1, round(per_value))
    tensors += len(model_costs.rows) * 2
    return CUDA_CONTEXT + tensors * _SMALL_BLOCK + 2 * _SEGMENT


def capacity(device: str) -> int | None:
    """Bytes the device offers a run: a CUDA device's total memory, Apple MPS's recommended
    limit, or the RAM free now (CPU). None where it cannot tell."""
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else 0
        found = memory.read().device(f"cuda:{index}")  # NVML or an existing context: creates none
        if found is not None and found.total:
            return found.total
        if torch.cuda.is_available() and index < torch.cuda.device_count():
            return torch.cuda.get_device_properties(index).total_memory
        return None
    if dev.type == "mps" and hasattr(torch, "mps") and torch.backends.mps.is_available():
        return int(torch.mps.recommended_max_memory())
    return psutil.virtual_memory().available


def largest_batch(f: Forecast, available: int) -> int:
    """The largest batch whose forecast fits in ``available`` bytes (0: not even one example)."""
    if f.fixed + f.activations + f.workspace - f.per_example * f.batch > available:
        return 0  # the update's temporaries alone do not fit
    if f.per_example <= 0:
        return 2**31 - 1
    return max(0, (available - f.fixed) // f.per_example)


def fit_note(f: Forecast, available: int | None) -> str | None:
    """A sentence for the run's notes when the forecast does not fit; None when it does."""
    if available is None or f.total <= available:
        return None
    where = "free RAM" if f.device == "cpu" else f"memory on {f.device}"
    most = largest_batch(f, available)
    hint = f"a batch of at most {most} fits" if most > 0 else "not even a batch of 1 fits"
    return (f"memory: a batch of {f.batch} is forecast to need {build.human_bytes(f.total)}, but only "
            f"{build.human_bytes(available)} of {where} is available ({hint}); the run may fail or swap")


def run_note(spec: ModelSpec, batch: int, optimizer: OptimizerSettings, device: str) -> str | None:
    """The engine's warning before a run whose forecast does not fit the device; None when it fits.
    A model far inside the device's memory by ``build.memory_need``'s closed-form figures (five
    times its weights: weights, gradients, up to three optimizer values; four times every
    layer's output) is not measured, so most runs start without the forecast's meta passes."""
    available = capacity(device)
    if available is None:
        return None
    weights, outputs = build.memory_need(build.infer(spec), batch)
    if weights * 5 + outputs * 4 <= available:
        return None
    return fit_note(forecast(spec, batch, optimizer, device), available)


def measure_peak(spec: ModelSpec, batch: int, optimizer: OptimizerSettings | None = None, steps: int = 2,
                 num_classes: int | None = None) -> int:
    """The real peak of tensor memory, in bytes, while building ``spec`` and training it for
    ``steps`` steps at ``batch`` on the CPU (the forecast's referee): torch.profiler with
    ``profile_memory=True`` records every allocation and free; their running sum peaks here.
    The model's output is taken as class scores (cross-entropy) over ``num_classes``."""
    from torch.profiler import ProfilerActivity, profile

    x = build.example_input(spec, batch)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model = build.build_model(spec)
        opt = optim.make_optimizer(model, optimizer or OptimizerSettings())
        classes = num_classes or build.infer(spec).output_shape[-1]
        y = torch.randint(0, classes, (batch,))
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    held = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        held += e.nbytes()
        peak = max(peak, held)
    return peak


__all__ = ["measure_peak", "run_note", "Forecast", "forecast", "state_per_value", "capacity", "largest_batch",
           "fit_note", "CUDA_CONTEXT"]
