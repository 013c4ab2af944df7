"""Tolerances that follow the dtype: defaults a solve can reach, and a warning when asked for less."""

from __future__ import annotations

import warnings

import jax.numpy as jnp


class PrecisionWarning(UserWarning):
    """A tolerance was below what the floating-point type can resolve (it was raised to the floor)."""


def tol_floor(dtype) -> float:
    """The smallest tolerance a residual in ``dtype`` can reliably reach: 10 machine ε
    (2.2e-15 in float64, 1.2e-6 in float32)."""
    return 10 * float(jnp.finfo(dtype).eps)


def resolve_tol(tol, dtype, default: float = 1e-8, what: str = "tol") -> float:
    """``tol`` checked against ``dtype``: None gives max(default, floor); a concrete value below the
    floor warns (`PrecisionWarning`) and is raised to it; traced values pass unchanged."""
    floor = tol_floor(dtype)
    if tol is None:
        return max(default, floor)
    try:
        value = float(tol)
    except (TypeError, ValueError):  # traced under jit/vmap: the caller's responsibility
        return tol
    if not value >= 0:
        raise ValueError(f"{what} must be non-negative, got {tol!r}")
    if value < floor:
        name = jnp.dtype(dtype).name
        warnings.warn(
            f"{what}={value:g} is below what {name} can resolve (10 × machine ε = {floor:.2g}): the residual "
            f"could never reach it, so {what} is raised to {floor:.2g}"
            + (" (set MFGX_X64=1, the default, for float64)" if name == "float32" else ""),
            PrecisionWarning,
            stacklevel=3,
        )
        return floor
    return value
