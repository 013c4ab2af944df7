r"""`CalibrationModel`: game + parameter path + solver; predicted flows and the masked loss.

For an observed trajectory y_k (mask M_k), with the path evaluated on the observations (the
paper's decoupling, ``evaluate_on="observed"``):

    γ_{k,n} = γ(t_n, M_{k,n} ⊙ y_{k,n}),   θ_k = to_params(γ_k),
    μ̂_k = solve(game(θ_k) with μ₀ = μ₀(y_{k,0})).flow,
    ℓ_k = Σ_{n,x} w_n M_{k,n,x} (μ̂_{k,n,x} − y_{k,n,x})² / Σ_{n,x} w_n M_{k,n,x}     (masked mean square)

with w ≡ 1 (full horizon) or the indicator of a random sub-window. With ``evaluate_on="iterate"``,
γ is evaluated at (t, μ_t) of the equilibrium itself, inside the fixed point.

μ₀ from y_{k,0}: observed initial entries are kept; the unobserved initial mass 1 − Σ observed is
shared among the unobserved states by softmax(``mu0_logits``), a learnable vector (uniform at 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..finite import (
    AbstractAdjoint, AbstractSolver, ControlGame, FiniteGame, FixedPoint, ImplicitAdjoint, Neumann, RateKernel, solve,
)
from ..finite._neumann import default_tolerances
from ..finite._precision import resolve_tol
from ._errors import CalibrationError
from ._iterate import on_iterate
from ._paths import AbstractPath


def scalar_params(path: Float[Array, "N 1"]) -> Float[Array, " N"]:
    """The default ``to_params`` for a one-component path: θ = γ[:, 0] (e.g. `lq_rates`)."""
    return path[:, 0]


def identity_params(path):
    """``to_params`` that passes the path γ[N, p] itself as θ."""
    return path


def game_times(game) -> np.ndarray:
    """Physical times of the game's grid: n·Δt for rate games, the step index otherwise."""
    n = np.arange(game.horizon + 1, dtype=float)
    if isinstance(game, ControlGame):
        return n * game.dt
    if isinstance(game, FiniteGame) and isinstance(game.kernel, RateKernel):
        return n * float(game.kernel.dt)
    return n


def _probe(game):
    """Call the game's functions once at t = 0 (under eval_shape: shapes only)."""
    m = game.mu0
    if isinstance(game, ControlGame):
        u = game.terminal_cost(m, game.params)
        return game.running_cost(0.0, m, game.params, game.best_rates(0.0, m, game.params, u))
    return game.reward(0, m, game.params), game.kernel.matrix(0, m, game.params)


class CalibrationModel(eqx.Module):
    r"""What is fitted: a game, a parameter path and how θ is built from it; see the module docstring.

    **Arguments:**

    - `game`: a `FiniteGame` or `ControlGame` whose θ depends on the path (its μ₀ is replaced by
      each trajectory's).
    - `path`: a `Constant`, `PiecewiseConstant`, `Neural` (or any `AbstractPath`).
    - `to_params`: γ[N, p] ↦ θ, e.g. ``lambda g: {"beta": g[:, 0], "gamma": g[:, 1]}`` for `sir`.
      Default: ``γ[:, 0]`` for a one-component path, else γ itself. Define it once (a module-level
      function): jit caches on its identity.
    - `solver`: `mfgx.FixedPoint(0.0)` (default) or `mfgx.Softmax(τ)`; `tol` (default 1e-8 in float64,
      10 machine ε in float32: flows far more precise than any observation), `max_steps`, `adjoint`
      are passed to `mfgx.solve`. Default adjoint: `mfgx.ImplicitAdjoint(mfgx.Neumann(damping=λ,
      max_steps=max_steps, rtol=tol, fallback=False))`, the damped Neumann series with the solver's damping
      λ: where damped Picard converged the damped map is contractive and the series converges at
      the same rate; where it fails, the fit reports it (pass ``adjoint=mfgx.ImplicitAdjoint()`` for
      GMRES, or ``Neumann(fallback=True)``; the Krylov fallback costs ~2 s more compile). Solves skip
      value and exploitability (``diagnostics=False``): only flows enter the loss.
    - `evaluate_on`: "observed" (γ from the observed flow, outside the fixed point) or "iterate".
    - `times`: the path's time input t_n (default: the game's physical grid n·Δt).
    """

    game: FiniteGame | ControlGame
    path: AbstractPath
    to_params: Callable
    solver: AbstractSolver
    adjoint: AbstractAdjoint
    times: Float[Array, " N"]
    mu0_logits: Float[Array, " S"]
    tol: Float[Array, ""]
    max_steps: int = eqx.field(static=True)
    evaluate_on: str = eqx.field(static=True)

    def __init__(
        self,
        game,
        path: AbstractPath,
        to_params: Callable | None = None,
        solver: AbstractSolver = FixedPoint(0.0),
        *,
        tol: float | None = None,
        max_steps: int = 500,
        adjoint: AbstractAdjoint | None = None,
        evaluate_on: Literal["observed", "iterate"] = "observed",
        times=None,
        mu0_logits=None,
    ):
        if not isinstance(game, (FiniteGame, ControlGame)):
            raise CalibrationError(f"game must be a FiniteGame or ControlGame, got {type(game).__name__}")
        if getattr(game, "stationary", False):
            raise CalibrationError("calibration fits flows over a horizon: the game must not be stationary")
        if not isinstance(path, AbstractPath):
            raise CalibrationError(f"path must be a Constant, PiecewiseConstant or Neural path, got {type(path).__name__}")
        if not isinstance(solver, AbstractSolver):
            raise CalibrationError(f"solver must be an mfgx solver such as mfgx.FixedPoint(0.0), got {solver!r}")
        if evaluate_on not in ("observed", "iterate"):
            raise CalibrationError(f"evaluate_on must be 'observed' or 'iterate', got {evaluate_on!r}")
        if not ((tol is None or tol >= 0) and isinstance(max_steps, int) and max_steps >= 1):
            raise CalibrationError(f"tol must be ≥ 0 and max_steps a positive int, got {tol!r}, {max_steps!r}")
        tol = resolve_tol(tol, game.mu0.dtype, default=1e-8)
        if to_params is None:
            to_params = scalar_params if path.size == 1 else identity_params
        N, S = game.horizon + 1, game.n_states
        times = game_times(game) if times is None else np.asarray(times, dtype=float)
        if times.shape != (N,):
            raise CalibrationError(f"times must have one entry per grid point, shape ({N},), got {times.shape}")
        logits = np.zeros(S) if mu0_logits is None else np.asarray(mu0_logits, dtype=float)
        if logits.shape != (S,):
            raise CalibrationError(f"mu0_logits must have shape ({S},), got {logits.shape}")
        if adjoint is None:  # matrix-free, never LU/QR (experiments/repro_vmap_lu_adjoint.py)
            damping = float(getattr(solver, "damping", 0.0))
            rtol = max(float(tol), float(default_tolerances(game.mu0.dtype)[0]))  # as precise as the solve
            adjoint = ImplicitAdjoint(Neumann(damping=damping, max_steps=int(max_steps), rtol=rtol, atol=1e-2 * rtol,
                                              fallback=False))
        self.game, self.path, self.to_params, self.solver, self.adjoint = game, path, to_params, solver, adjoint
        self.times, self.mu0_logits = jnp.asarray(times), jnp.asarray(logits)
        self.tol, self.max_steps, self.evaluate_on = jnp.asarray(float(tol)), int(max_steps), evaluate_on
        # Probe θ on the game's own μ₀ once, so a wrong to_params fails here with a clear message.
        probe = jnp.broadcast_to(game.mu0, (N, S))
        try:
            z = jnp.zeros((N, path.n_covariates)) if path.n_covariates else None
            eqx.filter_eval_shape(lambda y, m, z: _probe(self.game_for(y, m, z)), probe, jnp.ones((N, S), bool), z)
        except Exception as e:  # noqa: BLE001  (re-raised with context)
            raise CalibrationError(f"building the game from the path failed: {type(e).__name__}: {e}") from e

    @property
    def n_times(self) -> int:
        return self.game.horizon + 1

    @property
    def n_states(self) -> int:
        return self.game.n_states

    def trainable(self):
        """The filter spec of what `fit` updates: the path's arrays and ``mu0_logits``."""
        spec = jax.tree_util.tree_map(lambda _: False, self)
        path_spec = jax.tree_util.tree_map(eqx.is_inexact_array, self.path)
        return eqx.tree_at(lambda m: (m.path, m.mu0_logits), spec, (path_spec, True))

    def initial(self, y0, mask0) -> Float[Array, " S"]:
        """μ₀ from the first observation: observed entries kept, the rest of the mass shared by
        softmax(mu0_logits) over the unobserved states."""
        observed = jnp.where(mask0, y0, 0.0)
        if not isinstance(mask0, jax.core.Tracer) and bool(np.all(np.asarray(mask0))):
            return observed / observed.sum()
        rest = jnp.clip(1.0 - observed.sum(), 0.0, 1.0)
        logits = jnp.where(mask0, -jnp.inf, self.mu0_logits)
        share = jnp.where(mask0, 0.0, jax.nn.softmax(jnp.where(mask0.all(), 0.0, logits)))
        mu0 = observed + rest * share
        return mu0 / mu0.sum()

    def path_on(self, y, mask, z=None) -> Float[Array, "N p"]:
        """γ[N, p] on one observed trajectory (unobserved entries read as 0); covariates z[N, C],
        when the observations carry them, are appended to the path's μ input."""
        inputs = jnp.where(mask, y, 0.0)
        if z is not None:
            inputs = jnp.concatenate([inputs, jnp.asarray(z, inputs.dtype)], axis=-1)
        return self.path.evaluate(self.times, inputs)

    def game_for(self, y, mask, z=None, mu0=None):
        """The game of one trajectory: its μ₀ (from y₀, or ``mu0`` if given) and its θ (or the path
        inside, on the iterate)."""
        mu0 = self.initial(y[0], mask[0]) if mu0 is None else mu0
        game = eqx.tree_at(lambda g: g.mu0, self.game, mu0)
        if self.evaluate_on == "iterate":
            return on_iterate(game, self.path, self.to_params, self.times)
        return game.with_params(self.to_params(self.path_on(y, mask, z)))

    def solve_one(self, y, mask, z=None, guess=None):
        """The equilibrium predicted for one trajectory (covariates z[N, C] or None), from the
        warm-start flow ``guess`` if given (no effect on the solution beyond ``tol``)."""
        return solve(
            self.game_for(y, mask, z), self.solver, tol=self.tol, max_steps=self.max_steps, adjoint=self.adjoint,
            diagnostics=False, guess=guess,
        )

    def predict(self, observations) -> Float[Array, "K N S"]:
        """Predicted flows μ̂[K, N, S] for every trajectory of ``observations``."""
        check_compatible(self, observations)
        return _predict(self, observations.values, observations.mask, covariates_of(observations))[0]


def covariates_of(observations):
    """The observations' covariates z[K, N, C], or None."""
    return getattr(observations, "covariates", None)


@eqx.filter_jit
def _predict(model: CalibrationModel, y, mask, z=None):
    eq = eqx.filter_vmap(model.solve_one)(y, mask, z)
    return eq.flow, eq.converged, eq.residual


def trajectory_loss(model: CalibrationModel, y, mask, start=None, window: int | None = None, z=None, guess=None):
    """(masked mean square over the horizon or over the ``window`` points from ``start``, equilibrium)."""
    eq = model.solve_one(y, mask, z, guess)
    w = mask.astype(eq.flow.dtype)
    if window is not None:
        N = y.shape[0]
        n = jnp.arange(N)
        w = w * ((n >= start) & (n < start + window))[:, None]
    loss = jnp.sum(w * (eq.flow - y) ** 2) / jnp.maximum(jnp.sum(w), 1.0)
    return loss, eq


def check_compatible(model: CalibrationModel, observations) -> None:
    from ..data import Observations

    if not isinstance(observations, Observations):
        raise CalibrationError(f"expected Observations, got {type(observations).__name__}")
    N, S = model.n_times, model.n_states
    if observations.values.shape[1:] != (N, S):
        raise CalibrationError(
            f"observations have N = {observations.n_times} times and S = {observations.n_states} states; "
            f"the game has N = {N} grid points (horizon + 1) and S = {S} states"
        )
    z = covariates_of(observations)
    C = 0 if z is None else z.shape[-1]
    wanted = model.path.n_covariates
    if C != wanted:
        raise CalibrationError(
            f"the path reads {wanted} covariate(s) but the observations carry {C}; build the path with "
            f"n_covariates={C} (e.g. Neural(..., n_covariates={C}))"
        )
    if C and model.evaluate_on == "iterate":
        raise CalibrationError("covariates enter the path on the observed trajectory: use evaluate_on='observed'")

