"""`ExactNash` (interior point on the potential of a game): closed-form mixed equilibria to 1e-8,
agreement with a long mirror-descent run, rejection of non-potential games, status reporting and
one compilation for repeated solves."""

from __future__ import annotations

import warnings

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import mfgx
from mfgx import games


def test_two_state_congestion_closed_form():
    """Closed form (docstring of `two_state_congestion`): μ_t = (c₁, c₀)/(c₀ + c₁) for t ≥ 1, reached
    by a mixed policy (from μ₀ = (½, ½) both places are chosen)."""
    c0, c1 = 1.0, 2.0
    game = games.two_state_congestion(T=3, costs=(c0, c1), mu0=(0.5, 0.5))
    eq = mfgx.solve(game, mfgx.ExactNash(), tol=1e-10, max_steps=50)
    assert bool(eq.converged) and float(eq.exploitability) <= 1e-10
    np.testing.assert_allclose(eq.flow[1:], np.tile([c1, c0], (3, 1)) / (c0 + c1), atol=1e-8)
    pi0 = np.asarray(eq.policy[0])  # the t = 0 move must split ½ → (⅔, ⅓): a strictly mixed policy
    assert 0.01 < pi0[0, 1] < 0.99 or 0.01 < pi0[1, 0] < 0.99
    assert float(mfgx.exploitability(game, eq.policy)) <= 1e-8


class _Quadratic(eqx.Module):
    """r(x, a; μ) = b(x) − (C μ)(x) for the action 'go to a': potential b·μ − ½ μᵀCμ, not separable."""

    b: jnp.ndarray
    C: jnp.ndarray

    def __call__(self, t, mu, params):
        return jnp.broadcast_to((self.b - self.C @ mu)[:, None], (mu.shape[0], mu.shape[0]))


@pytest.mark.slow  # a second compilation (the dense-curvature branch)
def test_non_separable_potential_closed_form():
    """Agents choose where to be next (3 places), reward b − Cμ with C symmetric positive definite and
    dense: at t ≥ 1 the equilibrium is b − Cμ = λ on the support, i.e. μ = C⁻¹(b − λ1), Σμ = 1."""
    b = np.array([1.0, 0.8, 0.9])
    C = np.array([[2.0, 0.5, 0.3], [0.5, 1.5, 0.4], [0.3, 0.4, 1.0]])
    Ci = np.linalg.inv(C)
    lam = (Ci @ b).sum() - 1
    lam /= Ci.sum()
    mu_star = Ci @ (b - lam)
    assert np.all(mu_star > 0.05)  # an interior (fully mixed) equilibrium
    P = games.deterministic_moves(3, [[0, 1, 2]] * 3)
    game = mfgx.FiniteGame(jnp.array([1.0, 0.0, 0.0]), games.Constant(P), _Quadratic(jnp.asarray(b), jnp.asarray(C)), 2)
    solver = mfgx.ExactNash().prepare(game)
    assert solver.separable is False
    eq = mfgx.solve(game, solver, tol=1e-10, max_steps=50)
    assert bool(eq.converged)
    np.testing.assert_allclose(eq.flow[1:], np.tile(mu_star, (2, 1)), atol=1e-8)


TRACES: list = []


class _Counting(mfgx.ExactNash):
    """ExactNash that records each trace of its step (to check that solves compile once)."""

    def step(self, game, state):
        TRACES.append(1)
        return super().step(game, state)


RING = dict(n=8, T=4)  # one game structure for the tests below: one compilation serves them all


def test_agrees_with_long_mirror_descent():
    """On a small ring the exact solution and a long mirror-descent run give the same flow and policy
    up to mirror descent's accuracy (its exploitability after 4000 steps), and the exact solve is far
    more accurate."""
    game = games.crowd_ring(**RING)
    exact = mfgx.solve(game, _Counting(), tol=1e-9, max_steps=60)
    assert bool(exact.converged) and float(exact.exploitability) <= 1e-9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mfgx.ConvergenceWarning)
        md = mfgx.solve(game, mfgx.MirrorDescent(0.3), tol=1e-12, max_steps=4000)
    md_expl = float(md.exploitability)
    assert md_expl < 1e-3
    gap = float(jnp.abs(exact.flow - md.flow).max())
    assert gap < 20 * np.sqrt(md_expl)  # exploitability is quadratic in the distance (strong monotonicity)
    assert gap < 1e-2
    # the policies agree where mass is (mirror descent's weights on unused actions decay slowly)
    w = np.asarray(exact.flow)[..., None]
    assert float((w * np.abs(exact.policy - md.policy)).sum(-1).max()) < 1e-2


def test_compiled_once():
    """Repeated solves of one game structure reuse one compilation (other arrays, other tol)."""
    game = games.crowd_ring(**RING)
    mfgx.solve(game, _Counting(), tol=1e-9, max_steps=60)
    n = len(TRACES)
    other = games.crowd_ring(**RING, move_cost=2.0)
    eq = mfgx.solve(other, _Counting(), tol=1e-8, max_steps=60)
    assert len(TRACES) == n and bool(eq.converged) and float(eq.exploitability) <= 1e-8


@pytest.mark.slow  # a second compilation (max_steps is static)
def test_not_converged_is_reported():
    game = games.two_state_congestion(T=3)
    with pytest.warns(mfgx.ConvergenceWarning, match="ExactNash did not converge"):
        eq = mfgx.solve(game, mfgx.ExactNash(), tol=1e-10, max_steps=1)
    assert not bool(eq.converged) and float(eq.residual) > 1e-10 and int(eq.steps) == 1


@pytest.mark.slow
def test_throw_raises():
    with pytest.raises(Exception, match="did not converge"):
        mfgx.solve(games.two_state_congestion(T=3), mfgx.ExactNash(), tol=1e-10, max_steps=1, throw=True)


def test_rejects_games_without_potential():
    with pytest.raises(mfgx.GameError, match="not symmetric"):
        mfgx.solve(games.rock_paper_scissors(), mfgx.ExactNash())
    with pytest.raises(mfgx.GameError, match="kernel depends on the mean field"):
        mfgx.solve(games.susceptible_infected(T=3), mfgx.ExactNash())
    with pytest.raises(mfgx.GameError, match="mean_field='state'"):
        mfgx.solve(games.random_linear(), mfgx.ExactNash())
    with pytest.raises(mfgx.GameError, match="discounted"):
        mfgx.solve(games.lasry_lions_chain(), mfgx.ExactNash())
    with pytest.raises(ValueError, match="step_fraction"):
        mfgx.ExactNash(step_fraction=1.0)
