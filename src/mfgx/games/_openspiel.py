r"""OpenSpiel 2.0.2 mean-field games (``open_spiel.python.mfg`` and ``open_spiel/games/mfg``) as mfgx games.

Conventions shared by every constructor here (``shared/peers.md`` §5.3):

* **Time.** OpenSpiel's tree alternates decision node (the reward r_t is paid, the player acts) →
  chance node (noise) → mean-field node (t ← t+1, μ_{t+1} is written into the state); the node at
  t = H is terminal and pays 0. That is `mfgx.FiniteGame` with T = H − 1 (rewards at t = 0..T).
* **t = 0.** OpenSpiel's decision nodes at t = 0 read the distribution *stored in a fresh state*, not
  μ₀ (uniform for the crowd games, the mis-indexed ``init_distrib`` for predator-prey). With
  ``openspiel_t0=True`` (default) the t = 0 reward uses that stored distribution, as OpenSpiel does,
  so that best-response and policy *values* match OpenSpiel's; it is policy-independent, so it never
  changes exploitability / NashConv. ``openspiel_t0=False`` uses μ₀ (the clean model).
* **Legal actions.** Where OpenSpiel forbids actions (walls), the action is kept in mfgx's action set
  and acts as "stay" (always legal): it duplicates the stay action, so best responses and values are
  unchanged. `legal_actions(game)` returns OpenSpiel's mask and `uniform_legal_policy(game)` its
  uniform policy (uniform over *legal* actions).
* **Several populations** (predator_prey, crowd_avoidance) are embedded in one game whose state is (p, x), index
  ``p·X + x``, with a block-diagonal kernel (actions never change p) and μ₀ putting mass w_p = 1/P on
  population p; the reward of population p reads ρ_q = μ(q, ·)/w_q. Then mfgx's exploitability is
  Σ_p w_p·gap_p while OpenSpiel's NashConv is Σ_p gap_p: use `nash_conv(game, policy)` (exactly
  Σ_p gap_p for any weights; = P × exploitability for equal ones) and `population_values`.
* **Previous-action rewards.** crowd_modelling (1-D), crowd_modelling_2d with its default reward,
  mean_field_lin_quad, periodic_aversion and garnet charge, at the decision node of time t, a term
  of the *previous* action a_{t−1} (``last_action``). Paying that term when acting (at t − 1, in
  expectation over the next state where it depends on it) gives the same expected return for every
  policy, so these constructors build that Markov game (the "clean" model): its exploitability is
  the written model's. OpenSpiel's NashConv of these games is **not**: its value recursions memoise
  every node on its observation string, which lacks the previous action, so each decision node's
  value keeps the action term of whichever path reached it first in depth-first order.
  ``openspiel_cache=True`` emulates that cache exactly: the term is charged with the first-visit
  action ``a_first(t, x)`` (`_first_visit_actions`), which reproduces OpenSpiel's NashConv.

Coordinates (`state_coords`) follow OpenSpiel's observation strings: ``(x,)`` on lines and rings,
``(x, y)`` on grids (x = column), ``(p, x, y)`` for populations. Every game function is an
`equinox.Module`, so games of the same structure share compiled code.
"""

from __future__ import annotations

import json
import math
import pathlib

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._checked import checked
from ..finite import (
    DenseKernel,
    FiniteGame,
    GameError,
    NeighbourKernel,
    best_response,
    evaluate,
    propagate,
)

_EPS_CPP = float(np.float32(1e-25))  # C++ games: `inline constexpr float kEpsilon = 1e-25`
_EPS_PY = 1e-25  # Python games

# crowd_modelling_2d.h: kActionToMoveX / kActionToMoveY, a = 0..4 (the neutral action is 2)
CROWD_2D_MOVES = ((0, -1), (-1, 0), (0, 0), (1, 0), (0, 1))

FOUR_ROOMS = (
    "#############",
    "#     #     #",
    "#     #     #",
    "#           #",
    "#     #     #",
    "#     #     #",
    "### ##### ###",
    "#     #     #",
    "#     #     #",
    "#           #",
    "#     #     #",
    "#     #     #",
    "#############",
)

MAZE = (
    "######################",
    "#      #     #     # #",
    "#      #     #     # #",
    "######    #  # ##  # #",
    "#         #  # #   # #",
    "#         #  # ### # #",
    "#  ########  #   #   #",
    "#    # # #  ##   #   #",
    "#    # # #     # # ###",
    "#    # # #     # # # #",
    "###### # ####### # # #",
    "#  #         #   # # #",
    "#  # ## ###  #   # # #",
    "## # #    #  ##### # #",
    "## # # #  #      # # #",
    "#    # ####        # #",
    "# ####  # ########   #",
    "#       #  #   # ### #",
    "#  #  # #  # # #   # #",
    "# ##### #    # #     #",
    "#            #       #",
    "######################",
)


def grid_forbidden(rows) -> tuple[tuple[int, int], ...]:
    """Forbidden cells ``(x, y)`` (x = column, y = row) of a grid drawn with ``#``, in OpenSpiel's
    ``grid_to_forbidden_states`` order."""
    return tuple((x, y) for y, row in enumerate(rows) for x, c in enumerate(row) if c == "#")


# ---------------------------------------------------------------------------------------------
# metadata and helpers
# ---------------------------------------------------------------------------------------------


class _Meta(eqx.Module):
    """What OpenSpiel knows and `FiniteGame` does not: legal actions, coordinates, populations."""

    legal: Array  # bool [S, A]
    coords: Array  # int [S, d]
    population: Array  # int [S]
    n_populations: int = eqx.field(static=True)


def _meta(game) -> _Meta:
    meta = getattr(game.reward, "meta", None)
    if meta is not None:
        return meta
    S, A = game.n_states, game.n_actions
    return _Meta(
        jnp.ones((S, A), bool), jnp.arange(S)[:, None], jnp.zeros(S, int), 1
    )


def legal_actions(game: FiniteGame) -> np.ndarray:
    """OpenSpiel's legal-action mask, bool [S, A] (all True for games without one)."""
    return np.asarray(_meta(game).legal)


def state_coords(game: FiniteGame) -> np.ndarray:
    """OpenSpiel's coordinates of each state, int [S, d]: ``(x,)``, ``(x, y)`` or ``(p, x, y)``."""
    return np.asarray(_meta(game).coords)


def uniform_legal_policy(game: FiniteGame):
    """OpenSpiel's ``UniformRandomPolicy``: uniform over the legal actions, shape [T+1, S, A]."""
    legal = legal_actions(game).astype(float)
    pi = legal / legal.sum(-1, keepdims=True)
    return jnp.broadcast_to(jnp.asarray(pi, game.mu0.dtype), (game.horizon + 1, *pi.shape))


@eqx.filter_jit
def _initial_values(game, policy):
    mu = propagate(game, policy)
    mf = game.mean_field_of(mu, policy)
    _, _, v_star = best_response(game, mf)
    _, v_pi = evaluate(game, policy, mf)
    return v_star[0], v_pi[0]


def population_values(game: FiniteGame, policy) -> tuple[np.ndarray, np.ndarray]:
    r"""OpenSpiel's ``NashConv(...).br_values()`` and policy values, one per population:

        br_p = Σ_{x ∈ p} μ₀(x) V*_0(x) / w_p,   pol_p = Σ_{x ∈ p} μ₀(x) V^π_0(x) / w_p,

    w_p = Σ_{x ∈ p} μ₀(x), both against the mean field induced by π (a single population for
    ordinary games)."""
    meta = _meta(game)
    v_star, v_pi = _initial_values(game, jnp.asarray(policy, game.mu0.dtype))
    mu0 = np.asarray(game.mu0)
    pop = np.asarray(meta.population)
    w = np.bincount(pop, weights=mu0, minlength=meta.n_populations)
    br = np.bincount(pop, weights=mu0 * np.asarray(v_star), minlength=meta.n_populations) / w
    pol = np.bincount(pop, weights=mu0 * np.asarray(v_pi), minlength=meta.n_populations) / w
    return br, pol


def nash_conv(game: FiniteGame, policy) -> float:
    r"""OpenSpiel's NashConv, Σ_p (br_p − pol_p) over populations (see `population_values`).

    For one population it is `mfgx.exploitability`; for P populations of equal weight w = 1/P
    (mfgx's exploitability is Σ_p w·gap_p) it is exploitability / w = P × exploitability."""
    br, pol = population_values(game, policy)
    return float(np.sum(br - pol))


# ---------------------------------------------------------------------------------------------
# shared game pieces
# ---------------------------------------------------------------------------------------------


class _LogCongestion(eqx.Module):
    r"""r_t(x, a) = base[t, x, a] − coef · log(ρ_t(x)/unit + ε), ρ_t = μ_t, or ``rho0`` at t = 0."""

    base: Array  # [T+1, S, A]
    coef: float
    eps: float
    unit: float
    rho0: Array | None
    meta: _Meta

    def __call__(self, t, mu, params):
        rho = mu if self.rho0 is None else jnp.where(t == 0, self.rho0, mu)
        return self.base[t] - self.coef * jnp.log(rho / self.unit + self.eps)[:, None]


def _two_stage(move: np.ndarray, noise_dest: np.ndarray, noise_w: np.ndarray) -> NeighbourKernel:
    """Player move x → move[x, a], then noise from there: x′ = noise_dest[x1, k] w.p. noise_w[x1, k]."""
    return NeighbourKernel(jnp.asarray(noise_dest[move]), jnp.asarray(noise_w[move], float))


def _first_visit_actions(n_states, horizon, x0_order, actions, chance_key, chance_dests, neutral):
    """The previous action behind OpenSpiel's cached value of each decision node.

    OpenSpiel's ``BestResponse`` and ``PolicyValue`` recurse depth-first (initial outcomes, legal
    actions and chance outcomes in index order) and memoise every node on its observation string:
    decision ``(x, t)``, chance ``chance_key(x, a)`` at t, mean-field ``(x′, t+1)``. A decision
    node's string lacks the previous action, so its cached value keeps the previous action of the
    first path that reached it. Returns ``a_first[t, x]`` for t = 0..H−1 (``neutral`` at t = 0, −1
    where no path reaches (x, t)); the same for both recursions, which visit every legal action.
    """
    first = np.full((horizon, n_states), -1, dtype=int)
    seen = set()

    def children(x, t):
        for a in actions[x]:
            key = ("chance", t, chance_key(x, a))
            if key in seen:
                continue
            seen.add(key)
            if t + 1 >= horizon:  # the mean-field children are terminal
                continue
            for x2 in chance_dests(x, a):
                if ("mean_field", t + 1, x2) in seen:
                    continue
                seen.add(("mean_field", t + 1, x2))
                yield x2, t + 1, a

    for x0 in x0_order:
        if first[0, x0] >= 0:
            continue
        first[0, x0] = neutral
        stack = [children(x0, 0)]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                continue
            x2, t2, a = nxt
            first[t2, x2] = a
            stack.append(children(x2, t2))
    return first


def _action_term(cost_when_acting: np.ndarray, previous_cost: np.ndarray, first, cache: bool, T: int):
    """base[t, x, a] from an action term: paid when acting at t < T (clean), or the cached
    previous-action term ``previous_cost[x, a_first(t, x)]`` (OpenSpiel's cache, a_first ≥ 0)."""
    S, A = cost_when_acting.shape
    if not cache:
        base = np.broadcast_to(cost_when_acting, (T + 1, S, A)).copy()
        base[T] = 0.0  # the last action is never charged: the terminal node pays nothing
        return base
    idx = np.maximum(first, 0)
    term = np.take_along_axis(np.broadcast_to(previous_cost, (T + 1, S, previous_cost.shape[1])), idx[..., None], -1)
    return np.broadcast_to(np.where(first[..., None] >= 0, term, 0.0), (T + 1, S, A)).copy()


def _horizon(horizon) -> int:
    if not (isinstance(horizon, (int, np.integer)) and horizon >= 1):
        raise GameError(f"horizon must be an int >= 1 (OpenSpiel's H; mfgx T = H - 1), got {horizon!r}")
    return int(horizon)


# ---------------------------------------------------------------------------------------------
# crowd modelling 2-D (C++ mfg_crowd_modelling_2d)
# ---------------------------------------------------------------------------------------------


@checked
def crowd_modelling_2d(
    size: int = 10,
    horizon: int = 10,
    *,
    only_distribution_reward: bool = False,
    forbidden_states=(),
    initial_distribution=None,
    noise_intensity: float = 1.0,
    crowd_aversion_coef: float = 1.0,
    positional_reward=None,
    openspiel_t0: bool = True,
    openspiel_cache: bool = False,
) -> FiniteGame:
    r"""OpenSpiel's ``mfg_crowd_modelling_2d`` (C++): crowd aversion on a ``size``² torus with walls.

    Cells (x, y), x = column, y = row; states are the *free* cells (forbidden ones are dropped) in
    OpenSpiel's distribution order x·N + y (`state_coords` gives (x, y)). Actions a = 0..4 move by
    (dx, dy) = (0,−1), (−1,0), (0,0), (1,0), (0,1) (mod N); a move into a forbidden cell is illegal
    in OpenSpiel and "stay" here. From the intermediate cell x₁, noise picks one of the n(x₁) legal
    moves at x₁: each with probability ν/n(x₁), plus 1 − ν on "stay" (ν = ``noise_intensity``).
    H = ``horizon`` (T = H − 1). Reward at t, with κ = ``crowd_aversion_coef``, ε = 1e−25 (float32):

        r_t(x, y, a) = −κ log(μ_t(x, y) + ε)
                       + [default reward]  r_x + r_y − [t < T] (|dx(a)| + |dy(a)|)/N,
        r_x = 1 − Σ_i (2 v_i/N)|x − p_i^x|,  r_y = 1 − Σ_i (2 v_i/N)|y − p_i^y|,

    positional rewards ``positional_reward = [((p^x, p^y), v), ...]`` (default ``[((N//2, N//2), 1)]``).
    OpenSpiel charges the move cost of a_{t−1} at t; here it is paid when acting (the clean Markov
    model, same expected return); ``openspiel_cache=True`` charges the cached first-visit action
    instead (reproduces OpenSpiel's NashConv; see the module docstring). ``only_distribution_reward``
    keeps −κ log(μ_t + ε) only (exact parity, no previous action).

    μ₀: ``initial_distribution = [((x, y), weight), ...]`` (the actual start cells), default uniform
    over the free cells. OpenSpiel's string parameter swaps the two: ``"[a|b]"`` starts at (b, a),
    and its default uniform start puts mass on forbidden cells (a bogus state). At t = 0 OpenSpiel's
    stored distribution is uniform, 1/N² (``openspiel_t0``; four_rooms pays log 169 at t = 0).
    ``with_congestion`` is not supported (its move cost is scaled by μ_{t+1} at the next cell).

    Source: ``open_spiel/games/mfg/crowd_modelling_2d.{h,cc}``.
    """
    N, H = int(size), _horizon(horizon)
    T = H - 1
    forbidden = np.zeros((N, N), bool)  # [x, y]
    for x, y in forbidden_states:
        forbidden[x, y] = True
    free = np.argwhere(~forbidden)  # sorted by (x, y): OpenSpiel's order x·N + y
    S, A = len(free), 5
    index = -np.ones((N, N), int)
    index[free[:, 0], free[:, 1]] = np.arange(S)
    moves = np.asarray(CROWD_2D_MOVES)
    target = (free[:, None, :] + moves[None]) % N  # [S, A, 2]
    legal = ~forbidden[target[..., 0], target[..., 1]]
    move = np.where(legal, index[target[..., 0], target[..., 1]], np.arange(S)[:, None])
    n_legal = legal.sum(1)
    noise_w = np.where(legal, noise_intensity / n_legal[:, None], 0.0)
    noise_w[:, 2] += 1.0 - noise_intensity
    kernel = _two_stage(move, move, noise_w)

    if initial_distribution is None:
        mu0 = np.full(S, 1.0 / S)
    else:
        mu0 = np.zeros(S)
        for (x, y), w in initial_distribution:
            if forbidden[x, y]:
                raise GameError(f"initial cell {(x, y)} is forbidden")
            mu0[index[x, y]] += w
        mu0 /= mu0.sum()

    base = np.zeros((T + 1, S, A))
    if not only_distribution_reward:
        targets = [((N // 2, N // 2), 1.0)] if not positional_reward else list(positional_reward)
        rx, ry = np.ones(S), np.ones(S)
        for (px, py), v in targets:
            rx -= 2.0 * v / N * np.abs(free[:, 0] - px)
            ry -= 2.0 * v / N * np.abs(free[:, 1] - py)
        cost = -np.abs(moves).sum(1) / N  # [A]
        acting = np.where(legal, cost[None, :], 0.0)  # an illegal action is "stay": no cost
        first = None
        if openspiel_cache:
            # initial chance outcomes: sorted by OpenSpiel's code y + N·x of the swapped pair, i.e. by x + N·y
            x0 = sorted(np.flatnonzero(mu0 > 0), key=lambda s: free[s, 0] + N * free[s, 1])
            actions = [np.flatnonzero(legal[s]) for s in range(S)]
            first = _first_visit_actions(
                S, H, x0, actions, lambda s, a: int(move[s, a]),
                lambda s, a: [int(move[move[s, a], e]) for e in actions[move[s, a]]], 2,
            )
        base = _action_term(acting, np.broadcast_to(cost, (S, A)), first, openspiel_cache, T)
        base += (rx + ry)[None, :, None]
    elif openspiel_cache:
        raise GameError("openspiel_cache only matters for the default reward (only_distribution_reward=False)")
    rho0 = jnp.full(S, 1.0 / N**2) if openspiel_t0 else None
    meta = _Meta(jnp.asarray(legal), jnp.asarray(free), jnp.zeros(S, int), 1)
    reward = _LogCongestion(jnp.asarray(base), float(crowd_aversion_coef), _EPS_CPP, 1.0, rho0, meta)
    return FiniteGame(jnp.asarray(mu0), kernel, reward, T)


@checked
def crowd_modelling_2d_four_rooms(horizon: int = 40, **kwargs) -> FiniteGame:
    """OpenSpiel's ``crowd_modelling_2d_four_rooms`` setting: `crowd_modelling_2d` on the 13x13
    grid `FOUR_ROOMS` (104 free cells), H = 40, start (1, 1), ``only_distribution_reward=True``:

        r_t(x, y) = −log(μ_t(x, y) + ε) for t ≥ 1,  log 169 at t = 0.

    Exact parity with OpenSpiel (no previous-action term). Legal actions: moves not into walls
    (`legal_actions`); noise uniform over the legal moves at the intermediate cell."""
    kwargs.setdefault("only_distribution_reward", True)
    return crowd_modelling_2d(13, horizon, forbidden_states=grid_forbidden(FOUR_ROOMS), initial_distribution=[((1, 1), 1.0)], **kwargs)


@checked
def crowd_modelling_2d_maze(horizon: int = 100, **kwargs) -> FiniteGame:
    """OpenSpiel's ``crowd_modelling_2d_maze`` setting: `crowd_modelling_2d` on the 22x22 grid
    `MAZE` (259 free cells), H = 100, start (1, 1), ``only_distribution_reward=True``."""
    kwargs.setdefault("only_distribution_reward", True)
    return crowd_modelling_2d(22, horizon, forbidden_states=grid_forbidden(MAZE), initial_distribution=[((1, 1), 1.0)], **kwargs)


# ---------------------------------------------------------------------------------------------
# crowd modelling 1-D (C++ mfg_crowd_modelling, Python python_mfg_crowd_modelling)
# ---------------------------------------------------------------------------------------------


@checked
def crowd_modelling(size: int = 10, horizon: int = 10, *, openspiel_cache: bool = False) -> FiniteGame:
    r"""OpenSpiel's 1-D ``mfg_crowd_modelling`` / ``python_mfg_crowd_modelling`` (identical numbers).

    Ring of N = ``size`` cells, μ₀ uniform, H = ``horizon`` (T = H − 1); a ∈ {0, 1, 2} moves a − 1,
    then noise e ∈ {−1, 0, 1} uniformly: x′ = x + (a − 1) + e mod N. Reward at t:

        r_t(x, a) = 1 − |x − N//2| / (N//2) − log(μ_t(x) + 1e−25) − [t < T] |a − 1| / N.

    OpenSpiel charges |a_{t−1} − 1|/N at t (never the last action); paying it when acting is the
    clean Markov model (same expected return). ``openspiel_cache=True`` charges the cached
    first-visit action instead and reproduces OpenSpiel's NashConv. (`mfgx.games.crowd_ring` is the
    same clean game with T as given and the cost also at T.)

    Source: ``open_spiel/games/mfg/crowd_modelling.cc``, ``python/mfg/games/crowd_modelling.py``.
    """
    N, H = int(size), _horizon(horizon)
    T = H - 1
    x = np.arange(N)
    move = (x[:, None] + np.arange(3)[None, :] - 1) % N
    kernel = _two_stage(move, move, np.full((N, 3), 1.0 / 3))
    cost = -np.abs(np.arange(3) - 1) / N
    first = None
    if openspiel_cache:
        first = _first_visit_actions(
            N, H, range(N), [range(3)] * N, lambda s, a: int(move[s, a]), lambda s, a: list(move[move[s, a]]), 1
        )
    base = _action_term(np.broadcast_to(cost, (N, 3)), np.broadcast_to(cost, (N, 3)), first, openspiel_cache, T)
    base += (1 - np.abs(x - N // 2) / (N // 2))[None, :, None]
    meta = _Meta(jnp.ones((N, 3), bool), jnp.asarray(x[:, None]), jnp.zeros(N, int), 1)
    reward = _LogCongestion(jnp.asarray(base), 1.0, _EPS_PY, 1.0, None, meta)
    return FiniteGame(jnp.full(N, 1.0 / N), kernel, reward, T)


# ---------------------------------------------------------------------------------------------
# periodic aversion (python_mfg_periodic_aversion)
# ---------------------------------------------------------------------------------------------


@checked
def periodic_aversion(
    size: int = 21,
    horizon: int = 20,
    *,
    dt: float = 0.01,
    xmin: float = 0.0,
    xmax: float = 1.0,
    n_actions_per_side: int = 10,
    volatility: float = 1.0,
    coef_aversion: float = 1.0,
    openspiel_cache: bool = False,
) -> FiniteGame:
    r"""OpenSpiel's ``python_mfg_periodic_aversion``: crowd aversion on a periodic domain.

    Ring of N = ``size`` cells, position z(x) = xmin + x·dx, dx = (xmax − xmin)/(N − 1); actions
    a = 0..2n move by k = a − n cells (n = ``n_actions_per_side``), then noise moves by
    e − n cells, e = 0..2n, with probability ∝ φ((e − n)·dx / (σ√dt)) (normal density, normalised);
    μ₀ uniform; H = ``horizon`` steps (T = H − 1). Reward at t, with v(a) = (a − n)·dx/dt:

        r_t(x, a) = dt · [ −c log(μ_t(x)/dx + 1e−15) + g(z) ] − [t < T] dt · v(a)²/2,
        g(z) = σ 2π² sin(2πz) − 2π² cos²(2πz) + (2/σ²) sin(2πz),   c = ``coef_aversion``.

    OpenSpiel charges v(a_{t−1})²/2 at t; paying it when acting is the clean Markov model (same
    expected return). ``openspiel_cache=True`` charges the cached first-visit action instead.

    Source: ``python/mfg/games/periodic_aversion.py``.
    """
    N, H, n = int(size), _horizon(horizon), int(n_actions_per_side)
    T, A = H - 1, 2 * n + 1
    dx = (xmax - xmin) / (N - 1)
    x = np.arange(N)
    shifts = np.arange(A) - n
    move = (x[:, None] + shifts[None, :]) % N
    p = np.exp(-0.5 * (shifts * dx / (volatility * math.sqrt(dt))) ** 2)  # scipy.stats.norm.pdf up to a constant
    p = p / p.sum()
    kernel = _two_stage(move, move, np.broadcast_to(p, (N, A)))
    cost = -0.5 * (shifts * dx / dt) ** 2 * dt
    first = None
    if openspiel_cache:
        first = _first_visit_actions(
            N, H, range(N), [range(A)] * N, lambda s, a: int(move[s, a]), lambda s, a: list(move[move[s, a]]), n
        )
    base = _action_term(np.broadcast_to(cost, (N, A)), np.broadcast_to(cost, (N, A)), first, openspiel_cache, T)
    pix2 = 2 * np.pi * (x * dx + xmin)
    geom = (
        volatility * 2 * np.pi**2 * np.sin(pix2)
        - 2 * np.pi**2 * np.cos(pix2) ** 2
        + (2 / volatility**2) * np.sin(pix2)
    )
    base += (geom * dt)[None, :, None]
    meta = _Meta(jnp.ones((N, A), bool), jnp.asarray(x[:, None]), jnp.zeros(N, int), 1)
    reward = _LogCongestion(jnp.asarray(base), float(coef_aversion * dt), 1e-15, float(dx), None, meta)
    return FiniteGame(jnp.full(N, 1.0 / N), kernel, reward, T)


# ---------------------------------------------------------------------------------------------
# garnet (C++ mfg_garnet)
# ---------------------------------------------------------------------------------------------

_GARNET_FILE = pathlib.Path(__file__).resolve().parent / "data" / "openspiel_garnet_seed0.json"


def _garnet_data():
    data = json.loads(_GARNET_FILE.read_text())
    reward = np.array([[np.nan if v is None else v for v in row] for row in data["reward"]])
    return data, np.asarray(data["transition"]), np.asarray(data["probability"]), reward


@checked
def garnet(horizon: int = 10, *, eta: float = 1.0, openspiel_cache: bool = False) -> FiniteGame:
    r"""OpenSpiel's ``mfg_garnet`` with its default random structure (size 10, 3 actions, 3 chance
    outcomes, sparsity 1, seed 0), read from OpenSpiel (``data/openspiel_garnet_seed0.json``, made
    by ``data/make_openspiel_garnet.py``; the C++ ``std::mt19937``/``absl::Uniform`` stream is not
    reproduced here, so other seeds and sizes are not available).

    At state x the action a does not move the player; the chance node then moves to
    x′ = D[x, a, e] with probability P[x, a, e]; μ₀ uniform; H = ``horizon`` (T = H − 1). OpenSpiel's
    reward at t is R(x_t, a_{t−1}) − η log(μ_t(x_t) + ε) (a_{−1} = 0, ε = 1e−25 float32). The clean
    Markov model pays R(x_{t+1}, a_t) when acting, in expectation (same expected return):

        r_t(x, a) = −η log(μ_t(x) + ε) + [t = 0] R(x, 0) + [t < T] Σ_e P[x, a, e] R(D[x, a, e], a).

    ``openspiel_cache=True`` uses R(x, a_first(t, x)) at every t instead (OpenSpiel's NashConv).
    R(x, a) is unknown (never used) where no state reaches x through a.

    Source: ``open_spiel/games/mfg/garnet.cc``.
    """
    H = _horizon(horizon)
    T = H - 1
    _, dest, prob, R = _garnet_data()
    S, A, K = dest.shape
    kernel = NeighbourKernel(jnp.asarray(dest), jnp.asarray(prob))
    Rz = np.nan_to_num(R)
    expected = (prob * Rz[dest, np.arange(A)[None, :, None]]).sum(-1)  # [S, A]
    first = None
    if openspiel_cache:
        first = _first_visit_actions(
            S, H, range(S), [range(A)] * S, lambda s, a: (s, a), lambda s, a: list(dest[s, a]), 0
        )
        base = _action_term(expected, Rz, first, True, T)
    else:
        base = _action_term(expected, Rz, None, False, T)
        base[0] += Rz[:, 0][:, None]
    meta = _Meta(jnp.ones((S, A), bool), jnp.arange(S)[:, None], jnp.zeros(S, int), 1)
    reward = _LogCongestion(jnp.asarray(base), float(eta), _EPS_CPP, 1.0, None, meta)
    return FiniteGame(jnp.full(S, 1.0 / S), kernel, reward, T)


# ---------------------------------------------------------------------------------------------
# linear-quadratic (python mean_field_lin_quad)
# ---------------------------------------------------------------------------------------------


class _LQKernel(eqx.Module):
    """Dense P[x, a, x′] of mean_field_lin_quad with mean reversion K ≠ 0 (the move depends on m_t)."""

    shifts: Array
    noise_dest: Array  # [S, E]
    noise_p: Array  # [E]
    dt: float
    mean_revert: float
    joint: bool = eqx.field(static=True)

    def __call__(self, t, m, params):
        mu = m.sum(-1) if self.joint else m
        S = mu.shape[0]
        x = jnp.arange(S)
        mean = jnp.dot(x, mu)
        full = self.dt * (self.shifts[None, :] + self.mean_revert * (mean - x)[:, None])
        x1 = jnp.mod(x[:, None] + jnp.round(full).astype(int), S)  # [S, A]
        dest = self.noise_dest[x1]  # [S, A, E]
        return (_one_hot(dest, S) * self.noise_p[None, None, :, None]).sum(2)


def _one_hot(idx, n):
    return (idx[..., None] == jnp.arange(n)).astype(float)


class _LQReward(eqx.Module):
    r"""Clean LQ reward on the joint mean field L_t (see `mean_field_lin_quad`)."""

    kernel: object
    shifts: Array
    dt: float
    cross_q: float
    kappa: float
    last: int = eqx.field(static=True)
    meta: _Meta

    def __call__(self, t, L, params):
        mu = L.sum(-1)
        pos = jnp.arange(mu.shape[0], dtype=L.dtype)
        d = jnp.dot(pos, mu) - pos
        m_next = jnp.dot(pos, self.kernel.push(t, L, params, L))
        x_next = self.kernel.expect(t, L, params, pos)  # E[x_{t+1} | x, a]
        u = self.shifts[None, :]
        act = self.dt / 2 * (-(u**2) + 2 * self.cross_q * u * (m_next - x_next))
        return -self.dt / 2 * self.kappa * (d**2)[:, None] + jnp.where(t < self.last, act, 0.0)


class _LQCacheReward(eqx.Module):
    r"""OpenSpiel's cached LQ reward: the previous move u is the first-visit one, u_first[t, x]."""

    u_first: Array  # [T+1, S]
    n_actions: int = eqx.field(static=True)
    dt: float
    cross_q: float
    kappa: float
    meta: _Meta

    def __call__(self, t, mu, params):
        pos = jnp.arange(mu.shape[0], dtype=mu.dtype)
        d = jnp.dot(pos, mu) - pos
        u = self.u_first[t]
        r = self.dt / 2 * (-(u**2) + 2 * self.cross_q * u * d - self.kappa * d**2)
        return jnp.broadcast_to(r[:, None], (mu.shape[0], self.n_actions))


@checked
def mean_field_lin_quad(
    size: int = 10,
    horizon: int = 10,
    *,
    dt: float = 1.0,
    n_actions_per_side: int = 3,
    volatility: float = 1.0,
    mean_revert: float = 0.0,
    cross_q: float = 0.01,
    kappa: float = 0.5,
    openspiel_cache: bool = False,
) -> FiniteGame:
    r"""OpenSpiel's ``mean_field_lin_quad`` (Python): a discretised linear-quadratic MFG on a ring.

    Ring of N = ``size`` cells, μ₀ uniform, m_t = Σ_x x μ_t(x) (arithmetic mean). Actions
    a = 0..2n, u = a − n. Player move x₁ = x + round(dt (u + K (m_t − x))) mod N (K =
    ``mean_revert``), then noise ε = −n..n with P(ε) = Φ((ε + ½)/σ) − Φ((ε − ½)/σ) (tails lumped
    into ±n): x′ = round(x₁ + ε √dt σ) mod N. Decision ticks t with t·dt < H (T = last one).
    OpenSpiel's reward at t is (dt/2)(−u_{t−1}² + 2q u_{t−1}(m_t − x_t) − κ (m_t − x_t)²),
    u_{−1} = 0, q = ``cross_q``. The clean Markov model pays the u-terms when acting, in
    expectation over the next state, which needs μ_{t+1} = push(L_t): it is a game on the joint
    mean field L_t (``mean_field="state_action"``):

        r_t(x, u; L_t) = −(dt/2) κ (m_t − x)² + [t < T] (dt/2)(−u² + 2q u (m_{t+1} − E[x_{t+1} | x, u])).

    OpenSpiel's ``terminal_cost`` is never paid (the terminal node is not a decision node; NashConv
    is the same for every terminal_cost), so it is not a parameter here. ``openspiel_cache=True``
    builds OpenSpiel's cached game instead (state mean field, u_{t−1} replaced by the first-visit
    move u_first(t, x); needs K = 0), which reproduces its NashConv.

    Source: ``python/mfg/games/linear_quadratic.py``.
    """
    N, H, n = int(size), _horizon(horizon), int(n_actions_per_side)
    A = 2 * n + 1
    ticks = 0
    while ticks * dt < H:
        ticks += 1
    T = ticks - 1
    shifts = np.arange(A) - n
    x = np.arange(N)
    cdf = np.vectorize(lambda z: 0.5 * math.erfc(-z / (volatility * math.sqrt(2))))
    p = cdf(shifts + 0.5) - cdf(shifts - 0.5)
    p[0] += cdf(shifts[0] - 0.5)
    p[-1] += 1.0 - cdf(shifts[-1] + 0.5)
    noise_dest = np.round(x[:, None] + shifts[None, :] * math.sqrt(dt) * volatility).astype(int) % N
    meta = _Meta(jnp.ones((N, A), bool), jnp.asarray(x[:, None]), jnp.zeros(N, int), 1)
    mu0 = jnp.full(N, 1.0 / N)
    if openspiel_cache:
        if mean_revert != 0:
            raise GameError("openspiel_cache needs mean_revert = 0 (the chance keys would depend on m_t)")
        move = (x[:, None] + np.round(dt * shifts).astype(int)[None, :]) % N
        first = _first_visit_actions(
            N, T + 1, range(N), [range(A)] * N, lambda s, a: int(move[s, a]), lambda s, a: list(noise_dest[move[s, a]]), n
        )
        u_first = np.where(first >= 0, shifts[np.maximum(first, 0)], 0).astype(float)
        kernel = _two_stage(move, noise_dest, np.broadcast_to(p, (N, A)))
        reward = _LQCacheReward(jnp.asarray(u_first), A, float(dt), float(cross_q), float(kappa), meta)
        return FiniteGame(mu0, kernel, reward, T)
    if mean_revert == 0:
        move = (x[:, None] + np.round(dt * shifts).astype(int)[None, :]) % N
        kernel = _two_stage(move, noise_dest, np.broadcast_to(p, (N, A)))
    else:
        kernel = DenseKernel(
            _LQKernel(jnp.asarray(shifts, float), jnp.asarray(noise_dest), jnp.asarray(p), float(dt), float(mean_revert), True)
        )
    reward = _LQReward(kernel, jnp.asarray(shifts, float), float(dt), float(cross_q), float(kappa), T, meta)
    return FiniteGame(mu0, kernel, reward, T, mean_field="state_action", n_actions=A)


# ---------------------------------------------------------------------------------------------
# predator-prey (python_mfg_predator_prey): several populations
# ---------------------------------------------------------------------------------------------

PREDATOR_PREY_MATRIX = ((0, -1, 1), (1, 0, -1), (-1, 1, 0))
# python_mfg_predator_prey / python_mfg_crowd_avoidance: a = 0..4 moves (x, y) by
# (0,0), (1,0), (0,1), (0,−1), (−1,0); the noise uses the same moves
POPULATION_MOVES = ((0, 0), (1, 0), (0, 1), (0, -1), (-1, 0))

CROWD_AVOIDANCE_GRID = (
    "#######",
    "#  #  #",
    "#     #",
    "#  #  #",
    "#     #",
    "#  #  #",
    "#######",
)


class _PopulationReward(eqx.Module):
    r"""r(p, x) = −c log(ρ_p(x) + ε) + Σ_q M[p, q] ρ_q(x) + bonus(p, x), ρ_q = μ(q, ·)/w_q
    (or ``rho0`` at t = 0)."""

    matrix: Array  # [P, P]
    weights: Array  # [P]
    bonus: Array  # [P, X]
    log_coef: float
    eps: float
    rho0: Array | None  # [P, X]
    n_actions: int = eqx.field(static=True)
    meta: _Meta

    def __call__(self, t, mu, params):
        P = self.matrix.shape[0]
        rho = mu.reshape(P, -1) / self.weights[:, None]
        if self.rho0 is not None:
            rho = jnp.where(t == 0, self.rho0, rho)
        r = self.matrix @ rho + self.bonus
        if self.log_coef != 0:
            r = r - self.log_coef * jnp.log(rho + self.eps)
        return jnp.broadcast_to(r.reshape(-1)[:, None], (mu.shape[0], self.n_actions))


def _grid_populations(N, H, init, forbidden, geometry, noise_probability, matrix, log_coef, bonus, openspiel_t0):
    """The multi-population grid game shared by predator-prey and crowd avoidance.

    ``init[p, y, x]`` (OpenSpiel's layout), ``forbidden[x, y]``, ``bonus[p, x, y]``. States: the free
    cells of each population, index p·X + k (k: free cells in (x, y) order)."""
    T = H - 1
    M = np.asarray(matrix, float)
    P = M.shape[0]
    if M.shape != (P, P):
        raise GameError(f"the population matrix must be square, got shape {M.shape}")
    if geometry not in ("square", "torus"):
        raise GameError(f"geometry must be 'square' or 'torus', got {geometry!r}")
    init = np.asarray(init, float).reshape(P, N, N)
    init = init / init.sum((1, 2), keepdims=True)
    free = np.argwhere(~forbidden)  # (x, y) sorted: the order x·N + y
    X = len(free)
    index = -np.ones((N, N), int)
    index[free[:, 0], free[:, 1]] = np.arange(X)
    if np.any(init[:, free[:, 1], free[:, 0]].sum(1) < 1 - 1e-12):
        raise GameError("init_distrib puts mass on forbidden cells")
    rho_true = init[:, free[:, 1], free[:, 0]]  # [P, X]
    w = np.full(P, 1.0 / P)
    mu0 = (rho_true * w[:, None]).reshape(-1)

    cand = free[:, None, :] + np.asarray(POPULATION_MOVES)[None]  # [X, 5, 2]
    inside = np.all((cand >= 0) & (cand < N), -1)
    hit = inside & forbidden[np.clip(cand[..., 0], 0, N - 1), np.clip(cand[..., 1], 0, N - 1)]
    nxt = cand % N if geometry == "torus" else np.clip(cand, 0, N - 1)
    nxt = np.where(hit[..., None], free[:, None, :], nxt)  # a move into a forbidden cell stays
    if np.any(forbidden[nxt[..., 0], nxt[..., 1]]):
        raise GameError("a move wraps around into a forbidden cell (OpenSpiel checks walls before wrapping)")
    move = index[nxt[..., 0], nxt[..., 1]]  # [X, 5]
    noise_p = np.array([1 - noise_probability] + [noise_probability / 4] * 4)
    move_all = (np.broadcast_to(move, (P, X, 5)) + (np.arange(P) * X)[:, None, None]).reshape(P * X, 5)
    kernel = _two_stage(move_all, move_all, np.broadcast_to(noise_p, (P * X, 5)))

    rho0 = None
    if openspiel_t0:
        flat = init.reshape(-1)  # OpenSpiel's initial_distribution: p·N² + (x + N y)
        idx = np.arange(P)[:, None] + P * (free[:, 1] + N * free[:, 0])[None, :]  # get_pos_proba's index
        rho0 = jnp.asarray(flat[idx])
    coords = np.concatenate([np.repeat(np.arange(P), X)[:, None], np.tile(free, (P, 1))], 1)
    meta = _Meta(jnp.ones((P * X, 5), bool), jnp.asarray(coords), jnp.repeat(jnp.arange(P), X), P)
    bonus = np.asarray(bonus, float)[:, free[:, 0], free[:, 1]]
    reward = _PopulationReward(jnp.asarray(M), jnp.asarray(w), jnp.asarray(bonus), float(log_coef), _EPS_PY, rho0, 5, meta)
    return FiniteGame(jnp.asarray(mu0), kernel, reward, T)


@checked
def predator_prey(
    size: int = 5,
    horizon: int = 10,
    *,
    reward_matrix=PREDATOR_PREY_MATRIX,
    init_distrib=None,
    noise_probability: float = 0.8,
    congestion_coeff: float = 1.0,
    geometry: str = "square",
    openspiel_t0: bool = True,
) -> FiniteGame:
    r"""OpenSpiel's ``python_mfg_predator_prey``: P populations (P = len(reward_matrix)) on a
    ``size``² square (clipped at the border) or torus (``geometry="torus"``).

    One mfgx game whose state is (p, x, y), index p·N² + x·N + y (`state_coords` gives
    (p, x, y)), with a block-diagonal kernel; μ₀ gives mass w_p = 1/P to population p.
    Actions a = 0..4 move (x, y) by (0,0), (1,0), (0,1), (0,−1), (−1,0); then noise: no move with
    probability 1 − ν, each of the four moves with ν/4 (ν = ``noise_probability``). H = ``horizon``
    (T = H − 1). Reward of population p at (x, y), ρ_q = μ(q, ·)/w_q the distribution of population q:

        r_t(p, x, y) = −c log(ρ_p(x, y) + 1e−25) + Σ_q M[p, q] ρ_q(x, y),   c = ``congestion_coeff``.

    ``init_distrib``: array [P, N, N] in OpenSpiel's layout (flat index i ↦ (x, y) = (i mod N,
    i div N), i.e. ``init_distrib[p, y, x]``), each population's slice normalised to 1; default: the
    corners (0, 0), (N−1, 0), (0, N−1) for populations 0, 1, 2. At t = 0 OpenSpiel reads the initial
    distribution with the index of ``distribution_support`` (p + P(y + N x)), which does not match
    its layout: ``openspiel_t0=True`` reproduces that (values match OpenSpiel's; NashConv is
    unaffected), ``openspiel_t0=False`` uses the true ρ₀.

    mfgx's exploitability is Σ_p w_p gap_p; OpenSpiel's NashConv is Σ_p gap_p = `nash_conv`.

    Source: ``python/mfg/games/predator_prey.py``.
    """
    N, H = int(size), _horizon(horizon)
    P = len(reward_matrix)
    if init_distrib is None:
        if P != 3:
            raise GameError("pass init_distrib for a number of populations other than 3")
        init_distrib = np.zeros((P, N, N))  # [p, y, x]
        init_distrib[0, 0, 0] = init_distrib[1, 0, N - 1] = init_distrib[2, N - 1, 0] = 1.0
    return _grid_populations(
        N, H, init_distrib, np.zeros((N, N), bool), geometry, noise_probability,
        reward_matrix, congestion_coeff, np.zeros((P, N, N)), openspiel_t0,
    )


@checked
def crowd_avoidance(
    horizon: int = 10,
    *,
    congestion_matrix=((0, 1), (1, 0)),
    coef_congestion: float = 0.0,
    coef_target: float = 1.0,
    proba_noise: float = 0.5,
    init_distrib=None,
    forbidden_states=None,
    geometry: str = "square",
    openspiel_t0: bool = True,
) -> FiniteGame:
    r"""OpenSpiel's ``python_mfg_crowd_avoidance``: two populations on the 7x7 grid
    `CROWD_AVOIDANCE_GRID` (22 free cells; ``forbidden_states`` = [(x, y), ...] replaces it).

    States (p, x, y) over the free cells, index p·22 + k (`state_coords` gives (p, x, y)); μ₀ gives
    mass ½ to each population. Moves and noise as in `predator_prey` (ν = ``proba_noise``); a move
    into a forbidden cell stays (so every action is legal). H = ``horizon`` (T = H − 1). Reward:

        r_t(p, x, y) = −c Σ_q C[p, q] ρ_q(x, y) + c_T 1[(x, y) = target_p],

    C = ``congestion_matrix``, c = ``coef_congestion`` (OpenSpiel's default 0), c_T =
    ``coef_target``, targets (5, 3) and (1, 3) (fixed in OpenSpiel). ``init_distrib``: [2, 7, 7] in
    OpenSpiel's layout ``[p, y, x]``; default: population 0 at (1, 2), (2, 2) w.p. 0.4 and (1, 4) w.p.
    0.2, population 1 mirrored. ``openspiel_t0`` as in `predator_prey` (matters only when c ≠ 0).

    Source: ``python/mfg/games/crowd_avoidance.py``.
    """
    N, H = 7, _horizon(horizon)
    if forbidden_states is None:
        forbidden_states = grid_forbidden(CROWD_AVOIDANCE_GRID)
    forbidden = np.zeros((N, N), bool)
    for x, y in forbidden_states:
        forbidden[x, y] = True
    if init_distrib is None:
        init_distrib = np.zeros((2, N, N))  # [p, y, x]
        init_distrib[0, 2, 1] = init_distrib[0, 2, 2] = 0.4
        init_distrib[0, 4, 1] = 0.2
        init_distrib[1, 2, 5] = 0.2
        init_distrib[1, 4, 4] = init_distrib[1, 4, 5] = 0.4
    bonus = np.zeros((2, N, N))  # [p, x, y]
    bonus[0, 5, 3] = bonus[1, 1, 3] = coef_target
    return _grid_populations(
        N, H, init_distrib, forbidden, geometry, proba_noise,
        -coef_congestion * np.asarray(congestion_matrix, float), 0.0, bonus, openspiel_t0,
    )
