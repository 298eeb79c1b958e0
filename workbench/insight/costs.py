"""A project's cost report: per-row FLOPs, MACs and training memory, the totals, and the batch
that fits the device, as the stack's cost columns, the status bar and ``workbench summary
--costs`` show them.

The figures come from ``model.costs`` (per-layer FLOPs and saved activations, measured on the
meta device and cached per layer) and ``training.forecast`` (the training memory forecast at
batch B with the project's optimizer). This module only puts them together and words them.
"""
from __future__ import annotations

from dataclasses import dataclass

from workbench.model import build, costs as layer_costs
from workbench.model.spec import ModelSpec
from workbench.project.settings import OptimizerSettings
from workbench.training import forecast as forecasts

DTYPES = tuple(layer_costs.DTYPES)


@dataclass(frozen=True)
class CostReport:
    """Costs of one model at one batch size on one device."""

    costs: layer_costs.ModelCosts
    forecast: forecasts.Forecast
    capacity: int | None  # bytes the device offers (None: unknown)

    @property
    def largest_batch(self) -> int | None:
        return None if self.capacity is None else forecasts.largest_batch(self.forecast, self.capacity)

    @property
    def fits(self) -> bool | None:
        return None if self.capacity is None else self.forecast.total <= self.capacity

    def row(self, path: str) -> layer_costs.RowCost | None:
        return self.costs.rows.get(path)

    def row_memory(self, path: str) -> int | None:
        """Bytes this row's saved activations take at the report's batch size."""
        row = self.costs.rows.get(path)
        return None if row is None else row.activations * self.forecast.batch

    def to_dict(self) -> dict:
        return {"flops": self.costs.flops, "macs": self.costs.macs, "complete": self.costs.complete,
                "memory": self.forecast.to_dict(), "capacity": self.capacity,
                "largest_batch": self.largest_batch,
                "layers": {p: {"flops": r.flops, "macs": r.macs,
                               "activation_bytes": r.activations * self.forecast.batch}
                           for p, r in self.costs.rows.items()}}


def report(spec: ModelSpec, batch: int, optimizer: OptimizerSettings | None = None, device: str = "cpu",
           dtype: str = "float32", info: build.ModelInfo | None = None, capacity: int | None = -1) -> CostReport:
    """The costs of ``spec`` trained at ``batch``; ``capacity`` -1 reads the device's memory."""
    info = build.infer(spec) if info is None else info
    model = layer_costs.costs(spec, info, dtype)
    f = forecasts.forecast(spec, batch, optimizer, device, dtype, info=info, model_costs=model)
    return CostReport(model, f, forecasts.capacity(device) if capacity == -1 else capacity)


def count(n: int | None) -> str:
    """1234567 -> '1.23M' (FLOPs and MACs, compact)."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("", "K", "M", "G", "T"):
        if abs(value) < 1000 or unit == "T":
            return f"{value:.0f}{unit}" if unit == "" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{value:.3g}T"


def size(n: int | None) -> str:
    return "" if n is None else build.human_bytes(n)


def summary(r: CostReport) -> str:
    """One line: MACs, the training memory at the batch size, and the batch that fits."""
    f = r.forecast
    text = f"{count(r.costs.macs)} MACs/example · training {size(f.total)} at batch {f.batch}"
    if r.largest_batch is not None:
        where = "free RAM" if f.device == "cpu" else f.device
        text += f" · batch ≤ {r.largest_batch:,} fits {where}" if r.largest_batch else f" · does not fit {where}"
    return text


def batch_hint(r: CostReport) -> tuple[str, str]:
    """(short text, sentence) for next to the batch-size setting: '≤ 1,234' (read with the
    field: batch size 64 ≤ 1,234) and what it rests on (the device, the forecast, the memory
    offered); '> 1,234 fits' when the chosen batch does not fit. The short text stays short:
    the settings form is narrow."""
    f, most = r.forecast, r.largest_batch
    where = "the free RAM" if f.device == "cpu" else f"the memory of {f.device}"
    if most is None:
        return "", f"the memory {f.device} offers is not known, so no batch limit is shown"
    shown = f"{most:,}" if most < 100_000 else count(most)
    need = f"training at batch {f.batch} is forecast to need {size(f.total)} of {size(r.capacity)} ({where})"
    if most == 0:
        return "does not fit", f"not even a batch of 1 fits {where}: {need}"
    if f.batch > most:
        return f"> {shown} fits", f"too big: a batch of at most {most:,} fits {where}; {need}"
    return f"≤ {shown}", f"a batch of up to {most:,} fits {where}; {need}"


def breakdown(r: CostReport) -> str:
    """The forecast by part, one per line (the summary's tooltip, the CLI's table foot)."""
    f = r.forecast
    lines = [f"forward {count(r.costs.flops)} FLOPs, {count(r.costs.macs)} MACs per example",
             f"training memory at batch {f.batch} ({f.dtype}, {f.device}): {size(f.total)}"]
    names = {"parameters": "parameters and buffers", "gradients": "gradients",
             "optimizer": f"optimizer state ({f.state_per_value:g} values per weight)",
             "activations": "activations saved for backward", "workspace": "backward / update workspace",
             "overhead": "CUDA context and allocator rounding (estimated)"}
    for key, value in f.parts().items():
        if key != "overhead" or value:
            lines.append(f"  {names[key]}: {size(value)}")
    if r.capacity is not None:
        lines.append(f"available: {size(r.capacity)}; largest batch that fits: {r.largest_batch:,}")
    if not r.costs.complete:
        lines.append("rows after the first problem are not counted")
    return "\n".join(lines)


__all__ = ["CostReport", "report", "count", "size", "summary", "batch_hint", "breakdown", "DTYPES"]
