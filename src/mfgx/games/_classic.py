"""Classic small games: the clean 1-D crowd ring and closed-form test games.

Conventions: rewards are maximised, paid at t = 0..T (see `mfgx.FiniteGame`). mfglib's games
(beach_bar, susceptible_infected, left_right, rock_paper_scissors, ...) live in `._mfglib`; the
four that used to be defined here are re-exported below.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..finite import FiniteGame
from ._build import Constant, deterministic_moves, grid_kernel
from ._mfglib import beach_bar, left_right, rock_paper_scissors, susceptible_infected  # noqa: F401  (moved)
from ._checked import checked


class _CongestionReward(eqx.Module):
    """r_t(x, a) = base(x, a) − log(μ_t(x) + ε) (log-congestion)."""

    base: Array
    log_eps: float

    def __call__(self, t, mu, params):
        return self.base - jnp.log(mu + self.log_eps)[:, None]


@checked
def crowd_ring(n: int = 100, T: int = 50, move_cost: float = 1.0, log_eps: float = 1e-25) -> FiniteGame:
    r"""Crowd modelling on a ring of ``n`` cells (OpenSpiel's 1-D crowd game, with the current action).

    x′ = x + (a − 1) + e mod n, a ∈ {0,1,2}, e uniform on {−1, 0, 1};
    r_t(x, a) = 1 − |x − n/2|/(n/2) − c|a − 1|/n − log(μ_t(x) + ε), μ₀ uniform.

    OpenSpiel charges the *previous* action and caches values by strings without it (see
    ``shared/peers.md``); this is the clean Markov form, with the action cost paid when acting.
    """
    kernel = grid_kernel((n,), (-1, 0, 1), (-1, 0, 1), (1 / 3, 1 / 3, 1 / 3), periodic=True)
    x = np.arange(n)
    base = 1 - np.abs(x - n / 2)[:, None] / (n / 2) - move_cost * np.abs(np.arange(3) - 1)[None, :] / n
    return FiniteGame(jnp.full(n, 1.0 / n), kernel, _CongestionReward(jnp.asarray(base, float), log_eps), T)


class _TwoStateReward(eqx.Module):
    def __call__(self, t, mu, c):
        return jnp.repeat((-c * mu)[:, None], 2, axis=1)


@checked
def two_state_congestion(T: int = 3, costs=(1.0, 2.0), mu0=(0.5, 0.5)) -> FiniteGame:
    r"""Two places, each agent picks where to be next: P(x′ = a | x, a) = 1, r_t(x, a) = −c_x μ_t(x).

    θ = ``costs`` = (c₀, c₁) > 0. The game is monotone; its unique equilibrium flow is, for t ≥ 1,
    μ_t = (c₁, c₀)/(c₀ + c₁) (agents are indifferent: c₀ μ(0) = c₁ μ(1)).
    """
    P = deterministic_moves(2, [[0, 1], [0, 1]])
    return FiniteGame(jnp.asarray(mu0, float), Constant(P), _TwoStateReward(), T, jnp.asarray(costs, float))
