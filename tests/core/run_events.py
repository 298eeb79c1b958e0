"""What the core tests use to follow a run: ``Recorder``, a handler that keeps every event."""
from __future__ import annotations


class Recorder(list):
    """Add to an Engine (``handlers=[rec]`` or ``add_handler(rec)``); ``of(cls)``: the events of one type."""

    def __call__(self, event):
        self.append(event)

    def of(self, cls):
        return [e for e in self if isinstance(e, cls)]
