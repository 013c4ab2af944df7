"""Backward induction (best responses, policy evaluation) and forward propagation of the population."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from . import _stationary
from ._game import FiniteGame
from ._kernels import RateKernel
from ._validate import check_distribution

Flow = Float[Array, "T1 S"]
Policy = Float[Array, "T1 S A"]


def _unroll(game: FiniteGame) -> bool:
    """Unroll short scans (≤ 16 steps) unless a step is costly to compile (a matrix exponential or
    inverse per action: unrolling multiplies its compile time by the horizon, 3× for T = 12)."""
    kernel = game.kernel
    heavy = isinstance(kernel, RateKernel) and kernel.scheme in ("expm", "implicit")
    return game.horizon <= 16 and not heavy


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
    _, (q, v, pi) = lax.scan(step, v_end, (game.times(), r, mf, extra), reverse=True, unroll=_unroll(game))
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
        pi, q, v, _ = _stationary.value_iteration(game, mf[0], pick, temperature)
        return pi[None], q[None], v[None]
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
        q, v, _ = _stationary.policy_value(game, policy[0], mf[0], temperature)
        return q[None], v[None]

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
        return _stationary.stationary_distribution(game, policy[0])[0][None]

    def step(mu, xs):
        t, pi_t = xs
        joint = mu[:, None] * pi_t
        mu_next = game.kernel.push(t, game.mean_field_of(mu, pi_t), game.params, joint)
        return mu_next, mu_next

    _, rest = lax.scan(step, game.mu0, (jnp.arange(game.horizon), policy[:-1]), unroll=_unroll(game))
    return jnp.concatenate([game.mu0[None], rest], axis=0)


def score(game: FiniteGame, policy: Policy, temperature=None, warm=None):
    """Everything exploitability needs for one policy: flow μ, mean field m, (π*, Q*, V*) and (Q^π, V^π),
    and ``ok``: whether every inner loop converged (always True for finite-horizon games). ``warm``: a
    previous score to start the inner loops of a stationary game from (ignored otherwise)."""
    if getattr(game, "stationary", False):
        check_distribution(policy, "policy", (1, game.n_states, game.n_actions))
        return _stationary.score(game, policy, _greedy(temperature), temperature, warm)
    mu = propagate(game, policy)
    mf = game.mean_field_of(mu, policy)
    br, q_star, v_star = best_response(game, mf, temperature)
    q_pi, v_pi = evaluate(game, policy, mf, temperature)
    expl = jnp.dot(game.mu0, v_star[0] - v_pi[0])
    return dict(mu=mu, mf=mf, br=br, q_star=q_star, v_star=v_star, q_pi=q_pi, v_pi=v_pi, expl=expl,
                ok=jnp.asarray(True))


def exploitability(game: FiniteGame, policy: Policy, temperature=None) -> Float[Array, ""]:
    r"""expl(π) = Σ_x μ₀(x) [max_a Q*_0(x, a) − Σ_a π_0(a|x) Q^π_0(x, a)], with both Q-values
    computed against the mean field induced by π. It is ≥ 0, and 0 exactly at a Nash equilibrium.
    This is mfglib's definition; for an OpenSpiel game of horizon H it equals NashConv with T = H−1.

    **Discounted (stationary) games**: expl(π) = Σ_x μ^π(x) [V*(x) − V^π(x)], with μ^π the stationary
    distribution of π (μ = μ P^π(m(μ)), the one reached from μ₀ when there are several), V* and V^π
    the exact (to ~1e-12 relative) discounted values against m(μ^π). BenchMFG's measure (μ after a
    fixed number of mean-field steps, values truncated after a fixed number of sweeps) is
    `benchmfg_exploitability`.

    Compiled once per game structure and shapes (`equinox.filter_jit`; games holding functions
    are fine) and reused by later calls.

    With ``temperature=τ``: the exploitability in the entropy-regularised game (soft best-response
    value minus the policy's value with entropy bonus), which is 0 at the fixed point of `Softmax(τ)`.
    """
    check_temperature(temperature)
    if isinstance(game, FiniteGame) and not isinstance(policy, jax.core.Tracer):
        check_distribution(policy, "policy", (game.horizon + 1, game.n_states, game.n_actions))
        policy = jnp.asarray(policy, game.mu0.dtype)
    if temperature is not None and not isinstance(temperature, jax.core.Tracer):
        temperature = jnp.asarray(temperature, game.mu0.dtype)  # traced: one compilation for every τ
    return _exploitability(game, policy, temperature)


@eqx.filter_jit
def _exploitability(game, policy, temperature):
    return score(game, policy, temperature)["expl"]


@functools.singledispatch
def uniform_policy(game: FiniteGame) -> Policy:
    S, A = game.n_states, game.n_actions
    return jnp.full((game.horizon + 1, S, A), 1.0 / A, dtype=game.mu0.dtype)
