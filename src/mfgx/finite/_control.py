"""Continuous-time finite-state games whose control is a vector of jump rates, with a closed-form
best response (the calibration paper's linear-quadratic and bike-share games)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, PyTree

from ._dynamics import best_response, evaluate, propagate, uniform_policy
from ._validate import GameError, check_distribution

Control = Float[Array, "T1 S S"]


class ControlGame(eqx.Module):
    r"""A game whose control at state x is a vector of jump rates a_xy ≥ 0 (y ≠ x), with costs.

    On the grid t_n = nΔt, n = 0..N, with explicit Euler steps P_n = I + Δt Q(a_n), Q(a)_xy = a_xy:

        μ_{n+1} = μ_n P_n,
        u_N = g(μ_N),   u_n = Δt f(t_n, a_n, μ_n) + P_n u_{n+1}          (cost-to-go, minimised),
        a*_n(x) = argmin_a [ f(t_n, x, a, μ_n) + Σ_{y≠x} a_xy (u_{n+1}(y) − u_{n+1}(x)) ],

    the last given in closed form by ``best_rates``; it is the exact best response of this
    discrete game. Arrays follow `FiniteGame`: the value is V = −u and the "policy" is the control
    a[N+1, S, S] (row N unused). Euler keeps μ on the simplex only if Δt Σ_y a_xy ≤ 1: a flow that
    loses positivity raises an error naming that condition.

    **Arguments:**

    - `mu0`: μ₀ [S].
    - `running_cost`: ``(t, μ, θ, a[S, S]) -> f[S]``.
    - `terminal_cost`: ``(μ, θ) -> g[S]``.
    - `best_rates`: ``(t, μ, θ, u_next[S]) -> a*[S, S]`` (diagonal ignored).
    - `n_steps`, `dt`: N and Δt. `params`: θ.
    """

    mu0: Float[Array, " S"]
    running_cost: Callable[..., Float[Array, " S"]]
    terminal_cost: Callable[..., Float[Array, " S"]]
    best_rates: Callable[..., Float[Array, "S S"]]
    horizon: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    params: PyTree = None

    stationary = False
    mean_field = "state"
    smooth_response = True

    def __init__(self, mu0, running_cost, terminal_cost, best_rates, n_steps: int, dt: float, params: PyTree = None):
        self.mu0 = jnp.asarray(mu0, dtype=float)
        self.running_cost, self.terminal_cost, self.best_rates = running_cost, terminal_cost, best_rates
        if not (isinstance(n_steps, (int, np.integer)) and n_steps >= 1):
            raise GameError(f"n_steps must be a positive int, got {n_steps!r}")
        if not dt > 0:
            raise GameError(f"dt must be positive, got {dt!r}")
        self.horizon, self.dt, self.params = int(n_steps), float(dt), params
        _validate(self)

    @property
    def n_states(self) -> int:
        return self.mu0.shape[0]

    @property
    def n_actions(self) -> int:
        return self.mu0.shape[0]  # a control is a row of rates to every state

    def times(self):
        return jnp.arange(self.horizon + 1)

    def with_params(self, params: PyTree) -> "ControlGame":
        return eqx.tree_at(lambda g: g.params, self, params, is_leaf=lambda x: x is None)

    def mean_field_of(self, mu, control):
        return mu


def _off_diagonal(a):
    return a * (1 - jnp.eye(a.shape[-1], dtype=a.dtype))


def _step_matrix(game: ControlGame, a):
    a = _off_diagonal(a)
    return jnp.eye(a.shape[0], dtype=a.dtype) + game.dt * (a - jnp.diag(a.sum(-1)))


def _backward(game: ControlGame, mu, control=None):
    """Cost-to-go u[N+1, S] (and the control used) by the Euler recursion; best response if no control."""
    T, dt = game.horizon, game.dt
    u_end = game.terminal_cost(mu[T], game.params)
    ts = jnp.arange(T) * dt
    xs = (ts, mu[:-1], None if control is None else control[:-1])

    def step(u_next, x):
        t, m, a = x
        if a is None:
            a = _off_diagonal(game.best_rates(t, m, game.params, u_next))
        u = dt * game.running_cost(t, m, game.params, a) + _step_matrix(game, a) @ u_next
        return u, (u, a)

    _, (u, a) = lax.scan(step, u_end, xs, reverse=True)
    u = jnp.concatenate([u, u_end[None]])
    a = jnp.concatenate([a, jnp.zeros_like(a[:1])])
    return u, a


@best_response.register
def _(game: ControlGame, mf, temperature=None):
    if temperature is not None:
        raise ValueError("ControlGame best responses are closed-form: no temperature")
    u, a = _backward(game, mf)
    return a, None, -u


@evaluate.register
def _(game: ControlGame, control, mf, temperature=None):
    if temperature is not None:
        raise ValueError("ControlGame has no entropy-regularised value: no temperature")
    _check_control(game, control)
    u, _ = _backward(game, mf, control)
    return None, -u


@propagate.register
def _(game: ControlGame, control) -> Float[Array, "T1 S"]:
    _check_control(game, control)

    def step(mu, a):
        nxt = mu @ _step_matrix(game, a)
        return nxt, nxt

    _, rest = lax.scan(step, game.mu0, control[:-1])
    mu = jnp.concatenate([game.mu0[None], rest])
    return eqx.error_if(
        mu, jnp.any(mu < -1e-9),
        "negative mass in the explicit Euler flow: Δt × total out-rate exceeded 1; use more time points",
    )


@uniform_policy.register
def _(game: ControlGame) -> Control:
    """The zero control (nobody moves): its flow is μ₀ at every time."""
    S = game.n_states
    return jnp.zeros((game.horizon + 1, S, S), game.mu0.dtype)


def _check_control(game: ControlGame, control) -> None:
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves(control)):
        return
    a = np.asarray(control)
    shape = (game.horizon + 1, game.n_states, game.n_states)
    if a.shape != shape:
        raise GameError(f"control must have shape {shape} (rates a[n, x, y]), got {a.shape}")
    off = a * (1 - np.eye(shape[1]))
    if not np.all(np.isfinite(off)) or np.any(off < 0):
        bad = ~np.isfinite(off) | (off < 0)
        i = tuple(int(j) for j in np.argwhere(bad)[0])
        raise GameError(f"control rates must be finite and non-negative; got {off[i]} at (n, x, y) = {i}")


def _validate(game: ControlGame) -> None:
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((game.mu0, game.params))):
        return
    S = game.n_states
    check_distribution(game.mu0, "mu0", (S,))
    u = np.asarray(game.terminal_cost(game.mu0, game.params))
    if u.shape != (S,) or not np.all(np.isfinite(u)):
        raise GameError(f"terminal_cost(μ, θ) must return finite values of shape ({S},), got shape {u.shape}")
    a = np.asarray(game.best_rates(0.0, game.mu0, game.params, jnp.asarray(u)))
    if a.shape != (S, S):
        raise GameError(f"best_rates(t, μ, θ, u) must return shape [S, S] = {(S, S)}, got {a.shape}")
    f = np.asarray(game.running_cost(0.0, game.mu0, game.params, jnp.asarray(a)))
    if f.shape != (S,) or not np.all(np.isfinite(f)):
        raise GameError(f"running_cost(t, μ, θ, a) must return finite values of shape ({S},), got shape {f.shape}")
    _check_control(game, np.broadcast_to(a, (game.horizon + 1, S, S)))
