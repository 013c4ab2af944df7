"""Crowd games on 2-D grids of any size, with sparse neighbour kernels."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..finite import FiniteGame
from ._build import grid_kernel
from ._checked import checked

MOVES_2D = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))  # stay, down, up, right, left (row, column)


class _GridCrowdReward(eqx.Module):
    """r_t(x, a) = attraction(x) − c·|a| − log(μ_t(x) + ε)."""

    attraction: Array
    move_cost: float
    log_eps: float

    def __call__(self, t, mu, params):
        cost = jnp.array([0.0, 1.0, 1.0, 1.0, 1.0]) * self.move_cost
        return self.attraction[:, None] - cost[None, :] - jnp.log(mu + self.log_eps)[:, None]


@checked
def crowd_grid(
    n: int = 32, T: int = 50, noise: float = 0.2, move_cost: float = 0.01, attraction: float = 1.0,
    periodic: bool = True, log_eps: float = 1e-25,
) -> FiniteGame:
    r"""Crowd modelling on an n×n grid (torus by default), S = n² states, for large-scale tests.

    Actions stay / ±1 row / ±1 column; then noise moves to a uniformly chosen neighbour with
    probability ``noise``. Reward r_t(x, a) = A·(1 − d(x)/d_max) − c·1[a ≠ stay] − log(μ_t(x) + ε),
    d the distance to the centre. μ₀ uniform. Memory is O(S·A·K): n = 320 gives 102 400 states.
    """
    kernel = grid_kernel((n, n), MOVES_2D, MOVES_2D, (1 - noise, *([noise / 4] * 4)), periodic=periodic)
    rows, cols = np.divmod(np.arange(n * n), n)
    centre = (n - 1) / 2
    dist = np.abs(rows - centre) + np.abs(cols - centre)
    reward = _GridCrowdReward(jnp.asarray(attraction * (1 - dist / dist.max())), move_cost, log_eps)
    return FiniteGame(jnp.full(n * n, 1.0 / (n * n)), kernel, reward, T)
