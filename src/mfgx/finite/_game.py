"""The finite-state, finite-horizon mean-field game."""

from __future__ import annotations

import operator

from collections.abc import Callable
from typing import Any, Literal

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from ._kernels import AbstractKernel, DenseKernel, RateKernel
from ._validate import GameError, validate_game

MeanField = Literal["state", "state_action"]


class FiniteGame(eqx.Module):
    r"""A finite-state, finite-action, finite-horizon mean-field game (rewards are maximised).

    Decision times t = 0..T. With L_t(x, a) = μ_t(x) π_t(a|x) and m_t the mean field
    (m_t = μ_t for ``mean_field="state"``, m_t = L_t for ``"state_action"``):

        μ_{t+1}(x′) = Σ_{x,a} L_t(x, a) P_t(x′ | x, a; m_t, θ),
        J(π; m)     = E[ Σ_{t=0}^{T} r_t(X_t, A_t; m_t, θ) ].

    The reward is paid at every t = 0..T, including T (mfglib's convention). OpenSpiel's games of
    horizon H pay rewards at decision nodes t = 0..H−1: they are this form with T = H − 1.

    **Arguments:**

    - `mu0`: initial distribution μ₀, shape [S].
    - `transition`: a kernel (`DenseKernel`, `RateKernel`, ...) or a callable
      ``(t, m_t, θ) -> P[x, a, x']``.
    - `reward`: callable ``(t, m_t, θ) -> r[x, a]``.
    - `horizon`: T, the last decision time.
    - `params`: θ, any PyTree of arrays (what `jax.vmap` and gradients act on).
    - `mean_field`: what the game's functions receive as m_t.
    - `discount`: γ ∈ (0, 1) makes the game *stationary* (infinite horizon, ``horizon=None``):
      find (μ, π) with π optimal for V = max_a [r(x, a; m) + γ Σ_x′ P(x′|x, a; m) V(x′)] and μ the
      stationary distribution of π. Arrays then keep a time axis of length 1 (t = 0 only).

    The game is checked when built (shapes, μ₀ on the simplex, a stochastic kernel, finite
    rewards) by evaluating it at t = 0 and t = T; checks are skipped for traced inputs.
    """

    mu0: Float[Array, " S"]
    kernel: AbstractKernel
    reward: Callable[[Any, Any, Any], Float[Array, "S A"]]
    horizon: int = eqx.field(static=True)
    n_actions: int = eqx.field(static=True)
    params: PyTree = None
    mean_field: MeanField = eqx.field(static=True, default="state")
    discount: float | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        mu0,
        transition,
        reward,
        horizon: int | None,
        params: PyTree = None,
        *,
        mean_field: MeanField = "state",
        discount: float | None = None,
        n_actions: int | None = None,
        validate: bool = True,
    ):
        self.mu0 = jnp.asarray(mu0, dtype=float)
        self.kernel = transition if isinstance(transition, AbstractKernel) else DenseKernel(transition)
        self.reward = reward
        if discount is not None:
            if horizon is not None:
                raise GameError("a discounted game is stationary: pass horizon=None with discount=γ")
            if not 0 < discount < 1:
                raise GameError(f"discount must be in (0, 1), got {discount!r}")
            horizon = 0
        else:
            horizon = _as_count(horizon, "horizon", minimum=0, hint=" (or None with discount=γ)")
        self.horizon = horizon
        self.discount = None if discount is None else float(discount)
        self.params = params
        if mean_field not in ("state", "state_action"):
            raise GameError(f"mean_field must be 'state' or 'state_action', got {mean_field!r}")
        self.mean_field = mean_field
        if n_actions is None:
            n_actions = _infer_n_actions(self)
        self.n_actions = int(n_actions)
        if validate:
            validate_game(self)

    @property
    def stationary(self) -> bool:
        return self.discount is not None

    @property
    def n_states(self) -> int:
        return self.mu0.shape[0]

    def times(self):
        """Decision times 0..T as an integer array."""
        return jnp.arange(self.horizon + 1)

    def with_params(self, params: PyTree) -> "FiniteGame":
        """The same game with θ replaced (for sweeps: ``jax.vmap(lambda p: solve(g.with_params(p), s))``)."""
        return eqx.tree_at(lambda g: g.params, self, params, is_leaf=lambda x: x is None)

    def mean_field_of(self, mu, policy):
        """m_t from μ_t and π_t: μ_t itself, or the joint L_t = μ_t π_t."""
        return mu if self.mean_field == "state" else mu[..., None] * policy


def _as_count(value, name: str, minimum: int, hint: str = "") -> int:
    """An integer ≥ minimum (Python or NumPy int; bools rejected), else `GameError`."""
    try:
        if isinstance(value, bool):
            raise TypeError
        n = operator.index(value)
    except TypeError:
        n = None
    if n is None or n < minimum:
        kind = "a non-negative int" if minimum == 0 else "a positive int" if minimum == 1 else f"an int ≥ {minimum}"
        raise GameError(f"{name} must be {kind}{hint}, got {value!r}")
    return n


def _infer_n_actions(game: FiniteGame) -> int:
    mu0 = game.mu0
    if mu0.ndim != 1:
        raise GameError(f"mu0 must be a vector of shape [S], got shape {mu0.shape}")
    if game.mean_field == "state":
        r = game.reward(0, mu0, game.params)
    else:
        # The joint mean field needs A: read it from the kernel's dense form on a state mean field.
        raise GameError("pass n_actions=... for games with mean_field='state_action'")
    r = jnp.asarray(r)
    if r.ndim != 2:
        raise GameError(f"reward(t, m, θ) must return shape [S, A], got shape {r.shape}")
    return r.shape[1]


def rate_game(
    mu0,
    rates: Callable,
    running_cost: Callable,
    terminal_cost: Callable,
    n_steps: int,
    dt: float,
    params: PyTree = None,
    *,
    scheme: Literal["euler", "expm", "implicit"] = "expm",
    n_actions: int | None = None,
) -> FiniteGame:
    r"""A continuous-time finite-state game with costs (minimised), on the grid t_n = nΔt.

    With generator Q_t(x, y; a, μ, θ) (``rates(t, μ, θ) -> q[x, a, y]``), running cost
    f(t, x, a, μ, θ) (``running_cost(t, μ, θ) -> f[x, a]``) and terminal cost g(x, μ, θ)
    (``terminal_cost(μ, θ) -> g[x]``), the agent minimises

        E[ Σ_{n=0}^{N−1} Δt f(t_n, X_n, A_n, μ_n) + g(X_N, μ_N) ],   N = ``n_steps``,

    with X_{n+1} ~ P_n(·|X_n, A_n), P_n the step matrix of ``scheme`` (see `RateKernel`). It is the
    `FiniteGame` with T = N, r_n = −Δt f for n < N, r_N = −g; the value is V = −u (u the cost-to-go
    of the HJB u_n = min_a [Δt f + P_n u_{n+1}]). Functions receive physical time t_n = nΔt.
    """
    n_steps = _as_count(n_steps, "n_steps", minimum=1)
    if not dt > 0:
        raise GameError(f"dt must be positive, got {dt!r}")

    def kernel_rates(n, m, p):
        return rates(n * dt, m, p)

    def reward(n, m, p):
        f = running_cost(n * dt, m, p)
        g = jnp.broadcast_to(jnp.asarray(terminal_cost(m, p))[:, None], f.shape)
        return jnp.where(n < n_steps, -dt * f, -g)

    return FiniteGame(
        mu0,
        RateKernel(kernel_rates, dt, scheme),
        reward,
        n_steps,
        params,
        n_actions=n_actions,
    )
