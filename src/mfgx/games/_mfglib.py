r"""mfglib 0.3.0's environments, exactly, as `mfgx.FiniteGame` constructors.

Each constructor takes mfglib's parameters with mfglib's defaults (``mfglib.env.Environment.<name>``;
the equations below were read from ``mfglib/env/examples/<name>.py``) and returns the same game in
mfgx's form. The parity tests (``tests/test_parity_mfglib.py``) check every one of them against
mfglib's own exploitability numbers (``tests/fixtures/peers/mfglib.json``).

Conventions shared by all of them (mfglib's): times t = 0..T, the reward r_t is paid at every t
including T, no discount, maximised. mfglib's reward and transition functions receive the joint
state-action mean field L_t(s, a) = μ_t(s) π_t(a|s); where they only use its state marginal
μ_t = Σ_a L_t the game here has ``mean_field="state"``, otherwise ``mean_field="state_action"``.
Multi-dimensional states and actions are flattened in C order (``np.ravel_multi_index``): an mfglib
policy ``pi[t, *S, *A]`` is ``pi.reshape(T + 1, prod(S), prod(A))`` here. Like mfglib's, every
constructor takes ``mu0`` (``None`` or ``"uniform"``: uniform; else an array of shape S, flattened).

mfglib computes in float32; these games are the float64 mathematical definitions (mfglib's own
code run in float64 gives the same exploitabilities to ~1e-7 relative). mfglib is MIT-licensed
(Copyright (c) 2023 Xin Guo, Anran Hu, Matteo Santamaria, Mahan Tajrobehkar & Junzi Zhang); the
random draws of its seeded games live in ``data/mfglib_seed0.json`` (see ``data/README.md``).
"""

from __future__ import annotations

import json
import math
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..finite import FiniteGame, GameError, NeighbourKernel
from ._build import Constant, deterministic_moves
from ._checked import checked

DATA = pathlib.Path(__file__).resolve().parent / "data" / "mfglib_seed0.json"


def _seed0() -> dict:
    return json.loads(DATA.read_text())


def clipped_moves_kernel(shape, moves, noise, noise_probs) -> NeighbourKernel:
    r"""mfglib's grid dynamics: x′ = clip(x + move[a] + noise[k]) with probability ``noise_probs[k]``.

    The action's move and the noise are added *before* clipping to the grid (one clip, as mfglib's
    ``min(max(s + a + ε, 0), n − 1)``); `grid_kernel` clips after each of the two moves, which
    differs at the border (x = n−1, move +1, noise −1: mfglib stays at n−1, two clips give n−2).
    Sparse: dest[S, A, K], never S×S.
    """
    shape = tuple(shape)
    moves = np.asarray(moves, dtype=int).reshape(len(moves), len(shape))
    noise = np.asarray(noise, dtype=int).reshape(len(noise), len(shape))
    cells = np.stack(np.unravel_index(np.arange(int(np.prod(shape))), shape), -1)  # [S, d]
    pos = cells[:, None, None, :] + moves[None, :, None, :] + noise[None, None, :, :]
    pos = np.clip(pos, 0, np.asarray(shape) - 1)
    dest = np.ravel_multi_index(tuple(np.moveaxis(pos, -1, 0)), shape)
    return NeighbourKernel(jnp.asarray(dest), jnp.asarray(noise_probs, dtype=float))


def _initial(mu0, n: int):
    """μ₀: uniform for ``None`` (mfglib's ``"uniform"``), else the given distribution flattened in C order."""
    if mu0 is None or (isinstance(mu0, str) and mu0 == "uniform"):
        return jnp.full(n, 1.0 / n)
    mu0 = jnp.asarray(mu0, dtype=float).reshape(-1)
    if mu0.shape != (n,):
        raise GameError(f"mu0 must have {n} entries, got {mu0.shape[0]}")
    return mu0


class _LogCongestion(eqx.Module):
    """r_t(x, a) = base_t(x, a) − log(μ_t(x) + ε); ``base`` is [S, A] or [T+1, S, A] (time-dependent)."""

    base: Array
    log_eps: float

    def __call__(self, t, mu, params):
        base = self.base[t] if self.base.ndim == 3 else self.base
        return base - jnp.log(mu + self.log_eps)[:, None]


# ---------------------------------------------------------------------------------------------
# beach_bar
# ---------------------------------------------------------------------------------------------


@checked
def beach_bar(
    T: int = 2, n: int = 4, bar_loc: int = 2, log_eps: float = 1e-20, p_still: float = 0.5, mu0=None
) -> FiniteGame:
    r"""Beach bar (mfglib ``Environment.beach_bar``; Perrin et al. 2020).

    Positions x ∈ {0..n−1}, actions a ∈ {0, 1, 2} (move a − 1), noise e ∈ {−1, 0, 1} with
    probabilities ((1−p)/2, p, (1−p)/2), p = ``p_still``, on a *clipped* line (one clip after move
    and noise):

        x′ = clip(x + a − 1 + e, 0, n − 1),
        r_t(x, a) = −d(x) − |a − 1|/n − log(μ_t(x) + ε),   d(x) = min((x−b) mod n, (b−x) mod n),

    b = ``bar_loc``, ε = ``log_eps`` (the distance is circular: mfglib's docstring says torus, its
    dynamics are not). μ₀ uniform; mean field: the state distribution.
    """
    if not 0 <= bar_loc <= n - 1:
        raise GameError(f"bar_loc must be between 0 and n-1 = {n - 1}, got {bar_loc}")
    if not 0 <= p_still <= 1:
        raise GameError(f"p_still must be a probability, got {p_still}")
    q = (1 - p_still) / 2
    kernel = clipped_moves_kernel((n,), (-1, 0, 1), (-1, 0, 1), (q, p_still, q))
    x = np.arange(n)
    dist = np.minimum((x - bar_loc) % n, (bar_loc - x) % n)
    base = -dist[:, None] - np.abs(np.arange(3) - 1)[None, :] / n
    return FiniteGame(_initial(mu0, n), kernel, _LogCongestion(jnp.asarray(base, float), log_eps), T)


# ---------------------------------------------------------------------------------------------
# linear_quadratic
# ---------------------------------------------------------------------------------------------


class _LQKernel(eqx.Module):
    """P_t(x′|x, u) = Σ_j w_j 1[x′ = clip(round(x + (k(m_t − x) + u)δ + σ·jσ·√δ), −ℓ, ℓ)]."""

    el: int = eqx.field(static=True)
    m: int = eqx.field(static=True)
    sigma: float
    delta: float
    k: float
    w: Array  # [7], noise weights for j = −3..3

    def __call__(self, t, mu, params):
        x = jnp.arange(-self.el, self.el + 1, dtype=mu.dtype)
        u = jnp.arange(-self.m, self.m + 1, dtype=mu.dtype)
        j = jnp.arange(-3, 4, dtype=mu.dtype)
        m_t = jnp.dot(x, mu)
        drift = x[:, None] + (self.k * (m_t - x[:, None]) + u[None, :]) * self.delta  # [S, A]
        pos = drift[..., None] + self.sigma * (j * self.sigma) * math.sqrt(self.delta)  # [S, A, 7]
        nxt = jnp.clip(jnp.round(pos), -self.el, self.el).astype(int) + self.el
        return jnp.einsum("xaj,xajy->xay", jnp.broadcast_to(self.w, pos.shape), jax.nn.one_hot(nxt, x.shape[0], dtype=mu.dtype))


class _LQReward(eqx.Module):
    """r_t = δ[−u²/2 + q u (m_t − x) − κ/2 (m_t − x)²] for t < T, r_T = −c/2 (m_T − x)²."""

    el: int = eqx.field(static=True)
    m: int = eqx.field(static=True)
    T: int = eqx.field(static=True)
    delta: float
    q: float
    kappa: float
    c_term: float

    def __call__(self, t, mu, params):
        x = jnp.arange(-self.el, self.el + 1, dtype=mu.dtype)[:, None]
        u = jnp.arange(-self.m, self.m + 1, dtype=mu.dtype)[None, :]
        gap = jnp.dot(x[:, 0], mu) - x
        running = self.delta * (-0.5 * u**2 + self.q * u * gap - 0.5 * self.kappa * gap**2)
        terminal = jnp.broadcast_to(-0.5 * self.c_term * gap**2, running.shape)
        return jnp.where(t == self.T, terminal, running)


@checked
def linear_quadratic(
    T: int = 3,
    el: int = 5,
    m: int = 2,
    sigma: float = 3.0,
    delta: float = 0.1,
    k: float = 1.0,
    q: float = 0.01,
    kappa: float = 0.5,
    c_term: float = 1.0,
    mu0=None,
) -> FiniteGame:
    r"""Linear-quadratic (mfglib ``Environment.linear_quadratic``; Perrin et al. 2020).

    Positions x ∈ {−ℓ..ℓ} (index x + ℓ), controls u ∈ {−m..m} (index u + m), m_t = Σ_x x μ_t(x):

        x′ = clip(round(x + (k(m_t − x) + u)δ + σ·(jσ)·√δ), −ℓ, ℓ)  w.p. w_j,  j = −3..3,
        w_j ∝ exp(−(jσ)²/2),
        r_t(x, u) = δ[−u²/2 + q u (m_t − x) − (κ/2)(m_t − x)²]   (t < T),
        r_T(x, u) = −(c_term/2)(m_T − x)².

    σ enters the noise twice (mfglib's noise grid is jσ, then multiplied by σ√δ): with the defaults
    a noise step is 9√0.1 j ≈ 2.85 j cells, w_0 = 0.978, w_±1 = 0.0109. μ₀ uniform.

    ``round`` is round-half-to-even (torch's and JAX's). It matters: with the defaults every move
    x + (k(m_t − x) + u)δ with k(m_t − x) + u = m_t ∓ 5 lands on a half-integer when m_t = 0 (e.g.
    x = 5, u = 0 → 4.5 + 0.1 m_t), so its direction is decided by the *sign* of m_t. This game is the
    float64 definition: m_t is computed in float64 from the given policy. mfglib computes in float32,
    where m_t ≈ ±1e-8 is absorbed (4.5 + 1e-9 = 4.5 → 4) while float64 keeps it (→ 5): on policies
    that are symmetric up to float32 noise the two differ by far more than rounding (fixture README:
    FP policy 0.194 in float32 vs 0.206 in float64). For exactly symmetric flows (m_t = 0 exactly,
    e.g. the uniform policy) half-to-even is symmetric (±4.5 → ±4) and the two agree.
    """
    eps = np.arange(-3, 4) * sigma
    w = np.exp(-0.5 * eps**2)
    w = w / w.sum()
    kernel = _LQKernel(el, m, float(sigma), float(delta), float(k), jnp.asarray(w))
    reward = _LQReward(el, m, T, float(delta), float(q), float(kappa), float(c_term))
    return FiniteGame(_initial(mu0, 2 * el + 1), kernel, reward, T)


# ---------------------------------------------------------------------------------------------
# susceptible_infected, left_right, rock_paper_scissors
# ---------------------------------------------------------------------------------------------


class _SIKernel(eqx.Module):
    def __call__(self, t, mu, params):
        inf = 0.81 * mu[1]
        return jnp.array([[[1 - inf, inf], [1.0, 0.0]], [[0.3, 0.7], [0.3, 0.7]]], dtype=mu.dtype)


@checked
def susceptible_infected(T: int = 50, mu0=(0.4, 0.6)) -> FiniteGame:
    r"""Susceptible–infected (mfglib ``Environment.susceptible_infected``; Cui & Koeppl 2021).

    States {0: S, 1: I}, actions {0: go out, 1: social distancing}:

        P(I | S, out) = 0.9² μ_t(I),  P(S | S, distancing) = 1,  P(S | I, ·) = 0.3,
        r(S, out) = 0, r(S, distancing) = −0.5, r(I, out) = −1, r(I, distancing) = −1.5.
    """
    r = jnp.array([[0.0, -0.5], [-1.0, -1.5]])
    return FiniteGame(jnp.asarray(mu0, float), _SIKernel(), Constant(r), T)


class _LinearReward(eqx.Module):
    """r(x, ·) = (W μ)(x), the same for every action."""

    W: Array
    n_actions: int = eqx.field(static=True)

    def __call__(self, t, mu, params):
        return jnp.repeat((self.W @ mu)[:, None], self.n_actions, axis=1)


@checked
def left_right(mu0=(1.0, 0.0, 0.0)) -> FiniteGame:
    r"""Left–right (mfglib ``Environment.left_right``; Cui & Koeppl 2021). T = 1.

    From any state, action a ∈ {0: left, 1: right} moves to state 1 + a;
    r(0, ·) = 0, r(1, ·) = −μ_t(1), r(2, ·) = −2μ_t(2). Equilibrium: μ₁ = (0, 2/3, 1/3).
    """
    W = jnp.array([[0, 0, 0], [0, -1.0, 0], [0, 0, -2.0]])
    P = deterministic_moves(3, [[1, 2]] * 3)
    return FiniteGame(jnp.asarray(mu0, float), Constant(P), _LinearReward(W, 2), 1)


@checked
def rock_paper_scissors(T: int = 1, mu0=(1.0, 0.0, 0.0, 0.0)) -> FiniteGame:
    r"""Rock–paper–scissors (mfglib ``Environment.rock_paper_scissors``; Cui & Koeppl 2021).

    From any state, action a ∈ {0, 1, 2} moves to state 1 + a (rock, paper, scissors);
    r(0, ·) = 0, r(1, ·) = 2μ(3) − μ(2), r(2, ·) = 4μ(1) − 2μ(3), r(3, ·) = 6μ(2) − 3μ(1).
    """
    W = jnp.array([[0, 0, 0, 0], [0, 0, -1.0, 2], [0, 4.0, 0, -2], [0, -3.0, 6, 0]])
    P = deterministic_moves(4, [[1, 2, 3]] * 4)
    return FiniteGame(jnp.asarray(mu0, float), Constant(P), _LinearReward(W, 3), T)


# ---------------------------------------------------------------------------------------------
# crowd_motion
# ---------------------------------------------------------------------------------------------


def mfglib_bar_path(T: int = 3, torus_l: int = 20, torus_w: int = 20, loc_change_freq: int = 2, seed: int = 0):
    """mfglib's random ``crowd_motion`` bar path b_0..b_T (list of (i, j)), from torch's seed-0 draws.

    mfglib starts at (l//2, w//2); at every i = 0..T with (i+1) mod freq = 0 it draws two
    ``torch.randint(0, 2)`` (→ ±1, row then column) and moves the bar there if it stays on the grid.
    Only seed 0 is stored (``data/mfglib_seed0.json``).
    """
    if seed != 0:
        raise GameError(f"only mfglib's seed 0 draws are stored; pass bar_path=... for seed {seed}")
    bits = _seed0()["crowd_motion"]["bits"]
    loc = (torus_l // 2, torus_w // 2)
    locs, k = [loc], 0
    for i in range(T + 1):
        if (i + 1) % loc_change_freq == 0:
            if k + 1 >= len(bits):
                raise GameError(f"the stored draws cover {len(bits)} bar moves' bits; T={T} needs more")
            new = (loc[0] + (-1, 1)[bits[k]], loc[1] + (-1, 1)[bits[k + 1]])
            k += 2
            if 0 <= new[0] < torus_l and 0 <= new[1] < torus_w:
                loc = new
        locs.append(loc)
    return locs[: T + 1]


@checked
def crowd_motion(
    T: int = 3,
    torus_l: int = 20,
    torus_w: int = 20,
    loc_change_freq: int = 2,
    c: float = 10.0,
    log_eps: float = 1e-10,
    p_still: float = 0.5,
    seed: int = 0,
    mu0=None,
    bar_path=None,
) -> FiniteGame:
    r"""Crowd motion (mfglib ``Environment.crowd_motion``; Perolat et al. 2021): a 2-D beach bar.

    Cells (i, j) ∈ {0..l−1}×{0..w−1} (state i·w + j); actions and noise displacements
    0: (+1, 0), 1: (−1, 0), 2: (0, +1), 3: (0, −1), 4: (0, 0), the noise with probabilities
    (1−p)/4 (×4) and p = ``p_still``; one clip after move and noise (not a torus, despite the name):

        (i′, j′) = (clip(i + a_i + e_i, 0, l−1), clip(j + a_j + e_j, 0, w−1)),
        r_t((i, j), a) = c·(1 − (|i − b_t^i| + |j − b_t^j|)/(l + w)) − log(μ_t(i, j) + ε).

    The bar path b_t is random in mfglib (torch's global RNG after ``torch.manual_seed(seed)``);
    seed 0's draws are stored, giving b = (10,10), (10,10), (9,11), (9,11) for the defaults. Pass
    ``bar_path`` (T+1 pairs) to set it directly. μ₀ uniform. Sparse kernel (K = 5 per state-action).
    """
    if bar_path is None:
        bar_path = mfglib_bar_path(T, torus_l, torus_w, loc_change_freq, seed)
    bar = np.asarray(bar_path, dtype=int)
    if bar.shape != (T + 1, 2):
        raise GameError(f"bar_path must hold T+1 = {T + 1} (i, j) pairs, got shape {bar.shape}")
    d = (1 - p_still) / 4
    disp = [(1, 0), (-1, 0), (0, 1), (0, -1), (0, 0)]
    kernel = clipped_moves_kernel((torus_l, torus_w), disp, disp, (d, d, d, d, p_still))
    i, j = np.unravel_index(np.arange(torus_l * torus_w), (torus_l, torus_w))
    dist = np.abs(i[None, :] - bar[:, :1]) + np.abs(j[None, :] - bar[:, 1:])  # [T+1, S]
    base = c * (1 - dist / (torus_l + torus_w))
    base = np.repeat(base[:, :, None], 5, axis=2)
    reward = _LogCongestion(jnp.asarray(base, float), log_eps)
    return FiniteGame(_initial(mu0, torus_l * torus_w), kernel, reward, T)


# ---------------------------------------------------------------------------------------------
# building_evacuation
# ---------------------------------------------------------------------------------------------


class _EvacuationReward(eqx.Module):
    """r_t(s, a) = −η log(max(μ_t(s), ε)) + bonus(s)."""

    bonus: Array
    eta: float
    log_eps: float
    n_actions: int = eqx.field(static=True)

    def __call__(self, t, mu, params):
        r = -self.eta * jnp.log(jnp.maximum(mu, self.log_eps)) + self.bonus
        return jnp.repeat(r[:, None], self.n_actions, axis=1)


@checked
def building_evacuation(
    T: int = 3,
    n_floor: int = 5,
    floor_l: int = 10,
    floor_w: int = 10,
    log_eps: float = 1e-20,
    eta: float = 1.0,
    evac_r: float = 10.0,
    mu0=None,
) -> FiniteGame:
    r"""Building evacuation (mfglib ``Environment.building_evacuation``; Perolat et al. 2021).

    States (f, l, w) (floor, length, width; state index (f·L + l)·W + w), deterministic moves,
    clipped to the floor:

        0: l+1, 1: l−1, 2: w−1, 3: w+1,
        4: f−1 if (l, w) = (0, 0) (downstairs; else stay), 5: f+1 if (l, w) = (L−1, W−1) (else stay),
        r_t(s, a) = −η log(max(μ_t(s), ε)) + evac_r·1[f = 0].

    μ₀ uniform over the n_floor·L·W states. Sparse kernel (one destination per state-action).
    """
    shape = (n_floor, floor_l, floor_w)
    f, l_, w = np.unravel_index(np.arange(int(np.prod(shape))), shape)
    at_down = (l_ == 0) & (w == 0)
    at_up = (l_ == floor_l - 1) & (w == floor_w - 1)
    targets = [
        (f, np.minimum(l_ + 1, floor_l - 1), w),
        (f, np.maximum(l_ - 1, 0), w),
        (f, l_, np.maximum(w - 1, 0)),
        (f, l_, np.minimum(w + 1, floor_w - 1)),
        (np.where(at_down, np.maximum(f - 1, 0), f), l_, w),
        (np.where(at_up, np.minimum(f + 1, n_floor - 1), f), l_, w),
    ]
    dest = np.stack([np.ravel_multi_index(tgt, shape) for tgt in targets], axis=1)[:, :, None]
    kernel = NeighbourKernel(jnp.asarray(dest), jnp.ones(1))
    bonus = jnp.asarray(np.where(f == 0, evac_r, 0.0), float)
    reward = _EvacuationReward(bonus, float(eta), float(log_eps), 6)
    return FiniteGame(_initial(mu0, f.size), kernel, reward, T)


# ---------------------------------------------------------------------------------------------
# conservative_treasure_hunting
# ---------------------------------------------------------------------------------------------


def _distance_to_corners(L):
    """D_s = ‖L − e_s e_sᵀ‖²_F for every s (L is n×n: states × actions)."""
    return (L**2).sum() - 2 * jnp.diagonal(L) + 1.0


class _TreasureKernel(eqx.Module):
    """t = 0: x′ = a. t ≥ 1: P(x′|s, a) = (c_{t−1} D_s + 1[x′ = a]) / (1 + n c_{t−1} D_s)."""

    c: Array  # [T]

    def __call__(self, t, L, params):
        n = L.shape[0]
        ct = self.c[jnp.maximum(t - 1, 0)]
        D = _distance_to_corners(L)[:, None, None]
        eye = jnp.eye(n, dtype=L.dtype)[None, :, :]  # [1, a, x′]
        later = (ct * D + eye) / (1 + n * ct * D)
        return jnp.where(t == 0, jnp.broadcast_to(eye, later.shape), later)


class _TreasureReward(eqx.Module):
    """r_0 = 0; t ≥ 1: r_t(s, a) = r_s (1 − D_s/2) 1[a = s]."""

    r: Array  # [n]

    def __call__(self, t, L, params):
        D = _distance_to_corners(L)
        rt = jnp.diag(self.r * (1 - D / 2))
        return jnp.where(t == 0, jnp.zeros_like(rt), rt)


@checked
def conservative_treasure_hunting(
    T: int = 5, n: int = 3, r=(1.0, 1.0, 1.0), c=(1.0, 1.0, 1.0, 1.0, 1.0), mu0=None
) -> FiniteGame:
    r"""Conservative treasure hunting (mfglib ``Environment.conservative_treasure_hunting``; Guo et al. 2022).

    n states and n actions; the mean field is the joint L_t (n×n), through
    D_s(L) = ‖L − e_s e_sᵀ‖²_F = Σ_{x,a} L(x, a)² − 2 L(s, s) + 1 (distance to "all at s, playing s"):

        t = 0:  x′ = a (deterministic);
        t ≥ 1:  P_t(x′|s, a) = (c_{t−1} D_s + 1[x′ = a]) / (1 + n c_{t−1} D_s),
        r_0 = 0;  r_t(s, a) = r_s (1 − D_s/2) 1[a = s]   (t ≥ 1).

    ``len(r) = n``, ``len(c) = T`` (c_{T−1} is never used: there is no transition after T).
    μ₀ uniform; ``mean_field="state_action"``.
    """
    if len(r) != n:
        raise GameError(f"n must equal len(r), got n={n}, len(r)={len(r)}")
    if len(c) != T:
        raise GameError(f"T must equal len(c), got T={T}, len(c)={len(c)}")
    kernel = _TreasureKernel(jnp.asarray(c, float))
    reward = _TreasureReward(jnp.asarray(r, float))
    return FiniteGame(_initial(mu0, n), kernel, reward, T, mean_field="state_action", n_actions=n)


# ---------------------------------------------------------------------------------------------
# random_linear
# ---------------------------------------------------------------------------------------------


class _RandomLinearKernel(eqx.Module):
    """P(x′|s, a) = softmax_{x′}(Σ_l p1[x′, s, l] L(l, a) + p2[x′, s, a])."""

    p1: Array
    p2: Array

    def __call__(self, t, L, params):
        logits = jnp.einsum("ysl,la->ysa", self.p1, L) + self.p2
        return jax.nn.softmax(jnp.moveaxis(logits, 0, -1), axis=-1)


class _RandomLinearReward(eqx.Module):
    """r(s, a) = Σ_l r1[s, l] L(l, a) + r2[s, a]."""

    r1: Array
    r2: Array

    def __call__(self, t, L, params):
        return self.r1 @ L + self.r2


@checked
def random_linear(T: int = 3, n: int = 5, m: float = 10.0, seed: int = 0, mu0=None, draws=None) -> FiniteGame:
    r"""Random linear (mfglib ``Environment.random_linear``): reward and transition logits affine in L_t.

    n states = n actions; with arrays r1, r2 [n, n] and p1, p2 [n, n, n] uniform on [−m, m]:

        P_t(x′|s, a) = softmax_{x′}( Σ_l p1[x′, s, l] L_t(l, a) + p2[x′, s, a] ),
        r_t(s, a)   = Σ_l r1[s, l] L_t(l, a) + r2[s, a].

    (mfglib's ``p1 @ L_t`` contracts p1's last axis with L_t's *state* axis.) The arrays are
    ``2m·u − m`` in float32 for torch's unit draws u after ``torch.manual_seed(seed)``, in the order
    r1, r2, p1, p2; seed 0 with n = 5 is stored (``data/mfglib_seed0.json``), or pass ``draws`` =
    {"r1", "r2", "p1", "p2"} unit arrays. μ₀ uniform; ``mean_field="state_action"``.
    """
    if draws is None:
        data = _seed0()["random_linear"]
        if seed != 0 or n != data["n"]:
            raise GameError(f"only mfglib's seed 0 draws for n = {data['n']} are stored; pass draws=... otherwise")
        draws = data
    arr = {}
    for key, shape in (("r1", (n, n)), ("r2", (n, n)), ("p1", (n, n, n)), ("p2", (n, n, n))):
        u = np.asarray(draws[key], dtype=np.float32)
        if u.shape != shape:
            raise GameError(f"draws[{key!r}] must have shape {shape}, got {u.shape}")
        arr[key] = jnp.asarray((np.float32(2 * m) * u - np.float32(m)).astype(np.float64))  # mfglib's float32 arrays
    kernel = _RandomLinearKernel(arr["p1"], arr["p2"])
    reward = _RandomLinearReward(arr["r1"], arr["r2"])
    return FiniteGame(_initial(mu0, n), kernel, reward, T, mean_field="state_action", n_actions=n)


# ---------------------------------------------------------------------------------------------
# equilibrium_price
# ---------------------------------------------------------------------------------------------


class _PriceReward(eqx.Module):
    """r(s, (q, h)) = (p_t − c0) q − c1 q² − c2 h − (c2 + c3)(q − s)⁺ − c4 s, p_t = (d/(E_L[q] + e0))^{1/σ}."""

    q: Array  # [A] quantity of each flat action
    base: Array  # [S, A]: everything but p_t q
    d: float
    e0: float
    sigma: float

    def __call__(self, t, L, params):
        price = (self.d / ((L * self.q[None, :]).sum() + self.e0)) ** (1 / self.sigma)
        return price * self.q[None, :] + self.base


@checked
def equilibrium_price(
    T: int = 4,
    s_inv: int = 3,
    Q: int = 2,
    H: int = 2,
    d: float = 1.0,
    e0: float = 1.0,
    sigma: float = 1.0,
    c=(1.0, 1.0, 1.0, 1.0, 1.0),
    mu0=None,
) -> FiniteGame:
    r"""Equilibrium price (mfglib ``Environment.equilibrium_price``; Guo et al. 2022).

    Inventory s ∈ {0..s_inv}; mfglib's action is 2-D, (q, h) ∈ {0..Q}×{0..H} (consume q, replenish
    h). Here it is **flattened** to A = (Q+1)(H+1) actions, a = q·(H+1) + h (C order, as mfglib's
    ``pi[t, s, q, h]`` reshaped): with the defaults A = 9.

        s′ = min(s − min(q, s) + h, s_inv)   (deterministic),
        p_t = (d / (Σ_{s,a} L_t(s, a) q(a) + e0))^{1/σ}   (price from the mean quantity),
        r_t(s, (q, h)) = (p_t − c0) q − c1 q² − c2 h − (c2 + c3)(q − s)⁺ − c4 s.

    (``c2`` appears twice and ``c3`` only in ``c2 + c3``, as in mfglib's source.) μ₀ uniform;
    ``mean_field="state_action"`` (the price needs the action marginal).
    """
    c0, c1, c2, c3, c4 = (float(v) for v in c)
    s = np.arange(s_inv + 1)[:, None, None]
    q = np.arange(Q + 1)[None, :, None]
    h = np.arange(H + 1)[None, None, :]
    shape = (s_inv + 1, (Q + 1) * (H + 1))
    dest = np.minimum(s - np.minimum(q, s) + h, s_inv).reshape(shape)[:, :, None]
    base = -c0 * q - c1 * q**2 - c2 * h - (c2 + c3) * np.maximum(q - s, 0) - c4 * s
    qa = np.broadcast_to(q, (1, Q + 1, H + 1)).reshape(-1)
    reward = _PriceReward(
        jnp.asarray(qa, float), jnp.asarray(base.reshape(shape), float), float(d), float(e0), float(sigma)
    )
    kernel = NeighbourKernel(jnp.asarray(dest), jnp.ones(1))
    return FiniteGame(_initial(mu0, s_inv + 1), kernel, reward, T, mean_field="state_action", n_actions=shape[1])


MFGLIB_GAMES = {
    "beach_bar": beach_bar,
    "linear_quadratic": linear_quadratic,
    "susceptible_infected": susceptible_infected,
    "crowd_motion": crowd_motion,
    "building_evacuation": building_evacuation,
    "left_right": left_right,
    "rock_paper_scissors": rock_paper_scissors,
    "conservative_treasure_hunting": conservative_treasure_hunting,
    "random_linear": random_linear,
    "equilibrium_price": equilibrium_price,
}
