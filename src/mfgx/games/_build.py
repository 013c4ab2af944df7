"""Small building blocks shared by the zoo's constructors."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..finite import NeighbourKernel


class Constant(eqx.Module):
    """A function of (t, m, θ) that ignores its arguments and returns a fixed array."""

    value: Array

    def __call__(self, t, m, params):
        return self.value


def grid_kernel(shape, moves, noise, noise_probs, *, periodic: bool, blocked=None) -> NeighbourKernel:
    r"""Moves on a grid of ``shape`` (1-D line/ring, 2-D, ...) as a sparse `NeighbourKernel`.

    From cell x, action a moves by ``moves[a]``, then noise moves by ``noise[k]`` with probability
    ``noise_probs[k]``. At the border a move is clipped (``periodic=False``) or wraps around
    (``periodic=True``). A move into a ``blocked`` cell (boolean mask of ``shape``) stays put.
    States are cells in C order (``np.ravel_multi_index``).
    """
    shape = tuple(shape)
    moves = np.asarray(moves, dtype=int).reshape(len(moves), len(shape))
    noise = np.asarray(noise, dtype=int).reshape(len(noise), len(shape))
    probs = np.asarray(noise_probs, dtype=float)
    if not np.isclose(probs.sum(), 1) or np.any(probs < 0):
        raise ValueError(f"noise_probs must be a probability vector, got {noise_probs}")
    blocked = np.zeros(shape, bool) if blocked is None else np.asarray(blocked, bool)
    cells = np.stack(np.unravel_index(np.arange(int(np.prod(shape))), shape), -1)  # [S, d]
    dims = np.asarray(shape)

    def shift(pos, d):
        new = pos + d
        new = new % dims if periodic else np.clip(new, 0, dims - 1)
        hit = blocked[tuple(np.moveaxis(new, -1, 0))]
        return np.where(hit[..., None], pos, new)

    after_move = shift(cells[:, None, :], moves[None, :, :])  # [S, A, d]
    after_noise = shift(after_move[:, :, None, :], noise[None, None, :, :])  # [S, A, K, d]
    dest = np.ravel_multi_index(tuple(np.moveaxis(after_noise, -1, 0)), shape)
    return NeighbourKernel(jnp.asarray(dest), jnp.asarray(probs))


def deterministic_moves(n_states: int, targets) -> Float[Array, "S A S"]:
    """Kernel with P(x′ = targets[x][a] | x, a) = 1."""
    targets = np.asarray(targets)
    P = np.zeros((n_states, targets.shape[1], n_states))
    for x in range(n_states):
        for a in range(targets.shape[1]):
            P[x, a, targets[x, a]] = 1.0
    return jnp.asarray(P)
