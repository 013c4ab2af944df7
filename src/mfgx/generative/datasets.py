r"""Data for the generative lab, offline and seeded with a JAX key (science note
generative_lab.md §5.5; FFJORD's conventions, scikit-learn's generators re-written in JAX).

2-D toys, each ``toy(key, n) -> [n, 2]`` (U uniform, ξ ~ N(0, I)):

- `eight_gaussians`: k ~ U{0..7}, x = (4(cos kπ/4, sin kπ/4) + 0.5ξ)/1.414.
- `checkerboard`: x₁ ~ U[−2, 2), x₂ = U[0, 1) − 2B + (⌊x₁⌋ mod 2), B ~ Bernoulli(½); 2(x₁, x₂):
  uniform on the 8 squares of side 2 in [−4, 4)² with ⌊x₁/2⌋ + ⌊x₂/2⌋ even.
- `two_moons`: scikit-learn's moons (noise 0.1) times 2 plus (−1, −0.2).
- `swiss_roll`: scikit-learn's swiss roll (noise 1), coordinates (0, 2), divided by 5.
- `circles`: scikit-learn's circles (factor 0.5, noise 0.08) times 3.
- `pinwheel`: 5 arms; f = (1 + 0.3ξ₁, 0.1ξ₂) rotated by 2πk/5 + 0.25 e^{f₁}, times 2.
- `two_spirals`: r = √U · 3π; (−r cos r + 0.5U′, r sin r + 0.5U″) and its negative, /3, + 0.1ξ.
- `rings`: 4 concentric circles of radii 3·(1, 0.75, 0.5, 0.25), equal counts, + 0.08ξ.

`toy(name, key, n)` dispatches by name (`TOYS`). `GaussianMixture` has a known density in any d
(`log_prob`, `sample`); `gaussian` and `mfgnet_eight_gaussians` build the closed-form cases.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._errors import GenerativeError


def _shuffle(key, x):
    return x[jr.permutation(key, x.shape[0])]


@functools.partial(jax.jit, static_argnums=(1,))
def eight_gaussians(key: PRNGKeyArray, n: int) -> Float[Array, "n 2"]:
    """Eight Gaussians (std 0.5) at radius 4, scaled by 1/1.414."""
    k1, k2 = jr.split(key)
    idx = jr.randint(k1, (n,), 0, 8)
    ang = idx * (math.pi / 4)
    centers = 4.0 * jnp.stack([jnp.cos(ang), jnp.sin(ang)], 1)
    return (centers + 0.5 * jr.normal(k2, (n, 2))) / 1.414


@functools.partial(jax.jit, static_argnums=(1,))
def checkerboard(key: PRNGKeyArray, n: int) -> Float[Array, "n 2"]:
    """Uniform on the 8 black squares (side 2) of a 4 × 4 board on [−4, 4)²."""
    k1, k2, k3 = jr.split(key, 3)
    x1 = jr.uniform(k1, (n,)) * 4 - 2
    x2 = jr.uniform(k2, (n,)) - 2.0 * jr.bernoulli(k3, 0.5, (n,)) + jnp.mod(jnp.floor(x1), 2)
    return 2.0 * jnp.stack([x1, x2], 1)


@functools.partial(jax.jit, static_argnums=(1,))
def two_moons(key: PRNGKeyArray, n: int) -> Float[Array, "n 2"]:
    """scikit-learn's ``make_moons(n, noise=0.1)`` times 2 plus (−1, −0.2)."""
    k1, k2 = jr.split(key)
    n_out = n // 2
    n_in = n - n_out
    a = jnp.linspace(0, math.pi, n_out)
    b = jnp.linspace(0, math.pi, n_in)
    outer = jnp.stack([jnp.cos(a), jnp.sin(a)], 1)
    inner = jnp.stack([1 - jnp.cos(b), 1 - jnp.sin(b) - 0.5], 1)
    x = _shuffle(k1, jnp.concatenate([outer, inner])) + 0.1 * jr.normal(k2, (n, 2))
    return 2.0 * x + jnp.array([-1.0, -0.2])


@functools.partial(jax.jit, static_argnums=(1,))
def swiss_roll(key: PRNGKeyArray, n: int) -> Float[Array, "n 2"]:
    """scikit-learn's ``make_swiss_roll(n, noise=1)``: t = 1.5π(1 + 2U), (t cos t, 21U′, t sin t)
    plus N(0, 1) noise; coordinates (0, 2) divided by 5."""
    k1, k2, k3 = jr.split(key, 3)
    t = 1.5 * math.pi * (1 + 2 * jr.uniform(k1, (n,)))
    y = 21 * jr.uniform(k2, (n,))
    x = jnp.stack([t * jnp.cos(t), y, t * jnp.sin(t)], 1) + jr.normal(k3, (n, 3))
    return x[:, jnp.array([0, 2])] / 5.0


@functools.partial(jax.jit, static_argnums=(1,))
def circles(key: PRNGKeyArray, n: int) -> Float[Array, "n 2"]:
    """scikit-learn's ``make_circles(n, factor=0.5, noise=0.08)`` times 3."""
    k1, k2 = jr.split(key)
    n_out = n // 2
    n_in = n - n_out
    a = jnp.linspace(0, 2 * math.pi, n_out, endpoint=False)
    b = jnp.linspace(0, 2 * math.pi, n_in, endpoint=False)
    x = jnp.concatenate([jnp.stack([jnp.cos(a), jnp.sin(a)], 1), 0.5 * jnp.stack([jnp.cos(b), jnp.sin(b)], 1)])
    return 3.0 * (_shuffle(k1, x) + 0.08 * jr.normal(k2, (n, 2)))


@functools.partial(jax.jit, static_argnums=(1,))
def pinwheel(key: PRNGKeyArray, n: int) -> Float[Array, "n 2"]:
    """FFJORD's pinwheel: 5 arms (radial std 0.3, tangential std 0.1, rate 0.25), times 2."""
    k1, k2 = jr.split(key)
    labels = jr.randint(k1, (n,), 0, 5)
    f = jr.normal(k2, (n, 2)) * jnp.array([0.3, 0.1]) + jnp.array([1.0, 0.0])
    ang = labels * (2 * math.pi / 5) + 0.25 * jnp.exp(f[:, 0])
    c, s = jnp.cos(ang), jnp.sin(ang)
    return 2.0 * jnp.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], 1)


@functools.partial(jax.jit, static_argnums=(1,))
def two_spirals(key: PRNGKeyArray, n: int) -> Float[Array, "n 2"]:
    """FFJORD's two spirals (540°), n//2 on one arm and the rest on its point reflection."""
    k1, k2, k3 = jr.split(key, 3)
    h = -(-n // 2)
    r = jnp.sqrt(jr.uniform(k1, (h,))) * (540 * 2 * math.pi / 360)
    jitter = 0.5 * jr.uniform(k2, (h, 2))
    arm = jnp.stack([-jnp.cos(r) * r, jnp.sin(r) * r], 1) + jitter
    x = jnp.concatenate([arm, -arm])[:n] / 3.0
    return x + 0.1 * jr.normal(k3, (n, 2))


@functools.partial(jax.jit, static_argnums=(1,))
def rings(key: PRNGKeyArray, n: int) -> Float[Array, "n 2"]:
    """Four concentric rings of radii 3, 2.25, 1.5, 0.75 (equal counts, the first takes the
    remainder), shuffled, plus N(0, 0.08²) noise."""
    k1, k2 = jr.split(key)
    q = n // 4
    parts = []
    for radius, m in zip((1.0, 0.75, 0.5, 0.25), (n - 3 * q, q, q, q)):
        a = jnp.linspace(0, 2 * math.pi, m, endpoint=False)
        parts.append(radius * jnp.stack([jnp.cos(a), jnp.sin(a)], 1))
    x = 3.0 * _shuffle(k1, jnp.concatenate(parts))
    return x + 0.08 * jr.normal(k2, (n, 2))


TOYS = {
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "moons": two_moons,
    "swissroll": swiss_roll,
    "circles": circles,
    "pinwheel": pinwheel,
    "2spirals": two_spirals,
    "rings": rings,
}


def toy(name: str, key: PRNGKeyArray, n: int) -> Float[Array, "n 2"]:
    """``n`` samples of the 2-D toy ``name`` (a key of `TOYS`), in JAX's default float."""
    if name not in TOYS:
        raise GenerativeError(f"unknown toy {name!r}; choose one of {sorted(TOYS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise GenerativeError(f"toy: n must be an int >= 1, got {n!r}")
    return TOYS[name](key, int(n))


class GaussianMixture(eqx.Module):
    r"""p(x) = Σₖ wₖ N(x; μₖ, Σₖ) in ℝᵈ with Σₖ = LₖLₖᵀ.

    ``GaussianMixture(means [k, d], covs=None, weights=None)``: ``covs`` [k, d, d], [d, d] (shared),
    a number (σ² I) or None (I); ``weights`` [k] (normalised; default uniform). `log_prob` takes
    [..., d] → [...]; `sample(key, n)` → [n, d]."""

    means: Float[Array, "k d"]
    scale_trils: Float[Array, "k d d"]
    log_weights: Float[Array, " k"]

    def __init__(self, means, covs=None, weights=None, *, dtype=None):
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64 if dtype is None else dtype)
        mu = np.asarray(means, dtype=float)
        if mu.ndim == 1:
            mu = mu[None]
        if mu.ndim != 2 or mu.shape[0] < 1 or mu.shape[1] < 1 or not np.all(np.isfinite(mu)):
            raise GenerativeError(f"GaussianMixture: means must be a finite [k, d] array, got shape {np.shape(means)}")
        k, d = mu.shape
        if covs is None:
            S = np.broadcast_to(np.eye(d), (k, d, d))
        elif np.ndim(covs) == 0:
            S = np.broadcast_to(float(covs) * np.eye(d), (k, d, d))
        else:
            S = np.asarray(covs, dtype=float)
            if S.shape == (d, d):
                S = np.broadcast_to(S, (k, d, d))
            if S.shape != (k, d, d):
                raise GenerativeError(f"GaussianMixture: covs must have shape [{k}, {d}, {d}] or [{d}, {d}], got {np.shape(covs)}")
        try:
            L = np.linalg.cholesky(0.5 * (S + np.swapaxes(S, 1, 2)))
        except np.linalg.LinAlgError as e:
            raise GenerativeError("GaussianMixture: every covariance must be symmetric positive definite") from e
        if not np.all(np.isfinite(L)):
            raise GenerativeError("GaussianMixture: every covariance must be symmetric positive definite")
        w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (k,) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise GenerativeError(f"GaussianMixture: weights must be {k} non-negative numbers with a positive sum")
        with np.errstate(divide="ignore"):
            lw = np.log(w / w.sum())
        self.means = jnp.asarray(mu, dtype)
        self.scale_trils = jnp.asarray(L, dtype)
        self.log_weights = jnp.asarray(lw, dtype)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def covs(self) -> Float[Array, "k d d"]:
        return self.scale_trils @ jnp.swapaxes(self.scale_trils, 1, 2)

    def mean(self) -> Float[Array, " d"]:
        return jnp.exp(self.log_weights) @ self.means

    def cov(self) -> Float[Array, "d d"]:
        """Σₖ wₖ(Σₖ + μₖμₖᵀ) − μμᵀ."""
        w = jnp.exp(self.log_weights)
        m = self.mean()
        second = jnp.einsum("k,kij->ij", w, self.covs + self.means[:, :, None] * self.means[:, None, :])
        return second - jnp.outer(m, m)

    def log_prob(self, x: Float[Array, "*batch d"]) -> Float[Array, "*batch"]:
        """log p(x) in nats."""
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise GenerativeError(f"GaussianMixture.log_prob: x must have shape [..., {self.dim}], got {x.shape}")
        return _gm_log_prob(self, x)

    def sample(self, key: PRNGKeyArray, n: int) -> Float[Array, "n d"]:
        """``n`` samples: a component by its weight, then μₖ + Lₖξ."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise GenerativeError(f"GaussianMixture.sample: n must be an int >= 1, got {n!r}")
        return _gm_sample(self, key, int(n))


@eqx.filter_jit
def _gm_log_prob(gm, x):
    diff = x[..., None, :] - gm.means  # [..., k, d]
    eye = jnp.broadcast_to(jnp.eye(gm.dim, dtype=gm.scale_trils.dtype), gm.scale_trils.shape)
    Linv = jax.scipy.linalg.solve_triangular(gm.scale_trils, eye, lower=True)
    r = jnp.einsum("kij,...kj->...ki", Linv, diff)
    logdet = jnp.sum(jnp.log(jnp.diagonal(gm.scale_trils, axis1=1, axis2=2)), axis=1)
    comp = -0.5 * jnp.sum(r**2, -1) - logdet - 0.5 * gm.dim * math.log(2 * math.pi)
    return jax.nn.logsumexp(comp + gm.log_weights, axis=-1)


@eqx.filter_jit
def _gm_sample(gm, key, n):
    k1, k2 = jr.split(key)
    idx = jr.categorical(k1, gm.log_weights, shape=(n,))
    xi = jr.normal(k2, (n, gm.dim), gm.means.dtype)
    return gm.means[idx] + jnp.einsum("nij,nj->ni", gm.scale_trils[idx], xi)


def gaussian(mean, cov=None, *, dtype=None) -> GaussianMixture:
    """N(mean, cov) as a one-component `GaussianMixture` (cov: [d, d], a number σ² or None = I)."""
    return GaussianMixture(np.atleast_1d(np.asarray(mean, float))[None], cov, dtype=dtype)


def mfgnet_eight_gaussians(dim: int = 2, *, radius: float = 4.0, var: float = 0.3, dtype=None) -> GaussianMixture:
    """MFGnet's dynamic-OT source (§6.1): 8 equal Gaussians with covariance ``var``·I, means on the
    circle of ``radius`` in the first two coordinates (zero elsewhere)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 2:
        raise GenerativeError(f"mfgnet_eight_gaussians: dim must be an int >= 2, got {dim!r}")
    ang = np.arange(8) * np.pi / 4
    mu = np.zeros((8, dim))
    mu[:, 0], mu[:, 1] = radius * np.cos(ang), radius * np.sin(ang)
    return GaussianMixture(mu, var, dtype=dtype)


__all__ = [
    "TOYS",
    "GaussianMixture",
    "checkerboard",
    "circles",
    "eight_gaussians",
    "gaussian",
    "mfgnet_eight_gaussians",
    "pinwheel",
    "rings",
    "swiss_roll",
    "toy",
    "two_moons",
    "two_spirals",
]
