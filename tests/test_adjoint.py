"""Gradients through the equilibrium: implicit adjoint vs unrolled differentiation vs finite differences."""

import warnings

import equinox as eqx
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


def test_regularised_mirror_descent_matches_softmax(grads):
    """MirrorDescent(α, temperature=τ) converges to the Softmax(τ) equilibrium, and the implicit
    adjoint differentiates it through the same (smooth) softmax response."""
    rmd = mfgx.MirrorDescent(1.0, temperature=SMOOTH.temperature)
    eq_md = mfgx.solve(GAME.with_params(COSTS), rmd, tol=1e-13, max_steps=3000)
    eq_sm = mfgx.solve(GAME.with_params(COSTS), SMOOTH, tol=1e-13, max_steps=3000)
    assert bool(eq_md.converged) and float(eq_md.regularised_exploitability) < 1e-12
    assert float(eq_md.exploitability) > 1e-3  # the regularised equilibrium is not the exact one
    np.testing.assert_allclose(eq_md.flow, eq_sm.flow, atol=1e-12)
    np.testing.assert_allclose(eq_md.policy, eq_sm.policy, atol=1e-11)
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfgx.NonSmoothWarning)
        md_grad = jax.grad(lambda c: loss(c, solver=rmd))(COSTS)
    # MD stops on the regularised exploitability, which is quadratic in the policy error: its root is
    # accurate to about √tol, hence a looser match than Softmax's flow residual allows.
    np.testing.assert_allclose(md_grad, grads[0], rtol=1e-6)


def test_failed_adjoint_solve_raises():
    starved = mfgx.ImplicitAdjoint(lx.GMRES(rtol=1e-14, atol=1e-14, max_steps=1, restart=1))
    with pytest.raises(Exception, match="maximum number of solver steps"):
        jax.block_until_ready(jax.grad(lambda c: loss(c, starved))(COSTS))


def test_gradient_through_exact_best_response_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jax.grad(lambda c: loss(c, solver=mfgx.MirrorDescent(1.0)))(COSTS)
    assert any(issubclass(w.category, mfgx.NonSmoothWarning) for w in caught)


# Time-dependent parameter paths of the calibration paper's rate games (θ has one value per grid point).
N_POINTS = 12
RATE_GAMES = {
    "sir": (mfgx.games.sir(T=20.0, n_points=N_POINTS), {"beta": jnp.full(N_POINTS, 0.4), "gamma": jnp.full(N_POINTS, 0.125)}, 1),
    "cybersecurity": (mfgx.games.cybersecurity(T=5.0, n_points=N_POINTS), tuple(jnp.full(N_POINTS, b) for b in mfgx.games.CYBER_BASE), 2),
    "cybersecurity-expm": (mfgx.games.cybersecurity(n_points=N_POINTS, scheme="expm"), tuple(jnp.full(N_POINTS, b) for b in mfgx.games.CYBER_BASE), 2),
}


@pytest.mark.parametrize(
    "name",
    [pytest.param("sir", marks=pytest.mark.slow), pytest.param("cybersecurity", marks=pytest.mark.slow),
     pytest.param("cybersecurity-expm", marks=pytest.mark.slow)],
)
def test_rate_game_path_gradients(name):
    game, theta, component = RATE_GAMES[name]
    solver = mfgx.Softmax(0.02, 0.3)

    def path_loss(th, adjoint=mfgx.ImplicitAdjoint()):
        eq = mfgx.solve(game.with_params(th), solver, tol=1e-13, max_steps=100, adjoint=adjoint)
        return (eq.flow[:, component] ** 2).sum()

    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(tree)])  # noqa: E731
    implicit = flat(jax.grad(path_loss)(theta))
    unrolled = flat(jax.grad(lambda th: path_loss(th, mfgx.UnrolledAdjoint()))(theta))
    assert np.abs(implicit).max() > 1e-3
    np.testing.assert_allclose(implicit, unrolled, rtol=1e-9, atol=1e-12 * np.abs(implicit).max())
    # Central differences along a random direction of the whole path.
    leaves, treedef = jax.tree_util.tree_flatten(theta)
    rng = np.random.default_rng(0)
    direction = [jnp.asarray(rng.normal(size=x.shape)) for x in leaves]
    shifted = lambda s: jax.tree_util.tree_unflatten(treedef, [x + s * d for x, d in zip(leaves, direction)])  # noqa: E731
    f, h = jax.jit(path_loss), 1e-6
    fd = (f(shifted(h)) - f(shifted(-h))) / (2 * h)
    np.testing.assert_allclose(implicit @ flat(direction), fd, rtol=1e-6)


@pytest.mark.slow
def test_vmapped_jitted_implicit_gradient():
    """Regression: grad of a jitted mean over a vmapped batch of solves (the calibration pattern).
    With a dense LU/QR adjoint (lineax 0.1.1) this returned wrong values for some batches."""
    game = mfgx.games.sir(T=20.0, n_points=15)
    mu0s = jnp.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1]] * 3)[:5]
    solver = mfgx.Softmax(0.05)

    def batch_loss(beta, adjoint):
        def one(m0):
            g = eqx.tree_at(lambda g: g.mu0, game, m0).with_params({"beta": jnp.full(15, beta), "gamma": jnp.full(15, 0.2)})
            return (mfgx.solve(g, solver, tol=1e-10, max_steps=500, adjoint=adjoint).flow ** 2).sum()

        return jax.vmap(one)(mu0s).mean()

    implicit = float(eqx.filter_jit(jax.grad(lambda b: batch_loss(b, mfgx.ImplicitAdjoint())))(0.3))
    unrolled = float(eqx.filter_jit(jax.grad(lambda b: batch_loss(b, mfgx.UnrolledAdjoint())))(0.3))
    np.testing.assert_allclose(implicit, unrolled, rtol=1e-8)
