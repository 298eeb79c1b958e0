"""Thread-safe controls of a running engine: pause, resume, stop, freeze, learning rate.

Any thread may call the public methods; they only record a request and raise a flag. The
engine thread checks that one flag between steps and applies the requests there (see
``Controls._controls``), so a step never sees a half-made change.
"""
from __future__ import annotations

import math
import threading
import time


from workbench.model import build
from workbench.training import optim
from workbench.training import events as ev
from workbench.model.backbones import stage_names
from workbench.errors import WorkbenchError


class Controls:
    """Mixin for Engine: the request side runs in any thread, the apply side in the engine's."""

    def _init_controls(self, spec) -> None:
        self.paths = {p for p, _ in spec.walk()} | {f"{p}.{s}" for p, layer in spec.walk()
                                                    for s in stage_names(layer.type)}
        self._lock = threading.Lock()
        self._requests: list[tuple] = []
        self._attention = False  # any control request waiting: checked once per step
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    # ------------------------------------------------------------ any thread

    def pause(self) -> None:
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
        self._request(("freeze", path, bool(frozen)))

    def set_lr(self, lr: float) -> None:
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise WorkbenchError(f"the learning rate must be a positive number, got {lr!r}")
        self._request(("lr", float(lr)))

    def _request(self, item: tuple) -> None:
        with self._lock:
            self._requests.append(item)
        self._attention = True

    # ------------------------------------------------------------ engine thread

    def _controls(self) -> str | None:
        self._attention = False
        self._apply_requests()
        if not self._running.is_set() and not self._stop.is_set():
            self._flush()
            self._emit(ev.PausedEvent(self.pos.step))
            while not self._running.wait(0.05):
                self._apply_requests()
            self._apply_requests()
            if not self._stop.is_set():
                self._emit(ev.ResumedEvent(self.pos.step))
            self._flush_t = time.perf_counter()
        return "stop" if self._stop.is_set() else None

    def _apply_requests(self) -> None:
        with self._lock:
            todo, self._requests = self._requests, []
        for item in todo:
            if item[0] == "freeze":
                self._freeze(item[1], item[2])
            elif item[0] == "lr":
                optim.set_lr(self.optimizer, self.scheduler, item[1])
                self._emit(ev.LrEvent(self.pos.step, item[1]))

    def _freeze(self, path: str, frozen: bool) -> None:
        for p in self.model.get_submodule(path).parameters():
            p.requires_grad_(not frozen)
            if frozen:
                p.grad = None
        self._set_train_mode()
        self._emit(ev.FreezeEvent(self.pos.step, path, frozen, build.param_count(self.model)[1]))

    def _apply_bn_modes(self) -> None:
        """BatchNorm whose parameters are frozen keeps its running statistics: eval mode."""
        for m in self._bn:
            params = list(m.parameters(recurse=False))
            frozen = bool(params) and not any(p.requires_grad for p in params)
            if frozen:
                m.eval()
            elif self.model.training:
                m.train()

    def _set_train_mode(self) -> None:
        self.model.train()
        self._apply_bn_modes()
