"""`mfgx.Neumann`: the damped Neumann adjoint, its Krylov fallback, and gradients through `solve`."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import mfgx


def _system(radius, seed=0, n=12):
    rng = np.random.default_rng(seed)
    J = rng.normal(size=(n, n))
    J *= radius / np.max(np.abs(np.linalg.eigvals(J)))
    b = rng.normal(size=n)
    op = lx.FunctionLinearOperator(lambda x: jnp.asarray(J) @ x - x, jax.ShapeDtypeStruct((n,), jnp.float64))
    return J, b, op


@pytest.mark.parametrize("damping", [0.0, 0.5])
def test_contractive_system_solved_with_transpose_and_vmap(damping):
    J, b, op = _system(0.6)
    A = J - np.eye(len(b))
    solver = mfgx.Neumann(damping=damping)
    sol = lx.linear_solve(op, jnp.asarray(b), solver)
    np.testing.assert_allclose(sol.value, np.linalg.solve(A, b), atol=1e-9)
    g = jax.grad(lambda v: lx.linear_solve(op, v, solver).value.sum())(jnp.asarray(b))  # Aᵀ solve
    np.testing.assert_allclose(g, np.linalg.solve(A.T, np.ones(len(b))), atol=1e-9)
    bs = np.random.default_rng(1).normal(size=(3, len(b)))
    xs = jax.vmap(lambda v: lx.linear_solve(op, v, solver).value)(jnp.asarray(bs))
    np.testing.assert_allclose(xs, np.linalg.solve(A, bs.T).T, atol=1e-9)


def test_non_contractive_system_falls_back_or_fails_loudly():
    J, b, op = _system(1.7)
    sol = lx.linear_solve(op, jnp.asarray(b), mfgx.Neumann(max_steps=50))
    np.testing.assert_allclose(sol.value, np.linalg.solve(J - np.eye(len(b)), b), atol=1e-8)
    bad = lx.linear_solve(op, jnp.asarray(b), mfgx.Neumann(max_steps=50, fallback=False), throw=False)
    assert bad.result != lx.RESULTS.successful
    with pytest.raises(ValueError, match="damping"):
        mfgx.Neumann(damping=1.0)


def test_gradient_through_solve_matches_gmres_and_finite_differences():
    game = mfgx.games.lq_rates(d=3, mu0=(0.6, 0.3, 0.1), n_points=30)
    target = mfgx.solve(game.with_params(1.3), mfgx.FixedPoint(0.0), tol=1e-13).flow

    def loss(gamma, adjoint):
        eq = mfgx.solve(game.with_params(gamma), mfgx.FixedPoint(0.0), tol=1e-13, adjoint=adjoint, diagnostics=False)
        return jnp.sum((eq.flow - target) ** 2)

    g_neumann = jax.grad(loss)(1.7, mfgx.ImplicitAdjoint(mfgx.Neumann(fallback=False)))
    g_gmres = jax.grad(loss)(1.7, mfgx.ImplicitAdjoint())
    h = 1e-5
    fd = (loss(1.7 + h, mfgx.ImplicitAdjoint()) - loss(1.7 - h, mfgx.ImplicitAdjoint())) / (2 * h)
    np.testing.assert_allclose(g_neumann, g_gmres, rtol=1e-8)
    np.testing.assert_allclose(g_neumann, fd, rtol=1e-6)
    # forward mode (Gauss–Newton Jacobians use jacfwd) agrees with reverse mode
    fwd = jax.jacfwd(loss)(1.7, mfgx.ImplicitAdjoint(mfgx.Neumann()))
    np.testing.assert_allclose(fwd, g_neumann, rtol=1e-8)
