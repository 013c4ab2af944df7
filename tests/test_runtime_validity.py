"""Games valid where they are probed (t = 0 and t = T) but invalid in between are never reported as
converged equilibria: `solve` checks the flow and every kernel evaluation along the solution."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mfgx

S, A, T = 3, 2, 4
R = jnp.zeros((S, A))
STAY = jnp.broadcast_to(jnp.eye(S)[:, None, :], (S, A, S))
UNIFORM = jnp.full((S, A, S), 1.0 / S)


def _kernel(t, m, p):
    bad_t, scale, shift = p
    bad = UNIFORM * scale + shift * (jnp.arange(S) == 0)
    return jnp.where(t == bad_t, bad, UNIFORM)


def _reward(t, m, p):
    return R


def game_with(bad_t: int, scale: float, shift: float):
    """The uniform kernel except at time ``bad_t`` (0 < bad_t < T), where its rows are scaled by
    ``scale`` and its entries (·, ·, 0) shifted by ``shift`` (rows sum to ``scale + shift``). The
    settings are the game's θ: one compilation serves every case."""
    return mfgx.FiniteGame(jnp.full(S, 1.0 / S), _kernel, _reward, T,
                           params=(jnp.asarray(bad_t), jnp.asarray(scale, float), jnp.asarray(shift, float)))


def solve_quiet(game, max_steps=50, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eq = mfgx.solve(game, mfgx.FixedPoint(0.0), max_steps=max_steps, **kw)
    return eq, [str(w.message) for w in caught]


def test_kernel_rows_summing_to_1_5_inside_the_horizon():
    eq, msgs = solve_quiet(game_with(1, 1.5, 0.0))
    assert not bool(eq.valid) and not bool(eq.converged)
    assert any("not a valid population flow" in m for m in msgs), msgs
    with pytest.raises(Exception, match="not a valid population flow"):
        mfgx.solve(game_with(1, 1.5, 0.0), mfgx.FixedPoint(0.0), max_steps=50, throw=True)


def test_negative_kernel_entry_with_correct_row_sums():
    # rows still sum to 1 but P(·, ·, 0) < 0 at t = 2: the flow may stay positive, the kernel is caught
    eq, msgs = solve_quiet(mfgx.FiniteGame(
        jnp.full(S, 1.0 / S),
        lambda t, m, p: jnp.where(t == 2, UNIFORM + jnp.array([-0.4, 0.4, 0.0]), UNIFORM),
        _reward, T))
    assert not bool(eq.valid) and not bool(eq.converged), msgs


def test_valid_games_stay_valid():
    eq, msgs = solve_quiet(game_with(1, 1.0, 0.0))
    assert bool(eq.valid) and bool(eq.converged) and not msgs
    eq = mfgx.solve(mfgx.games.lq_rates(d=3, n_points=25), mfgx.FixedPoint(0.0))
    assert bool(eq.valid) and bool(eq.converged)


def test_neighbour_weights_function_invalid_at_interior_time():
    dest = jnp.stack([jnp.roll(jnp.arange(S), k) for k in (0, 1)], -1)[:, None, :].repeat(A, 1)  # [S, A, 2]

    def w(t, m, p):
        return jnp.where(t == 2, jnp.array([0.9, 0.6]), jnp.array([0.5, 0.5]))

    game = mfgx.FiniteGame(jnp.full(S, 1.0 / S), mfgx.NeighbourKernel(dest, w), lambda t, m, p: R, T)
    eq, msgs = solve_quiet(game)
    assert not bool(eq.valid) and not bool(eq.converged), msgs


def test_rate_game_negative_rate_at_an_interior_time():
    def rates(t, m, p):
        q = jnp.ones((S, A, S)) * 0.2
        return jnp.where((t > 0.15) & (t < 0.25), q.at[0, :, 1].set(-0.5), q)

    game = mfgx.rate_game(jnp.full(S, 1.0 / S), rates, lambda t, m, p: jnp.zeros((S, A)),
                          lambda m, p: jnp.zeros(S), 4, 0.1, scheme="euler")
    eq, msgs = solve_quiet(game)
    assert not bool(eq.valid) and not bool(eq.converged), msgs


@settings(max_examples=12, deadline=None)
@given(bad_t=st.integers(1, T - 1), scale=st.floats(0.5, 2.0), shift=st.floats(-0.3, 0.3))
def test_property_invalid_later_never_converged(bad_t, scale, shift):
    """Random kernels valid at the probe (t = 0, T) but invalid at some interior time are never
    reported as converged (valid ones are)."""
    invalid = abs(scale + shift - 1) > 1e-6 or scale / S + shift < -1e-6
    eq, _ = solve_quiet(game_with(bad_t, scale, shift))
    assert bool(eq.valid) == (not invalid)
    if invalid:
        assert not bool(eq.converged)
