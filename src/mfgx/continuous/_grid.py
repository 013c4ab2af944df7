r"""Grids, costs and the HJB–Fokker–Planck problem on a box in 1-D or 2-D.

The problem (ν = σ²/2, quadratic control cost, velocity α = −∇u):

    −∂_t u − ν Δu + ½ |∇u|² = f(t, x, m_t),      u(T, x) = g(x, m_T)
     ∂_t m − ν Δm − ∇·(m ∇u) = 0,                 m(0, x) = m₀(x)

on a box with reflecting (no-flux) or periodic boundaries. Densities live on cell centres and
integrate to one: Σᵢ mᵢ hᵈ = 1.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._errors import ProblemError, is_traced

MASS_TOL = 1e-6
CFL_TARGET = 0.8


class Grid(eqx.Module):
    r"""A uniform cell-centred grid on the box ∏ₖ [lowerₖ, upperₖ] (d = 1 or 2).

    Cell k-widths hₖ = (upperₖ − lowerₖ)/nₖ, centres xᵢ = lower + (i + ½)h, cell volume ∏ₖ hₖ.
    """

    lower: tuple[float, ...] = eqx.field(static=True)
    upper: tuple[float, ...] = eqx.field(static=True)
    shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, lower, upper, shape):
        lower = tuple(float(v) for v in np.atleast_1d(lower))
        upper = tuple(float(v) for v in np.atleast_1d(upper))
        shape = tuple(np.atleast_1d(shape).tolist())
        if not (len(lower) == len(upper) == len(shape)):
            raise ProblemError(f"Grid: lower {lower}, upper {upper} and shape {shape} must have the same length")
        if len(shape) not in (1, 2):
            raise ProblemError(f"Grid: only 1-D and 2-D boxes are supported, got dimension {len(shape)}")
        if not all(isinstance(n, int) and n >= 3 for n in shape):
            raise ProblemError(f"Grid: shape must hold ints ≥ 3 (cells per axis), got {shape}")
        if not all(math.isfinite(lo) and math.isfinite(hi) and lo < hi for lo, hi in zip(lower, upper)):
            raise ProblemError(f"Grid: need finite lower < upper on every axis, got lower {lower}, upper {upper}")
        self.lower, self.upper, self.shape = lower, upper, shape

    @property
    def dim(self) -> int:
        return len(self.shape)

    @property
    def h(self) -> tuple[float, ...]:
        """Cell widths per axis."""
        return tuple((hi - lo) / n for lo, hi, n in zip(self.lower, self.upper, self.shape))

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.h))

    @property
    def axes(self) -> tuple[Float[Array, " n"], ...]:
        """Cell-centre coordinates along each axis."""
        return tuple(lo + (jnp.arange(n) + 0.5) * h for lo, n, h in zip(self.lower, self.shape, self.h))

    @property
    def x(self) -> Float[Array, "*shape d"]:
        """Cell centres, shape [*shape, d]."""
        return jnp.stack(jnp.meshgrid(*self.axes, indexing="ij"), axis=-1)

    def integrate(self, f: Float[Array, "*shape"]) -> Float[Array, ""]:
        """Σᵢ fᵢ hᵈ (midpoint rule)."""
        return jnp.sum(f) * self.cell_volume

    def mean(self, m: Float[Array, "*shape"]) -> Float[Array, " d"]:
        """∫ x m(x) dx."""
        return jnp.tensordot(m, self.x, axes=self.dim) * self.cell_volume

    def variance(self, m: Float[Array, "*shape"]) -> Float[Array, " d"]:
        """Per-axis variance ∫ (xₖ − x̄ₖ)² m(x) dx."""
        d2 = (self.x - self.mean(m)) ** 2
        return jnp.tensordot(m, d2, axes=self.dim) * self.cell_volume

    def density(self, fn: Callable[[Array], Array]) -> Float[Array, "*shape"]:
        """fn evaluated at the cell centres (fn maps [*shape, d] → [*shape]), normalised to mass 1."""
        m = jnp.asarray(fn(self.x))
        return m / self.integrate(m)


# ---------------------------------------------------------------------------------------------
# costs f(t, x, m) and g(x, m)


class AbstractCost(eqx.Module):
    """A running or terminal cost on the grid: ``cost(grid, t, m) -> [*shape]`` (m the density)."""

    @abc.abstractmethod
    def __call__(self, grid: Grid, t, m: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """The cost at every cell."""

    def __add__(self, other: AbstractCost) -> SumCost:
        return SumCost((self, other))


class SumCost(AbstractCost):
    """The sum of costs."""

    terms: tuple[AbstractCost, ...]

    def __call__(self, grid, t, m):
        return sum(c(grid, t, m) for c in self.terms)

    def __add__(self, other):
        return SumCost((*self.terms, other))


class Zero(AbstractCost):
    """f = 0."""

    def __call__(self, grid, t, m):
        return jnp.zeros(grid.shape, m.dtype)


class Quadratic(AbstractCost):
    """f = ½ w |x − c|² (c a scalar or a [d] vector)."""

    weight: Array = eqx.field(converter=jnp.asarray, default=1.0)
    center: Array = eqx.field(converter=jnp.asarray, default=0.0)

    def __call__(self, grid, t, m):
        return 0.5 * self.weight * jnp.sum((grid.x - self.center) ** 2, axis=-1)


class MeanTracking(AbstractCost):
    """Nonlocal: f = ½ w |x − s m̄|² with m̄ = ∫ x m(x) dx the population mean."""

    weight: Array = eqx.field(converter=jnp.asarray, default=1.0)
    scale: Array = eqx.field(converter=jnp.asarray, default=1.0)

    def __call__(self, grid, t, m):
        return 0.5 * self.weight * jnp.sum((grid.x - self.scale * grid.mean(m)) ** 2, axis=-1)


class LogCongestion(AbstractCost):
    """Local crowd aversion: f = λ log max(m, floor) (the floor keeps empty cells finite)."""

    strength: Array = eqx.field(converter=jnp.asarray, default=1.0)
    floor: float = eqx.field(static=True, default=1e-300)

    def __call__(self, grid, t, m):
        return self.strength * jnp.log(jnp.maximum(m, self.floor))


class CostFunction(AbstractCost):
    """A user cost ``fn(x, m, t) -> [*shape]`` with x the cell centres [*shape, d]."""

    fn: Callable

    def __call__(self, grid, t, m):
        return self.fn(grid.x, m, t)


# ---------------------------------------------------------------------------------------------
# the problem


class GridMFG(eqx.Module):
    r"""A mean-field game on a box, solved on a grid by `mfgx.continuous.solve` with `Picard` or
    `FictitiousPlay` (see the module docstring for the HJB–FP system).

    **Arguments:**

    - `grid`: the `Grid` (1-D or 2-D box, cells per axis).
    - `horizon`: T > 0.
    - `sigma`: σ ≥ 0, the noise (ν = σ²/2 in the PDEs).
    - `running`: f, an `AbstractCost` (e.g. ``Quadratic(1.0) + LogCongestion(0.5)``).
    - `terminal`: g, an `AbstractCost` (called with t = T).
    - `m0`: the initial density on the cell centres [*shape]: finite, ≥ 0, Σ m₀ hᵈ = 1.
    - `n_t`: time steps; ``None`` picks the smallest n_t with Δt · (Σₖ 2ν/hₖ² + |D_k g|_∞/hₖ) ≤ 0.8,
      g evaluated at m₀ (the speed of the terminal value). Running costs can make agents faster: the
      solver checks Δt · max out-rate ≤ 1 after solving and raises `CFLError` naming a sufficient n_t.
    - `boundary`: ``"reflecting"`` (no flux through the walls) or ``"periodic"``.
    """

    grid: Grid
    horizon: float = eqx.field(static=True)
    sigma: Array
    running: AbstractCost
    terminal: AbstractCost
    m0: Float[Array, "*shape"]
    n_t: int = eqx.field(static=True)
    boundary: Literal["reflecting", "periodic"] = eqx.field(static=True)

    def __init__(self, grid: Grid, horizon: float, sigma, running: AbstractCost, terminal: AbstractCost, m0,
                 *, n_t: int | None = None, boundary: Literal["reflecting", "periodic"] = "reflecting"):
        if not isinstance(grid, Grid):
            raise ProblemError(f"GridMFG.grid must be a mfgx.continuous.Grid, got {type(grid).__name__}")
        if not (isinstance(horizon, (int, float)) and 0 < horizon < math.inf):
            raise ProblemError(f"GridMFG.horizon must be a positive finite number, got {horizon!r}")
        for name, c in (("running", running), ("terminal", terminal)):
            if not isinstance(c, AbstractCost):
                raise ProblemError(f"GridMFG.{name} must be an AbstractCost (wrap functions in CostFunction), "
                                   f"got {type(c).__name__}")
        if boundary not in ("reflecting", "periodic"):
            raise ProblemError(f"GridMFG.boundary must be 'reflecting' or 'periodic', got {boundary!r}")
        self.grid, self.horizon, self.boundary = grid, float(horizon), boundary
        self.running, self.terminal = running, terminal
        self.sigma = jnp.asarray(sigma, dtype=float)
        self.m0 = jnp.asarray(m0, dtype=float)
        if not is_traced(self.sigma) and (self.sigma.shape != () or not np.isfinite(self.sigma) or self.sigma < 0):
            raise ProblemError(f"GridMFG.sigma must be a finite scalar ≥ 0, got {np.asarray(sigma)!r}")
        if not is_traced(self.m0):
            _check_density(np.asarray(self.m0), grid)
        if n_t is None:
            if is_traced(self.sigma, self.m0, terminal):
                raise ProblemError("GridMFG: pass n_t explicitly when sigma, m0 or the terminal cost are traced")
            n_t = max(1, math.ceil(self.horizon * _rate_estimate(grid, float(self.sigma), terminal, self.m0,
                                                                 self.horizon) / CFL_TARGET))
        if not (isinstance(n_t, int) and n_t >= 1):
            raise ProblemError(f"GridMFG.n_t must be a positive int, got {n_t!r}")
        self.n_t = n_t

    @property
    def dt(self) -> float:
        return self.horizon / self.n_t

    @property
    def ts(self) -> Float[Array, " N1"]:
        return jnp.linspace(0.0, self.horizon, self.n_t + 1)


def _check_density(m: np.ndarray, grid: Grid) -> None:
    if m.shape != grid.shape:
        raise ProblemError(f"GridMFG.m0 must have the grid's shape {grid.shape}, got {m.shape}")
    if not np.all(np.isfinite(m)):
        i = tuple(int(j) for j in np.argwhere(~np.isfinite(m))[0])
        raise ProblemError(f"GridMFG.m0 is not finite at cell {i}")
    if np.any(m < 0):
        i = tuple(int(j) for j in np.argwhere(m < 0)[0])
        raise ProblemError(f"GridMFG.m0 is negative ({m[i]:.3g}) at cell {i}")
    mass = float(m.sum()) * grid.cell_volume
    if abs(mass - 1) > MASS_TOL:
        raise ProblemError(f"GridMFG.m0 must integrate to 1 over the box (Σ m₀ · cell volume {grid.cell_volume:.3g}), "
                           f"but integrates to {mass:.8g}; normalise it, e.g. with Grid.density")


def _rate_estimate(grid: Grid, sigma: float, terminal: AbstractCost, m0, horizon: float) -> float:
    """Σₖ 2ν/hₖ² + max |D_k g(·, m₀)|/hₖ: the explicit scheme's out-rate at the terminal value."""
    nu = sigma**2 / 2
    g = np.asarray(terminal(grid, horizon, m0))
    rate = 0.0
    for k, h in enumerate(grid.h):
        slope = np.max(np.abs(np.diff(g, axis=k))) / h if g.shape[k] > 1 else 0.0
        rate += 2 * nu / h**2 + float(slope) / h
    if not np.isfinite(rate):
        raise ProblemError("GridMFG: the terminal cost is not finite on the grid at m0; pass n_t explicitly")
    return max(rate, 1e-12)
