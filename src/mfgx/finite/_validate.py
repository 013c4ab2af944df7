"""Checks of a game at its boundary: run eagerly on concrete inputs, never inside jit."""

from __future__ import annotations

import jax
import numpy as np

SIMPLEX_TOL = 1e-6


class GameError(ValueError):
    """A game, policy or distribution is malformed (shape, negative mass, non-stochastic kernel)."""


def _is_traced(tree) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(tree))


def check_distribution(p, name: str, shape=None) -> None:
    """Raise `GameError` unless ``p`` is finite, non-negative and sums to one over its last axis."""
    if _is_traced(p):
        return
    a = np.asarray(p)
    if shape is not None and a.shape != tuple(shape):
        raise GameError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    _check_probabilities(a, name, "index", "index")


def _check_probabilities(a, what: str, where: str, row_where: str) -> None:
    """``a[..., k]``: finite, ≥ 0 and summing to one over k; errors name ``what`` and the index."""
    if not np.all(np.isfinite(a)):
        raise GameError(f"{what} is not finite at {where} {_first(~np.isfinite(a))}")
    if np.any(a < -SIMPLEX_TOL):
        i = _first(a < -SIMPLEX_TOL)
        raise GameError(f"{what} has negative probability {a[i]:.3g} at {where} {i}")
    rows = a.sum(-1)
    bad = np.abs(rows - 1) > SIMPLEX_TOL
    if np.any(bad):
        if a.ndim == 1:
            raise GameError(f"{what} must sum to 1, but sums to {float(rows):.8g}")
        i = _first(bad)
        raise GameError(f"{what} is not stochastic: row {row_where} {i} sums to {rows[i]:.8g}, not 1")


def _first(mask) -> tuple:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def validate_game(game) -> None:
    """Probe a `FiniteGame` at t = 0 and t = T and raise `GameError` naming the first bad entry."""
    if _is_traced((game.mu0, game.params)):
        return
    S, A, T = game.n_states, game.n_actions, game.horizon
    check_distribution(game.mu0, "mu0", (S,))
    if A < 1:
        raise GameError(f"the game needs at least one action, got n_actions={A}")
    mu = np.asarray(game.mu0)
    uniform_policy = np.full((S, A), 1.0 / A)
    m = game.mean_field_of(mu, uniform_policy)
    from ._kernels import NeighbourKernel, RateKernel

    for t in sorted({0, T}):
        r = np.asarray(game.reward(t, m, game.params))
        if r.shape != (S, A):
            raise GameError(f"reward(t={t}) must have shape [S, A] = {(S, A)}, got {r.shape}")
        if not np.all(np.isfinite(r)):
            raise GameError(f"reward(t={t}) is not finite at (state, action) = {_first(~np.isfinite(r))}")
        if isinstance(game.kernel, RateKernel):
            _check_rates(game.kernel, t, m, game.params, S, A)
        if isinstance(game.kernel, NeighbourKernel):
            _check_neighbours(game.kernel, t, m, game.params, S, A)
            continue
        try:
            P = np.asarray(game.kernel.matrix(t, m, game.params))
        except NotImplementedError:
            continue  # a custom kernel without a dense form: nothing to probe
        if P.shape != (S, A, S):
            raise GameError(f"transition(t={t}) must have shape [S, A, S] = {(S, A, S)}, got {P.shape}")
        _check_probabilities(P, f"transition(t={t})", "(x, a, x') =", "(x, a) =")


def _check_rates(kernel, t, m, params, S, A) -> None:
    q = np.asarray(kernel.rates(t, m, params))
    if q.shape != (S, A, S):
        raise GameError(f"rates(t={t}) must have shape [S, A, S] = {(S, A, S)}, got {q.shape}")
    off = q * (1 - np.eye(S)[:, None, :])
    if not np.all(np.isfinite(off)):
        raise GameError(f"rates(t={t}) are not finite at (x, a, y) = {_first(~np.isfinite(off))}")
    if np.any(off < 0):
        i = _first(off < 0)
        raise GameError(f"rates(t={t}) has a negative jump rate {off[i]:.3g} at (x, a, y) = {i}")
    if kernel.scheme == "euler":
        out = off.sum(-1) * kernel.dt
        if np.any(out > 1 + 1e-12):
            i = _first(out > 1 + 1e-12)
            raise GameError(
                f"explicit Euler leaves the simplex: dt * total out-rate = {out[i]:.4g} > 1 at "
                f"(x, a) = {i} (t={t}); use scheme='expm' or 'implicit', or a smaller dt"
            )


def _check_neighbours(kernel, t, m, params, S, A) -> None:
    dest = np.asarray(kernel.dest)
    if dest.ndim != 3 or dest.shape[:2] != (S, A):
        raise GameError(f"NeighbourKernel.dest must have shape [S, A, K] with (S, A) = {(S, A)}, got {dest.shape}")
    if not np.issubdtype(dest.dtype, np.integer):
        raise GameError(f"NeighbourKernel.dest must hold integer state indices, got dtype {dest.dtype}")
    if np.any((dest < 0) | (dest >= S)):
        i = _first((dest < 0) | (dest >= S))
        raise GameError(f"NeighbourKernel.dest[{i}] = {dest[i]} is not a state index in [0, {S})")
    _check_probabilities(np.asarray(kernel._w(t, m, params)), f"NeighbourKernel weights (t={t})", "(x, a, k) =", "(x, a) =")
