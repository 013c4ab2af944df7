"""Continuous-time finite-state games whose control is a vector of jump rates, with a closed-form
best response (the calibration paper's linear-quadratic and bike-share games)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

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

    On the grid t_n = nΔt, n = 0..N, with generator Q(a)_xy = a_xy (y ≠ x) and step matrix P_n of
    the ``scheme``, the population moves by μ_{n+1} = μ_n P_n with P_n computed **once** from the
    control a_n of the backward pass (the flow is that of the policy defining u).

    ``scheme="euler"`` (default): P_n = I + ΔtQ(a_n) and the explicit HJB

        u_N = g(μ_N),   u_n = Δt f(t_n, a_n, μ_n) + P_n u_{n+1},
        a_n(x) = argmin_a [ f(t_n, x, a, μ_n) + Σ_{y≠x} a_xy (u_{n+1}(y) − u_{n+1}(x)) ],

    the last in closed form by ``best_rates``. μ stays on the simplex only if Δt Σ_y a_xy ≤ 1;
    a flow that loses positivity raises an error naming that condition.

    ``scheme="calibration_paper"``: the discretisation of the calibration paper's reference code
    (Thöni et al. 2026, KachmanLab/MFGParameterCalibration), for reproducing its data and results.
    The HJB is the Euler one above, but the forward step n pushes μ_n with rates recomputed from
    u_n instead of the a_n (from u_{n+1}) that defined u:

        μ_{n+1} = μ_n (I + Δt Q(c_n)),   c_n = best_rates(t_n, μ_n, θ, u_n),   u_N = g(μ_N).

    So the flow is not that of the policy defining u; the discrete game is then ill-defined and
    the exploitability mfgx reports for it measures this O(Δt) mismatch, not a Nash gap. The
    returned control is c. (The paper evaluates μ_n in c_n on the forward iterate, mfgx on the
    flow the backward pass saw; the two agree at the fixed point, and exactly for rates that do not
    depend on μ, such as `lq_rates`.) MFG only.

    ``scheme="implicit"``: P_n = (I − ΔtQ(a_n))⁻¹, stochastic and ≥ 0 for every Δt (I − ΔtQ is an
    M-matrix), and the implicit HJB

        u_n = P_n (Δt f(t_n, a_n, μ_n) + u_{n+1}),
        a_n(x) = argmin_a [ f(t_n, x, a, μ_n) + Σ_{y≠x} a_xy (u_n(y) − u_n(x)) ],

    a fixed point in (u_n, a_n) found by policy iteration (Howard: ``best_rates`` at u_n, evaluate,
    repeat; monotone, superlinear). This is the exact dynamic programme of a discrete chain (in
    layer n, from x: jump to (n, y) w.p. Δt a_xy / (1 + Δt Σa_x), else go to (n+1, x)), so a_n is
    the exact best response of the discrete game and exploitability is exact. Gradients of u_n
    skip the policy iteration (envelope theorem: ∂u_n/∂a = 0 at the optimum), so the solve is not
    differentiated through its iterations. (No ``"expm"``: with a rate *vector* as control, holding
    it for a whole step has no per-state meaning, so exp(ΔtQ) has no exact best response.)

    ``problem="mfc"``: the social planner's problem (mean-field control), minimising the social cost
    J(a) = Σ_n Δt ⟨ν_n, f(t_n, ·, a_n, μ_n)⟩ + ⟨μ_N, g(μ_N)⟩ (ν_n = μ_n for Euler, μ_{n+1} for the
    implicit scheme, the mass that pays f in the discrete game). By Pontryagin, the optimal control
    is the pointwise minimiser above with u replaced by the adjoint v_n = ∂J/∂μ_n:

        v_N = g(μ_N) + ∇_μ⟨μ, g(μ)⟩ − g  i.e.  v_N(x) = g(x, μ_N) + Σ_y μ_N(y) ∂g(y, μ_N)/∂μ(x),
        v_n = [the scheme's step from v_{n+1}] + Δt Σ_y ν_n(y) ∂f(t_n, y, a_n(y), μ_n)/∂μ(x),

    the derivatives by autodiff (any shape of θ; a θ that depends on μ, e.g. a path on the iterate,
    contributes its ∂θ/∂μ term automatically). Then `best_response` is the planner's update,
    the value is −v and `exploitability` the planner's gap ⟨μ₀, v^π_0 − v*_0⟩ (0 at the optimum);
    `social_cost` gives J and `individual_value` the agents' own cost-to-go.

    Arrays follow `FiniteGame`: the value is −u and the "policy" is the control a[N+1, S, S] (row N
    unused).

    **Arguments:**

    - `mu0`: μ₀ [S].
    - `running_cost`: ``(t, μ, θ, a[S, S]) -> f[S]``.
    - `terminal_cost`: ``(μ, θ) -> g[S]``.
    - `best_rates`: ``(t, μ, θ, u[S]) -> a*[S, S]`` (diagonal ignored), the minimiser of
      f(t, x, a, μ) + Σ_y a_xy (u(y) − u(x)) for every x.
    - `n_steps`, `dt`: N and Δt. `params`: θ.
    - `scheme`: "euler", "implicit" or "calibration_paper". `problem`: "mfg" (Nash) or "mfc" (social optimum).
    """

    mu0: Float[Array, " S"]
    running_cost: Callable[..., Float[Array, " S"]]
    terminal_cost: Callable[..., Float[Array, " S"]]
    best_rates: Callable[..., Float[Array, "S S"]]
    horizon: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    params: PyTree = None
    scheme: str = eqx.field(static=True, default="euler")
    problem: str = eqx.field(static=True, default="mfg")

    stationary = False
    mean_field = "state"
    smooth_response = True

    def __init__(
        self, mu0, running_cost, terminal_cost, best_rates, n_steps: int, dt: float, params: PyTree = None,
        *, scheme: Literal["euler", "implicit", "calibration_paper"] = "euler", problem: Literal["mfg", "mfc"] = "mfg",
    ):
        self.mu0 = jnp.asarray(mu0, dtype=float)
        self.running_cost, self.terminal_cost, self.best_rates = running_cost, terminal_cost, best_rates
        if not (isinstance(n_steps, (int, np.integer)) and n_steps >= 1):
            raise GameError(f"n_steps must be a positive int, got {n_steps!r}")
        if not dt > 0:
            raise GameError(f"dt must be positive, got {dt!r}")
        if scheme not in SCHEMES:
            hint = " ('expm' exists for finite-action rate games only, see ControlGame)" if scheme == "expm" else ""
            raise GameError(f"unknown scheme {scheme!r}: use 'euler', 'implicit' or 'calibration_paper'{hint}")
        if scheme == "calibration_paper" and problem != "mfg":
            raise GameError("scheme='calibration_paper' reproduces the paper's Nash (MFG) solver only: use problem='mfg'")
        if problem not in ("mfg", "mfc"):
            raise GameError(f"problem must be 'mfg' (Nash equilibrium) or 'mfc' (social optimum), got {problem!r}")
        self.horizon, self.dt, self.params = int(n_steps), float(dt), params
        self.scheme, self.problem = scheme, problem
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


SCHEMES = ("euler", "implicit", "calibration_paper")

# Policy iteration of the implicit HJB step: stop when max|Δu| ≤ HOWARD_RTOL (1 + max|u|).
HOWARD_RTOL = 1e-12
HOWARD_MAX_STEPS = 100


def _off_diagonal(a):
    return a * (1 - jnp.eye(a.shape[-1], dtype=a.dtype))


def _generator(a):
    a = _off_diagonal(a)
    return a - jnp.diag(a.sum(-1))


# The implicit step applies P = (I − ΔtQ)⁻¹ by solving with one vector, never forming P, and
# differentiates the solve by dx = M⁻¹(dv − dM x) rather than through the LU factors. Both avoid
# triangular solves with a matrix right-hand side, which are very slow on CPU (jax 0.10.2: forming
# (I − ΔtQ)⁻¹ by solve(M, I) takes ~30 ms at d = 32, one vector ~50 µs).
@jax.custom_jvp
def _solve(M, v):
    """M⁻¹ v for one vector v."""
    return jnp.linalg.solve(M, v)


@_solve.defjvp
def _solve_jvp(primals, tangents):
    M, v = primals
    dM, dv = tangents
    x = _solve(M, v)
    return x, jnp.linalg.solve(lax.stop_gradient(M), dv - dM @ x)


def _apply(game: ControlGame, a, v):
    """P_n v: v + ΔtQv (Euler) or (I − ΔtQ)⁻¹ v (implicit); ``a`` has a zero diagonal."""
    if game.scheme != "implicit":  # Qv = a v − (Σ_y a_xy) v, without forming Q
        return v + game.dt * (a @ v - a.sum(-1) * v)
    Q = _generator(a)
    return _solve(jnp.eye(Q.shape[0], dtype=Q.dtype) - game.dt * Q, v)


def _push(game: ControlGame, a, mu):
    """μ P_n: μ + Δt μQ (Euler) or μ (I − ΔtQ)⁻¹ (implicit); ``a`` has a zero diagonal."""
    if game.scheme != "implicit":
        return mu + game.dt * (mu @ a - mu * a.sum(-1))
    Q = _generator(a)
    return _solve((jnp.eye(Q.shape[0], dtype=Q.dtype) - game.dt * Q).T, mu)


def _evaluate_step(game: ControlGame, t, m, a, u_next):
    """u_n for a held control: Δt f + P u_{n+1} (Euler) or P (Δt f + u_{n+1}) (implicit)."""
    f = game.running_cost(t, m, game.params, a)
    if game.scheme != "implicit":
        return game.dt * f + _apply(game, a, u_next)
    return _apply(game, a, game.dt * f + u_next)


def _howard(game: ControlGame, t, m, u_next):
    """The implicit HJB step's fixed point u_n (no gradient) and the last policy-iteration change."""
    dyn, static = eqx.partition((game, t, m, u_next), eqx.is_inexact_array)
    game, t, m, u_next = eqx.combine(lax.stop_gradient(dyn), static)

    def improve(u):
        return _evaluate_step(game, t, m, _off_diagonal(game.best_rates(t, m, game.params, u)), u_next)

    def cond(c):
        k, u, change = c
        return (k < HOWARD_MAX_STEPS) & (change > HOWARD_RTOL * (1 + jnp.max(jnp.abs(u))))

    def body(c):
        k, u, _ = c
        new = improve(u)
        return k + 1, new, jnp.max(jnp.abs(new - u))

    u0 = improve(u_next)
    _, u, change = lax.while_loop(cond, body, (jnp.asarray(0), u0, jnp.asarray(jnp.inf, u0.dtype)))
    return u, change / (1 + jnp.max(jnp.abs(u)))


def _mf_derivative(fn, m, weights):
    """Σ_y w(y) ∂fn(m)(y)/∂m(x): the mean-field term of the MFC adjoint."""
    return jax.vjp(fn, m)[1](weights)[0]


def _backward(game: ControlGame, mu, control=None, social: bool | None = None):
    """Cost-to-go u[N+1, S] (the MFC adjoint v if ``social``) and the control used; the best
    response (planner's update for MFC) if no control is given."""
    social = game.problem == "mfc" if social is None else social
    T, dt, p = game.horizon, game.dt, game.params
    u_end = game.terminal_cost(mu[T], p)
    if social:
        u_end = u_end + _mf_derivative(lambda mm: game.terminal_cost(mm, p), mu[T], mu[T])
    ts = jnp.arange(T) * dt
    payers = mu[1:] if game.scheme == "implicit" else mu[:-1]
    xs = (ts, mu[:-1], payers, None if control is None else _off_diagonal(control[:-1]))

    def step(u_next, x):
        t, m, w, a = x
        change = jnp.zeros((), m.dtype)
        if a is None:
            if game.scheme != "implicit":
                a = _off_diagonal(game.best_rates(t, m, p, u_next))
            else:
                u_star, change = _howard(game, t, m, u_next)
                a = _off_diagonal(game.best_rates(t, m, p, u_star))
        u = _evaluate_step(game, t, m, a, u_next)
        if control is None and game.scheme == "implicit":
            a = _off_diagonal(game.best_rates(t, m, p, u))  # same value; carries ∂u into the control
        if social:
            u = u + dt * _mf_derivative(lambda mm: game.running_cost(t, mm, p, a), m, w)
        return u, (u, a, change)

    _, (u, a, change) = lax.scan(step, u_end, xs, reverse=True)
    if control is None and game.scheme == "implicit":
        u = eqx.error_if(
            u, jnp.max(change) > 1e3 * HOWARD_RTOL,
            f"policy iteration of the implicit HJB step did not converge in {HOWARD_MAX_STEPS} steps",
        )
    u = jnp.concatenate([u, u_end[None]])
    a = jnp.concatenate([a, jnp.zeros_like(a[:1])])
    if control is None and game.scheme == "calibration_paper":  # forward rates recomputed from u_n
        a = jax.vmap(lambda t, m, v: _off_diagonal(game.best_rates(t, m, p, v)))(jnp.arange(T + 1) * dt, mu, u)
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
        nxt = _push(game, a, mu)
        return nxt, nxt

    _, rest = lax.scan(step, game.mu0, _off_diagonal(control[:-1]))
    mu = jnp.concatenate([game.mu0[None], rest])
    if game.scheme != "implicit":
        message = (
            "negative mass in the explicit Euler flow: Δt × total out-rate exceeded 1; use more time points "
            "or scheme='implicit'"
        )
    else:
        message = "negative mass in the implicit flow: best_rates returned negative rates"
    return eqx.error_if(mu, jnp.any(mu < -1e-9), message)


def social_cost(game: ControlGame, control) -> Float[Array, ""]:
    r"""J(a) = Σ_n Δt ⟨ν_n, f(t_n, ·, a_n, μ_n)⟩ + ⟨μ_N, g(μ_N)⟩ = ⟨μ₀, u^a_0⟩ along the flow μ of the
    control a (ν_n = μ_n for Euler, μ_{n+1} implicit): the social planner's objective, minimised
    by the solution of ``problem="mfc"``. Differentiable in the control and in θ."""
    mu = propagate(game, control)
    u, _ = _backward(game, mu, control, social=False)
    return jnp.dot(game.mu0, u[0])


def individual_value(game: ControlGame, control) -> Float[Array, "T1 S"]:
    """The agents' own cost-to-go u[N+1, S] of the control along its flow (no mean-field term, for
    either ``problem``); for a Nash equilibrium it is −`Equilibrium.value`."""
    mu = propagate(game, control)
    return _backward(game, mu, control, social=False)[0]


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
