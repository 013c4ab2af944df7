"""Hypothesis property tests on random games of one fixed shape (S, A, T) = (4, 3, 3).

Each example builds a game from a hypothesis-drawn seed by swapping μ₀ and θ into a template game
(`replace`), so every example reuses the same compiled functions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mfgx
from helpers import (
    A,
    S,
    T,
    assert_on_simplex,
    best_response_jit,
    evaluate_jit,
    exploitability_jit,
    kernel_matrix_jit,
    make_rate_game,
    propagate_jit,
    random_dense_game,
    random_dense_params,
    random_flow,
    random_policy,
    rate_params,
    replace,
)

seeds = st.integers(0, 2**32 - 1)

TEMPLATE = random_dense_game(0)


def game_from_seed(seed):
    rng = np.random.default_rng(seed)
    mu0 = rng.dirichlet(np.ones(S) * rng.choice([0.2, 1.0, 5.0]))  # sparse to flat initial laws
    return replace(TEMPLATE, mu0=mu0, params=random_dense_params(rng)), rng


@given(seeds)
def test_propagate_stays_on_simplex(seed):
    game, rng = game_from_seed(seed)
    pi = random_policy(rng)
    mu = propagate_jit(game, jnp.asarray(pi))
    assert mu.shape == (T + 1, S)
    assert_on_simplex(mu, tol=1e-12)


@given(seeds)
def test_exploitability_non_negative(seed):
    game, rng = game_from_seed(seed)
    for pi in (random_policy(rng), np.asarray(mfgx.uniform_policy(game))):
        assert float(exploitability_jit(game, jnp.asarray(pi))) >= -1e-12


@given(seeds)
def test_best_response_dominates_any_policy(seed):
    """V*_t ≥ V^π_t pointwise for any π, against any fixed flow."""
    game, rng = game_from_seed(seed)
    mf = jnp.asarray(random_flow(rng))
    _, _, v_star = best_response_jit(game, mf)
    _, v_pi = evaluate_jit(game, jnp.asarray(random_policy(rng)), mf)
    assert np.all(np.asarray(v_star) >= np.asarray(v_pi) - 1e-12)


SOLVERS = [
    mfgx.FixedPoint(0.0),
    mfgx.Softmax(0.2, 0.5),
    mfgx.FictitiousPlay(),
    mfgx.MirrorDescent(1.0),
    mfgx.PriorDescent(1.0, 2),
]


@pytest.mark.filterwarnings("ignore::mfgx.ConvergenceWarning")
@given(seeds, st.sampled_from(SOLVERS))
def test_few_solver_steps_stay_on_simplex(seed, solver):
    game, _ = game_from_seed(seed)
    eq = mfgx.solve(game, solver, tol=0.0, max_steps=4)
    assert int(eq.steps) <= 4
    assert_on_simplex(eq.flow, tol=1e-12)
    assert_on_simplex(eq.policy, tol=1e-12)
    np.testing.assert_array_equal(eq.flow[0], game.mu0)
    assert float(eq.exploitability) >= -1e-12
    assert np.all(np.isfinite(np.asarray(eq.value)))


# --------------------------------------------------------------------------------------------
# rate games with the unconditionally stable schemes: any non-negative rates, any dt
# --------------------------------------------------------------------------------------------

N_RATE = 3
RATE_TEMPLATES = {
    scheme: make_rate_game(
        np.ones(S) / S,
        rate_params(np.ones((S, A, S)), np.zeros((S, A)), np.zeros(S)),
        N_RATE, 1.0, scheme,
    )
    for scheme in ("expm", "implicit")
}


@pytest.mark.parametrize("scheme", ["expm", "implicit"])
@given(seed=seeds, scale=st.sampled_from([0.1, 1.0, 10.0, 100.0]))
def test_rate_game_large_dt_stays_on_simplex(scheme, seed, scale):
    rng = np.random.default_rng(seed)
    # sparse, non-negative, mean-field dependent rates with Δt · rate up to ~ 200
    q = rng.uniform(0, scale, size=(S, A, S)) * (rng.uniform(size=(S, A, S)) < 0.6)
    params = rate_params(q, rng.normal(size=(S, A)), rng.normal(size=S), v=rng.uniform(0, 1, size=S))
    game = replace(RATE_TEMPLATES[scheme], mu0=rng.dirichlet(np.ones(S)), params=params)
    P = kernel_matrix_jit(game, 0, game.mu0)
    assert P.shape == (S, A, S)
    assert_on_simplex(P, tol=1e-12)
    mu = propagate_jit(game, jnp.asarray(random_policy(rng, T=N_RATE)))
    assert_on_simplex(mu, tol=1e-12)
