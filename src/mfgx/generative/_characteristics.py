r"""Characteristics of a potential, integrated with Diffrax (science note generative_lab.md §5.3).

For each sample the state y = (x, ℓ, L, R) solves, from t₀ to t₁,

    dx/dt = v = −∇ₓΦ(x, t)/α,            dℓ/dt = ∇·v = −Δₓ Φ(x, t)/α,
    dL/dt = ½|v|²,                        dR/dt = |−∂ₜΦ(x, t) + α·½|v|² − f′(x, t, log ρ)|,
    dF/dt = f(x, t, log ρ)                (only with a running cost f),

with x(t₀) = x₀ and ℓ = L = R = 0 at t₀: ℓ is the log-determinant of the flow map's Jacobian,
L the kinetic cost and R the absolute residual of the HJB equation −∂ₜΦ + |∇ₓΦ|²/(2α) = f′
along the path. A ``running`` cost is a callable (x, t, log ρ) ↦ (f, f′): f the integrand of the
running cost F = ∫f dt along the path and f′ its (weighted) variational derivative δF/δρ, the
HJB's right-hand side (0 without one); log ρ(x(t), t) = log ρ₀(x₀) − ℓ(t) along the path, from the
per-sample ``logp0`` = log ρ₀(x₀) (zeros if not given). Δₓ Φ is exact (`Potential.gradient_and_laplacian`) or, with ``trace="hutchinson"``
and a key, the one-probe estimate εᵀ∇ₓ²Φ ε with a Rademacher probe ε fixed along each path.

Integration: `RK4` (classical 4th order) on the fixed grid t₀ + k(t₁ − t₀)/n by default; any
Diffrax solver and step-size controller can replace it. t₁ < t₀ integrates backwards (the
inverse flow); the integrals are then signed (∫_{t₀}^{t₁}).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from diffrax import AbstractERK, ButcherTableau, LocalLinearInterpolation
from jaxtyping import Array, Float, PRNGKeyArray

from ._errors import GenerativeError
from ._potential import Potential

_rk4_tableau = ButcherTableau(
    c=np.array([0.5, 0.5, 1.0]),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.zeros(4),
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
)


def _linear_interpolation(*, t0, t1, y0, y1, k):
    del k
    return LocalLinearInterpolation(t0=t0, t1=t1, y0=y0, y1=y1)


class RK4(AbstractERK):
    """The classical 4th-order Runge–Kutta method (4 stages, no error estimate: fixed steps only;
    linear dense output), as OT-Flow integrates its characteristics."""

    tableau: ClassVar[ButcherTableau] = _rk4_tableau
    interpolation_cls: ClassVar[Callable[..., LocalLinearInterpolation]] = staticmethod(_linear_interpolation)

    def order(self, terms):
        del terms
        return 4


class Characteristics(eqx.Module):
    """The end of each path (shapes [n, ...]), or the whole path at the grid times with
    ``path=True`` (shapes [n, n_steps + 1, ...]): ``x`` the position, ``logdet`` ℓ = ∫∇·v dt,
    ``kinetic`` L = ∫½|v|² dt, ``hjb`` R = ∫|−∂ₜΦ + α½|v|² − f′| dt; ``ts`` the grid [n_steps + 1];
    ``running`` F = ∫f dt with a running cost (else None)."""

    x: Float[Array, "n *k d"]
    logdet: Float[Array, "n *k"]
    kinetic: Float[Array, "n *k"]
    hjb: Float[Array, "n *k"]
    ts: Float[Array, " k1"]
    running: Float[Array, "n *k"] | None = None


def _field(t, y, args):
    potential, alpha, probe, running, lp0 = args
    x = y[0]
    if probe is None:
        g, lap = potential.gradient_and_laplacian(x, t)
    else:
        g, lap = potential.hutchinson_laplacian(x, t, probe)
    v = -g[:-1] / alpha
    kin = 0.5 * (v @ v)
    if running is None:
        return v, -lap / alpha, kin, jnp.abs(-g[-1] + alpha * kin)
    f, df = running(x, t, (0.0 if lp0 is None else lp0) - y[1])
    return v, -lap / alpha, kin, jnp.abs(-g[-1] + alpha * kin - df), f


def _batch_field(t, y, args):
    potential, alpha, probes, running, lp0 = args
    one = lambda x, ell, p, l0: _field(t, (x, ell), (potential, alpha, p, running, l0))  # noqa: E731
    axes = (0, 0, None if probes is None else 0, None if lp0 is None else 0)
    return jax.vmap(one, in_axes=axes)(y[0], y[1], probes, lp0)


def _grid_scan(potential, y0, probes, alpha, ts, solver, path, running=None, lp0=None):
    """Fixed grid by Diffrax's manual stepping: ``solver.step`` in a `lax.scan`, each step
    rematerialised in the backward pass. Same numbers as `diffrax.diffeqsolve` with
    `diffrax.StepTo`; measured (2-D, batch 1024, 4 RK4 steps) about 2x faster to compile and
    1.4x faster to differentiate."""
    term = diffrax.ODETerm(_batch_field)
    args = (potential, alpha, probes, running, lp0)
    state = solver.init(term, ts[0], ts[1], y0, args)

    @jax.checkpoint
    def step(carry, tt):
        y, st = carry
        y1, _, _, st, _ = solver.step(term, tt[0], tt[1], y, args, st, made_jump=False)
        return (y1, st), (y1 if path else None)

    (y1, _), ys = jax.lax.scan(step, (y0, state), (ts[:-1], ts[1:]))
    if not path:
        return y1
    return jax.tree.map(lambda a, b: jnp.moveaxis(jnp.concatenate([a[None], b]), 0, 1), y0, ys)


@eqx.filter_jit
def _integrate(potential, x0, probes, alpha, t0, t1, n_steps, solver, controller, adjoint, path, max_steps, running=None, logp0=None):
    """Without a step-size controller every sample takes the same steps, so one solve carries
    the whole batch (the field is vmapped): by `_grid_scan`, or by `diffrax.diffeqsolve` with
    `diffrax.StepTo` when an ``adjoint`` is given. With a controller each sample is solved on
    its own (`jax.vmap` over `diffrax.diffeqsolve`)."""
    dtype = x0.dtype
    ts = jnp.linspace(t0, t1, n_steps + 1, dtype=dtype)
    saveat = diffrax.SaveAt(ts=ts) if path else diffrax.SaveAt(t1=True)
    t0, t1 = jnp.asarray(t0, dtype), jnp.asarray(t1, dtype)
    if controller is None:
        zero = jnp.zeros(x0.shape[:1], dtype)
        y0 = (x0, zero, zero, zero) + ((zero,) if running is not None else ())
        if adjoint is None:
            ys = _grid_scan(potential, y0, probes, alpha, ts, solver, path, running, logp0)
        else:
            sol = diffrax.diffeqsolve(
                diffrax.ODETerm(_batch_field), solver, t0, t1, None, y0, args=(potential, alpha, probes, running, logp0),
                saveat=saveat, stepsize_controller=diffrax.StepTo(ts=ts), adjoint=adjoint, max_steps=n_steps,
            )
            ys = jax.tree.map(lambda a: jnp.moveaxis(a, 0, 1), sol.ys) if path else jax.tree.map(lambda a: a[0], sol.ys)
    else:
        dt0 = (t1 - t0) / n_steps
        zero = jnp.zeros((), dtype)
        adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint

        def one(x, probe, l0):
            sol = diffrax.diffeqsolve(
                diffrax.ODETerm(_field), solver, t0, t1, dt0, (x, zero, zero, zero) + ((zero,) if running is not None else ()),
                args=(potential, alpha, probe, running, l0), saveat=saveat, stepsize_controller=controller,
                adjoint=adjoint, max_steps=max_steps,
            )
            return sol.ys if path else jax.tree.map(lambda a: a[0], sol.ys)

        ys = jax.vmap(one, in_axes=(0, None if probes is None else 0, None if logp0 is None else 0))(x0, probes, logp0)
    return Characteristics(ys[0], ys[1], ys[2], ys[3], ts, ys[4] if len(ys) > 4 else None)


def _real(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
        raise GenerativeError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def check_samples(x, dim: int, name: str = "x", dtype=None) -> Array:
    """``x`` as a JAX array [n, dim] of ``dtype``; errors name a wrong shape or non-finite values
    (the finiteness check is skipped for traced values)."""
    if not isinstance(x, jax.core.Tracer):
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.number):
            raise GenerativeError(f"{name} must be a numeric array, got dtype {x.dtype}")
    if x.ndim != 2:
        raise GenerativeError(f"{name} must have shape [n, d] (samples by dimension), got shape {x.shape}")
    if x.shape[1] != dim:
        raise GenerativeError(f"{name} has dimension {x.shape[1]} but the potential has dimension {dim}")
    if x.shape[0] == 0:
        raise GenerativeError(f"{name} has no samples")
    if not isinstance(x, jax.core.Tracer) and not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.all(np.isfinite(x), axis=1))
        raise GenerativeError(f"{name} has non-finite values in {bad.size} rows (first: row {int(bad[0])})")
    return jnp.asarray(x, dtype=dtype)


def check_integration(potential, n_steps, solver, controller=None, adjoint=None, trace="exact") -> None:
    if not isinstance(potential, Potential):
        raise GenerativeError(f"potential must be a mfgx.generative.Potential, got {type(potential).__name__}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise GenerativeError(f"n_steps must be an int >= 1, got {n_steps!r}")
    if not isinstance(solver, diffrax.AbstractSolver):
        raise GenerativeError(f"solver must be a Diffrax solver, got {type(solver).__name__}")
    if controller is not None and not isinstance(controller, diffrax.AbstractStepSizeController):
        raise GenerativeError(f"stepsize_controller must be a Diffrax step-size controller, got {type(controller).__name__}")
    if isinstance(solver, RK4) and controller is not None and not isinstance(controller, diffrax.ConstantStepSize):
        raise GenerativeError("RK4 has no error estimate to adapt steps with: pair the controller with e.g. diffrax.Dopri5()")
    if adjoint is not None and not isinstance(adjoint, diffrax.AbstractAdjoint):
        raise GenerativeError(f"adjoint must be a Diffrax adjoint, got {type(adjoint).__name__}")
    if trace not in ("exact", "hutchinson"):
        raise GenerativeError(f"trace must be 'exact' or 'hutchinson', got {trace!r}")


def probes(key: PRNGKeyArray, n: int, d: int, dtype) -> Array:
    """Rademacher probes [n, d] for the Hutchinson trace."""
    return jr.rademacher(key, (n, d), dtype=dtype)


def characteristics(
    potential: Potential,
    x0: Float[Array, "n d"],
    *,
    alpha: float = 1.0,
    t0: float = 0.0,
    t1: float = 1.0,
    n_steps: int = 8,
    solver: diffrax.AbstractSolver | None = None,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    adjoint: diffrax.AbstractAdjoint | None = None,
    trace: str = "exact",
    key: PRNGKeyArray | None = None,
    path: bool = False,
    max_steps: int = 4096,
    running: Callable | None = None,
    logp0: Float[Array, " n"] | None = None,
) -> Characteristics:
    r"""Integrate dx/dt = −∇ₓΦ/α with ℓ, L, R (module docstring) for every row of ``x0`` [n, d].

    - ``solver``: a Diffrax solver (default `RK4`); with ``stepsize_controller=None`` it steps on
      the grid t₀ + k(t₁ − t₀)/``n_steps``, else the controller chooses (from dt0 = (t₁ − t₀)/n_steps,
      at most ``max_steps`` steps).
    - ``trace``: "exact" (closed form) or "hutchinson" (needs ``key``: one Rademacher probe per sample).
    - ``adjoint``: how gradients go through the solve. Default: on the fixed grid, backpropagation
      through Diffrax's manual stepping (``solver.step`` in a `lax.scan`, each step recomputed in
      the backward pass; discretise-then-optimise, exact gradients of the computed paths); with a
      controller `diffrax.RecursiveCheckpointAdjoint`. A given adjoint (e.g.
      `diffrax.BacksolveAdjoint`) makes the fixed grid go through `diffrax.diffeqsolve` too.
    - ``path``: save the whole path at the grid times instead of its end.
    - ``running``: a running cost (x, t, log ρ) ↦ (f, f′) (module docstring), with ``logp0`` [n]
      = log ρ₀(x0) for the log-density along the paths (zeros if None).
    Compiled once per shape and setting (`eqx.filter_jit`); differentiable in the potential.
    """
    solver = RK4() if solver is None else solver
    check_integration(potential, n_steps, solver, stepsize_controller, adjoint, trace)
    alpha = _real("alpha", alpha)
    if alpha <= 0:
        raise GenerativeError(f"alpha must be > 0, got {alpha}")
    t0, t1 = _real("t0", t0), _real("t1", t1)
    if t0 == t1:
        raise GenerativeError(f"t0 and t1 must differ, got {t0}")
    dtype = jnp.result_type(potential.K0)
    x0 = check_samples(x0, potential.dim, "x0", dtype)
    if trace == "hutchinson":
        if key is None:
            raise GenerativeError("trace='hutchinson' needs a key for the probes")
        eps = probes(key, x0.shape[0], potential.dim, dtype)
    else:
        eps = None
    if running is not None and not callable(running):
        raise GenerativeError(f"running must be a callable (x, t, log_rho) -> (f, df), got {type(running).__name__}")
    if logp0 is not None:
        logp0 = jnp.asarray(logp0, dtype)
        if logp0.shape != x0.shape[:1]:
            raise GenerativeError(f"logp0 must have shape ({x0.shape[0]},) (one log-density per row of x0), got {logp0.shape}")
    steps = int(n_steps) if stepsize_controller is None else int(max_steps)
    return _integrate(
        potential, x0, eps, alpha, t0, t1, int(n_steps), solver, stepsize_controller, adjoint, bool(path), steps,
        running=running, logp0=logp0,
    )
