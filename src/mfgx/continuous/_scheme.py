r"""The monotone upwind scheme: explicit Bellman steps backwards, their adjoint forwards.

On each axis k the agent at cell i may push right at speed α⁺ ≥ 0 and left at speed α⁻ ≥ 0 at
cost ½(α⁺² + α⁻²), on top of diffusion: a Markov chain with rates

    i → i + eₖ :  ν/hₖ² + α⁺/hₖ,        i → i − eₖ :  ν/hₖ² + α⁻/hₖ     (none through reflecting walls).

Minimising over (α⁺, α⁻) gives α⁺ = (D⁺u)⁻ := max(−D⁺u, 0), α⁻ = (D⁻u)⁺ := max(D⁻u, 0) and the
Achdou–Capuzzo-Dolcetta numerical Hamiltonian H(D⁻u, D⁺u) = ½[(D⁻u)⁺² + (D⁺u)⁻²] (monotone,
consistent with ½|p|²). With Q the chain's generator at u^{n+1}:

    HJB:  uⁿ = uⁿ⁺¹ + Δt [ f(tₙ, ·, mⁿ) + νΔ_h uⁿ⁺¹ − H(D⁻uⁿ⁺¹, D⁺uⁿ⁺¹) ]   (Bellman of I + ΔtQ)
    FP:   mⁿ⁺¹ = (I + Δt Q)ᵀ mⁿ                                              (its exact adjoint)

Mass is conserved exactly; positivity and monotonicity hold when Δt · max out-rate ≤ 1 (CFL).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from ._grid import GridMFG


def _masks(problem: GridMFG):
    """Per axis: cells that may move +1 and −1 (all cells when periodic)."""
    shape = problem.grid.shape
    out = []
    for k, n in enumerate(shape):
        idx = jnp.arange(n).reshape([n if j == k else 1 for j in range(len(shape))])
        if problem.boundary == "periodic":
            plus = minus = jnp.ones(shape, bool)
        else:
            plus, minus = jnp.broadcast_to(idx < n - 1, shape), jnp.broadcast_to(idx > 0, shape)
        out.append((plus, minus))
    return out


def _moves(problem: GridMFG, u: Float[Array, "*shape"]):
    """Per axis: (u₊, u₋, α⁺, α⁻, plus mask, minus mask)."""
    out = []
    for k, (h, (plus, minus)) in enumerate(zip(problem.grid.h, _masks(problem))):
        up, dn = jnp.roll(u, -1, axis=k), jnp.roll(u, 1, axis=k)
        a_plus = jnp.where(plus, jnp.maximum(-(up - u) / h, 0.0), 0.0)
        a_minus = jnp.where(minus, jnp.maximum((u - dn) / h, 0.0), 0.0)
        out.append((up, dn, a_plus, a_minus, plus, minus))
    return out


def _nu(problem):
    return problem.sigma**2 / 2


def hjb_step(problem: GridMFG, u_next, f):
    """One backward Bellman step uⁿ⁺¹ ↦ uⁿ."""
    nu, total = _nu(problem), f
    for h, (up, dn, ap, am, plus, minus) in zip(problem.grid.h, _moves(problem, u_next)):
        diffusion = nu / h**2 * (jnp.where(plus, up - u_next, 0.0) + jnp.where(minus, dn - u_next, 0.0))
        total = total + diffusion - 0.5 * (ap**2 + am**2)
    return u_next + problem.dt * total


def out_rates(problem: GridMFG, u_next):
    """Per axis (rate right, rate left) of the chain controlled by u^{n+1}."""
    nu = _nu(problem)
    return [(jnp.where(plus, nu / h**2, 0.0) + ap / h, jnp.where(minus, nu / h**2, 0.0) + am / h)
            for h, (_, _, ap, am, plus, minus) in zip(problem.grid.h, _moves(problem, u_next))]


def fp_step(problem: GridMFG, m, u_next):
    """One forward step mⁿ ↦ mⁿ⁺¹ = (I + ΔtQ)ᵀ mⁿ; also returns Δt · max out-rate."""
    change, out = 0.0, 0.0
    for k, (right, left) in enumerate(out_rates(problem, u_next)):
        change = change - (right + left) * m + jnp.roll(right * m, 1, axis=k) + jnp.roll(left * m, -1, axis=k)
        out = out + right + left
    return m + problem.dt * change, problem.dt * jnp.max(out)


def velocity(problem: GridMFG, u_next) -> Float[Array, "*shape d"]:
    """The net upwind velocity α⁺ − α⁻ per axis (≈ −∇u)."""
    return jnp.stack([ap - am for (_, _, ap, am, _, _) in _moves(problem, u_next)], axis=-1)


def hjb(problem: GridMFG, flow: Float[Array, " N1 *shape"]) -> Float[Array, " N1 *shape"]:
    """Backward sweep: u[T] = g(m_T), then Bellman steps with f(tₙ, ·, mⁿ)."""
    ts = problem.ts
    u_T = problem.terminal(problem.grid, ts[-1], flow[-1])

    def step(u_next, inp):
        t, m = inp
        u = hjb_step(problem, u_next, problem.running(problem.grid, t, m))
        return u, u

    _, us = lax.scan(step, u_T, (ts[:-1], flow[:-1]), reverse=True)
    return jnp.concatenate([us, u_T[None]])


def fp(problem: GridMFG, us: Float[Array, " N1 *shape"]):
    """Forward sweep from m₀ under the controls of u; returns (flow, max CFL number)."""

    def step(m, u_next):
        m_new, cfl = fp_step(problem, m, u_next)
        return m_new, (m_new, cfl)

    _, (ms, cfl) = lax.scan(step, problem.m0, us[1:])
    return jnp.concatenate([problem.m0[None], ms]), jnp.max(cfl)
