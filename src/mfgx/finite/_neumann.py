"""`Neumann`: the damped Neumann series for the implicit adjoint's linear system, with a Krylov
fallback."""

from __future__ import annotations

from typing import Any

import jax
import jax.flatten_util
import jax.numpy as jnp
import lineax as lx
from jax import lax


def default_tolerances(dtype) -> tuple[float, float]:
    """(rtol, atol) a linear solve can reach in ``dtype``: (1e-10, 1e-12) in float64, (1e-5, 1e-7) in float32."""
    return (1e-10, 1e-12) if jnp.finfo(dtype).bits >= 64 else (1e-5, 1e-7)


class Neumann(lx.AbstractLinearSolver):
    r"""Solve (J − I) x = b, J = ∂Φ/∂m (or its transpose), by the damped Neumann series.

    This is the linear system of the implicit adjoint (`ImplicitAdjoint`): the operator is the
    Jacobian of the residual Φ(m) − m at the equilibrium. As the fixed point x = J x − b,

        x ← λ x + (1 − λ)(J x − b) = x + (1 − λ)(A x − b),        x₀ = −b,

    which converges when the damped map is contractive, ρ(λI + (1 − λ)J) < 1 (the condition under
    which damped Picard converges to the equilibrium; the calibration paper's adjoint). Each step
    costs one product with J and nothing else, so for contractive Φ it is the cheapest adjoint.
    It stops when max|Δx| ≤ atol + rtol·max|x|. Where it has not converged after ``max_steps``
    (Φ not contractive, or slowly so), GMRES continues from its iterate (``fallback``, only for
    the entries of a vmapped batch that need it); a failure of both is reported as a failed solve,
    which `ImplicitAdjoint` turns into an error rather than a wrong gradient.

    ``rtol``/``atol`` default to what the dtype can reach: 1e-10/1e-12 in float64, 1e-5/1e-7 in float32.
    """

    rtol: float | None = None
    atol: float | None = None
    max_steps: int = 100
    damping: float = 0.0
    fallback: bool = True

    def __check_init__(self):
        if not (0 <= self.damping < 1):
            raise ValueError(f"damping must be in [0, 1), got {self.damping}")
        if (self.rtol is not None and self.rtol < 0) or (self.atol is not None and self.atol < 0):
            raise ValueError("rtol and atol must be ≥ 0")
        if not (isinstance(self.max_steps, int) and self.max_steps >= 1):
            raise ValueError(f"max_steps must be a positive int, got {self.max_steps!r}")

    def init(self, operator, options: dict[str, Any]):
        if operator.in_structure() != operator.out_structure():
            raise ValueError("Neumann solves square systems only")
        return lx.linearise(operator)

    def compute(self, state, vector, options: dict[str, Any]):
        operator = state
        flat, unflatten = jax.flatten_util.ravel_pytree(vector)
        rtol, atol = default_tolerances(flat.dtype)
        rtol = rtol if self.rtol is None else self.rtol
        atol = atol if self.atol is None else self.atol
        step = 1.0 - self.damping

        def mv(x):
            return jax.flatten_util.ravel_pytree(operator.mv(unflatten(x)))[0]

        def cond(c):
            k, _, change, scale = c
            return (k < self.max_steps) & (change > atol + rtol * scale)

        def body(c):
            k, x, _, _ = c
            new = x + step * (mv(x) - flat)
            return k + 1, new, jnp.max(jnp.abs(new - x)), jnp.max(jnp.abs(new))

        x0 = -flat
        inf = jnp.asarray(jnp.inf, flat.dtype)
        k, x, change, scale = lax.while_loop(cond, body, (jnp.asarray(0), x0, inf, jnp.max(jnp.abs(x0))))
        ok = jnp.isfinite(change) & (change <= atol + rtol * scale)
        x = jnp.where(jnp.all(jnp.isfinite(x)), x, jnp.zeros_like(x))
        if self.fallback:
            gmres = lx.GMRES(rtol=rtol, atol=atol, restart=20, max_steps=20 * flat.size)

            def krylov(c):
                x, _, _ = c
                sol = lx.linear_solve(operator, unflatten(flat), gmres, options={"y0": unflatten(x)}, throw=False)
                return jax.flatten_util.ravel_pytree(sol.value)[0], sol.result == lx.RESULTS.successful, True

            # One pass at most, and only if (under vmap: for the entries where) Neumann did not converge.
            x, ok, _ = lax.while_loop(lambda c: ~c[1] & ~c[2], krylov, (x, ok, False))
        result = lx.RESULTS.where(ok, lx.RESULTS.successful, lx.RESULTS.max_steps_reached)
        return unflatten(x), result, {"num_steps": k}

    def transpose(self, state, options: dict[str, Any]):
        return state.transpose(), options

    def conj(self, state, options: dict[str, Any]):
        return lx.conj(state), options

    def assume_full_rank(self):
        return True
