"""mfgx.neural, issue 13: the hidden congestion-dependent speed h = −c ρ_h(xᵢ) b(t, X)ᵢ in the meeting
game is recovered once the correction sees per-agent features of the mean field (`LocalDensity`,
`DriftFeature`); with population moments only it was not (experiments/results/neural_hidden.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfgx.neural as nm
from mfgx.neural import NeuralError

CON_C, CON_H, CON_N, CON_T0, CON_TS = 0.9, 1.5, 42, 1.0, (2.0, 3.0, 4.0, 5.0, 6.0)
CON_INTEG = nm.Integrator(0.5)
CON_LOSS = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)))
DRIFT = nm.meeting().drift


def con_x0(seed, n_sets):
    r = np.random.default_rng(seed)
    return 12.0 + r.normal(0, 1, (n_sets, 1, 1)) + r.uniform(0.5, 2.0, (n_sets, 1, 1)) * r.normal(size=(n_sets, CON_N, 1))


def con_data(c, seed, n_sets):
    truth = nm.meeting(correction=nm.hidden_congestion(DRIFT, c, CON_H) if c else None)
    return nm.game_data(truth, con_x0(seed, n_sets), CON_TS, jax.random.PRNGKey(seed), integrator=CON_INTEG, t0=CON_T0), truth


def test_per_agent_features_by_hand():
    pop = np.array([[11.0], [12.0], [12.5], [16.0]])
    q = np.array([[12.0], [20.0]])
    rho = np.asarray(nm.LocalDensity(0.7)(0.0, q, pop))
    ref = np.exp(-0.5 * (q - pop.T) ** 2 / 0.49).mean(1, keepdims=True)
    np.testing.assert_allclose(rho, ref, rtol=1e-12)
    b = np.asarray(nm.DriftFeature(DRIFT)(0.0, q, pop))
    np.testing.assert_allclose(b, np.asarray(DRIFT.at(0.0, jnp.asarray(q), jnp.asarray(pop))), rtol=1e-12)
    feats = (nm.LocalDensity(0.7), nm.DriftFeature(DRIFT))
    net = nm.AgentMLP(1, statistic=nm.Mean(), time=False, features=feats, width=4, key=jax.random.PRNGKey(0),
                      loc=(13.0, 13.0, 0.5, 0.0), scale=(2.0, 2.0, 0.5, 1.0))
    # in-simulation call = read-back at the population's own states; the features enter the map
    np.testing.assert_allclose(np.asarray(net(0.0, jnp.asarray(pop))), np.asarray(net.at(0.0, pop, pop)), rtol=1e-12)
    plain = nm.AgentMLP(1, statistic=nm.Mean(), time=False, width=4, key=jax.random.PRNGKey(0))
    assert len(net.net.loc) == 4 and len(plain.net.loc) == 2
    with pytest.raises(NeuralError, match="population"):
        net.term(0.0, q, np.array([13.0]))
    with pytest.raises(NeuralError, match="bandwidth"):
        nm.LocalDensity(0.0)
    with pytest.raises(NeuralError, match="deterministic drift"):
        nm.DriftFeature(nm.el_farol().drift)
    with pytest.raises(NeuralError, match="features"):
        nm.AgentMLP(1, features=(nm.Mean(),), key=jax.random.PRNGKey(0))
    # input_scaling standardises the features over the initial and observed clouds
    x0 = con_x0(3, 2)[:, :6]
    clouds = x0[:, None] + np.array([0.5, 1.0])[None, :, None, None]
    data = nm.PathData(np.array([2.0, 3.0]), x0, clouds=clouds, t0=CON_T0)
    s = nm.input_scaling(data, statistic=nm.Mean(), time=False, features=feats)
    every = np.concatenate([x0] + [clouds[:, t] for t in range(2)])  # [6, 6, 1]: clouds of 6 agents
    rho_all = np.concatenate([np.asarray(nm.LocalDensity(0.7)(0.0, c, c)) for c in every])
    b_all = np.concatenate([np.asarray(DRIFT.at(0.0, jnp.asarray(c), jnp.asarray(c))) for c in every])
    np.testing.assert_allclose(s["loc"][2:], [rho_all.mean(), b_all.mean()], rtol=1e-10)
    np.testing.assert_allclose(s["scale"][2], rho_all.std(), rtol=1e-10)


@pytest.fixture(scope="module")
def congestion_fits():
    """AgentMLP(x, mean, variance, ρ_1.0(x), b) on 16 datasets × 42 agents × 5 snapshots of the meeting
    game with the hidden congestion c = 0.9, h = 1.5; 150 cosine steps (seed 0 of
    experiments/neural_hidden_congestion.py, `both`). With 24 agents (seed 11) the same fit reached
    held-out R² 0.55 only, so the fast suite has no recovery fit."""
    train, truth = con_data(CON_C, 0, 16)
    feats = (nm.LocalDensity(1.0), nm.DriftFeature(DRIFT))
    scaling = nm.input_scaling(train, statistic=nm.Moments(), time=False, features=feats)
    corr = nm.AgentMLP(1, statistic=nm.Moments(), time=False, width=16, features=feats, **scaling, key=jax.random.PRNGKey(0))
    fit = nm.fit(nm.meeting(correction=corr), train, loss=CON_LOSS, integrator=CON_INTEG, learning_rate=1e-2,
                 schedule="cosine", steps=150, batch_size=8, trainable=lambda m: m.correction, progress=False)
    return {"congestion": fit}, truth


@pytest.mark.slow
def test_fit_recovers_hidden_congestion_on_held_out_data(congestion_fits):
    fits, truth = congestion_fits
    held, _ = con_data(CON_C, 1000, 8)  # other initial clouds and noise
    rec = nm.correction_recovery(fits["congestion"].model.correction, truth.correction, held.clouds, CON_TS)
    assert rec["true_sd"] > 0.3  # the term is large where it is compared
    assert rec["r2"] >= 0.75, rec["r2"]
    # the fitted model's held-out statistics beat the MFG without correction
    fitted = nm.evaluate(fits["congestion"].model, held, loss=CON_LOSS, integrator=CON_INTEG)["loss"]
    plain = nm.evaluate(nm.meeting(), held, loss=CON_LOSS, integrator=CON_INTEG)["loss"]
    assert fitted < 0.75 * plain, (fitted, plain)


# the fix of issue 13: 8 simulated copies of each initial cloud in the loss, a correction that starts at
# "no correction" (a `SpeedFactor` on the game's drift, zero-initialised) and validation on 4 of the 16
# training datasets that may keep the untrained model (seed 0 of neural_hidden_congestion.py, `speed`/`null-speed`)
CON_LOSS_R = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)), replicas=8)


def _speed_fit(data):
    train, val = data.split(0.25, seed=0)
    feats = (nm.LocalDensity(1.0),)
    corr = nm.SpeedFactor(DRIFT, statistic=nm.Moments(), width=16, features=feats, zero_init=True,
                          **nm.input_scaling(train, statistic=nm.Moments(), time=False, features=feats), key=jax.random.PRNGKey(0))
    return nm.fit(nm.meeting(correction=corr), train, val=val, eval_every=10, loss=CON_LOSS_R, integrator=CON_INTEG,
                  learning_rate=1e-2, schedule="cosine", steps=150, batch_size=8, seed=0, trainable=lambda m: m.correction,
                  progress=False)


@pytest.mark.slow
def test_speed_factor_recovers_congestion_and_learns_nothing_without_it():
    train, truth = con_data(CON_C, 0, 16)
    held, _ = con_data(CON_C, 1000, 8)
    fit = _speed_fit(train)
    rec = nm.correction_recovery(fit.model.correction, truth.correction, held.clouds, CON_TS)
    assert rec["r2"] >= 0.75, rec["r2"]  # 0.83 measured; the 0.9 is not reached (neural_hidden.md)
    ev = lambda m: nm.evaluate(m, held, loss=CON_LOSS_R, integrator=CON_INTEG)["loss"]  # noqa: E731
    assert ev(fit.model) < 0.75 * ev(nm.meeting()), (ev(fit.model), ev(nm.meeting()))
    # negative control: the same fit on data without the hidden term learns a term of RMS < 0.1 × the hidden term's sd
    null = _speed_fit(con_data(0.0, 0, 16)[0])
    held0, _ = con_data(0.0, 1000, 8)
    spurious = nm.correction_recovery(null.model.correction, None, held0.clouds, CON_TS)["rmse"]
    assert spurious < 0.1 * rec["true_sd"], (spurious, rec["true_sd"])
