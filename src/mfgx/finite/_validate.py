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
    """Raise `GameError` unless ``p`` is a finite, non-negative vector summing to one."""
    if _is_traced(p):
        return
    a = np.asarray(p)
    if shape is not None and a.shape != tuple(shape):
        raise GameError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise GameError(f"{name} contains NaN or inf at index {_first(~np.isfinite(a))}")
    if np.any(a < -SIMPLEX_TOL):
        i = _first(a < -SIMPLEX_TOL)
        raise GameError(f"{name} has negative probability {a[i]:.3g} at index {i}")
    s = a.sum(-1)
    if np.any(np.abs(s - 1) > SIMPLEX_TOL):
        i = _first(np.abs(s - 1) > SIMPLEX_TOL)
        raise GameError(f"{name} must sum to 1 over its last axis; the sum is {np.ravel(s)[0] if s.ndim == 0 else s[i]:.8g} at index {i}")


def check_policy(policy, n_times: int, n_states: int, n_actions: int, name="policy") -> None:
    check_distribution(policy, name, (n_times, n_states, n_actions))


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
        if not np.all(np.isfinite(P)):
            raise GameError(f"transition(t={t}) is not finite at (x, a, x') = {_first(~np.isfinite(P))}")
        if np.any(P < -SIMPLEX_TOL):
            i = _first(P < -SIMPLEX_TOL)
            raise GameError(f"transition(t={t}) has negative probability {P[i]:.3g} at (x, a, x') = {i}")
        rows = P.sum(-1)
        if np.any(np.abs(rows - 1) > SIMPLEX_TOL):
            i = _first(np.abs(rows - 1) > SIMPLEX_TOL)
            raise GameError(
                f"transition(t={t}) is not stochastic: row (x, a) = {i} sums to {rows[i]:.8g}, not 1"
            )


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
    w = np.asarray(kernel._w(t, m, params))
    if not np.all(np.isfinite(w)):
        raise GameError(f"NeighbourKernel weights (t={t}) are not finite at (x, a, k) = {_first(~np.isfinite(w))}")
    if np.any(w < -SIMPLEX_TOL):
        i = _first(w < -SIMPLEX_TOL)
        raise GameError(f"NeighbourKernel weights (t={t}) have a negative probability {w[i]:.3g} at (x, a, k) = {i}")
    rows = w.sum(-1)
    if np.any(np.abs(rows - 1) > SIMPLEX_TOL):
        i = _first(np.abs(rows - 1) > SIMPLEX_TOL)
        raise GameError(f"NeighbourKernel weights (t={t}) are not stochastic: (x, a) = {i} sums to {rows[i]:.8g}, not 1")
