"""Every malformed input is rejected when the game / solver is built, with a message naming the problem."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest

import mfgx
from helpers import rate_params, rg_rates, rg_running, rg_terminal

P_STAY = np.broadcast_to(np.eye(2)[:, None, :], (2, 2, 2)).copy()  # P[x, a, x'] = 1[x' = x]
R_ZERO = np.zeros((2, 2))


def const(value):
    value = jnp.asarray(value, float)
    return lambda t, m, p: value


def build(mu0=(0.5, 0.5), P=P_STAY, r=R_ZERO, horizon=2, **kw):
    return mfgx.FiniteGame(jnp.asarray(mu0, float), const(P), const(r), horizon, **kw)


def test_valid_game_builds():
    game = build()
    assert (game.n_states, game.n_actions, game.horizon) == (2, 2, 2)


def test_game_error_is_value_error():
    assert issubclass(mfgx.GameError, ValueError)


# --------------------------------------------------------------------------------------------
# mu0
# --------------------------------------------------------------------------------------------


def test_mu0_wrong_shape_with_n_actions():
    with pytest.raises(mfgx.GameError, match=r"mu0 must have shape \(4,\)"):
        build(mu0=np.full((4, 1), 0.25), P=np.ones((4, 2, 4)) / 4, r=np.zeros((4, 2)), n_actions=2)


def test_mu0_wrong_shape_infers_actions():
    with pytest.raises(mfgx.GameError, match="mu0"):
        build(mu0=np.full((2, 2), 0.25))


def test_mu0_length_mismatch_is_reported():
    # three states in mu0, two in the reward
    with pytest.raises(mfgx.GameError, match=re.escape("reward(t=0) must have shape [S, A] = (3, 2)")):
        build(mu0=(0.2, 0.3, 0.5), n_actions=2)


def test_mu0_negative():
    with pytest.raises(mfgx.GameError, match=r"mu0 has negative probability -0\.5 at index \(1,\)"):
        build(mu0=(1.5, -0.5))


def test_mu0_not_summing_to_one():
    with pytest.raises(mfgx.GameError, match=r"mu0 must sum to 1.*0\.6"):
        build(mu0=(0.3, 0.3))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_mu0_not_finite(bad):
    with pytest.raises(mfgx.GameError, match=r"mu0 is not finite at index \(0,\)"):
        build(mu0=(bad, 0.5))


# --------------------------------------------------------------------------------------------
# transition kernel
# --------------------------------------------------------------------------------------------


def test_kernel_wrong_shape():
    with pytest.raises(mfgx.GameError, match=re.escape("transition(t=0) must have shape [S, A, S] = (2, 2, 2), got (2, 2, 3)")):
        build(P=np.ones((2, 2, 3)) / 3)


def test_kernel_negative_entry_names_index():
    P = P_STAY.copy()
    P[1, 0] = [1.5, -0.5]  # the row still sums to 1
    with pytest.raises(mfgx.GameError, match=re.escape("negative probability -0.5 at (x, a, x') = (1, 0, 1)")):
        build(P=P)


def test_kernel_row_not_summing_to_one_names_row():
    P = P_STAY.copy()
    P[0, 1] = [0.5, 0.4]
    with pytest.raises(mfgx.GameError, match=re.escape("row (x, a) = (0, 1) sums to 0.9")):
        build(P=P)


def test_kernel_not_finite():
    P = P_STAY.copy()
    P[1, 1, 0] = np.nan
    with pytest.raises(mfgx.GameError, match=re.escape("transition(t=0) is not finite at (x, a, x') = (1, 1, 0)")):
        build(P=P)


def test_kernel_checked_at_horizon():
    """The kernel is probed at t = T as well as t = 0."""
    P_bad = P_STAY.copy()
    P_bad[0, 0] = [0.7, 0.7]
    P_ok = jnp.asarray(P_STAY)
    P_bad = jnp.asarray(P_bad)
    with pytest.raises(mfgx.GameError, match=re.escape("transition(t=5)")):
        mfgx.FiniteGame(jnp.array([0.5, 0.5]), lambda t, m, p: jnp.where(t == 5, P_bad, P_ok), const(R_ZERO), 5)


# --------------------------------------------------------------------------------------------
# reward
# --------------------------------------------------------------------------------------------


def test_reward_wrong_shape():
    with pytest.raises(mfgx.GameError, match=re.escape("reward(t=0) must have shape [S, A] = (2, 2), got (3, 2)")):
        build(r=np.zeros((3, 2)), n_actions=2)


def test_reward_wrong_number_of_actions():
    with pytest.raises(mfgx.GameError, match=re.escape("got (2, 3)")):
        build(r=np.zeros((2, 3)), n_actions=2)


def test_reward_not_a_matrix():
    with pytest.raises(mfgx.GameError, match="reward"):
        build(r=np.zeros(2))


def test_reward_nan_names_entry():
    r = R_ZERO.copy()
    r[1, 0] = np.nan
    with pytest.raises(mfgx.GameError, match=re.escape("reward(t=0) is not finite at (state, action) = (1, 0)")):
        build(r=r)


def test_reward_depending_on_mu_is_probed():
    """log-congestion with ε = 0 and an empty state gives −log 0 = inf: caught when built."""
    with pytest.raises(mfgx.GameError, match="not finite"):
        mfgx.FiniteGame(
            jnp.array([1.0, 0.0]), const(P_STAY), lambda t, m, p: jnp.repeat(-jnp.log(m)[:, None], 2, 1), 1
        )


# --------------------------------------------------------------------------------------------
# horizon, mean_field, n_actions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [-1, 1.5, "3", True, None])
def test_bad_horizon(horizon):
    with pytest.raises(ValueError, match="horizon must be a non-negative int"):
        build(horizon=horizon)


def test_bad_horizon_is_game_error():
    with pytest.raises(mfgx.GameError):
        build(horizon=-1)


def test_horizon_zero_is_allowed():
    assert build(horizon=0).horizon == 0


def test_numpy_integer_horizon_is_accepted():
    assert build(horizon=np.int64(2)).horizon == 2


def test_bad_mean_field():
    with pytest.raises(ValueError, match="mean_field must be 'state' or 'state_action'"):
        build(mean_field="joint")


def test_state_action_needs_n_actions():
    with pytest.raises(ValueError, match="n_actions"):
        build(mean_field="state_action")


def test_zero_actions():
    with pytest.raises(mfgx.GameError, match="at least one action"):
        build(n_actions=0)


# --------------------------------------------------------------------------------------------
# rate_game
# --------------------------------------------------------------------------------------------


def _rate(q, scheme="expm", dt=0.1, n_steps=3, mu0=(0.5, 0.5)):
    q = np.asarray(q, float)
    S, A = q.shape[0], q.shape[1]
    return mfgx.rate_game(
        np.asarray(mu0, float), rg_rates, rg_running, rg_terminal, n_steps, dt,
        rate_params(q, np.zeros((S, A)), np.zeros(S)), scheme=scheme,
    )


def test_rate_game_negative_rate():
    q = np.zeros((2, 1, 2))
    q[0, 0, 1], q[1, 0, 0] = 1.0, -0.3
    with pytest.raises(mfgx.GameError, match=re.escape("negative jump rate -0.3 at (x, a, y) = (1, 0, 0)")):
        _rate(q)


def test_rate_game_euler_dt_too_large_suggests_expm():
    q = np.zeros((2, 1, 2))
    q[0, 0, 1], q[1, 0, 0] = 4.0, 1.0
    with pytest.raises(mfgx.GameError, match=r"(?s)explicit Euler leaves the simplex.*\(0, 0\).*expm"):
        _rate(q, scheme="euler", dt=0.5)
    # the same rates are fine for the unconditionally stable schemes, and for Euler with a small dt
    for scheme in ("expm", "implicit"):
        _rate(q, scheme=scheme, dt=0.5)
    _rate(q, scheme="euler", dt=0.25)  # dt * out-rate = 1 exactly: allowed


def test_rate_game_wrong_rate_shape():
    with pytest.raises(mfgx.GameError, match=re.escape("rates(t=0) must have shape [S, A, S]")):
        mfgx.rate_game(
            np.array([0.5, 0.5]), lambda t, m, p: jnp.ones((2, 1, 3)),
            lambda t, m, p: jnp.zeros((2, 1)), lambda m, p: jnp.zeros(2), 3, 0.1,
        )


def test_rate_game_unknown_scheme():
    with pytest.raises(ValueError, match="unknown scheme 'rk4'"):
        _rate(np.ones((2, 1, 2)), scheme="rk4")


@pytest.mark.parametrize("n_steps", [0, -2, 2.0])
def test_rate_game_bad_n_steps(n_steps):
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        _rate(np.ones((2, 1, 2)), n_steps=n_steps)


@pytest.mark.parametrize("dt", [0.0, -0.1])
def test_rate_game_bad_dt(dt):
    with pytest.raises(ValueError, match="dt must be positive"):
        _rate(np.ones((2, 1, 2)), dt=dt)


# --------------------------------------------------------------------------------------------
# solvers and solve
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: mfgx.FixedPoint(damping=1.5), r"damping must be in \[0, 1\)"),
        (lambda: mfgx.FixedPoint(damping=1.0), r"damping must be in \[0, 1\)"),
        (lambda: mfgx.FixedPoint(damping=-0.1), r"damping"),
        (lambda: mfgx.Softmax(temperature=0.0), r"temperature must be positive"),
        (lambda: mfgx.Softmax(temperature=-1.0), r"temperature must be positive"),
        (lambda: mfgx.Softmax(temperature=0.1, damping=2.0), r"damping"),
        (lambda: mfgx.MirrorDescent(learning_rate=-1.0), r"learning_rate must be positive"),
        (lambda: mfgx.MirrorDescent(learning_rate=0.0), r"learning_rate must be positive"),
        (lambda: mfgx.MirrorDescent(temperature=-0.1), r"temperature must be positive"),
        (lambda: mfgx.MirrorDescent(learning_rate=2.0, temperature=0.5), r"learning_rate × temperature must be < 1"),
        (lambda: mfgx.FictitiousPlay(learning_rate=0.0), r"learning_rate must be in \(0, 1\]"),
        (lambda: mfgx.FictitiousPlay(learning_rate=1.5), r"learning_rate must be in \(0, 1\]"),
        (lambda: mfgx.PriorDescent(temperature=0.0), r"temperature must be positive"),
        (lambda: mfgx.PriorDescent(n_inner=0), r"n_inner must be a positive int"),
    ],
)
def test_solver_argument_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_valid_solver_arguments():
    mfgx.FixedPoint(0.0), mfgx.FixedPoint(0.99), mfgx.Softmax(1e-6, 0.5), mfgx.MirrorDescent(0.1), mfgx.MirrorDescent(1.0, 0.5)
    mfgx.FictitiousPlay(), mfgx.FictitiousPlay(1.0), mfgx.PriorDescent(0.5, 3)


def test_solve_rejects_non_game():
    with pytest.raises(TypeError, match="solve expects a FiniteGame or ControlGame, got dict"):
        mfgx.solve({"mu0": [1.0]}, mfgx.FixedPoint())


def test_solve_rejects_non_solver():
    with pytest.raises(TypeError, match="solve expects a solver"):
        mfgx.solve(build(), "fixed_point")


@pytest.mark.parametrize("kw, match", [(dict(max_steps=0), "max_steps"), (dict(max_steps=2.5), "max_steps"), (dict(tol=-1.0), "tol")])
def test_solve_bad_loop_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        mfgx.solve(build(), mfgx.FixedPoint(), **kw)


def test_policy_validation_at_the_boundary():
    game = mfgx.games.left_right()
    pi = np.asarray(mfgx.uniform_policy(game))
    with pytest.raises(mfgx.GameError, match=r"policy must have shape \(2, 3, 2\)"):
        mfgx.exploitability(game, pi[:1])
    bad = pi.copy()
    bad[1, 2] = [0.7, 0.7]
    with pytest.raises(mfgx.GameError, match=re.escape("policy is not stochastic: row index (1, 2) sums to 1.4")):
        mfgx.propagate(game, bad)
    bad[1, 2] = [1.5, -0.5]
    with pytest.raises(mfgx.GameError, match="policy has negative probability"):
        mfgx.exploitability(game, bad)
