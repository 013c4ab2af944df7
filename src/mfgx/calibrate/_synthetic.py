r"""Synthetic observations: equilibria at a known parameter path, with optional Dirichlet noise.

The ground-truth path is evaluated on the equilibrium itself (inside the fixed point), as the
paper's data generator does; for paths of t only this equals evaluating it on the clean flow.
Every generated equilibrium must converge (else `CalibrationError`); the largest fixed-point
residual ‖Φ(μ) − μ‖_∞ and exploitability are recorded in the metadata.

Noise (the paper's model, §5): y_n ~ Dirichlet(κ (μ̄_n + 1e-6)), κ = 1/noise, independently for
each n, including n = 0 unless ``noisy_initial=False``.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..finite import AbstractSolver, FixedPoint, solve
from ..finite._precision import resolve_tol
from ._errors import CalibrationError
from ._iterate import on_iterate
from ._model import game_times, identity_params, scalar_params
from ..data import Observations
from ._paths import AbstractPath, Known


@eqx.filter_jit
def _generate(game, path, to_params, times, mu0, solver, tol, max_steps):
    def one(m0):
        g = on_iterate(eqx.tree_at(lambda g: g.mu0, game, m0), path, to_params, times)
        eq = solve(g, solver, tol=tol, max_steps=max_steps)
        return eq.flow, eq.converged, eq.residual, eq.exploitability, eq.steps

    return eqx.filter_vmap(one)(mu0)


def simulate(
    game,
    path: AbstractPath | Callable,
    mu0,
    *,
    to_params: Callable | None = None,
    solver: AbstractSolver = FixedPoint(0.0),
    tol: float | None = None,
    max_steps: int = 1000,
    noise: float = 0.0,
    noisy_initial: bool = True,
    seed: int = 0,
    labels=None,
    metadata=None,
) -> Observations:
    """Observations of the equilibria of ``game`` with θ = to_params(path(t, μ_t)) from each μ₀ in
    ``mu0`` [K, S]; ``path`` is an `AbstractPath` or any callable (t, μ) → γ[p]."""
    tol = resolve_tol(tol, game.mu0.dtype, default=1e-12)
    mu0 = np.atleast_2d(np.asarray(mu0, dtype=float))
    if mu0.ndim != 2 or mu0.shape[1] != game.n_states:
        raise CalibrationError(f"mu0 must have shape [K, S] with S = {game.n_states}, got {mu0.shape}")
    if np.any(mu0 < 0) or np.any(np.abs(mu0.sum(1) - 1) > 1e-9):
        raise CalibrationError("every initial distribution mu0[k] must be non-negative and sum to 1")
    if not noise >= 0:
        raise CalibrationError(f"noise must be non-negative, got {noise}")
    times = jnp.asarray(game_times(game))
    if not isinstance(path, AbstractPath):
        path = Known(path, n_states=game.n_states)
    if to_params is None:
        size = np.size(path(times[0], jnp.asarray(mu0[0])))
        to_params = scalar_params if size == 1 else identity_params
    flow, conv, res, expl, steps = map(
        np.asarray, _generate(game, path, to_params, times, jnp.asarray(mu0), solver, tol, max_steps)
    )
    if not conv.all():
        bad = np.flatnonzero(~conv)
        raise CalibrationError(
            f"data generation: {bad.size} of {len(conv)} equilibria did not converge in {max_steps} steps "
            f"(worst residual {res.max():.3g} > tol {tol:g}); first at trajectory {int(bad[0])}"
        )
    y = flow
    if noise > 0:
        rng = np.random.default_rng(seed)
        # Dirichlet(α) draws for every (k, n) at once: independent Gamma(α_x) normalised.
        g = rng.standard_gamma((np.clip(flow, 0, None) + 1e-6) / noise)
        y = g / g.sum(-1, keepdims=True)
        if not noisy_initial:
            y[:, 0] = flow[:, 0]
        y = y / y.sum(-1, keepdims=True)
    meta = {
        "generator": "mfgx.calibrate.simulate",
        "max_fixed_point_residual": float(res.max()),
        "max_exploitability": float(expl.max()),
        "max_solver_steps": int(steps.max()),
        "noise": float(noise),
        "noisy_initial": bool(noisy_initial),
        "seed": int(seed),
        **(metadata or {}),
    }
    return Observations(y, times=np.asarray(times), labels=labels, noise=noise, metadata=meta)
