r"""Per-agent features of the mean field: φ(t, xᵢ, μᴺ) ∈ ℝᵏ, one value per agent (unlike a
statistic S(μᴺ), which is one value per population), fed to `AgentMLP` with ``features=``.

- `LocalDensity`: the kernel estimate of the crowding at the agent, ρ_h(xᵢ) = (1/N) Σⱼ
  exp(−|xᵢ − xⱼ|²/2h²) — what a congestion (speed depends on local density) term needs.
- `DriftFeature`: the game's own drift bᵢ = b(t, X, c)ᵢ at the agent — what a term that modulates
  the game's speed (h = g(…)·b) needs; b's own parameters are not trained through it.

Both are permutation-equivariant in the agents and differentiable in the particles.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float

from ._errors import NeuralError


class AbstractFeature(eqx.Module):
    """A per-agent feature φ: (t, x[n, d], population[N, d], c) ↦ [n, k]."""

    @abc.abstractmethod
    def __call__(self, t, x: Float[Array, "n d"], population: Float[Array, "N d"], c: Array | None = None) -> Float[Array, "n k"]:
        """The feature at the query states x of agents in ``population``."""

    @abc.abstractmethod
    def size(self, d: int) -> int:
        """k, the number of entries per agent for states in ℝᵈ."""


class LocalDensity(AbstractFeature):
    r"""ρ_h(x) = (1/N) Σⱼ exp(−|x − xⱼ|² / 2h²) ∈ (0, 1], the Gaussian-kernel crowding at x
    (h = ``bandwidth``), one entry per agent."""

    bandwidth: float = eqx.field(static=True)

    def __init__(self, bandwidth: float):
        if isinstance(bandwidth, bool) or not (isinstance(bandwidth, (int, float)) and bandwidth > 0 and bandwidth < float("inf")):
            raise NeuralError(f"LocalDensity bandwidth must be a finite number > 0, got {bandwidth!r}")
        self.bandwidth = float(bandwidth)

    def __call__(self, t, x, population, c=None):
        population = jnp.asarray(population)
        x = jnp.asarray(x, population.dtype)
        if x.ndim != 2 or population.ndim != 2 or x.shape[1] != population.shape[1]:
            raise NeuralError(f"LocalDensity needs states [n, d] and a population [N, d], got {x.shape} and {population.shape}")
        d2 = jnp.sum((x[:, None, :] - population[None, :, :]) ** 2, axis=-1)
        return jnp.mean(jnp.exp(-0.5 * d2 / self.bandwidth**2), axis=1, keepdims=True)

    def size(self, d):
        return 1


class DriftFeature(AbstractFeature):
    r"""The game's drift at the agent, b(t, X, c)ᵢ ∈ ℝᵈ (``drift``: a deterministic
    `AbstractDrift` that can be read at query states, e.g. ``meeting().drift``). Its parameters
    are held fixed (gradients stop), so a fit trains only the network that reads it."""

    drift: eqx.Module

    def __init__(self, drift):
        from ._model import AbstractDrift

        if not isinstance(drift, AbstractDrift) or drift.stochastic:
            raise NeuralError("DriftFeature needs the game's deterministic drift (an AbstractDrift that draws no randomness)")
        self.drift = drift

    def __call__(self, t, x, population, c=None):
        population = jnp.asarray(population)
        drift = jtu.tree_map(lambda v: jax.lax.stop_gradient(v) if eqx.is_inexact_array(v) else v, self.drift)
        return drift.at(t, jnp.asarray(x, population.dtype), population, c)

    def size(self, d):
        return d


def check_features(features, what) -> tuple[AbstractFeature, ...]:
    """``features`` as a tuple of `AbstractFeature` (None or () for none)."""
    if features is None:
        return ()
    fs = (features,) if isinstance(features, AbstractFeature) else tuple(features)
    if not all(isinstance(f, AbstractFeature) for f in fs):
        raise NeuralError(f"{what}: features must be per-agent features (LocalDensity, DriftFeature), got {features!r}")
    return fs
