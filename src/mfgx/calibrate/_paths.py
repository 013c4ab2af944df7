r"""Parameter paths γ(t, μ) ∈ ℝ^p: constant, piecewise in time, or a neural network of (t, μ).

Every path holds unconstrained numbers z and returns a bounded value:

    γ = floor + softplus(z)                          (``upper=None``, the default; floor 0)
    γ = floor + (upper − floor) · sigmoid(z)         (``upper`` given)

so the floor and the ceiling are chosen per path (the paper's fixed floor 0.1 made ground truths
below 0.1 unreachable). `evaluate(times, flow)` returns the path γ[N, p] along a flow.
"""

from __future__ import annotations

import abc

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._transforms import inverse_softplus
from ._errors import CalibrationError


class AbstractPath(eqx.Module):
    """A map (t, μ) ↦ γ ∈ ℝ^p with a positivity (or box) transform; see the module docstring."""

    floor: float = eqx.field(static=True)
    upper: float | None = eqx.field(static=True)

    @abc.abstractmethod
    def raw(self, t, mu) -> Float[Array, " p"]:
        """The unconstrained output z(t, μ)."""

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """p, the number of parameter components."""

    @property
    def n_covariates(self) -> int:
        """C, the number of covariates read after μ (0: the path sees (t, μ) only)."""
        return 0

    def __call__(self, t, mu) -> Float[Array, " p"]:
        return self.transform(self.raw(t, mu))

    def evaluate(self, times, flow) -> Float[Array, "N p"]:
        """γ_n = γ(t_n, μ_n) along a flow μ[N, S] (the observed one, in the paper's decoupling)."""
        return jax.vmap(self)(jnp.asarray(times), jnp.asarray(flow))

    def transform(self, z):
        if self.upper is None:
            return self.floor + jax.nn.softplus(z)
        return self.floor + (self.upper - self.floor) * jax.nn.sigmoid(z)

    def inverse(self, value):
        """z with transform(z) = value (value strictly inside the bounds)."""
        v = np.asarray(value, dtype=float)
        lo, hi = self.floor, self.upper
        if np.any(v <= lo) or (hi is not None and np.any(v >= hi)):
            bounds = f"({lo}, {hi})" if hi is not None else f"> floor {lo}"
            raise CalibrationError(f"initial path values must lie in {bounds}, got {v}")
        if hi is None:
            x = v - lo
            return inverse_softplus(x)
        x = (v - lo) / (hi - lo)
        return jnp.asarray(np.log(x) - np.log1p(-x))

    def inverse_traced(self, value):
        """`inverse` inside JAX (no checks): z with transform(z) = value."""
        if self.upper is None:
            x = value - self.floor
            return inverse_softplus(x)
        x = (value - self.floor) / (self.upper - self.floor)
        return jnp.log(x) - jnp.log1p(-x)

    @property
    def values(self) -> Float[Array, "..."]:
        """The finite-dimensional parameters in their constrained form (for uncertainty)."""
        raise CalibrationError(
            f"{type(self).__name__} has no finite-dimensional parameter summary; "
            "use Constant or PiecewiseConstant for standard errors (or an ensemble of fits)"
        )

    def with_values(self, values) -> "AbstractPath":
        """The same path with its constrained parameters replaced (Constant, PiecewiseConstant)."""
        self.values  # raises for paths without a finite-dimensional summary
        return eqx.tree_at(lambda p: p.z, self, self.inverse_traced(jnp.reshape(values, self.z.shape)))


def _check_bounds(floor, upper):
    floor = float(floor)
    if not np.isfinite(floor):
        raise CalibrationError(f"floor must be finite, got {floor}")
    if upper is not None:
        upper = float(upper)
        if not upper > floor:
            raise CalibrationError(f"upper ({upper}) must exceed floor ({floor})")
    return floor, upper


class Constant(AbstractPath):
    """γ(t, μ) = value: one vector for all times and states. ``value`` scalar or [p]."""

    z: Float[Array, " p"]

    def __init__(self, value, *, floor: float = 0.0, upper: float | None = None):
        self.floor, self.upper = _check_bounds(floor, upper)
        v = np.atleast_1d(np.asarray(value, dtype=float))
        if v.ndim != 1:
            raise CalibrationError(f"Constant value must be a scalar or a vector [p], got shape {v.shape}")
        self.z = self.inverse(v)

    @property
    def size(self) -> int:
        return self.z.shape[0]

    def raw(self, t, mu):
        return self.z

    @property
    def values(self):
        return self.transform(self.z)


class PiecewiseConstant(AbstractPath):
    """γ(t) from values at knots t_0 < … < t_{M−1}: held constant from each knot to the next
    (``interpolation="constant"``; before t_0 the first value), or linearly interpolated
    (``"linear"``; constant outside the knots). ``values`` [M] or [M, p]."""

    knots: Float[Array, " M"]
    z: Float[Array, "M p"]
    interpolation: str = eqx.field(static=True)

    def __init__(self, knots, values, *, interpolation: str = "constant", floor: float = 0.0, upper=None):
        self.floor, self.upper = _check_bounds(floor, upper)
        knots = np.asarray(knots, dtype=float)
        v = np.asarray(values, dtype=float)
        if v.ndim == 1:
            v = v[:, None]
        if knots.ndim != 1 or knots.size < 1 or np.any(np.diff(knots) <= 0) or not np.all(np.isfinite(knots)):
            raise CalibrationError("knots must be a non-empty, finite, strictly increasing vector")
        if v.ndim != 2 or v.shape[0] != knots.size:
            raise CalibrationError(f"values must have shape [M] or [M, p] with M = {knots.size} knots, got {v.shape}")
        if interpolation not in ("constant", "linear"):
            raise CalibrationError(f"interpolation must be 'constant' or 'linear', got {interpolation!r}")
        self.knots, self.z, self.interpolation = jnp.asarray(knots), self.inverse(v), interpolation

    @property
    def size(self) -> int:
        return self.z.shape[1]

    def raw(self, t, mu):
        if self.interpolation == "linear":
            return jax.vmap(lambda zc: jnp.interp(t, self.knots, zc), in_axes=1)(self.z)
        i = jnp.clip(jnp.searchsorted(self.knots, t, side="right") - 1, 0, self.knots.size - 1)
        return self.z[i]

    @property
    def values(self):
        return self.transform(self.z)


def _bspline_basis(t, knots, degree: int):
    """The n B-splines of ``degree`` on the clamped knot vector ``knots`` (length n + degree + 1) at
    t (Cox–de Boor): [n], non-negative, summing to one on [knots[0], knots[-1]] (t is clipped)."""
    t = jnp.clip(t, knots[0], knots[-1])
    n0 = knots.shape[0] - 1
    last = jnp.arange(n0) == jnp.max(jnp.nonzero(knots[1:] > knots[:-1], size=n0, fill_value=0)[0])
    B = ((knots[:-1] <= t) & ((t < knots[1:]) | (last & (t == knots[-1])))).astype(knots.dtype)
    for k in range(1, degree + 1):
        left_den, right_den = knots[k:-1] - knots[: -k - 1], knots[k + 1 :] - knots[1:-k]
        left = jnp.where(left_den > 0, (t - knots[: -k - 1]) / jnp.where(left_den > 0, left_den, 1.0), 0.0)
        right = jnp.where(right_den > 0, (knots[k + 1 :] - t) / jnp.where(right_den > 0, right_den, 1.0), 0.0)
        B = left * B[:-1] + right * B[1:]
    return B


class Spline(AbstractPath):
    r"""A smooth path in time: γ(t) = floor + Σ_j B_j(t) (w_j − floor), B_j the clamped B-splines of
    ``degree`` (cubic by default) on ``n_basis`` functions with uniform knots on [t_start, t_end],
    and coefficients w_j ∈ (floor, upper) (``values`` [n_basis] or [n_basis, p]).

    B-splines are non-negative and sum to one, so γ stays within the coefficients' bounds, and they
    reproduce polynomials up to ``degree`` exactly: a few coefficients describe a smooth γ(t) with
    far fewer parameters than a piecewise-constant path, which keeps poorly observed times tied to
    well observed ones. The coefficients are the `values` (for `refine`, `laplace`, `profile`)."""

    knots: Float[Array, " M"]
    z: Float[Array, "n p"]
    degree: int = eqx.field(static=True)

    def __init__(self, interval, values, *, degree: int = 3, floor: float = 0.0, upper: float | None = None):
        self.floor, self.upper = _check_bounds(floor, upper)
        t0, t1 = (float(x) for x in interval)
        if not (np.isfinite(t0) and np.isfinite(t1) and t1 > t0):
            raise CalibrationError(f"interval must be (t_start, t_end) with t_end > t_start, got {interval!r}")
        v = np.asarray(values, dtype=float)
        v = v[:, None] if v.ndim == 1 else v
        if not (isinstance(degree, (int, np.integer)) and degree >= 0):
            raise CalibrationError(f"degree must be a non-negative int, got {degree!r}")
        if v.ndim != 2 or v.shape[0] < degree + 1:
            raise CalibrationError(f"values must have shape [n] or [n, p] with n ≥ degree + 1 = {degree + 1}, got {v.shape}")
        inner = np.linspace(t0, t1, v.shape[0] - degree + 1)
        self.knots = jnp.asarray(np.concatenate([np.full(degree, t0), inner, np.full(degree, t1)]))
        self.z, self.degree = self.inverse(v), int(degree)

    @property
    def size(self) -> int:
        return self.z.shape[1]

    def raw(self, t, mu):
        return self.z  # the coefficients' raw values; __call__ combines them

    def __call__(self, t, mu):
        B = _bspline_basis(jnp.asarray(t, self.knots.dtype), self.knots, self.degree)
        return self.floor + B @ (self.transform(self.z) - self.floor)

    @property
    def values(self):
        return self.transform(self.z)


class Neural(AbstractPath):
    r"""γ(t, μ, z) = transform(MLP([t / time_scale, μ, z])): an Equinox MLP of time, the distribution
    and ``n_covariates`` covariates z (e.g. school terms or lockdown indicators, carried by the
    observations; 0 by default).

    ``inputs`` selects what the network sees of (t, μ): "t,mu" (default), "t" or "mu"; covariates
    are always seen. ``depth=0`` gives a linear (generalised-linear) path. The last layer starts
    with small weights and a bias at ``init``, so the initial path is close to the constant ``init``.
    """

    mlp: eqx.nn.MLP
    inputs: str = eqx.field(static=True)
    time_scale: float = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    n_states: int = eqx.field(static=True)
    covariates: int = eqx.field(static=True)

    def __init__(
        self,
        width: int = 64,
        depth: int = 2,
        key: PRNGKeyArray | None = None,
        *,
        n_states: int,
        out_size: int = 1,
        inputs: str = "t,mu",
        time_scale: float = 1.0,
        init=1.0,
        activation: Callable = jax.nn.tanh,
        floor: float = 0.0,
        upper: float | None = None,
        n_covariates: int = 0,
    ):
        self.floor, self.upper = _check_bounds(floor, upper)
        if not (isinstance(n_covariates, (int, np.integer)) and n_covariates >= 0):
            raise CalibrationError(f"n_covariates must be a non-negative int, got {n_covariates!r}")
        if inputs not in ("t,mu", "t", "mu"):
            raise CalibrationError(f"inputs must be 't,mu', 't' or 'mu', got {inputs!r}")
        if key is None:
            raise CalibrationError("Neural needs a PRNG key: Neural(width, depth, jax.random.PRNGKey(0), n_states=S)")
        if not time_scale > 0:
            raise CalibrationError(f"time_scale must be positive, got {time_scale}")
        in_size = {"t,mu": 1 + n_states, "t": 1, "mu": n_states}[inputs] + int(n_covariates)
        mlp = eqx.nn.MLP(in_size, out_size, width, depth, activation=activation, key=key)
        bias = self.inverse(np.broadcast_to(np.asarray(init, dtype=float), (out_size,)))
        last = mlp.layers[-1]
        mlp = eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp, (0.01 * last.weight, bias))
        self.mlp, self.inputs, self.time_scale, self.out_size = mlp, inputs, float(time_scale), int(out_size)
        self.n_states, self.covariates = int(n_states), int(n_covariates)

    @property
    def size(self) -> int:
        return self.out_size

    @property
    def n_covariates(self) -> int:
        return self.covariates

    def raw(self, t, mu):
        t = jnp.reshape(jnp.asarray(t, dtype=jnp.result_type(float)) / self.time_scale, (1,))
        m, z = mu[: self.n_states], mu[self.n_states :]
        x = {"t,mu": lambda: jnp.concatenate([t, m]), "t": lambda: t, "mu": lambda: m}[self.inputs]()
        return self.mlp(jnp.concatenate([x, z]))


class Known(AbstractPath):
    """A fixed, known path γ(t, μ) = ``fn(t, μ)`` (a callable returning a scalar or [p]): nothing is
    trained. Use it to evaluate a model at a ground truth (``evaluate``, ``predict``, the loss at
    the truth as a check that the game's discretisation matches the data's) or to `simulate`.
    ``fn`` is called under jit and vmap; define it once (jit caches on its identity)."""

    fn: Callable = eqx.field(static=True)
    p: int = eqx.field(static=True)

    def __init__(self, fn: Callable, size: int | None = None, *, n_states: int | None = None):
        if not callable(fn):
            raise CalibrationError(f"Known needs a callable (t, μ) -> γ, got {type(fn).__name__}")
        if size is None:
            if n_states is None:
                raise CalibrationError("Known(fn) needs size=p or n_states=S (to probe fn once)")
            size = int(np.size(jax.eval_shape(lambda: jnp.asarray(fn(0.0, jnp.ones(n_states) / n_states)))))
        self.fn, self.p = fn, int(size)
        self.floor, self.upper = 0.0, None

    def raw(self, t, mu):
        return jnp.reshape(jnp.asarray(self.fn(t, mu), dtype=jnp.result_type(float)), (self.p,))

    def transform(self, z):
        return z  # the values are the parameters themselves: no bounds

    @property
    def size(self) -> int:
        return self.p


class Reference(AbstractPath):
    r"""The calibration paper's ground-truth paths: γ(t, μ) = lo + span·s(t, μ) per component, with
    s = 1 (``kind="constant"``), 4t(T − t)/T² (``"arc"``, 0 at t = 0 and T, 1 at T/2) or μ(state)
    (``"mean_field"``, one ``states`` index per component). Nothing is trained: a truth to
    `simulate` from and to measure fits against. ``lo``, ``span``: scalars or [p]."""

    lo: Float[Array, " p"]
    span: Float[Array, " p"]
    states: Array
    kind: str = eqx.field(static=True)
    T: float = eqx.field(static=True)

    def __init__(self, kind: str, lo, span, T: float, states=None):
        if kind not in ("constant", "arc", "mean_field"):
            raise CalibrationError(f"kind must be 'constant', 'arc' or 'mean_field', got {kind!r}")
        if not T > 0:
            raise CalibrationError(f"T must be positive, got {T!r}")
        self.floor, self.upper = 0.0, None
        self.kind, self.T = kind, float(T)
        self.lo, self.span = jnp.atleast_1d(jnp.asarray(lo, float)), jnp.atleast_1d(jnp.asarray(span, float))
        self.states = jnp.zeros(self.lo.shape, int) if states is None else jnp.asarray(states, int)

    @property
    def size(self) -> int:
        return self.lo.shape[0]

    def raw(self, t, mu):
        if self.kind == "constant":
            s = jnp.ones_like(self.lo)
        elif self.kind == "arc":
            s = jnp.full_like(self.lo, 4 * t * (self.T - t) / self.T**2)
        else:
            s = mu[self.states]
        return self.lo + self.span * s

    def transform(self, z):
        return z  # the values are the parameters themselves
