"""Backward induction, policy evaluation and forward propagation against independent NumPy loops,
and the rate_game discretisations against closed forms."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import mfgx
from helpers import (
    A,
    S,
    T,
    assert_on_simplex,
    best_response_jit,
    evaluate_jit,
    exploitability_jit,
    make_rate_game,
    np_backward,
    np_dense_reward,
    np_dense_transition,
    np_exploitability,
    np_generator,
    np_propagate,
    propagate_jit,
    random_dense_game,
    random_flow,
    random_policy,
    rate_params,
)


def _refs(game):
    p = game.params
    return (lambda t, m: np_dense_reward(t, m, p)), (lambda t, m: np_dense_transition(t, m, p))


# --------------------------------------------------------------------------------------------
# dense games: exact / soft best response, evaluation, propagation, exploitability
# --------------------------------------------------------------------------------------------


def test_best_response_matches_numpy(dense_game, rng):
    mf = random_flow(rng)
    r_fn, P_fn = _refs(dense_game)
    q_ref, v_ref, pi_ref = np_backward(mf, r_fn, P_fn, T + 1, S, A)
    pi, q, v = best_response_jit(dense_game, jnp.asarray(mf))
    assert q.shape == (T + 1, S, A) and v.shape == (T + 1, S) and pi.shape == (T + 1, S, A)
    np.testing.assert_allclose(q, q_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v, v_ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(pi, pi_ref)


def test_evaluate_matches_numpy(dense_game, rng):
    mf = random_flow(rng)
    pi = random_policy(rng)
    r_fn, P_fn = _refs(dense_game)
    q_ref, v_ref, _ = np_backward(mf, r_fn, P_fn, T + 1, S, A, policy=pi)
    q, v = evaluate_jit(dense_game, jnp.asarray(pi), jnp.asarray(mf))
    np.testing.assert_allclose(q, q_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v, v_ref, rtol=0, atol=1e-12)


def test_evaluate_of_best_response_is_optimal_value(dense_game, rng):
    mf = jnp.asarray(random_flow(rng))
    pi, q, v = best_response_jit(dense_game, mf)
    q_pi, v_pi = evaluate_jit(dense_game, pi, mf)
    np.testing.assert_allclose(v_pi, v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(q_pi, q, rtol=0, atol=1e-12)
    # and no random policy does better
    for _ in range(5):
        _, v_rand = evaluate_jit(dense_game, jnp.asarray(random_policy(rng)), mf)
        assert np.all(np.asarray(v_rand) <= np.asarray(v) + 1e-12)


def test_propagate_matches_numpy(dense_game, rng):
    pi = random_policy(rng)
    ref = np_propagate(np.asarray(dense_game.mu0), pi, _refs(dense_game)[1])
    mu = propagate_jit(dense_game, jnp.asarray(pi))
    assert mu.shape == (T + 1, S)
    np.testing.assert_allclose(mu, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(mu[0], dense_game.mu0)


def test_exploitability_matches_numpy(dense_game, rng):
    r_fn, P_fn = _refs(dense_game)
    for _ in range(3):
        pi = random_policy(rng)
        ref = np_exploitability(np.asarray(dense_game.mu0), pi, r_fn, P_fn)
        assert ref > 0
        np.testing.assert_allclose(exploitability_jit(dense_game, jnp.asarray(pi)), ref, rtol=1e-12, atol=1e-12)


def test_uniform_policy(dense_game):
    pi = mfgx.uniform_policy(dense_game)
    assert pi.shape == (T + 1, S, A)
    np.testing.assert_allclose(pi, 1.0 / A, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# softmax best response
# --------------------------------------------------------------------------------------------


def test_soft_best_response_matches_numpy(dense_game, rng):
    mf = random_flow(rng)
    r_fn, P_fn = _refs(dense_game)
    for tau in (0.05, 0.7):
        q_ref, v_ref, pi_ref = np_backward(mf, r_fn, P_fn, T + 1, S, A, temperature=tau)
        pi, q, v = best_response_jit(dense_game, jnp.asarray(mf), jnp.asarray(tau))
        np.testing.assert_allclose(q, q_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(v, v_ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(pi, pi_ref, rtol=0, atol=1e-12)


def test_softmax_best_response_tends_to_exact(dense_game, rng):
    mf = jnp.asarray(random_flow(rng))
    pi_star, q_star, v_star = best_response_jit(dense_game, mf)
    # no ties: the best action beats the second best by a clear margin everywhere
    qs = np.sort(np.asarray(q_star), -1)
    assert (qs[..., -1] - qs[..., -2]).min() > 2e-3
    mu0 = np.asarray(dense_game.mu0)
    v_star = np.asarray(v_star)

    taus = [1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 1e-3, 1e-4]
    gaps = []
    for tau in taus:
        pi_tau, _, v_tau = best_response_jit(dense_game, mf, jnp.asarray(tau))
        _, v_pi_tau = evaluate_jit(dense_game, pi_tau, mf)
        gap_all = v_star - np.asarray(v_pi_tau)
        assert gap_all.min() >= -1e-12  # the exact best response is optimal
        gaps.append(float(mu0 @ gap_all[0]))
        # the soft value over-estimates V* by at most τ (T + 1 − t) log A (in particular τ (T+1) log A)
        soft_excess = np.asarray(v_tau) - v_star
        assert soft_excess.min() >= -1e-12
        bound = tau * (T + 1 - np.arange(T + 1))[:, None] * np.log(A)
        assert np.all(soft_excess <= bound + 1e-12)
        assert soft_excess.max() <= tau * (T + 1) * np.log(A) + 1e-12
        if tau == 1e-4:
            assert gap_all.max() < 1e-6
            np.testing.assert_allclose(pi_tau, pi_star, rtol=0, atol=1e-6)
    assert gaps[0] > 1e-3  # a genuinely soft policy at τ = 1 loses value
    assert all(g1 <= g0 + 1e-15 for g0, g1 in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 1e-6


def test_soft_value_is_value_of_softmax_policy_with_entropy(dense_game, rng):
    """V_τ (soft Bellman) = value of π_τ with the entropy bonus τ·H(π_t(·|x)) at every step; both
    checked against a NumPy evaluation of π_τ with the bonus added to the reward."""
    mf = random_flow(rng)
    tau = 0.3
    pi_tau, _, v_tau = best_response_jit(dense_game, jnp.asarray(mf), jnp.asarray(tau))
    _, v_reg = evaluate_jit(dense_game, pi_tau, jnp.asarray(mf), jnp.asarray(tau))
    np.testing.assert_allclose(v_reg, v_tau, rtol=0, atol=1e-12)
    pi = np.asarray(pi_tau)
    r_fn, P_fn = _refs(dense_game)

    def r_bonus(t, m):
        return r_fn(t, m) - tau * (pi[t] * np.log(pi[t])).sum(-1, keepdims=True)

    _, v_ref, _ = np_backward(mf, r_bonus, P_fn, T + 1, S, A, policy=pi)
    np.testing.assert_allclose(v_tau, v_ref, rtol=0, atol=1e-12)
    # the regularised exploitability of a policy in the τ-regularised game is >= 0
    assert float(exploitability_jit(dense_game, jnp.asarray(random_policy(rng)), jnp.asarray(tau))) >= -1e-12


# --------------------------------------------------------------------------------------------
# rate games: the two-state chain's flow under each scheme, and the uncontrolled backward recursion
# --------------------------------------------------------------------------------------------

A_RATE, B_RATE = 1.3, 0.7


def _two_state_chain(scheme, dt, n_steps, mu0):
    q = np.zeros((2, 1, 2))
    q[0, 0, 1], q[1, 0, 0] = A_RATE, B_RATE
    return make_rate_game(mu0, rate_params(q, np.zeros((2, 1)), np.zeros(2)), n_steps, dt, scheme)


@pytest.mark.parametrize(
    "scheme, dt, factor",
    [
        ("euler", 0.05, lambda h: 1 - h),
        ("implicit", 0.4, lambda h: 1 / (1 + h)),
        ("expm", 0.4, lambda h: np.exp(-h)),
    ],
)
def test_rate_game_two_state_flow_closed_form(scheme, dt, factor):
    n_steps, mu0 = 12, np.array([0.9, 0.1])
    game = _two_state_chain(scheme, dt, n_steps, mu0)
    assert game.horizon == n_steps and game.n_actions == 1
    mu = np.asarray(propagate_jit(game, jnp.ones((n_steps + 1, 2, 1))))
    pi0 = B_RATE / (A_RATE + B_RATE)
    n = np.arange(n_steps + 1)
    expected0 = pi0 + (mu0[0] - pi0) * factor(dt * (A_RATE + B_RATE)) ** n
    np.testing.assert_allclose(mu[:, 0], expected0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mu[:, 1], 1 - expected0, rtol=0, atol=1e-12)


def _np_step_matrix(q, dt, scheme):
    Q = np_generator(q)[0]
    I = np.eye(Q.shape[0])
    if scheme == "euler":
        return I + dt * Q
    if scheme == "expm":
        return scipy.linalg.expm(dt * Q)
    return np.linalg.inv(I - dt * Q)


@pytest.mark.parametrize("scheme", ["euler", "implicit", "expm"])
def test_rate_game_uncontrolled_value_recursion(scheme):
    """u_n = P^{N−n} g + Δt Σ_{j=0}^{N−1−n} P^j f and V = −u (P = I + ΔtQ for Euler)."""
    rng = np.random.default_rng(7)
    n_s, N, dt = 3, 6, 0.1
    q = rng.uniform(0.2, 2.0, size=(n_s, 1, n_s))
    f = rng.normal(size=(n_s, 1))
    g = rng.normal(size=n_s)
    game = make_rate_game(np.array([0.2, 0.3, 0.5]), rate_params(q, f, g), N, dt, scheme)
    P = _np_step_matrix(q, dt, scheme)
    u = np.zeros((N + 1, n_s))
    for n in range(N + 1):
        u[n] = np.linalg.matrix_power(P, N - n) @ g
        for j in range(N - n):
            u[n] += dt * np.linalg.matrix_power(P, j) @ f[:, 0]

    policy = jnp.ones((N + 1, n_s, 1))
    mf = propagate_jit(game, policy)
    _, v = evaluate_jit(game, policy, mf)
    np.testing.assert_allclose(v, -u, rtol=0, atol=1e-12)
    _, _, v_star = best_response_jit(game, mf)
    np.testing.assert_allclose(v_star, -u, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v[N], -g, rtol=0, atol=0)
    # and the flow is μ_n = μ_0 P^n
    mu_ref = np.array([np.array([0.2, 0.3, 0.5]) @ np.linalg.matrix_power(P, n) for n in range(N + 1)])
    np.testing.assert_allclose(mf, mu_ref, rtol=0, atol=1e-12)


def test_rate_game_ignores_diagonal_of_rates():
    """The diagonal of q[x, a, y] is documented as ignored (replaced by minus the row sum)."""
    q = np.zeros((2, 1, 2))
    q[0, 0, 1], q[1, 0, 0] = A_RATE, B_RATE
    q_diag = q.copy()
    q_diag[0, 0, 0], q_diag[1, 0, 1] = 5.0, -3.0
    mu0 = np.array([0.9, 0.1])
    g1 = make_rate_game(mu0, rate_params(q, np.zeros((2, 1)), np.zeros(2)), 12, 0.4, "expm")
    g2 = make_rate_game(mu0, rate_params(q_diag, np.zeros((2, 1)), np.zeros(2)), 12, 0.4, "expm")
    pol = jnp.ones((13, 2, 1))
    np.testing.assert_allclose(propagate_jit(g1, pol), propagate_jit(g2, pol), rtol=0, atol=1e-15)


def test_rate_game_controlled_matrix_per_action():
    """expm kernel with 2 actions: P[:, a, :] = exp(Δt Q_a), each action its own generator."""
    from helpers import kernel_matrix_jit

    rng = np.random.default_rng(3)
    q = rng.uniform(0.0, 3.0, size=(3, 2, 3))
    game = make_rate_game(np.ones(3) / 3, rate_params(q, np.zeros((3, 2)), np.zeros(3)), 2, 0.7, "expm")
    P = np.asarray(kernel_matrix_jit(game, 0, game.mu0))
    Q = np_generator(q)
    for a in range(2):
        np.testing.assert_allclose(P[:, a, :], scipy.linalg.expm(0.7 * Q[a]), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# the zoo: every game builds, and the uniform policy's flow stays on the simplex
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        mfgx.games.left_right,
        mfgx.games.rock_paper_scissors,
        mfgx.games.beach_bar,
        mfgx.games.susceptible_infected,
        lambda: mfgx.games.two_state_congestion(T=3),
        lambda: mfgx.games.crowd_ring(n=5, T=3),
    ],
)
def test_zoo_uniform_flow_on_simplex(make):
    game = make()
    pi = mfgx.uniform_policy(game)
    mu = propagate_jit(game, pi)
    assert mu.shape == (game.horizon + 1, game.n_states)
    assert_on_simplex(mu)
    assert float(exploitability_jit(game, pi)) >= -1e-12


def test_crowd_ring_uniform_is_invariant():
    """On a ring, a uniform μ₀ stays uniform under any state-independent policy (translation invariance)."""
    game = mfgx.games.crowd_ring(n=5, T=3)
    pi = jnp.broadcast_to(jnp.array([0.2, 0.5, 0.3]), (4, 5, 3))
    mu = propagate_jit(game, pi)
    np.testing.assert_allclose(mu, 0.2, rtol=0, atol=1e-14)
