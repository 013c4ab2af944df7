r"""`DynamicOT` and `CrowdMotion`: MFGnet's potential mean-field games on the Lagrangian engine
(Ruthotto, Osher, Li, Nurbekyan & Wu Fung, PNAS 2020; science note generative_lab.md §1, §6.1).

Agents start at x₀ ~ ρ₀ (the training data) and move along the characteristics of Φ,
dx/dt = v = −∇ₓΦ/α_L on [0, T]. With ρ₁ the target density and ℓ the log-determinant,
log ρ(x(t), t) = log ρ₀(x₀) − ℓ(t) along each path, and the per-sample terms are

    L  = ∫₀ᵀ ½|v|² dt                                  kinetic cost,
    F  = ∫₀ᵀ f(x, log ρ) dt                            running cost (CrowdMotion only),
    G  = log ρ₀(x₀) − ℓ(T) − log ρ₁(x(T))              terminal cost, E[G] = KL(ρ_T ‖ ρ₁),
    R  = ∫₀ᵀ |−∂ₜΦ + |∇ₓΦ|²/(2α_L) − α_F δF/δρ| dt      HJB residual along the path,
    RT = |Φ(x(T), T) − α_G(G + 1)|                     terminal HJB residual (δKL/δρ = log ρ_T/ρ₁ + 1),

minimised as α_L E[L] + α_F E[F] + α_G E[G] + α_R E[R] + α_RT E[RT] (MFGnet's α₁ … α₅). The
HJB is that of the MFG −∂ₜΦ + |∇ₓΦ|²/(2α_L) = α_F δF/δρ, Φ(·, T) = α_G δG/δρ.

Crowd motion's running cost is f = Q(x) + c·log ρ: the obstacle / preference Q (`Obstacle`) plus
the congestion (entropy) ∫ρ log ρ dx of weight c, so δF/δρ = Q + c(log ρ + 1).

Densities (``target``, ``source``) are modules with ``log_prob`` ([..., d] → [...]) and ``dim``,
e.g. `mfgx.generative.datasets.GaussianMixture`. The ``source`` log-density is needed for the
exact values of G, F and the HJB residuals that contain log ρ; without it log ρ₀ is taken as 0,
which shifts E[G] and E[F] by constants (−H(ρ₀), −c·T·H(ρ₀)) and leaves their gradients exact, so
only RT (``alpha_RT``) and, with congestion, R need it.
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._characteristics import RK4, Characteristics, _integrate
from ._errors import GenerativeError
from ._potential import Potential
from ._problems import AbstractProblem, _fingerprint, _number


class Obstacle(eqx.Module):
    r"""Q(x) = height · exp(−½ Σᵢ (xᵢ − cᵢ)²/σᵢ²) on the first len(σ) coordinates (a Gaussian
    bump; MFGnet's crowd-motion obstacle: height 50, σ = (1, 0.5), centre 0)."""

    height: float = eqx.field(static=True, default=50.0)
    center: tuple[float, ...] = eqx.field(static=True, default=(0.0, 0.0))
    widths: tuple[float, ...] = eqx.field(static=True, default=(1.0, 0.5))

    def __check_init__(self):
        _number("Obstacle", "height", self.height)
        if len(self.center) != len(self.widths) or not self.widths:
            raise GenerativeError(f"Obstacle: center and widths need one (same) length, got {self.center!r} and {self.widths!r}")
        for w in self.widths:
            _number("Obstacle", "widths", w, positive=True)
        for c in self.center:
            if not math.isfinite(c):
                raise GenerativeError(f"Obstacle: center must be finite, got {self.center!r}")

    def __call__(self, x: Float[Array, " d"]) -> Array:
        k = len(self.widths)
        r = (x[..., :k] - jnp.asarray(self.center, x.dtype)) / jnp.asarray(self.widths, x.dtype)
        return self.height * jnp.exp(-0.5 * jnp.sum(r**2, axis=-1))


class _CrowdRunning(eqx.Module):
    """(x, t, log ρ) ↦ (f, α_F δF/δρ) with f = Q(x) + c log ρ."""

    obstacle: Obstacle
    congestion: float = eqx.field(static=True)
    alpha_F: float = eqx.field(static=True)

    def __call__(self, x, t, log_rho):
        del t
        q = self.obstacle(x)
        f = q + self.congestion * log_rho
        return f, self.alpha_F * (q + self.congestion * (log_rho + 1.0))


def _check_density(owner, name, rho, required):
    if rho is None:
        if required:
            raise GenerativeError(f"{owner}: {name} density is required")
        return
    if not (hasattr(rho, "log_prob") and hasattr(rho, "dim")):
        raise GenerativeError(
            f"{owner}: {name} must be a density with log_prob and dim (e.g. datasets.GaussianMixture), got {type(rho).__name__}"
        )


def _check_common(owner, p):
    _check_density(owner, "target", p.target, True)
    _check_density(owner, "source", p.source, False)
    for name in ("alpha_G", "alpha_R", "alpha_RT"):
        _number(owner, name, getattr(p, name))
    _number(owner, "alpha_L", p.alpha_L, positive=True)
    _number(owner, "T", p.T, positive=True)
    if isinstance(p.n_steps, bool) or not isinstance(p.n_steps, (int, np.integer)) or p.n_steps < 1:
        raise GenerativeError(f"{owner}: n_steps must be an int >= 1, got {p.n_steps!r}")
    if not isinstance(p.solver, diffrax.AbstractSolver):
        raise GenerativeError(f"{owner}: solver must be a Diffrax solver, got {type(p.solver).__name__}")
    if p.trace not in ("exact", "hutchinson"):
        raise GenerativeError(f"{owner}: trace must be 'exact' or 'hutchinson', got {p.trace!r}")
    if p.alpha_RT > 0 and p.source is None:
        raise GenerativeError(
            f"{owner}: the terminal HJB residual (alpha_RT > 0) needs log ρ_T, hence the source density: "
            "pass source=... or set alpha_RT=0"
        )
    if p.source is not None and p.source.dim != p.target.dim:
        raise GenerativeError(f"{owner}: source has dimension {p.source.dim} but target has dimension {p.target.dim}")


def _check_dim(owner, p, dim):
    if p.target.dim != dim:
        raise GenerativeError(f"{owner}: the data have dimension {dim} but the target density has dimension {p.target.dim}")


def _settings(name, p, **extra):
    return {
        "problem": name, "target": _fingerprint(p.target), "source": None if p.source is None else _fingerprint(p.source),
        "alpha_L": float(p.alpha_L), "alpha_G": float(p.alpha_G), "alpha_R": float(p.alpha_R),
        "alpha_RT": float(p.alpha_RT), "T": float(p.T), "n_steps": int(p.n_steps),
        "solver": type(p.solver).__name__, "trace": p.trace, **extra,
    }


def _flow(p, potential, x, n_steps, probe, running):
    n = p.n_steps if n_steps is None else n_steps
    lp0 = None if p.source is None else p.source.log_prob(x).astype(x.dtype)
    c = _integrate(
        potential, x, probe, float(p.alpha_L), 0.0, float(p.T), int(n), p.solver, None, None, False, int(n),
        running=running, logp0=lp0,
    )
    return c, lp0


def _parts(p, potential, x, n_steps, probe, running):
    c, lp0 = _flow(p, potential, x, n_steps, probe, running)
    G = (0.0 if lp0 is None else lp0) - c.logdet - p.target.log_prob(c.x).astype(c.x.dtype)
    out = {"L": c.kinetic, "G": G, "R": c.hjb}
    if running is not None:
        out["F"] = c.running
    if p.source is not None:
        phi_T = jax.vmap(lambda y: potential(y, jnp.asarray(p.T, y.dtype)))(c.x)
        out["RT"] = jnp.abs(phi_T - p.alpha_G * (G + 1.0))
    return out


def _loss(p, means, alpha_F=0.0):
    total = p.alpha_L * means["L"] + p.alpha_G * means["G"] + p.alpha_R * means["R"]
    if "F" in means:
        total = total + alpha_F * means["F"]
    if "RT" in means:
        total = total + p.alpha_RT * means["RT"]
    return total


class DynamicOT(AbstractProblem):
    r"""Dynamic optimal transport from ρ₀ (the data) to the ``target`` density ρ₁ on [0, T] with a
    KL terminal cost (module docstring; no running cost F): minimises
    α_L E[L] + α_G E[G] + α_R E[R] + α_RT E[RT]. As α_G grows, α_L E[L] → α_L W₂²(ρ₀, ρ₁)/(2T)
    and x ↦ x(T) → the optimal (Brenier) map.

    MFGnet's settings (§6.1; source 8 Gaussians, target N(0, 0.3I)): (α_L, α_G, α_R, α_RT) =
    (2, 5, 3, 3) (its α₂ weighs a running cost this problem has not), 2 RK4 steps: the defaults.
    ``source`` (optional unless alpha_RT > 0) is ρ₀'s density."""

    target: eqx.Module
    source: eqx.Module | None = None
    alpha_L: float = eqx.field(static=True, default=2.0)
    alpha_G: float = eqx.field(static=True, default=5.0)
    alpha_R: float = eqx.field(static=True, default=3.0)
    alpha_RT: float = eqx.field(static=True, default=3.0)
    T: float = eqx.field(static=True, default=1.0)
    n_steps: int = eqx.field(static=True, default=2)
    solver: diffrax.AbstractSolver = RK4()
    trace: str = eqx.field(static=True, default="exact")

    def __check_init__(self):
        _check_common("DynamicOT", self)

    def settings(self) -> dict:
        return _settings("DynamicOT", self)

    def check_data(self, dim: int) -> None:
        _check_dim("DynamicOT", self, dim)

    def flow(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None) -> Characteristics:
        """The characteristics from t = 0 to T (α = α_L)."""
        return _flow(self, potential, x, n_steps, probe, None)[0]

    def parts(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None) -> dict:
        """Per-sample {"L", "G", "R"} and, with a source density, "RT" (module docstring)."""
        return _parts(self, potential, x, n_steps, probe, None)

    def loss(self, means: dict):
        """α_L L + α_G G + α_R R (+ α_RT RT) of the terms' means."""
        return _loss(self, means)


class CrowdMotion(AbstractProblem):
    r"""Crowd motion from ρ₀ (the data) towards the ``target`` density ρ₁ around an ``obstacle`` Q,
    with congestion (entropy) weight ``congestion`` = c and a KL terminal cost (module docstring):
    minimises α_L E[L] + α_F E[F] + α_G E[G] + α_R E[R] + α_RT E[RT], F = ∫Q(x) + c log ρ dt.

    MFGnet's settings (§6.1; ρ₀ = N((0, 3, 0, …), 0.3I), ρ₁ = N((0, −3, 0, …), 0.3I), obstacle
    of height 50 and widths (1, 0.5)): (α_L, α_F, α_G, α_R, α_RT) = (1, 1, 5, 20, 1), c = 0.01,
    4 RK4 steps: the defaults. ``source`` (ρ₀'s density) is required when alpha_RT > 0 or c > 0."""

    target: eqx.Module
    source: eqx.Module | None = None
    obstacle: Obstacle = Obstacle()
    congestion: float = eqx.field(static=True, default=0.01)
    alpha_L: float = eqx.field(static=True, default=1.0)
    alpha_F: float = eqx.field(static=True, default=1.0)
    alpha_G: float = eqx.field(static=True, default=5.0)
    alpha_R: float = eqx.field(static=True, default=20.0)
    alpha_RT: float = eqx.field(static=True, default=1.0)
    T: float = eqx.field(static=True, default=1.0)
    n_steps: int = eqx.field(static=True, default=4)
    solver: diffrax.AbstractSolver = RK4()
    trace: str = eqx.field(static=True, default="exact")

    def __check_init__(self):
        _check_common("CrowdMotion", self)
        _number("CrowdMotion", "alpha_F", self.alpha_F)
        _number("CrowdMotion", "congestion", self.congestion)
        if not isinstance(self.obstacle, Obstacle):
            raise GenerativeError(f"CrowdMotion: obstacle must be an Obstacle, got {type(self.obstacle).__name__}")
        if self.congestion > 0 and self.source is None:
            raise GenerativeError(
                "CrowdMotion: the congestion term c·log ρ needs the source density (log ρ = log ρ₀ − ℓ): "
                "pass source=... or set congestion=0"
            )
        if len(self.obstacle.widths) > self.target.dim:
            raise GenerativeError(
                f"CrowdMotion: the obstacle acts on {len(self.obstacle.widths)} coordinates but the target has dimension {self.target.dim}"
            )

    @property
    def running(self) -> _CrowdRunning:
        return _CrowdRunning(self.obstacle, float(self.congestion), float(self.alpha_F))

    def settings(self) -> dict:
        ob = self.obstacle
        return _settings(
            "CrowdMotion", self, alpha_F=float(self.alpha_F), congestion=float(self.congestion),
            obstacle={"height": float(ob.height), "center": list(ob.center), "widths": list(ob.widths)},
        )

    def check_data(self, dim: int) -> None:
        _check_dim("CrowdMotion", self, dim)

    def flow(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None) -> Characteristics:
        """The characteristics from t = 0 to T (α = α_L), with F = ∫f dt in ``running``."""
        return _flow(self, potential, x, n_steps, probe, self.running)[0]

    def parts(self, potential: Potential, x: Float[Array, "n d"], *, n_steps: int | None = None, probe=None) -> dict:
        """Per-sample {"L", "F", "G", "R"} and, with a source density, "RT" (module docstring)."""
        return _parts(self, potential, x, n_steps, probe, self.running)

    def loss(self, means: dict):
        """α_L L + α_F F + α_G G + α_R R (+ α_RT RT) of the terms' means."""
        return _loss(self, means, self.alpha_F)


__all__ = ["CrowdMotion", "DynamicOT", "Obstacle"]
