"""Classic small games (mfglib 0.3.0 definitions, default parameters) and closed-form test games.

Conventions: rewards are maximised, paid at t = 0..T (see `mfgx.FiniteGame`).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..finite import FiniteGame
from ._build import Constant, deterministic_moves, grid_kernel


class _CongestionReward(eqx.Module):
    """r_t(x, a) = base(x, a) − log(μ_t(x) + ε) (log-congestion)."""

    base: Array
    log_eps: float

    def __call__(self, t, mu, params):
        return self.base - jnp.log(mu + self.log_eps)[:, None]


def beach_bar(T: int = 2, n: int = 4, bar_loc: int = 2, log_eps: float = 1e-20, p_still: float = 0.5) -> FiniteGame:
    r"""Beach bar (mfglib). Positions x ∈ {0..n−1} on a clipped line, actions a ∈ {0,1,2} move a−1,
    then noise e ∈ {−1,0,1} with probabilities ((1−p)/2, p, (1−p)/2), p = ``p_still``.

        r_t(x, a) = −d(x) − |a−1|/n − log(μ_t(x) + ε),  d(x) = circular distance to ``bar_loc``.

    μ₀ uniform. (mfglib's docstring says torus; its dynamics are clipped, its distance circular.)
    """
    q = (1 - p_still) / 2
    kernel = grid_kernel((n,), (-1, 0, 1), (-1, 0, 1), (q, p_still, q), periodic=False)
    x = np.arange(n)
    dist = np.minimum((x - bar_loc) % n, (bar_loc - x) % n)
    base = -dist[:, None] - np.abs(np.arange(3) - 1)[None, :] / n
    return FiniteGame(jnp.full(n, 1.0 / n), kernel, _CongestionReward(jnp.asarray(base, float), log_eps), T)


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


class _SIKernel(eqx.Module):
    def __call__(self, t, mu, params):
        inf = 0.81 * mu[1]
        return jnp.array(
            [[[1 - inf, inf], [1.0, 0.0]], [[0.3, 0.7], [0.3, 0.7]]], dtype=mu.dtype
        )


def susceptible_infected(T: int = 50, mu0=(0.4, 0.6)) -> FiniteGame:
    r"""Susceptible–infected (mfglib). States {0: S, 1: I}, actions {0: go out, 1: distance}.

    P(I|S, out) = 0.81 μ_t(I), P(S|S, distance) = 1, P(S|I, ·) = 0.3;
    r(S,out) = 0, r(S,distance) = −0.5, r(I,out) = −1, r(I,distance) = −1.5.
    """
    r = jnp.array([[0.0, -0.5], [-1.0, -1.5]])
    return FiniteGame(jnp.asarray(mu0, float), _SIKernel(), Constant(r), T)


class _LinearReward(eqx.Module):
    """r(x, ·) = (W μ)(x), the same for every action."""

    W: Array
    n_actions: int

    def __call__(self, t, mu, params):
        return jnp.repeat((self.W @ mu)[:, None], self.n_actions, axis=1)


def left_right() -> FiniteGame:
    r"""Left–right (mfglib). T = 1, from state 0 go left (state 1) or right (state 2);
    r(1, ·) = −μ(1), r(2, ·) = −2μ(2). Equilibrium: μ₁ = (0, 2/3, 1/3)."""
    W = jnp.array([[0, 0, 0], [0, -1.0, 0], [0, 0, -2.0]])
    P = deterministic_moves(3, [[1, 2]] * 3)
    return FiniteGame(jnp.array([1.0, 0, 0]), Constant(P), _LinearReward(W, 2), 1)


def rock_paper_scissors() -> FiniteGame:
    r"""Rock–paper–scissors (mfglib). T = 1, from state 0 pick 1, 2 or 3;
    r(1,·) = 2μ(3) − μ(2), r(2,·) = 4μ(1) − 2μ(3), r(3,·) = 6μ(2) − 3μ(1)."""
    W = jnp.array([[0, 0, 0, 0], [0, 0, -1.0, 2], [0, 4.0, 0, -2], [0, -3.0, 6, 0]])
    P = deterministic_moves(4, [[1, 2, 3]] * 4)
    return FiniteGame(jnp.array([1.0, 0, 0, 0]), Constant(P), _LinearReward(W, 3), 1)


class _TwoStateReward(eqx.Module):
    def __call__(self, t, mu, c):
        return jnp.repeat((-c * mu)[:, None], 2, axis=1)


def two_state_congestion(T: int = 3, costs=(1.0, 2.0), mu0=(0.5, 0.5)) -> FiniteGame:
    r"""Two places, each agent picks where to be next: P(x′ = a | x, a) = 1, r_t(x, a) = −c_x μ_t(x).

    θ = ``costs`` = (c₀, c₁) > 0. The game is monotone; its unique equilibrium flow is, for t ≥ 1,
    μ_t = (c₁, c₀)/(c₀ + c₁) (agents are indifferent: c₀ μ(0) = c₁ μ(1)).
    """
    P = deterministic_moves(2, [[0, 1], [0, 1]])
    return FiniteGame(jnp.asarray(mu0, float), Constant(P), _TwoStateReward(), T, jnp.asarray(costs, float))
