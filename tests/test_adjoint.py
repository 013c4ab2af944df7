"""Gradients through the equilibrium: implicit adjoint vs unrolled differentiation vs finite differences."""

import warnings

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import mfgx

GAME = mfgx.games.two_state_congestion(T=3, mu0=(0.7, 0.3))
SMOOTH = mfgx.Softmax(0.5, 0.5)
COSTS = jnp.array([1.0, 2.0])


def loss(costs, adjoint=mfgx.ImplicitAdjoint(), solver=SMOOTH):
    eq = mfgx.solve(GAME.with_params(costs), solver, tol=1e-13, max_steps=3000, adjoint=adjoint)
    return (eq.flow[1:, 0] ** 2).sum() + eq.value[0] @ GAME.mu0


@pytest.fixture(scope="module")
def grads():
    implicit = jax.grad(loss)(COSTS)
    unrolled = jax.grad(lambda c: loss(c, mfgx.UnrolledAdjoint()))(COSTS)
    f = jax.jit(loss)
    h = 1e-5
    fd = np.array([(f(COSTS.at[i].add(h)) - f(COSTS.at[i].add(-h))) / (2 * h) for i in range(2)])
    return np.asarray(implicit), np.asarray(unrolled), fd


def test_implicit_matches_finite_differences(grads):
    implicit, _, fd = grads
    assert np.all(np.abs(implicit) > 1e-3)  # a non-trivial gradient
    np.testing.assert_allclose(implicit, fd, rtol=1e-6)


def test_implicit_matches_unrolled(grads):
    implicit, unrolled, _ = grads
    np.testing.assert_allclose(implicit, unrolled, rtol=1e-9)


def test_failed_adjoint_solve_raises():
    starved = mfgx.ImplicitAdjoint(lx.GMRES(rtol=1e-14, atol=1e-14, max_steps=1, restart=1))
    with pytest.raises(Exception, match="maximum number of solver steps"):
        jax.block_until_ready(jax.grad(lambda c: loss(c, starved))(COSTS))


def test_gradient_through_exact_best_response_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jax.grad(lambda c: loss(c, solver=mfgx.MirrorDescent(1.0)))(COSTS)
    assert any(issubclass(w.category, mfgx.NonSmoothWarning) for w in caught)
