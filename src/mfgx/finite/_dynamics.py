"""Backward induction (best responses, policy evaluation) and forward propagation of the population."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from ._game import FiniteGame

Flow = Float[Array, "T1 S"]
Policy = Float[Array, "T1 S A"]


def rewards(game: FiniteGame, mf) -> Float[Array, "T1 S A"]:
    """r_t(x, a; m_t, θ) for every t = 0..T, given the mean-field flow m."""
    return jax.vmap(game.reward, in_axes=(0, 0, None))(game.times(), mf, game.params)


def _backward(game: FiniteGame, mf, pick):
    """Q_t = r_t + E[V_{t+1} | x, a] from t = T down to 0, with (V_t, π_t) = pick(Q_t, t)."""
    r = rewards(game, mf)

    def step(v_next, t):
        q = r[t] + game.kernel.expect(t, mf[t], game.params, v_next)
        v, pi = pick(q, t)
        return v, (q, v, pi)

    v_end = jnp.zeros(game.n_states, r.dtype)
    _, (q, v, pi) = lax.scan(step, v_end, game.times(), reverse=True)
    return q, v, pi


def best_response(game: FiniteGame, mf, temperature=None):
    r"""Best response to the mean-field flow m by backward induction.

    Exact (``temperature=None``): V_t = max_a Q_t, π_t = one-hot argmax (first maximiser).
    Softmax (``temperature=τ > 0``), the entropy-regularised best response:
    V_t = τ log Σ_a exp(Q_t/τ), π_t = softmax(Q_t/τ); it tends to the exact one as τ → 0.

    Returns (policy π[T+1, S, A], Q[T+1, S, A], V[T+1, S]).
    """
    if temperature is None:

        def pick(q, t):
            return q.max(-1), jax.nn.one_hot(jnp.argmax(q, -1), q.shape[-1], dtype=q.dtype)
    else:

        def pick(q, t):
            z = q / temperature
            return temperature * jax.nn.logsumexp(z, -1), jax.nn.softmax(z, -1)

    q, v, pi = _backward(game, mf, pick)
    return pi, q, v


def evaluate(game: FiniteGame, policy: Policy, mf):
    """Q^π and V^π of a policy against a fixed mean-field flow m (no regularisation)."""

    def pick(q, t):
        return (policy[t] * q).sum(-1), policy[t]

    q, v, _ = _backward(game, mf, pick)
    return q, v


def propagate(game: FiniteGame, policy: Policy) -> Flow:
    """The population flow μ[T+1, S] of a policy, with the kernel at each t evaluated on m_t."""

    def step(mu, t):
        joint = mu[:, None] * policy[t]
        mu_next = game.kernel.push(t, game.mean_field_of(mu, policy[t]), game.params, joint)
        return mu_next, mu_next

    _, rest = lax.scan(step, game.mu0, jnp.arange(game.horizon))
    return jnp.concatenate([game.mu0[None], rest], axis=0)


def mean_field_flow(game: FiniteGame, mu: Flow, policy: Policy):
    return game.mean_field_of(mu, policy)


def score(game: FiniteGame, policy: Policy):
    """Everything exploitability needs for one policy: flow μ, mean field m, (π*, Q*, V*) and (Q^π, V^π)."""
    mu = propagate(game, policy)
    mf = game.mean_field_of(mu, policy)
    br, q_star, v_star = best_response(game, mf)
    q_pi, v_pi = evaluate(game, policy, mf)
    expl = jnp.dot(game.mu0, v_star[0] - v_pi[0])
    return dict(mu=mu, mf=mf, br=br, q_star=q_star, v_star=v_star, q_pi=q_pi, v_pi=v_pi, expl=expl)


def exploitability(game: FiniteGame, policy: Policy) -> Float[Array, ""]:
    r"""expl(π) = Σ_x μ₀(x) [max_a Q*_0(x, a) − Σ_a π_0(a|x) Q^π_0(x, a)], with both Q-values
    computed against the mean field induced by π. It is ≥ 0, and 0 exactly at a Nash equilibrium.
    This is mfglib's definition; for an OpenSpiel game of horizon H it equals NashConv with T = H−1.
    """
    return score(game, policy)["expl"]


def uniform_policy(game: FiniteGame) -> Policy:
    S, A = game.n_states, game.n_actions
    return jnp.full((game.horizon + 1, S, A), 1.0 / A, dtype=game.mu0.dtype)
