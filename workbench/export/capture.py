"""Keep the exporters' chatter out of the terminal: stdout progress lines, warnings and log
records go, line by line, to a callback (the dialog's log, the CLI's --verbose).

Warnings are reported once per distinct message with a count, so the dozens of identical
``torch.jit.script is deprecated`` FutureWarnings become one line.

Capture is per thread. An export runs in a worker thread while training may print and warn
in another, so nothing here swaps a process-wide setting for the length of a job. While any
capture is active (counted, installed by the first and removed by the last):

- ``sys.stdout`` is a router: a write from a thread that captures goes to that capture, any
  other thread's to the stdout that was there before;
- ``warnings.showwarning`` routes the same way, and one filter at the front of
  ``warnings.filters`` makes every warning of a capturing thread shown ("always", so each one
  is counted), while other threads' warnings meet the filters as before (the filter's message
  pattern matches only in a capturing thread; ``warnings.catch_warnings``, which swaps the
  filters of the whole process, is not used);
- the torch / onnx loggers hand each record to the capture of the thread that logged it
  (``record.thread``); other threads' records go where they went before.
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import warnings
from collections import Counter
from typing import Callable, Iterator

Log = Callable[[str], None]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOGGERS = ("torch", "onnxscript", "onnx_ir", "onnx")


def clean(text: str) -> str:
    """Without colour codes, and with the exporter's emoji marks in words (not every font has them)."""
    return _ANSI.sub("", text).replace("\u2705", "done").replace("\u274c", "failed").rstrip()


class _Capture:
    """One ``captured`` block of one thread: its line buffer and the warnings it saw."""

    def __init__(self, log: Log):
        self.log = log
        self.buf = ""
        self.inside = False  # the callback itself printing, warning or logging must not loop back here
        self.warnings: Counter = Counter()

    def deliver(self, line: str) -> None:
        self.inside = True
        try:
            self.log(line)
        finally:
            self.inside = False

    def write(self, text: str) -> int:
        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if line.strip():
                self.deliver(clean(line))
        return len(text)

    def flush(self) -> None:
        if self.buf.strip():
            self.deliver(clean(self.buf))
        self.buf = ""

    def warned(self, message, category) -> None:
        lines = clean(str(message)).splitlines()
        self.warnings[f"{category.__name__}: {lines[0] if lines else ''}"] += 1

    def logged(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.INFO:
            return
        try:
            first = clean(record.getMessage()).splitlines()
        except Exception:  # a malformed record must not break an export
            return
        if first:
            self.deliver(f"{record.levelname.lower()}: {first[0]}")

    def close(self) -> None:
        self.flush()
        for text, n in self.warnings.items():
            self.deliver(f"warning: {text}" + (f" (x{n})" if n > 1 else ""))


_lock = threading.RLock()
_captures: dict[int, list[_Capture]] = {}  # thread id -> its nested captures, innermost last


def _capture_of(thread: int | None) -> _Capture | None:
    stack = _captures.get(thread) if thread is not None else None
    if stack and not stack[-1].inside:
        return stack[-1]
    return None


def _current() -> _Capture | None:
    return _capture_of(threading.get_ident())


class _Stdout:
    """``sys.stdout`` while captures run: each thread's writes go to its capture or to ``original``."""

    def __init__(self, original):
        self.original = original

    def _target(self):
        return _current() or self.original

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def writable(self) -> bool:
        return True

    def __getattr__(self, name):  # encoding, fileno, isatty, buffer ... of the real stream
        return getattr(self.original, name)


class _CapturingThread:
    """The message pattern of the front warnings filter: matches only in a thread that captures."""

    def match(self, text) -> bool:
        return _current() is not None


_FILTER = ("always", _CapturingThread(), Warning, None, 0)


class _ShowWarning:
    """``warnings.showwarning`` while captures run."""

    def __init__(self, original):
        self.original = original

    def __call__(self, message, category, filename, lineno, file=None, line=None):
        capture = _current()
        if capture is not None:
            capture.warned(message, category)
        else:
            self.original(message, category, filename, lineno, file, line)


class _LogRouter(logging.Handler):
    """The only handler of one exporter logger while captures run: a record goes to the capture
    of the thread that logged it, else to the handlers that would have had it without us."""

    def __init__(self, logger: logging.Logger):
        super().__init__(logging.NOTSET)
        self.logger = logger
        self.handlers = logger.handlers[:]
        self.propagate = logger.propagate

    def handle(self, record: logging.LogRecord) -> bool:  # no lock: routing is per thread
        capture = _capture_of(record.thread)
        if capture is not None:
            capture.logged(record)
        else:
            self.pass_on(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def pass_on(self, record: logging.LogRecord) -> None:
        """What ``Logger.callHandlers`` does with the logger's own handlers and propagation."""
        found = 0
        handlers = list(self.handlers)
        parent = self.logger.parent if self.propagate else None
        while True:
            for handler in handlers:
                found += 1
                if record.levelno >= handler.level:
                    handler.handle(record)
            if parent is None:
                break
            handlers = parent.handlers
            parent = parent.parent if parent.propagate else None
        if not found and logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)

    def restore(self) -> None:
        if self.logger.handlers == [self]:
            self.logger.handlers = self.handlers
            self.logger.propagate = self.propagate


_installed: dict[str, object] = {}

# Every stdout router and showwarning hook ever installed stays referenced for the life of the
# process. CPython 3.11's print() holds sys.stdout as a borrowed reference while it writes: if
# another thread swaps sys.stdout back meanwhile and the router's last reference goes, print
# goes on with a freed object and the process dies with SIGSEGV (seen about one run in four in
# tests/core/test_export_capture.py before this list). The same router is reused for the same
# stream, so the list stays as short as the number of distinct streams.
_KEPT: list = []


def _kept(kind: type, original):
    for hook in _KEPT:
        if type(hook) is kind and hook.original is original:
            return hook
    hook = kind(original)
    _KEPT.append(hook)
    return hook


def _install() -> None:
    """Put the routers in place (first capture) and make sure the warnings hooks are still ours:
    a ``catch_warnings`` elsewhere may have restored older ones meanwhile."""
    if not _installed:
        _installed["stdout"] = sys.stdout = _kept(_Stdout, sys.stdout)
        routers = []
        for name in LOGGERS:
            logger = logging.getLogger(name)
            router = _LogRouter(logger)
            logger.handlers = [router]
            logger.propagate = False
            routers.append(router)
        _installed["loggers"] = routers
    if not isinstance(warnings.showwarning, _ShowWarning):
        warnings.showwarning = _kept(_ShowWarning, warnings.showwarning)
    if not warnings.filters or warnings.filters[0] is not _FILTER:
        with contextlib.suppress(ValueError):
            warnings.filters.remove(_FILTER)
        warnings.filters.insert(0, _FILTER)
    # Tell the warnings machinery the filters changed, so warnings a module has shown once
    # before are shown (and counted) again. A trailing catch-all "default" is what happens
    # to a warning no filter matches anyway, so it changes nothing else.
    warnings.simplefilter("default", append=True)


def _uninstall() -> None:
    stdout = _installed.pop("stdout")
    if sys.stdout is stdout:
        sys.stdout = stdout.original
    for router in _installed.pop("loggers"):
        router.restore()
    if isinstance(warnings.showwarning, _ShowWarning):
        warnings.showwarning = warnings.showwarning.original
    with contextlib.suppress(ValueError):
        warnings.filters.remove(_FILTER)


@contextlib.contextmanager
def captured(log: Log | None) -> Iterator[None]:
    """Route this thread's stdout, warnings and torch / onnx log records to ``log`` (dropped when None)."""
    capture = _Capture(log or (lambda line: None))
    me = threading.get_ident()
    with _lock:
        _install()
        _captures.setdefault(me, []).append(capture)
    try:
        yield
    finally:
        with _lock:
            stack = _captures[me]
            stack.remove(capture)
            if not stack:
                del _captures[me]
            if not _captures:
                _uninstall()
        capture.close()


def warning_names(lines: list[str], category: str) -> list[str]:
    """The captured warning lines of one category (e.g. 'TracerWarning')."""
    return [ln for ln in lines if ln.startswith(f"warning: {category}:")]
