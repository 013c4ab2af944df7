r"""Dynamics of discounted (stationary, infinite-horizon) games: the same four operations as the
finite-horizon ones (best response, evaluation, propagation, exploitability), by fixed-point sweeps.

With the kernel frozen at the mean field m (evaluated **once** per m, `AbstractKernel.frozen`):

* best response: (modified) value iteration, v ← max_a [r + γ P v] followed by ``eval_sweeps`` sweeps
  of v ← Σ_a π (r + γ P v) with the greedy π (policy-iteration acceleration); stops when
  γ/(1−γ)·‖Tv − v‖∞ ≤ tol·max(1, ‖v‖∞), which bounds the error of the returned value;
* evaluation of π: the sweeps v ← r^π + γ P^π v with the same stopping rule;
* stationary distribution of π, for a kernel that does not depend on μ: with S ≤
  ``direct_max_states``, a direct solve μ (I − P^π + 𝟙𝟙ᵀ) = 𝟙ᵀ (dense LU of the S×S matrix P^π, one
  step of iterative refinement), accepted when the LU is not (numerically) singular, μ ≥ 0 and
  ‖μP^π − μ‖₁ ≤ tol; otherwise (and for larger S) power iteration μ ← μ P^π, started from the direct
  solution when it is unique but not accurate enough, else from the start. A chain that does not
  settle (periodic) continues with the lazy iteration μ ← ½(μ + μ P^π), which has the same fixed
  points and converges for periodic chains. When π has several stationary distributions (a
  reducible chain: singular LU), the one reached from the start (μ₀, or a warm start) is returned.
  For a kernel that depends on μ: the iteration μ ← μ P^π(m(μ)) (below).

Every loop has a cap; a loop that reaches it returns its last iterate and a False flag (reported
by `solve` as not converged), never an error. Warm starts (``v0``, ``mu0``) change where a loop
starts, not its limit (except for reducible chains, above). ``sweeps=n`` truncates value
iteration / evaluation to exactly n sweeps from 0 (BenchMFG's convention; no convergence check).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.extend as jex
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from ._game import FiniteGame


def sweep_tol(dtype) -> float:
    """Relative accuracy the sweeps aim for: 1e-12 in float64, 1e-5 in float32 (≈ 100 ε)."""
    return max(1e-12, 100 * float(jnp.finfo(dtype).eps))


class Loops(eqx.Module):
    """Caps and tolerances of the discounted dynamics (defaults fit γ ≤ 0.999)."""

    tol: float | None = None
    max_sweeps: int = eqx.field(static=True, default=20_000)
    eval_sweeps: int = eqx.field(static=True, default=8)
    max_power_steps: int = eqx.field(static=True, default=20_000)
    direct_max_states: int = eqx.field(static=True, default=512)
    max_outer: int = eqx.field(static=True, default=1000)
    patience: int = eqx.field(static=True, default=25)


DEFAULT = Loops()


def _frozen(game: FiniteGame, m):
    return game.kernel.frozen(0, m, game.params)


def _bonus(pi, temperature):
    if temperature is None:
        return 0.0
    return -temperature * (pi * jnp.log(jnp.where(pi > 0, pi, 1.0))).sum(-1)


def _stop(gamma, change, v, tol):
    return gamma / (1 - gamma) * change <= tol * jnp.maximum(1.0, jnp.max(jnp.abs(v)))


def value_iteration(game: FiniteGame, m, pick, temperature=None, v0=None, *, sweeps=None, loops=DEFAULT):
    """Optimal (or soft-optimal) values against m by modified value iteration.

    Returns (π[S, A], Q[S, A], V[S], converged)."""
    K = _frozen(game, m)
    r = game.reward(0, m, game.params)
    gamma = game.discount
    tol = loops.tol if loops.tol is not None else sweep_tol(r.dtype)
    v0 = jnp.zeros(r.shape[0], r.dtype) if v0 is None else v0

    def q_of(v):
        return r + gamma * K.expect(0, m, game.params, v)

    if sweeps is not None:  # truncated: exactly `sweeps` Bellman sweeps from 0
        v = lax.fori_loop(0, sweeps, lambda _, v: pick(q_of(v))[0], jnp.zeros_like(v0))
        q = q_of(v)
        return pick(q)[1], q, v, jnp.asarray(True)

    def cond(c):
        k, _, done = c
        return (k < loops.max_sweeps) & ~done

    def body(c):
        k, v, _ = c
        tv, pi = pick(q_of(v))
        done = _stop(gamma, jnp.max(jnp.abs(tv - v)), tv, tol)

        def evaluate(_, w):
            return (pi * q_of(w)).sum(-1) + _bonus(pi, temperature)

        w = lax.fori_loop(0, loops.eval_sweeps, evaluate, tv)
        return k + 1, jnp.where(done, tv, w), done

    k, v, done = lax.while_loop(cond, body, (jnp.asarray(0), v0, jnp.asarray(False)))
    q = q_of(v)
    value, pi = pick(q)
    return pi, q, value, done


def policy_value(game: FiniteGame, pi, m, temperature=None, v0=None, *, sweeps=None, loops=DEFAULT):
    """V^π against m (with the entropy bonus τH(π) when ``temperature=τ``): (I − γP^π) V = r^π.

    With at most ``loops.direct_max_states`` states, by a dense LU solve (one refinement step),
    checked by one sweep (the sweep change must pass the same stopping rule); otherwise, or when
    that check fails, by sweeps (from the direct solution). Sweeps need ~log(tol)/log(γ) steps
    (≈ 2700 at γ = 0.99 in float64); the LU costs S³/3 flops once. ``sweeps=n``: exactly n sweeps
    from 0 (BenchMFG's truncated evaluation).

    Returns (Q^π[S, A], V^π[S], converged)."""
    K = _frozen(game, m)
    r = game.reward(0, m, game.params)
    gamma = game.discount
    tol = loops.tol if loops.tol is not None else sweep_tol(r.dtype)
    r_pi = (pi * r).sum(-1) + _bonus(pi, temperature)

    def step(v):
        return r_pi + gamma * (pi * K.expect(0, m, game.params, v)).sum(-1)

    if sweeps is not None:
        v = lax.fori_loop(0, sweeps, lambda _, v: step(v), jnp.zeros_like(r_pi))
        return r + gamma * K.expect(0, m, game.params, v), v, jnp.asarray(True)

    def cond(c):
        k, _, done = c
        return (k < loops.max_sweeps) & ~done

    def body(c):
        k, v, _ = c
        new = step(v)
        return k + 1, new, _stop(gamma, jnp.max(jnp.abs(new - v)), new, tol)

    def sweep_from(v0):
        _, v, done = lax.while_loop(cond, body, (jnp.asarray(0), v0, jnp.asarray(False)))
        return v, done

    v0 = jnp.zeros_like(r_pi) if v0 is None else v0
    if r_pi.shape[0] <= loops.direct_max_states:
        P = _transition_matrix(game, K, m, pi)
        A = jnp.eye(P.shape[0], dtype=P.dtype) - gamma * P
        lu_piv = jax.scipy.linalg.lu_factor(A)
        v = jax.scipy.linalg.lu_solve(lu_piv, r_pi)
        v = v + jax.scipy.linalg.lu_solve(lu_piv, r_pi - A @ v)
        new = step(v)
        ok = jnp.all(jnp.isfinite(v)) & _stop(gamma, jnp.max(jnp.abs(new - v)), new, tol)
        v, done = lax.cond(ok, lambda: (v, ok), lambda: sweep_from(jnp.where(jnp.isfinite(v), v, v0)))
    else:
        v, done = sweep_from(v0)
    return r + gamma * K.expect(0, m, game.params, v), v, done


def _power(game: FiniteGame, K, m, pi, mu, tol, max_steps: int, lazy: bool):
    """Power iteration μ ← μ P^π (or ½(μ + μ P^π)) with the frozen kernel K, until ‖Δμ‖₁ ≤ tol."""

    def cond(c):
        k, _, done = c
        return (k < max_steps) & ~done

    def body(c):
        k, mu, _ = c
        new = K.push(0, m, game.params, mu[:, None] * pi)
        if lazy:
            new = 0.5 * (mu + new)
        new = new / new.sum()
        return k + 1, new, jnp.sum(jnp.abs(new - mu)) <= tol

    _, mu, done = lax.while_loop(cond, body, (jnp.asarray(0), mu, jnp.asarray(False)))
    return mu, done


def _transition_matrix(game: FiniteGame, K, m, pi) -> Float[Array, "S S"]:
    """P^π[x, y] = Σ_a π(a|x) P(y | x, a) of the frozen kernel K (from its dense form when it has
    one, else one push per row)."""
    try:
        return jnp.einsum("xa,xay->xy", pi, K.matrix(0, m, game.params))
    except NotImplementedError:
        rows = jnp.eye(pi.shape[0], dtype=pi.dtype)[:, :, None] * pi[None]
        return jax.vmap(lambda joint: K.push(0, m, game.params, joint))(rows)


def _direct(game: FiniteGame, K, m, pi, tol):
    """μ from μ (I − P^π + 𝟙𝟙ᵀ) = 𝟙ᵀ by dense LU (+ one refinement step). Returns (μ, unique, accurate):
    ``unique``: the LU is not numerically singular and μ is finite and ≥ 0 (up to rounding);
    ``accurate``: also ‖μP^π − μ‖₁ ≤ tol."""
    P = _transition_matrix(game, K, m, pi)
    S = P.shape[0]
    eps = jnp.finfo(P.dtype).eps
    lu_piv = jax.scipy.linalg.lu_factor((jnp.eye(S, dtype=P.dtype) - P + 1.0).T)
    ones = jnp.ones(S, P.dtype)
    mu = jax.scipy.linalg.lu_solve(lu_piv, ones)
    mu = mu + jax.scipy.linalg.lu_solve(lu_piv, ones - (mu - mu @ P + mu.sum()))
    pivots = jnp.abs(jnp.diagonal(lu_piv[0]))
    unique = (pivots.min() > jnp.sqrt(eps) * pivots.max()) & jnp.all(jnp.isfinite(mu))
    unique = unique & (mu.min() >= -jnp.sqrt(eps) * jnp.abs(mu).max())
    mu = jnp.where(unique, jnp.clip(mu, 0.0, None), 1.0)
    mu = mu / mu.sum()
    accurate = unique & (jnp.sum(jnp.abs(K.push(0, m, game.params, mu[:, None] * pi) - mu)) <= tol)
    return mu, unique, accurate


def _depends_on(fn, x) -> bool:
    """Whether any output of ``fn(x)`` depends on x (read from its jaxpr, at trace time; a nested
    jaxpr fed by x counts as dependent)."""
    closed = jax.make_jaxpr(fn)(x)
    dep = set(closed.jaxpr.invars)
    for eqn in closed.jaxpr.eqns:
        if any(not isinstance(v, jex.core.Literal) and v in dep for v in eqn.invars):
            dep.update(eqn.outvars)
    return any(not isinstance(v, jex.core.Literal) and v in dep for v in closed.jaxpr.outvars)


def kernel_depends_on_mean_field(game: FiniteGame, pi) -> bool:
    """Whether the kernel P^π(m) changes with μ (static: decided from the kernel's code, not values)."""
    def frozen_leaves(mu):
        return jax.tree_util.tree_leaves(eqx.filter(_frozen(game, game.mean_field_of(mu, pi)), eqx.is_array))

    return _depends_on(frozen_leaves, game.mu0)


def stationary_distribution(game: FiniteGame, pi, mu0=None, *, steps=None, loops=DEFAULT):
    """μ = μ P^π(m(μ)) reached from ``mu0`` (default μ₀). ``steps=n``: exactly n steps
    μ ← μ P^π(m(μ)) with the kernel re-evaluated at every step (BenchMFG's mean-field loop).

    A kernel that does not depend on μ is frozen once and power-iterated (then lazily, for periodic
    chains). One that does is iterated as the population moves, μ ← μ P^π(m(μ)), one kernel
    evaluation per step, at most ``loops.max_outer`` steps, and stops early (reported as not converged)
    when ``loops.patience`` steps in a row fail to halve the best step length: this iteration need
    not converge when the kernel jumps with μ (BenchMFG's kinetic congestion and MF-Garnet tables).

    Returns (μ[S], converged)."""
    mu = game.mu0 if mu0 is None else mu0
    tol = loops.tol if loops.tol is not None else sweep_tol(mu.dtype)

    def one(mu):
        m = game.mean_field_of(mu, pi)
        new = game.kernel.push(0, m, game.params, mu[:, None] * pi)
        return new / new.sum()

    if steps is not None:
        return lax.fori_loop(0, steps, lambda _, mu: one(mu), mu), jnp.asarray(True)

    if not kernel_depends_on_mean_field(game, pi):
        m = game.mean_field_of(mu, pi)
        K = _frozen(game, m)

        def power(start):
            new, done = _power(game, K, m, pi, start, tol, loops.max_power_steps, lazy=False)
            return lax.cond(done, lambda: (new, done),
                            lambda: _power(game, K, m, pi, new, tol, loops.max_power_steps, lazy=True))

        if mu.shape[0] > loops.direct_max_states:
            return power(mu)
        direct, unique, accurate = _direct(game, K, m, pi, tol)
        return lax.cond(accurate, lambda: (direct, accurate), lambda: power(jnp.where(unique, direct, mu)))

    def cond(c):
        k, _, done, _, since = c
        return (k < loops.max_outer) & ~done & (since < loops.patience)

    def body(c):
        k, mu, _, best, since = c
        new = one(mu)
        change = jnp.sum(jnp.abs(new - mu))
        better = change < 0.5 * best
        return (k + 1, new, change <= tol, jnp.where(better, change, best), jnp.where(better, 0, since + 1))

    inf = jnp.asarray(jnp.inf, mu.dtype)
    _, mu, done, _, _ = lax.while_loop(cond, body, (jnp.asarray(0), mu, jnp.asarray(False), inf, jnp.asarray(0)))
    return mu, done


def score(game: FiniteGame, policy, pick, temperature=None, warm=None, loops=DEFAULT) -> dict:
    """μ^π, m, (π*, Q*, V*) and (Q^π, V^π) of a stationary policy and its exploitability
    Σ_x μ^π(x) [V*(x) − V^π(x)]. ``warm``: a previous score (dict) to start every loop from."""
    pi = policy[0]
    warm = warm or {}
    mu0 = warm.get("mu", None)
    mu, ok_mu = stationary_distribution(game, pi, None if mu0 is None else mu0[0], loops=loops)
    mf = game.mean_field_of(mu, pi)
    v0 = warm.get("v_star", None)
    br, q_star, v_star, ok_br = value_iteration(game, mf, pick, temperature, None if v0 is None else v0[0],
                                                loops=loops)
    v0 = warm.get("v_pi", None)
    q_pi, v_pi, ok_pi = policy_value(game, pi, mf, temperature, None if v0 is None else v0[0], loops=loops)
    expl = jnp.dot(mu, v_star - v_pi)
    return dict(mu=mu[None], mf=mf[None], br=br[None], q_star=q_star[None], v_star=v_star[None],
                q_pi=q_pi[None], v_pi=v_pi[None], expl=expl, ok=ok_mu & ok_br & ok_pi)


@eqx.filter_jit
def benchmfg_exploitability(game: FiniteGame, policy, start=None, *, mean_field_steps: int = 50,
                            sweeps: int = 99) -> Float[Array, ""]:
    r"""BenchMFG's exploitability: μ_n = ``mean_field_steps`` steps μ ← μP^π(m(μ)) from ``start``
    (default μ₀; BenchMFG's solvers pass their current mean field), V* and V^π truncated after
    ``sweeps`` Bellman sweeps from 0 (BenchMFG: horizon − 1 = 99), both against m(μ_n):
    Σ_x μ_n(x) [V*(x) − V^π(x)]. Not 0 at an exact equilibrium (truncation); see `exploitability`.
    """
    pi = policy[0]
    mu, _ = stationary_distribution(game, pi, start, steps=mean_field_steps)
    mf = game.mean_field_of(mu, pi)

    def exact(q, _=None):
        v = q.max(-1)
        return v, jax.nn.one_hot(q.argmax(-1), q.shape[-1], dtype=q.dtype)

    _, _, v_star, _ = value_iteration(game, mf, exact, sweeps=sweeps)
    _, v_pi, _ = policy_value(game, pi, mf, sweeps=sweeps)
    return jnp.dot(mu, v_star - v_pi)
