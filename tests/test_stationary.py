"""Stationary (discounted, infinite-horizon) games against independent NumPy solutions."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import mfgx
from mfgx.games import Constant, deterministic_moves

GAMMA = 0.9
S, A = 5, 3


class MuReward(eqx.Module):
    base: jnp.ndarray

    def __call__(self, t, mu, params):
        return self.base - 2.0 * mu[:, None]


@pytest.fixture(scope="module")
def random_game():
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    base = rng.normal(size=(S, A))
    game = mfgx.FiniteGame(jnp.full(S, 1 / S), Constant(jnp.asarray(P)), MuReward(jnp.asarray(base)), None, discount=GAMMA)
    return game, P, base


def test_policy_evaluation_and_best_response(random_game):
    game, P, base = random_game
    rng = np.random.default_rng(1)
    mu = rng.dirichlet(np.ones(S))
    pi = rng.dirichlet(np.ones(A), size=S)
    r = base - 2.0 * mu[:, None]
    Ppi = np.einsum("xa,xay->xy", pi, P)
    v_ref = np.linalg.solve(np.eye(S) - GAMMA * Ppi, (pi * r).sum(1))
    _, v = mfgx.evaluate(game, jnp.asarray(pi)[None], jnp.asarray(mu)[None])
    np.testing.assert_allclose(np.asarray(v[0]), v_ref, atol=1e-12)

    v_star = np.zeros(S)  # value iteration to machine precision
    for _ in range(2000):
        v_star = (r + GAMMA * P @ v_star).max(1)
    br, q, v = mfgx.best_response(game, jnp.asarray(mu)[None])
    np.testing.assert_allclose(np.asarray(v[0]), v_star, atol=1e-10)
    np.testing.assert_array_equal(np.asarray(br[0]).argmax(1), (r + GAMMA * P @ v_star).argmax(1))


def test_stationary_distribution(random_game):
    game, P, _ = random_game
    pi = np.random.default_rng(2).dirichlet(np.ones(A), size=S)
    Ppi = np.einsum("xa,xay->xy", pi, P)
    w, vecs = np.linalg.eig(Ppi.T)
    ref = np.real(vecs[:, np.argmin(np.abs(w - 1))])
    ref = ref / ref.sum()
    mu = mfgx.propagate(game, jnp.asarray(pi)[None])
    np.testing.assert_allclose(np.asarray(mu[0]), ref, atol=1e-12)


class Congestion(eqx.Module):
    def __call__(self, t, mu, c):
        return jnp.repeat((-c * mu)[:, None], 2, axis=1)


def test_stationary_congestion_equilibrium():
    c = np.array([1.0, 3.0])
    P = deterministic_moves(2, [[0, 1], [0, 1]])
    game = mfgx.FiniteGame(jnp.array([0.5, 0.5]), Constant(P), Congestion(), None, jnp.asarray(c), discount=0.8)
    assert float(mfgx.exploitability(game, mfgx.uniform_policy(game))) > 0.1
    eq = mfgx.solve(game, mfgx.MirrorDescent(1.0), tol=1e-10, max_steps=300)
    assert bool(eq.converged)
    np.testing.assert_allclose(np.asarray(eq.flow[0]), [c[1] / c.sum(), c[0] / c.sum()], atol=1e-8)
    assert abs(float(eq.exploitability)) < 1e-8


def test_stationary_constructor_errors():
    P = deterministic_moves(2, [[0, 1], [0, 1]])
    args = (jnp.array([0.5, 0.5]), Constant(P), Congestion())
    with pytest.raises(ValueError, match="discount must be in"):
        mfgx.FiniteGame(*args, None, jnp.ones(2), discount=1.0)
    with pytest.raises(ValueError, match="horizon=None"):
        mfgx.FiniteGame(*args, 5, jnp.ones(2), discount=0.5)
