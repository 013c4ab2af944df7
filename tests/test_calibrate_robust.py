"""Calibration robustness: failing fits keep the last good model, clear evaluation errors, sparse
data warnings, known paths, warm starts and flow-only solves."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import mfgx
from mfgx import calibrate, data, games

N = 20
RNG = np.random.default_rng(0)
MU0 = RNG.dirichlet(np.ones(3), 6)


def _gamma_02(t, mu):
    return 0.2


@pytest.fixture(scope="module")
def small_gamma_data():
    """Equilibria at γ = 0.2 (large rates) from the positivity-preserving implicit scheme."""
    truth = games.lq_rates(0.2, d=3, n_points=N, scheme="implicit")
    return calibrate.simulate(truth, calibrate.Known(_gamma_02, 1), MU0)


def test_fit_that_meets_a_failing_solve_returns_the_last_good_model(small_gamma_data):
    # Explicit Euler at Δt = 2/19 loses positivity once γ is small: training towards γ = 0.2 fails.
    model = calibrate.CalibrationModel(games.lq_rates(d=3, n_points=N), calibrate.Constant([3.0]))
    with pytest.warns(calibrate.FitFailedWarning, match="negative mass"):
        fit = calibrate.fit(model, small_gamma_data, epochs=30, batch_size=3, learning_rate=0.5, progress=False)
    assert fit.status == "failed" and "negative mass" in fit.reason and "epoch" in fit.reason
    assert fit.epochs_run < 30 and len(fit.history) == fit.epochs_run
    gamma = float(fit.model.path.values[0])
    assert 0.2 < gamma < 3.0  # moved towards the truth, and still a model whose solves succeed
    calibrate.evaluate(fit, small_gamma_data)  # the returned model evaluates without error
    with pytest.raises(calibrate.CalibrationError, match="negative mass"):
        calibrate.fit(model, small_gamma_data, epochs=30, batch_size=3, learning_rate=0.5, progress=False, on_failure="raise")


def test_evaluate_errors_are_as_clear_as_fit(small_gamma_data):
    model = calibrate.CalibrationModel(games.lq_rates(d=3, n_points=N), calibrate.Constant([0.05]))
    with pytest.raises(calibrate.CalibrationError) as info:
        calibrate.evaluate(model, small_gamma_data)
    message = str(info.value)
    assert "negative mass" in message and "trajectories [0, 1, 2, 3, 4, 5]" in message
    assert len(message.splitlines()) == 1 and "Traceback" not in message


def test_known_path_shows_a_discretisation_mismatch():
    """At the true γ the loss is ~0 when the game's scheme is the data's, and visibly not when the
    data come from the calibration paper's discretisation."""
    paper = games.lq_rates(1.55, d=3, n_points=N, scheme="calibration_paper")
    obs = calibrate.simulate(paper, lambda t, mu: 1.55, MU0[:3])
    known = calibrate.Known(lambda t, mu: jnp.full(1, 1.55), n_states=3)
    assert known.size == 1
    at_truth = {
        scheme: calibrate.evaluate(calibrate.CalibrationModel(games.lq_rates(d=3, n_points=N, scheme=scheme), known), obs)["loss"]
        for scheme in ("calibration_paper", "euler")
    }
    assert at_truth["calibration_paper"] < 1e-20
    assert at_truth["euler"] > 1e-6
    with pytest.raises(calibrate.CalibrationError, match="callable"):
        calibrate.Known(1.55, 1)


def test_sparse_observations_warn_and_negative_mass_names_the_worst_entry():
    y = np.tile(MU0[:, None, :], (1, 10, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.Observations(y)  # complete: no warning
        data.Observations(y, mask=np.array([False, True, False]))  # one compartment observed by design
    holes = y.copy()
    holes[:, 1:] = np.nan
    with pytest.warns(data.SparseDataWarning, match="fewer than 2 times"):
        data.Observations(holes)
    mostly = y.copy()
    mostly[:, :, :][RNG.random(y.shape) < 0.9] = np.nan
    mostly[:, 0] = MU0
    with pytest.warns(data.SparseDataWarning, match="of the entries"):
        data.Observations(mostly)
    bad = y.copy()
    bad[2, 3] = [0.6, 0.5, -0.1]
    bad[4, 7] = [1.3, 0.0, -0.3]
    with pytest.raises(data.DataError, match=r"most negative -0.3 at trajectory 4, time 7, state 2"):
        data.Observations(bad)


def test_warm_start_and_flow_only_solves():
    game = games.lq_rates(1.2, d=3, mu0=MU0[0], n_points=N, scheme="implicit")
    solver = mfgx.FixedPoint(0.0)
    cold = mfgx.solve(game, solver, tol=1e-12)
    near = mfgx.solve(game.with_params(1.25), solver, tol=1e-12)
    warm = mfgx.solve(game, solver, tol=1e-12, guess=near.flow)
    assert int(warm.steps) < int(cold.steps)
    np.testing.assert_allclose(warm.flow, cold.flow, atol=1e-11)
    lean = mfgx.solve(game, solver, tol=1e-12, diagnostics=False)
    np.testing.assert_allclose(lean.flow, cold.flow, atol=1e-11)
    assert np.isnan(float(lean.exploitability)) and np.isnan(np.asarray(lean.value)).all()
    assert bool(lean.converged) and int(lean.steps) == int(cold.steps)
    with pytest.raises(ValueError, match="shape"):
        mfgx.solve(game, solver, guess=jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="initial policy"):  # policy solvers take an initial policy
        mfgx.solve(games.beach_bar(), mfgx.MirrorDescent(), guess=jnp.zeros((1, 1)))


def _product(g):
    return g[:, 0] * g[:, 1]  # θ = a·b: a and b are not separately identifiable


def test_identifiability_diagnostic_flags_a_product_and_passes_a_single_rate():
    game = games.lq_rates(1.4, d=3, n_points=N, scheme="implicit")
    obs = calibrate.simulate(game, _gamma_14, MU0[:4])
    single = calibrate.CalibrationModel(games.lq_rates(d=3, n_points=N, scheme="implicit"), calibrate.Constant([1.38]))
    fit = calibrate.fit(single, obs, epochs=2, learning_rate=0.02, progress=False)
    assert fit.identifiability is not None and fit.identifiability.identified
    product = calibrate.CalibrationModel(
        games.lq_rates(d=3, n_points=N, scheme="implicit"), calibrate.Constant([1.0, 1.2]), to_params=_product
    )
    with pytest.warns(calibrate.IdentifiabilityWarning, match=r"parameters \[0, 1\] are not identified"):
        report = calibrate.identifiability(product, obs)
    assert report.weak == (0, 1) and report.condition > 1e8 and "not determined" in report.reason
    v = report.eigenvectors[:, -1]
    assert abs(abs(v[0]) - abs(v[1])) < 1e-6 and v[0] * v[1] < 0  # the flat direction: log a − log b


def _gamma_14(t, mu):
    return 1.4


def test_identifiability_reports_practical_precision(small_gamma_data):
    """Noise-free data identify γ; with Dirichlet noise 0.05 its relative standard error is a few
    percent, so asking for ±1 % (95 % interval) flags it and asking for ±1000 % does not."""
    game = games.lq_rates(1.4, d=3, n_points=N, scheme="implicit")
    clean = calibrate.simulate(game, _gamma_14, MU0[:4])
    noisy = calibrate.simulate(game, _gamma_14, MU0[:4], noise=0.05, seed=1)
    model = calibrate.CalibrationModel(games.lq_rates(d=3, n_points=N, scheme="implicit"), calibrate.Constant([1.4]))
    assert calibrate.identifiability(model, clean).identified
    with pytest.warns(calibrate.IdentifiabilityWarning, match=r"95% intervals wider than ±1%"):
        report = calibrate.identifiability(model, noisy, precision=0.01)
    assert report.weak == (0,) and 1.96 * report.rel_std_error[0] > 0.01
    assert calibrate.identifiability(model, noisy, precision=10.0).identified


@pytest.mark.slow
def test_smoothness_penalty_flattens_a_time_path():
    """A roughness penalty λ∫γ'² pulls a piecewise path fitted to noisy constant-γ data towards a
    constant; without it the pieces spread out to fit the noise. The reported loss is the data loss."""
    game = games.lq_rates(1.4, d=3, n_points=N, scheme="implicit")
    noisy = calibrate.simulate(game, _gamma_14, MU0, noise=0.02, seed=3)
    knots = np.linspace(0.0, 2.0, 5)
    model = calibrate.CalibrationModel(
        games.lq_rates(d=3, n_points=N, scheme="implicit"),
        calibrate.PiecewiseConstant(knots, np.linspace(0.8, 2.2, 5), interpolation="linear"),
    )
    kw = dict(epochs=40, batch_size=6, learning_rate=0.05, progress=False, identify=False)
    rough = calibrate.fit(model, noisy, **kw)
    smooth = calibrate.fit(model, noisy, smoothness=10.0, **kw)
    spread = lambda f: float(np.ptp(np.asarray(f.path.values)))  # noqa: E731
    assert spread(smooth) < 0.3 * spread(rough)
    err = lambda f: float(np.abs(np.asarray(f.path.values) - 1.4).max())  # noqa: E731
    assert err(smooth) < 0.5 * err(rough)  # and closer to the true constant 1.4 everywhere
    y, m = noisy.values[0], noisy.mask[0]
    assert float(calibrate.roughness(smooth.model, y, m)) < float(calibrate.roughness(rough.model, y, m))
    assert smooth.history[-1]["train_loss"] == pytest.approx(calibrate.evaluate(smooth.final_model, noisy)["loss"], rel=0.5)
    with pytest.raises(calibrate.CalibrationError, match="smoothness"):
        calibrate.fit(model, noisy, smoothness=-1.0, **kw)
