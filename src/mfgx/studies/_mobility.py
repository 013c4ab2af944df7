r"""Mobility study: the bike-share MFG (calibration paper §6.5, variant B) against the forward-ODE
baseline ("MF Dynamics"), its metrics, and counterfactual station closures.

Both models use `games.bike_share` on the observations' grid (N points on [0, T], Δt = T/(N−1)),
the positivity-preserving implicit scheme (no simplex projection), μ₀ = the observed first bin,
and the same base-rate path, the off-diagonal entries of

    q^base(t) = softplus(W t/T + β) ∈ ℝ^{S(S−1)}     (``path="linear"``, the paper's "test2"; or a
                                                      learned constant, ``path="constant"``, "test1")

- **baseline**: θ = {q^base, b = 1, c = 0, w_g = 0}. Then u ≡ 0, a* = q^base and the flow is the
  forward ODE μ_{n+1} = μ_n (I − Δt Q^base_n)⁻¹ (no game).
- **mfg**: θ = {q^base, b = softplus(z_b), c = softplus(z_c), w_g} with b, c, w_g learned constants
  (initially 1, 0.5 and 0; w_g unbounded), i.e. the cost f(x, a, μ) = b Σ_{y≠x}(a_xy − q^base_xy)²
  + c Σ_{y≠x} μ(y) a_xy, terminal cost g = w_g and best response
  a*_xy = clip(q^base_xy − (c μ(y) + u(y) − u(x))/(2b), 0, a_max).

The constants ride along the time path (`BikeSharePath`: γ(t) = [q^base(t), b, c, w_g]), so that
`calibrate.fit` trains both models with the same optimiser, epochs and batches.

Counterfactual closure of station s during the steps n ∈ [n₀, n₁] (`closure`):

- **reactive** (baseline): q^base_n(·, s) = 0 for n in the window; the forward ODE is re-run.
- **anticipatory** (MFG): the same closed base rates, the best response constrained to
  a*_n(·, s) = 0 in the window, and a running cost ``penalty`` for being at s there (wrappers of
  the game's cost and best-rate modules, `closed_game`); solved as an equilibrium, so the penalty
  raises u(s) before the window and agents avoid s and leave it early. With penalty 0, c = 0 and
  w_g = 0 it is the reactive flow. The learned w_g is kept (``terminal=True``; the paper's code
  dropped it).
"""

from __future__ import annotations

import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .. import games
from .._transforms import inverse_softplus
from ..calibrate import (
    AbstractPath,
    Calibration,
    CalibrationError,
    CalibrationModel,
    Constant,
    Neural,
)
from ..data import Observations
from ..finite import ControlGame, ConvergenceWarning, FixedPoint, propagate, solve
from ..games._epidemic import at
from ._runner import flow_metrics, improvement, predict

__all__ = [
    "BikeParams",
    "BikeSharePath",
    "closed_game",
    "closure",
    "fitted_params",
    "improvement",
    "mobility_metrics",
    "mobility_models",
    "rates_matrix",
]

REL_FLOOR = 1e-4  # rel. L2 denominator μ_obs² + 1e-4 (§6.5)
RATE_INIT = math.log(2.0)  # softplus(0): the paper's zero-initialised Dense layer


def _off_diagonal_index(S: int):
    rows, cols = np.nonzero(~np.eye(S, dtype=bool))
    return rows, cols


def rates_matrix(g: Float[Array, "N k"], n_states: int) -> Float[Array, "N S S"]:
    """The off-diagonal rates g[N, S(S−1)] (row-major, as the paper's γ ∈ ℝ^{d(d−1)}) as [N, S, S]."""
    rows, cols = _off_diagonal_index(n_states)
    q = jnp.zeros((g.shape[0], n_states, n_states), g.dtype)
    return q.at[:, rows, cols].set(g)


class BikeSharePath(AbstractPath):
    r"""γ(t, μ) = [q^base(t, μ) (S(S−1) entries), b, c, w_g (S entries)]: a rate path and three
    learned constants of the bike-share MFG, b = softplus(z_b), c = softplus(z_c), w_g unbounded.

    ``rates`` is any positive `AbstractPath` with S(S−1) outputs (e.g. a depth-0 `Neural` of t).
    The transforms are applied per block, so `transform` is the identity here.
    """

    rates: AbstractPath
    z_b: Float[Array, ""]
    z_c: Float[Array, ""]
    w_g: Float[Array, " S"]

    def __init__(self, rates: AbstractPath, n_states: int, *, b: float = 1.0, c: float = 0.5, w_g=None):
        self.floor, self.upper = 0.0, None
        if rates.size != n_states * (n_states - 1):
            raise CalibrationError(f"the rate path must have S(S−1) = {n_states * (n_states - 1)} outputs, got {rates.size}")
        if not (b > 0 and c > 0):
            raise CalibrationError(f"b and c start positive (softplus), got b = {b}, c = {c}")
        w = np.zeros(n_states) if w_g is None else np.asarray(w_g, dtype=float)
        if w.shape != (n_states,) or not np.all(np.isfinite(w)):
            raise CalibrationError(f"w_g must be a finite vector of shape ({n_states},), got {w.shape}")
        self.rates = rates
        self.z_b, self.z_c = (inverse_softplus(v) for v in (b, c))
        self.w_g = jnp.asarray(w)

    @property
    def size(self) -> int:
        return self.rates.size + 2 + self.w_g.shape[0]

    @property
    def n_covariates(self) -> int:
        return self.rates.n_covariates

    def raw(self, t, mu):
        costs = jnp.stack([jax.nn.softplus(self.z_b), jax.nn.softplus(self.z_c)])
        return jnp.concatenate([self.rates(t, mu), costs, self.w_g])

    def transform(self, z):
        return z

    @property
    def costs(self) -> dict[str, Array]:
        """The learned constants {"b", "c", "w_g"}."""
        return {"b": jax.nn.softplus(self.z_b), "c": jax.nn.softplus(self.z_c), "w_g": self.w_g}


class BikeParams(eqx.Module):
    """``to_params`` of the mobility models: γ[N, p] ↦ θ of `games.bike_share`. For the baseline
    (``learn_costs=False``) b = 1, c = 0, w_g = 0; else b, c, w_g are read from γ[0] (constant in t)."""

    n_states: int = eqx.field(static=True)
    learn_costs: bool = eqx.field(static=True)

    def __call__(self, g):
        S = self.n_states
        k = S * (S - 1)
        q = rates_matrix(g[:, :k], S)
        if not self.learn_costs:
            return {"q_base": q, "b": jnp.ones((), g.dtype), "c": jnp.zeros((), g.dtype), "w_g": jnp.zeros(S, g.dtype)}
        return {"q_base": q, "b": g[0, k], "c": g[0, k + 1], "w_g": g[0, k + 2 : k + 2 + S]}


def mobility_models(
    n_states: int,
    n_points: int,
    *,
    seed: int = 0,
    path: str = "linear",
    T: float = 1.0,
    rate_init: float = RATE_INIT,
    b: float = 1.0,
    c: float = 0.5,
    damping: float = 0.5,
    a_max: float = 100.0,
    tol: float = 1e-9,
    max_steps: int = 500,
) -> dict[str, CalibrationModel]:
    r"""{"baseline": forward ODE of the base rates, "mfg": bike-share MFG variant B} (module docstring).

    - ``path``: "linear" (q^base = softplus of a linear function of t; `Neural` of depth 0, initial
      weights from ``seed``) or "constant" (a learned constant vector). Both models start from the
      same base rates (``rate_init``, the paper's softplus(0) = log 2 by default).
    - ``b``, ``c``: initial effort and congestion weights of the MFG; w_g starts at 0.
    - Implicit scheme (stochastic steps for every Δt, no projection); rates clipped at ``a_max``.
    - Solvers: damped Picard `FixedPoint(damping)` for the MFG (the paper: 0.5); the baseline's
      fixed-point map does not depend on μ, so the undamped `FixedPoint(0.0)` solves it exactly
      in one step (its flow is the same for every damping).
    """
    if not (isinstance(n_states, (int, np.integer)) and n_states >= 2):
        raise CalibrationError(f"n_states must be an int ≥ 2, got {n_states!r}")
    if not (isinstance(n_points, (int, np.integer)) and n_points >= 2):
        raise CalibrationError(f"n_points must be an int ≥ 2, got {n_points!r}")
    S, k = int(n_states), int(n_states) * (int(n_states) - 1)
    if path == "linear":
        rates = Neural(1, 0, jax.random.PRNGKey(seed), n_states=S, out_size=k, inputs="t", time_scale=T, init=rate_init)
    elif path == "constant":
        rates = Constant(np.full(k, rate_init))
    else:
        raise CalibrationError(f"path must be 'linear' or 'constant', got {path!r}")
    q0 = np.full((S, S), rate_init) * (1 - np.eye(S))
    mu0 = np.full(S, 1.0 / S)
    game = games.bike_share(q0, 1.0, 0.0, None, mu0, T=T, n_points=int(n_points), a_max=a_max, scheme="implicit")
    options = {"tol": tol, "max_steps": max_steps}
    return {
        "baseline": CalibrationModel(game, rates, BikeParams(S, False), FixedPoint(0.0), **options),
        "mfg": CalibrationModel(game, BikeSharePath(rates, S, b=b, c=c), BikeParams(S, True), FixedPoint(damping), **options),
    }


# --- metrics ---------------------------------------------------------------------------------------


def mobility_metrics(model, observations: Observations, *, batch_size: int | None = None) -> dict:
    r"""§6.5 metrics of a `CalibrationModel` or `Calibration` on ``observations``, averaged over days:

        L2 = mean_{n,x} (μ̂_n(x) − μ^obs_n(x))²,   rel. L2 = mean_{n,x} (μ̂ − μ^obs)² / (μ^obs² + 1e-4)

    (over the observed entries). Returns {"l2", "rel_l2", "n_trajectories", "n_nonconverged"}."""
    if batch_size is None:
        batch_size = getattr(model, "batch_size", 16)
    flows, missed = predict(model, observations, batch_size)
    return {**flow_metrics(flows, observations, REL_FLOOR), "n_nonconverged": missed}


# --- counterfactual station closure ----------------------------------------------------------------


def _as_model(obj) -> CalibrationModel:
    model = obj.model if isinstance(obj, Calibration) else obj
    if not isinstance(model, CalibrationModel):
        raise CalibrationError(f"expected a CalibrationModel or Calibration, got {type(obj).__name__}")
    if not isinstance(model.game, ControlGame):
        raise CalibrationError("closures need a bike-share model (a ControlGame), see mobility_models")
    return model


def fitted_params(model, mu0) -> dict[str, Array]:
    """θ of a (calibrated) mobility model started at ``mu0``, with q^base as a path [N, S, S]. The path
    is evaluated on the constant trajectory μ_n = μ₀ (the mobility paths read t only)."""
    model = _as_model(model)
    N, S = model.n_times, model.n_states
    y = jnp.broadcast_to(jnp.asarray(mu0, float), (N, S))
    theta = model.to_params(model.path_on(y, jnp.ones((N, S), bool)))
    theta = dict(theta)
    theta["q_base"] = jnp.broadcast_to(theta["q_base"], (N, S, S))
    return theta


class _ClosedCost(eqx.Module):
    """f + penalty_n(x): the running cost plus a per-step, per-state penalty [N, S]."""

    inner: object
    penalty: Float[Array, "N S"]
    dt: float = eqx.field(static=True)

    def __call__(self, t, mu, theta, a):
        return self.inner(t, mu, theta, a) + at(self.penalty, t, self.dt, 1)


class _ClosedRates(eqx.Module):
    """The best rates times allowed_n(y) ∈ {0, 1} [N, S]: a*_n(·, y) = 0 where y is closed. Each
    a_xy is minimised separately, so this is the best response under that constraint."""

    inner: object
    allowed: Float[Array, "N S"]
    dt: float = eqx.field(static=True)

    def __call__(self, t, mu, theta, u):
        return self.inner(t, mu, theta, u) * at(self.allowed, t, self.dt, 1)[None, :]


def _shut(N: int, S: int, station, window) -> Array:
    """[N, S]: True at (n, station) for the steps n of the window (inclusive)."""
    n = jnp.arange(N)
    return ((n >= window[0]) & (n <= window[1]))[:, None] & (jnp.arange(S) == station)[None, :]


def closed_game(game: ControlGame, station: int, window: tuple[int, int], penalty: float) -> ControlGame:
    r"""``game`` (a bike-share `ControlGame` with θ["q_base"] a path [N, S, S]) with ``station`` closed
    during the steps n ∈ [window[0], window[1]]: q^base_n(·, s) = 0, a*_n(·, s) = 0 and a running cost
    ``penalty`` at s. Station, window and penalty are arrays, so one compiled solve serves every
    closure (and ``penalty=0`` with an empty window is ``game`` itself)."""
    shut = _shut(game.horizon + 1, game.n_states, station, window)
    theta = {**game.params, "q_base": jnp.where(shut[:, None, :], 0.0, game.params["q_base"])}
    return ControlGame(
        game.mu0,
        _ClosedCost(game.running_cost, jnp.where(shut, jnp.asarray(penalty, float), 0.0), game.dt),
        game.terminal_cost,
        _ClosedRates(game.best_rates, jnp.where(shut, 0.0, 1.0), game.dt),
        game.horizon, game.dt, theta, scheme=game.scheme, problem=game.problem,
    )


@eqx.filter_jit
def _forward_ode(game: ControlGame):
    """The flow of the base rates, a* = q^base (the baseline: c = 0, w_g = 0, so u ≡ 0)."""
    return propagate(game, game.params["q_base"])


@eqx.filter_jit
def _equilibria(game: ControlGame, solver, tol, max_steps: int, station, window, penalty):
    """Unperturbed and closed equilibria of the MFG, one compiled solve for both (stacked games)."""
    open_ = closed_game(game, station, (window[0], window[0] - 1), 0.0)  # an empty window: the game itself
    shut = closed_game(game, station, window, penalty)
    both = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), *(eqx.filter((open_, shut), eqx.is_array)))
    static = eqx.filter(open_, eqx.is_array, inverse=True)

    def one(dynamic):
        eq = solve(eqx.combine(dynamic, static), solver, tol=tol, max_steps=max_steps)
        return eq.flow, eq.policy, eq.converged, eq.residual

    return jax.vmap(one)(both)


def closure(
    calibrated_baseline,
    calibrated_mfg,
    mu0,
    station: int,
    window: tuple[int, int],
    penalty: float = 1000.0,
    *,
    terminal: bool = True,
    tol: float = 1e-9,
    max_steps: int = 2000,
) -> dict:
    r"""Close ``station`` during the steps n ∈ [window[0], window[1]] (inclusive; step n moves μ_n to
    μ_{n+1}) and compare the reactive forward ODE with the anticipatory MFG (module docstring).

    ``calibrated_baseline``/``calibrated_mfg``: `Calibration` or `CalibrationModel` of
    `mobility_models`; ``mu0``: the initial distribution [S]; ``terminal=False`` drops the learned
    w_g (as the paper's code did). Returns numpy arrays: "times" [N] (model time), flows [N, S]
    "baseline" and "mfg" (unperturbed), "reactive" and "anticipatory"; "out_rate": the total rate
    Σ_y a*_n(s, y) out of the station {"mfg", "anticipatory"} [N−1]; "converged" and "residual" of
    the two equilibria; and the inputs ("station", "window", "penalty", "terminal").
    """
    base, mfg = _as_model(calibrated_baseline), _as_model(calibrated_mfg)
    N, S = mfg.n_times, mfg.n_states
    if (base.n_times, base.n_states) != (N, S):
        raise CalibrationError(f"the two models have different grids: {(base.n_times, base.n_states)} vs {(N, S)}")
    mu0 = np.asarray(mu0, dtype=float)
    if mu0.shape != (S,) or np.any(mu0 < 0) or abs(mu0.sum() - 1) > 1e-9:
        raise CalibrationError(f"mu0 must be a distribution of shape ({S},), got {mu0}")
    if not (isinstance(station, (int, np.integer)) and 0 <= station < S):
        raise CalibrationError(f"station must be a state index in [0, {S}), got {station!r}")
    n0, n1 = (int(w) for w in window)
    if not 0 <= n0 <= n1 <= N - 2:
        raise CalibrationError(f"window must be steps (start, stop) with 0 ≤ start ≤ stop ≤ N − 2 = {N - 2}, got {window}")
    if not penalty >= 0:
        raise CalibrationError(f"penalty must be ≥ 0, got {penalty}")
    station, window = int(station), (n0, n1)

    theta_b = fitted_params(base, mu0)
    if float(theta_b["c"]) != 0.0 or np.any(np.asarray(theta_b["w_g"]) != 0.0):
        raise CalibrationError("the reactive model must be the forward ODE (c = 0, w_g = 0): the baseline of mobility_models")
    base_game = eqx.tree_at(lambda g: g.mu0, base.game, jnp.asarray(mu0)).with_params(theta_b)
    unperturbed_b = _forward_ode(base_game)
    shut = _shut(N, S, station, window)
    reactive = _forward_ode(base_game.with_params({**theta_b, "q_base": jnp.where(shut[:, None, :], 0.0, theta_b["q_base"])}))

    theta_m = fitted_params(mfg, mu0)
    if not terminal:
        theta_m["w_g"] = jnp.zeros_like(theta_m["w_g"])
    game = eqx.tree_at(lambda g: g.mu0, mfg.game, jnp.asarray(mu0)).with_params(theta_m)
    flow, policy, converged, residual = _equilibria(
        game, mfg.solver, jnp.asarray(float(tol)), int(max_steps), jnp.asarray(station), jnp.asarray(window),
        jnp.asarray(float(penalty)),
    )
    flow, policy, converged, residual = (np.asarray(x) for x in (flow, policy, converged, residual))
    if not converged.all():
        warnings.warn(
            f"closure: the {'unperturbed' if not converged[0] else 'closed'} MFG equilibrium did not converge "
            f"(residual {residual.max():.3g} > tol {tol:g}); raise max_steps",
            ConvergenceWarning,
            stacklevel=2,
        )
    out_rate = (policy[:, :-1, station] * (1 - np.eye(S)[station])).sum(-1)  # Σ_y a*_n(s, y)
    return {
        "times": np.asarray(mfg.times),
        "station": station,
        "window": window,
        "penalty": float(penalty),
        "terminal": bool(terminal),
        "baseline": np.asarray(unperturbed_b),
        "reactive": np.asarray(reactive),
        "mfg": flow[0],
        "anticipatory": flow[1],
        "out_rate": {"mfg": out_rate[0], "anticipatory": out_rate[1]},
        "converged": {"mfg": bool(converged[0]), "anticipatory": bool(converged[1])},
        "residual": {"mfg": float(residual[0]), "anticipatory": float(residual[1])},
        "params": {k: np.asarray(v) for k, v in theta_m.items() if k != "q_base"},
    }
