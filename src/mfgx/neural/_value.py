r"""An anticipatory MFG drift: agents follow the optimal control of a value function solved
backwards on a 1-D grid, not the myopic gradient of their current cost (issue 13, item 3).

For a simulation started at t₀ from the particle cloud X(t₀), the initial density m₀ is the
Gaussian kernel estimate of the cloud on the grid, and the MFG system (ν = σ²/2, τ = t − t₀)

    −∂_τ u − ν ∂ₓₓu + ½ |∂ₓu|² = f(τ, x, m_τ) + c_θ(τ, x, m_τ),   u(T, x) = g(x, m_T),
     ∂_τ m − ν ∂ₓₓm − ∂ₓ(m ∂ₓu) = 0,                              m(0) = m₀,

is solved by K damped Picard iterations m ← m + (1 − λ)(FP(HJB(m)) − m) of the monotone upwind
scheme of `mfgx.continuous` (unrolled, so reverse-mode gradients flow to c_θ). Each particle then
moves with the equilibrium feedback α(τ, Xᵢ) = −∂ₓu (the scheme's net upwind velocity, linearly
interpolated between cell centres): dXᵢ = [α(τ, Xᵢ) + f_φ] dt + σ dWᵢ.

A running cost c_θ (``correction`` of `ValueDrift`: a `CostMLP` to learn, or a known hidden cost
for data such as ``MeanTracking``) changes the drift through the value function, i.e. strategically:
agents anticipate its future values. `cost_recovery` compares a learned cost with the truth up to
what the drift identifies (a function of time only).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from ..continuous import AbstractCost, Grid, GridMFG, Zero
from ..continuous._scheme import fp, hjb, velocity
from ._errors import NeuralError
from ._model import AbstractCorrection, AbstractDrift, ConstantDiffusion, ParticleSDE, zero_output


def _density(grid: Grid, x: Float[Array, "N 1"], bandwidth: float) -> Float[Array, " G"]:
    """The Gaussian kernel density estimate of the cloud on the cell centres, mass Σ m h = 1."""
    c = grid.axes[0]
    w = jnp.exp(-0.5 * ((c[:, None] - x[None, :, 0]) / bandwidth) ** 2).sum(axis=1)
    return w / (jnp.sum(w) * grid.h[0])


class ValueDrift(AbstractDrift):
    r"""The anticipatory (HJB) drift of the module docstring, d = 1.

    - ``grid``: a 1-D `mfgx.continuous.Grid` (reflecting walls) covering the populated states.
    - ``horizon``: T, the game's length from the simulation's start t₀.
    - ``sigma``: σ > 0, the agents' noise in the HJB–FP system (use the same σ for the particles;
      `value_game` does).
    - ``running``: the known running cost f (an `mfgx.continuous.AbstractCost`, default 0);
      ``terminal``: g; ``correction``: c_θ, a learned (`CostMLP`) or hidden cost added to f.
    - ``n_t``: HJB/FP time steps (explicit scheme: Δt · max out-rate ≤ 1 is needed, see
      `ValueDrift.solve`'s ``cfl``); ``iterations`` K and ``damping`` λ of the Picard loop;
      ``bandwidth``: of the kernel estimate of m₀ (default 2 cell widths).

    Call `bind` (done by `simulate` and `fit` at the start of each path) to solve the game for
    an initial cloud; the unbound drift cannot be evaluated.
    """

    grid: Grid
    horizon: float = eqx.field(static=True)
    sigma: float = eqx.field(static=True)
    running: AbstractCost
    terminal: AbstractCost
    correction: AbstractCost | None
    n_t: int = eqx.field(static=True)
    iterations: int = eqx.field(static=True)
    damping: float = eqx.field(static=True)
    bandwidth: float = eqx.field(static=True)

    def __init__(self, grid: Grid, horizon: float, sigma: float, terminal: AbstractCost, *, running: AbstractCost | None = None,
                 correction: AbstractCost | None = None, n_t: int, iterations: int = 20, damping: float = 0.5,
                 bandwidth: float | None = None):
        if not isinstance(grid, Grid) or grid.dim != 1:
            raise NeuralError("ValueDrift needs a 1-D mfgx.continuous.Grid")
        if not (isinstance(horizon, (int, float)) and 0 < horizon < math.inf):
            raise NeuralError(f"ValueDrift horizon must be a positive finite number, got {horizon!r}")
        if not (isinstance(sigma, (int, float)) and 0 < sigma < math.inf):
            raise NeuralError(f"ValueDrift sigma must be a positive finite number, got {sigma!r}")
        running = Zero() if running is None else running
        for name, c in (("terminal", terminal), ("running", running), ("correction", correction)):
            if c is not None and not isinstance(c, AbstractCost):
                raise NeuralError(f"ValueDrift {name} must be an mfgx.continuous.AbstractCost (e.g. CostMLP), got {type(c).__name__}")
        for name, v in (("n_t", n_t), ("iterations", iterations)):
            if isinstance(v, bool) or not (isinstance(v, (int, np.integer)) and v >= 1):
                raise NeuralError(f"ValueDrift {name} must be an int >= 1, got {v!r}")
        if not (isinstance(damping, (int, float)) and 0 <= damping < 1):
            raise NeuralError(f"ValueDrift damping must be in [0, 1), got {damping!r}")
        bw = 2.0 * grid.h[0] if bandwidth is None else bandwidth
        if not (isinstance(bw, (int, float)) and 0 < bw < math.inf):
            raise NeuralError(f"ValueDrift bandwidth must be > 0, got {bandwidth!r}")
        self.grid, self.horizon, self.sigma = grid, float(horizon), float(sigma)
        self.running, self.terminal, self.correction = running, terminal, correction
        self.n_t, self.iterations, self.damping, self.bandwidth = int(n_t), int(iterations), float(damping), float(bw)

    def problem(self, m0: Float[Array, " G"]) -> GridMFG:
        """The `mfgx.continuous.GridMFG` with running cost f + c_θ from the density m₀."""
        running = self.running if self.correction is None else self.running + self.correction
        return GridMFG(self.grid, self.horizon, self.sigma, running, self.terminal, m0, n_t=self.n_t)

    def solve(self, x0: Float[Array, "N 1"]) -> dict:
        r"""The game from the cloud x0: {"value" u[n_t+1, G], "density" m[n_t+1, G] (the last
        iterate), "velocity" α[n_t, G] (on [τₙ, τₙ₊₁)), "residual" sup_n ‖FP(HJB(m)) − m‖_{L¹}
        of the last iteration, "cfl" Δt · max out-rate (≤ 1 for a monotone scheme)}."""
        x0 = jnp.asarray(x0)
        if x0.ndim != 2 or x0.shape[1] != 1:
            raise NeuralError(f"ValueDrift works on 1-D clouds [N, 1], got shape {x0.shape}")
        problem = self.problem(_density(self.grid, x0, self.bandwidth).astype(x0.dtype))
        w = 1.0 - self.damping

        def body(flow, _):
            new, _ = fp(problem, hjb(problem, flow))
            return flow + w * (new - flow), None

        flow0 = jnp.broadcast_to(problem.m0, (self.n_t + 1, *self.grid.shape))
        flow, _ = lax.scan(body, flow0, None, length=self.iterations)
        us = hjb(problem, flow)
        new, cfl = fp(problem, us)
        vel = jax.vmap(lambda u: velocity(problem, u)[..., 0])(us[1:])
        res = jnp.max(jnp.sum(jnp.abs(new - flow), axis=1)) * self.grid.h[0]
        return {"value": us, "density": flow, "velocity": vel, "residual": res, "cfl": cfl}

    def bind(self, t0, x0) -> BoundValueDrift:
        """The drift of the equilibrium solved from the cloud x0 at time t0 (a `BoundValueDrift`)."""
        return BoundValueDrift(self.grid, t0, self.horizon / self.n_t, self.solve(x0)["velocity"])

    def __call__(self, t, x, key=None, c=None):
        raise NeuralError("ValueDrift must be bound to an initial cloud first (simulate and fit do so): use drift.bind(t0, x0)")


class BoundValueDrift(AbstractDrift):
    r"""The equilibrium feedback α(t, x) of a solved `ValueDrift`: the velocity table α[n, G] of
    step n = ⌊(t − t₀)/Δt⌋ (clipped to the horizon) interpolated linearly in x between cell
    centres (constant beyond the outer centres)."""

    grid: Grid
    t0: Array
    dt: float = eqx.field(static=True)
    table: Float[Array, "n G"]

    def field(self, t, x: Float[Array, "n 1"]) -> Float[Array, "n 1"]:
        n = jnp.clip(jnp.floor((t - self.t0) / self.dt + 1e-6).astype(jnp.int32), 0, self.table.shape[0] - 1)
        return jnp.interp(x[:, 0], self.grid.axes[0].astype(x.dtype), self.table[n].astype(x.dtype))[:, None]

    def __call__(self, t, x, key=None, c=None):
        return self.field(t, x)

    def at(self, t, x, population, c=None):
        return self.field(t, jnp.asarray(x, jnp.asarray(population).dtype))


def value_game(
    grid: Grid,
    horizon: float,
    sigma: float,
    terminal: AbstractCost,
    *,
    running: AbstractCost | None = None,
    cost: AbstractCost | None = None,
    correction: AbstractCorrection | None = None,
    n_t: int,
    iterations: int = 20,
    damping: float = 0.5,
    bandwidth: float | None = None,
) -> ParticleSDE:
    r"""A 1-D neural MFG whose agents anticipate: dXᵢ = [α(t, Xᵢ) + f_φ] dt + σ dWᵢ with α the
    equilibrium feedback of `ValueDrift` (running cost ``running`` + ``cost``, terminal
    ``terminal``), ``cost`` a learned `CostMLP` (train it with ``trainable=lambda m:
    m.drift.correction``) or, to generate data, a hidden cost (e.g. ``MeanTracking(k)``:
    attraction to the population mean); ``correction`` an optional drift correction f_φ."""
    drift = ValueDrift(grid, horizon, sigma, terminal, running=running, correction=cost, n_t=n_t, iterations=iterations,
                       damping=damping, bandwidth=bandwidth)
    return ParticleSDE(drift, correction, ConstantDiffusion(sigma))


class CostMLP(AbstractCost):
    r"""A learned running cost on the grid, c_θ(τ, x, m) = κ · MLP((z − loc)/scale), z = (x, m̄,
    v̄, τ) with m̄ = ∫ x m, v̄ = ∫ (x − m̄)² m (``variance``) and τ (``time``) optional: a strategic
    interaction learned through the HJB (`ValueDrift`'s ``correction``). ``loc``/``scale``
    normalise z, e.g. ``**input_scaling(train, statistic=Mean(), time=False)`` for (x, m̄)
    (``Moments()`` with ``variance=True``; the order there is (x, t, S), so use it with
    ``time=False`` only). ``zero_init``: start at c_θ ≡ 0, the game without hidden cost (`zero_output`)."""

    mlp: eqx.nn.MLP
    variance: bool = eqx.field(static=True)
    time: bool = eqx.field(static=True)
    loc: tuple[float, ...] = eqx.field(static=True)
    scale: tuple[float, ...] = eqx.field(static=True)
    out_scale: float = eqx.field(static=True)

    def __init__(self, *, variance: bool = False, time: bool = False, width: int = 16, depth: int = 2,
                 activation: Callable = jax.nn.tanh, loc=None, scale=None, out_scale: float = 1.0, zero_init: bool = False,
                 key):
        n_in = 2 + int(bool(variance)) + int(bool(time))
        loc = np.zeros(n_in) if loc is None else np.broadcast_to(np.asarray(loc, float), (n_in,))
        scale = np.ones(n_in) if scale is None else np.broadcast_to(np.asarray(scale, float), (n_in,))
        if not (np.all(np.isfinite(loc)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise NeuralError(f"CostMLP: loc must be finite and scale positive, got loc={loc}, scale={scale}")
        self.mlp = eqx.nn.MLP(n_in, "scalar", width, depth, activation=activation, key=key)
        if zero_init:
            self.mlp = zero_output(self.mlp)
        self.variance, self.time = bool(variance), bool(time)
        self.loc, self.scale, self.out_scale = tuple(loc.tolist()), tuple(scale.tolist()), float(out_scale)

    def features(self, grid: Grid, t, m) -> Float[Array, " k"]:
        """The population inputs (m̄[, v̄][, τ]) of the density m on the grid."""
        parts = [grid.mean(m)]
        if self.variance:
            parts.append(grid.variance(m))
        if self.time:
            parts.append(jnp.reshape(jnp.asarray(t, m.dtype), (1,)))
        return jnp.concatenate(parts)

    def local(self, x: Float[Array, " n"], s: Float[Array, " k"]) -> Float[Array, " n"]:
        """c_θ at states x [n] given the population inputs s."""
        loc, scale = jnp.asarray(self.loc, x.dtype), jnp.asarray(self.scale, x.dtype)
        return self.out_scale * jax.vmap(lambda xi: self.mlp((jnp.concatenate([xi[None], s]) - loc) / scale))(x)

    def __call__(self, grid, t, m):
        if grid.dim != 1:
            raise NeuralError("CostMLP works on 1-D grids")
        return self.local(grid.axes[0].astype(m.dtype), self.features(grid, t, m).astype(m.dtype))


@eqx.filter_jit
def _costs_at(learned, truth, grid, clouds, taus, bandwidth):
    def one(tau, x):
        m = _density(grid, x, bandwidth).astype(x.dtype)
        c = grid.axes[0].astype(x.dtype)
        a = jnp.interp(x[:, 0], c, learned(grid, tau, m))
        b = jnp.interp(x[:, 0], c, truth(grid, tau, m))
        return a - a.mean(), b - b.mean()

    return jax.vmap(jax.vmap(one), in_axes=(None, 0))(taus, clouds)


def cost_recovery(learned: AbstractCost, truth: AbstractCost, grid: Grid, clouds: Float[Array, "B T N 1"], ts, *,
                  t0: float = 0.0, bandwidth: float | None = None) -> dict:
    r"""How well a learned running cost c_θ recovers a hidden cost c on particle clouds X(t):
    the drift identifies a cost only up to a function of time, so both are centred over each
    cloud's particles (m the cloud's kernel density on ``grid``, τ = t − ``t0``),

        ĉ(τ, Xᵢ) = c(τ, Xᵢ, m) − (1/N) Σⱼ c(τ, Xⱼ, m),   R² = 1 − Σ (ĉ_θ − ĉ)² / Σ ĉ²,

    over every particle of every cloud. Returns {"r2", "rmse", "true_sd", "learned", "true",
    "states"} (flattened)."""
    if not (isinstance(learned, AbstractCost) and isinstance(truth, AbstractCost) and isinstance(grid, Grid)):
        raise NeuralError("cost_recovery compares two mfgx.continuous costs on a Grid")
    c = jnp.asarray(clouds)
    c = c[None] if c.ndim == 3 else c
    ts = np.atleast_1d(np.asarray(ts, dtype=float))
    if c.ndim != 4 or c.shape[1] != ts.size or c.shape[-1] != 1:
        raise NeuralError(f"clouds must have shape [B, T, N, 1] with T = len(ts) = {ts.size}, got {tuple(np.shape(clouds))}")
    bw = 2.0 * grid.h[0] if bandwidth is None else float(bandwidth)
    a, b = _costs_at(learned, truth, grid, c, jnp.asarray(ts - t0, c.dtype), bw)
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    sst, sse = float(np.sum(b**2)), float(np.sum((a - b) ** 2))
    return {"r2": 1 - sse / sst if sst > 0 else float("nan"), "rmse": math.sqrt(sse / a.size), "true_sd": math.sqrt(sst / a.size),
            "learned": a, "true": b, "states": np.asarray(c).reshape(-1)}
