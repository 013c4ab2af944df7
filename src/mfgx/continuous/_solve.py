"""`solve(problem, solver)`: one entry point for LQ problems and grid HJB–FP problems."""

from __future__ import annotations

import math
import warnings

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..finite import ConvergenceWarning
from ..finite._precision import resolve_tol
from ._errors import CFLError, is_traced
from ._grid import GridMFG
from ._gridsolve import AbstractGridSolver, GridSolution, solve_grid
from ._lq import LQGame, Riccati, SystemicRisk, solve_lq


def solve(problem, solver, *, tol: float | None = None, max_steps: int = 1000, throw: bool = False):
    """Solve a continuous-state mean-field game.

    - `LQGame` / `SystemicRisk` with `Riccati()` → `LQSolution` (closed form up to the ODE solve;
      `tol`, `max_steps`, `throw` do not apply: Diffrax raises if its own step budget runs out).
    - `GridMFG` with `Picard(damping)` or `FictitiousPlay()` → `GridSolution`. Iterates until the
      residual sup_n ‖Φ(m)ⁿ − mⁿ‖_{L¹} ≤ ``tol`` (default 1e-8; 10 machine ε in float32) or ``max_steps``; non-convergence gives
      ``converged=False`` and a `ConvergenceWarning` (``throw=True``: an error). A violated CFL
      condition of the explicit scheme (Δt · max out-rate > 1) raises `CFLError`, naming the n_t
      that would satisfy it.

    Jit-compiled; arrays in the problem (coefficients, σ, m₀, cost weights) may be vmapped over.
    """
    if isinstance(problem, (LQGame, SystemicRisk)):
        if not isinstance(solver, Riccati):
            raise TypeError(f"an {type(problem).__name__} is solved by mfgx.continuous.Riccati(), "
                            f"got {type(solver).__name__}")
        return solve_lq(problem, solver)
    if isinstance(problem, GridMFG):
        if not isinstance(solver, AbstractGridSolver):
            raise TypeError("a GridMFG is solved by mfgx.continuous.Picard(damping) or "
                            f"mfgx.continuous.FictitiousPlay(), got {type(solver).__name__}")
        if not (isinstance(max_steps, int) and max_steps >= 1):
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        tol = resolve_tol(tol, problem.m0.dtype)
        sol = solve_grid(problem, solver, jnp.asarray(tol, problem.m0.dtype), jnp.asarray(max_steps))
        return _report(problem, solver, sol, throw)
    raise TypeError(f"solve expects an LQGame, SystemicRisk or GridMFG, got {type(problem).__name__}")


def _report(problem: GridMFG, solver, sol: GridSolution, throw: bool) -> GridSolution:
    msg_cfl = "explicit HJB–FP scheme unstable: Δt · max out-rate > 1 (CFL); increase GridMFG n_t"
    if is_traced(sol.cfl, sol.converged):
        density = eqx.error_if(sol.density, sol.cfl > 1, msg_cfl)
        if throw:
            density = eqx.error_if(density, ~sol.converged, f"{type(solver).__name__} did not converge (residual > tol)")
        return eqx.tree_at(lambda s: s.density, sol, density)
    cfl = np.asarray(sol.cfl)
    if np.any(cfl > 1):
        worst = float(np.max(cfl))
        need = math.ceil(problem.n_t * worst * 1.05)
        raise CFLError(f"explicit HJB–FP scheme unstable: Δt · max out-rate = {worst:.3g} > 1 with n_t = "
                       f"{problem.n_t} (Δt = {problem.dt:.3g}); use GridMFG(..., n_t={need}) or more")
    converged, steps, residual = map(np.asarray, (sol.converged, sol.steps, sol.residual))
    if not np.all(converged):
        msg = (f"{type(solver).__name__} did not converge in {int(np.max(steps))} steps; residual "
               f"{float(np.max(residual)):.3g} (sup_t L¹ distance of successive density flows)")
        if throw:
            raise RuntimeError(msg)
        warnings.warn(msg + ". Raise max_steps or the damping, or use FictitiousPlay (throw=True raises).",
                      ConvergenceWarning, stacklevel=3)
    return sol
