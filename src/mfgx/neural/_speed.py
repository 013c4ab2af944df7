r"""A learned speed factor: a correction that rescales the game's own drift,

    f_φ(t, X, c)ᵢ = κ · g_φ(zᵢ) · b(t, X, c)ᵢ,   so   b + f_φ = (1 + κ g_φ(zᵢ)) · b,

with g_φ one MLP shared by the agents (zᵢ = (xᵢ, t, S(μᴺ), φ(t, xᵢ, μᴺ), c) as in `AgentMLP`) and
b the game's deterministic drift, held fixed. It is the structured counterpart of `AgentMLP` with
`DriftFeature` for terms that change how fast agents follow their best response without changing
its direction (e.g. congestion, `Congestion`: g = −c ρ_h(xᵢ)), as `FluxCorrection` is for
compartmental rates.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._errors import NeuralError
from ._features import DriftFeature
from ._model import AbstractCorrection, AbstractDrift, _AgentNet, _empty
from ._statistics import AbstractStatistic, Moments


class SpeedFactor(AbstractCorrection):
    r"""f_φ(t, X, c)ᵢ = κ · g_φ(zᵢ) · b(t, X, c)ᵢ: a learned, per-agent factor on the game's drift
    ``drift`` b (deterministic; its parameters get no gradient).

    - ``d``: the state dimension (g_φ is one number per agent, applied to every coordinate of bᵢ).
    - ``statistic``, ``time``, ``covariates``, ``features``, ``loc``/``scale``, ``width``,
      ``depth``, ``activation``: the inputs and shape of g_φ, as in `AgentMLP` (``loc``/``scale``
      from ``input_scaling(train, statistic=..., time=..., features=...)``).
    - ``out_scale`` κ; ``zero_init``: start at g ≡ 0, the game's own speed (default True).
    """

    speed: DriftFeature
    net: _AgentNet
    out_scale: float = eqx.field(static=True)

    def __init__(
        self,
        drift: AbstractDrift,
        d: int = 1,
        *,
        statistic: AbstractStatistic | None = Moments(),
        time: bool = False,
        covariates: int = 0,
        width: int = 16,
        depth: int = 2,
        activation: Callable = jax.nn.tanh,
        loc=None,
        scale=None,
        out_scale: float = 1.0,
        features=(),
        zero_init: bool = True,
        key: PRNGKeyArray,
    ):
        if not isinstance(drift, AbstractDrift) or drift.stochastic:
            raise NeuralError("SpeedFactor needs the game's deterministic drift (an AbstractDrift that draws no randomness)")
        self.speed = DriftFeature(drift)
        self.net = _AgentNet(d, 1, statistic, time, covariates, width, depth, activation, loc, scale, key, "SpeedFactor", features,
                             zero=zero_init)
        self.out_scale = float(out_scale)

    def factor(self, t, x, population, c=None):
        r"""κ g_φ at query states x [n, d] of agents in ``population`` [N, d]: shape [n, 1]."""
        population = jnp.asarray(population)
        x = jnp.asarray(x, population.dtype)
        s = _empty(population) if self.net.statistic is None else self.net.statistic(population)
        return self.out_scale * self.net.local(t, x, s, c, population)

    def __call__(self, t, x, c=None):
        return self.factor(t, x, x, c) * self.speed(t, x, x, c)

    def at(self, t, x, population, c=None):
        population = jnp.asarray(population)
        x = jnp.asarray(x, population.dtype)
        return self.factor(t, x, population, c) * self.speed(t, x, population, c)
