"""Keep the exporters' chatter out of the terminal: stdout progress lines, warnings and log
records go, line by line, to a callback (the dialog's log, the CLI's --verbose).

Warnings are reported once per distinct message with a count, so the dozens of identical
``torch.jit.script is deprecated`` FutureWarnings become one line.
"""
from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import warnings
from collections import Counter
from typing import Callable, Iterator

Log = Callable[[str], None]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOGGERS = ("torch", "onnxscript", "onnx_ir", "onnx")


def clean(text: str) -> str:
    """Without colour codes, and with the exporter's emoji marks in words (not every font has them)."""
    return _ANSI.sub("", text).replace("\u2705", "done").replace("\u274c", "failed").rstrip()


class _LineStream(io.TextIOBase):
    """A text stream that hands each complete line to ``log``."""

    def __init__(self, log: Log, original):
        self._log = log
        self._original = original
        self._buf = ""
        self._inside = False  # the callback itself printing must not loop back here

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._inside:
            return self._original.write(text)
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            if line.strip():
                self._deliver(clean(line))
        return len(text)

    def _deliver(self, line: str) -> None:
        self._inside = True
        try:
            self._log(line)
        finally:
            self._inside = False

    def flush(self) -> None:
        if self._buf.strip() and not self._inside:
            self._deliver(clean(self._buf))
            self._buf = ""


class _ListHandler(logging.Handler):
    def __init__(self, log: Log):
        super().__init__(logging.INFO)
        self._log = log
        self._inside = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._inside:
            return
        try:
            first = clean(record.getMessage()).splitlines()
        except Exception:  # a malformed record must not break an export
            return
        if first:
            self._inside = True
            try:
                self._log(f"{record.levelname.lower()}: {first[0]}")
            finally:
                self._inside = False


@contextlib.contextmanager
def captured(log: Log | None) -> Iterator[None]:
    """Route stdout, warnings and torch / onnx log records to ``log`` (dropped when None)."""
    log = log or (lambda line: None)
    stream = _LineStream(log, sys.stdout)
    handler = _ListHandler(log)
    saved = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers = [handler]
        logger.propagate = False
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as record, contextlib.redirect_stdout(stream):
            warnings.simplefilter("always")
            try:
                yield
            finally:
                caught.extend(record)
    finally:
        stream.flush()
        for logger, handlers, propagate in saved:
            logger.handlers = handlers
            logger.propagate = propagate
        counts: Counter = Counter()
        for w in caught:
            lines = clean(str(w.message)).splitlines()
            counts[f"{w.category.__name__}: {lines[0] if lines else ''}"] += 1
        for text, n in counts.items():
            log(f"warning: {text}" + (f" (x{n})" if n > 1 else ""))


def warning_names(lines: list[str], category: str) -> list[str]:
    """The captured warning lines of one category (e.g. 'TracerWarning')."""
    return [ln for ln in lines if ln.startswith(f"warning: {category}:")]
