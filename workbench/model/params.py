"""Typed layer parameters: one description drives validation, the inspector form and defaults."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

REQUIRED = object()  # sentinel: the user must give a value
SHOWN_CHARS = 60  # a value quoted in a message is cut to this many characters


def shown(value: Any) -> str:
    """A value as a message quotes it: its repr, cut short; a whole number too long to print
    (Python refuses to turn one of over 4,300 digits into text) by its number of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 100:
        digits = int(value.bit_length() * 0.30103) + 1
        return f"{'-' if value < 0 else ''}a whole number of about {digits:,} digits"
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # a huge number or a deep nest inside a list
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def _number(v: float) -> str:
    """A bound or a checked value in a message: whole numbers in full, others as %g."""
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e16):
        return shown(int(v))
    return f"{v:g}"


@dataclass(frozen=True)
class Param:
    """One constructor argument of a layer kind.

    kind is one of ``int``, ``float``, ``bool``, ``choice``, ``ints`` (an int or a list of
    ``dims`` ints, e.g. kernel_size), ``floats`` (a number or a list of ``dims`` numbers, any
    length when ``dims`` is 0: a rotation range, per-channel means), ``shape`` (a list of
    positive ints), ``str``, ``json`` (a JSON object of keyword arguments: a Custom layer's
    ``kwargs``).
    ``infer`` derives the value from the input shape (no batch dim) when it is omitted.
    ``mapping`` (settings only, e.g. data.columns) is an object of name: one of ``choices``.
    """

    name: str
    kind: str
    default: Any = REQUIRED
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple = ()
    dims: int = 1
    words: tuple = ()  # strings an "ints" param also accepts, e.g. padding="same"
    nullable: bool = False
    infer: Callable[[tuple], Any] | None = field(default=None, compare=False)

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.infer is None

    def check(self, value: Any) -> tuple[Any, str | None]:
        """Return (normalised value, None) or (None, message saying what is wrong)."""
        if value is None:
            if self.nullable:
                return None, None
            return None, f"{self.name} cannot be null"
        checker = getattr(self, f"_check_{self.kind}")
        return checker(value)

    def _bounds(self, v: float) -> str | None:
        if self.min is not None and v < self.min:
            return f"{self.name} must be >= {_number(self.min)}, got {_number(v)}"
        if self.max is not None and v > self.max:
            return f"{self.name} must be <= {_number(self.max)}, got {_number(v)}"
        return None

    def _check_int(self, v):
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                return None, f"{self.name} must be a whole number, got {shown(v)}"
        return v, self._bounds(v)

    def _check_float(self, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None, f"{self.name} must be a number, got {shown(v)}"
        v = float(v)
        if v != v or v in (float("inf"), float("-inf")):
            return None, f"{self.name} must be a finite number, got {shown(v)}"
        return v, self._bounds(v)

    def _check_bool(self, v):
        if not isinstance(v, bool):
            return None, f"{self.name} must be true or false, got {shown(v)}"
        return v, None

    def _check_choice(self, v):
        if v not in self.choices:
            opts = ", ".join(repr(c) for c in self.choices)
            return None, f"{self.name} must be one of {opts}, got {shown(v)}"
        return v, None

    def _check_str(self, v):
        if not isinstance(v, str):
            return None, f"{self.name} must be text, got {shown(v)}"
        return v, None

    def _check_json(self, v):
        if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
            return None, f"{self.name} must be an object of keyword arguments, like {{\"width\": 64}}, got {shown(v)}"
        return dict(v), None

    def _check_ints(self, v):
        if isinstance(v, str):
            if v in self.words:
                return v, None
            extra = f" or one of {', '.join(map(repr, self.words))}" if self.words else ""
            return None, f"{self.name} must be a whole number or a list of {self.dims}{extra}, got {shown(v)}"
        if isinstance(v, (list, tuple)):
            if len(v) != self.dims:
                return None, f"{self.name} needs {self.dims} values (one per spatial dimension), got {len(v)}"
            out = []
            for item in v:
                item, err = self._check_int(item)
                if err:
                    return None, err
                out.append(item)
            return (out[0] if self.dims == 1 else tuple(out)), None
        v, err = self._check_int(v)
        return v, err

    def _check_floats(self, v):
        if isinstance(v, (list, tuple)):
            if not v or (self.dims and len(v) != self.dims):
                many = f"{self.dims}" if self.dims else "one or more"
                return None, f"{self.name} must be a number or a list of {many} numbers, got {shown(v)}"
            out = []
            for item in v:
                item, err = self._check_float(item)
                if err:
                    return None, err
                out.append(item)
            return out, None
        return self._check_float(v)

    def _check_shape(self, v):
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, (list, tuple)) or not v:
            return None, f"{self.name} must be a non-empty list of whole numbers, got {shown(v)}"
        out = []
        for item in v:
            if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                return None, f"{self.name} must hold whole numbers >= 1, got {shown(item)}"
            out.append(item)
        return tuple(out), None


    def _check_mapping(self, v):
        if not isinstance(v, dict):
            return None, f"{self.name} must be an object of name: value, got {shown(v)}"
        for key, item in v.items():
            if item not in self.choices:
                opts = ", ".join(repr(c) for c in self.choices)
                return None, f"{self.name}.{key} must be one of {opts}, got {shown(item)}"
        return dict(v), None


def as_tuple(value: Any, dims: int) -> tuple:
    """Spread an int over ``dims`` spatial dimensions (kernel_size=3 -> (3, 3))."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,) * dims
