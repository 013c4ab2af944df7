r"""Games with a known hidden term, their data, and reading a learned term back.

A neural MFG is judged by whether its learned correction f_φ recovers an interaction that the
data contain but the MFG drift b lacks. Here the data come from

    dXᵢ = [ b(t, X)ᵢ + h(t, X)ᵢ ] dt + σ dWᵢ,

with h a known hidden term (`Conformity`, `Congestion`) added to a game as its ``correction``,
simulated by `game_data`; `correction_recovery` compares f_φ with h on held-out clouds (R² over
the populated states) and `input_scaling` gives a network inputs of unit scale.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._data import PathData
from ._errors import NeuralError
from ._features import check_features
from ._games import SIRDrift
from ._model import AbstractCorrection, AbstractDrift, ParticleSDE
from ._simulate import Integrator, _solve, check_covariates, check_simulation, check_x0, time_grid
from ._statistics import AbstractStatistic, Moments


def _finite_number(name, v):
    if isinstance(v, jax.core.Tracer):
        return v
    v = float(v)
    if not math.isfinite(v):
        raise NeuralError(f"{name} must be finite, got {v}")
    return v


class Conformity(AbstractCorrection):
    r"""Conformity (herding): each agent is pulled towards the population mean,

        h(t, X)ᵢ = k · (m − xᵢ),   m = (1/N) Σⱼ xⱼ,

    with strength k (``strength``; k > 0 herds, k < 0 disperses). In 1-D it contracts the
    spread: d Var = (… − 2k Var) dt, and leaves the mean unchanged. ``strength`` is an array leaf:
    `fit` with the default ``trainable`` estimates it (a parametric alternative to `AgentMLP`)."""

    strength: Array

    def __init__(self, strength: float):
        self.strength = jnp.asarray(_finite_number("Conformity strength", strength))

    def __call__(self, t, x, c=None):
        return self.at(t, x, x, c)

    def at(self, t, x, population, c=None):
        population = jnp.asarray(population)
        return self.strength.astype(population.dtype) * (jnp.mean(population, axis=0) - jnp.asarray(x, population.dtype))


def hidden_conformity(strength: float = 0.8) -> Conformity:
    r"""The hidden conformity term h(t, X)ᵢ = k (m − xᵢ) (`Conformity`), to add to a game as its
    correction, e.g. ``meeting(correction=hidden_conformity(0.8))``."""
    return Conformity(strength)


class Congestion(AbstractCorrection):
    r"""Congestion-dependent speed: agents in crowded regions move slower along the game's drift b,

        b(t, X)ᵢ + h(t, X)ᵢ = (1 − c · ρ_h(xᵢ)) · b(t, X)ᵢ,   ρ_h(x) = (1/N) Σⱼ exp(−|x − xⱼ|² / 2h²),

    so h = −c ρ_h(xᵢ) b(t, X)ᵢ, with ρ_h ∈ (0, 1] the kernel-smoothed crowding at xᵢ, c =
    ``strength`` ∈ [0, 1] (speed never reverses) and h = ``bandwidth``. ``drift`` is the game's
    own drift b (e.g. ``meeting().drift``); it must not draw randomness."""

    drift: AbstractDrift
    strength: Array
    bandwidth: float = eqx.field(static=True)

    def __init__(self, drift: AbstractDrift, strength: float = 0.5, bandwidth: float = 0.5):
        if not isinstance(drift, AbstractDrift) or drift.stochastic:
            raise NeuralError("Congestion needs the game's deterministic drift (an AbstractDrift that draws no randomness)")
        c = _finite_number("Congestion strength", strength)
        if not isinstance(c, jax.core.Tracer) and not 0 <= c <= 1:
            raise NeuralError(f"Congestion strength c must be in [0, 1] (the speed factor 1 − cρ stays ≥ 0), got {c}")
        if not (isinstance(bandwidth, (int, float)) and bandwidth > 0):
            raise NeuralError(f"Congestion bandwidth must be > 0, got {bandwidth!r}")
        self.drift, self.strength, self.bandwidth = drift, jnp.asarray(c), float(bandwidth)

    def crowding(self, x, population):
        """ρ_h at the query states x [n, d] among ``population`` [N, d], shape [n, 1]."""
        d2 = jnp.sum((x[:, None, :] - population[None, :, :]) ** 2, axis=-1)
        return jnp.mean(jnp.exp(-0.5 * d2 / self.bandwidth**2), axis=1, keepdims=True)

    def __call__(self, t, x, c=None):
        return -self.strength.astype(x.dtype) * self.crowding(x, x) * self.drift(t, x, None, c)

    def at(self, t, x, population, c=None):
        population = jnp.asarray(population)
        x = jnp.asarray(x, population.dtype)
        b = self.drift.at(t, x, population, c)
        return -self.strength.astype(x.dtype) * self.crowding(x, population) * b


def hidden_congestion(drift: AbstractDrift, strength: float = 0.5, bandwidth: float = 0.5) -> Congestion:
    r"""The hidden congestion term h = −c ρ_h(xᵢ) b(t, X)ᵢ (`Congestion`): the game's speed is
    scaled by 1 − c ρ_h(xᵢ). E.g. ``meeting(correction=hidden_congestion(meeting().drift, 0.5))``."""
    return Congestion(drift, strength, bandwidth)


class PrevalenceContact(AbstractCorrection):
    r"""A prevalence-dependent contact rate hidden in the SIR neural MFG (`SIRDrift`): on top of
    the susceptibles' best-response contact a*, contacts fall as prevalence rises,

        β_eff = β a*(I) · φ(I),   φ(I) = 1 − c · I / (I + h),

    so the hidden term is the S → I flux h(t, X)ᵢ = −c Iᵢ/(Iᵢ + h) · β a*(Iᵢ) Sᵢ Iᵢ · (e_I − e_S)
    (mass-conserving, zero on the simplex's faces). c = ``strength`` ∈ [0, 1] (φ ≥ 1 − c > 0
    when c < 1), h = ``half`` > 0 the prevalence at which half the reduction is reached, ``drift``
    the game's `SIRDrift` (its β and a*). `transmission_factor` reads a learned term back as φ."""

    drift: SIRDrift
    strength: Array
    half: float = eqx.field(static=True)

    def __init__(self, drift: SIRDrift, strength: float = 0.6, half: float = 0.05):
        if not isinstance(drift, SIRDrift):
            raise NeuralError(f"PrevalenceContact needs the game's SIRDrift, got {type(drift).__name__}")
        c = _finite_number("PrevalenceContact strength", strength)
        if not isinstance(c, jax.core.Tracer) and not 0 <= c <= 1:
            raise NeuralError(f"PrevalenceContact strength c must be in [0, 1] (the factor 1 − cI/(I + h) stays ≥ 0), got {c}")
        if not (isinstance(half, (int, float)) and math.isfinite(half) and half > 0):
            raise NeuralError(f"PrevalenceContact half-saturation prevalence h must be > 0, got {half!r}")
        self.drift, self.strength, self.half = drift, jnp.asarray(c), float(half)

    def factor(self, prevalence: Float[Array, "..."]) -> Float[Array, "..."]:
        """φ(I) = 1 − c I/(I + h), the hidden factor of the contact rate."""
        i = jnp.asarray(prevalence)
        return 1.0 - self.strength.astype(i.dtype) * i / (i + self.half)

    def __call__(self, t, x, c=None):
        if x.shape[-1] != 3:
            raise NeuralError(f"PrevalenceContact works on (S, I, R) shares, got states in ℝ^{x.shape[-1]}")
        flux = (self.factor(x[:, 1]) - 1.0) * self.drift.beta * self.drift.contact(x) * x[:, 0] * x[:, 1]
        return flux[:, None] * jnp.asarray([-1.0, 1.0, 0.0], x.dtype)

    def at(self, t, x, population, c=None):
        return self(t, jnp.asarray(x, jnp.asarray(population).dtype), c)


def hidden_contact(drift: SIRDrift, strength: float = 0.6, half: float = 0.05) -> PrevalenceContact:
    r"""The hidden prevalence-dependent contact factor φ(I) = 1 − c I/(I + h) (`PrevalenceContact`),
    e.g. ``g = sir(3.0, 1.0, awareness=1.0); sir(3.0, 1.0, awareness=1.0,
    correction=hidden_contact(g.drift, 0.6))``."""
    return PrevalenceContact(drift, strength, half)


@eqx.filter_jit
def _factor(drift, correction, t, x):
    flux = -correction.at(t, x, x)[:, 0]  # the S → I flux added by the correction
    base = drift.beta * drift.contact(x) * x[:, 0] * x[:, 1]
    return 1.0 + flux / base


def transmission_factor(drift: SIRDrift, correction: AbstractCorrection, states: Float[Array, "n 3"], t: float = 0.0) -> np.ndarray:
    r"""A correction read back as a factor of the SIR-MFG's transmission: at states x = (S, I, R),

        φ̂(x) = 1 + F(x) / (β a*(I) S I),   F = −f_S, the S → I flux the correction adds,

    (= `PrevalenceContact.factor` for the hidden term itself). ``states`` [n, 3] need S I > 0.
    Per-state corrections only (`FluxCorrection` without a statistic, `PrevalenceContact`)."""
    if not isinstance(drift, SIRDrift) or not isinstance(correction, AbstractCorrection):
        raise NeuralError("transmission_factor needs the SIRDrift and a correction")
    x = np.asarray(states, dtype=float).reshape(-1, 3) if np.ndim(states) >= 1 and np.shape(states)[-1] == 3 else None
    if x is None:
        raise NeuralError(f"states must be (S, I, R) shares, shape [n, 3], got {np.shape(states)}")
    if np.any(x[:, 0] * x[:, 1] <= 0):
        raise NeuralError("transmission_factor needs S > 0 and I > 0 at every state (the flux is S·I times the factor)")
    return np.asarray(_factor(drift, correction, jnp.asarray(t, x.dtype), jnp.asarray(x)))


# ---------------------------------------------------------------------------------------------
# data from a game with a hidden term


@eqx.filter_jit
def _simulate_batch(model, x0, keys, grid, integrator, covariates):
    cov_axis = None if covariates is None else 0
    return jax.vmap(lambda x, k, c: _solve(model, x, k, grid, integrator, c), in_axes=(0, 0, cov_axis))(x0, keys, covariates)


def game_data(
    truth: ParticleSDE,
    x0: Float[Array, "B N d"],
    ts,
    key: PRNGKeyArray,
    *,
    integrator: Integrator,
    t0: float | None = None,
    statistic: AbstractStatistic | None = Moments(),
    n_observed: int | None = None,
    noise: float = 0.0,
    covariates=None,
) -> PathData:
    r"""`PathData` simulated from ``truth`` (a game with its hidden term as correction), one
    independent path per initial cloud x0[b] (key fold_in(key, b)):

        clouds[b, t] = {X_{b,i}(t_t) + ε_{b,t,i}},  ε ~ N(0, ``noise``² I),   stats[b, t] = S(clouds[b, t]),

    observed at ``ts`` (after ``t0``, default ts[0]); ``n_observed`` M ≤ N: a random subset of
    M agents per time (default all); ``statistic`` S (None: clouds only). ``covariates`` [T, C] or
    [B, T, C]. The truth model, the seeds and the settings go into ``metadata``."""
    check_simulation(truth, integrator)
    if key is None:
        raise NeuralError("game_data needs a key (the paths' Brownian motions)")
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim != 3:
        raise NeuralError(f"x0 must hold one initial cloud per dataset, shape [B, N, d], got {x0.shape}")
    check_x0(truth, x0[0])
    B, N, d = x0.shape
    grid = time_grid(ts, integrator.dt0, t0)
    cov = None
    if covariates is not None:
        cov = np.asarray(covariates, dtype=float)
        cov = np.broadcast_to(cov, (B,) + cov.shape) if cov.ndim == 2 else cov
        check_covariates(truth, cov[0], len(grid.save))
    else:
        check_covariates(truth, None, len(grid.save))
    if not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise NeuralError(f"noise must be a finite number >= 0, got {noise!r}")
    M = N if n_observed is None else int(n_observed)
    if not 1 <= M <= N:
        raise NeuralError(f"n_observed must be in 1..{N}, got {n_observed!r}")
    keys = jax.vmap(lambda b: jr.fold_in(key, b))(jnp.arange(B))
    ys = _simulate_batch(truth, jnp.asarray(x0), keys, grid, integrator, None if cov is None else jnp.asarray(cov))
    k_pick, k_noise = jr.split(jr.fold_in(key, B))
    if M < N:
        pick = jnp.argsort(jr.uniform(k_pick, ys.shape[:3]), axis=-1)[..., :M]
        ys = jnp.take_along_axis(ys, pick[..., None], axis=2)
    if noise > 0:
        ys = ys + noise * jr.normal(k_noise, ys.shape, ys.dtype)
    ys = np.asarray(ys)  # [B, T, M, d]
    stats = None
    if statistic is not None:
        stats = np.asarray(jax.vmap(jax.vmap(statistic))(jnp.asarray(ys)))
    meta = {"generator": "game_data", "truth": repr(truth), "n_observed": M, "noise": float(noise), "dt0": integrator.dt0}
    return PathData(np.asarray(grid.save_times()), x0, clouds=ys, stats=stats, covariates=cov, t0=grid.t0, metadata=meta)


# ---------------------------------------------------------------------------------------------
# reading a learned term back


def _clouds(clouds, ts):
    c = jnp.asarray(clouds)
    if c.ndim == 3:
        c = c[None]
    ts = np.atleast_1d(np.asarray(ts, dtype=float))
    if c.ndim != 4 or c.shape[1] != ts.size:
        raise NeuralError(f"clouds must have shape [T, N, d] or [B, T, N, d] with T = len(ts) = {ts.size}, got {tuple(np.shape(clouds))}")
    return c, ts


@eqx.filter_jit
def _both(learned, truth, clouds, ts):
    def one(t, x):
        return learned(t, x), truth(t, x)

    return jax.vmap(jax.vmap(one), in_axes=(None, 0))(ts, clouds)


def correction_recovery(
    learned: AbstractCorrection,
    truth: AbstractCorrection | None,
    clouds: Float[Array, "B T N d"],
    ts,
) -> dict:
    r"""How well a learned correction f recovers a hidden term h, on particle clouds X(t) (e.g.
    held-out data): both are evaluated at every particle of every cloud at its time,

        R² = 1 − Σ |f(t, X)ᵢ − h(t, X)ᵢ|² / Σ |h(t, X)ᵢ − h̄|²,   RMSE = √(mean |f − h|²),

    so the comparison covers exactly the populated states. ``truth=None`` means h = 0 (a
    negative control: then R² is NaN and the RMSE is the size of f). Returns {"r2", "rmse",
    "true_sd", "learned", "true", "states", "times"} (arrays flattened over datasets, times and
    particles: [P, d]; times [P])."""
    if not isinstance(learned, AbstractCorrection) or not (truth is None or isinstance(truth, AbstractCorrection)):
        raise NeuralError("correction_recovery compares two corrections (AbstractCorrection; truth may be None)")
    c, ts = _clouds(clouds, ts)
    zero = _Zero()
    f, h = _both(learned, zero if truth is None else truth, c, jnp.asarray(ts, c.dtype))
    f, h = np.asarray(f).reshape(-1, c.shape[-1]), np.asarray(h).reshape(-1, c.shape[-1])
    sst = float(np.sum((h - h.mean(0)) ** 2))
    sse = float(np.sum((f - h) ** 2))
    return {
        "r2": 1.0 - sse / sst if sst > 0 else float("nan"),
        "rmse": math.sqrt(sse / f.size),
        "true_sd": float(h.std()),
        "learned": f,
        "true": h,
        "states": np.asarray(c).reshape(-1, c.shape[-1]),
        "times": np.broadcast_to(ts[None, :, None], c.shape[:3]).reshape(-1),
    }


class _Zero(AbstractCorrection):
    def __call__(self, t, x, c=None):
        return jnp.zeros_like(x)

    def at(self, t, x, population, c=None):
        return jnp.zeros_like(jnp.asarray(x, jnp.asarray(population).dtype))


def input_scaling(data: PathData, *, statistic: AbstractStatistic | None = Moments(), time: bool = True, features=()) -> dict:
    r"""Input normalisation for `AgentMLP`/`FluxCorrection` from the data: {"loc", "scale"} for
    the input vector z = (x, t, S, φ, c), each entry standardised, (z − mean)/sd, over the initial
    and observed clouds, the time grid, the statistics of those clouds and the per-agent
    ``features`` φ (as given to `AgentMLP`) of every agent in them (sd floored at 1e-3
    of the entry's magnitude, 1 for constant entries). Use as ``AgentMLP(d, statistic=S,
    **input_scaling(train, statistic=S), key=k)``: unscaled inputs of size ≫ 1 (e.g. arrival times
    near 15) saturate the tanh layers, which stalls training (issue 13)."""
    if not isinstance(data, PathData):
        raise NeuralError(f"data must be a PathData, got {type(data).__name__}")
    x0 = np.asarray(data.x0)
    clouds = [x0]
    if data.clouds is not None:
        w = np.asarray(data.cloud_weights) > 0
        c = np.asarray(data.clouds)
        clouds += [c[b, t][w[b, t]][None] for b in range(c.shape[0]) for t in range(c.shape[1]) if w[b, t].any()]
    states = np.concatenate([a.reshape(-1, data.dim) for a in clouds])
    locs, scales = [states.mean(0)], [states.std(0)]
    if time:
        ts = np.concatenate([[data.t0], np.asarray(data.times)])
        locs.append([ts.mean()])
        scales.append([ts.std() if ts.size > 1 else 1.0])
    if statistic is not None:
        per = [np.asarray(statistic(jnp.asarray(a.reshape(-1, data.dim)))) for a in ([x0[b] for b in range(len(x0))] + clouds[1:])]
        s = np.stack(per)
        locs.append(s.mean(0))
        scales.append(s.std(0))
    features = check_features(features, "input_scaling")
    if features:
        cov = None if data.covariates is None else np.asarray(data.covariates)
        pairs = [(data.t0, x0[b], None if cov is None else cov[b, 0]) for b in range(len(x0))]
        if data.clouds is not None:
            pairs += [(data.times[t], c[b, t][w[b, t]], None if cov is None else cov[b, t])
                      for b in range(c.shape[0]) for t in range(c.shape[1]) if w[b, t].any()]
        phi = np.concatenate([
            np.concatenate([np.asarray(f(t, jnp.asarray(x), jnp.asarray(x), None if cv is None else jnp.asarray(cv))) for f in features], 1)
            for t, x, cv in pairs
        ])
        locs.append(phi.mean(0))
        scales.append(phi.std(0))
    if data.covariates is not None:
        z = np.asarray(data.covariates).reshape(-1, data.covariates.shape[-1])
        locs.append(z.mean(0))
        scales.append(z.std(0))
    loc, scale = np.concatenate([np.ravel(v) for v in locs]), np.concatenate([np.ravel(v) for v in scales])
    scale = np.where(scale > 1e-8 * np.maximum(1.0, np.abs(loc)), scale, 1.0)  # constant entries: centred only
    return {"loc": tuple(loc.tolist()), "scale": tuple(scale.tolist())}
