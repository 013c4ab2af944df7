"""Backward induction (best responses, policy evaluation) and forward propagation of the population."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import lineax as lx
from jax import lax
from jaxtyping import Array, Float

from ._game import FiniteGame
from ._validate import check_distribution

Flow = Float[Array, "T1 S"]
Policy = Float[Array, "T1 S A"]


def rewards(game: FiniteGame, mf) -> Float[Array, "T1 S A"]:
    """r_t(x, a; m_t, θ) for every t = 0..T, given the mean-field flow m."""
    return jax.vmap(game.reward, in_axes=(0, 0, None))(game.times(), mf, game.params)


def _backward(game: FiniteGame, mf, pick, extra=None):
    """Q_t = r_t + E[V_{t+1} | x, a] from t = T down to 0, with (V_t, π_t) = pick(Q_t, extra_t).

    Per-time arrays travel as the scan's inputs (not indexed by t from the closure): cheaper, and
    the only form whose reverse-mode transpose JAX handles inside checkpointed loops.
    """
    r = rewards(game, mf)

    def step(v_next, xs):
        t, r_t, m_t, e_t = xs
        q = r_t + game.kernel.expect(t, m_t, game.params, v_next)
        v, pi = pick(q, e_t)
        return v, (q, v, pi)

    v_end = jnp.zeros(game.n_states, r.dtype)
    _, (q, v, pi) = lax.scan(step, v_end, (game.times(), r, mf, extra), reverse=True, unroll=game.horizon <= 16)
    return q, v, pi


@functools.singledispatch
def best_response(game: FiniteGame, mf, temperature=None):
    r"""Best response to the mean-field flow m by backward induction.

    Exact (``temperature=None``): V_t = max_a Q_t, π_t uniform over the maximisers (exact ties).
    Softmax (``temperature=τ > 0``), the entropy-regularised best response:
    V_t = τ log Σ_a exp(Q_t/τ), π_t = softmax(Q_t/τ); it tends to the exact one as τ → 0.

    Returns (policy π[T+1, S, A], Q[T+1, S, A], V[T+1, S]).
    """
    pick = _greedy(temperature)
    if game.stationary:
        return _policy_iteration(game, mf, pick, temperature)
    q, v, pi = _backward(game, mf, pick)
    return pi, q, v


def check_temperature(temperature) -> None:
    """Raise unless ``temperature`` is None (exact) or, when concrete, a positive finite number."""
    if temperature is None or isinstance(temperature, jax.core.Tracer):
        return
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be None or a positive number, got {temperature!r}") from None
    if not (value > 0 and value < float("inf")):
        raise ValueError(f"temperature must be positive and finite (or None for the exact game), got {temperature!r}")


def _greedy(temperature):
    """(V, π) from Q: max and uniform over the maximisers, or τ·logsumexp(Q/τ) and softmax(Q/τ)."""
    check_temperature(temperature)
    if temperature is None:

        def pick(q, _=None):  # exact ties share the mass equally (as mfglib's greedy policy)
            v = q.max(-1)
            best = (q == v[..., None]).astype(q.dtype)
            return v, best / best.sum(-1, keepdims=True)
    else:

        def pick(q, _=None):
            z = q / temperature
            return temperature * jax.nn.logsumexp(z, -1), jax.nn.softmax(z, -1)

    return pick


@functools.singledispatch
def evaluate(game: FiniteGame, policy: Policy, mf, temperature=None):
    """Q^π and V^π of a policy against a fixed mean-field flow m.

    With ``temperature=τ`` the value includes the entropy bonus τ·H(π_t(·|x)) at every step (the
    value of the entropy-regularised game, whose best response is the softmax one).
    """
    check_distribution(policy, "policy", (game.horizon + 1, game.n_states, game.n_actions))
    check_temperature(temperature)
    if game.stationary:
        v = _stationary_value(game, policy[0], mf[0], temperature)
        return _stationary_q(game, mf[0], v)[None], v[None]

    def pick(q, pi_t):
        return (pi_t * q).sum(-1) + _entropy_bonus(pi_t, temperature), None

    q, v, _ = _backward(game, mf, pick, policy)
    return q, v


def _entropy_bonus(pi, temperature):
    if temperature is None:
        return 0.0
    return -temperature * (pi * jnp.log(jnp.where(pi > 0, pi, 1.0))).sum(-1)


@functools.singledispatch
def propagate(game: FiniteGame, policy: Policy) -> Flow:
    """The population flow μ[T+1, S] of a policy, with the kernel at each t evaluated on m_t.
    For a stationary game: the stationary distribution μ[1, S] of the policy."""
    check_distribution(policy, "policy", (game.horizon + 1, game.n_states, game.n_actions))
    if game.stationary:
        return _stationary_distribution(game, policy[0])[None]

    def step(mu, xs):
        t, pi_t = xs
        joint = mu[:, None] * pi_t
        mu_next = game.kernel.push(t, game.mean_field_of(mu, pi_t), game.params, joint)
        return mu_next, mu_next

    _, rest = lax.scan(step, game.mu0, (jnp.arange(game.horizon), policy[:-1]), unroll=game.horizon <= 16)
    return jnp.concatenate([game.mu0[None], rest], axis=0)


def score(game: FiniteGame, policy: Policy, temperature=None):
    """Everything exploitability needs for one policy: flow μ, mean field m, (π*, Q*, V*) and (Q^π, V^π)."""
    mu = propagate(game, policy)
    mf = game.mean_field_of(mu, policy)
    br, q_star, v_star = best_response(game, mf, temperature)
    q_pi, v_pi = evaluate(game, policy, mf, temperature)
    weights = mu[0] if getattr(game, "stationary", False) else game.mu0
    expl = jnp.dot(weights, v_star[0] - v_pi[0])
    return dict(mu=mu, mf=mf, br=br, q_star=q_star, v_star=v_star, q_pi=q_pi, v_pi=v_pi, expl=expl)


def exploitability(game: FiniteGame, policy: Policy, temperature=None) -> Float[Array, ""]:
    r"""expl(π) = Σ_x μ₀(x) [max_a Q*_0(x, a) − Σ_a π_0(a|x) Q^π_0(x, a)], with both Q-values
    computed against the mean field induced by π. It is ≥ 0, and 0 exactly at a Nash equilibrium.
    This is mfglib's definition; for an OpenSpiel game of horizon H it equals NashConv with T = H−1.
    For a stationary game the weights are the stationary distribution μ of π instead of μ₀.

    With ``temperature=τ``: the exploitability in the entropy-regularised game (soft best-response
    value minus the policy's value with entropy bonus), which is 0 at the fixed point of `Softmax(τ)`.
    """
    return score(game, policy, temperature)["expl"]


@functools.singledispatch
def uniform_policy(game: FiniteGame) -> Policy:
    S, A = game.n_states, game.n_actions
    return jnp.full((game.horizon + 1, S, A), 1.0 / A, dtype=game.mu0.dtype)


# --- stationary (discounted, infinite-horizon) games -------------------------------------------

def _linear_solve(fn, rhs):
    """Matrix-free GMRES (see _adjoint.py for why not a dense factorisation)."""
    op = lx.FunctionLinearOperator(fn, jax.ShapeDtypeStruct(rhs.shape, rhs.dtype))
    solver = lx.GMRES(rtol=1e-13, atol=1e-14, restart=50, max_steps=20 * rhs.shape[0] + 100)
    return lx.linear_solve(op, rhs, solver).value


def _stationary_q(game: FiniteGame, m, v):
    """Q(x, a) = r(x, a; m) + γ E[v(X′) | x, a]."""
    return game.reward(0, m, game.params) + game.discount * game.kernel.expect(0, m, game.params, v)


def _stationary_value(game: FiniteGame, pi, m, temperature=None):
    """Solve V = Σ_a π (r + τ·(−log π)) + γ P^π V (τ = 0 without a temperature)."""
    r = (pi * game.reward(0, m, game.params)).sum(-1) + _entropy_bonus(pi, temperature)

    def apply(v):
        return v - game.discount * (pi * game.kernel.expect(0, m, game.params, v)).sum(-1)

    return _linear_solve(apply, r)


def _policy_iteration(game: FiniteGame, mf, pick, temperature, max_iter: int = 200):
    """(Soft) policy iteration: evaluate π exactly, improve greedily (or by softmax), until stable."""
    m = mf[0]

    def improve(pi):
        v = _stationary_value(game, pi, m, temperature)
        q = _stationary_q(game, m, v)
        return pick(q)[1], q

    def cond(c):
        k, _, _, change = c
        return (k < max_iter) & (change > 1e-13)

    def body(c):
        k, pi, _, _ = c
        new, q = improve(pi)
        return k + 1, new, q, jnp.max(jnp.abs(new - pi))

    S, A = game.n_states, game.n_actions
    pi0 = jnp.full((S, A), 1.0 / A, game.mu0.dtype)
    init = (jnp.asarray(0), pi0, jnp.zeros((S, A), game.mu0.dtype), jnp.asarray(jnp.inf, game.mu0.dtype))
    _, pi, q, _ = lax.while_loop(cond, body, init)
    v = pick(q)[0]
    return pi[None], q[None], v[None]


def _stationary_distribution(game: FiniteGame, pi, max_iter: int = 100):
    """μ = μ P^π(m(μ)): a linear solve for μ (I − P^π + 𝟙𝟙ᵀ) = 𝟙ᵀ, repeated while m depends on μ."""

    def stationary_given(mu_guess):
        m = game.mean_field_of(mu_guess, pi)

        def apply(x):
            return x - game.kernel.push(0, m, game.params, x[:, None] * pi) + x.sum()

        mu = _linear_solve(apply, jnp.ones_like(mu_guess))
        return jnp.clip(mu, 0.0, None) / jnp.clip(mu, 0.0, None).sum()

    def cond(c):
        k, _, change = c
        return (k < max_iter) & (change > 1e-14)

    def body(c):
        k, mu, _ = c
        new = stationary_given(mu)
        return k + 1, new, jnp.max(jnp.abs(new - mu))

    _, mu, _ = lax.while_loop(cond, body, (jnp.asarray(0), game.mu0, jnp.asarray(jnp.inf, game.mu0.dtype)))
    return mu
