"""Solvers against closed-form equilibria, exploitability, non-convergence reporting, batching and
the state-action mean field."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfgx
from helpers import (
    MD,
    MD_STEPS,
    MD_TOL,
    assert_on_simplex,
    best_response_jit,
    exploitability_jit,
    np_exploitability,
    np_propagate,
    np_sa_reward,
    np_sa_transition,
    propagate_jit,
    solve_md,
    state_action_game,
)

# --------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------


def congestion_closed_form(c0, c1):
    return np.array([c1, c0]) / (c0 + c1)


def test_two_state_congestion_closed_form(congestion, congestion_eq):
    eq = congestion_eq
    assert bool(eq.converged)
    assert int(eq.steps) <= 50
    assert float(eq.residual) <= MD_TOL
    flow = np.asarray(eq.flow)
    assert flow.shape == (congestion.horizon + 1, 2)
    np.testing.assert_allclose(flow[0], [0.5, 0.5], rtol=0, atol=0)
    np.testing.assert_allclose(flow[1:], np.broadcast_to(congestion_closed_form(1.0, 2.0), (3, 2)), rtol=0, atol=1e-6)
    # the returned flow and mean field are those induced by the returned policy
    np.testing.assert_allclose(eq.flow, propagate_jit(congestion, eq.policy), rtol=0, atol=1e-14)
    np.testing.assert_allclose(eq.mean_field, eq.flow, rtol=0, atol=0)
    # value: V^π against its own flow; at equilibrium the agents are indifferent, paying c0 μ(0) = c1 μ(1)
    # = c0 c1 / (c0 + c1) = 2/3 at every t >= 1, and −c_x/2 at t = 0.
    v = np.asarray(eq.value)
    np.testing.assert_allclose(v[:, :], np.array([[-0.5 - 2.0, -1.0 - 2.0]] + [[-2 / 3 * (3 - t + 1)] * 2 for t in (1, 2, 3)]), rtol=0, atol=1e-6)


def test_two_state_congestion_other_costs(congestion):
    eq = solve_md(congestion.with_params(jnp.array([3.0, 0.5])))
    assert bool(eq.converged)
    np.testing.assert_allclose(eq.flow[1:], np.broadcast_to(congestion_closed_form(3.0, 0.5), (3, 2)), rtol=0, atol=1e-6)


def test_left_right_equilibrium(left_right_eq):
    eq = left_right_eq
    assert bool(eq.converged)
    np.testing.assert_allclose(eq.flow[1], [0.0, 2 / 3, 1 / 3], rtol=0, atol=1e-6)
    np.testing.assert_allclose(eq.policy[0, 0], [2 / 3, 1 / 3], rtol=0, atol=1e-6)
    assert float(eq.exploitability) <= 1e-8


def left_right_expl_closed_form(p):
    """μ₁ = (0, p, 1−p); V^π = −p² − 2(1−p)²; V* = max(−p, −2(1−p))."""
    return max(-p, -2 * (1 - p)) + p**2 + 2 * (1 - p) ** 2


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3, 0.5, 0.6, 2 / 3, 0.7, 0.9, 1.0])
def test_left_right_exploitability_closed_form(left_right, p):
    pi = np.full((2, 3, 2), 0.5)
    pi[0, 0] = [p, 1 - p]
    expl = float(exploitability_jit(left_right, jnp.asarray(pi)))
    expected = left_right_expl_closed_form(p)
    assert expl == pytest.approx(expected, abs=1e-12)
    if abs(p - 2 / 3) < 1e-12:
        assert abs(expl) <= 1e-12
    else:
        assert expl > 1e-3


# --------------------------------------------------------------------------------------------
# exploitability: 0 at Nash, > 0 elsewhere
# --------------------------------------------------------------------------------------------


def test_exploitability_zero_at_congestion_equilibrium(congestion, congestion_eq):
    assert float(congestion_eq.exploitability) <= 1e-8
    assert float(exploitability_jit(congestion, congestion_eq.policy)) <= 1e-8


def test_exploitability_zero_at_si_equilibrium(si_game, si_eq):
    assert bool(si_eq.converged)
    assert 0 <= float(si_eq.exploitability) <= 1e-8
    assert float(exploitability_jit(si_game, si_eq.policy)) <= 1e-8
    assert_on_simplex(si_eq.flow)


def test_exploitability_positive_uniform(congestion, si_game, left_right):
    for game in (congestion, si_game, left_right):
        assert float(exploitability_jit(game, mfgx.uniform_policy(game))) > 1e-3


@pytest.mark.parametrize("eps", [0.01, 0.1, 0.5])
def test_exploitability_positive_when_perturbed(congestion, congestion_eq, si_game, si_eq, eps):
    rng = np.random.default_rng(int(eps * 1000))
    for game, eq in ((congestion, congestion_eq), (si_game, si_eq)):
        pi = np.asarray(eq.policy)
        noise = rng.dirichlet(np.ones(pi.shape[-1]), size=pi.shape[:-1])
        perturbed = (1 - eps) * pi + eps * noise
        assert float(exploitability_jit(game, jnp.asarray(perturbed))) > 1e-8


def test_exploitability_positive_when_congestion_policy_biased(congestion, congestion_eq):
    """Moving mass δ toward place 0 at t = 0 makes place 0 strictly worse at t = 1."""
    pi = np.asarray(congestion_eq.policy).copy()
    for delta in (1e-3, 0.05):
        biased = pi.copy()
        biased[0, :, 0] += delta
        biased[0, :, 1] -= delta
        assert float(exploitability_jit(congestion, jnp.asarray(biased))) > 0.5 * delta


# --------------------------------------------------------------------------------------------
# non-convergence is reported
# --------------------------------------------------------------------------------------------


def test_fixed_point_cycles_on_left_right_and_warns(left_right):
    with pytest.warns(mfgx.ConvergenceWarning, match="did not converge in 20 steps") as record:
        eq = mfgx.solve(left_right, mfgx.FixedPoint(), max_steps=20)
        jax.block_until_ready(eq)
        jax.effects_barrier()
    # the warning points at the caller, not at mfgx or jax internals
    assert [w.filename for w in record if issubclass(w.category, mfgx.ConvergenceWarning)] == [__file__]
    assert not bool(eq.converged)
    assert int(eq.steps) == 20
    assert float(eq.residual) == pytest.approx(1.0)  # the bang-bang flow jumps between corners


def test_regularised_mirror_descent_where_softmax_cycles(left_right):
    """Small τ on left_right: the softmax fixed point jumps between corners, regularised mirror
    descent converges to the τ-regularised equilibrium (a softmax response to its own flow)."""
    tau = 0.05
    with pytest.warns(mfgx.ConvergenceWarning):
        cycling = mfgx.solve(left_right, mfgx.Softmax(tau), tol=1e-12, max_steps=20)
    assert not bool(cycling.converged) and float(cycling.residual) > 0.5
    eq = mfgx.solve(left_right, mfgx.MirrorDescent(1.0, tau), tol=1e-14, max_steps=200)
    assert bool(eq.converged) and float(eq.regularised_exploitability) < 1e-10
    soft_br = best_response_jit(left_right, eq.mean_field, tau)[0]
    np.testing.assert_allclose(eq.policy, soft_br, atol=1e-4)
    # exact exploitability: positive, and at most τ·(T+1)·log A (the entropy bonus it may forgo)
    bound = tau * (left_right.horizon + 1) * np.log(left_right.n_actions)
    assert 1e-4 < float(eq.exploitability) <= bound


def test_converged_solve_does_not_warn(left_right):
    with warnings.catch_warnings():
        warnings.simplefilter("error", mfgx.ConvergenceWarning)
        eq = solve_md(left_right)
        jax.block_until_ready(eq)
        jax.effects_barrier()
    assert bool(eq.converged)


def test_throw_raises_on_non_convergence(left_right):
    with pytest.raises(Exception, match="did not converge"):
        eq = mfgx.solve(left_right, mfgx.FixedPoint(), max_steps=20, throw=True)
        jax.block_until_ready(eq)


# --------------------------------------------------------------------------------------------
# batching
# --------------------------------------------------------------------------------------------


def test_vmap_over_costs(congestion):
    rng = np.random.default_rng(0)
    costs = rng.uniform(0.5, 3.0, size=(100, 2))

    def one(c):
        eq = mfgx.solve(congestion.with_params(c), MD, tol=MD_TOL, max_steps=MD_STEPS)
        return eq.flow, eq.converged, eq.exploitability

    flows, converged, expl = jax.vmap(one)(jnp.asarray(costs))
    assert flows.shape == (100, 4, 2)
    assert bool(jnp.all(converged))
    expected = np.stack([costs[:, 1], costs[:, 0]], -1) / costs.sum(-1, keepdims=True)
    np.testing.assert_allclose(flows[:, 0], np.broadcast_to([0.5, 0.5], (100, 2)), rtol=0, atol=0)
    for t in (1, 2, 3):
        np.testing.assert_allclose(flows[:, t], expected, rtol=0, atol=1e-6)
    assert float(jnp.max(expl)) <= 1e-8


# --------------------------------------------------------------------------------------------
# state-action mean field
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sa_game():
    return state_action_game()


def _sa_refs(game):
    p = game.params
    return (lambda t, L: np_sa_reward(t, L, p)), (lambda t, L: np_sa_transition(t, L, p))


def test_state_action_propagate_and_exploitability_match_numpy(sa_game):
    rng = np.random.default_rng(11)
    r_fn, P_fn = _sa_refs(sa_game)
    for _ in range(3):
        pi = rng.dirichlet(np.ones(2), size=(sa_game.horizon + 1, 2))
        mu = propagate_jit(sa_game, jnp.asarray(pi))
        ref = np_propagate(np.asarray(sa_game.mu0), pi, P_fn, mode="state_action")
        np.testing.assert_allclose(mu, ref, rtol=0, atol=1e-12)
        assert_on_simplex(mu)
        expl = float(exploitability_jit(sa_game, jnp.asarray(pi)))
        expl_ref = np_exploitability(np.asarray(sa_game.mu0), pi, r_fn, P_fn, mode="state_action")
        assert expl == pytest.approx(expl_ref, abs=1e-12)
        assert expl > 0


def test_state_action_equilibrium(sa_game):
    eq = solve_md(sa_game)
    assert bool(eq.converged)
    assert float(eq.exploitability) < 1e-6
    L = np.asarray(eq.mean_field)
    assert L.shape == (sa_game.horizon + 1, 2, 2)
    np.testing.assert_allclose(L, np.asarray(eq.flow)[:, :, None] * np.asarray(eq.policy), rtol=0, atol=1e-15)
    # indifference c0 ν(0) = c1 ν(1) at every t (continuation values do not depend on the action)
    nu = L.sum(1)
    np.testing.assert_allclose(nu, np.broadcast_to(congestion_closed_form(1.0, 3.0), nu.shape), rtol=0, atol=1e-5)
    assert_on_simplex(eq.flow)


def test_vmap_non_convergence_warns_once_aggregated(congestion):
    costs = jnp.asarray(np.random.default_rng(1).uniform(0.5, 3.0, size=(4, 2)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        conv = jax.vmap(lambda c: mfgx.solve(congestion.with_params(c), MD, tol=MD_TOL, max_steps=2).converged)(costs)
        jax.block_until_ready(conv)
        jax.effects_barrier()
    assert not bool(jnp.any(conv))
    msgs = [str(w.message) for w in caught if issubclass(w.category, mfgx.ConvergenceWarning)]
    assert len(msgs) == 1, msgs
    assert "4 of 4 game(s)" in msgs[0]
