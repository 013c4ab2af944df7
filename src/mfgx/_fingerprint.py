"""Stable fingerprints of what determines a run (models, optimisers, data), for checkpoints.

`describe` turns an object into a JSON-able description that does not depend on memory addresses
or on the process: arrays by shape, dtype and a SHA-256 of their bytes; dataclasses (Equinox
modules) by type and fields; functions by module, qualified name, defaults and closure (so an
Optax optimiser's hyperparameters, held in closures, are seen); other objects by type and
attributes. `digest` is the SHA-256 of that description. Two runs whose settings differ get
different digests; a rerun of the same code and settings gets the same digest.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
import types
from typing import Any

import numpy as np

_MAX_DEPTH = 48
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _array(x) -> dict:
    a = np.asarray(x)
    if a.dtype == object:
        return {"object_array": [describe(v) for v in a.ravel().tolist()]}
    a = np.ascontiguousarray(a)
    return {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": hashlib.sha256(a.tobytes()).hexdigest()}


def _name(obj) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def describe(obj: Any, _depth: int = 0, _seen: frozenset = frozenset()) -> Any:
    """A JSON-able, address-free description of ``obj`` (see the module docstring)."""
    if _depth > _MAX_DEPTH:
        return {"truncated": type(obj).__qualname__}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else repr(obj)
    if isinstance(obj, (np.generic,)):
        return describe(obj.item(), _depth)
    if hasattr(obj, "shape") and hasattr(obj, "dtype") and not isinstance(obj, type):
        try:
            return _array(obj)
        except Exception:  # noqa: BLE001 (tracers and other array-likes without bytes)
            return {"array_like": type(obj).__qualname__, "shape": list(obj.shape), "dtype": str(obj.dtype)}
    if id(obj) in _seen:
        return {"cycle": type(obj).__qualname__}
    seen = _seen | {id(obj)}
    d = _depth + 1
    if isinstance(obj, (list, tuple)):
        out = [describe(v, d, seen) for v in obj]
        fields = getattr(obj, "_fields", None)  # NamedTuple (e.g. optax.GradientTransformation)
        return {"type": _name(type(obj)), "items": out} if fields else out
    if isinstance(obj, dict):
        return {str(k): describe(v, d, seen) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (set, frozenset)):
        return sorted(json.dumps(describe(v, d, seen), sort_keys=True) for v in obj)
    if isinstance(obj, functools.partial):
        return {"partial": describe(obj.func, d, seen), "args": describe(obj.args, d, seen),
                "keywords": describe(obj.keywords, d, seen)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"type": _name(type(obj)),
                **{f.name: describe(getattr(obj, f.name, None), d, seen) for f in dataclasses.fields(obj)}}
    if isinstance(obj, types.MethodType):
        return {"method": _name(obj.__func__), "self": describe(obj.__self__, d, seen)}
    if isinstance(obj, types.FunctionType):
        cells = [c.cell_contents if _filled(c) else None for c in (obj.__closure__ or ())]
        return {"function": _name(obj), "defaults": describe(obj.__defaults__, d, seen),
                "kwdefaults": describe(obj.__kwdefaults__, d, seen), "closure": describe(cells, d, seen)}
    wrapped = getattr(obj, "__wrapped__", None)
    if wrapped is not None:  # jax.jit and other wrappers
        return {"wrapper": type(obj).__qualname__, "wrapped": describe(wrapped, d, seen)}
    if isinstance(obj, (type, types.ModuleType, types.BuiltinFunctionType)):
        return {"ref": _name(obj) if not isinstance(obj, types.ModuleType) else obj.__name__}
    attrs = getattr(obj, "__dict__", None)
    if attrs:
        return {"type": _name(type(obj)), "attrs": describe(attrs, d, seen)}
    return {"type": _name(type(obj)), "repr": _ADDRESS.sub("", repr(obj))}


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def digest(*objs: Any) -> str:
    """SHA-256 (hex, first 16 characters) of the descriptions of ``objs``."""
    text = json.dumps([describe(o) for o in objs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_digest(observations) -> str:
    """The fingerprint of observations' arrays (values, mask, times, covariates; not metadata)."""
    return digest(np.nan_to_num(np.asarray(observations.values), nan=-1.0), np.asarray(observations.mask),
                  np.asarray(observations.times), getattr(observations, "covariates", None))
