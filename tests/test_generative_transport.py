"""mfgx.generative DynamicOT and CrowdMotion on the shared engine and training loop: the running
cost carried along the characteristics, dynamic OT between Gaussians against the closed forms
(½W₂² and the affine Brenier map on held-out samples), crowd motion around an obstacle against the
straight-line baseline, resume and refusal of a changed target, and errors naming the problem."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from mfgx import generative as g
from mfgx.generative import _fit as gfit
from mfgx.generative import datasets as gd
from mfgx.generative import metrics as gm

# ---------------------------------------------------------------- running cost on the engine


def test_characteristics_carry_a_running_cost():
    rng = np.random.default_rng(0)
    P = jax.tree.map(lambda a: a + 0.2 * jnp.asarray(rng.standard_normal(a.shape)), g.Potential(2, 8, key=jr.PRNGKey(1)))
    x0 = rng.standard_normal((3, 2))
    lp0 = jnp.asarray(rng.standard_normal(3))
    ob = g.Obstacle(height=2.0, center=(0.5, 0.0), widths=(1.0, 0.7))
    c_, w = 0.3, 1.7

    def running(x, t, log_rho):  # f = Q + c log ρ, f′ = w(Q + c(log ρ + 1))
        q = ob(x)
        return q + c_ * log_rho, w * (q + c_ * (log_rho + 1.0))

    n, alpha = 16, 1.5
    c = g.characteristics(P, x0, alpha=alpha, n_steps=n, path=True, running=running, logp0=lp0)
    plain = g.characteristics(P, x0, alpha=alpha, n_steps=n, path=True)
    np.testing.assert_allclose(c.x, plain.x, atol=0)  # the running cost does not move the agents
    np.testing.assert_allclose(c.logdet, plain.logdet, atol=0)
    assert plain.running is None and c.running.shape == (3, n + 1)
    # F = ∫ Q(x) + c(log ρ₀ − ℓ) dt and R = ∫|−∂ₜΦ + α½|v|² − f′| dt (Simpson on the saved grid)
    simpson = np.ones(n + 1)
    simpson[1:-1:2], simpson[2:-1:2] = 4, 2
    simpson *= (1.0 / n) / 3
    log_rho = lp0[:, None] - c.logdet
    f = ob(c.x) + c_ * log_rho
    np.testing.assert_allclose(c.running[:, -1], f @ simpson, rtol=1e-5)
    gr = jax.jit(jax.vmap(jax.vmap(P.gradient)))(c.x, jnp.broadcast_to(c.ts, (3, n + 1)))
    kin = 0.5 * jnp.sum((gr[..., :2] / alpha) ** 2, -1)
    res = jnp.abs(-gr[..., 2] + alpha * kin - w * (ob(c.x) + c_ * (log_rho + 1.0)))
    np.testing.assert_allclose(c.hjb[:, -1], res @ simpson, rtol=5e-3)
    with pytest.raises(g.GenerativeError, match="logp0"):
        g.characteristics(P, x0, running=running, logp0=jnp.zeros(2))


# ---------------------------------------------------------------- dynamic OT between Gaussians

M0, S0 = np.array([1.0, -0.5]), np.array([[1.5, 0.6], [0.6, 0.5]])
M1, S1 = np.array([-0.5, 1.0]), np.array([[0.4, -0.1], [-0.1, 0.9]])
SOURCE, TARGET = gd.gaussian(M0, S0), gd.gaussian(M1, S1)
OT = g.DynamicOT(TARGET, SOURCE, alpha_L=1.0, alpha_G=30.0, alpha_R=1.0, alpha_RT=1.0, n_steps=4)
FIT = dict(batch_size=1024, learning_rate=0.1, lr_drop=2.0, drop_every=40, width=8, progress=False)


def _source(n, seed):
    return M0 + np.random.default_rng(seed).standard_normal((n, 2)) @ np.linalg.cholesky(S0).T


@pytest.fixture(scope="module")
def ot_data():
    return _source(4000, 10), _source(500, 11), _source(2000, 12)


@pytest.fixture(scope="module")
def ot_fit(ot_data):
    train, val, _ = ot_data
    return g.fit(OT, train, key=jr.PRNGKey(0), steps=150, val=val, eval_every=75, eval_batch_size=500, **FIT)


def test_dynamic_ot_recovers_gaussian_transport(ot_fit, ot_data):
    _, _, test = ot_data
    flow = ot_fit.model
    ev = g.evaluate(flow, test, batch_size=500)
    assert set(ev) == {"loss", "L", "G", "R", "RT"}
    # kinetic cost ≈ ½W₂²(ρ₀, ρ₁)/T (the KL penalty's bias is small at α_G = 30)
    half_w2 = 0.5 * gm.gaussian_w2(M0, S0, M1, S1)
    assert abs(ev["L"] - half_w2) < 0.1 * half_w2, (ev["L"], half_w2)
    # E[G] = KL(ρ_T ‖ ρ₁) (with the source density): small; never much below 0
    assert -0.05 < ev["G"] < 0.1
    # the learned map is the affine Brenier map on held-out samples
    A, b = gm.gaussian_ot_map(M0, S0, M1, S1)
    z = np.asarray(g.transport(flow, test))
    err = np.linalg.norm(z - (test @ A.T + b), axis=1)
    assert np.mean(err) < 0.15, np.mean(err)
    # and its image is the target law (exact W₂ between samples, against the sampling noise floor)
    y = np.asarray(TARGET.sample(jr.PRNGKey(3), 1000))
    floor = gm.wasserstein(np.asarray(TARGET.sample(jr.PRNGKey(4), 1000)), y)
    assert gm.wasserstein(z[:1000], y) < 2 * floor + 0.05
    # straight paths: the kinetic cost equals ½|x(T) − x(0)|² up to the residual curvature
    assert ev["L"] < 1.1 * np.mean(0.5 * np.sum((z - test) ** 2, 1))
    # the inverse flow goes back
    np.testing.assert_allclose(g.inverse(flow, z[:200]), test[:200], atol=1e-3)
    with pytest.raises(g.GenerativeError, match="needs a CNF"):
        g.log_density(flow, test)


def test_dynamic_ot_resume_and_changed_target(ot_fit, ot_data, tmp_path):
    train, val, _ = ot_data
    kw = dict(key=jr.PRNGKey(0), val=val, eval_every=2, eval_batch_size=500, checkpoint_every=2, **FIT)
    traces = gfit._TRACES["train"]
    whole = g.fit(OT, train, steps=4, checkpoint_dir=tmp_path / "a", **kw)
    g.fit(OT, train, steps=2, checkpoint_dir=tmp_path / "b", **kw)
    resumed = g.fit(OT, train, steps=4, checkpoint_dir=tmp_path / "b", **kw)
    for a, b in zip(jax.tree.leaves(whole.final_model), jax.tree.leaves(resumed.final_model)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert set(resumed.history[-1]) >= {"L", "G", "R", "RT", "val"}
    assert gfit._TRACES["train"] == traces  # the fixture's compiled step serves every fit
    moved = g.DynamicOT(gd.gaussian(M1 + 0.1, S1), SOURCE, alpha_L=1.0, alpha_G=30.0, alpha_R=1.0, alpha_RT=1.0, n_steps=4)
    with pytest.raises(g.GenerativeError, match="settings"):
        g.fit(moved, train, steps=4, checkpoint_dir=tmp_path / "b", **kw)


@pytest.mark.slow
def test_dynamic_ot_gaussians_in_dimension_10():
    d = 10
    rng = np.random.default_rng(0)
    m0, m1 = 0.5 * rng.standard_normal(d), 0.5 * rng.standard_normal(d)
    B0, B1 = rng.standard_normal((2, d, d)) / np.sqrt(d)
    S0_, S1_ = 0.6 * np.eye(d) + 0.5 * B0 @ B0.T, 0.4 * np.eye(d) + 0.5 * B1 @ B1.T
    src, tgt = gd.gaussian(m0, S0_), gd.gaussian(m1, S1_)
    train, test = np.asarray(src.sample(jr.PRNGKey(0), 4000)), np.asarray(src.sample(jr.PRNGKey(2), 2000))
    problem = g.DynamicOT(tgt, src, alpha_L=1.0, alpha_G=30.0, alpha_R=1.0, alpha_RT=1.0, n_steps=4)
    fit = g.fit(problem, train, key=jr.PRNGKey(0), steps=300, batch_size=1024, learning_rate=0.05, drop_every=75, width=32, progress=False)
    ev = g.evaluate(fit.model, test, batch_size=1000)
    half_w2 = 0.5 * gm.gaussian_w2(m0, S0_, m1, S1_)
    assert abs(ev["L"] - half_w2) < 0.1 * half_w2, (ev["L"], half_w2)  # measured: −7 %
    assert ev["G"] < 0.15
    A, b = gm.gaussian_ot_map(m0, S0_, m1, S1_)
    exact = test @ A.T + b
    err = np.mean(np.linalg.norm(np.asarray(g.transport(fit.model, test)) - exact, axis=1))
    assert err < 0.1 * np.mean(np.linalg.norm(exact - m1, axis=1))  # measured: 7 %


# ---------------------------------------------------------------- crowd motion around an obstacle


def test_crowd_motion_avoids_the_obstacle():
    d = 2
    m0 = np.zeros(d)
    m0[1] = 3.0
    src, tgt = gd.gaussian(m0, 0.3 * np.eye(d)), gd.gaussian(-m0, 0.3 * np.eye(d))
    # MFGnet's problem (obstacle, congestion, weights) except α_G = 20 (5 needs MFGnet's 1250
    # BFGS iterations to arrive; here 200 Adam steps)
    crowd = g.CrowdMotion(tgt, src, alpha_G=20.0)
    train = np.asarray(src.sample(jr.PRNGKey(0), 2000))
    test = np.asarray(src.sample(jr.PRNGKey(1), 1000))
    fit = g.fit(crowd, train, key=jr.PRNGKey(0), steps=150, batch_size=512, learning_rate=0.05, drop_every=75, width=16, progress=False)
    last = fit.history[-1]
    assert set(last) >= {"loss", "L", "F", "G", "R", "RT"}
    # obstacle cost ∫Q(x(t)) dt along the learned paths vs the straight lines x + t(m₁ − m₀)
    n = 16
    c = g.characteristics(fit.model.potential, test, alpha=crowd.alpha_L, n_steps=n, path=True)
    trap = np.full(n + 1, 1.0 / n)
    trap[[0, -1]] /= 2
    learned = float(np.mean(np.asarray(crowd.obstacle(c.x)) @ trap))
    ts = np.linspace(0, 1, n + 1)
    straight = test[:, None] + ts[None, :, None] * (-2 * m0)
    baseline = float(np.mean(np.asarray(crowd.obstacle(jnp.asarray(straight))) @ trap))
    assert learned < 0.8 * baseline, (learned, baseline)
    # the detour costs kinetic energy above the straight line's ½W₂² = 18, but less in total
    kinetic = float(jnp.mean(c.kinetic[:, -1]))
    assert 0.95 * 18.0 < kinetic and kinetic + learned < 18.0 + baseline
    # and the crowd arrives: terminal mean near the target's
    zT = np.asarray(c.x[:, -1])
    np.testing.assert_allclose(zT.mean(0), -m0, atol=0.4)
    assert last["G"] < 0.5


# ---------------------------------------------------------------- errors


def test_transport_problems_bad_inputs():
    with pytest.raises(g.GenerativeError, match="source density"):
        g.DynamicOT(TARGET)  # alpha_RT > 0 by default
    with pytest.raises(g.GenerativeError, match="log_prob"):
        g.DynamicOT(M1, alpha_RT=0.0)
    with pytest.raises(g.GenerativeError, match="dimension 3"):
        g.DynamicOT(TARGET, gd.gaussian(np.zeros(3)))
    with pytest.raises(g.GenerativeError, match="congestion"):
        g.CrowdMotion(TARGET, alpha_RT=0.0)
    with pytest.raises(g.GenerativeError, match="obstacle acts on 2"):
        g.CrowdMotion(gd.gaussian([0.0]), gd.gaussian([1.0]))
    with pytest.raises(g.GenerativeError, match="widths"):
        g.Obstacle(widths=(1.0, 0.0))
    with pytest.raises(g.GenerativeError, match="alpha_G"):
        g.DynamicOT(TARGET, SOURCE, alpha_G=-1.0)
    ot = g.DynamicOT(TARGET, alpha_RT=0.0)
    with pytest.raises(g.GenerativeError, match="the data have dimension 3"):
        g.fit(ot, np.zeros((10, 3)), key=jr.PRNGKey(0), steps=1, progress=False)
    with pytest.raises(g.GenerativeError, match="problem must be"):
        g.fit("ot", np.zeros((10, 2)), key=jr.PRNGKey(0), steps=1, progress=False)


# ---------------------------------------------------------------- JKO: the Ornstein–Uhlenbeck flow


@pytest.mark.slow
def test_jko_chain_follows_the_gaussian_closed_forms(tmp_path):
    # ℰ = KL(· ‖ N(0, I)): Fokker–Planck of the OU process; from a Gaussian each JKO step is Gaussian
    # with the closed form `gaussian_jko_step`. Σ₀ > I (a contracting flow; see the report on
    # expanding ones) and two steps of τ = 0.25.
    m0, S0, tau = np.array([2.0, -1.0]), np.array([[3.0, 0.5], [0.5, 2.0]]), 0.25
    src = gd.gaussian(m0, S0)
    x0 = np.asarray(src.sample(jr.PRNGKey(0), 2000))
    step = g.JKOStep((g.KL(gd.gaussian(np.zeros(2))),), tau=tau, n_steps=4)
    kw = dict(n_jko=2, key=jr.PRNGKey(1), logp0=src.log_prob(x0), steps=150, batch_size=1000, learning_rate=0.1, drop_every=100, width=8)
    res = g.gradient_flow(step, x0, checkpoint_dir=tmp_path, **kw)
    # a rerun resumes every step from its checkpoint and ends at the same particles, bitwise
    again = g.gradient_flow(step, x0, checkpoint_dir=tmp_path, **kw)
    assert np.array_equal(res.particles, again.particles) and all(f.steps_run == 150 for f in again.fits)
    assert res.particles.shape == (3, 2000, 2) and np.allclose(res.times, [0, 0.25, 0.5])
    # against the exact JKO recursion from the sample's own moments (no sampling noise)
    m, S = x0.mean(0), np.cov(x0.T)
    for k in (1, 2):
        m, S = g.gaussian_jko_step(m, S, tau)
        x = res.particles[k]
        np.testing.assert_allclose(x.mean(0), m, atol=0.02 * np.linalg.norm(m))
        np.testing.assert_allclose(np.cov(x.T), S, atol=0.03 * np.linalg.norm(S, 2))
    # against Ornstein–Uhlenbeck at t = 2τ (JKO is first order in τ: a few % apart at τ = 0.25)
    t = 2 * tau
    m_ou = np.exp(-t) * x0.mean(0)
    S_ou = np.exp(-2 * t) * np.cov(x0.T) + (1 - np.exp(-2 * t)) * np.eye(2)
    np.testing.assert_allclose(res.particles[2].mean(0), m_ou, atol=0.06 * np.linalg.norm(m_ou))
    np.testing.assert_allclose(np.cov(res.particles[2].T), S_ou, atol=0.08 * np.linalg.norm(S_ou, 2))
    # the particles' log-densities follow ρ_k (here Gaussian): compare with the exact JKO density
    gk = gd.gaussian(m, S)
    lp = res.log_density[2]
    assert np.mean(np.abs(lp - np.asarray(gk.log_prob(res.particles[2])))) < 0.1
    # the energy decreases along the flow
    kl = [np.mean(lp_k - np.asarray(gd.gaussian(np.zeros(2)).log_prob(x_k))) for lp_k, x_k in zip(res.log_density, res.particles)]
    assert kl[0] > kl[1] > kl[2]


def test_jko_bad_inputs():
    with pytest.raises(g.GenerativeError, match="energies"):
        g.JKOStep(g.KL(TARGET))
    with pytest.raises(g.GenerativeError, match="tau"):
        g.JKOStep((g.KL(TARGET),), tau=0.0)
    with pytest.raises(g.GenerativeError, match="KL target has dimension 2"):
        g.fit(g.JKOStep((g.KL(TARGET),)), np.zeros((10, 3)), key=jr.PRNGKey(0), steps=1, progress=False)
    with pytest.raises(g.GenerativeError, match="JKOStep"):
        g.gradient_flow(OT, np.zeros((10, 2)), n_jko=1, key=jr.PRNGKey(0))
    # the other energies: per-sample terms of a potential and an interaction energy
    z = jnp.asarray(np.random.default_rng(0).standard_normal((5, 2)))
    pe = g.PotentialEnergy(lambda x: 0.5 * x @ x)
    ie = g.InteractionEnergy(lambda r: r @ r)
    np.testing.assert_allclose(pe(z, None), 0.5 * np.sum(np.asarray(z) ** 2, 1))
    D = np.sum((np.asarray(z)[:, None] - np.asarray(z)[None]) ** 2, -1)
    np.testing.assert_allclose(ie(z, None), 0.5 * D.sum(1) / 4)
