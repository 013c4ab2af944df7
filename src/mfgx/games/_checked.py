"""Argument checks shared by the zoo's constructors: sizes are integers in range, reals are finite."""

from __future__ import annotations

import functools
import inspect
import math
import numbers

from ..finite import GameError

_NON_NEGATIVE = {"seed", "bar_loc"}  # indices: 0 allowed
_AT_LEAST_TWO = {"n_points"}  # grids need two points
_POSITIVE_REALS = {"T", "dt"}  # lengths of time


def _check(fn_name: str, name: str, annotation: str, value) -> None:
    if annotation.startswith("int"):
        if value is None and "None" in annotation:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise GameError(f"{fn_name}: {name} must be an integer, got {value!r}")
        low = 0 if name in _NON_NEGATIVE else 2 if name in _AT_LEAST_TWO else 1
        if value < low:
            raise GameError(f"{fn_name}: {name} must be an integer ≥ {low}, got {value}")
    elif annotation.startswith("float"):
        if value is None and "None" in annotation:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise GameError(f"{fn_name}: {name} must be a real number, got {value!r}")
        if not math.isfinite(value):
            raise GameError(f"{fn_name}: {name} must be finite, got {value}")
        if name in _POSITIVE_REALS and not value > 0:
            raise GameError(f"{fn_name}: {name} must be positive, got {value}")


def checked(fn):
    """Wrap a game constructor: its ``int``/``float`` arguments are checked (`GameError` naming the
    game, the argument and the value) before any work."""
    sig = inspect.signature(fn)
    specs = {n: p.annotation for n, p in sig.parameters.items() if isinstance(p.annotation, str)}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            if name in specs:
                _check(fn.__name__, name, specs[name], value)
        return fn(*args, **kwargs)

    return wrapper
