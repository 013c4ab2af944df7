r"""Coupling the grid HJB and FP sweeps: damped Picard and fictitious play on the density flow.

One iteration maps a flow m = (m⁰..m^N) to Φ(m) = FP(HJB(m)), the flow of the best response to
m, and mixes m ← m + wₖ (Φ(m) − m): wₖ = 1 − damping (`Picard`) or 1/(k + 1) (`FictitiousPlay`).
The residual is sup_n ‖Φ(m)ⁿ − mⁿ‖_{L¹} = sup_n Σᵢ |Φ(m)ⁿᵢ − mⁿᵢ| hᵈ; iteration stops when it is
≤ tol or after max_steps, inside one `jax.lax.while_loop`.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from ._errors import ProblemError
from ._grid import Grid, GridMFG
from ._scheme import fp, hjb, velocity


class AbstractGridSolver(eqx.Module):
    """A relaxation m ← m + wₖ(Φ(m) − m) of the best-response map on density flows."""

    @abc.abstractmethod
    def weight(self, k: Int[Array, ""]) -> Float[Array, ""]:
        """The weight wₖ of the best response at iteration k = 0, 1, ..."""


class Picard(AbstractGridSolver):
    """Damped Picard: m ← (1 − λ) Φ(m) + λ m, λ = ``damping`` ∈ [0, 1)."""

    damping: float = 0.5

    def __check_init__(self):
        if isinstance(self.damping, (int, float)) and not 0 <= self.damping < 1:
            raise ProblemError(f"Picard.damping must be in [0, 1), got {self.damping}")

    def weight(self, k):
        return jnp.asarray(1.0 - self.damping)


class FictitiousPlay(AbstractGridSolver):
    """Fictitious play: m^{k+1} = m^k + (Φ(m^k) − m^k)/(k + 1), the running average of best-response flows.

    Converges for monotone couplings (e.g. log congestion) at rate O(1/k)."""

    def weight(self, k):
        return 1.0 / (k + 1.0)


class GridSolution(eqx.Module):
    r"""The result of solving a `GridMFG`.

    - `ts` [N+1]; `value` u[N+1, *shape], the HJB solution against the last iterate m, and
      `density` Φ(m)[N+1, *shape], the flow of its optimal control; `velocity` α[N, *shape, d], the
      net upwind control used on [tₙ, tₙ₊₁).
    - `mean`, `variance` [N+1, d]: moments of the density; `mass` [N+1]: Σ m hᵈ (1 to round-off).
    - `steps`, `residual` (sup_n L¹ distance ‖Φ(m) − m‖), `converged` (residual ≤ tol).
    - `cfl`: max Δt · out-rate of the explicit scheme (≤ 1 for positivity and monotonicity).
    """

    grid: Grid
    ts: Float[Array, " N1"]
    density: Float[Array, " N1 *shape"]
    value: Float[Array, " N1 *shape"]
    velocity: Float[Array, "N *shape d"]
    mean: Float[Array, "N1 d"]
    variance: Float[Array, "N1 d"]
    mass: Float[Array, " N1"]
    steps: Int[Array, ""]
    residual: Float[Array, ""]
    converged: Bool[Array, ""]
    cfl: Float[Array, ""]


def _distance(problem: GridMFG, a, b):
    axes = tuple(range(1, a.ndim))
    return jnp.max(jnp.sum(jnp.abs(a - b), axis=axes)) * problem.grid.cell_volume


@eqx.filter_jit
def solve_grid(problem: GridMFG, solver: AbstractGridSolver, tol, max_steps) -> GridSolution:
    """Iterate m ← m + wₖ(Φ(m) − m); report the last best response Φ(m) and its value u = HJB(m)."""
    flow0 = jnp.broadcast_to(problem.m0, (problem.n_t + 1, *problem.grid.shape))

    def cond(carry):
        k, *_, res = carry
        return (k < max_steps) & (res > tol)

    def body(carry):
        k, flow, *_ = carry
        us = hjb(problem, flow)
        new, cfl = fp(problem, us)
        return k + 1, flow + solver.weight(k) * (new - flow), us, new, cfl, _distance(problem, new, flow)

    nan = jnp.asarray(jnp.nan, problem.m0.dtype)
    init = (jnp.asarray(0), flow0, jnp.full_like(flow0, jnp.nan), flow0, nan, jnp.asarray(jnp.inf, problem.m0.dtype))
    steps, _, us, density, cfl, residual = lax.while_loop(cond, body, init)
    grid = problem.grid
    vel = lax.map(lambda u: velocity(problem, u), us[1:])
    mean, var, mass = (lax.map(fn, density) for fn in (grid.mean, grid.variance, grid.integrate))
    return GridSolution(grid, problem.ts, density, us, vel, mean, var, mass, steps, residual, residual <= tol, cfl)
