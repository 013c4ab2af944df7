"""mfgx.neural: the particle SDE solver against OU/LQ closed forms, exchangeable distances against
closed forms and hand computations, drift recovery by `fit`, checkpoints, the games, validation.

Every reference number is computed here from a formula (NumPy), never copied from mfgx output.
Shapes and models are shared so that each jitted function compiles once.
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.stats import norm

import mfgx.neural as nm
from mfgx.neural import NeuralError

# --------------------------------------------------------------------------------------------
# OU / LQ mean-field particles:  dXᵢ = [a (m̄ᴺ − Xᵢ) + b (c − Xᵢ)] dt + σ dWᵢ,  Xᵢ(0) ~ N(m0, v0) iid
# --------------------------------------------------------------------------------------------

A, B, C, SIGMA, M0, V0 = 1.0, 0.5, 1.0, 0.8, -1.0, 0.25
DT, TS = 0.02, (0.5, 1.0)


class Herding(eqx.Module):
    """α(t, x, m) = a (m − x) + b (c − x): herding to the population mean, mean reversion to c."""

    a: float
    b: float
    c: float

    def __call__(self, t, x, s):
        return self.a * (s[0] - x) + self.b * (self.c - x)


def ou_model(solver_common=0.0):
    return nm.ParticleSDE(nm.Feedback(Herding(A, B, C), nm.Mean()), None, nm.ConstantDiffusion(SIGMA), common_noise=solver_common)


def euler_moments(N, t):
    """Exact moments of the Euler–Maruyama scheme: E m̂, Var m̂, E v̂ after t/Δt steps."""
    m, vm, ev = M0, V0 / N, V0 * (N - 1) / N
    for _ in range(int(round(t / DT))):
        m = m + DT * B * (C - m)
        vm = (1 - B * DT) ** 2 * vm + SIGMA**2 * DT / N
        ev = (1 - (A + B) * DT) ** 2 * ev + SIGMA**2 * DT * (N - 1) / N
    return m, vm, ev


def continuous_moments(N, t):
    """The mean-field closed form: E m̂ = m(t), Var m̂, E v̂ = (1 − 1/N) v(t)."""
    m = C + (M0 - C) * math.exp(-B * t)
    vm = SIGMA**2 / (2 * B * N) * (1 - math.exp(-2 * B * t)) + V0 / N * math.exp(-2 * B * t)
    k = A + B
    v = V0 * math.exp(-2 * k * t) + SIGMA**2 / (2 * k) * (1 - math.exp(-2 * k * t))
    return m, vm, (1 - 1 / N) * v


def _x0(N, seed=0):
    return np.random.default_rng(seed).normal(M0, math.sqrt(V0), size=(N, 1))


@pytest.mark.parametrize("N", [100, pytest.param(1000, marks=pytest.mark.slow), 10000])
def test_particles_match_euler_and_mean_field_closed_forms(N):
    ys = nm.simulate(ou_model(), _x0(N), TS, jax.random.PRNGKey(N), integrator=nm.Integrator(DT), t0=0.0)
    assert ys.shape == (len(TS), N, 1)
    for j, t in enumerate(TS):
        mhat, vhat = float(ys[j].mean()), float(ys[j].var())
        m, vm, ev = euler_moments(N, t)
        sd_v = ev * math.sqrt(2 / (N - 1))  # N v̂ / E-scale ~ χ²_{N−1} (Gaussian deviations)
        assert abs(mhat - m) <= 4 * math.sqrt(vm), (t, mhat, m)
        assert abs(vhat - ev) <= 4 * sd_v, (t, vhat, ev)
        # the scheme's moments are within O(Δt) of the mean-field closed form
        mc, vmc, evc = continuous_moments(N, t)
        assert abs(mhat - mc) <= 4 * math.sqrt(vmc) + abs(m - mc)
        assert abs(vhat - evc) <= 4 * sd_v + abs(ev - evc)


def test_higher_order_solver_matches_closed_form_without_bias():
    N = 10000
    integ = nm.Integrator(0.05, diffrax.SRA1())
    ys = nm.simulate(ou_model(), _x0(N, 1), TS, jax.random.PRNGKey(7), integrator=integ, t0=0.0)
    for j, t in enumerate(TS):
        m, vm, ev = continuous_moments(N, t)
        assert abs(float(ys[j].mean()) - m) <= 4 * math.sqrt(vm)
        assert abs(float(ys[j].var()) - ev) <= 4 * ev * math.sqrt(2 / (N - 1))


@pytest.mark.slow
def test_common_noise_moves_all_particles_together():
    # ρ = 1: every particle gets the same increment, so deviations from the mean contract
    # deterministically, v̂_k = (1 − (a+b)Δt)^{2k} v̂_0 for Euler.
    x0 = _x0(50, 2)
    ys = nm.simulate(ou_model(1.0), x0, TS, jax.random.PRNGKey(3), integrator=nm.Integrator(DT), t0=0.0)
    for j, t in enumerate(TS):
        k = int(round(t / DT))
        np.testing.assert_allclose(float(ys[j].var()), (1 - (A + B) * DT) ** (2 * k) * x0.var(), rtol=1e-9)


def test_statistics_of_the_empirical_measure():
    x = np.random.default_rng(3).normal(size=(50, 2))
    levels, edges, centres, h = (0.1, 0.8), (-1.0, 0.0, 0.5, 2.0), np.array([[0.0, 0.0], [1.0, -1.0]]), 0.7
    stat = nm.Stack(nm.Mean(), nm.Moments(), nm.Quantile(levels), nm.Histogram(edges), nm.KernelEmbedding(centres, h))
    out = np.asarray(jax.jit(stat)(jnp.asarray(x)))
    hist = np.concatenate([np.histogram(x[:, j], bins=edges)[0] / 50 for j in range(2)])
    kern = np.exp(-((x[:, None, :] - centres[None]) ** 2).sum(-1) / (2 * h**2)).mean(0)
    expect = np.concatenate([x.mean(0), x.mean(0), x.var(0), np.quantile(x, levels, axis=0).reshape(-1), hist, kern])
    assert out.shape == (stat.size(2),)
    np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------
# distances
# --------------------------------------------------------------------------------------------


def test_mmd_two_points_and_weights():
    for h in (0.5, (0.5, 2.0)):
        hs = (h,) if isinstance(h, float) else h
        expect = sum(2 - 2 * math.exp(-4 / (2 * g**2)) for g in hs)
        np.testing.assert_allclose(float(nm.mmd(jnp.array([[0.0]]), jnp.array([[2.0]]), h)), expect, rtol=1e-12)
    # weights: y = ½δ₀ + ½δ₂ padded with a zero-weight point far away equals the unpadded cloud
    x = jnp.array([[0.3], [1.1]])
    y = jnp.array([[0.0], [2.0], [50.0]])
    np.testing.assert_allclose(float(nm.mmd(x, y, 1.0, y_weights=jnp.array([1.0, 1.0, 0.0]))), float(nm.mmd(x, y[:2], 1.0)), rtol=1e-12)


def test_mmd_estimates_gaussian_closed_form():
    # Population MMD² between N(0, s²I) and N(δ, s²I) in ℝ² with kernel exp(−|x−y|²/2h²):
    # E k(X, X′) = (h²/(h²+2s²)), E k(X, Y) = (h²/(h²+2s²)) exp(−|δ|²/(2(h²+2s²))).
    s, h, delta, n, R = 0.7, 1.0, np.array([0.8, -0.3]), 300, 24
    q = h**2 / (h**2 + 2 * s**2)
    exact = 2 * q * (1 - math.exp(-(delta @ delta) / (2 * (h**2 + 2 * s**2))))
    keys = jax.random.split(jax.random.PRNGKey(0), R)

    @jax.jit
    @jax.vmap
    def estimate(k):
        kx, ky = jax.random.split(k)
        x = s * jax.random.normal(kx, (n, 2))
        y = jnp.asarray(delta) + s * jax.random.normal(ky, (n, 2))
        return nm.mmd(x, y, h, unbiased=True)

    est = np.asarray(estimate(keys))
    se = est.std(ddof=1) / math.sqrt(R)
    assert abs(est.mean() - exact) <= 4 * se, (est.mean(), exact, se)


def test_mmd_chunked_equals_dense():
    r = np.random.default_rng(0)
    x, y = jnp.asarray(r.normal(size=(37, 2))), jnp.asarray(r.normal(1, 1, size=(23, 2)))

    @jax.jit
    def both(x):
        f = lambda x, chunk: nm.mmd(x, y, (0.5, 1.5), chunk=chunk)  # noqa: E731
        return f(x, 8), f(x, None), jax.grad(f)(x, 8), jax.grad(f)(x, None)

    v8, v, g8, g = both(x)
    np.testing.assert_allclose(float(v8), float(v), rtol=1e-12)
    np.testing.assert_allclose(g8, g, rtol=1e-10, atol=1e-14)


def test_wasserstein_1d_hand_computed_and_sorted():
    w1d = jax.jit(nm.wasserstein_1d)
    # x = {0, 1, 2}, y = {0, 3}: the quantile functions differ by 0, 1, 2, 1 on [0,⅓), [⅓,½), [½,⅔), [⅔,1)
    expect = 1 * (1 / 2 - 1 / 3) + 4 * (2 / 3 - 1 / 2) + 1 * (1 - 2 / 3)
    np.testing.assert_allclose(float(w1d(jnp.array([[0.0], [1.0], [2.0]]), jnp.array([[0.0], [3.0]]))), expect, rtol=1e-12)
    r = np.random.default_rng(1)
    x, y = r.normal(size=(50, 2)), r.normal(1, 2, size=(50, 2))
    ref = sum(np.mean((np.sort(x[:, j]) - np.sort(y[:, j])) ** 2) for j in range(2))
    np.testing.assert_allclose(float(w1d(jnp.asarray(x), jnp.asarray(y))), ref, rtol=1e-12)
    # Gaussians through their quantiles: W₂² = (m₁ − m₂)² + (s₁ − s₂)² up to O(log n / n)
    xg = (0.5 + 1.0 * norm.ppf((np.arange(2000) + 0.5) / 2000))[:, None]
    yg = (-1.0 + 2.0 * norm.ppf((np.arange(1000) + 0.5) / 1000))[:, None]
    np.testing.assert_allclose(float(w1d(jnp.asarray(xg), jnp.asarray(yg))), 1.5**2 + 1.0**2, rtol=5e-3)


def test_sinkhorn_known_cases():
    points = jax.jit(jax.vmap(lambda e: nm.sinkhorn(jnp.array([[0.0, 1.0]]), jnp.array([[2.0, -1.0]]), e)))
    # point masses: the only plan is δ⊗δ, so OT_ε = |a − b|² for every ε
    np.testing.assert_allclose(np.asarray(points(jnp.array([0.05, 1.0]))), 8.0, rtol=1e-10)
    r = np.random.default_rng(2)
    x, y = jnp.asarray(r.normal(size=(60, 1))), jnp.asarray(r.normal(1.0, 1.5, size=(60, 1)))
    div = jax.jit(lambda x, y, e: nm.sinkhorn_divergence(x, y, e, n_iter=1000))
    w2 = float(nm.wasserstein_1d(x, y))
    s = float(div(x, y, 0.01))
    assert abs(s - w2) <= 0.01 * w2, (s, w2)  # S_ε → W₂² as ε → 0
    assert abs(float(div(x, x, 0.01))) < 1e-10
    # symmetric at convergence (at ε = 0.1, 1000 iterations converge to round-off)
    np.testing.assert_allclose(float(div(y, x, 0.1)), float(div(x, y, 0.1)), rtol=1e-10)
    # envelope-theorem gradient equals central finite differences
    vg = jax.jit(jax.value_and_grad(lambda x: nm.sinkhorn(x, y, 0.5, n_iter=400)))
    g = vg(x)[1]
    e = jnp.zeros_like(x).at[3, 0].set(1e-6)
    np.testing.assert_allclose(float(g[3, 0]), float((vg(x + e)[0] - vg(x - e)[0]) / 2e-6), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# training: a neural correction recovers a known extra drift
#   data: dX = [−X + g(X)] dt + σ dW with g(x) = G0 + G1 x; model: −X + AgentMLP(X)
# --------------------------------------------------------------------------------------------

G0, G1, SIG_FIT = 0.8, -0.6, 0.5
FIT_TS = (0.2, 0.5, 1.0, 1.5, 2.0)
FIT_INTEG = nm.Integrator(0.1, adjoint=diffrax.RecursiveCheckpointAdjoint(checkpoints=10))  # 20 steps, 10 checkpoints
FIT_LOSS = nm.PathLoss(statistic=nm.Moments(), distance=nm.Wasserstein1D())
FIT_OPT = optax.adam(0.02)


def minus_x(t, x, s):
    return -x


def fit_model(correction):
    return nm.ParticleSDE(nm.Feedback(minus_x), correction, nm.ConstantDiffusion(SIG_FIT))


def euler_maruyama(x0, seed):
    """Independent NumPy simulation of the data model dX = [−X + G0 + G1 X] dt + σ dW (Euler–Maruyama)."""
    rng = np.random.default_rng(seed)
    x, out = np.array(x0, dtype=float), []
    n_steps = int(round(FIT_TS[-1] / FIT_INTEG.dt0))
    for k in range(1, n_steps + 1):
        x = x + (-x + G0 + G1 * x) * FIT_INTEG.dt0 + SIG_FIT * math.sqrt(FIT_INTEG.dt0) * rng.normal(size=x.shape)
        if any(abs(k * FIT_INTEG.dt0 - t) < 1e-9 for t in FIT_TS):
            out.append(x.copy())
    return np.stack(out, axis=1)  # [B, T, M, 1]


@pytest.fixture(scope="module")
def drift_data():
    x0 = np.random.default_rng(5).normal(0.0, 1.0, size=(4, 200, 1))
    clouds = euler_maruyama(x0, 9)
    m = clouds.mean(axis=2)
    stats = np.concatenate([m, ((clouds - m[:, :, None]) ** 2).mean(axis=2)], axis=-1)  # Moments: (mean, variance)
    return nm.PathData(FIT_TS, x0, clouds=clouds, stats=stats, t0=0.0)


def _fresh_correction():
    return nm.AgentMLP(1, statistic=None, time=False, width=8, depth=1, out_scale=1.0, key=jax.random.PRNGKey(0))


def test_fit_recovers_extra_drift_on_held_out_states(drift_data):
    res = nm.fit(fit_model(_fresh_correction()), drift_data, loss=FIT_LOSS, integrator=FIT_INTEG, optimizer=FIT_OPT,
                 steps=60, batch_size=4, trainable=lambda m: m.correction, progress=False)
    losses = res.losses()
    assert losses[-10:].mean() < 0.2 * losses[:5].mean()
    xs = jnp.linspace(-1.0, 1.5, 26)[:, None]  # states never used in training, inside the data's support
    err = np.abs(np.asarray(res.model.correction(0.0, xs) - (G0 + G1 * xs)))
    assert err.max() < 0.15, err.max()
    assert res.selected_on == "last step" and res.steps_run == 60


def test_fit_resume_is_exact(drift_data, tmp_path):
    kw = dict(loss=FIT_LOSS, integrator=FIT_INTEG, optimizer=FIT_OPT, batch_size=4, trainable=lambda m: m.correction,
              progress=False, seed=3)
    straight = nm.fit(fit_model(_fresh_correction()), drift_data, steps=6, **kw)
    nm.fit(fit_model(_fresh_correction()), drift_data, steps=3, checkpoint_dir=tmp_path, checkpoint_every=3, **kw)
    resumed = nm.fit(fit_model(_fresh_correction()), drift_data, steps=6, checkpoint_dir=tmp_path, **kw)
    assert resumed.steps_run == 6 and len(resumed.history) == 6
    for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(straight.model, eqx.is_array)),
                    jax.tree_util.tree_leaves(eqx.filter(resumed.model, eqx.is_array))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)
    with pytest.raises(NeuralError, match=r"changed: seed \(3 → 4\)"):
        nm.fit(fit_model(_fresh_correction()), drift_data, steps=6, checkpoint_dir=tmp_path, **{**kw, "seed": 4})
    with pytest.raises(NeuralError, match="changed: optimizer"):
        nm.fit(fit_model(_fresh_correction()), drift_data, steps=6, checkpoint_dir=tmp_path,
               **{**kw, "optimizer": optax.adam(0.123)})
    with pytest.raises(NeuralError, match="changed: trainable"):
        nm.fit(fit_model(_fresh_correction()), drift_data, steps=6, checkpoint_dir=tmp_path, **{**kw, "trainable": None})


@pytest.mark.slow
def test_fit_recovers_nonlinear_drift_with_mmd_and_validation():
    def g(x):
        return 0.7 * np.sin(2 * x)

    class Extra(nm.AbstractCorrection):
        def __call__(self, t, x, c=None):
            return 0.7 * jnp.sin(2 * x)

    truth = fit_model(Extra())
    x0 = np.random.default_rng(6).normal(0.0, 1.2, size=(12, 400, 1))
    sim = jax.jit(jax.vmap(lambda x, k: nm.simulate(truth, x, FIT_TS, k, integrator=FIT_INTEG, t0=0.0)))
    clouds = np.asarray(sim(jnp.asarray(x0), jax.random.split(jax.random.PRNGKey(1), 12)))
    data = nm.PathData(FIT_TS, x0, clouds=clouds, t0=0.0)
    train, val = data.split(0.25, seed=0)
    corr = nm.AgentMLP(1, statistic=None, time=False, width=16, depth=2, key=jax.random.PRNGKey(2))
    res = nm.fit(fit_model(corr), train, val=val, loss=nm.PathLoss(distance=nm.MMD((0.3, 1.0))), integrator=FIT_INTEG,
                 learning_rate=1e-2, steps=400, batch_size=4, eval_every=50, trainable=lambda m: m.correction, progress=False)
    assert res.selected_on == "validation"
    xs = np.linspace(-1.2, 1.2, 25)[:, None]
    err = np.abs(np.asarray(res.model.correction(0.0, jnp.asarray(xs))) - g(xs))
    assert err.max() < 0.25, err.max()


@pytest.mark.slow
def test_adjoints_agree_with_each_other_and_finite_differences():
    class Lin(eqx.Module):
        w: jax.Array

        def __call__(self, t, x, s):
            return -self.w * x + 0.3 * s[0]

    x0 = jnp.asarray(np.random.default_rng(1).normal(size=(32, 1)))
    model = nm.ParticleSDE(nm.Feedback(Lin(jnp.array(1.0)), nm.Mean()), None, nm.ConstantDiffusion(0.5))

    def loss(m, adjoint):
        integ = nm.Integrator(0.02, diffrax.Heun(), adjoint, brownian="virtual")
        return jnp.mean(nm.simulate(m, x0, (0.5, 1.0), jax.random.PRNGKey(0), integrator=integ, t0=0.0) ** 2)

    grads = {type(a).__name__: eqx.filter_jit(eqx.filter_grad(loss))(model, a)
             for a in (diffrax.RecursiveCheckpointAdjoint(), diffrax.DirectAdjoint(), diffrax.BacksolveAdjoint())}
    w = lambda g: float(g.drift.fn.w)  # noqa: E731
    f = lambda v: float(loss(eqx.tree_at(lambda m: m.drift.fn.w, model, jnp.array(v)), diffrax.DirectAdjoint()))  # noqa: E731
    fd = (f(1 + 1e-6) - f(1 - 1e-6)) / 2e-6
    np.testing.assert_allclose(w(grads["RecursiveCheckpointAdjoint"]), w(grads["DirectAdjoint"]), rtol=1e-10)
    np.testing.assert_allclose(w(grads["RecursiveCheckpointAdjoint"]), fd, rtol=1e-6)
    np.testing.assert_allclose(w(grads["BacksolveAdjoint"]), fd, rtol=1e-3)  # continuous adjoint: O(Δt)


# --------------------------------------------------------------------------------------------
# games
# --------------------------------------------------------------------------------------------


def test_meeting_drift_is_minus_cost_gradient():
    game = nm.meeting(scheduled=15.0, quorum=0.8, a=1.0, b=2.0, c=0.5)
    x = jnp.asarray([[13.0], [14.0], [15.5], [16.0], [17.0]])
    T = float(np.quantile(np.asarray(x[:, 0]), 0.8))  # 16.2
    tau = np.asarray(x[:, 0])
    expect = -(1.0 * (tau > 15.0) + 2.0 * (tau > T) - 0.5 * (tau < T))
    np.testing.assert_allclose(np.asarray(game.drift(0.0, x, None))[:, 0], expect, atol=1e-12)


def test_el_farol_drift_by_hand():
    drift = nm.ElFarolDrift(threshold=0.3, weight=0.33)
    p = jnp.asarray([[0.1], [0.5], [0.9], [0.2]])
    key = jax.random.PRNGKey(4)
    go = np.asarray(jax.random.bernoulli(key, jnp.clip(p[:, 0], 0, 1))).astype(float)
    att, pp = go.mean(), np.asarray(p[:, 0])
    grad = 0.33 * (pp > 0.3) * (att > 0.3) * go - 0.33 * (pp < 0.3) * (att <= 0.3) * (1 - go) + 0.66 * (pp - att)
    np.testing.assert_allclose(np.asarray(drift(0.0, p, key))[:, 0], -grad, atol=1e-12)


def test_sir_drift_flux_terms_conserve_mass():
    x = jnp.asarray([[0.3, 0.1, 0.6], [0.9, 0.05, 0.05]])
    corr = nm.FluxCorrection(3, [(0, 1), (1, 2)], covariates=1, key=jax.random.PRNGKey(0))

    @eqx.filter_jit
    def parts(x, corr):
        drift = nm.SIRDrift(2.0, 0.5, awareness=1.0)(0.0, x, None)
        return drift, corr(0.0, x, jnp.array([1.0])), nm.FluxDiffusion(3, [(0, 1)], 0.3)(0.0, x), nm.SusceptibleShare(0.2)(x[:1] * 0 + jnp.array([0.0, 0.01, 0.0]))

    drift, f, noise, init = parts(x, corr)
    xs = np.asarray(x)
    a = np.clip(1 - 1.0 * 2.0 * xs[:, 1], 0, 1)
    infect = 2.0 * a * xs[:, 0] * xs[:, 1]
    np.testing.assert_allclose(np.asarray(drift), np.stack([-infect, infect - 0.5 * xs[:, 1], 0.5 * xs[:, 1]], 1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(f.sum(1)), 0.0, atol=1e-15)  # learned fluxes conserve mass
    assert noise.shape == (2, 3, 1)  # [N, d, m]: columns sum to 0
    np.testing.assert_allclose(np.asarray(noise.sum(1)), 0.0, atol=1e-15)
    np.testing.assert_allclose(np.asarray(noise[:, 1, 0]), 0.3 * xs[:, 0] * xs[:, 1], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(init), [[0.2, 0.01, 0.79]], rtol=1e-12)


def test_data_generators_match_their_distributions():
    y = nm.meeting_data(0, 400)  # [B, 42, 1]: mean μ, variance σ² + kθ (mixture of groups)
    assert y.shape == (400, 42, 1)
    flat = y.reshape(-1)
    # per-dataset means are independent: sd of the grand mean from their spread
    means = y.mean(axis=(1, 2))
    assert abs(flat.mean() - 15.0) <= 4 * means.std(ddof=1) / math.sqrt(400)
    var = y.reshape(400, 6, 7).var(axis=2, ddof=1).mean() + y.reshape(400, 6, 7).mean(axis=2).var(ddof=1)
    assert abs(var - (0.25 + 0.4)) < 0.1
    rates, p, counts = nm.el_farol_data(0, 300)
    assert rates.shape == (300,) and p.shape == (300, 42) and counts.shape == (300, 10) and p.min() >= 0 and p.max() <= 1
    np.testing.assert_allclose(rates, counts.mean(1) / 42)
    assert abs(rates.mean() - p.mean()) <= 4 * math.sqrt(0.2 * 0.8 / (300 * 42 * 10))


# --------------------------------------------------------------------------------------------
# hidden interactions (issue 13): a game plus a known hidden term generates the data; the
# learned correction must recover the term on held-out data, and stay near 0 without one
# --------------------------------------------------------------------------------------------

HID_N, HID_T0, HID_TS, HID_K = 24, 1.0, (2.0, 3.0, 4.0, 5.0, 6.0), 0.8
HID_INTEG = nm.Integrator(0.5)
HID_LOSS = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)))


def hidden_x0(seed, n_sets):
    """Initial clouds N(12 + δ_b, s_b²), δ_b ~ N(0, 1), s_b ~ U(0.5, 2): a different spread per dataset."""
    r = np.random.default_rng(seed)
    return 12.0 + r.normal(0, 1, (n_sets, 1, 1)) + r.uniform(0.5, 2.0, (n_sets, 1, 1)) * r.normal(size=(n_sets, HID_N, 1))


def hidden_data(k, seed, n_sets):
    truth = nm.meeting(correction=nm.hidden_conformity(k) if k else None)
    return nm.game_data(truth, hidden_x0(seed, n_sets), HID_TS, jax.random.PRNGKey(seed), integrator=HID_INTEG, t0=HID_T0), truth


def test_hidden_terms_and_read_back_by_hand():
    game = nm.meeting(scheduled=15.0)
    conf, cong = nm.hidden_conformity(0.5), nm.hidden_congestion(game.drift, strength=0.4, bandwidth=1.0)
    net = nm.AgentMLP(1, key=jax.random.PRNGKey(0), loc=(14.0, 0.0, 14.0, 1.0), scale=2.0)
    x, q = jnp.asarray([[1.0], [2.0], [6.0]]), jnp.asarray([[0.0], [3.0]])
    xs = np.array([13.0, 14.0, 15.5, 16.0, 17.0])
    pop = jnp.asarray(np.random.default_rng(0).normal(14, 1, (9, 1)))

    @eqx.filter_jit
    def evaluate_all(conf, cong, net, x, q, xc, pop):
        return (conf(0.0, x), conf.at(0.0, q, x), game.drift(0.0, xc, None), cong(0.0, xc), cong.at(0.0, xc, xc),
                net(0.3, pop), net.at(0.3, pop, pop), net.term(0.3, pop[:2], nm.Moments()(pop)))

    cx, cq, b, h, h_at, f, f_at, f_term = (np.asarray(v) for v in evaluate_all(conf, cong, net, x, q, jnp.asarray(xs[:, None]), pop))
    np.testing.assert_allclose(cx, 0.5 * (3.0 - np.array([[1.0], [2.0], [6.0]])), rtol=1e-12)
    np.testing.assert_allclose(cq, [[1.5], [0.0]], rtol=1e-12)  # query states do not enter the mean field
    rho = np.exp(-0.5 * (xs[:, None] - xs[None]) ** 2).mean(1)
    np.testing.assert_allclose(h[:, 0], -0.4 * rho * b[:, 0], rtol=1e-12)
    np.testing.assert_allclose(h_at[:, 0], -0.4 * rho * b[:, 0], rtol=1e-12)
    # AgentMLP read back: term(t, x, S(μ)) and at(t, x, μ) agree with the in-simulation call
    np.testing.assert_allclose(f_at, f, rtol=1e-12)
    np.testing.assert_allclose(f_term, f[:2], rtol=1e-12)
    with pytest.raises(NeuralError, match="cannot be read"):
        nm.PopulationMLP(3, key=jax.random.PRNGKey(0)).at(0.0, pop[:3], pop[:3])
    with pytest.raises(NeuralError, match="in \\[0, 1\\]"):
        nm.hidden_congestion(game.drift, strength=2.0)


def test_game_data_and_recovery_metric():
    data, truth = hidden_data(HID_K, 3, 4)  # the held-out shapes: compiled once
    assert (data.n_datasets, data.n_times, data.dim) == (4, len(HID_TS), 1) and data.clouds.shape == (4, 5, HID_N, 1)
    m = np.asarray(data.clouds).mean(2)
    np.testing.assert_allclose(np.asarray(data.stats[..., 0]), m[..., 0], rtol=1e-12)  # Moments of the observed clouds
    # the exact term recovers itself (R² = 1); half of it R² = 1 − ¼ = 0.75; zero against h = 0: rmse 0
    assert nm.correction_recovery(truth.correction, truth.correction, data.clouds, HID_TS)["r2"] == pytest.approx(1.0)
    half = nm.correction_recovery(nm.hidden_conformity(HID_K / 2), truth.correction, data.clouds, HID_TS)
    assert half["r2"] == pytest.approx(0.75, abs=1e-12)
    none = nm.correction_recovery(nm.hidden_conformity(0.0), None, data.clouds, HID_TS)
    assert math.isnan(none["r2"]) and none["rmse"] == 0.0
    sub = nm.game_data(truth, hidden_x0(3, 4), HID_TS, jax.random.PRNGKey(3), integrator=HID_INTEG, t0=HID_T0, n_observed=10, noise=0.1)
    assert sub.clouds.shape == (4, 5, 10, 1)
    gap = np.abs(np.asarray(sub.clouds)[..., 0][..., :, None] - np.asarray(data.clouds)[..., 0][..., None, :]).min(-1)
    assert gap.max() < 0.5  # observed points: particles of the same paths plus N(0, 0.1²) noise
    scaling = nm.input_scaling(data)
    assert len(scaling["loc"]) == 4 and all(s > 0 for s in scaling["scale"])


@pytest.fixture(scope="module")
def hidden_fits():
    """Fits of the meeting game + AgentMLP(x, mean) on 16 datasets × 24 agents × 5 snapshots, with the
    hidden conformity term 0.8 (m − x) in the data and without (negative control): one compiled step.
    Standardised inputs, no time input and a cosine-decayed rate (issue 13's diagnosis,
    experiments/results/neural_hidden.md); at seeds 11, 21, 31 this gave held-out R² 0.89–0.96 and a
    spurious term of RMS 0.12–0.25."""
    train, truth = hidden_data(HID_K, 11, 16)
    null_train, _ = hidden_data(0.0, 11, 16)
    scaling = nm.input_scaling(train, statistic=nm.Mean(), time=False)  # the same inputs in both fits: one compilation
    out = {}
    for name, data in (("conformity", train), ("null", null_train)):
        corr = nm.AgentMLP(1, statistic=nm.Mean(), time=False, width=16, **scaling, key=jax.random.PRNGKey(0))
        out[name] = nm.fit(nm.meeting(correction=corr), data, loss=HID_LOSS, integrator=HID_INTEG, learning_rate=1e-2,
                           schedule="cosine", steps=150, batch_size=8, trainable=lambda m: m.correction, progress=False)
    return out, truth


def test_fit_recovers_hidden_conformity_on_held_out_data(hidden_fits):
    fits, truth = hidden_fits
    held, _ = hidden_data(HID_K, 12, 4)  # other seed, other initial clouds
    rec = nm.correction_recovery(fits["conformity"].model.correction, truth.correction, held.clouds, HID_TS)
    assert rec["r2"] >= 0.8, rec["r2"]
    assert rec["true_sd"] > 0.5  # the term is large where it is compared


def test_fit_without_hidden_term_learns_almost_nothing(hidden_fits):
    fits, _ = hidden_fits
    held, _ = hidden_data(0.0, 12, 4)
    rec = nm.correction_recovery(fits["null"].model.correction, None, held.clouds, HID_TS)
    # the hidden term has sd ≈ 0.85 over the same clouds: a spurious term below 0.35 is what R² ≥ 0.83 allows
    assert rec["rmse"] < 0.35, rec["rmse"]


def test_fit_warns_on_unscaled_inputs_and_plot_reads_back(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from mfgx.plot import plot_correction

    data, truth = hidden_data(HID_K, 3, 4)
    raw = nm.meeting(correction=nm.AgentMLP(1, width=4, depth=1, key=jax.random.PRNGKey(0)))
    with pytest.warns(UserWarning, match="far from unit scale"):
        nm.fit(raw, data, loss=HID_LOSS, integrator=HID_INTEG, steps=0, trainable=lambda m: m.correction, progress=False)
    with pytest.raises(NeuralError, match="schedule"):
        nm.fit(raw, data, loss=HID_LOSS, integrator=HID_INTEG, steps=0, schedule="linear", progress=False)
    fig = plot_correction(nm.hidden_conformity(0.6), truth.correction, data.clouds, HID_TS, path=tmp_path / "c.png")
    assert (tmp_path / "c.png").exists() and len(fig.axes) == 3


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def test_validation_errors():
    key = jax.random.PRNGKey(0)
    m = ou_model()
    integ = nm.Integrator(0.1)
    x0 = np.zeros((5, 1))
    with pytest.raises(NeuralError, match="positive number"):
        nm.Integrator(0.0)
    with pytest.raises(NeuralError, match="brownian='virtual'"):
        nm.Integrator(0.1, adjoint=diffrax.BacksolveAdjoint(), brownian="grid")
    with pytest.raises(NeuralError, match="not on the grid"):
        nm.simulate(m, x0, [0.1, 0.25], key, integrator=integ, t0=0.0)
    with pytest.raises(NeuralError, match="strictly increasing"):
        nm.simulate(m, x0, [0.2, 0.1], key, integrator=integ)
    with pytest.raises(NeuralError, match=r"shape \[N, d\]"):
        nm.simulate(m, np.zeros(5), [0.1], key, integrator=integ)
    with pytest.raises(NeuralError, match="particle 2, coordinate 0"):
        nm.simulate(m, np.array([[0.0], [1.0], [np.nan]]), [0.1], key, integrator=integ)
    with pytest.raises(NeuralError, match="pass a key"):
        nm.simulate(m, x0, [0.1], None, integrator=integ)
    with pytest.raises(NeuralError, match="SDE solver"):
        nm.simulate(nm.ParticleSDE(nm.Feedback(minus_x)), x0, [0.1], integrator=nm.Integrator(0.1, diffrax.SRA1()))
    with pytest.raises(NeuralError, match="additive noise"):
        nm.simulate(nm.sir(1.0, 1.0, diffusion=nm.FluxDiffusion(3, [(0, 1)], 0.1)), np.full((2, 3), 1 / 3), [0.1],
                               key, integrator=nm.Integrator(0.1, diffrax.ShARK()))
    with pytest.raises(NeuralError, match="Itô"):
        nm.simulate(m, x0, [0.1], key, integrator=nm.Integrator(0.1, adjoint=diffrax.BacksolveAdjoint()))
    with pytest.raises(NeuralError, match="randomness"):
        nm.simulate(nm.el_farol(), x0, [1.0], key, integrator=nm.Integrator(1.0, adjoint=diffrax.BacksolveAdjoint()), t0=0.0)
    corr = eqx.filter_eval_shape(nm.AgentMLP, 1, covariates=2, key=key)  # shapes only: the checks read static fields
    with pytest.raises(NeuralError, match="takes 2 covariates"):
        nm.simulate(nm.ParticleSDE(None, corr), x0, [0.1, 0.2], integrator=integ, t0=0.0)
    with pytest.raises(NeuralError, match=r"shape \[T, C\]"):
        nm.simulate(nm.ParticleSDE(None, corr), x0, [0.1, 0.2], integrator=integ, t0=0.0, covariates=np.zeros((3, 2)))
    with pytest.raises(NeuralError, match="built for 4 agents"):
        nm.simulate(nm.ParticleSDE(None, eqx.filter_eval_shape(nm.PopulationMLP, 4, key=key)), x0, [0.1], integrator=integ)
    with pytest.raises(NeuralError, match="common_noise"):
        nm.ParticleSDE(common_noise=1.5)
    with pytest.raises(NeuralError, match="positive finite"):
        nm.ConstantDiffusion(-1.0)
    with pytest.raises(NeuralError, match="quantile levels"):
        nm.Quantile(1.5)
    with pytest.raises(NeuralError, match="edges"):
        eqx.filter_eval_shape(nm.FluxCorrection, 3, [(0, 3)], key=key)
    # data and losses
    with pytest.raises(NeuralError, match="clouds, statistics, or both"):
        nm.PathData([1.0], x0)
    with pytest.raises(NeuralError, match=r"dataset 1, time 0, point 2"):
        c = np.zeros((2, 1, 3, 1))
        c[1, 0, 2, 0] = np.inf
        nm.PathData([1.0], x0, clouds=c)
    with pytest.raises(NeuralError, match="stats: observed value is not finite at dataset 0, time 1, entry 0"):
        nm.PathData([1.0, 2.0], x0, stats=np.array([[[0.0], [np.nan]]]), stat_mask=np.ones(1, bool))
    with pytest.raises(NeuralError, match="cloud_weights must be >= 0"):
        nm.PathData([1.0], x0, clouds=np.zeros((1, 1, 2, 1)), cloud_weights=-np.ones((1, 1, 2)))
    with pytest.raises(NeuralError, match="x0 must have shape"):
        nm.PathData([1.0], np.zeros((3, 5, 1)), clouds=np.zeros((2, 1, 4, 1)))
    with pytest.raises(NeuralError, match="a statistic, a distance"):
        nm.PathLoss()
    with pytest.raises(NeuralError, match="bandwidths must be positive"):
        nm.MMD(0.0)
    with pytest.raises(NeuralError, match="epsilon"):
        nm.Sinkhorn(0.0)
    with pytest.raises(NeuralError, match="same d"):
        nm.mmd(jnp.zeros((3, 2)), jnp.zeros((3, 1)))
    data = nm.PathData([1.0], x0, clouds=np.zeros((2, 1, 4, 1)), t0=0.0)
    with pytest.raises(NeuralError, match="carry no stats"):
        nm.fit(m, data, loss=nm.PathLoss(statistic=nm.Mean()), integrator=integ, progress=False)
    with pytest.raises(NeuralError, match="selects no floating-point"):
        nm.fit(m, data, loss=nm.PathLoss(distance=nm.MMD()), integrator=integ, trainable=lambda m: m.drift, progress=False)
    with pytest.raises(NeuralError, match="patience needs a validation set"):
        nm.fit(m, data, loss=nm.PathLoss(distance=nm.MMD()), integrator=integ, patience=3, progress=False)
    with pytest.raises(NeuralError, match="steps must be an int"):
        nm.fit(m, data, loss=nm.PathLoss(distance=nm.MMD()), integrator=integ, steps=-1, progress=False)


def test_path_data_split_subset_and_observations():
    from mfgx.data import Observations

    y = np.full((5, 4, 3), np.nan)
    y[:, :, 1] = np.linspace(0.01, 0.05, 20).reshape(5, 4)
    obs = Observations(y, np.array([False, True, False]), times=np.arange(4.0), covariates=np.ones((5, 4, 1)),
                       metadata={"trajectories": [{"i": i} for i in range(5)]})
    data = nm.PathData.from_observations(obs, np.zeros((7, 3)))
    assert (data.n_datasets, data.n_times, data.dim) == (5, 4, 3)
    assert data.covariates.shape == (5, 4, 1) and bool(data.stat_mask[:, :, 1].all()) and not bool(data.stat_mask[:, :, 0].any())
    train, val = data.split(0.4, seed=1)
    assert train.n_datasets == 3 and val.n_datasets == 2
    ids = sorted(r["i"] for r in train.metadata["datasets"] + val.metadata["datasets"])
    assert ids == list(range(5))
    np.testing.assert_allclose(np.asarray(train.stats[:, :, 1]), y[[r["i"] for r in train.metadata["datasets"]], :, 1])
