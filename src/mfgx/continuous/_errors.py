"""Errors raised for malformed continuous-state problems and unstable discretisations."""

from __future__ import annotations

import jax


class ProblemError(ValueError):
    """A continuous-state problem is malformed (shape, sign, non-finite value, mass ≠ 1)."""


class CFLError(ProblemError):
    """An explicit grid scheme violated its stability (CFL) condition Δt · max out-rate ≤ 1."""


def is_traced(*trees) -> bool:
    """True if any leaf is a tracer (checks at the boundary are skipped under jit/vmap/grad)."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(trees))
