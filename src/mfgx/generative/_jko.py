r"""Wasserstein gradient flows as chains of MFGs (science note generative_lab.md §4).

The JKO step of an energy ℰ with step τ,

    ρ^{k+1} = argmin_ρ ℰ(ρ) + W₂²(ρᵏ, ρ)/(2τ),

is, by Benamou–Brenier (W₂²/(2τ) = min ∫₀^τ∫½|v|²ρ dx dt), the potential MFG on [0, τ] with
running cost ½|v|², no interaction and terminal cost ℰ: agents x ~ ρᵏ follow dx/dt = v = −∇ₓΦ
and `JKOStep` minimises E[L] + ℰ(ρ_τ) (+ α_R E[R], the HJB residual of −∂ₜΦ + ½|∇ₓΦ|² = 0) on
samples of ρᵏ. Energies, each a per-sample term eᵢ with ℰ = E[eᵢ] (up to a constant):

- `KL` to a target π: eᵢ = −ℓᵢ(τ) − log π(zᵢ) (= log ρ_τ(zᵢ) − log π(zᵢ) − log ρᵏ(xᵢ), the last
  term constant in Φ), ℰ = KL(ρ_τ ‖ π) + H(ρᵏ).
- `PotentialEnergy` ∫V dρ: eᵢ = V(zᵢ).
- `InteractionEnergy` ½∫∫W(x − y) dρ dρ: eᵢ = ½ (1/(n−1)) Σ_{j≠i} W(zᵢ − zⱼ) over the batch.

`gradient_flow` chains K steps (each a `fit` on the particles moved by the previous step, warm
started from its potential), carrying every particle's log-density log ρ^{k+1}(z) = log ρᵏ(x) − ℓ
when the initial one is given. For ℰ = KL(· ‖ N(0, I)) the flow is Fokker–Planck's for the
Ornstein–Uhlenbeck process (m(t) = e^{−t}m₀, Σ(t) = e^{−2t}Σ₀ + (1 − e^{−2t})I), and a JKO step
from N(m, Σ) is N(m/(1 + τ), Σ′) with each eigenvalue s² of Σ mapped to σ², σ = (s + √(s² + 4τ(1 + τ)))/(2(1 + τ))
(`gaussian_jko_step`).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._characteristics import RK4, Characteristics, _integrate, check_samples
from ._errors import GenerativeError
from ._potential import Potential
from ._problems import AbstractProblem, Flow, _fingerprint, _number


class KL(eqx.Module):
    """ℰ(ρ) = KL(ρ ‖ π) for a ``target`` density π (a module with ``log_prob`` and ``dim``)."""

    target: eqx.Module

    def __check_init__(self):
        if not (hasattr(self.target, "log_prob") and hasattr(self.target, "dim")):
            raise GenerativeError(f"KL: target must be a density with log_prob and dim, got {type(self.target).__name__}")

    def __call__(self, z, logdet):
        return -logdet - self.target.log_prob(z).astype(z.dtype)

    def settings(self):
        return {"energy": "KL", "target": _fingerprint(self.target)}


class PotentialEnergy(eqx.Module):
    """ℰ(ρ) = ∫V dρ for a potential ``V``: [d] → scalar (a pure JAX function)."""

    V: Callable = eqx.field(static=True)

    def __check_init__(self):
        if not callable(self.V):
            raise GenerativeError(f"PotentialEnergy: V must be callable, got {type(self.V).__name__}")

    def __call__(self, z, logdet):
        del logdet
        return jax.vmap(self.V)(z)

    def settings(self):
        return {"energy": "potential", "V": getattr(self.V, "__qualname__", repr(self.V))}


class InteractionEnergy(eqx.Module):
    """ℰ(ρ) = ½∫∫W(x − y) dρ(x) dρ(y) for a kernel ``W``: [d] → scalar, estimated over the batch
    without the diagonal."""

    W: Callable = eqx.field(static=True)

    def __check_init__(self):
        if not callable(self.W):
            raise GenerativeError(f"InteractionEnergy: W must be callable, got {type(self.W).__name__}")

    def __call__(self, z, logdet):
        del logdet
        n = z.shape[0]
        pair = jax.vmap(lambda a: jax.vmap(lambda b: self.W(a - b))(z))(z)
        pair = pair * (1.0 - jnp.eye(n, dtype=pair.dtype))
        return 0.5 * jnp.sum(pair, axis=1) / max(n - 1, 1)

    def settings(self):
        return {"energy": "interaction", "W": getattr(self.W, "__qualname__", repr(self.W))}


_ENERGIES = (KL, PotentialEnergy, InteractionEnergy)


class JKOStep(AbstractProblem):
    r"""One JKO step of ℰ = Σ ``energies`` with step ``tau``, as an MFG on [0, τ] (module
    docstring): minimises E[L] + Σ E[eᵢ] + ``alpha_R`` E[R] over the potential, on samples of ρᵏ.
    Terms: ``L`` (kinetic), ``E`` (the energy's per-sample term), ``R`` (HJB residual)."""

    energies: tuple
    tau: float = eqx.field(static=True, default=0.1)
    alpha_R: float = eqx.field(static=True, default=0.0)
    n_steps: int = eqx.field(static=True, default=4)
    solver: diffrax.AbstractSolver = RK4()
    trace: str = eqx.field(static=True, default="exact")

    def __check_init__(self):
        if not isinstance(self.energies, tuple) or not self.energies or not all(isinstance(e, _ENERGIES) for e in self.energies):
            raise GenerativeError(
                "JKOStep: energies must be a non-empty tuple of KL, PotentialEnergy or InteractionEnergy, "
                f"got {self.energies!r}"
            )
        _number("JKOStep", "tau", self.tau, positive=True)
        _number("JKOStep", "alpha_R", self.alpha_R)
        if isinstance(self.n_steps, bool) or not isinstance(self.n_steps, (int, np.integer)) or self.n_steps < 1:
            raise GenerativeError(f"JKOStep: n_steps must be an int >= 1, got {self.n_steps!r}")
        if not isinstance(self.solver, diffrax.AbstractSolver):
            raise GenerativeError(f"JKOStep: solver must be a Diffrax solver, got {type(self.solver).__name__}")
        if self.trace not in ("exact", "hutchinson"):
            raise GenerativeError(f"JKOStep: trace must be 'exact' or 'hutchinson', got {self.trace!r}")

    @property
    def T(self) -> float:
        return float(self.tau)

    @property
    def alpha_L(self) -> float:
        return 1.0

    def settings(self) -> dict:
        return {
            "problem": "JKOStep", "energies": [e.settings() for e in self.energies], "tau": float(self.tau),
            "alpha_R": float(self.alpha_R), "n_steps": int(self.n_steps), "solver": type(self.solver).__name__,
            "trace": self.trace,
        }

    def check_data(self, dim: int) -> None:
        for e in self.energies:
            if isinstance(e, KL) and e.target.dim != dim:
                raise GenerativeError(f"JKOStep: the data have dimension {dim} but the KL target has dimension {e.target.dim}")

    def flow(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None) -> Characteristics:
        """The characteristics from t = 0 to τ."""
        n = self.n_steps if n_steps is None else n_steps
        return _integrate(potential, x, probe, 1.0, 0.0, float(self.tau), int(n), self.solver, None, None, False, int(n))

    def parts(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None) -> dict:
        """Per-sample {"L", "E", "R"}."""
        c = self.flow(potential, x, n_steps=n_steps, probe=probe)
        E = sum(e(c.x, c.logdet) for e in self.energies)
        return {"L": c.kinetic, "E": E, "R": c.hjb}

    def loss(self, means: dict):
        """E[L] + E[E] + α_R E[R]: W₂²/(2τ) + ℰ at the optimum (+ the penalty)."""
        return means["L"] + means["E"] + self.alpha_R * means["R"]


def gaussian_jko_step(mean, cov, tau: float) -> tuple[np.ndarray, np.ndarray]:
    r"""The exact JKO step of KL(· ‖ N(0, I)) from N(mean, cov): (mean/(1 + τ), Σ′), Σ′ sharing
    Σ's eigenvectors with each eigenvalue s² mapped to σ², σ = (s + √(s² + 4τ(1 + τ)))/(2(1 + τ))."""
    m, S = np.asarray(mean, float), np.asarray(cov, float)
    w, V = np.linalg.eigh(S)
    s = np.sqrt(w)
    sig = (s + np.sqrt(s**2 + 4 * tau * (1 + tau))) / (2 * (1 + tau))
    return m / (1 + tau), (V * sig**2) @ V.T


@dataclasses.dataclass(frozen=True)
class WassersteinGradientFlow:
    """The result of `gradient_flow`: ``flows`` (one `Flow` per JKO step), ``particles``
    [K + 1, n, d] (the initial samples and their images after each step), ``times`` [K + 1]
    (k τ), ``log_density`` [K + 1, n] (each particle's log ρᵏ, or None without ``logp0``) and
    ``fits`` (each step's `GenerativeFit`)."""

    flows: list[Flow]
    particles: np.ndarray
    times: np.ndarray
    log_density: np.ndarray | None
    fits: list[Any]


@eqx.filter_jit
def _advance(flow, x, n_steps):
    c = flow.problem.flow(flow.potential, x, n_steps=n_steps)
    return c.x, c.logdet


def gradient_flow(
    step: JKOStep,
    x0: Float[Array, "n d"],
    *,
    n_jko: int,
    key: PRNGKeyArray,
    logp0: Float[Array, " n"] | None = None,
    eval_steps: int | None = None,
    warm_start: bool = True,
    **fit_kwargs,
) -> WassersteinGradientFlow:
    r"""``n_jko`` chained JKO steps of ``step`` from the particles ``x0`` ~ ρ⁰: step k trains a
    potential on the current particles (`fit` with ``fit_kwargs``, key fold_in(key, k), warm
    started from step k − 1's potential), then moves them by its flow (``eval_steps`` RK4 steps,
    default the problem's) and updates ``logp0`` (log ρ⁰ at x0, optional) by −ℓ. With
    ``checkpoint_dir`` each step checkpoints in its own sub-folder ``jko_0000``, ``jko_0001``, …, so
    that a rerun resumes the chain (the particles are recomputed bitwise)."""
    from ._fit import fit

    if not isinstance(step, JKOStep):
        raise GenerativeError(f"gradient_flow: step must be a JKOStep, got {type(step).__name__}")
    if isinstance(n_jko, bool) or not isinstance(n_jko, (int, np.integer)) or n_jko < 1:
        raise GenerativeError(f"gradient_flow: n_jko must be an int >= 1, got {n_jko!r}")
    if np.ndim(x0) != 2:
        raise GenerativeError(f"gradient_flow: x0 must have shape [n, d] (samples by dimension), got shape {np.shape(x0)}")
    x = check_samples(x0, int(np.shape(x0)[1]), "x0")
    lp = None
    if logp0 is not None:
        lp = jnp.asarray(logp0, x.dtype)
        if lp.shape != x.shape[:1]:
            raise GenerativeError(f"gradient_flow: logp0 must have shape ({x.shape[0]},), got {lp.shape}")
    n_eval = step.n_steps if eval_steps is None else int(eval_steps)
    parts, lps, flows, fits = [np.asarray(x)], [None if lp is None else np.asarray(lp)], [], []
    potential = fit_kwargs.pop("potential", None)
    fit_kwargs.setdefault("progress", False)
    ckpt = fit_kwargs.pop("checkpoint_dir", None)
    for k in range(int(n_jko)):
        if ckpt is not None:
            fit_kwargs["checkpoint_dir"] = pathlib.Path(ckpt) / f"jko_{k:04d}"
        res = fit(step, x, key=jr.fold_in(key, k), potential=potential, **fit_kwargs)
        flow = res.model
        x, ell = _advance(flow, x, n_eval)
        if lp is not None:
            lp = lp - ell
        flows.append(flow)
        fits.append(res)
        parts.append(np.asarray(x))
        lps.append(None if lp is None else np.asarray(lp))
        if warm_start:
            potential = flow.potential
    times = np.arange(int(n_jko) + 1) * float(step.tau)
    return WassersteinGradientFlow(flows, np.stack(parts), times, None if lp is None else np.stack(lps), fits)


__all__ = [
    "InteractionEnergy",
    "JKOStep",
    "KL",
    "PotentialEnergy",
    "WassersteinGradientFlow",
    "gaussian_jko_step",
    "gradient_flow",
]
