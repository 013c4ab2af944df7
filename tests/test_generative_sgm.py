"""mfgx.generative score-based models (science note generative_lab.md §3, §7): closed-form SDE
kernels (moment ODEs and Monte Carlo), the HJB residual of the exact Gaussian log-density and score
(≈ 0) against perturbed ones (not), the model forms' residuals against autodiff, PF-ODE likelihood
of the exact score against the exact NLL, sampling moments, DSM recovering a Gaussian's score, the
regulariser lowering the residual, exact resume and refusal of changed settings."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import mfgx  # noqa: F401  (float64)
from mfgx import generative as g
from mfgx.generative import datasets

MU = jnp.array([1.0, -0.5])
COV = jnp.array([[1.0, 0.3], [0.3, 0.5]])
SDES = [g.VP(), g.SubVP(), g.VE()]


def _exact(sde, cov=COV, log_p=True, factor=1.0):
    return g.GaussianScore(sde, MU, cov, factor, form="potential" if log_p else "direct")


def _forward_samples(sde, n, seed, tmin=0.01):
    x0 = datasets.gaussian(MU, COV).sample(jr.PRNGKey(seed), n)
    t = jr.uniform(jr.PRNGKey(seed + 1), (n,), minval=tmin, maxval=1.0)
    return sde.perturb(x0, t[:, None], jr.normal(jr.PRNGKey(seed + 2), (n, 2))), t


# ---------------------------------------------------------------- SDEs


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_kernel_solves_moment_odes(sde):
    """dm/dt = a m and d(σ²)/dt = 2aσ² + g², m(0) = 1, σ(0) = 0, to round-off."""
    m0, s0 = sde.marginal(jnp.asarray(0.0))
    assert abs(float(m0) - 1) < 1e-14 and abs(float(s0)) < 1e-14
    for t in (1e-3, 0.2, 0.7, 1.0):
        t = jnp.asarray(t)
        m, s = sde.marginal(t)
        dm = jax.grad(lambda u: sde.marginal(u)[0])(t)
        dv = jax.grad(lambda u: sde.marginal(u)[1] ** 2)(t)
        a, g2 = sde.drift_coef(t), sde.g2(t)
        np.testing.assert_allclose(float(dm), float(a * m), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(float(dv), float(2 * a * s**2 + g2), rtol=1e-10)


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_kernel_matches_monte_carlo(sde):
    """Euler–Maruyama paths of the forward SDE from x₀ (fine grid) against N(m x₀, σ²I)."""
    x0, t, K, n = jnp.array([1.0, -2.0]), 0.5, 400, 8000
    dt = t / K
    key = jr.PRNGKey(0)

    def body(x, i):
        tt = i * dt
        return x + sde.drift_coef(tt) * x * dt + jnp.sqrt(sde.g2(tt) * dt) * jr.normal(jr.fold_in(key, i), x.shape), None

    x, _ = jax.lax.scan(body, jnp.tile(x0, (n, 1)), jnp.arange(K))
    m, s = sde.marginal(jnp.asarray(t))
    se = float(s) / math.sqrt(n)
    np.testing.assert_allclose(np.asarray(x.mean(0)), np.asarray(m * x0), atol=5 * se + 2e-3 * float(jnp.abs(x0).max()))
    np.testing.assert_allclose(np.asarray(x.std(0)), float(s), rtol=0.03)
    # a wrong kernel is caught: σ off by 10 % is outside the tolerance
    assert np.all(np.abs(np.asarray(x.std(0)) / (1.1 * float(s)) - 1) > 0.03)


def test_sde_settings_are_checked():
    with pytest.raises(g.GenerativeError, match="beta_min"):
        g.VP(beta_min=-1.0)
    with pytest.raises(g.GenerativeError, match="sigma_max"):
        g.VE(sigma_min=5.0, sigma_max=1.0)
    with pytest.raises(g.GenerativeError, match="weighting"):
        g.SGM(g.VP(), weighting="bogus")
    with pytest.raises(g.GenerativeError, match="lambda_hjb"):
        g.SGM(g.VP(), lambda_hjb=-1.0)
    with pytest.raises(g.GenerativeError, match="sde"):
        g.SGM("VP")


# ---------------------------------------------------------------- HJB residual


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("form", ["potential", "direct"])
def test_hjb_residual_of_exact_log_density_vanishes(sde, form):
    x, t = _forward_samples(sde, 64, 3)
    R = g.hjb_residual(_exact(sde, log_p=form == "potential"), sde, x, t)
    g2max = float(jax.vmap(sde.g2)(t).max())
    assert float(jnp.max(jnp.abs(R))) < 1e-10 * max(1.0, g2max)
    # another Gaussian's log-density (covariance 1.2Σ) solves the same equation: the residual does
    # not see the data, only the PDE (DSM pins the data)
    R2 = g.hjb_residual(_exact(sde, cov=1.2 * COV, log_p=form == "potential"), sde, x, t)
    assert float(jnp.max(jnp.abs(R2))) < 1e-10 * max(1.0, g2max)
    # a perturbed one (log-density and score off by 10 %) does not
    Rb = g.hjb_residual(_exact(sde, log_p=form == "potential", factor=1.1), sde, x, t)
    assert float(jnp.sqrt(jnp.mean(Rb**2))) > 1e-2


def _perturbed(model, seed, scale=0.2):
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda a: a + scale * jnp.asarray(rng.standard_normal(a.shape), a.dtype) if isinstance(a, jax.Array) else a, model
    )


@pytest.mark.parametrize("form", ["potential", "direct"])
def test_model_residual_matches_autodiff_and_hutchinson_is_unbiased(form):
    """The models' residuals (closed-form Laplacian for the potential, autodiff for the direct
    net) against an autodiff reference, and the Hutchinson residual's mean over probes."""
    sde, d = g.VP(), 3
    if form == "potential":
        model = _perturbed(g.PotentialScore(d, 8, 3, key=jr.PRNGKey(1)), 2)
        ref = g.ExactScore(model.score, model.log_density, d)
    else:
        model = g.ScoreNet(d, 16, 2, key=jr.PRNGKey(1))
        ref = g.ExactScore(model.score, None, d)
        # ExactScore's direct formula is ScoreNet's: check it against a hand-written gradient
        x0, t0 = jnp.array([0.3, -0.2, 0.5]), jnp.asarray(0.4)
        a, g2 = sde.drift_coef(t0), sde.g2(t0)

        @jax.jit
        def by_hand(x0, t0):
            def phi(y):
                s = model.score(y, t0)
                return a * (y @ s) - 0.5 * g2 * (jnp.trace(jax.jacrev(model.score)(y, t0)) + s @ s)

            return model.hjb_residual(sde, x0, t0), jax.jacfwd(model.score, argnums=1)(x0, t0) + jax.grad(phi)(x0)

        mine, hand = by_hand(x0, t0)
        np.testing.assert_allclose(mine, hand, rtol=1e-9, atol=1e-10)
    x = jr.normal(jr.PRNGKey(5), (6, d))
    t = jnp.linspace(0.05, 0.95, 6)
    R, Rref = g.hjb_residual(model, sde, x, t), g.hjb_residual(ref, sde, x, t)
    np.testing.assert_allclose(R, Rref, rtol=1e-8, atol=1e-9)
    n = 2000
    probes = jr.rademacher(jr.PRNGKey(7), (n, d), x.dtype)
    Rh = jax.vmap(lambda e: g.hjb_residual(model, sde, x[:2], t[:2], jnp.stack([e, e])))(probes)
    np.testing.assert_allclose(Rh.mean(0), R[:2], atol=5 * float(Rh.std(0).max()) / math.sqrt(n) + 1e-9)


# ---------------------------------------------------------------- likelihood and sampling


def test_pf_ode_nll_of_exact_score_equals_true_nll():
    sde = g.VP()
    model = _exact(sde)
    gm = datasets.gaussian(MU, COV)
    x = gm.sample(jr.PRNGKey(3), 8)
    eps = 1e-5
    truth = jax.vmap(lambda y: model.log_density(y, eps))(x)
    # with the exact p_T as the prior: the identity holds to ODE tolerance
    ll = g.log_likelihood(model, sde, x, eps=eps, prior_log_prob=lambda y: model.log_density(y, sde.T))
    np.testing.assert_allclose(ll, truth, atol=2e-4)
    # with the default prior N(0, I): off only by log p_T − log N(0, I) (α_T ≈ 0.0066)
    nll = g.sgm_nll(model, sde, x, eps=eps)
    assert abs(nll + float(truth.mean())) < 5e-3
    assert abs(nll + float(gm.log_prob(x).mean())) < 5e-3
    np.testing.assert_allclose(g.bits_per_dim(model, sde, x, eps=eps), nll / (2 * math.log(2)), rtol=1e-12)
    # a wrong score gives a clearly wrong likelihood
    wrong = _exact(sde, cov=1.5 * COV)
    assert abs(g.sgm_nll(wrong, sde, x, eps=eps) - nll) > 0.05


def test_sampling_with_exact_score_reproduces_moments():
    sde = g.VP()
    model = _exact(sde)
    for xs, n in (
        (g.sample_sde(model, sde, jr.PRNGKey(4), 4000, n_steps=200), 4000),
        (g.sample_ode(model, sde, jr.PRNGKey(5), 2000), 2000),
    ):
        np.testing.assert_allclose(xs.mean(0), MU, atol=4 * math.sqrt(1.0 / n) + 0.01)
        np.testing.assert_allclose(jnp.cov(xs.T), COV, atol=0.08)


# ---------------------------------------------------------------- training


def _rel_err(model, sde):
    xt, t = _forward_samples(sde, 512, 11)
    true = jax.vmap(_exact(sde).score)(xt, t)
    est = jax.vmap(model.score)(xt, t)
    return float(jnp.sqrt(jnp.mean(jnp.sum((est - true) ** 2, -1)) / jnp.mean(jnp.sum(true**2, -1))))


def _mean_hjb(model, sde):
    xt, t = _forward_samples(sde, 256, 21)
    R = g.hjb_residual(model, sde, xt, t)
    return float(jnp.mean(jnp.sum(R**2, -1)))


_DSM = dict(key=jr.PRNGKey(0), model="direct", width=32, depth=2, steps=400, batch_size=256, learning_rate=3e-3, progress=False)


def test_dsm_recovers_gaussian_score():
    sde = g.VP()
    data = datasets.gaussian(MU, COV).sample(jr.PRNGKey(3), 4000)
    init = g.ScoreNet(2, 32, 2, key=jr.split(jr.PRNGKey(0))[0])
    plain = g.fit_sgm(g.SGM(sde), data, **_DSM)
    assert _rel_err(init, sde) > 0.5
    assert _rel_err(plain.model, sde) < 0.2


@pytest.mark.slow
def test_hjb_regulariser_lowers_residual_and_keeps_the_score():
    sde = g.VP()
    data = datasets.gaussian(MU, COV).sample(jr.PRNGKey(3), 4000)
    plain = g.fit_sgm(g.SGM(sde), data, **_DSM)
    reg = g.fit_sgm(g.SGM(sde, lambda_hjb=0.1), data, **_DSM)
    assert "hjb" in reg.history[-1]
    assert _rel_err(reg.model, sde) < 0.3
    assert _mean_hjb(reg.model, sde) < 0.25 * _mean_hjb(plain.model, sde)


def test_fit_sgm_resumes_exactly_and_refuses_changed_settings(tmp_path):
    sde = g.VP()
    data = datasets.gaussian(MU, COV).sample(jr.PRNGKey(3), 200)
    val = datasets.gaussian(MU, COV).sample(jr.PRNGKey(4), 64)
    problem = g.SGM(sde, lambda_hjb=0.05, divergence="hutchinson")
    kw = dict(key=jr.PRNGKey(1), model="direct", width=8, depth=1, batch_size=32, progress=False, val=val, eval_every=3, checkpoint_every=2)
    full = g.fit_sgm(problem, data, steps=6, **kw)
    g.fit_sgm(problem, data, steps=3, checkpoint_dir=tmp_path, **kw)
    resumed = g.fit_sgm(problem, data, steps=6, checkpoint_dir=tmp_path, **kw)
    assert resumed.steps_run == 6 and len(resumed.history) == 6
    for a, b in zip(jax.tree.leaves(full.final_model), jax.tree.leaves(resumed.final_model)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [r["loss"] for r in full.history] == [r["loss"] for r in resumed.history]
    assert "val" in full.history[2] and "hjb" in full.history[2]["val"]
    with pytest.raises(g.GenerativeError, match="lambda_hjb"):
        g.fit_sgm(g.SGM(sde, lambda_hjb=0.5, divergence="hutchinson"), data, steps=6, checkpoint_dir=tmp_path, **kw)
    with pytest.raises(g.GenerativeError, match="problem must be an SGM"):
        g.fit_sgm(g.CNF(), data, key=jr.PRNGKey(0))
