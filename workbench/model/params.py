"""Typed layer parameters: one description drives validation, the inspector form and defaults."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

REQUIRED = object()  # sentinel: the user must give a value


@dataclass(frozen=True)
class Param:
    """One constructor argument of a layer kind.

    kind is one of ``int``, ``float``, ``bool``, ``choice``, ``ints`` (an int or a list of
    ``dims`` ints, e.g. kernel_size), ``shape`` (a list of positive ints), ``str``.
    ``infer`` derives the value from the input shape (no batch dim) when it is omitted.
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
            return f"{self.name} must be >= {self.min:g}, got {v:g}"
        if self.max is not None and v > self.max:
            return f"{self.name} must be <= {self.max:g}, got {v:g}"
        return None

    def _check_int(self, v):
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                return None, f"{self.name} must be a whole number, got {v!r}"
        return v, self._bounds(v)

    def _check_float(self, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None, f"{self.name} must be a number, got {v!r}"
        v = float(v)
        if v != v or v in (float("inf"), float("-inf")):
            return None, f"{self.name} must be a finite number, got {v!r}"
        return v, self._bounds(v)

    def _check_bool(self, v):
        if not isinstance(v, bool):
            return None, f"{self.name} must be true or false, got {v!r}"
        return v, None

    def _check_choice(self, v):
        if v not in self.choices:
            opts = ", ".join(repr(c) for c in self.choices)
            return None, f"{self.name} must be one of {opts}, got {v!r}"
        return v, None

    def _check_str(self, v):
        if not isinstance(v, str):
            return None, f"{self.name} must be text, got {v!r}"
        return v, None

    def _check_ints(self, v):
        if isinstance(v, str):
            if v in self.words:
                return v, None
            extra = f" or one of {', '.join(map(repr, self.words))}" if self.words else ""
            return None, f"{self.name} must be a whole number or a list of {self.dims}{extra}, got {v!r}"
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

    def _check_shape(self, v):
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, (list, tuple)) or not v:
            return None, f"{self.name} must be a non-empty list of whole numbers, got {v!r}"
        out = []
        for item in v:
            if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                return None, f"{self.name} must hold whole numbers >= 1, got {item!r}"
            out.append(item)
        return tuple(out), None


def as_tuple(value: Any, dims: int) -> tuple:
    """Spread an int over ``dims`` spatial dimensions (kernel_size=3 -> (3, 3))."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value,) * dims
