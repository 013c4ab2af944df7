"""mfgx.generative.metrics and .datasets: closed forms (W₂ between Gaussians, identical samples
→ 0, a shift's known distances), the estimators against each other and POT, and the toys'
shapes, determinism and a defining property each."""

from __future__ import annotations

import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from mfgx import generative as g
from mfgx.generative import datasets as gd
from mfgx.generative import metrics as gm

# ---------------------------------------------------------------- metrics

M0, S0 = np.array([1.0, -0.5]), np.array([[1.5, 0.6], [0.6, 0.5]])
M1, S1 = np.array([-0.5, 2.0]), np.array([[0.4, -0.1], [-0.1, 0.9]])


def test_gaussian_closed_forms():
    A, b = gm.gaussian_ot_map(M0, S0, M1, S1)
    # the map pushes N(m0, S0) to N(m1, S1), is symmetric positive definite (a gradient of a convex
    # function), and its transport cost is W₂²
    np.testing.assert_allclose(A @ S0 @ A.T, S1, atol=1e-12)
    np.testing.assert_allclose(A @ M0 + b, M1, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(A) > 0) and np.allclose(A, A.T)
    cost = np.sum((M1 - M0) ** 2) + np.trace(S0 - 2 * A @ S0 + A @ S0 @ A.T)  # E|Ax + b − x|²
    np.testing.assert_allclose(gm.gaussian_w2(M0, S0, M1, S1), cost, rtol=1e-12)
    # commuting (here: scalar) covariances: W₂² = |Δm|² + Σ(σ₀ − σ₁)²
    assert abs(gm.gaussian_w2([0, 0], 4 * np.eye(2), [3, 4], np.eye(2)) - (25 + 2 * 1.0)) < 1e-12
    assert gm.gaussian_w2(M0, S0, M0, S0) < 1e-12
    assert abs(gm.gaussian_entropy(np.eye(3)) - 1.5 * math.log(2 * math.pi * math.e)) < 1e-12
    with pytest.raises(g.GenerativeError, match="positive definite"):
        gm.gaussian_w2(M0, -S0, M1, S1)
    with pytest.raises(g.GenerativeError, match="one length"):
        gm.gaussian_w2(M0, S0, [0.0], [[1.0]])


def _gauss(n, m, S, seed):
    return m + np.random.default_rng(seed).standard_normal((n, len(m))) @ np.linalg.cholesky(S).T


def test_wasserstein_exact_and_sliced():
    x, y = _gauss(1000, M0, S0, 0), _gauss(1000, M1, S1, 1)
    w2 = gm.gaussian_w2(M0, S0, M1, S1)
    # exact OT between samples: consistent for W₂² (bias O(n^{-1/2}) in 2-D, small against 11)
    assert abs(gm.wasserstein(x, y, p=2) ** 2 - w2) < 0.05 * w2
    # identical samples → 0; a translation by c: W_p = |c| exactly, for every p
    assert gm.wasserstein(x[:300], x[:300]) ** 2 < 1e-14  # round-off in ‖x − y‖²
    c = np.array([0.3, -0.4])
    for p in (1, 2):
        assert abs(gm.wasserstein(x[:300], x[:300] + c, p=p) - 0.5) < 1e-9
    # sliced: identical → 0, translation → |c|·(E(θ·e)²)^{1/2} = 0.5/√2 in 2-D, sizes may differ
    key = jr.PRNGKey(0)
    assert float(gm.sliced_wasserstein(x, x, key=key)) < 1e-12
    sw = float(gm.sliced_wasserstein(x, x + c, key=key))
    assert abs(sw - 0.5 / math.sqrt(2)) < 0.015  # 256 directions: about 1 % Monte-Carlo error
    # unequal sizes: the 1-D quantile comparison is exact (a sample against its own duplicate)
    assert float(gm.sliced_wasserstein(x[:500], np.concatenate([x[:500], x[:500]]), key=key)) < 1e-12
    # SW₂ ≤ W₂ (projection is 1-Lipschitz) and SW₁ > 0 for different laws
    assert float(gm.sliced_wasserstein(x, y, key=key)) <= math.sqrt(w2)
    assert float(gm.sliced_wasserstein(x, y, key=key, p=1)) > 0.5
    with pytest.raises(g.GenerativeError, match="max_samples"):
        gm.wasserstein(x, y, max_samples=999)
    with pytest.raises(g.GenerativeError, match="dimension"):
        gm.sliced_wasserstein(x, y[:, :1], key=key)


def test_mmd_and_energy_distance():
    x, x2, y = _gauss(2000, M0, S0, 2), _gauss(2000, M0, S0, 3), _gauss(2000, M1, S1, 4)
    # biased MMD and energy distance vanish on identical samples
    assert abs(float(gm.mmd2(x, x, unbiased=False))) < 1e-10
    assert abs(float(gm.mmd2_otflow(x, x))) < 1e-10
    # unbiased estimators: ≈ 0 for two samples of one law, clearly positive for different laws
    same, diff = float(gm.mmd2(x, x2)), float(gm.mmd2(x, y))
    assert abs(same) < 5e-3 and diff > 100 * abs(same)
    e_same, e_diff = float(gm.energy_distance(x, x2)), float(gm.energy_distance(x, y))
    assert abs(e_same) < 0.02 and e_diff > 1.0
    # block sums agree with one dense sum, and a direct numpy formula
    k = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1))  # noqa: E731
    xs, ys = x[:300], y[:200]
    ref = k(xs, xs).mean() + k(ys, ys).mean() - 2 * k(xs, ys).mean()
    np.testing.assert_allclose(float(gm.mmd2_otflow(xs, ys, block=64)), ref, rtol=1e-10)
    # energy distance of 1-D point masses at 0 and a: 2|a| − 0 − 0 (U-statistics skip i = j)
    a = np.zeros((5, 1))
    assert abs(float(gm.energy_distance(a, a + 3.0)) - 6.0) < 1e-12
    with pytest.raises(g.GenerativeError, match="bandwidths"):
        gm.mmd2(x, y, bandwidths=(1.0, -1.0))
    with pytest.raises(g.GenerativeError, match="at least 2"):
        gm.energy_distance(x[:1], y)


def test_kl_gap():
    gap, se = gm.kl_gap([0.0, 1.0, 2.0], [0.0, 0.5, 1.0])
    assert abs(gap - 0.5) < 1e-12 and se > 0
    with pytest.raises(g.GenerativeError):
        gm.kl_gap([0.0], [1.0, 2.0])


# ---------------------------------------------------------------- datasets


N_TOY = 20001  # odd, and not a multiple of 4: the halves and quarters take the remainder


@pytest.mark.parametrize("name", sorted(gd.TOYS))
def test_toys_shapes_and_determinism(name):
    a = gd.toy(name, jr.PRNGKey(0), N_TOY)  # the property test below reuses the compiled toys
    assert a.shape == (N_TOY, 2) and bool(jnp.all(jnp.isfinite(a)))
    np.testing.assert_array_equal(a, gd.toy(name, jr.PRNGKey(0), N_TOY))
    assert not np.allclose(a, gd.toy(name, jr.PRNGKey(1), N_TOY))


def test_toy_properties():
    key, n = jr.PRNGKey(3), N_TOY
    x = np.asarray(gd.checkerboard(key, n))
    assert np.all((x >= -4) & (x < 4))
    assert np.all((np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2 == 0)  # only the black squares
    # uniform on 8 squares: each holds about 1/8
    sq = (np.floor(x[:, 0] / 2) + 2) * 4 + (np.floor(x[:, 1] / 2) + 2)
    counts = np.bincount(sq.astype(int), minlength=16)
    assert np.sum(counts > 0) == 8 and np.all(np.abs(counts[counts > 0] / n - 1 / 8) < 0.01)
    # eight Gaussians: E|x|² = (16 + 2·0.25)/1.414², the nearest centre within a few std
    x = np.asarray(gd.eight_gaussians(key, n))
    assert abs(np.mean(np.sum(x**2, 1)) - 16.5 / 1.414**2) < 0.1
    ang = np.arange(8) * np.pi / 4
    c = 4 * np.stack([np.cos(ang), np.sin(ang)], 1) / 1.414
    assert np.max(np.min(np.linalg.norm(x[:, None] - c[None], axis=-1), 1)) < 6 * 0.5 / 1.414
    # rings: radii cluster at 3·(1, .75, .5, .25), a quarter each
    r = np.linalg.norm(np.asarray(gd.rings(key, n)), axis=1)
    for radius in (3.0, 2.25, 1.5, 0.75):
        assert abs(np.mean(np.abs(r - radius) < 0.3) - 0.25) < 0.02
    # moons: undo the affine map; points lie near the two unit semicircles
    m = (np.asarray(gd.two_moons(key, n)) - np.array([-1.0, -0.2])) / 2
    dist = np.minimum(np.abs(np.linalg.norm(m, axis=1) - 1), np.abs(np.linalg.norm(m - [1.0, 0.5], axis=1) - 1))
    assert np.mean(dist < 0.3) > 0.97
    # two spirals: point-symmetric halves; circles: radii 3 and 1.5
    s = np.asarray(gd.two_spirals(key, n))
    np.testing.assert_allclose(s.mean(0), 0, atol=0.05)
    r = np.linalg.norm(np.asarray(gd.circles(key, n)), axis=1)
    assert np.mean((np.abs(r - 3) < 0.8) | (np.abs(r - 1.5) < 0.8)) > 0.99  # noise std 0.24
    with pytest.raises(g.GenerativeError, match="unknown toy"):
        gd.toy("nope", key, 10)


def test_gaussian_mixture_density_and_samples():
    gm_ = gd.GaussianMixture([[0.0, 0.0, 1.0], [2.0, -1.0, 0.0]], [S0e := np.diag([0.5, 1.0, 2.0]), np.eye(3)], [0.3, 0.7])
    x = np.random.default_rng(0).standard_normal((7, 3))
    # log density against a direct formula
    def normal(x, m, S):
        r = x - m
        return np.exp(-0.5 * np.einsum("ni,ij,nj->n", r, np.linalg.inv(S), r)) / np.sqrt(np.linalg.det(2 * np.pi * S))

    ref = np.log(0.3 * normal(x, [0, 0, 1], S0e) + 0.7 * normal(x, [2, -1, 0], np.eye(3)))
    np.testing.assert_allclose(gm_.log_prob(x), ref, rtol=1e-12)
    assert gm_.log_prob(x.reshape(7, 1, 3)).shape == (7, 1)
    s = np.asarray(gm_.sample(jr.PRNGKey(0), 40000))
    np.testing.assert_allclose(s.mean(0), gm_.mean(), atol=0.03)
    np.testing.assert_allclose(np.cov(s.T), gm_.cov(), atol=0.06)
    # MFGnet's source: 8 Gaussians in d dimensions
    src = gd.mfgnet_eight_gaussians(10)
    assert src.means.shape == (8, 10) and np.allclose(np.linalg.norm(src.means, axis=1), 4.0)
    one = gd.gaussian([1.0, 2.0], 0.3)
    assert abs(float(one.log_prob(jnp.array([1.0, 2.0]))) + math.log(2 * math.pi * 0.3)) < 1e-12
    with pytest.raises(g.GenerativeError, match="positive definite"):
        gd.GaussianMixture([[0.0, 0.0]], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(g.GenerativeError, match="shape"):
        gm_.log_prob(np.zeros((4, 2)))
