"""Thread-safe controls of a running engine: pause, resume, stop, freeze, learning rate.

``Controls`` is the object an engine holds (``engine.controls``). Any thread may call its
public methods; they only record a request and raise a flag. The engine thread checks that
one flag (``attention``) between steps and serves the requests there (``Engine`` takes them
with ``take()`` and waits with ``wait_resumed()`` while paused), so a step never sees a
half-made change. ``freeze`` and ``train_mode`` are what a freeze request does to a model.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from torch import nn

from workbench.errors import WorkbenchError
from workbench.model.backbones import stage_names


@dataclass(frozen=True)
class Freeze:
    path: str  # module path: 'conv1', 'backbone.layer2'
    frozen: bool


@dataclass(frozen=True)
class SetLr:
    lr: float


Request = Freeze | SetLr


def controllable_paths(spec) -> set[str]:
    """The module paths a run can freeze: every layer, and every stage of a backbone."""
    return {p for p, _ in spec.walk()} | {f"{p}.{s}" for p, layer in spec.walk() for s in stage_names(layer.type)}


class Controls:
    """Requests from any thread, served by the engine thread between two steps."""

    def __init__(self, paths: set[str]):
        self.paths = frozenset(paths)
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._attention = False  # any request waiting: the engine checks this once per step
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    # ------------------------------------------------------------ any thread

    def pause(self) -> None:
        """Pause after the current step; requests made while paused are applied at once."""
        self._running.clear()
        self._attention = True

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        """Stop after the current step, saving a checkpoint to resume from."""
        self._stop.set()
        self._running.set()
        self._attention = True

    def set_frozen(self, path: str, frozen: bool) -> None:
        """Freeze or unfreeze a layer or backbone stage by module path ('conv1', 'backbone.layer2')."""
        if path not in self.paths:
            raise WorkbenchError(f"no layer or stage {path!r} in this model; known: {', '.join(sorted(self.paths))}")
        self._request(Freeze(path, bool(frozen)))

    def set_lr(self, lr: float) -> None:
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise WorkbenchError(f"the learning rate must be a positive number, got {lr!r}")
        self._request(SetLr(float(lr)))

    def _request(self, item: Request) -> None:
        with self._lock:
            self._requests.append(item)
        self._attention = True

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------ engine thread

    @property
    def attention(self) -> bool:
        """True when something waits for the engine: a request, a pause or a stop."""
        return self._attention

    def take(self) -> list[Request]:
        """The waiting requests, oldest first; clears the flag (a request made after this call
        raises it again)."""
        self._attention = False
        with self._lock:
            todo, self._requests = self._requests, []
        return todo

    @property
    def pausing(self) -> bool:
        """A pause was asked for and no stop: the engine should wait."""
        return not self._running.is_set() and not self._stop.is_set()

    def wait_resumed(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; True once resumed (or stopped)."""
        return self._running.wait(timeout)


def freeze(model: nn.Module, path: str, frozen: bool) -> None:
    """Stop or restart learning in a submodule; frozen parameters drop their gradient."""
    for p in model.get_submodule(path).parameters():
        p.requires_grad_(not frozen)
        if frozen:
            p.grad = None
    train_mode(model)


def train_mode(model: nn.Module) -> None:
    """``model.train()``, except that BatchNorm whose parameters are all frozen stays in eval
    mode: it keeps its running statistics."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()
