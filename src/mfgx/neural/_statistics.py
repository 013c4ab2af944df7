r"""Statistics S(μᴺ) of the empirical measure μᴺ = (1/N) Σᵢ δ_{xᵢ} of a particle cloud x[N, d].

The mean field enters the particle dynamics only through such statistics: every one is
permutation-invariant (exchangeable agents) and differentiable in the particles (the hard
histogram, ``bandwidth=0``, excepted).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._errors import NeuralError


class AbstractStatistic(eqx.Module):
    """A statistic S: x[N, d] ↦ s[k] of the empirical measure of the particles."""

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "N d"]) -> Float[Array, " k"]:
        """The statistic of the cloud ``x``."""

    @abc.abstractmethod
    def size(self, d: int) -> int:
        """k, the length of the statistic of a cloud in ℝᵈ."""


class Mean(AbstractStatistic):
    r"""m = (1/N) Σᵢ xᵢ ∈ ℝᵈ."""

    def __call__(self, x):
        return jnp.mean(x, axis=0)

    def size(self, d):
        return d


class Moments(AbstractStatistic):
    r"""(m, v) ∈ ℝ²ᵈ: the mean and the per-coordinate variance (1/N) Σᵢ (xᵢ − m)²."""

    def __call__(self, x):
        m = jnp.mean(x, axis=0)
        return jnp.concatenate([m, jnp.mean((x - m) ** 2, axis=0)])

    def size(self, d):
        return 2 * d


class Quantile(AbstractStatistic):
    r"""Per-coordinate empirical quantiles at ``levels`` q ∈ [0, 1] (linear interpolation, as
    `numpy.quantile`); length len(levels)·d, ordered level-major."""

    levels: tuple[float, ...] = eqx.field(static=True)

    def __init__(self, levels):
        levels = tuple(float(q) for q in ((levels,) if isinstance(levels, (int, float)) else levels))
        if not levels or not all(0.0 <= q <= 1.0 for q in levels):
            raise NeuralError(f"quantile levels must lie in [0, 1], got {levels}")
        self.levels = levels

    def __call__(self, x):
        return jnp.quantile(x, jnp.asarray(self.levels), axis=0).reshape(-1)

    def size(self, d):
        return len(self.levels) * d


class Histogram(AbstractStatistic):
    r"""Per-coordinate histogram masses on bins [e_j, e_{j+1}).

    With ``bandwidth`` h > 0 every particle is a Gaussian N(xᵢ, h²), so bin j receives
    (1/N) Σᵢ [Φ((e_{j+1} − xᵢ)/h) − Φ((e_j − xᵢ)/h)], smooth in the particles; h = 0 gives the
    hard counts (zero gradient). Length (len(edges) − 1)·d, coordinate-major.
    """

    edges: tuple[float, ...] = eqx.field(static=True)
    bandwidth: float = eqx.field(static=True)

    def __init__(self, edges, bandwidth: float = 0.0):
        edges = tuple(float(e) for e in edges)
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise NeuralError(f"histogram edges must be at least 2 strictly increasing numbers, got {edges}")
        if not bandwidth >= 0:
            raise NeuralError(f"histogram bandwidth must be >= 0, got {bandwidth}")
        self.edges, self.bandwidth = edges, float(bandwidth)

    def __call__(self, x):
        e = jnp.asarray(self.edges)
        z = e[None, None, :] - x[:, :, None]  # [N, d, J+1]
        cdf = jax.scipy.stats.norm.cdf(z / self.bandwidth) if self.bandwidth > 0 else (z > 0).astype(x.dtype)
        return jnp.mean(jnp.diff(cdf, axis=-1), axis=0).reshape(-1)

    def size(self, d):
        return (len(self.edges) - 1) * d


class KernelEmbedding(AbstractStatistic):
    r"""The empirical measure smoothed by a Gaussian kernel and read at M fixed centres cₘ:
    sₘ = (1/N) Σᵢ exp(−|xᵢ − cₘ|² / (2h²)) (the mean embedding of μᴺ at cₘ)."""

    centers: tuple[tuple[float, ...], ...] = eqx.field(static=True)
    bandwidth: float = eqx.field(static=True)

    def __init__(self, centers, bandwidth: float):
        c = np.asarray(centers, dtype=float)
        if c.ndim == 1:
            c = c[:, None]
        if c.ndim != 2 or c.shape[0] < 1:
            raise NeuralError(f"kernel centres must have shape [M, d], got {c.shape}")
        if not bandwidth > 0:
            raise NeuralError(f"kernel bandwidth must be > 0, got {bandwidth}")
        self.centers = tuple(tuple(float(v) for v in row) for row in c)
        self.bandwidth = float(bandwidth)

    def __call__(self, x):
        c = jnp.asarray(self.centers)
        if c.shape[1] != x.shape[1]:
            raise NeuralError(f"kernel centres are in ℝ^{c.shape[1]} but the particles are in ℝ^{x.shape[1]}")
        d2 = jnp.sum((x[:, None, :] - c[None]) ** 2, axis=-1)
        return jnp.mean(jnp.exp(-0.5 * d2 / self.bandwidth**2), axis=0)

    def size(self, d):
        return len(self.centers)


class Stack(AbstractStatistic):
    """Several statistics concatenated."""

    parts: tuple[AbstractStatistic, ...]

    def __init__(self, *parts: AbstractStatistic):
        if not parts or not all(isinstance(p, AbstractStatistic) for p in parts):
            raise NeuralError("Stack takes one or more statistics")
        self.parts = tuple(parts)

    def __call__(self, x):
        return jnp.concatenate([p(x) for p in self.parts])

    def size(self, d):
        return sum(p.size(d) for p in self.parts)
