"""mfgx.generative: the OT-Flow potential (closed-form gradient, exact Laplacian), the
characteristics (log-determinant, kinetic cost, HJB residual), and the CNF problem trained on
Gaussian data with a known density (held-out NLL against the truth, the linear OT map, the
kinetic cost against ½W₂², samples, inverse error), exact resume and refusal of changed settings."""

from __future__ import annotations

import math

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import mfgx
from mfgx import generative as g
from mfgx.generative import _fit as gfit
from mfgx.generative._problems import training_probes


def _perturbed(d, width, depth, seed=0, scale=0.3, dtype=None):
    """A potential with every parameter (w, b, c included) moved off its initialisation."""
    rng = np.random.default_rng(seed + 100)
    P = g.Potential(d, width, depth, key=jr.PRNGKey(seed), dtype=dtype)
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a) + scale * rng.standard_normal(a.shape), a.dtype), P)


# ---------------------------------------------------------------- potential


@pytest.mark.parametrize("d,width,depth", [(2, 8, 2), (2, 5, 4), (7, 16, 3)])
def test_gradient_and_exact_laplacian_match_autodiff(d, width, depth):
    P = _perturbed(d, width, depth, seed=d + width)

    @jax.jit
    def both(P, x, t):
        s = jnp.concatenate([x, t[None]])
        grad, lap = P.gradient_and_laplacian(x, t)
        auto = jax.grad(lambda s: P(s[:d], s[d]))(s)
        hess = jax.hessian(lambda y: P(y, t))(x)
        return grad, P.gradient(x, t), lap, auto, jnp.trace(hess)

    rng = np.random.default_rng(d)
    for t in (0.0, 0.37, 1.0):
        x = jnp.asarray(rng.standard_normal(d))
        grad, grad2, lap, auto, tr = both(P, x, jnp.asarray(t))
        np.testing.assert_allclose(grad, auto, rtol=0, atol=1e-10)
        np.testing.assert_allclose(grad2, auto, rtol=0, atol=1e-10)
        assert abs(float(lap) - float(tr)) < 1e-10 * max(1.0, abs(float(tr)))
    assert P.depth == depth and P.width == width and P.rank == min(10, d + 1)


def test_potential_float32_and_hutchinson():
    P = _perturbed(3, 8, 3, seed=1)
    P32 = jax.tree.map(lambda a: a.astype(jnp.float32), P)
    x, t = jnp.asarray(np.random.default_rng(2).standard_normal(3)), 0.5
    exact = jax.jit(lambda P, x, t: P.gradient_and_laplacian(x, t))
    grad, lap = exact(P, x, jnp.asarray(t))
    grad32, lap32 = exact(P32, x.astype(jnp.float32), jnp.float32(t))
    assert grad32.dtype == jnp.float32 and lap32.dtype == jnp.float32
    np.testing.assert_allclose(grad32, grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lap32, lap, rtol=1e-5)
    assert g.Potential(2, 4, key=jr.PRNGKey(0), dtype=jnp.float32).K0.dtype == jnp.float32
    # Hutchinson: unbiased for the exact Laplacian, with the same gradient
    eps = jnp.asarray(np.random.default_rng(3).choice([-1.0, 1.0], (20000, 3)))
    gh, est = jax.jit(jax.vmap(lambda e: P.hutchinson_laplacian(x, t, e)))(eps)
    np.testing.assert_allclose(gh[0], grad, atol=1e-12)
    se = float(jnp.std(est)) / math.sqrt(est.size)
    assert abs(float(jnp.mean(est)) - float(lap)) < 4 * se + 1e-12


def test_potential_bad_inputs():
    with pytest.raises(g.GenerativeError, match="depth"):
        g.Potential(2, 8, depth=1, key=jr.PRNGKey(0))
    with pytest.raises(g.GenerativeError, match="rank"):
        g.Potential(2, 8, rank=4, key=jr.PRNGKey(0))
    with pytest.raises(g.GenerativeError, match="dim"):
        g.Potential(0, key=jr.PRNGKey(0))
    P = g.Potential(2, 4, key=jr.PRNGKey(0))
    with pytest.raises(g.GenerativeError, match=r"shape \(2,\)"):
        P.gradient(jnp.zeros(3), 0.0)
    with pytest.raises(g.GenerativeError, match="scalar"):
        P.gradient(jnp.zeros(2), jnp.zeros(2))


# ---------------------------------------------------------------- characteristics


def test_characteristics_logdet_kinetic_hjb_and_inverse():
    P = _perturbed(2, 8, 2, seed=4, scale=0.2)
    x0 = np.random.default_rng(5).standard_normal((3, 2))
    alpha, n, h = 2.0, 16, 1e-5
    # the points and their central-difference neighbours, in one solve
    shifts = np.concatenate([np.zeros((1, 2)), h * np.eye(2), -h * np.eye(2)])  # [5, 2]
    c = g.characteristics(P, (x0[:, None] + shifts).reshape(-1, 2), alpha=alpha, n_steps=n, path=True)
    assert c.x.shape == (15, n + 1, 2) and c.logdet.shape == (15, n + 1) and c.ts.shape == (n + 1,)
    xT = np.asarray(c.x[:, -1]).reshape(3, 5, 2)
    c = jax.tree.map(lambda a: a[::5] if a.ndim > 1 else a, c)
    np.testing.assert_allclose(c.x[:, 0], x0, atol=0)
    # ℓ(T) = log |det ∂x(T)/∂x(0)|
    for i in range(3):
        J = (xT[i, 1:3] - xT[i, 3:5]).T / (2 * h)
        assert abs(np.linalg.slogdet(J)[1] - float(c.logdet[i, -1])) < 1e-5
    # L and R integrate ½|v|² and |−∂ₜΦ + α½|v|²| along the path (Simpson's rule on the saved grid)
    gr = jax.jit(jax.vmap(jax.vmap(P.gradient)))(c.x, jnp.broadcast_to(c.ts, (3, n + 1)))
    v = -gr[..., :2] / alpha
    kin = 0.5 * jnp.sum(v**2, -1)
    hjb = jnp.abs(-gr[..., 2] + alpha * kin)
    w = np.ones(n + 1)
    w[1:-1:2], w[2:-1:2] = 4, 2
    w *= (1.0 / n) / 3
    np.testing.assert_allclose(c.kinetic[:, -1], kin @ w, rtol=1e-4)
    np.testing.assert_allclose(c.hjb[:, -1], hjb @ w, rtol=5e-3)  # |·| has kinks
    # the backward flow inverts the forward one, and ℓ changes sign
    b = g.characteristics(P, c.x[:, -1], alpha=alpha, t0=1.0, t1=0.0, n_steps=n)
    np.testing.assert_allclose(b.x, x0, atol=1e-5)
    np.testing.assert_allclose(b.logdet, -c.logdet[:, -1], atol=1e-5)


def test_characteristics_other_solver_hutchinson_float32():
    P = _perturbed(2, 8, 2, seed=6, scale=0.2)
    x0 = np.random.default_rng(7).standard_normal((4, 2))
    rk4 = g.characteristics(P, x0, n_steps=32)
    tsit = g.characteristics(P, x0, n_steps=32, solver=diffrax.Tsit5())
    for a, b in zip((rk4.x, rk4.logdet, rk4.kinetic), (tsit.x, tsit.logdet, tsit.kinetic)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)  # RK4's error at 32 steps
    np.testing.assert_allclose(rk4.hjb, tsit.hjb, rtol=1e-3)  # |·| has kinks
    # Hutchinson: the same paths; the log-determinant unbiased (one probe per copy of one point)
    copies = np.tile(x0[:1], (4000, 1))
    h = g.characteristics(P, copies, n_steps=32, trace="hutchinson", key=jr.PRNGKey(8))
    np.testing.assert_allclose(h.x, jnp.tile(rk4.x[:1], (4000, 1)), atol=1e-12)
    se = float(jnp.std(h.logdet)) / math.sqrt(4000)
    assert abs(float(jnp.mean(h.logdet)) - float(rk4.logdet[0])) < 4 * se + 1e-9
    # the CNF's training terms with Hutchinson probes: same L and R, C unbiased
    cnf = g.CNF(n_steps=32, trace="hutchinson")
    probe = training_probes(cnf, jr.PRNGKey(9), 4000, 2, jnp.float64)
    L, C, R = cnf.terms(P, jnp.asarray(copies), probe=probe)
    C0 = 0.5 * float(rk4.x[0] @ rk4.x[0]) + math.log(2 * math.pi) - float(rk4.logdet[0])  # NLL, d = 2
    np.testing.assert_allclose(L, rk4.kinetic[0], rtol=1e-12)
    np.testing.assert_allclose(R, rk4.hjb[0], rtol=1e-12)
    assert abs(float(jnp.mean(C)) - C0) < 4 * float(jnp.std(C)) / math.sqrt(4000)
    # float32 end to end
    c32 = g.characteristics(jax.tree.map(lambda a: a.astype(jnp.float32), P), x0, n_steps=32)
    assert c32.x.dtype == jnp.float32 and c32.logdet.dtype == jnp.float32
    np.testing.assert_allclose(c32.x, rk4.x, atol=1e-4)
    np.testing.assert_allclose(c32.logdet, rk4.logdet, atol=1e-4)


def test_characteristics_bad_inputs():
    P = g.Potential(2, 4, key=jr.PRNGKey(0))
    with pytest.raises(g.GenerativeError, match="dimension 3"):
        g.characteristics(P, np.zeros((5, 3)))
    with pytest.raises(g.GenerativeError, match=r"shape \[n, d\]"):
        g.characteristics(P, np.zeros(2))
    with pytest.raises(g.GenerativeError, match="non-finite"):
        g.characteristics(P, np.array([[0.0, np.nan]]))
    with pytest.raises(g.GenerativeError, match="needs a key"):
        g.characteristics(P, np.zeros((1, 2)), trace="hutchinson")
    with pytest.raises(g.GenerativeError, match="trace"):
        g.characteristics(P, np.zeros((1, 2)), trace="bogus")
    with pytest.raises(g.GenerativeError, match="alpha"):
        g.characteristics(P, np.zeros((1, 2)), alpha=0.0)
    with pytest.raises(g.GenerativeError, match="solver"):
        g.characteristics(P, np.zeros((1, 2)), solver="rk4")
    with pytest.raises(g.GenerativeError, match="error estimate"):
        g.characteristics(P, np.zeros((1, 2)), stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6))


# ---------------------------------------------------------------- CNF on Gaussian data

MEAN = np.array([1.0, -0.5])
COV = np.array([[1.5, 0.6], [0.6, 0.5]])
PROBLEM = g.CNF(alpha_L=1.0, alpha_C=30.0, alpha_R=1.0, n_steps=4)
FIT = dict(batch_size=1024, learning_rate=0.1, lr_drop=2.0, drop_every=40, width=8, progress=False)


def _gaussian(n, seed):
    rng = np.random.default_rng(seed)
    return MEAN + rng.standard_normal((n, 2)) @ np.linalg.cholesky(COV).T


def _true_log_density(x):
    L = np.linalg.cholesky(COV)
    r = np.linalg.solve(L, (x - MEAN).T).T
    return -0.5 * np.sum(r**2, 1) - np.sum(np.log(np.diag(L))) - np.log(2 * np.pi)


@pytest.fixture(scope="module")
def data():
    return _gaussian(4000, 0), _gaussian(500, 1), _gaussian(2000, 2)


@pytest.fixture(scope="module")
def gaussian_fit(data):
    train, val, _ = data
    return g.fit(PROBLEM, train, key=jr.PRNGKey(0), steps=150, val=val, eval_every=75, eval_batch_size=500, **FIT)


def test_cnf_recovers_gaussian(gaussian_fit, data):
    _, _, test = data
    flow = gaussian_fit.model
    assert gaussian_fit.steps_run == 150 and gaussian_fit.selected_on == "validation"
    assert gaussian_fit.best_step in (75, 150)
    # held-out NLL: the gap to the true density (paired) is KL(data ‖ model) ≥ 0, and small
    logp = np.asarray(g.log_density(flow, test))
    gap = float(np.mean(_true_log_density(test) - logp))
    entropy = 0.5 * np.log(np.linalg.det(2 * np.pi * np.e * COV))
    assert -0.02 < gap < 0.05, gap
    assert abs(-logp.mean() - entropy) < 0.1
    # the flow is the linear OT map x ↦ Σ^{-1/2}(x − m) (up to the KL penalty's small bias)
    w, V = np.linalg.eigh(COV)
    whiten = V @ np.diag(w**-0.5) @ V.T
    z = np.asarray(g.characteristics(flow.potential, test, t1=PROBLEM.T, n_steps=PROBLEM.n_steps).x)
    assert np.mean(np.abs(z - (test - MEAN) @ whiten)) < 0.1
    # kinetic cost ≈ ½W₂²(N(m, Σ), N(0, I)) = ½(|m|² + tr(Σ + I − 2Σ^{1/2}))
    half_w2 = 0.5 * (MEAN @ MEAN + np.trace(COV + np.eye(2) - 2 * V @ np.diag(np.sqrt(w)) @ V.T))
    ev = g.evaluate(flow, test, batch_size=500)
    assert abs(ev["L"] - half_w2) < 0.1 * half_w2, (ev["L"], half_w2)
    assert abs(ev["nll"] + logp.mean()) < 1e-8
    # samples by the inverse flow
    s = np.asarray(g.sample(flow, jr.PRNGKey(5), 4000))
    np.testing.assert_allclose(s.mean(0), MEAN, atol=0.1)
    np.testing.assert_allclose(np.cov(s.T), COV, atol=0.15)
    assert g.inverse_error(flow, test[:500]) < 1e-4


def test_fit_resumes_bitwise_and_reuses_the_compiled_step(gaussian_fit, data, tmp_path):
    train, val, _ = data
    traces = gfit._TRACES["train"]
    kw = dict(key=jr.PRNGKey(0), val=val, eval_every=2, eval_batch_size=500, checkpoint_every=2, **FIT)
    whole = g.fit(PROBLEM, train, steps=5, checkpoint_dir=tmp_path / "a", **kw)
    g.fit(PROBLEM, train, steps=3, checkpoint_dir=tmp_path / "b", **kw)
    resumed = g.fit(PROBLEM, train, steps=5, checkpoint_dir=tmp_path / "b", **kw)
    assert gfit._TRACES["train"] == traces  # same shapes and settings: no retrace
    for a, b in zip(jax.tree.leaves(whole.final_model), jax.tree.leaves(resumed.final_model)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(whole.history)[3:] == strip(resumed.history)[3:] and resumed.steps_run == 5
    assert [r["step"] for r in resumed.history] == [1, 2, 3, 4, 5]
    # changed settings refuse to resume
    for problem, extra in [
        (g.CNF(alpha_L=1.0, alpha_C=31.0, alpha_R=1.0, n_steps=4), {}),
        (PROBLEM, {"batch_size": 128}),
    ]:
        with pytest.raises(g.GenerativeError, match="settings"):
            g.fit(problem, train, steps=5, checkpoint_dir=tmp_path / "b", **{**kw, **extra})
    with pytest.raises(g.GenerativeError, match="settings"):
        g.fit(PROBLEM, train[:-1], steps=5, checkpoint_dir=tmp_path / "b", **kw)
    # resume=False starts over in the same folder
    again = g.fit(PROBLEM, train, steps=5, checkpoint_dir=tmp_path / "b", resume=False, **kw)
    for a, b in zip(jax.tree.leaves(whole.final_model), jax.tree.leaves(again.final_model)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_cnf_and_fit_bad_inputs(data):
    train, _, _ = data
    for bad in (dict(alpha_L=0.0), dict(alpha_C=-1.0), dict(T=math.inf), dict(n_steps=0), dict(trace="nope")):
        with pytest.raises(g.GenerativeError):
            g.CNF(**bad)
    with pytest.raises(g.GenerativeError, match="non-finite"):
        g.fit(PROBLEM, np.array([[0.0, np.inf]] * 4), key=jr.PRNGKey(0), steps=1, progress=False)
    with pytest.raises(g.GenerativeError, match=r"shape \[n, d\]"):
        g.fit(PROBLEM, train[:, 0], key=jr.PRNGKey(0), steps=1, progress=False)
    with pytest.raises(g.GenerativeError, match="dimension 2 but the potential has dimension 3"):
        g.fit(PROBLEM, train, key=jr.PRNGKey(0), steps=1, potential=g.Potential(3, 4, key=jr.PRNGKey(0)), progress=False)
    with pytest.raises(g.GenerativeError, match="val has dimension"):
        g.fit(PROBLEM, train, key=jr.PRNGKey(0), steps=1, val=np.zeros((3, 3)), progress=False)
    with pytest.raises(g.GenerativeError, match="patience"):
        g.fit(PROBLEM, train, key=jr.PRNGKey(0), steps=1, patience=2, progress=False)
    with pytest.raises(g.GenerativeError, match="Flow"):
        g.log_density(g.Potential(2, 4, key=jr.PRNGKey(0)), train)
    assert mfgx.generative is g


@pytest.mark.slow
def test_characteristics_adaptive_solver():
    P = _perturbed(2, 8, 2, seed=6, scale=0.2)
    x0 = np.random.default_rng(7).standard_normal((4, 2))
    rk4 = g.characteristics(P, x0, n_steps=64)
    dopri = g.characteristics(
        P, x0, solver=diffrax.Dopri5(), stepsize_controller=diffrax.PIDController(rtol=1e-9, atol=1e-9)
    )
    for a, b in zip((rk4.x, rk4.logdet, rk4.kinetic), (dopri.x, dopri.logdet, dopri.kinetic)):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(rk4.hjb, dopri.hjb, rtol=1e-3)  # |·| has kinks
