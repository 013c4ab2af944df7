r"""`simulate`: integrate a `ParticleSDE` with Diffrax on a fixed grid t₀ + k·Δt, saving the
particle cloud at the observation times.

- Steps: `diffrax.StepTo` on the grid (observation times must lie on it), so saved states are
  step states, not interpolations.
- Noise: fresh Gaussian increments per grid step keyed by the step index (``brownian="grid"``,
  the default for the forward-in-time adjoints: cheap, fixed grids only), or a
  `diffrax.VirtualBrownianTree` (``brownian="virtual"``: one Brownian path queried at any
  resolution; the default with, and required by, `diffrax.BacksolveAdjoint`). Either way the
  path is a deterministic function of the key, so checkpointed backprop recomputes the same noise.
- Gradients: any Diffrax adjoint. `diffrax.RecursiveCheckpointAdjoint` (default) stores
  O(checkpoints) states and recomputes the rest (discretise-then-optimise: exact gradients of
  the simulated paths); `diffrax.DirectAdjoint` unrolls; `diffrax.BacksolveAdjoint` solves the
  adjoint equation backwards (continuous adjoint: O(1) memory, gradients exact only as Δt → 0;
  for SDEs Stratonovich solvers such as `diffrax.Heun` only).
- Covariates c_t (given at the observation times) are held constant from each observation time
  to the next (before the first one: its value).
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._errors import NeuralError
from ._model import ParticleSDE, PopulationMLP

_ON_GRID = 1e-7


class Integrator(eqx.Module):
    r"""How to integrate: step ``dt0``, a Diffrax ``solver`` (default `diffrax.Euler`, i.e.
    Euler–Maruyama; `diffrax.Heun` and, for additive noise, `diffrax.SRA1`/`diffrax.ShARK` are
    higher order), the ``adjoint`` used for gradients (default
    `diffrax.RecursiveCheckpointAdjoint()`, O(log n) stored states; ``checkpoints=n`` stores every
    step and was 2–4× faster in benchmarks/neural.py, at memory O(n); `diffrax.DirectAdjoint`;
    `diffrax.BacksolveAdjoint`, O(1) memory, slowest), and the
    ``brownian`` path ("grid" or "virtual"; default: "virtual" with `BacksolveAdjoint`, else
    "grid", see `mfgx.neural.simulate`)."""

    dt0: float = eqx.field(static=True)
    solver: diffrax.AbstractSolver = diffrax.Euler()
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint()
    brownian: str | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if isinstance(self.dt0, bool) or not (isinstance(self.dt0, (int, float)) and math.isfinite(self.dt0) and self.dt0 > 0):
            raise NeuralError(f"Integrator: dt0 must be a positive number, got {self.dt0!r}")
        if self.brownian not in (None, "virtual", "grid"):
            raise NeuralError(f"Integrator: brownian must be 'grid', 'virtual' or None, got {self.brownian!r}")
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise NeuralError(f"Integrator: solver must be a diffrax solver, got {type(self.solver).__name__}")
        if not isinstance(self.adjoint, diffrax.AbstractAdjoint):
            raise NeuralError(f"Integrator: adjoint must be a diffrax adjoint, got {type(self.adjoint).__name__}")
        if isinstance(self.adjoint, diffrax.BacksolveAdjoint) and self.brownian == "grid":
            raise NeuralError("BacksolveAdjoint re-evaluates the Brownian path backwards in time: use brownian='virtual'")

    @property
    def path(self) -> str:
        """The Brownian path actually used ("grid" or "virtual")."""
        if self.brownian is not None:
            return self.brownian
        return "virtual" if isinstance(self.adjoint, diffrax.BacksolveAdjoint) else "grid"


class TimeGrid(eqx.Module):
    """The grid t₀ + k·Δt, k = 0..n, and the indices of the saved (observation) times. All static."""

    t0: float = eqx.field(static=True)
    dt0: float = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    save: tuple[int, ...] = eqx.field(static=True)

    def times(self, dtype=float) -> Array:
        return self.t0 + self.dt0 * jnp.arange(self.n_steps + 1, dtype=dtype)

    def save_times(self, dtype=float) -> Array:
        return self.times(dtype)[jnp.asarray(self.save)]

    def covariate_index(self) -> np.ndarray:
        """For each grid step k, the index of the last observation time at or before it (0 before the first)."""
        return np.clip(np.searchsorted(np.asarray(self.save), np.arange(self.n_steps + 1), side="right") - 1, 0, None)


def time_grid(ts, dt0: float, t0: float | None = None) -> TimeGrid:
    """The `TimeGrid` from t0 (default ts[0]) in steps of dt0 through the observation times ``ts``."""
    if isinstance(ts, jax.core.Tracer) or isinstance(t0, jax.core.Tracer):
        raise NeuralError("observation times must be concrete (numpy or Python numbers), not traced values")
    ts = np.atleast_1d(np.asarray(ts, dtype=float))
    if ts.ndim != 1 or ts.size == 0 or not np.all(np.isfinite(ts)):
        raise NeuralError(f"observation times must be a non-empty finite 1-D array, got {ts!r}")
    if np.any(np.diff(ts) <= 0):
        raise NeuralError(f"observation times must be strictly increasing, got {ts}")
    t0 = float(ts[0]) if t0 is None else float(t0)
    if ts[0] < t0:
        raise NeuralError(f"the first observation time {ts[0]} is before the start time t0 = {t0}")
    k = (ts - t0) / dt0
    kr = np.round(k)
    off = np.abs(k - kr) > _ON_GRID * np.maximum(1.0, np.abs(k))
    if np.any(off):
        i = int(np.flatnonzero(off)[0])
        raise NeuralError(
            f"observation time ts[{i}] = {ts[i]} is not on the grid t0 + k·dt0 (t0 = {t0}, dt0 = {dt0}); "
            "choose dt0 dividing the gaps between observation times"
        )
    return TimeGrid(t0, float(dt0), int(kr[-1]), tuple(int(v) for v in kr))


class _GridBrownian(diffrax.AbstractBrownianPath):
    r"""Independent N(0, Δt) increments (and space-time Lévy areas N(0, Δt/12)) per grid step,
    keyed by the step index. Only valid for intervals that are grid steps."""

    t0: float
    t1: float
    dt0: float = eqx.field(static=True)
    shape: PyTree[jax.ShapeDtypeStruct] = eqx.field(static=True)
    levy_area: type = eqx.field(static=True)
    key: PRNGKeyArray

    def evaluate(self, t0, t1=None, left=True, use_levy=False):
        del left
        if t1 is None:
            raise NeuralError("the grid Brownian path has increments only; use brownian='virtual'")
        lo = jnp.minimum(t0, t1)
        h = t1 - t0
        k = jnp.round((lo - self.t0) / self.dt0).astype(jnp.int32)
        key = jr.fold_in(self.key, k)
        leaves, treedef = jtu.tree_flatten(self.shape)
        keys = jr.split(key, len(leaves))
        ws, hs = [], []
        for kk, s in zip(keys, leaves):
            kw, kh = jr.split(kk)
            std = jnp.sqrt(jnp.abs(h)).astype(s.dtype)
            ws.append(jnp.sign(h).astype(s.dtype) * std * jr.normal(kw, s.shape, s.dtype))
            hs.append(std / math.sqrt(12.0) * jr.normal(kh, s.shape, s.dtype))
        w = jtu.tree_unflatten(treedef, ws)
        if not use_levy:
            return w
        if self.levy_area is diffrax.SpaceTimeLevyArea:
            return diffrax.SpaceTimeLevyArea(dt=h, W=w, H=jtu.tree_unflatten(treedef, hs))
        return diffrax.BrownianIncrement(dt=h, W=w)


class _Drift(eqx.Module):
    """The vector field (t, y) ↦ b + f_φ as a module, so the model's parameters are leaves of the
    Diffrax term (needed by `BacksolveAdjoint`, which differentiates the terms, not closures)."""

    model: ParticleSDE
    t0: float = eqx.field(static=True)
    dt0: float = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    key: PRNGKeyArray | None
    covariates: Array | None  # [n_steps + 1, C] per grid step

    def _step(self, t):
        k = jnp.floor((t - self.t0) / self.dt0 + 1e-6).astype(jnp.int32)
        return jnp.clip(k, 0, self.n_steps)

    def __call__(self, t, y, args):
        step_key = None if self.key is None else jr.fold_in(self.key, self._step(t))
        c = None if self.covariates is None else self.covariates[self._step(t)]
        return self.model.drift_field(t, y, step_key, c)


class _ParticleNoise(diffrax.AbstractTerm):
    r"""σ(t, X) · (a dWᵢ + ρ dW⁰): diagonal noise on the [N, d] state, or [d, m] matrices
    acting on m-dimensional Brownian motions."""

    model: ParticleSDE
    control: diffrax.AbstractBrownianPath

    def vf(self, t, y, args):
        s = self.model.diffusion(t, y)
        if self.model.diffusion.noise_dim is None:
            return jnp.broadcast_to(s, y.shape)
        return s

    def contr(self, t0, t1, **kwargs):
        return self.control.evaluate(t0, t1, **kwargs)

    def prod(self, vf, control):
        a, rho = self.model.noise_weights()
        if rho == 0.0:
            dw = control
        elif a == 0.0:
            dw = control[None]
        else:
            dw = a * control[0] + rho * control[1][None]
        if self.model.diffusion.noise_dim is None:
            return vf * dw
        return jnp.einsum("ndm,nm->nd", vf, jnp.broadcast_to(dw, vf.shape[:1] + vf.shape[2:]))


def _brownian_shape(model: ParticleSDE, n: int, d: int, dtype):
    a, rho = model.noise_weights()
    m = model.diffusion.noise_dim
    m = d if m is None else m
    idio, common = jax.ShapeDtypeStruct((n, m), dtype), jax.ShapeDtypeStruct((m,), dtype)
    if rho == 0.0:
        return idio
    if a == 0.0:
        return common
    return (idio, common)


def _levy(solver):
    need = getattr(solver, "minimal_levy_area", diffrax.BrownianIncrement)
    if not isinstance(need, type):
        return diffrax.BrownianIncrement
    if issubclass(need, diffrax.AbstractSpaceTimeTimeLevyArea):
        raise NeuralError(f"{type(solver).__name__} needs space-time-time Lévy area, which is not supported here")
    if issubclass(need, diffrax.AbstractSpaceTimeLevyArea):
        return diffrax.SpaceTimeLevyArea
    return diffrax.BrownianIncrement


def check_simulation(model: ParticleSDE, integrator: Integrator) -> None:
    """Errors for model/integrator combinations that cannot work (raised before tracing)."""
    if not isinstance(model, ParticleSDE):
        raise NeuralError(f"expected a ParticleSDE, got {type(model).__name__}")
    if not isinstance(integrator, Integrator):
        raise NeuralError(f"expected an Integrator, got {type(integrator).__name__}")
    solver = integrator.solver
    name = type(solver).__name__
    srk = isinstance(solver, diffrax.AbstractSRK)
    if srk and model.diffusion is None:
        raise NeuralError(f"{name} is an SDE solver; this model has no diffusion (use Euler, Heun, …)")
    tableau = getattr(solver, "tableau", None)
    if srk and not type(model.diffusion).additive and tableau is not None and tableau.is_additive_noise():
        raise NeuralError(f"{name} is for additive noise, but {type(model.diffusion).__name__} depends on the state")
    if isinstance(solver, (diffrax.AbstractImplicitSolver,)):
        raise NeuralError(f"{name} is implicit; use an explicit solver (Euler, Heun, SRA1, ShARK)")
    if isinstance(integrator.adjoint, diffrax.BacksolveAdjoint):
        if model.drift is not None and model.drift.stochastic:
            raise NeuralError("BacksolveAdjoint cannot be used with a drift that draws randomness (its backward solve differs)")
        if model.diffusion is not None and isinstance(solver, diffrax.AbstractItoSolver):
            raise NeuralError(
                f"BacksolveAdjoint solves the Stratonovich adjoint SDE, but {name} converges to the Itô solution: "
                "use diffrax.Heun (or SRA1/ShARK for additive noise), or RecursiveCheckpointAdjoint"
            )


def _solve(model: ParticleSDE, x0, key, grid: TimeGrid, integrator: Integrator, covariates=None) -> Float[Array, "T N d"]:
    """The pure, jittable core of `simulate`."""
    if model.initial is not None:
        x0 = model.initial(x0)
    if model.drift is not None:
        bound = model.drift.bind(jnp.asarray(grid.t0, x0.dtype), x0)
        if bound is not model.drift:
            model = eqx.tree_at(lambda m: m.drift, model, bound)
    dtype = x0.dtype
    n, d = x0.shape
    if grid.n_steps == 0:
        ys = jnp.broadcast_to(x0, (len(grid.save), n, d))
        return ys if model.clip is None else jnp.clip(ys, *model.clip)
    times = grid.times(dtype)
    t0, t1 = grid.t0, grid.t0 + grid.dt0 * grid.n_steps
    bm_key, drift_key = jr.split(key) if key is not None else (None, None)
    if not (model.drift is not None and model.drift.stochastic):
        drift_key = None
    table = None if covariates is None else jnp.asarray(covariates, dtype)[jnp.asarray(grid.covariate_index())]
    terms = diffrax.ODETerm(_Drift(model, grid.t0, grid.dt0, grid.n_steps, drift_key, table))
    if model.diffusion is not None:
        shape = _brownian_shape(model, n, d, dtype)
        levy = _levy(integrator.solver)
        if integrator.path == "virtual":
            bm = diffrax.VirtualBrownianTree(t0, t1, tol=grid.dt0 / 2, shape=shape, key=bm_key, levy_area=levy)
        else:
            bm = _GridBrownian(t0, t1, grid.dt0, shape, levy, bm_key)
        terms = diffrax.MultiTerm(terms, _ParticleNoise(model, bm))
    if isinstance(integrator.adjoint, diffrax.BacksolveAdjoint):
        # The backward solve runs between consecutive saved times, which StepTo (pinned to
        # [t0, t1]) cannot do: constant steps of dt0 hit the same grid up to round-off.
        dt, controller, max_steps = grid.dt0, diffrax.ConstantStepSize(), grid.n_steps + 2
    else:
        dt, controller, max_steps = None, diffrax.StepTo(ts=times), grid.n_steps
    sol = diffrax.diffeqsolve(
        terms,
        integrator.solver,
        t0,
        t1,
        dt,
        x0,
        saveat=diffrax.SaveAt(ts=times[jnp.asarray(grid.save)]),
        stepsize_controller=controller,
        adjoint=integrator.adjoint,
        max_steps=max_steps,
        throw=False,
    )
    ys = sol.ys
    return ys if model.clip is None else jnp.clip(ys, *model.clip)


def check_covariates(model: ParticleSDE, covariates, n_times: int):
    """The covariates as an array [T, C] (or None), checked against what the model's networks expect."""
    wants = {part.n_covariates for part in (model.correction, model.drift) if part is not None} - {0}
    if len(wants) > 1:
        raise NeuralError(f"the drift and the correction read different numbers of covariates {sorted(wants)}")
    want = wants.pop() if wants else 0
    if covariates is None:
        if want:
            raise NeuralError(f"the model's network takes {want} covariates: pass covariates [T, {want}]")
        return None
    c = covariates if isinstance(covariates, jax.core.Tracer) else jnp.asarray(np.asarray(covariates, dtype=float))
    if c.ndim != 2 or c.shape[0] != n_times:
        raise NeuralError(f"covariates must have shape [T, C] with T = {n_times} observation times, got {tuple(c.shape)}")
    if want and c.shape[1] != want:
        raise NeuralError(f"the model's network takes {want} covariates, got C = {c.shape[1]}")
    if not isinstance(c, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(c))):
        raise NeuralError("covariates contain a non-finite value")
    return c


def check_x0(model: ParticleSDE, x0):
    """x0 as a float array [N, d], checked (finite; matching a `PopulationMLP`)."""
    x0 = jnp.asarray(x0)
    if x0.ndim != 2:
        raise NeuralError(f"x0 must be a particle cloud of shape [N, d], got shape {x0.shape}")
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(float)
    if not isinstance(x0, jax.core.Tracer):
        bad = np.argwhere(~np.isfinite(np.asarray(x0)))
        if bad.size:
            raise NeuralError(f"x0 has a non-finite entry at particle {bad[0, 0]}, coordinate {bad[0, 1]}")
    if isinstance(model.correction, PopulationMLP) and (model.correction.n, model.correction.d) != tuple(x0.shape):
        raise NeuralError(
            f"PopulationMLP was built for {model.correction.n} agents in ℝ^{model.correction.d}, x0 has shape {tuple(x0.shape)}"
        )
    return x0


def simulate(
    model: ParticleSDE,
    x0: Float[Array, "N d"],
    ts,
    key: PRNGKeyArray | None = None,
    *,
    integrator: Integrator,
    t0: float | None = None,
    covariates: Float[Array, "T C"] | None = None,
) -> Float[Array, "T N d"]:
    r"""The particle clouds X(t) at the observation times ``ts``, shape [T, N, d].

    Starts from ``x0`` [N, d] (mapped by ``model.initial`` if set) at ``t0`` (default ts[0]) and
    steps on the grid t0 + k·dt0, which must contain every observation time. ``key`` drives the
    Brownian motions (and a drift's own randomness); it is required when the model is
    stochastic. ``covariates`` [T, C]: c at the observation times, held until the next one.
    ``ts`` must be concrete (it fixes the number of steps); ``x0``, ``key``, ``covariates`` and
    the model may be traced: `simulate` jits, vmaps (over keys, initial clouds, models) and
    differentiates through ``integrator.adjoint``.
    """
    check_simulation(model, integrator)
    x0 = check_x0(model, x0)
    if model.stochastic and key is None:
        raise NeuralError("this model is stochastic (diffusion or random drift): pass a key")
    grid = time_grid(ts, integrator.dt0, t0)
    c = check_covariates(model, covariates, len(grid.save))
    return _solve_jit(model, x0, key, grid, integrator, c)


_solve_jit = eqx.filter_jit(_solve)
