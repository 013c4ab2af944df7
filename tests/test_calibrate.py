"""mfgx.calibrate: observations, parameter paths, fits through the equilibrium, resume, uncertainty.

Synthetic data come from `mfgx.solve` at a known parameter (via `calibrate.simulate`); recovered
parameters are compared with that truth. Games and shapes are shared so each is compiled once.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import mfgx
from mfgx import calibrate as cal
from mfgx.data import DataError

# --- LQ jump-rate game (calibration paper §6.1), d = 3, N = 25 points on [0, 2] -------------------
LQ = mfgx.games.lq_rates(d=3, n_points=25)
GAMMA = 1.55
OPT = optax.adam(0.05)  # one optimiser object: fits reuse the compiled training step
BATCH = 4


def _mu0(n, seed):
    return np.random.default_rng(seed).dirichlet(np.full(3, 4.0), size=n)


@pytest.fixture(scope="module")
def lq_data():
    return cal.simulate(LQ, cal.Constant(GAMMA), _mu0(12, 0))


@pytest.fixture(scope="module")
def lq_split(lq_data):
    return lq_data.split(8, 2, 2, seed=0)


def lq_model(init=2.5, **kwargs):
    return cal.CalibrationModel(LQ, cal.Constant(init), **kwargs)


# --- Observations ------------------------------------------------------------------------------


def test_observations_validation():
    y = np.full((2, 4, 3), 1 / 3)
    obs = cal.Observations(y, labels=("a", "b", "c"), times=np.arange(4.0), noise=0.01, metadata={"src": "x"})
    assert (obs.n_trajectories, obs.n_times, obs.n_states) == (2, 4, 3) and obs.fully_observed
    assert cal.Observations(y[0]).n_trajectories == 1
    with pytest.raises(DataError, match=r"shape \[K, N, S\]"):
        cal.Observations(np.ones(3))
    with pytest.raises(DataError, match="not finite .* trajectory 1, time 2, state 0"):
        cal.Observations(np.where(np.arange(24).reshape(2, 4, 3) == 18, np.nan, y), mask=np.ones(3, bool))
    with pytest.raises(DataError, match="negative mass.* trajectory 0, time 1, state 2"):
        bad = y.copy()
        bad[0, 1] = (0.6, 0.6, -0.2)
        cal.Observations(bad)
    with pytest.raises(DataError, match="trajectory 1, time 3 sums to 0.9"):
        bad = y.copy()
        bad[1, 3] = (0.3, 0.3, 0.3)
        cal.Observations(bad)
    with pytest.raises(DataError, match="mask must have shape"):
        cal.Observations(y, mask=np.ones(4, bool))
    with pytest.raises(DataError, match="labels must name the S = 3"):
        cal.Observations(y, labels=("a", "b"))
    with pytest.raises(DataError, match="strictly increasing"):
        cal.Observations(y, times=[0, 1, 1, 2])
    # partial observation: NaN allowed where unobserved (inferred mask), only I observed via [S]
    partial = np.where(np.arange(3) == 1, 0.2, np.nan) * np.ones((2, 4, 1))
    assert np.asarray(cal.Observations(partial).mask).sum() == 8
    only_i = cal.Observations(np.where(np.isnan(partial), 0.0, partial), mask=[False, True, False])
    assert not only_i.fully_observed and np.asarray(only_i.values)[0, 0, 1] == 0.2
    with pytest.raises(DataError, match="sums to 1.2 > 1"):
        cal.Observations(np.full((1, 2, 3), 0.6), mask=[True, True, False])


def test_split_by_trajectory():
    y = np.random.default_rng(0).dirichlet(np.ones(3), size=(10, 4))
    tr, va, te = cal.Observations(y).split(0.6, 0.2, 0.2, seed=3)
    assert (len(tr), len(va), len(te)) == (6, 2, 2)
    rows = lambda o: {tuple(np.asarray(o.values)[k].ravel()) for k in range(len(o))}  # noqa: E731
    assert rows(tr) | rows(va) | rows(te) == rows(cal.Observations(y))
    assert not (rows(tr) & rows(va)) and not (rows(tr) & rows(te)) and not (rows(va) & rows(te))
    again = cal.Observations(y).split(0.6, 0.2, 0.2, seed=3)
    np.testing.assert_array_equal(np.asarray(again[0].values), np.asarray(tr.values))
    assert cal.Observations(y).split(8, 2, 0)[2] is None
    with pytest.raises(DataError, match="sum to 1"):
        cal.Observations(y).split(0.5, 0.2, 0.2)
    with pytest.raises(DataError, match="val fraction 0.01 gives no trajectory"):
        cal.Observations(y).split(0.98, 0.01, 0.01)


# --- Parameter paths ---------------------------------------------------------------------------


def test_paths():
    c = cal.Constant([0.4, 0.125], floor=0.05)
    np.testing.assert_allclose(c(0.0, jnp.ones(3) / 3), [0.4, 0.125], rtol=1e-12)
    assert c.evaluate(jnp.arange(5.0), jnp.ones((5, 3)) / 3).shape == (5, 2)
    boxed = cal.Constant(0.7, floor=0.5, upper=1.0)
    assert 0.5 < float(boxed.transform(-10.0)) < 0.50003 and 0.99997 < float(boxed.transform(10.0)) < 1.0
    np.testing.assert_allclose(boxed.values, [0.7])
    with pytest.raises(cal.CalibrationError, match="floor 0.1"):
        cal.Constant(0.05, floor=0.1)
    pc = cal.PiecewiseConstant([0.0, 1.0, 2.0], [1.0, 2.0, 4.0])
    got = [float(pc(t, None)[0]) for t in (-1.0, 0.0, 0.5, 1.0, 1.99, 2.0, 5.0)]
    np.testing.assert_allclose(got, [1, 1, 1, 2, 2, 4, 4], rtol=1e-12)
    lin = cal.PiecewiseConstant([0.0, 1.0, 2.0], [1.0, 2.0, 4.0], interpolation="linear")
    # linear in the unconstrained z, so between knots only monotone, exact at the knots
    np.testing.assert_allclose([float(lin(t, None)[0]) for t in (0.0, 1.0, 2.0, 3.0)], [1, 2, 4, 4], rtol=1e-12)
    assert 1 < float(lin(0.5, None)[0]) < 2
    net = cal.Neural(8, 2, jax.random.PRNGKey(0), n_states=3, out_size=2, init=(0.4, 0.1), floor=0.01)
    out = net.evaluate(jnp.linspace(0, 1, 4), jnp.ones((4, 3)) / 3)
    assert out.shape == (4, 2) and np.all(np.asarray(out) > 0.01)
    np.testing.assert_allclose(out, np.broadcast_to([0.4, 0.1], (4, 2)), rtol=0.05)
    with pytest.raises(cal.CalibrationError, match="no finite-dimensional"):
        net.values


# --- Fits --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lq_fit(lq_split):
    train, val, _ = lq_split
    return cal.fit(lq_model(), train, val=val, optimizer=OPT, epochs=30, batch_size=BATCH, progress=False)


def test_lq_constant_recovered(lq_split, lq_fit):
    _, _, test = lq_split
    gamma = float(lq_fit.path.values[0])
    assert abs(gamma - GAMMA) / GAMMA < 0.02, gamma
    assert lq_fit.selected_on == "validation" and 1 <= lq_fit.best_epoch <= 30
    best = lq_fit.history[lq_fit.best_epoch - 1]["val"]["loss"]
    assert best == min(r["val"]["loss"] for r in lq_fit.history)
    assert lq_fit.losses()[-1] < 1e-2 * lq_fit.losses()[0]
    assert all(r["n_nonconverged"] == 0 for r in lq_fit.history)
    metrics = cal.evaluate(lq_fit, test)
    assert metrics["n_trajectories"] == 2 and metrics["n_nonconverged"] == 0 and metrics["mu_error"] < 1e-5
    # Gauss–Newton polish: the exact minimiser of noise-free data is the truth
    polished = cal.refine(lq_fit, lq_split[0])
    np.testing.assert_allclose(polished.path.values, [GAMMA], rtol=1e-7)


def test_resume_equals_uninterrupted(lq_split, tmp_path):
    train, val, _ = lq_split
    kw = dict(val=val, optimizer=OPT, batch_size=BATCH, progress=False, seed=7)
    straight = cal.fit(lq_model(), train, epochs=6, **kw)
    cal.fit(lq_model(), train, epochs=3, checkpoint_dir=tmp_path / "a", checkpoint_every=1, **kw)
    resumed = cal.fit(lq_model(), train, epochs=6, checkpoint_dir=tmp_path / "a", **kw)

    def kill_after_5(record):
        if record["epoch"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # killed at epoch 5; the last checkpoint is epoch 4
        cal.fit(lq_model(), train, epochs=6, checkpoint_dir=tmp_path / "b", checkpoint_every=2, callback=kill_after_5, **kw)
    killed = cal.fit(lq_model(), train, epochs=6, checkpoint_dir=tmp_path / "b", checkpoint_every=2, **kw)
    for other in (resumed, killed):
        assert other.history == straight.history
        np.testing.assert_array_equal(other.final_model.path.z, straight.final_model.path.z)
        np.testing.assert_array_equal(other.model.path.z, straight.model.path.z)
        assert other.best_epoch == straight.best_epoch
    # anything that determines the fit changed: refused, naming what changed, nothing reused
    a = tmp_path / "a"
    with pytest.raises(cal.CalibrationError, match=r"changed: seed \(7 → 8\)"):
        cal.fit(lq_model(), train, epochs=6, checkpoint_dir=a, **{**kw, "seed": 8})
    with pytest.raises(cal.CalibrationError, match="changed: optimizer"):
        cal.fit(lq_model(), train, epochs=6, checkpoint_dir=a, **{**kw, "optimizer": optax.adam(0.3)})
    with pytest.raises(cal.CalibrationError, match="changed: model"):
        cal.fit(lq_model(init=2.4), train, epochs=6, checkpoint_dir=a, **kw)
    with pytest.raises(cal.CalibrationError, match="changed: model"):
        cal.fit(lq_model(solver=mfgx.Softmax(0.5)), train, epochs=6, checkpoint_dir=a, **kw)
    noisy = cal.Observations(np.asarray(train.values) * 0.999 + 0.001 / 3)
    with pytest.raises(cal.CalibrationError, match="changed: train_data"):
        cal.fit(lq_model(), noisy, epochs=6, checkpoint_dir=a, **kw)
    restarted = cal.fit(lq_model(), train, epochs=2, checkpoint_dir=a, resume=False, **{**kw, "seed": 8})
    assert len(restarted.history) == 2


def test_patience_stops_on_validation(lq_split, tmp_path):
    train, val, _ = lq_split
    kw = dict(val=val, optimizer=OPT, epochs=30, batch_size=BATCH, progress=False, patience=2, checkpoint_dir=tmp_path)
    c = cal.fit(lq_model(), train, **kw)
    assert c.stopped_early and c.epochs_run < 30 and c.best_epoch == c.epochs_run - 2
    again = cal.fit(lq_model(), train, **kw)  # resuming a stopped fit does not train further
    assert again.epochs_run == c.epochs_run and again.history == c.history


def test_random_window_loss(lq_split):
    train = lq_split[0]
    c = cal.fit(lq_model(), train, optimizer=OPT, epochs=30, batch_size=BATCH, window=0.2, progress=False)
    full = [r["train"]["loss"] for r in c.history]  # evaluation is always full-horizon
    assert not np.allclose(c.losses(), full)
    assert abs(float(c.path.values[0]) - GAMMA) < 0.5 * abs(2.5 - GAMMA)


def test_nonconvergence_is_counted_and_warned(lq_split):
    train = lq_split[0]
    # Picard reaches an exact float fixed point here, so no tol ≥ 0 can fail: set a negative one,
    # which no solve meets (tol is a traced array, so the compiled step is reused).
    starved = eqx.tree_at(lambda m: m.tol, lq_model(), jnp.asarray(-1.0))
    with pytest.warns(mfgx.ConvergenceWarning, match="8 of 8 equilibrium solves did not converge"):
        c = cal.fit(starved, train, optimizer=OPT, epochs=1, batch_size=BATCH, progress=False)
    assert c.history[0]["n_nonconverged"] == 8 and c.history[0]["train"]["n_nonconverged"] == 8
    with pytest.raises(cal.CalibrationError, match="did not converge"):
        cal.fit(starved, train, optimizer=OPT, epochs=1, batch_size=BATCH, progress=False, on_nonconvergence="raise")


def test_partial_observation_and_decoupling(lq_data):
    """At the truth the model reproduces the data exactly: with a hidden state (μ₀ completed from the
    unobserved mass), and, for a μ-dependent path, with γ read off the observed flow (the paper's
    decoupling) instead of the equilibrium iterate."""
    clean = np.asarray(lq_data.values[:BATCH])
    hidden = cal.Observations(np.where(np.arange(3) == 2, np.nan, clean))
    flows = cal.CalibrationModel(LQ, cal.Constant(GAMMA)).predict(hidden)
    np.testing.assert_allclose(flows, clean, atol=1e-9)
    assert cal.evaluate(lq_model(GAMMA), hidden, batch_size=BATCH)["loss"] < 1e-18
    # γ(μ) ∈ (1.3, 2.5) (Euler positivity at this Δt); the last layer scaled up so γ varies with μ
    net = cal.Neural(4, 1, jax.random.PRNGKey(1), n_states=3, inputs="mu", init=GAMMA, floor=1.3, upper=2.5)
    net = eqx.tree_at(lambda n: n.mlp.layers[-1].weight, net, 300 * net.mlp.layers[-1].weight)
    data = cal.simulate(LQ, net, _mu0(BATCH, 5))
    g = np.asarray(cal.paths(cal.CalibrationModel(LQ, net), data))
    assert g.std() > 0.01  # γ varies with μ along the flows
    np.testing.assert_allclose(cal.CalibrationModel(LQ, net).predict(data), data.values, atol=1e-9)


def sir_params(g):
    return {"beta": g[:, 0], "gamma": g[:, 1]}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::mfgx.NonSmoothWarning")
def test_sir_two_parameters_recovered():
    """(β, γ) of the SIR game from 8 noise-free flows. The paper's exact grid best response: its
    control is locally constant in θ, so the gradient through the rates is exact almost everywhere
    (mfgx.Softmax(0.05) recovers them as well, at twice the compile time)."""
    game = mfgx.games.sir(T=20.0, n_points=15)
    rng = np.random.default_rng(1)
    infected = rng.uniform(0.05, 0.3, 8)
    recovered = rng.uniform(0.0, 0.3, 8)
    mu0 = np.stack([1 - infected - recovered, infected, recovered], 1)
    data = cal.simulate(game, cal.Constant([0.4, 0.125]), mu0, to_params=sir_params)
    assert data.metadata["max_fixed_point_residual"] < 1e-10
    model = cal.CalibrationModel(game, cal.Constant([0.3, 0.2]), sir_params)
    c = cal.fit(model, data, optimizer=optax.adam(0.02), epochs=40, batch_size=BATCH, eval_train=False, progress=False)
    np.testing.assert_allclose(c.path.values, [0.4, 0.125], rtol=0.02)
    assert c.history[-1]["n_nonconverged"] == 0 and "train" not in c.history[-1]


# --- Uncertainty -------------------------------------------------------------------------------


def test_lq_intervals_cover_the_truth():
    """The paper's protocol on the LQ game (noisy y₀, Dirichlet noise 1e-3): defaults (μ₀ nuisance,
    Pearson weights) cover and standardise."""
    c = cal.coverage(lq_model(2.0), np.array([GAMMA]), _mu0(8, 100), noise=1e-3, replicates=20,
                     kinds=("gauss_newton", "sandwich"))
    assert c.failed == 0
    assert 0.8 <= c.rate("gauss_newton")[0] <= 1.0 and 0.8 <= c.rate("sandwich")[0] <= 1.0, c.table()
    assert 0.5 < c.z["gauss_newton"].std() < 1.6


SIR_SMALL = mfgx.games.sir(T=40.0, n_points=30)


@pytest.mark.filterwarnings("ignore::mfgx.NonSmoothWarning", "ignore::mfgx.ConvergenceWarning")
def test_sir_intervals_need_the_initial_state_as_nuisance():
    """SIR (β, γ) under the paper's protocol (noisy first observation, Dirichlet noise 1e-3): reading μ₀
    from y₀ blames its noise on (β, γ) and the Gauss–Newton intervals under-cover badly; with μ₀ a
    nuisance parameter and Pearson weights they cover about 95 % and the standardised errors are N(0, 1)."""
    model = cal.CalibrationModel(SIR_SMALL, cal.Constant([0.3, 0.1], floor=0.01), sir_params, solver=mfgx.Softmax(0.005, 0.0))
    mu0 = np.random.default_rng(42).dirichlet(np.ones(3), size=10)
    truth = np.array([0.4, 0.125])
    good = cal.coverage(model, truth, mu0, noise=1e-3, replicates=40, kinds=("gauss_newton",), seed=7)
    assert good.failed == 0
    assert np.all(good.rate("gauss_newton") >= 0.85), good.table()
    assert np.all((0.7 < good.z["gauss_newton"].std(0)) & (good.z["gauss_newton"].std(0) < 1.35)), good.table()
    bad = cal.coverage(model, truth, mu0, noise=1e-3, replicates=12, kinds=("gauss_newton",), seed=7,
                       initial="fixed", noise_model="gaussian")
    assert bad.rate("gauss_newton")[0] < 0.7 and bad.z["gauss_newton"][:, 0].std() > 2, bad.table()


def test_bootstrap_agrees_with_gauss_newton():
    data = cal.simulate(LQ, cal.Constant(GAMMA), _mu0(8, 3), noise=1e-3, seed=3)
    fitted = cal.refine(lq_model(2.0), data)
    gn, boot = cal.laplace(fitted, data), cal.bootstrap(fitted, data, replicates=30, seed=1)
    assert boot.kind == "bootstrap" and boot.replicates == 30 and boot.initial_states.shape == (8, 3)
    assert 0.6 < boot.std_error[0] / gn.std_error[0] < 1.6, (boot.std_error, gn.std_error)
    assert boot.lower[0] < fitted.path.values[0] < boot.upper[0]
    with pytest.raises(cal.CalibrationError, match="initial must be one of"):
        cal.laplace(fitted, data, initial="clean")
    with pytest.raises(cal.CalibrationError, match="noise_model must be one of"):
        cal.refine(fitted, data, noise_model="poisson")
    with pytest.raises(cal.CalibrationError, match="calibrate.bootstrap"):
        cal.laplace(fitted, data, kind="bootstrap")
    with pytest.raises(cal.CalibrationError, match="noise > 0"):
        cal.coverage(fitted, np.array([GAMMA]), _mu0(8, 3), noise=0.0)


@pytest.mark.slow
def test_laplace_coverage_many_replications():
    c = cal.coverage(lq_model(2.0), np.array([GAMMA]), _mu0(20, 100), noise=1e-3, replicates=200)
    assert np.all((0.9 <= c.rate("gauss_newton")) & (c.rate("gauss_newton") <= 0.98)), c.table()


def test_laplace_rejects_unidentifiable_and_neural(lq_split):
    with pytest.raises(cal.CalibrationError, match="no finite-dimensional"):
        cal.laplace(cal.CalibrationModel(LQ, cal.Neural(4, 1, jax.random.PRNGKey(0), n_states=3, init=2.0)), lq_split[0])


def test_model_errors(lq_data):
    with pytest.raises(cal.CalibrationError, match="N = 25 grid points"):
        lq_model().predict(cal.Observations(np.asarray(lq_data.values)[:, :10]))
    with pytest.raises(cal.CalibrationError, match="building the game from the path failed"):
        cal.CalibrationModel(mfgx.games.sir(T=20.0, n_points=15), cal.Constant([0.3, 0.2]), lambda g: {"beta": g[:, 0]})
    with pytest.raises(cal.CalibrationError, match="patience needs a validation set"):
        cal.fit(lq_model(), lq_data, patience=3, progress=False)
    assert lq_model().to_params is cal.scalar_params
