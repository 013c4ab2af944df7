r"""Problems on the Lagrangian engine, and what a trained flow computes.

`CNF` (OT-Flow; science note generative_lab.md §2, §5.3): the flow carries the data ρ₀ to the
reference π = N(0, I) on [0, T] along the characteristics of Φ, at cost

    J(Φ) = α_L E[L(T)] + α_C E[C] + α_R E[R(T)],      C = ½|x(T)|² + (d/2) log 2π − ℓ(T),

C the per-sample negative log-likelihood in nats (its mean is KL(ρ_T ‖ π) + H(ρ₀), so E[C] ≥ H(ρ₀)),
L the kinetic cost and R the HJB residual along the path (`characteristics` with α = α_L).

Every problem is an `AbstractProblem`: it integrates the characteristics (`flow`), gives its
per-sample cost terms (`parts`) and combines their means into the objective (`loss`), so that one
training loop (`fit`) serves them all; `DynamicOT` and `CrowdMotion` live in `_transport.py`.

`Flow` pairs a potential with its problem; `transport` (x ↦ x(T)) and `inverse` act on any flow;
for a CNF also `log_density` (log p(x) = log π(x(T)) + ℓ(T), exact trace), `sample` (z ~ π
pushed back by the inverse flow T → 0) and `inverse_error` (mean ‖x − f⁻¹(f(x))‖₂).
"""

from __future__ import annotations

import abc
import hashlib
import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._characteristics import RK4, Characteristics, _integrate, check_integration, check_samples, probes
from ._errors import GenerativeError
from ._potential import Potential


def _number(owner, name, v, *, positive=False):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise GenerativeError(f"{owner}: {name} must be a finite number, got {v!r}")
    if v < 0 or (positive and v == 0):
        raise GenerativeError(f"{owner}: {name} must be {'> 0' if positive else '>= 0'}, got {v!r}")


def _fingerprint(tree) -> str:
    """A short hash of the dtypes, shapes and values of a pytree's leaves."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


class AbstractProblem(eqx.Module):
    r"""A cost on the characteristics of a potential Φ (dx/dt = −∇ₓΦ/α_L on [0, T]).

    Concrete problems have the fields ``alpha_L``, ``T``, ``n_steps``, ``solver`` and ``trace``
    and implement `settings` (JSON-able, for checkpoints), `flow` (the characteristics),
    `parts` (per-sample cost terms, a dict of [n] arrays) and `loss` (the objective from the
    terms' means); `check_data` refuses data of the wrong dimension."""

    @abc.abstractmethod
    def settings(self) -> dict:
        """The problem as JSON-able settings."""

    @abc.abstractmethod
    def flow(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None) -> Characteristics:
        """The characteristics from t = 0 to T."""

    @abc.abstractmethod
    def parts(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None) -> dict:
        """Per-sample cost terms {name: [n]} (traceable)."""

    @abc.abstractmethod
    def loss(self, means: dict):
        """The objective from the terms' means (a dict like `parts`'s)."""

    def check_data(self, dim: int) -> None:
        """Raise `GenerativeError` if the problem cannot act on data of dimension ``dim``."""


class CNF(AbstractProblem):
    r"""The OT-Flow continuous normalising flow as an MFG: cost weights ``alpha_L`` (kinetic),
    ``alpha_C`` (terminal NLL / KL to N(0, I)), ``alpha_R`` (HJB residual), horizon ``T``,
    ``n_steps`` steps of ``solver`` (default `RK4` on a fixed grid) and the ``trace`` used in
    training ("exact" or "hutchinson"; evaluation is always exact). OT-Flow's script defaults:
    α = (1, 100, 5), 8 steps."""

    alpha_L: float = eqx.field(static=True, default=1.0)
    alpha_C: float = eqx.field(static=True, default=100.0)
    alpha_R: float = eqx.field(static=True, default=5.0)
    T: float = eqx.field(static=True, default=1.0)
    n_steps: int = eqx.field(static=True, default=8)
    solver: diffrax.AbstractSolver = RK4()
    trace: str = eqx.field(static=True, default="exact")

    def __check_init__(self):
        _number("CNF", "alpha_L", self.alpha_L, positive=True)
        _number("CNF", "alpha_C", self.alpha_C)
        _number("CNF", "alpha_R", self.alpha_R)
        _number("CNF", "T", self.T, positive=True)
        if isinstance(self.n_steps, bool) or not isinstance(self.n_steps, (int, np.integer)) or self.n_steps < 1:
            raise GenerativeError(f"CNF: n_steps must be an int >= 1, got {self.n_steps!r}")
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise GenerativeError(f"CNF: solver must be a Diffrax solver, got {type(self.solver).__name__}")
        if self.trace not in ("exact", "hutchinson"):
            raise GenerativeError(f"CNF: trace must be 'exact' or 'hutchinson', got {self.trace!r}")

    def settings(self) -> dict:
        """The problem as JSON-able settings (for checkpoints)."""
        return {
            "problem": "CNF", "alpha_L": float(self.alpha_L), "alpha_C": float(self.alpha_C),
            "alpha_R": float(self.alpha_R), "T": float(self.T), "n_steps": int(self.n_steps),
            "solver": type(self.solver).__name__, "trace": self.trace,
        }

    def flow(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None) -> Characteristics:
        """The characteristics from t = 0 to T (α = α_L); ``probe`` [n, d] selects Hutchinson."""
        n = self.n_steps if n_steps is None else n_steps
        return _integrate(potential, x, probe, float(self.alpha_L), 0.0, float(self.T), int(n), self.solver, None, None, False, int(n))

    def terms(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None):
        """Per-sample (L, C, R), each [n] (traceable)."""
        c = self.flow(potential, x, n_steps=n_steps, probe=probe)
        d = x.shape[-1]
        C = 0.5 * jnp.sum(c.x**2, axis=-1) + 0.5 * d * math.log(2 * math.pi) - c.logdet
        return c.kinetic, C, c.hjb

    def objective(self, L, C, R):
        """α_L L + α_C C + α_R R (elementwise or of means)."""
        return self.alpha_L * L + self.alpha_C * C + self.alpha_R * R

    def parts(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None) -> dict:
        """{"L", "C", "R"} per sample (`terms`)."""
        return dict(zip("LCR", self.terms(potential, x, n_steps=n_steps, probe=probe)))

    def loss(self, means: dict):
        """α_L L + α_C C + α_R R of the terms' means."""
        return self.objective(means["L"], means["C"], means["R"])


class Flow(eqx.Module):
    """A potential with the problem whose characteristics it defines (what `fit` returns)."""

    potential: Potential
    problem: AbstractProblem

    def __check_init__(self):
        if not isinstance(self.potential, Potential):
            raise GenerativeError(f"Flow: potential must be a Potential, got {type(self.potential).__name__}")
        if not isinstance(self.problem, AbstractProblem):
            raise GenerativeError(f"Flow: problem must be a CNF, DynamicOT, CrowdMotion or other AbstractProblem, got {type(self.problem).__name__}")

    @property
    def dim(self) -> int:
        return self.potential.dim


def _check_flow(flow, n_steps, cnf=False, what=""):
    if not isinstance(flow, Flow):
        raise GenerativeError(f"expected a mfgx.generative.Flow (e.g. fit(...).model), got {type(flow).__name__}")
    if cnf and not isinstance(flow.problem, CNF):
        raise GenerativeError(f"{what} needs a CNF flow (a density through N(0, I)), got a {type(flow).__name__} of a {type(flow.problem).__name__}")
    n = flow.problem.n_steps if n_steps is None else n_steps
    check_integration(flow.potential, n, flow.problem.solver)
    return int(n)


def _dtype(flow):
    return jnp.result_type(flow.potential.K0)


@eqx.filter_jit
def _log_density(flow, x, n_steps):
    c = flow.problem.flow(flow.potential, x, n_steps=n_steps)
    d = x.shape[-1]
    return -0.5 * jnp.sum(c.x**2, axis=-1) - 0.5 * d * math.log(2 * math.pi) + c.logdet


def log_density(flow: Flow, x: Float[Array, "n d"], *, n_steps: int | None = None) -> Float[Array, " n"]:
    """log p(x) = log π(x(T)) + ℓ(T) with the exact trace, π = N(0, I), in nats; ``n_steps``
    overrides the problem's (OT-Flow evaluates with more steps than it trains with)."""
    n = _check_flow(flow, n_steps, cnf=True, what="log_density")
    return _log_density(flow, check_samples(x, flow.dim, "x", _dtype(flow)), n)


@eqx.filter_jit
def _pull_back(flow, z, n_steps):
    p = flow.problem
    return _integrate(flow.potential, z, None, float(p.alpha_L), float(p.T), 0.0, n_steps, p.solver, None, None, False, n_steps).x


@eqx.filter_jit
def _push(flow, x, n_steps):
    p = flow.problem
    return _integrate(flow.potential, x, None, float(p.alpha_L), 0.0, float(p.T), n_steps, p.solver, None, None, False, n_steps).x


def transport(flow: Flow, x: Float[Array, "n d"], *, n_steps: int | None = None) -> Float[Array, "n d"]:
    """The flow map x ↦ x(T): the characteristics from t = 0 to T (``n_steps`` overrides the problem's)."""
    n = _check_flow(flow, n_steps)
    return _push(flow, check_samples(x, flow.dim, "x", _dtype(flow)), n)


def inverse(flow: Flow, z: Float[Array, "n d"], *, n_steps: int | None = None) -> Float[Array, "n d"]:
    """f⁻¹(z): the characteristics integrated backwards from t = T to 0."""
    n = _check_flow(flow, n_steps)
    return _pull_back(flow, check_samples(z, flow.dim, "z", _dtype(flow)), n)


def sample(flow: Flow, key: PRNGKeyArray, n: int, *, n_steps: int | None = None) -> Float[Array, "n d"]:
    """``n`` samples of the model: z ~ N(0, I) pushed back by the inverse flow (`inverse`)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise GenerativeError(f"n must be an int >= 1, got {n!r}")
    steps = _check_flow(flow, n_steps, cnf=True, what="sample")
    z = jr.normal(key, (int(n), flow.dim), _dtype(flow))
    return _pull_back(flow, z, steps)


@eqx.filter_jit
def _inverse_error(flow, x, n_steps):
    z = flow.problem.flow(flow.potential, x, n_steps=n_steps).x
    return jnp.mean(jnp.linalg.norm(x - _pull_back(flow, z, n_steps), axis=-1))


def inverse_error(flow: Flow, x: Float[Array, "n d"], *, n_steps: int | None = None) -> float:
    """mean ‖x − f⁻¹(f(x))‖₂ over the rows of ``x`` (both directions with ``n_steps`` steps)."""
    n = _check_flow(flow, n_steps)
    return float(_inverse_error(flow, check_samples(x, flow.dim, "x", _dtype(flow)), n))


def training_probes(problem: AbstractProblem, key, n, d, dtype):
    """The Hutchinson probes of one training batch (None for the exact trace)."""
    return probes(key, n, d, dtype) if problem.trace == "hutchinson" else None


__all__ = ["AbstractProblem", "CNF", "Flow", "log_density", "sample", "transport", "inverse", "inverse_error"]
