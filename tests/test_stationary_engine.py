"""Discounted-game engine (issue 17): BenchMFG's games, no crash on valid games, periodic and reducible
chains, BenchMFG's exploitability convention, initial policies, and one compilation per shape."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfgx
from mfgx.finite import _stationary
from mfgx.games import Constant, deterministic_moves, kinetic_congestion, lasry_lions_chain


def _chain_reference(pi, mu, steps=50, sweeps=99, gamma=0.9):
    """BenchMFG's exploitability of the chain, written out in NumPy (dense kernel, its formulas)."""
    S, noise = 7, np.array([0.025, 0.95, 0.025])
    P = np.zeros((S, 3, S))
    for x in range(S):
        for a in range(3):
            for n in range(3):
                P[x, a, min(max(x + a - 1 + n - 1, 0), S - 1)] += noise[n]
    for _ in range(steps):  # the kernel does not depend on μ here
        mu = np.einsum("x,xa,xay->y", mu, pi, P)
        mu = mu / mu.sum()
    r = -2.0 * np.abs(np.arange(3) - 1)[None] - 3.0 * (np.arange(S)[:, None] - 3.0) ** 2 - 40.0 * mu[:, None]
    v_star, v_pi = np.zeros(S), np.zeros(S)
    for _ in range(sweeps):
        v_star = (r + gamma * P @ v_star).max(1)
        v_pi = (pi * (r + gamma * P @ v_pi)).sum(1)
    return mu @ (v_star - v_pi), P, r


def test_benchmfg_chain_and_convention():
    game = lasry_lions_chain()
    pi = np.random.default_rng(0).dirichlet(np.ones(3), size=7)
    ref, P, _ = _chain_reference(pi, np.full(7, 1 / 7))
    np.testing.assert_allclose(game.kernel.matrix(0, game.mu0, None), P, atol=1e-15)
    np.testing.assert_allclose(float(mfgx.benchmfg_exploitability(game, pi[None])), ref, rtol=1e-12)
    # mfgx's own convention: stationary μ^π and exact values (here the chain mixes, so 5000 steps suffice)
    exact, _, _ = _chain_reference(pi, np.full(7, 1 / 7), steps=5000, sweeps=2000)
    np.testing.assert_allclose(float(mfgx.exploitability(game, pi[None])), exact, rtol=1e-10)


def test_no_crash_on_kinetic_congestion():
    """Issue 17's crash: exploitability on kinetic congestion (a kernel that jumps with μ, so the
    stationary mean field need not exist) returns a value, never raises."""
    game = kinetic_congestion(5, 5)
    pi = jax.nn.softmax(np.random.default_rng(0).uniform(-1, 1, (25, 5)) / 0.2, -1)[None]
    assert np.isfinite(float(mfgx.exploitability(game, pi)))


@pytest.mark.slow
def test_no_crash_fictitious_play_kinetic_congestion():
    """Fictitious play on kinetic congestion returns a result and reports an unsettled inner loop."""
    game = kinetic_congestion(5, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eq = mfgx.solve(game, mfgx.FictitiousPlay(), max_steps=3)
    assert np.isfinite(float(eq.exploitability)) and int(eq.steps) == 3
    assert bool(eq.converged) == (bool(eq.inner_converged) and float(eq.residual) <= 1e-8)


def _two_state(P, discount=0.5):
    reward = Constant(jnp.zeros((2, 1)))
    return mfgx.FiniteGame(jnp.array([1.0, 0.0]), Constant(P), reward, None, discount=discount)


def test_periodic_and_reducible_chains():
    swap = deterministic_moves(2, [[1], [0]])  # period 2: plain power iteration never settles
    mu = mfgx.propagate(_two_state(swap), jnp.ones((1, 2, 1)))
    np.testing.assert_allclose(np.asarray(mu[0]), [0.5, 0.5], atol=1e-12)
    stay = deterministic_moves(2, [[0], [1]])  # every distribution is stationary: the one from μ₀
    mu = mfgx.propagate(_two_state(stay), jnp.ones((1, 2, 1)))
    np.testing.assert_allclose(np.asarray(mu[0]), [1.0, 0.0], atol=1e-15)


def _random_game(S, A, seed, zero_rows=()):
    P = np.random.default_rng(seed).dirichlet(np.ones(S), size=(S, A))
    for x in zero_rows:  # x → x only: an absorbing state
        P[x] = np.eye(S)[x]
    return mfgx.FiniteGame(jnp.full(S, 1 / S), Constant(jnp.asarray(P)), Constant(jnp.zeros((S, A))), None,
                           discount=0.9), P


@pytest.mark.parametrize("absorbing", [(), (0, 1)])
def test_direct_and_power_stationary_distribution_agree(absorbing):
    """The dense direct solve (S ≤ direct_max_states) and power iteration (direct_max_states=0) give the
    left Perron vector of P^π (NumPy); with two absorbing states (reducible: singular LU) the direct solve
    is refused and both return the distribution reached from μ₀."""
    game, P = _random_game(6, 2, 4, absorbing)
    pi = np.random.default_rng(5).dirichlet(np.ones(2), size=6)
    P_pi = np.einsum("xa,xay->xy", pi, P)
    if absorbing:  # mass absorbed in state 0 and 1 from μ₀: limit of μ₀ P^n
        ref = np.full(6, 1 / 6) @ np.linalg.matrix_power(P_pi, 4000)
    else:
        w, V = np.linalg.eig(P_pi.T)
        ref = np.real(V[:, np.argmin(np.abs(w - 1))])
        ref = ref / ref.sum()
    for loops in (_stationary.DEFAULT, _stationary.Loops(direct_max_states=0)):
        mu, ok = eqx.filter_jit(_stationary.stationary_distribution)(game, jnp.asarray(pi), loops=loops)
        assert bool(ok)
        np.testing.assert_allclose(np.asarray(mu), ref, atol=1e-10)
    m = game.mean_field_of(game.mu0, jnp.asarray(pi))
    K = _stationary._frozen(game, m)
    _, unique, accurate = eqx.filter_jit(_stationary._direct)(game, K, m, jnp.asarray(pi), 1e-12)
    assert bool(unique) == bool(accurate) == (not absorbing)


@pytest.mark.slow
def test_initial_policy_for_policy_solvers():
    game = lasry_lions_chain()
    pi0 = np.random.default_rng(1).dirichlet(np.ones(3), size=7)[None]
    eq = mfgx.solve(game, mfgx.MirrorDescent(0.025), max_steps=1, tol=1e-3, guess=pi0)
    mu = mfgx.propagate(game, jnp.asarray(pi0))
    q, _ = mfgx.evaluate(game, jnp.asarray(pi0), mu)
    np.testing.assert_allclose(np.asarray(eq.policy), np.asarray(jax.nn.softmax(0.025 * q, -1)), atol=1e-10)


TRACES = []


class CountingReward(eqx.Module):
    def __call__(self, t, mu, params):
        TRACES.append(1)  # runs only while JAX traces
        return jnp.stack([-mu, -2 * mu], -1)


def test_exploitability_compiles_once():
    P = jnp.asarray(np.random.default_rng(2).dirichlet(np.ones(3), size=(3, 2)))
    for discount, horizon in ((0.8, None), (None, 4)):
        game = mfgx.FiniteGame(jnp.full(3, 1 / 3), Constant(P), CountingReward(), horizon, discount=discount)
        T1 = 1 if horizon is None else horizon + 1
        rng = np.random.default_rng(3)
        mfgx.exploitability(game, rng.dirichlet(np.ones(2), size=(T1, 3)))
        before = len(TRACES)
        values = [float(mfgx.exploitability(game, rng.dirichlet(np.ones(2), size=(T1, 3)))) for _ in range(3)]
        assert len(TRACES) == before, "exploitability retraced on a second call of the same shape"
        assert len(set(values)) == 3  # and it did compute (different policies, different values)


@pytest.mark.parametrize("gamma", [0.5, 0.99])
def test_direct_and_swept_policy_values_agree(gamma):
    """V^π by the dense LU (S ≤ direct_max_states) and by sweeps (direct_max_states=0) both solve
    (I − γP^π)V = r^π (NumPy reference), also with the entropy bonus."""
    rng = np.random.default_rng(7)
    P = rng.dirichlet(np.ones(6), size=(6, 3))
    game = mfgx.FiniteGame(jnp.full(6, 1 / 6), Constant(jnp.asarray(P)), Constant(jnp.asarray(rng.normal(size=(6, 3)))),
                           None, discount=gamma)
    pi = rng.dirichlet(np.ones(3), size=6)
    m = game.mean_field_of(game.mu0, jnp.asarray(pi))
    r = np.asarray(game.reward(0, m, game.params))
    for tau in (None, 0.3):
        bonus = 0.0 if tau is None else -tau * (pi * np.log(pi)).sum(1)
        ref = np.linalg.solve(np.eye(6) - gamma * np.einsum("xa,xay->xy", pi, P), (pi * r).sum(1) + bonus)
        for loops in (_stationary.DEFAULT, _stationary.Loops(direct_max_states=0)):
            q, v, ok = eqx.filter_jit(_stationary.policy_value)(game, jnp.asarray(pi), m, tau, loops=loops)
            assert bool(ok)
            np.testing.assert_allclose(np.asarray(v), ref, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(np.asarray(q), r + gamma * P @ ref, rtol=1e-10, atol=1e-10)
