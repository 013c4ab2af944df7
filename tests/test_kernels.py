"""Sparse neighbour kernels against dense kernels built independently with NumPy loops."""

import jax.numpy as jnp
import numpy as np
import pytest

import mfgx
from mfgx.games import grid_kernel


def dense_grid(shape, moves, noise, probs, periodic, blocked=None):
    """Reference: loop over cells, moves and noise; clip or wrap; blocked targets stay put."""
    cells = list(np.ndindex(*shape))
    index = {c: i for i, c in enumerate(cells)}
    blocked = np.zeros(shape, bool) if blocked is None else blocked

    def move(c, d):
        new = []
        for k, (ci, di) in enumerate(zip(c, d)):
            v = ci + di
            v = v % shape[k] if periodic else min(max(v, 0), shape[k] - 1)
            new.append(v)
        new = tuple(new)
        return c if blocked[new] else new

    P = np.zeros((len(cells), len(moves), len(cells)))
    for c in cells:
        for a, d in enumerate(moves):
            c1 = move(c, d)
            for e, p in zip(noise, probs):
                P[index[c], a, index[move(c1, e)]] += p
    return P


CASES = [
    ((6,), [(-1,), (0,), (1,)], [(-1,), (0,), (1,)], [0.2, 0.5, 0.3], False, None),
    ((5,), [(-1,), (0,), (1,)], [(-1,), (1,)], [0.4, 0.6], True, None),
    ((3, 4), [(0, 1), (1, 0), (0, 0), (-1, 0), (0, -1)], [(0, 0), (1, 0), (0, -1)], [0.6, 0.3, 0.1], False,
     np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]], bool)),
]


@pytest.mark.parametrize("shape,moves,noise,probs,periodic,blocked", CASES)
def test_grid_kernel_matches_dense(shape, moves, noise, probs, periodic, blocked):
    k = grid_kernel(shape, moves, noise, probs, periodic=periodic, blocked=blocked)
    P = dense_grid(shape, moves, noise, probs, periodic, blocked)
    np.testing.assert_allclose(np.asarray(k.matrix(0, None, None)), P, atol=1e-15)
    rng = np.random.default_rng(1)
    v = rng.normal(size=P.shape[0])
    joint = rng.dirichlet(np.ones(P.shape[0] * P.shape[1])).reshape(P.shape[:2])
    np.testing.assert_allclose(np.asarray(k.expect(0, None, None, jnp.asarray(v))), P @ v, atol=1e-13)
    np.testing.assert_allclose(
        np.asarray(k.push(0, None, None, jnp.asarray(joint))), np.einsum("xa,xay->y", joint, P), atol=1e-13
    )


def _game(kernel, S=4, A=2):
    return mfgx.FiniteGame(jnp.full(S, 1 / S), kernel, lambda t, m, p: jnp.zeros((S, A)), 2)


def test_neighbour_kernel_validation():
    dest = jnp.zeros((4, 2, 2), int)
    with pytest.raises(mfgx.GameError, match="not stochastic"):
        _game(mfgx.NeighbourKernel(dest, jnp.array([0.5, 0.4])))
    with pytest.raises(mfgx.GameError, match="not a state index"):
        _game(mfgx.NeighbourKernel(dest.at[1, 1, 0].set(7), jnp.array([0.5, 0.5])))
    with pytest.raises(mfgx.GameError, match="negative probability"):
        _game(mfgx.NeighbourKernel(dest, jnp.array([1.5, -0.5])))
    with pytest.raises(mfgx.GameError, match=r"shape \[S, A, K\]"):
        _game(mfgx.NeighbourKernel(jnp.zeros((4, 3, 2), int), jnp.array([0.5, 0.5])))
