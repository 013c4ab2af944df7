"""Mobility study (calibration paper §6.5): bike-share MFG vs forward ODE, closures, metrics.

Small fixed shapes (S = 3 stations, N = 9 points on [0, 1]); the closure's two equilibria share one
compiled solve, so every test after the first reuses it.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfgx import calibrate as cal
from mfgx.data import Observations
from mfgx.studies._mobility import (
    BikeSharePath,
    closure,
    fitted_params,
    improvement,
    mobility_metrics,
    mobility_models,
    rates_matrix,
)
from mfgx.studies._runner import flow_metrics

S, N = 3, 9
DT = 1.0 / (N - 1)
MU0 = np.array([0.5, 0.3, 0.2])
STATION, WINDOW = 1, (4, 6)


@pytest.fixture(scope="module")
def models():
    """Both models with one non-trivial rate path (random slopes in t), and the MFG's w_g ≠ 0."""
    m = mobility_models(S, N, seed=0)
    assert eqx.tree_equal(m["mfg"].path.rates, m["baseline"].path)  # the same architecture and initial rates
    rates = m["baseline"].path
    weight = 2.0 * jax.random.normal(jax.random.PRNGKey(3), rates.mlp.layers[0].weight.shape)
    rates = eqx.tree_at(lambda p: p.mlp.layers[0].weight, rates, weight)
    base = eqx.tree_at(lambda mm: mm.path, m["baseline"], rates)
    mfg = eqx.tree_at(lambda mm: (mm.path.rates, mm.path.w_g), m["mfg"], (rates, jnp.array([0.3, -0.2, 0.1])))
    return base, mfg


@pytest.fixture(scope="module")
def closed(models):
    return closure(*models, MU0, STATION, WINDOW, penalty=1000.0)


def test_parameters_of_the_models(models):
    assert np.array_equal(rates_matrix(jnp.arange(1.0, 7.0)[None], 3)[0], [[0, 1, 2], [3, 0, 4], [5, 6, 0]])
    base, mfg = models
    tb, tm = fitted_params(base, MU0), fitted_params(mfg, MU0)
    assert isinstance(mfg.path, BikeSharePath) and mfg.path.size == S * (S - 1) + 2 + S
    assert (float(tb["b"]), float(tb["c"])) == (1.0, 0.0) and np.all(np.asarray(tb["w_g"]) == 0)
    assert float(tm["b"]) == pytest.approx(1.0) and float(tm["c"]) == pytest.approx(0.5)
    np.testing.assert_allclose(tm["w_g"], [0.3, -0.2, 0.1])
    np.testing.assert_array_equal(tb["q_base"], tm["q_base"])
    q = np.asarray(tb["q_base"])
    assert q.shape == (N, S, S) and np.all(q[:, ~np.eye(S, dtype=bool)] > 0) and np.all(np.diagonal(q, 0, 1, 2) == 0)
    assert np.ptp(q[:, 0, 1]) > 1e-2  # the path moves in time


def test_mfg_nests_the_forward_ode(models, closed):
    base, mfg = models
    nested = eqx.tree_at(lambda m: (m.path.z_c, m.path.w_g), mfg, (jnp.asarray(-1e3), jnp.zeros(S)))
    assert float(fitted_params(nested, MU0)["c"]) == 0.0
    r = closure(base, nested, MU0, STATION, WINDOW, penalty=0.0)
    np.testing.assert_allclose(r["mfg"], r["baseline"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r["anticipatory"], r["reactive"], rtol=0, atol=1e-12)
    # ... while c, w_g ≠ 0 do change the flow (so the comparison can fail)
    assert np.abs(closed["mfg"] - closed["baseline"]).max() > 1e-3


def test_reactive_closure_has_no_inflow(models, closed):
    q = np.asarray(fitted_params(models[0], MU0)["q_base"])
    mu = closed["reactive"]
    for n in range(N - 1):  # hand-computed implicit step μ_{n+1} = μ_n (I − ΔtQ_n)⁻¹
        Q = q[n].copy()
        if WINDOW[0] <= n <= WINDOW[1]:
            Q[:, STATION] = 0.0
        np.fill_diagonal(Q, 0.0)
        np.fill_diagonal(Q, -Q.sum(1))
        np.testing.assert_allclose(mu[n + 1], mu[n] @ np.linalg.inv(np.eye(S) - DT * Q), rtol=0, atol=1e-14)
    for n in range(WINDOW[0], WINDOW[1] + 1):  # outflow only: μ_{n+1}(s) = μ_n(s) / (1 + Δt Σ_y q_sy)
        assert mu[n + 1, STATION] == pytest.approx(mu[n, STATION] / (1 + DT * q[n, STATION].sum()), rel=1e-13)
    np.testing.assert_array_equal(mu[: WINDOW[0] + 1], closed["baseline"][: WINDOW[0] + 1])  # no anticipation
    assert mu[WINDOW[1] + 1, STATION] < closed["baseline"][WINDOW[1] + 1, STATION]


def test_anticipatory_closure_empties_the_station_in_advance(closed):
    n0 = WINDOW[0]
    assert closed["converged"] == {"mfg": True, "anticipatory": True}
    # before any closed step (μ_1 … μ_{n0}) the station already holds less than without the closure
    assert np.all(closed["anticipatory"][1 : n0 + 1, STATION] < closed["mfg"][1 : n0 + 1, STATION] - 1e-3)
    assert np.all(closed["out_rate"]["anticipatory"][:n0] > closed["out_rate"]["mfg"][:n0])  # agents leave early
    for key in ("anticipatory", "reactive"):
        np.testing.assert_allclose(closed[key].sum(1), 1.0, atol=1e-12)
        assert np.all(closed[key] >= 0)


def test_learned_terminal_vector_is_used(models, closed):
    base, mfg = models
    dropped = closure(base, mfg, MU0, STATION, WINDOW, terminal=False)
    zero = closure(base, eqx.tree_at(lambda m: m.path.w_g, mfg, jnp.zeros(S)), MU0, STATION, WINDOW)
    np.testing.assert_allclose(dropped["anticipatory"], zero["anticipatory"], rtol=0, atol=1e-14)
    assert np.abs(dropped["anticipatory"] - closed["anticipatory"]).max() > 1e-4


def test_flow_metrics_by_hand():
    y = np.array([[[0.5, 0.5], [0.2, 0.8]]])
    pred = np.array([[[0.5, 0.5], [0.3, 0.7]]])
    m = flow_metrics(pred, Observations(y), 1e-4)
    assert m["l2"] == pytest.approx((0.01 + 0.01) / 4, rel=1e-12)
    assert m["rel_l2"] == pytest.approx((0.01 / (0.04 + 1e-4) + 0.01 / (0.64 + 1e-4)) / 4, rel=1e-12)
    assert improvement(2.0, 1.5) == 25.0 and improvement(1.0, 1.5) == -50.0


def test_mobility_metrics_on_a_model(models, closed):
    rng = np.random.default_rng(0)
    y = rng.dirichlet(np.full(S, 5.0), size=(2, N))
    y[:, 0] = MU0  # both days start at μ₀, so the baseline predicts the closure's unperturbed flow
    obs = Observations(y)
    m = mobility_metrics(models[0], obs, batch_size=2)
    err = (closed["baseline"][None] - y) ** 2
    assert m["l2"] == pytest.approx(err.mean(), rel=1e-10)
    assert m["rel_l2"] == pytest.approx((err / (y**2 + 1e-4)).mean(), rel=1e-10)
    assert (m["n_trajectories"], m["n_nonconverged"]) == (2, 0)


def test_closure_errors(models):
    with pytest.raises(cal.CalibrationError, match="window"):
        closure(*models, MU0, STATION, (5, N - 1))
    with pytest.raises(cal.CalibrationError, match="station"):
        closure(*models, MU0, S, WINDOW)
    with pytest.raises(cal.CalibrationError, match="forward ODE"):
        closure(models[1], models[1], MU0, STATION, WINDOW)
    with pytest.raises(cal.CalibrationError, match="path"):
        mobility_models(S, N, path="cubic")
    const = mobility_models(S, N, path="constant", rate_init=0.2)["mfg"]  # the paper's "test1" path
    np.testing.assert_allclose(fitted_params(const, MU0)["q_base"][:, 0, 1], 0.2)


def test_plot_counterfactual(closed, tmp_path):
    from mfgx.plot._counterfactual import plot_counterfactual

    hours = 6.0 + 0.25 * np.arange(N)
    fig = plot_counterfactual(closed, ["A", "B", "C"], tmp_path / "closure.png", times=hours)
    assert (tmp_path / "closure.png").stat().st_size > 0
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["B (closed)", "A", "C"]
    span = panels[0].patches[0]
    assert (span.get_x(), span.get_x() + span.get_width()) == (hours[WINDOW[0]], hours[WINDOW[1] + 1])
    np.testing.assert_allclose(panels[0].lines[3].get_ydata(), closed["anticipatory"][:, STATION])


@pytest.mark.slow
def test_gradient_reaches_the_learned_costs(models):
    """The implicit adjoint's gradient in (z_b, z_c, w_g) matches central finite differences."""
    from mfgx.calibrate._model import trajectory_loss

    mfg = models[1]
    y = jnp.asarray(np.random.default_rng(1).dirichlet(np.full(S, 5.0), size=N))
    mask = jnp.ones((N, S), bool)

    def loss(v):
        m = eqx.tree_at(lambda mm: (mm.path.z_b, mm.path.z_c, mm.path.w_g), mfg, (v[0], v[1], v[2:]))
        return trajectory_loss(m, y, mask)[0]

    v = jnp.concatenate([jnp.stack([mfg.path.z_b, mfg.path.z_c]), mfg.path.w_g])
    grad = np.asarray(eqx.filter_jit(jax.grad(loss))(v))
    f = eqx.filter_jit(loss)
    h = 1e-5
    fd = np.array([(f(v.at[i].add(h)) - f(v.at[i].add(-h))) / (2 * h) for i in range(v.size)])
    assert np.all(np.abs(grad) > 1e-8)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-10)
