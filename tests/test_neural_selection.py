"""mfgx.neural, issue 13: "no correction" as the default of a neural MFG fit.

- ``zero_init`` corrections (`AgentMLP`, `FluxCorrection`, `SpeedFactor`, `CostMLP`) start at f ≡ 0;
- `fit` with a validation set keeps the untrained model unless a trained one beats it on ``val``;
- ``PathLoss(replicas=k)`` simulates k copies of each initial cloud (less simulation variance: measured
  in experiments/results/neural_hidden.md);
- `SpeedFactor`: a learned factor on the game's own drift, by hand.
Reference values are computed here from the formulas.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfgx.neural as nm
from mfgx.continuous import Grid
from mfgx.neural import NeuralError

DRIFT = nm.meeting().drift


def _pop(seed=0, n=12):
    return jnp.asarray(np.random.default_rng(seed).normal(13.0, 1.5, (n, 1)))


def test_zero_init_corrections_start_at_zero_and_can_move():
    x = _pop()
    k = jax.random.PRNGKey(0)
    nets = {
        "agent": nm.AgentMLP(1, width=8, zero_init=True, key=k),
        "speed": nm.SpeedFactor(DRIFT, width=8, features=(nm.LocalDensity(1.0),), key=k),  # zero_init by default
        "flux": nm.FluxCorrection(3, [(0, 1)], width=8, zero_init=True, key=k),
    }
    sir_x = jnp.asarray([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]])
    for name, f in nets.items():
        xs = sir_x if name == "flux" else x
        np.testing.assert_array_equal(np.asarray(f(0.0, xs)), 0.0)
        # the last layer gets a gradient, so training can leave f ≡ 0 (the hidden layers' are 0 at first)
        w = jnp.asarray(np.random.default_rng(1).normal(size=xs.shape))
        g = eqx.filter_grad(lambda m: jnp.sum(m(0.0, xs) * w))(f)
        last = g.net.mlp.layers[-1]
        assert float(jnp.abs(last.weight).sum()) > 0, name
    assert float(jnp.abs(nm.AgentMLP(1, width=8, key=k)(0.0, x)).sum()) > 0  # the default stays random
    grid = Grid(-2.0, 2.0, 10)
    cost = nm.CostMLP(width=8, zero_init=True, key=k)
    m = grid.density(lambda z: np.exp(-0.5 * z[..., 0] ** 2))
    np.testing.assert_array_equal(np.asarray(cost(grid, 0.0, m)), 0.0)


def test_speed_factor_by_hand():
    pop, q = _pop(2), jnp.asarray([[11.0], [13.0], [16.0]])
    feats = (nm.LocalDensity(0.8),)
    loc, scale = (13.0, 13.0, 2.0, 0.4), (1.5, 0.5, 1.0, 0.2)
    sf = nm.SpeedFactor(DRIFT, statistic=nm.Moments(), features=feats, width=6, depth=2, loc=loc, scale=scale,
                        out_scale=0.5, zero_init=False, key=jax.random.PRNGKey(3))
    p = np.asarray(pop)
    mean, var = p.mean(), p.var()
    rho = np.exp(-0.5 * (np.asarray(q) - p.T) ** 2 / 0.64).mean(1)
    z = (np.stack([np.asarray(q)[:, 0], np.full(3, mean), np.full(3, var), rho], 1) - np.asarray(loc)) / np.asarray(scale)
    g = np.array([float(sf.net.mlp(jnp.asarray(zi))[0]) for zi in z])
    b = np.asarray(DRIFT.at(0.0, q, pop))[:, 0]
    np.testing.assert_allclose(np.asarray(sf.at(0.0, q, pop))[:, 0], 0.5 * g * b, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(sf.factor(0.0, q, pop))[:, 0], 0.5 * g, rtol=1e-10)
    # in the simulation the population reads itself; the game's drift gets no gradient
    np.testing.assert_allclose(np.asarray(sf(0.0, pop)), np.asarray(sf.at(0.0, pop, pop)), rtol=1e-12)
    grads = eqx.filter_grad(lambda m: jnp.sum(m(0.0, pop)))(sf)
    assert all(float(jnp.abs(v).sum()) == 0 for v in jax.tree_util.tree_leaves(eqx.filter(grads.speed, eqx.is_inexact_array)))
    with pytest.raises(NeuralError, match="deterministic drift"):
        nm.SpeedFactor(nm.el_farol().drift, key=jax.random.PRNGKey(0))


# --------------------------------------------------------------------------------------------
# the loss with replicas, and validation selection that includes the untrained model
#   data: dX = [−X + h(X)] dt + σ dW, h = 0 (null) or 0.8 − 0.6 X; model: −X + AgentMLP(X) (zero start)
# --------------------------------------------------------------------------------------------

SEL_TS, SEL_INTEG, SEL_SIGMA = (0.4, 0.8, 1.2), nm.Integrator(0.1), 0.5


class _Linear(nm.AbstractCorrection):
    def __call__(self, t, x, c=None):
        return 0.8 - 0.6 * x


def _minus_x(t, x, s):
    return -x


def _model(correction, sigma=SEL_SIGMA):
    return nm.ParticleSDE(nm.Feedback(_minus_x), correction, None if sigma is None else nm.ConstantDiffusion(sigma))


def _data(hidden, seed, n_sets, n=16):
    x0 = np.random.default_rng(seed).normal(0.0, 1.0, (n_sets, n, 1))
    return nm.game_data(_model(_Linear() if hidden else None), x0, SEL_TS, jax.random.PRNGKey(seed), integrator=SEL_INTEG, t0=0.0)


def test_replicas_tile_the_initial_cloud():
    data = _data(True, 0, 3)
    loss1 = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD(1.0))
    loss3 = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD(1.0), replicas=3)
    # an ODE: 3 copies of a cloud are the same empirical measure, so Moments and the MMD V-statistic agree
    ode = _model(_Linear(), sigma=None)
    a = nm.evaluate(ode, data, loss=loss1, integrator=SEL_INTEG)
    b = nm.evaluate(ode, data, loss=loss3, integrator=SEL_INTEG)
    assert a["loss"] > 0.01  # the clouds differ from the data's (which have noise)
    np.testing.assert_allclose([b["loss"], b["stat"], b["distance"]], [a["loss"], a["stat"], a["distance"]], rtol=1e-10)
    for bad in (0, 1.5, True):
        with pytest.raises(NeuralError, match="replicas"):
            nm.PathLoss(statistic=nm.Mean(), replicas=bad)


@pytest.mark.parametrize("hidden", [False, True])
def test_fit_keeps_no_correction_unless_validation_prefers_a_trained_one(hidden):
    """Few noisy agents, no hidden term: training fits the noise of 3 training datasets, and the
    untrained model (f ≡ 0, the truth) keeps the best loss on 3 validation datasets; with the
    hidden term, a trained step wins."""
    train, val = _data(hidden, 3, 3), _data(hidden, 4, 3)
    loss = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD(1.0), replicas=4)
    corr = nm.AgentMLP(1, statistic=nm.Mean(), time=False, width=16, zero_init=True, key=jax.random.PRNGKey(0))
    res = nm.fit(_model(corr), train, val=val, loss=loss, integrator=SEL_INTEG, learning_rate=3e-2, steps=30,
                 batch_size=3, eval_every=10, trainable=lambda m: m.correction, progress=False)
    assert res.initial_val is not None and res.initial_val["loss"] > 0
    x = jnp.linspace(-1.5, 1.5, 7)[:, None]
    learned = np.asarray(res.model.correction(0.0, x))
    if hidden:
        assert res.selected_on == "validation" and res.best_step > 0
        assert min(r["val"]["loss"] for r in res.history if "val" in r) < res.initial_val["loss"]
        assert np.corrcoef(learned[:, 0], 0.8 - 0.6 * np.asarray(x)[:, 0])[0, 1] > 0.9
    else:
        assert res.selected_on == "validation (initial model)" and res.best_step == 0
        assert all(r["val"]["loss"] >= res.initial_val["loss"] for r in res.history if "val" in r)
        np.testing.assert_array_equal(learned, 0.0)
        assert np.abs(np.asarray(res.final_model.correction(0.0, x))).max() > 0  # training did move
