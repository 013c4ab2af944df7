r"""BenchMFG 0.1.3 (``bench-mfg-suite``) stationary games as discounted mfgx games.

BenchMFG writes every game as a next-state table: from state s with action a and noise index n
(probability p_n) the agent moves to ``next(μ, s, a, n)``; rewards are r(μ, s, a); discount γ.
These constructors build the same kernels and rewards (default configs of BenchMFG's
``config/environment/*.yaml``) as `mfgx.FiniteGame(..., horizon=None, discount=γ)`, with μ₀ BenchMFG's
``initial_distribution`` (uniform). Kernels are sparse (`NeighbourKernel`, or `TableKernel` when the
table itself depends on μ), never S×S.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..finite import AbstractKernel, FiniteGame, GameError, NeighbourKernel

# BenchMFG's moves on grids: 0 up (+1 row), 1 right (+1 col), 2 down, 3 left, 4 stay.
_MOVES = np.array([[1, 0], [0, 1], [-1, 0], [0, -1], [0, 0]])


class TableKernel(AbstractKernel):
    r"""A kernel given as a next-state table that may depend on (t, m, θ):

        P(x′ | x, a; m) = Σ_n p_n · 1[x′ = next(t, m, θ)[x, a, n]].

    ``next_states(t, m, θ) -> int[S, A, N]``; ``probs``: p[N]. The table is computed once per
    (t, m) by `frozen` (a `NeighbourKernel`), so loops that apply the kernel many times pay for it once.
    """

    next_states: Callable[[Any, Any, Any], Int[Array, "S A N"]]
    probs: Float[Array, " N"]

    def frozen(self, t, m, params) -> NeighbourKernel:
        return NeighbourKernel(self.next_states(t, m, params), self.probs)

    def expect(self, t, m, params, v):
        return self.frozen(t, m, params).expect(t, m, params, v)

    def push(self, t, m, params, joint):
        return self.frozen(t, m, params).push(t, m, params, joint)

    def matrix(self, t, m, params):
        return self.frozen(t, m, params).matrix(t, m, params)

    def check(self, t, m, params):
        return self.frozen(t, m, params).check(t, m, params)


def _uniform(n: int) -> jnp.ndarray:
    return jnp.full(n, 1.0 / n)


# --- Lasry–Lions chain ----------------------------------------------------------------------------

class _ChainReward(eqx.Module):
    center: float
    crowd: float
    move: float
    attraction: float
    n_states: int = eqx.field(static=True)

    def __call__(self, t, mu, params):
        x = jnp.arange(self.n_states)[:, None]
        direction = jnp.arange(3)[None, :] - 1
        return (-self.move * jnp.abs(direction) - self.attraction * (x - self.center) ** 2
                - self.crowd * mu[:, None])


def lasry_lions_chain(n_states: int = 7, *, gamma: float = 0.9, noise=(0.025, 0.95, 0.025),
                      crowd_penalty: float = 40.0, movement_penalty: float = 2.0,
                      center_attraction: float = 3.0) -> FiniteGame:
    r"""BenchMFG's ``lasry_lions_chain``: x′ = clip(x + (a − 1) + (n − 1), 0, S − 1), n ~ ``noise``;
    r(x, a; μ) = −c_move |a − 1| − c_att (x − (S−1)/2)² − α μ(x)."""
    x = np.arange(n_states)[:, None, None]
    dest = np.clip(x + (np.arange(3)[None, :, None] - 1) + (np.arange(3)[None, None, :] - 1), 0, n_states - 1)
    kernel = NeighbourKernel(jnp.asarray(dest), jnp.asarray(noise, dtype=float))
    reward = _ChainReward((n_states - 1) / 2.0, float(crowd_penalty), float(movement_penalty),
                          float(center_attraction), n_states)
    return FiniteGame(_uniform(n_states), kernel, reward, None, discount=gamma)


# --- four rooms with obstacles ------------------------------------------------------------------

def _four_rooms_mask(doors=((2, 5), (8, 5), (5, 8), (5, 2))) -> np.ndarray:
    mask = np.zeros((11, 11), dtype=bool)
    mask[:, 5] = True
    mask[5, :] = True
    for r, c in doors:
        mask[r, c] = False
    return mask


class _AversionReward(eqx.Module):
    alpha: float
    eps: float
    n_actions: int = eqx.field(static=True)

    def __call__(self, t, mu, params):
        r = -self.alpha * jnp.log(jnp.maximum(mu, self.eps))
        return jnp.broadcast_to(r[:, None], (mu.shape[0], self.n_actions))


def four_rooms_obstacles(*, gamma: float = 0.9, alpha: float = 1.0, epsilon: float = 1e-12) -> FiniteGame:
    r"""BenchMFG's ``four_rooms_obstacles``: an 11×11 grid (state row·11 + col; wall cells are states
    too) with cross walls at row 5 and column 5 and doors (2,5), (8,5), (5,8), (5,2). Action move and a
    uniform noise move (both among up/right/down/left/stay) are added; a target out of the grid or on a
    wall leaves the agent in place. r(x, a; μ) = −α log max(μ(x), ε)."""
    mask = _four_rooms_mask()
    rows, cols = np.divmod(np.arange(121), 11)
    tr = rows[:, None, None] + _MOVES[None, :, None, 0] + _MOVES[None, None, :, 0]
    tc = cols[:, None, None] + _MOVES[None, :, None, 1] + _MOVES[None, None, :, 1]
    inside = (tr >= 0) & (tr < 11) & (tc >= 0) & (tc < 11)
    ok = inside & ~mask[np.clip(tr, 0, 10), np.clip(tc, 0, 10)]
    dest = np.where(ok, tr * 11 + tc, np.arange(121)[:, None, None])
    kernel = NeighbourKernel(jnp.asarray(dest), _uniform(5))
    return FiniteGame(_uniform(121), kernel, _AversionReward(float(alpha), float(epsilon), 5), None, discount=gamma)


# --- kinetic congestion ---------------------------------------------------------------------------

class _CongestionWeights(eqx.Module):
    """w[x, a] = (P(move succeeds), P(stay)) with success iff (n + ½)/N < 1 − min(1, μ(target)/c)."""

    target: Int[Array, "S A"]
    capacity: float
    precision: int = eqx.field(static=True)

    def __call__(self, t, mu, params):
        d = mu[self.target]
        success = 1.0 - jnp.where(d >= self.capacity, 1.0, jnp.minimum(1.0, d / self.capacity))
        rolls = (jnp.arange(self.precision) + 0.5) / self.precision
        n_ok = (rolls < success[..., None]).sum(-1)
        w_move = n_ok / self.precision
        return jnp.stack([w_move, (self.precision - n_ok) / self.precision], -1)


class _TargetReward(eqx.Module):
    target: int
    move_cost: float
    n_states: int = eqx.field(static=True)

    def __call__(self, t, mu, params):
        away = -(jnp.arange(self.n_states) != self.target).astype(mu.dtype)[:, None]
        move = jnp.where(jnp.arange(5) == 4, 0.0, self.move_cost)[None, :]
        return away - move


def kinetic_congestion(height: int = 20, width: int = 20, *, gamma: float = 0.9, target_state: int = 24,
                       movement_cost: float = 0.1, capacity_threshold: float = 0.18,
                       precision: int = 100) -> FiniteGame:
    r"""BenchMFG's ``kinetic_congestion`` (defaults of its config except the grid, 5×5 there):
    the move of action a (up/right/down/left/stay, clipped at the border) to cell y succeeds with
    probability ⌊N·(1 − min(1, μ(y)/c))⌉/N (BenchMFG's N = 100 noise atoms), else the agent stays;
    r(x, a) = −1[x ≠ target] − c_move 1[a ≠ stay]. Transitions depend on μ, rewards do not."""
    if not (height >= 1 and width >= 1 and 0 <= target_state < height * width):
        raise GameError(f"need a non-empty grid and 0 <= target_state < {height * width}, got "
                        f"{height}x{width}, target_state={target_state}")
    S = height * width
    rows, cols = np.divmod(np.arange(S), width)
    tr = np.clip(rows[:, None] + _MOVES[None, :, 0], 0, height - 1)
    tc = np.clip(cols[:, None] + _MOVES[None, :, 1], 0, width - 1)
    target = tr * width + tc
    dest = np.stack([target, np.broadcast_to(np.arange(S)[:, None], target.shape)], -1)
    weights = _CongestionWeights(jnp.asarray(target), float(capacity_threshold), int(precision))
    kernel = NeighbourKernel(jnp.asarray(dest), weights)
    return FiniteGame(_uniform(S), kernel, _TargetReward(int(target_state), float(movement_cost), S), None,
                      discount=gamma)


# --- MF-Garnet -------------------------------------------------------------------------------------

class _GarnetTable(eqx.Module):
    """Inverse-CDF next states of p(·|x, a; μ) ∝ max(0, c_p P0 + ρ_p C[x, a] μ) at u_n = (n + ½)/N."""

    p0: Float[Array, "S A S"]
    c: Float[Array, "S A S S"]
    cp: float
    rho_p: float
    eps: float
    n_noises: int = eqx.field(static=True)

    def __call__(self, t, mu, params):
        mu = mu / jnp.maximum(mu.sum(), self.eps)
        intensity = jnp.maximum(0.0, self.cp * self.p0 + self.rho_p * (self.c @ mu))
        p = intensity / (intensity.sum(-1, keepdims=True) + self.eps)
        p = p / jnp.maximum(p.sum(-1, keepdims=True), self.eps)
        cdf = jnp.cumsum(p, -1)
        u = (jnp.arange(self.n_noises) + 0.5) / self.n_noises
        nxt = jax.vmap(jax.vmap(lambda c: jnp.searchsorted(c, u, side="right")))(cdf)
        return jnp.minimum(nxt, cdf.shape[-1] - 1)


class _GarnetReward(eqx.Module):
    r0: Float[Array, "S A"]
    m: Float[Array, "S S"]
    cr: float
    rho_r: float
    eps: float

    def __call__(self, t, mu, params):
        mu = mu / jnp.maximum(mu.sum(), self.eps)
        return self.cr * self.r0 + self.rho_r * (self.m @ mu)[:, None]


def mf_garnet(n_states: int = 100, n_actions: int = 6, n_noises: int = 64, *, gamma: float = 0.9,
              seed: int = 0, branching_factor: int = 6, game_type: str = "potential",
              reward_scale: float = 1.0, eps: float = 1e-12) -> FiniteGame:
    r"""BenchMFG's ``mf_garnet`` (additive dynamics and reward; its RNG draw order, so the same
    ``seed`` gives the same game): with c_p, ρ_p, c_r, ρ_r ~ U(0, 1), P0 a random sparse kernel
    (``branching_factor`` targets, Dirichlet weights), C ~ N(0, 1)[S, A, S, S] (float32, as BenchMFG
    stores it), R0 ~ N(0, scale²)[S, A], M the (anti)symmetrised N(0, 1)[S, S]:

        p(·|x, a; μ) ∝ max(0, c_p P0[x, a] + ρ_p C[x, a] μ),   r(x, a; μ) = c_r R0[x, a] + ρ_r (M μ)(x),

    sampled BenchMFG's way: x′ = the inverse CDF of p at u_n = (n + ½)/N, n = 0..N−1 (so the kernel is
    a `TableKernel` whose table depends on μ)."""
    if game_type not in ("potential", "cyclic"):
        raise GameError(f"game_type must be 'potential' or 'cyclic', got {game_type!r}")
    if not 1 <= branching_factor <= n_states:
        raise GameError(f"branching_factor must be in [1, {n_states}], got {branching_factor}")
    rng = np.random.default_rng(int(seed))
    cp, rho_p, cr, rho_r = (float(rng.uniform(0.0, 1.0)) for _ in range(4))
    p0 = np.zeros((n_states, n_actions, n_states))
    for s in range(n_states):
        for a in range(n_actions):
            ns = rng.integers(0, n_states, size=(branching_factor,))
            p = rng.dirichlet(np.ones(branching_factor))
            base = np.zeros(n_states)
            base[ns] += p  # NumPy fancy-index add keeps the last of duplicates, as BenchMFG's
            p0[s, a] = base
    c = rng.normal(size=(n_states, n_actions, n_states, n_states)).astype(np.float32)
    r0 = rng.normal(loc=0.0, scale=reward_scale, size=(n_states, n_actions))
    m = rng.normal(size=(n_states, n_states))
    m = 0.5 * (m + m.T) if game_type == "potential" else 0.5 * (m - m.T)
    dtype = jnp.result_type(float)
    table = _GarnetTable(jnp.asarray(p0, dtype), jnp.asarray(c, dtype), cp, rho_p, float(eps), int(n_noises))
    kernel = TableKernel(table, _uniform(n_noises))
    reward = _GarnetReward(jnp.asarray(r0, dtype), jnp.asarray(m, dtype), cr, rho_r, float(eps))
    return FiniteGame(_uniform(n_states), kernel, reward, None, discount=gamma)
