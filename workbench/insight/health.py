"""Training health, sampled: per layer, every ``training.health_every`` steps (and the first),
the gradient norm, the weight norm, the update/weight ratio of that step's update, the
activations' mean and std and, after ReLU-like layers, the fraction of dead units.

Nothing runs on the other steps. On a sampled step the engine hands the step to a
``HealthProbe`` (a ``workbench.training.loop.StepWatch``): it puts forward hooks on the
layers and keeps a copy of the trainable weights before the forward pass, reads the
gradients after the backward pass (before clipping; mixed precision's scale taken out) and
compares the weights after the update, then takes its hooks off again. Every figure stays on
the device until the next loss read-out, where one transfer per sample turns them into a
``HealthEvent`` (no extra host sync inside the step).

A layer is a module that owns parameters or a ReLU-like activation, named by its module path
(the layer ids of the stack: ``conv1``, ``block.body.fc``). Under DDP the gradients read
after the backward pass are already averaged over the processes; only the main process
samples and records.

``handlers()`` gives what a run needs for health: the ``HealthMonitor`` and the alerts
(``workbench.insight.alerts``). ``workbench train`` and the window add them to their engine.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from workbench.insight.alerts import HealthAlerts
from workbench.training import events as ev
from workbench.training.loop import StepWatch

RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.RReLU, nn.Threshold)  # a unit whose output is 0 for every input is dead
HISTOGRAM_BUCKETS = 30
_ROWS = ("grad_norm", "weight_norm", "update_ratio", "act_mean", "act_std", "dead_fraction")


def handlers() -> list[ev.Handler]:
    """The handlers of a run's health: sampling (``HealthMonitor``) and the alerts. Both do
    nothing when ``training.health_every`` is 0."""
    return [HealthMonitor(), HealthAlerts()]


def layers_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers health follows, in module order: those owning parameters, and ReLU-like ones."""
    out = []
    for path, module in model.named_modules():
        owns = next(module.parameters(recurse=False), None) is not None
        if owns or isinstance(module, RELU_LIKE):
            out.append((path or "(model)", module))
    return out


class _Sample:
    """One sampled step's figures, still on the device."""

    def __init__(self, step: int, epoch: int):
        self.step, self.epoch = step, epoch
        self.values: torch.Tensor | None = None  # [rows, layers], NaN where a value does not apply
        self.histograms: torch.Tensor | None = None  # [tensors, 5 + buckets]
        self.names: list[str] = []  # the histograms' tags
        self.nonfinite: torch.Tensor | None = None  # any gradient inf/NaN (mixed precision: a skipped update)


class HealthProbe(StepWatch):
    """Looks inside one step of ``model`` every ``every`` steps (see the module's docstring).
    ``position()`` gives the (step, epoch) the next step will be; ``scaled``: the run uses a
    GradScaler (an overflowing step is skipped, not a sign of exploding gradients)."""

    def __init__(self, model: nn.Module, every: int, position: Callable[[], tuple[int, int]],
                 histograms: bool = True, scaled: bool = False):
        self.every = every
        self.position = position
        self.histograms = histograms
        self.scaled = scaled
        self.layers = layers_of(model)
        self.names = [name for name, _ in self.layers]
        self.relu = [isinstance(m, RELU_LIKE) for _, m in self.layers]
        self.params: list[tuple[int, str, nn.Parameter]] = []  # (layer index, parameter name, parameter)
        for i, (name, module) in enumerate(self.layers):
            for pname, p in module.named_parameters(recurse=False):
                self.params.append((i, f"{name}.{pname}" if name != "(model)" else pname, p))
        self.samples: list[_Sample] = []
        self._hooks: list = []
        self._current: _Sample | None = None
        self._before: list[torch.Tensor] = []
        self._trained: list[int] = []  # indexes into params of those with requires_grad at the step
        self._acts: list[list[torch.Tensor]] = []
        self._grads: torch.Tensor | None = None
        self._grad_hist: list[torch.Tensor] = []

    # ------------------------------------------------------------ the step (StepWatch)
    def begin(self) -> None:
        step, epoch = self.position()
        self._current = _Sample(step, epoch)
        self._acts = [[] for _ in self.layers]
        self._grads, self._grad_hist = None, []
        self._trained = [k for k, (_, _, p) in enumerate(self.params) if p.requires_grad]
        with torch.no_grad():
            self._before = [self.params[k][2].detach().clone() for k in self._trained]
        self._hooks = [module.register_forward_hook(self._hook(i)) for i, (_, module) in enumerate(self.layers)]

    def _hook(self, index: int):
        relu = self.relu[index]

        def record(module, inputs, output) -> None:
            if not isinstance(output, torch.Tensor) or not output.is_floating_point() or output.numel() == 0:
                return
            with torch.no_grad():
                t = output.detach()
                f = t.float()
                std = f.std() if f.numel() > 1 else f.new_zeros(())
                dead = f.new_full((), math.nan)
                if relu and t.dim() >= 2:  # a unit (feature, channel) is dead when 0 for the whole batch
                    alive = (t > 0).transpose(0, 1).reshape(t.shape[1], -1).any(dim=1)
                    dead = 1.0 - alive.float().mean()
                self._acts[index].append(torch.stack([f.mean(), std, dead]))
        return record

    def gradients(self) -> None:
        if self._current is None:
            return
        with torch.no_grad():
            grads = [p.grad for _, _, p in self.params]
            present = [k for k, g in enumerate(grads) if g is not None]
            sq = self._layer_sums([grads[k] for k in present], [self.params[k][0] for k in present])
            has = torch.zeros(len(self.layers), dtype=torch.bool)
            for k in present:
                has[self.params[k][0]] = True
            self._grads = torch.where(has.to(sq.device), sq.sqrt(), torch.full_like(sq, math.nan))
            if self.histograms:
                self._grad_hist = [(f"gradients/{self.params[k][1]}", _histogram(grads[k])) for k in present]

    def end(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        sample, self._current = self._current, None
        before, self._before = self._before, []
        if sample is None or self._grads is None:  # the step failed before its gradients: no sample
            return
        with torch.no_grad():
            params = [p for _, _, p in self.params]
            owners = [i for i, _, _ in self.params]
            device = self._grads.device
            weight = self._layer_sums([p.detach() for p in params], owners).to(device).sqrt()
            trained = [params[k].detach() for k in self._trained]
            t_owners = [owners[k] for k in self._trained]
            if trained:
                delta = self._layer_sums([a - b for a, b in zip(trained, before)], t_owners).to(device).sqrt()
                base = self._layer_sums(before, t_owners).to(device).sqrt()
                has = torch.zeros(len(self.layers), dtype=torch.bool, device=device)
                has[t_owners] = True
                ratio = torch.where(has & (base > 0), delta / base.clamp(min=1e-30), torch.full_like(base, math.nan))
            else:
                ratio = torch.full_like(weight, math.nan)
            acts = torch.full((len(self.layers), 3), math.nan, device=device)
            for i, rows in enumerate(self._acts):
                if rows:
                    acts[i] = torch.stack(rows).to(device).mean(dim=0)
            owns = torch.zeros(len(self.layers), dtype=torch.bool, device=device)
            if owners:
                owns[owners] = True
            weight = torch.where(owns, weight, torch.full_like(weight, math.nan))
            sample.values = torch.stack([self._grads, weight, ratio, acts[:, 0], acts[:, 1], acts[:, 2]])
            sample.nonfinite = ~torch.isfinite(self._grads[~torch.isnan(self._grads)]).all() \
                if self.scaled else None
            if self.histograms:
                rows = [(f"weights/{name}", _histogram(p.detach())) for _, name, p in self.params] + self._grad_hist
                if rows:
                    sample.names = [name for name, _ in rows]
                    sample.histograms = torch.stack([row.to(device) for _, row in rows])
        self._acts, self._grads, self._grad_hist = [], None, []
        self.samples.append(sample)

    def _layer_sums(self, tensors: list[torch.Tensor], owners: list[int]) -> torch.Tensor:
        """Per layer, the sum of the squares of its tensors (float32, on their device)."""
        if not tensors:
            return torch.zeros(len(self.layers))
        norms = torch.stack([torch.linalg.vector_norm(t.float()) for t in tensors])
        out = torch.zeros(len(self.layers), device=norms.device)
        return out.index_add_(0, torch.tensor(owners, device=norms.device), norms * norms)

    # ------------------------------------------------------------ read-out
    def take(self, upto: int | None = None) -> list[ev.HealthEvent]:
        """The samples taken since the last call (of steps up to ``upto``), as events (one
        transfer per sample)."""
        ready = [s for s in self.samples if upto is None or s.step <= upto]
        self.samples = [s for s in self.samples if upto is not None and s.step > upto]
        return [self.event(s) for s in ready]

    def drop(self) -> None:
        """Forget the samples not taken yet."""
        self.samples = []

    def event(self, s: _Sample) -> ev.HealthEvent:
        rows = s.values.cpu().tolist()
        skipped = bool(s.nonfinite) if s.nonfinite is not None else False
        columns = {name: [None if math.isnan(v) else v for v in row] for name, row in zip(_ROWS, rows)}
        if skipped:  # an overflow mixed precision skips: those gradients are not the model's
            columns["grad_norm"] = [v if v is not None and math.isfinite(v) else None for v in columns["grad_norm"]]
        histograms = {}
        if s.histograms is not None:
            for name, row in zip(s.names, s.histograms.cpu().tolist()):
                low, high, num, total, squares = row[:5]
                if all(math.isfinite(v) for v in (low, high, total, squares)):
                    histograms[name] = {"min": low, "max": high, "num": int(num), "sum": total,
                                        "sum_squares": squares, "counts": [int(c) for c in row[5:]]}
        return ev.HealthEvent(s.step, s.epoch, list(self.names), histograms=histograms, skipped=skipped, **columns)


def _histogram(t: torch.Tensor) -> torch.Tensor:
    """[min, max, count, sum, sum of squares, bucket counts...] of a tensor, on its device, no sync."""
    f = t.detach().float().reshape(-1)
    if f.numel() == 0:
        return torch.zeros(5 + HISTOGRAM_BUCKETS, device=t.device)
    low, high = torch.aminmax(f)
    width = (high - low).clamp(min=1e-30)
    index = ((f - low) / width * HISTOGRAM_BUCKETS).nan_to_num(0.0).long().clamp(0, HISTOGRAM_BUCKETS - 1)
    counts = torch.bincount(index, minlength=HISTOGRAM_BUCKETS).float()
    head = torch.stack([low, high, f.new_tensor(float(f.numel())), f.sum(), (f * f).sum()])
    return torch.cat([head, counts])


class HealthMonitor(ev.Handler):
    """Samples a run's health (``HealthProbe``) every ``training.health_every`` steps and emits a
    ``HealthEvent`` per sample at the next loss read-out. Main process only; 0 turns it off."""

    def __init__(self):
        self.probe: HealthProbe | None = None

    def on_run_start(self, engine, notes: list[str]) -> None:
        every = engine.settings.health_every
        if not every or not engine.parallel.is_main:
            return
        pos = engine.state.position
        self.probe = HealthProbe(engine.model, every, lambda: (pos.step + 1, pos.epoch + 1),
                                 histograms=engine.settings.tensorboard and engine.run_dir is not None,
                                 scaled=engine.runner.scaler is not None)
        engine.watch_steps(self.probe)

    def on_steps(self, engine, steps: list[ev.StepEvent]) -> None:
        if self.probe is None or not steps:
            return
        if self.probe.samples:
            for event in self.probe.take(upto=steps[-1].step):
                engine.emit(event)

    def on_run_end(self, engine) -> None:
        if self.probe is not None:
            self.probe.drop()  # a step whose loss was never read (a failure): not reported
