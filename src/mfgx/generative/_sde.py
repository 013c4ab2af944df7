r"""Forward (noising) SDEs of score-based generative models (science note generative_lab.md §3;
Song et al., "Score-based generative modeling through SDEs", ICLR 2021), all with a linear drift

    dX = a(t) X dt + g(t) dW,   t ∈ [0, T = 1],

so the transition kernel is Gaussian, p_{t|0}(x | x₀) = N(m(t) x₀, σ(t)² I), in closed form:

- `VP`:    β(t) = β_min + t(β_max − β_min), a = −β/2, g² = β;  B(t) = ∫₀ᵗβ = β_min t + ½t²(β_max − β_min),
           m = e^{−B/2}, σ² = 1 − e^{−B}; prior N(0, I).
- `SubVP`: a = −β/2, g² = β(1 − e^{−2B}); m = e^{−B/2}, σ² = (1 − e^{−B})²; prior N(0, I).
- `VE`:    σ_VE(t) = σ_min (σ_max/σ_min)ᵗ, a = 0, g² = dσ_VE²/dt = 2σ_VE² log(σ_max/σ_min);
           m = 1, σ² = σ_VE(t)² − σ_min² (exact from t = 0; score_sde uses σ_VE(t), i.e. data
           pre-blurred by σ_min); prior N(0, σ_max² I).

Defaults are score_sde's (β ∈ [0.1, 20], σ ∈ [0.01, 50]). Methods act on scalars t (vmap them).
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Scalar

from ._errors import GenerativeError


def _positive(owner, name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) or v <= 0:
        raise GenerativeError(f"{owner}: {name} must be a finite number > 0, got {v!r}")


class AbstractSDE(eqx.Module):
    """A linear-drift forward SDE dX = a(t) X dt + g(t) dW on [0, 1] with a Gaussian kernel."""

    T = 1.0

    @abc.abstractmethod
    def drift_coef(self, t: Scalar) -> Scalar:
        """a(t): the drift is f(x, t) = a(t) x."""

    @abc.abstractmethod
    def g2(self, t: Scalar) -> Scalar:
        """g(t)²."""

    @abc.abstractmethod
    def marginal(self, t: Scalar) -> tuple[Scalar, Scalar]:
        """(m(t), σ(t)): p_{t|0}(x | x₀) = N(m x₀, σ² I)."""

    @abc.abstractmethod
    def prior_std(self) -> float:
        """The standard deviation of the prior N(0, s² I) that approximates p_T."""

    @abc.abstractmethod
    def settings(self) -> dict:
        """JSON-able settings (for checkpoints)."""

    def drift(self, x: Float[Array, " d"], t: Scalar) -> Float[Array, " d"]:
        """f(x, t) = a(t) x."""
        return self.drift_coef(t) * x

    def diffusion(self, t: Scalar) -> Scalar:
        """g(t)."""
        return jnp.sqrt(self.g2(t))

    def prior_log_prob(self, x: Float[Array, " d"]) -> Scalar:
        """log N(x; 0, s² I), s = `prior_std`."""
        s = self.prior_std()
        d = x.shape[-1]
        return -0.5 * jnp.sum(x**2, -1) / s**2 - d * math.log(s) - 0.5 * d * math.log(2 * math.pi)

    def perturb(self, x0: Float[Array, "*b d"], t, z: Float[Array, "*b d"]) -> Float[Array, "*b d"]:
        """x_t = m(t) x₀ + σ(t) z (``t`` broadcast against the batch, e.g. shape [n, 1])."""
        m, s = self.marginal(t)
        return m * x0 + s * z


class VP(AbstractSDE):
    r"""Variance preserving: dX = −½β(t)X dt + √β(t) dW, β linear from ``beta_min`` to ``beta_max``."""

    beta_min: float = eqx.field(static=True, default=0.1)
    beta_max: float = eqx.field(static=True, default=20.0)

    def __check_init__(self):
        _positive("VP", "beta_min", self.beta_min)
        _positive("VP", "beta_max", self.beta_max)

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def B(self, t):
        """∫₀ᵗ β."""
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)

    def drift_coef(self, t):
        return -0.5 * self.beta(t)

    def g2(self, t):
        return self.beta(t)

    def marginal(self, t):
        B = self.B(t)
        return jnp.exp(-0.5 * B), jnp.sqrt(-jnp.expm1(-B))

    def prior_std(self):
        return 1.0

    def settings(self):
        return {"sde": "VP", "beta_min": float(self.beta_min), "beta_max": float(self.beta_max)}


class SubVP(VP):
    r"""Sub-VP: dX = −½β X dt + √(β(1 − e^{−2B})) dW; σ(t) = 1 − e^{−B(t)} ≤ the VP's."""

    def g2(self, t):
        return self.beta(t) * -jnp.expm1(-2.0 * self.B(t))

    def marginal(self, t):
        B = self.B(t)
        return jnp.exp(-0.5 * B), -jnp.expm1(-B)

    def settings(self):
        return {**super().settings(), "sde": "SubVP"}


class VE(AbstractSDE):
    r"""Variance exploding: dX = √(dσ²/dt) dW, σ(t) = ``sigma_min``(``sigma_max``/``sigma_min``)ᵗ."""

    sigma_min: float = eqx.field(static=True, default=0.01)
    sigma_max: float = eqx.field(static=True, default=50.0)

    def __check_init__(self):
        _positive("VE", "sigma_min", self.sigma_min)
        _positive("VE", "sigma_max", self.sigma_max)
        if self.sigma_max <= self.sigma_min:
            raise GenerativeError(f"VE: sigma_max must exceed sigma_min, got {self.sigma_max!r} <= {self.sigma_min!r}")

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift_coef(self, t):
        return jnp.zeros_like(jnp.asarray(t, float))

    def g2(self, t):
        return 2.0 * self.sigma(t) ** 2 * math.log(self.sigma_max / self.sigma_min)

    def marginal(self, t):
        # σ_VE(t)² − σ_min² = σ_min² (r^{2t} − 1), r = σ_max/σ_min, stably near t = 0.
        var = self.sigma_min**2 * jnp.expm1(2.0 * t * math.log(self.sigma_max / self.sigma_min))
        return jnp.ones_like(jnp.asarray(t, float)), jnp.sqrt(var)

    def prior_std(self):
        return float(self.sigma_max)

    def settings(self):
        return {"sde": "VE", "sigma_min": float(self.sigma_min), "sigma_max": float(self.sigma_max)}


def check_sde(owner: str, sde) -> None:
    if not isinstance(sde, AbstractSDE):
        raise GenerativeError(f"{owner}: sde must be a mfgx.generative SDE (VP, SubVP, VE), got {type(sde).__name__}")
