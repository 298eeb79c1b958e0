"""Health alerts: what looks wrong in a run, where, and the fix, as ``AlertEvent``s.

The rules and their limits (``HealthRules``), from the health samples (HealthEvent), the
step losses and the epochs:

- exploding gradients: a layer's gradient norm above ``GRAD_HIGH`` or not finite;
- vanishing gradients: a layer's gradient norm below ``GRAD_LOW_SHARE`` of the largest
  layer's in the same sample (a gradient of exactly 0 behind dead units is left to that alert);
- dead units: more than ``DEAD_SHARE`` of a ReLU-like layer's units output 0 for a whole batch;
- update/weight ratio: healthy is about 1e-3; an alert when it leaves ``RATIO_BAND``
  (1e-5 .. 1e-1, two decades either side) in ``RATIO_SAMPLES`` samples in a row, or at once
  when it is above ``RATIO_HUGE`` (the update is larger than the weights);
- a loss spike: a step's loss more than ``SPIKE_FACTOR`` x the median of the previous
  ``SPIKE_WINDOW`` steps above that median, and by more than ``SPIKE_SHARE`` of the starting
  loss (small losses late in a run are noisy in ratio, not in size);
- a plateau: the training loss has not improved by ``PLATEAU_GAIN`` in ``PLATEAU_EPOCHS``
  epochs while still above ``PLATEAU_LEVEL`` of the first epoch's;
- overfitting: the validation loss rose ``OVERFIT_EPOCHS`` epochs in a row while the training
  loss fell in each.

One alert per kind and layer until it clears: the condition must be gone at a later check
(a loss spike: ``SPIKE_WINDOW`` steps without one) before the same alert comes again.
"""
from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

from workbench.training import events as ev
from workbench.training import optim

GRAD_HIGH = 1e3
GRAD_LOW_SHARE = 1e-4
DEAD_SHARE = 0.5
RATIO_BAND = (1e-5, 1e-1)
RATIO_SAMPLES = 2
RATIO_HUGE = 1.0
SPIKE_FACTOR = 2.0
SPIKE_WINDOW = 20
SPIKE_SHARE = 0.5
PLATEAU_EPOCHS = 5
PLATEAU_GAIN = 0.01
PLATEAU_LEVEL = 0.1
OVERFIT_EPOCHS = 3

KINDS = ("exploding_gradients", "vanishing_gradients", "dead_units", "update_ratio", "loss_spike", "plateau",
         "overfitting")


@dataclass(frozen=True)
class Finding:
    kind: str
    layer: str | None
    message: str
    fix: str
    step: int | None = None  # the step it is about, where not the check's own (a loss spike)


class HealthRules:
    """The rules, fed in order; each ``check_*`` returns the findings that are new (not still
    raised from an earlier check). ``lr`` is the learning rate now, for the fixes."""

    def __init__(self):
        self.raised: set[tuple[str, str | None]] = set()
        self.ratio_out: dict[str, int] = {}  # layer -> samples in a row outside the band
        self.losses: deque[float] = deque(maxlen=SPIKE_WINDOW)
        self.start_losses: list[float] = []
        self.since_spike = 0
        self.epochs: list[tuple[float, float | None]] = []  # (train loss, val loss) per epoch

    def _update(self, kind: str, checked, found: list[Finding]) -> list[Finding]:
        """``found`` for ``kind`` among the ``checked`` layers: raise the new, clear the gone."""
        now = {f.layer for f in found}
        for layer in checked:
            if layer not in now:
                self.raised.discard((kind, layer))
        new = [f for f in found if (kind, f.layer) not in self.raised]
        self.raised.update((kind, f.layer) for f in new)
        return new

    # ------------------------------------------------------------ health samples
    def check_sample(self, e: ev.HealthEvent, lr: float) -> list[Finding]:
        out: list[Finding] = []
        grads = {name: g for name, g in zip(e.layers, e.grad_norm) if g is not None}
        dead = {name: d for name, d in zip(e.layers, e.dead_fraction) if d is not None}
        any_dead = any(d > DEAD_SHARE for d in dead.values())

        found = []
        for name, g in grads.items():
            if not math.isfinite(g):
                found.append(Finding("exploding_gradients", name, f"the gradient is {g} at step {e.step}",
                                     _fix_high_lr(lr, "set training.grad_clip (e.g. 1.0)")))
            elif g > GRAD_HIGH:
                found.append(Finding("exploding_gradients", name,
                                     f"the gradient norm is {g:.3g} at step {e.step} (above {GRAD_HIGH:g})",
                                     "set training.grad_clip (e.g. 1.0), check the initialisation (weights too "
                                     "large) or add normalisation (BatchNorm) before this layer; " + _lower(lr)))
        out += self._update("exploding_gradients", grads, found)

        found = []
        finite = {n: g for n, g in grads.items() if math.isfinite(g)}
        if finite:
            top_name = max(finite, key=finite.get)
            top = finite[top_name]
            for name, g in finite.items():
                if g == 0 and any_dead:
                    continue  # no gradient behind dead units: the dead-units alert says why
                if top > 0 and g < GRAD_LOW_SHARE * top:
                    found.append(Finding("vanishing_gradients", name,
                                         f"the gradient norm is {g:.2g} at step {e.step}, {g / top:.1g} x that of "
                                         f"'{top_name}' ({top:.2g}): the gradient dies out before it reaches here",
                                         "check the initialisation (weights too small), use ReLU rather than "
                                         "Sigmoid/Tanh, add BatchNorm, or wrap layers in a Residual block"))
        out += self._update("vanishing_gradients", finite, found)

        found = [Finding("dead_units", name, f"{d:.0%} of its units output 0 for the whole batch at step {e.step} "
                         "(dead ReLUs: they no longer learn)",
                         "check the bias initialisation (a large negative bias), use LeakyReLU or GELU, or "
                         + _lower(lr))
                 for name, d in dead.items() if d > DEAD_SHARE]
        out += self._update("dead_units", dead, found)

        found, checked = [], []
        if not e.skipped:
            low, high = RATIO_BAND
            for name, r, g in zip(e.layers, e.update_ratio, e.grad_norm):
                if r is None or not g:  # no gradient: no update to judge (other alerts say why)
                    continue
                checked.append(name)
                outside = not (low <= r <= high)
                self.ratio_out[name] = self.ratio_out.get(name, 0) + 1 if outside else 0
                if r > RATIO_HUGE or (outside and self.ratio_out[name] >= RATIO_SAMPLES):
                    if r > high:
                        found.append(Finding("update_ratio", name,
                                             f"the update/weight ratio is {r:.2g} at step {e.step}, above the healthy "
                                             f"band {low:g}..{high:g} (about 1e-3 is typical): each step changes the "
                                             "weights too much",
                                             f"the learning rate {lr:g} is too high for this layer; " + _lower(lr)))
                    else:
                        found.append(Finding("update_ratio", name,
                                             f"the update/weight ratio is {r:.2g} at step {e.step}, below the healthy "
                                             f"band {low:g}..{high:g} (about 1e-3 is typical): the layer barely "
                                             "changes",
                                             f"raise training.optimizer.lr (try {lr * 10:g}) or check that the "
                                             "gradient reaches this layer"))
        out += self._update("update_ratio", checked, found)
        return out

    # ------------------------------------------------------------ losses
    def check_losses(self, steps: list[ev.StepEvent], lr: float) -> list[Finding]:
        out: list[Finding] = []
        for s in steps:
            if len(self.start_losses) < 5:
                self.start_losses.append(s.loss)
            if self.losses:
                median = statistics.median(self.losses)
                start = statistics.median(self.start_losses)
                jump = s.loss - median
                if jump > SPIKE_FACTOR * abs(median) and jump > SPIKE_SHARE * abs(start):
                    self.since_spike = 0
                    out += self._update("loss_spike", [None], [Finding(
                        "loss_spike", None, f"the loss jumped to {s.loss:.4g} at step {s.step} from about "
                        f"{median:.4g}", f"the learning rate {lr:g} is probably too high; " + _lower(lr)
                        + ", or set training.grad_clip (e.g. 1.0)", s.step)])
                else:
                    self.since_spike += 1
                    if self.since_spike >= SPIKE_WINDOW:
                        self._update("loss_spike", [None], [])
            self.losses.append(s.loss)
        return out

    def check_epoch(self, e: ev.EpochEvent, lr: float) -> list[Finding]:
        self.epochs.append((e.train_loss, e.val_loss))
        out: list[Finding] = []
        train = [t for t, _ in self.epochs]
        found = []
        if len(train) > PLATEAU_EPOCHS:
            before = min(train[:-PLATEAU_EPOCHS])
            recent = min(train[-PLATEAU_EPOCHS:])
            if recent > before * (1 - PLATEAU_GAIN) and recent > PLATEAU_LEVEL * train[0]:
                found.append(Finding("plateau", None,
                                     f"the training loss has not improved by {PLATEAU_GAIN:.0%} in {PLATEAU_EPOCHS} "
                                     f"epochs (best {before:.4g}, last {train[-1]:.4g} at epoch {e.epoch})",
                                     f"try another learning rate (now {lr:g}: too low and it barely moves, too high "
                                     "and it bounces), a schedule such as ReduceLROnPlateau, or a larger model"))
        out += self._update("plateau", [None], found)
        found = []
        window = self.epochs[-(OVERFIT_EPOCHS + 1):]
        if len(window) == OVERFIT_EPOCHS + 1 and all(v is not None for _, v in window):
            pairs = list(zip(window, window[1:]))
            if all(b[1] > a[1] and b[0] < a[0] for a, b in pairs):
                found.append(Finding("overfitting", None,
                                     f"the validation loss rose {OVERFIT_EPOCHS} epochs in a row "
                                     f"({window[0][1]:.4g} -> {window[-1][1]:.4g}) while the training loss fell "
                                     f"({window[0][0]:.4g} -> {window[-1][0]:.4g}): the model learns the training "
                                     "examples by heart",
                                     "use best.ckpt (the best epoch) and train fewer epochs, add Dropout or "
                                     "weight decay (training.optimizer.weight_decay), or use more data or "
                                     "augmentation (data.augment_train)"))
        out += self._update("overfitting", [None], found)
        return out


def _lower(lr: float) -> str:
    return f"lower training.optimizer.lr (try {lr / 10:g})"


def _fix_high_lr(lr: float, more: str) -> str:
    return f"the learning rate {lr:g} is probably too high: {_lower(lr)}, or {more}"


class HealthAlerts(ev.Handler):
    """Turns the rules' findings into ``AlertEvent``s during a run (main process; nothing when
    ``training.health_every`` is 0)."""

    def __init__(self):
        self.rules: HealthRules | None = None

    def on_run_start(self, engine, notes: list[str]) -> None:
        self.rules = HealthRules() if engine.settings.health_every and engine.parallel.is_main else None

    def on_steps(self, engine, steps: list[ev.StepEvent]) -> None:
        if self.rules is not None and steps:
            self._emit(engine, self.rules.check_losses(steps, optim.current_lr(engine.optimizer)),
                       steps[-1].step, steps[-1].epoch)

    def on_event(self, engine, event: ev.Event) -> None:
        if self.rules is None:
            return
        if isinstance(event, ev.StepEvent):
            self.on_steps(engine, [event])
        elif isinstance(event, ev.HealthEvent):
            self._emit(engine, self.rules.check_sample(event, optim.current_lr(engine.optimizer)),
                       event.step, event.epoch)
        elif isinstance(event, ev.EpochEvent):
            self._emit(engine, self.rules.check_epoch(event, optim.current_lr(engine.optimizer)),
                       event.step, event.epoch)

    def _emit(self, engine, findings: list[Finding], step: int, epoch: int) -> None:
        for f in findings:
            engine.emit(ev.AlertEvent(f.step or step, epoch, f.kind, f.layer, f.message, f.fix))
