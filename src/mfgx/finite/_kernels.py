"""Transition kernels of finite-state games.

A kernel answers two questions at time t, given the mean field m_t and parameters θ:

* ``expect(t, m, θ, v)``  →  E[v(X') | X = x, A = a]           (backward pass), shape [S, A];
* ``push(t, m, θ, L)``    →  Σ_{x,a} L(x, a) P_t(x' | x, a)    (forward pass), shape [S].

``matrix`` returns the dense P_t[x, a, x'] and exists for validation and small games; solvers only
call ``expect`` and ``push``, so structured kernels (neighbour moves on grids) never build S×S arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._validate import GameError


class AbstractKernel(eqx.Module):
    """Interface of a transition kernel P_t(x′ | x, a; m_t, θ)."""

    def matrix(self, t, m, params) -> Float[Array, "S A S"]:
        raise NotImplementedError(f"{type(self).__name__} has no dense form")

    def expect(self, t, m, params, v: Float[Array, " S"]) -> Float[Array, "S A"]:
        return jnp.einsum("xay,y->xa", self.matrix(t, m, params), v)

    def push(self, t, m, params, joint: Float[Array, "S A"]) -> Float[Array, " S"]:
        return jnp.einsum("xa,xay->y", joint, self.matrix(t, m, params))

    def frozen(self, t, m, params) -> "AbstractKernel":
        """The kernel at (t, m, θ) with everything that depends on (t, m, θ) evaluated once: its
        ``expect``/``push`` then ignore (t, m, θ) and cost only the linear map. For loops that apply
        one kernel many times (value iteration, power iteration). Default: linearisations of
        ``expect`` and ``push`` (JAX keeps only the part that acts on v or L)."""
        S = jnp.shape(m)[0]
        dtype = jnp.result_type(m)
        _, expect = jax.linearize(lambda v: self.expect(t, m, params, v), jnp.zeros(S, dtype))
        _, push = jax.linearize(lambda L: self.push(t, m, params, L), jnp.zeros(jax.eval_shape(
            lambda: self.expect(t, m, params, jnp.zeros(S, dtype))).shape, dtype))
        return _LinearKernel(expect, push)

    def check(self, t, m, params) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """(smallest probability, largest |row sum − 1|) of the kernel at (t, m): the runtime
        validity check of `solve` along the solution (0, 0 for a kernel without a dense form)."""
        try:
            P = self.matrix(t, m, params)
        except NotImplementedError:
            return jnp.zeros(()), jnp.zeros(())
        return P.min(), jnp.abs(P.sum(-1) - 1).max()


class _LinearKernel(AbstractKernel):
    """A kernel frozen at one (t, m, θ): ``expect`` and ``push`` as linear maps."""

    expect_map: Callable
    push_map: Callable

    def expect(self, t, m, params, v):
        return self.expect_map(v)

    def push(self, t, m, params, joint):
        return self.push_map(joint)


class _Fixed(eqx.Module):
    value: Array

    def __call__(self, t, m, params):
        return self.value


class DenseKernel(AbstractKernel):
    """A kernel given as a function ``fn(t, m, θ) -> P[x, a, x']`` (rows sum to one)."""

    fn: Callable[[Any, Any, Any], Float[Array, "S A S"]]

    def matrix(self, t, m, params):
        return self.fn(t, m, params)

    def frozen(self, t, m, params):
        return DenseKernel(_Fixed(self.matrix(t, m, params)))


def _generator(q: Float[Array, "S A S"]) -> Float[Array, "S A S"]:
    """Set the diagonal of jump rates q[x, a, y] to minus the row sum (off-diagonal kept)."""
    n = q.shape[0]
    eye = jnp.eye(n, dtype=q.dtype)[:, None, :]
    off = q * (1 - eye)
    return off - eye * off.sum(-1, keepdims=True)


def step_matrix(q: Float[Array, "S S"], dt: float, scheme: str) -> Float[Array, "S S"]:
    """The one-step matrix of a generator Q (rows sum to 0, off-diagonal ≥ 0) over Δt:
    I + ΔtQ (``"euler"``), exp(ΔtQ) (``"expm"``) or (I − ΔtQ)⁻¹ (``"implicit"``). The last two are
    stochastic for every Δt > 0; (I − ΔtQ) is a non-singular M-matrix, so its inverse is ≥ 0."""
    eye = jnp.eye(q.shape[-1], dtype=q.dtype)
    if scheme == "euler":
        return eye + dt * q
    if scheme == "expm":
        return jax.scipy.linalg.expm(dt * q)
    if scheme == "implicit":
        return jnp.linalg.solve(eye - dt * q, eye)
    raise GameError(f"unknown scheme {scheme!r}: use 'euler', 'expm' or 'implicit'")


class RateKernel(AbstractKernel):
    r"""Continuous-time jump rates Q_t(x, y; a, m, θ) discretised over a step Δt.

    ``rates(t, m, θ)`` returns q[x, a, y] ≥ 0 for y ≠ x (the diagonal is ignored and replaced by
    minus the row sum). The action is held for the whole step. Schemes:

    * ``"euler"``:    P = I + Δt Q.  Stochastic only if Δt · max_x Σ_{y≠x} q(x, y) ≤ 1 (checked when
      the game is built);
    * ``"expm"``:     P = exp(Δt Q_a) per action, exact for a held action, stochastic for every Δt;
    * ``"implicit"``: P = (I − Δt Q_a)⁻¹ per action, stochastic for every Δt.
    """

    rates: Callable[[Any, Any, Any], Float[Array, "S A S"]]
    dt: float
    scheme: Literal["euler", "expm", "implicit"] = eqx.field(static=True, default="expm")

    def __check_init__(self):
        if self.scheme not in ("euler", "expm", "implicit"):
            raise GameError(f"unknown scheme {self.scheme!r}: use 'euler', 'expm' or 'implicit'")

    def generator(self, t, m, params) -> Float[Array, "S A S"]:
        return _generator(self.rates(t, m, params))

    def matrix(self, t, m, params):
        g = self.generator(t, m, params)
        if self.scheme == "euler":
            return jnp.eye(g.shape[0], dtype=g.dtype)[:, None, :] + self.dt * g
        ga = jnp.moveaxis(g, 1, 0)  # [A, S, S]: generator when every state plays action a
        return jnp.moveaxis(jax.vmap(lambda q: step_matrix(q, self.dt, self.scheme))(ga), 0, 1)

    def check(self, t, m, params):
        """As `AbstractKernel.check`; a negative off-diagonal rate counts as a negative probability."""
        q = self.rates(t, m, params)
        off = jnp.where(jnp.eye(q.shape[0], dtype=bool)[:, None, :], jnp.inf, q)
        low, err = super().check(t, m, params)
        return jnp.minimum(low, off.min()), err

    def frozen(self, t, m, params):
        return DenseKernel(_Fixed(self.matrix(t, m, params)))

    def expect(self, t, m, params, v):
        if self.scheme == "euler":  # v + Δt Q v, without forming I
            return v[:, None] + self.dt * jnp.einsum("xay,y->xa", self.generator(t, m, params), v)
        return super().expect(t, m, params, v)


class NeighbourKernel(AbstractKernel):
    r"""A sparse kernel: each (x, a) reaches at most K listed states,

        P_t(x′ | x, a) = Σ_k w_t[x, a, k] · 1[x′ = dest[x, a, k]].

    Memory and work are O(S·A·K), never O(S²): use it for moves to neighbours on grids and graphs.
    ``weights`` is an array [S, A, K] (or broadcastable, e.g. [K]) or a callable
    ``(t, m, θ) -> w[S, A, K]`` when the noise depends on time, the mean field or θ.
    """

    dest: Int[Array, "S A K"]
    weights: Any

    def _w(self, t, m, params):
        w = self.weights(t, m, params) if callable(self.weights) else self.weights
        return jnp.broadcast_to(w, self.dest.shape)

    def frozen(self, t, m, params):
        return NeighbourKernel(self.dest, self._w(t, m, params)) if callable(self.weights) else self

    def expect(self, t, m, params, v):
        return (self._w(t, m, params) * v[self.dest]).sum(-1)

    def check(self, t, m, params):
        """As `AbstractKernel.check`, on the weights w[S, A, K] (O(S·A·K))."""
        w = self._w(t, m, params)
        return w.min(), jnp.abs(w.sum(-1) - 1).max()

    def push(self, t, m, params, joint):
        mass = joint[..., None] * self._w(t, m, params)
        return jnp.zeros(joint.shape[0], joint.dtype).at[self.dest.reshape(-1)].add(mass.reshape(-1))

    def matrix(self, t, m, params):
        S, A, K = self.dest.shape
        rows = jnp.zeros((S, A, S), dtype=jnp.result_type(float))
        x = jnp.arange(S)[:, None, None]
        a = jnp.arange(A)[None, :, None]
        return rows.at[x, a, self.dest].add(self._w(t, m, params))
