"""Small building blocks shared by the zoo's constructors."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


class Constant(eqx.Module):
    """A function of (t, m, θ) that ignores its arguments and returns a fixed array."""

    value: Array

    def __call__(self, t, m, params):
        return self.value


def line_moves(n: int, moves, noise, noise_probs, *, ring: bool) -> Float[Array, "S A S"]:
    """Dense kernel of a walk on {0..n−1}: x′ = x + move[a] + e, e ~ noise_probs over ``noise``,
    clipped at the ends (``ring=False``) or wrapped (``ring=True``)."""
    P = np.zeros((n, len(moves), n))
    for x in range(n):
        for a, d in enumerate(moves):
            for e, p in zip(noise, noise_probs):
                y = (x + d + e) % n if ring else min(max(x + d + e, 0), n - 1)
                P[x, a, y] += p
    return jnp.asarray(P)


def deterministic_moves(n_states: int, targets) -> Float[Array, "S A S"]:
    """Kernel with P(x′ = targets[x][a] | x, a) = 1."""
    targets = np.asarray(targets)
    P = np.zeros((n_states, targets.shape[1], n_states))
    for x in range(n_states):
        for a in range(targets.shape[1]):
            P[x, a, targets[x, a]] = 1.0
    return jnp.asarray(P)
