"""Smooth time paths (`Spline`) and the profile likelihood (`profile`)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfgx import calibrate, games
from mfgx.calibrate._paths import _bspline_basis

N = 20
T = 2.0
MU0 = np.random.default_rng(3).dirichlet(np.ones(3), 5)


def _basis(path, t):
    return np.asarray(jax.vmap(lambda s: _bspline_basis(s, path.knots, path.degree))(jnp.asarray(t)))


@pytest.mark.parametrize("degree, n", [(3, 6), (2, 5), (1, 4)])
def test_spline_basis_partitions_unity_and_reproduces_polynomials(degree, n):
    path = calibrate.Spline((0.0, T), np.ones(n), degree=degree)
    t = np.linspace(-0.1, T + 0.1, 97)  # outside the interval the path is held at its end values
    B = _basis(path, t)
    assert B.shape == (97, n) and B.min() >= 0 and np.abs(B.sum(1) - 1).max() < 1e-14
    tc = np.clip(t, 0, T)
    poly = 0.3 + 0.5 * tc + (0.2 * tc**2 if degree >= 2 else 0) - (0.05 * tc**3 if degree >= 3 else 0)
    coef, *_ = np.linalg.lstsq(B, poly, rcond=None)
    assert np.abs(B @ coef - poly).max() < 1e-12
    # a degree-too-low basis cannot: the check can fail
    if degree == 1:
        assert np.abs(B @ np.linalg.lstsq(B, tc**2, rcond=None)[0] - tc**2).max() > 1e-3


def test_spline_stays_within_its_coefficients_bounds_and_round_trips_values():
    rng = np.random.default_rng(0)
    coef = rng.uniform(0.2, 0.9, size=(7, 2))
    path = calibrate.Spline((0.0, 1.0), coef, floor=0.1, upper=1.0)
    g = np.asarray(path.evaluate(jnp.linspace(0, 1, 50), jnp.zeros((50, 3))))
    assert g.shape == (50, 2) and g.min() >= coef.min() - 1e-12 and g.max() <= coef.max() + 1e-12
    np.testing.assert_allclose(np.asarray(path.values), coef, rtol=1e-12)
    again = path.with_values(jnp.asarray(coef[::-1]))
    np.testing.assert_allclose(np.asarray(again.values), coef[::-1], rtol=1e-12)
    # the end values are the end coefficients (clamped knots)
    np.testing.assert_allclose(g[0], coef[0], rtol=1e-12)
    np.testing.assert_allclose(g[-1], coef[-1], rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(interval=(1.0, 1.0), values=np.ones(5)), "t_end > t_start"),
    (dict(interval=(0.0, 1.0), values=np.ones(3)), "n ≥ degree"),
    (dict(interval=(0.0, 1.0), values=np.ones(5), degree=-1), "degree"),
    (dict(interval=(0.0, 1.0), values=np.zeros(5)), "inside|floor"),
])
def test_spline_rejects_bad_input(kwargs, match):
    with pytest.raises(calibrate.CalibrationError, match=match):
        calibrate.Spline(**kwargs)


def _arc(t, mu):
    return 0.4 + 1.6 * 4 * t * (T - t) / T**2


def test_spline_refine_recovers_an_arc_in_time():
    """Noise-free equilibria at γ(t) = 0.4 + 1.6·4t(T − t)/T²: a cubic spline of 5 coefficients,
    polished by `refine` from a constant start, recovers γ(t) within 2 % of its range at every t
    (the flat start is 40 % off)."""
    game = games.lq_rates(d=3, T=T, n_points=N, scheme="implicit")
    obs = calibrate.simulate(game, calibrate.Known(_arc, 1), MU0[:3])
    model = calibrate.CalibrationModel(game, calibrate.Spline((0.0, T), np.full(5, 1.0)))
    fitted = calibrate.refine(model, obs, steps=30)
    t = np.asarray(model.times)
    truth = np.array([_arc(s, None) for s in t])
    got = np.asarray(fitted.path.evaluate(jnp.asarray(t), jnp.zeros((N, 3))))[:, 0]
    start = np.asarray(model.path.evaluate(jnp.asarray(t), jnp.zeros((N, 3))))[:, 0]
    assert np.abs(start - truth).max() / 1.6 > 0.3
    assert np.abs(got - truth).max() / 1.6 < 0.02


def _gamma_14(t, mu):
    return 1.4


def _product(g):
    return g[:, 0] * g[:, 1]


@pytest.fixture(scope="module")
def noisy_lq():
    game = games.lq_rates(1.4, d=3, T=T, n_points=N, scheme="implicit")
    return calibrate.simulate(game, calibrate.Known(_gamma_14, 1), MU0, noise=0.01, noisy_initial=True, seed=4)


def test_profile_interval_matches_gauss_newton_for_a_well_identified_rate(noisy_lq):
    """For one well-identified rate the loss is nearly quadratic: the likelihood-ratio interval
    agrees with the Gauss–Newton one to a small fraction of its width, and the profile's
    minimum is at the estimate."""
    model = calibrate.CalibrationModel(games.lq_rates(d=3, T=T, n_points=N, scheme="implicit"), calibrate.Constant([1.2]))
    fitted = calibrate.refine(model, noisy_lq)
    gn = calibrate.laplace(fitted, noisy_lq)
    prof = calibrate.profile(fitted, noisy_lq, 0, n=5, span=3.0)
    assert prof.bounded and prof.converged.all()
    width = float(gn.upper[0] - gn.lower[0])
    assert abs(prof.lower - float(gn.lower[0])) < 0.15 * width
    assert abs(prof.upper - float(gn.upper[0])) < 0.15 * width
    assert prof.statistic.min() > -1e-6 and prof.statistic.max() > prof.threshold
    assert "profile interval" in prof.summary()


def test_profile_of_a_non_identified_product_is_flat_and_unbounded(noisy_lq):
    """θ = a·b: fixing a, b re-fits to keep a·b, so the profile of a is flat and its interval is
    unbounded on both sides (structural non-identifiability), which the summary says."""
    model = calibrate.CalibrationModel(
        games.lq_rates(d=3, T=T, n_points=N, scheme="implicit"), calibrate.Constant([1.0, 1.4]), to_params=_product
    )
    with pytest.warns(UserWarning, match="not a least-squares minimiser"):  # (1, 1.4) is the truth, not the fit
        prof = calibrate.profile(model, noisy_lq, 0, values=[0.5, 1.3, 2.0])
    assert np.abs(prof.statistic[prof.converged]).max() < 1e-3 * prof.threshold
    assert not prof.bounded and np.isinf(prof.lower) and np.isinf(prof.upper)
    product = prof.others[:, 0] * prof.others[:, 1]
    np.testing.assert_allclose(product, product[0], rtol=1e-4)  # the identified combination is kept
    assert "non-identifiable" in prof.summary()


def test_profile_rejects_bad_arguments(noisy_lq):
    model = calibrate.CalibrationModel(games.lq_rates(d=3, T=T, n_points=N, scheme="implicit"), calibrate.Constant([1.4]))
    with pytest.raises(calibrate.CalibrationError, match="index"):
        calibrate.profile(model, noisy_lq, 3)
    with pytest.raises(calibrate.CalibrationError, match="inside the path's bounds"):
        calibrate.profile(model, noisy_lq, 0, values=[-1.0, 1.0])
    with pytest.raises(calibrate.CalibrationError, match="level"):
        calibrate.profile(model, noisy_lq, 0, level=1.5)


def test_reference_truths_are_the_papers_paths():
    t = jnp.linspace(0.0, T, 5)
    mu = jnp.tile(jnp.array([0.2, 0.3, 0.5]), (5, 1))
    arc = calibrate.Reference("arc", [0.1], [2.9], T)
    np.testing.assert_allclose(np.asarray(arc.evaluate(t, mu))[:, 0], 0.1 + 2.9 * 4 * t * (T - t) / T**2, rtol=1e-14)
    mf = calibrate.Reference("mean_field", [0.1, 0.0], [2.9, 1.0], T, states=[2, 0])
    np.testing.assert_allclose(np.asarray(mf.evaluate(t, mu)), np.tile([0.1 + 2.9 * 0.5, 0.2], (5, 1)), rtol=1e-14)
    const = calibrate.Reference("constant", 1.55, 0.0, T)
    assert const.size == 1 and float(const(0.3, mu[0])[0]) == 1.55
    with pytest.raises(calibrate.CalibrationError, match="kind"):
        calibrate.Reference("spiral", 1.0, 0.0, T)
