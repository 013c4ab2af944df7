r"""Score models, denoising score matching and the HJB residual (science note generative_lab.md §3).

For a forward SDE dX = a(t)X dt + g(t) dW (`_sde.py`, f = a x, ∇·f = d a) the log-density
ℓ = log p_t solves the viscous HJB equation

    ∂ₜℓ = −d a − a x·∇ℓ + (g²/2)(Δℓ + |∇ℓ|²),

and the score s = ∇ℓ its gradient, ∂ₜs = −a ∇(x·s) + (g²/2) ∇(∇·s + |s|²). Two model forms:

- `PotentialScore`: ℓ_θ(x, t) = −Φ(x, t) with Φ the OT-Flow `Potential` (closed-form gradient and
  exact Laplacian), s_θ = ∇ℓ_θ. Residual (scalar)
  R = ∂ₜℓ_θ + d a + a x·∇ℓ_θ − (g²/2)(Δℓ_θ + |∇ℓ_θ|²).
- `ScoreNet`: a direct score s_θ(x, t) (an MLP with SiLU, smooth enough for third derivatives).
  Residual (a vector) R = ∂ₜs_θ + ∇ₓ[a x·s_θ − (g²/2)(∇·s_θ + |s_θ|²)].

The Laplacian / divergence is exact (closed form, or the trace of the Jacobian for `ScoreNet`),
or a Hutchinson estimate εᵀ∇s ε given a probe ε (unbiased for R of the potential form, and for R of
the direct form, whose divergence enters linearly).

`SGM` is the training problem: DSM with weighting λ(t),

    L_DSM = E_{t~U(ε,T), x₀, z} λ(t) |s_θ(x_t, t) + z/σ_t|²,   x_t = m_t x₀ + σ_t z,

λ = σ_t² ("sigma2", score_sde's default), g(t)² ("likelihood") or 1 ("none"), plus
λ_HJB E[w(t)|R_θ(x_t, t)|²] at the same forward samples (w = 1 or σ_t²).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from ._errors import GenerativeError
from ._potential import Potential
from ._sde import AbstractSDE, check_sde


class AbstractScoreModel(eqx.Module):
    """A score model; methods act on one sample x [d] and a scalar t (vmap them)."""

    @property
    @abc.abstractmethod
    def dim(self) -> int: ...

    @abc.abstractmethod
    def score(self, x: Float[Array, " d"], t: Scalar) -> Float[Array, " d"]:
        """s_θ(x, t) ≈ ∇ log p_t(x)."""

    @abc.abstractmethod
    def divergence(self, x: Float[Array, " d"], t: Scalar, probe=None) -> Scalar:
        """∇·s_θ (exact), or εᵀ∇s_θ ε for a probe ε."""

    @abc.abstractmethod
    def hjb_residual(self, sde: AbstractSDE, x: Float[Array, " d"], t: Scalar, probe=None) -> Array:
        """The residual of the log-density (potential form) or score (direct form) equation."""

    @abc.abstractmethod
    def settings(self) -> dict: ...


class PotentialScore(AbstractScoreModel):
    r"""ℓ_θ = −Φ_θ (OT-Flow `Potential`), s_θ = ∇ℓ_θ, with closed-form ∂ₜℓ, ∇ℓ and exact Δℓ.

    ``PotentialScore(dim, width=32, depth=2, rank=None, *, key, dtype=None)`` or
    ``PotentialScore(potential=Potential(...))``."""

    potential: Potential

    def __init__(self, dim: int | None = None, width: int = 32, depth: int = 2, rank: int | None = None, *, key=None, dtype=None, potential: Potential | None = None):
        if potential is None:
            if dim is None or key is None:
                raise GenerativeError("PotentialScore: give dim and key, or potential=")
            potential = Potential(dim, width, depth, rank, key=key, dtype=dtype)
        elif not isinstance(potential, Potential):
            raise GenerativeError(f"PotentialScore: potential must be a mfgx.generative.Potential, got {type(potential).__name__}")
        self.potential = potential

    @property
    def dim(self) -> int:
        return self.potential.dim

    def log_density(self, x, t) -> Scalar:
        """ℓ_θ(x, t) = −Φ(x, t) (up to a constant in x, which the score does not fix)."""
        return -self.potential(x, t)

    def score(self, x, t):
        return -self.potential.gradient(x, t)[: self.dim]

    def _derivatives(self, x, t, probe):
        """(∇ₓℓ, ∂ₜℓ, Δℓ or its Hutchinson estimate)."""
        if probe is None:
            grad, lap = self.potential.gradient_and_laplacian(x, t)
        else:
            grad, lap = self.potential.hutchinson_laplacian(x, t, probe)
        return -grad[: self.dim], -grad[self.dim], -lap

    def divergence(self, x, t, probe=None):
        return self._derivatives(x, t, probe)[2]

    def hjb_residual(self, sde, x, t, probe=None):
        s, dt, lap = self._derivatives(x, t, probe)
        a, g2 = sde.drift_coef(t), sde.g2(t)
        return dt + self.dim * a + a * (x @ s) - 0.5 * g2 * (lap + s @ s)

    def settings(self):
        P = self.potential
        return {"model": "PotentialScore", "dim": P.dim, "width": P.width, "depth": P.depth, "rank": P.rank}


class ScoreNet(AbstractScoreModel):
    r"""A direct score network s_θ(x, t) = MLP([x, t, sin(πkt), cos(πkt)]_{k=1..4}) ∈ ℝᵈ with SiLU.

    ``ScoreNet(dim, width=64, depth=3, *, key, dtype=None)``."""

    mlp: eqx.nn.MLP
    dim_: int = eqx.field(static=True)

    def __init__(self, dim: int, width: int = 64, depth: int = 3, *, key: PRNGKeyArray, dtype=None):
        for name, v, lo in (("dim", dim, 1), ("width", width, 1), ("depth", depth, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise GenerativeError(f"ScoreNet: {name} must be an int >= {lo}, got {v!r}")
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64 if dtype is None else dtype)
        self.mlp = eqx.nn.MLP(int(dim) + 9, int(dim), int(width), int(depth), activation=jax.nn.silu, key=key, dtype=dtype)
        self.dim_ = int(dim)

    @property
    def dim(self) -> int:
        return self.dim_

    def score(self, x, t):
        x = jnp.asarray(x)
        if x.shape != (self.dim,):
            raise GenerativeError(f"ScoreNet: x must have shape ({self.dim},) (one sample; vmap over samples), got {x.shape}")
        t = jnp.asarray(t, x.dtype)
        k = jnp.arange(1, 5, dtype=x.dtype) * math.pi
        return self.mlp(jnp.concatenate([x, t[None], jnp.sin(k * t), jnp.cos(k * t)]))

    def divergence(self, x, t, probe=None):
        return _divergence(self.score, x, t, probe)

    def hjb_residual(self, sde, x, t, probe=None):
        return _score_residual(sde, self.score, x, t, probe)

    def settings(self):
        return {"model": "ScoreNet", "dim": self.dim, "width": self.mlp.width_size, "depth": self.mlp.depth}


def _divergence(score, x, t, probe):
    """∇·score(·, t) at x by the Jacobian trace, or εᵀ∇score ε by one forward-mode product."""
    if probe is None:
        return jnp.trace(jax.jacfwd(lambda y: score(y, t))(x))
    return probe @ jax.jvp(lambda y: score(y, t), (x,), (probe,))[1]


def _log_density_residual(sde, log_p, score, x, t, probe):
    """R = ∂ₜℓ + d a + a x·∇ℓ − (g²/2)(Δℓ + |∇ℓ|²) with autodiff ∂ₜℓ."""
    a, g2 = sde.drift_coef(t), sde.g2(t)
    s = score(x, t)
    dt = jax.grad(log_p, argnums=1)(x, t)
    return dt + x.shape[0] * a + a * (x @ s) - 0.5 * g2 * (_divergence(score, x, t, probe) + s @ s)


def _score_residual(sde, score, x, t, probe):
    """R = ∂ₜs + ∇ₓ[a x·s − (g²/2)(∇·s + |s|²)] by autodiff."""
    a, g2 = sde.drift_coef(t), sde.g2(t)

    def phi(y):
        s = score(y, t)
        return a * (y @ s) - 0.5 * g2 * (_divergence(score, y, t, probe) + s @ s)

    ds_dt = jax.jvp(lambda tt: score(x, tt), (t,), (jnp.ones_like(t),))[1]
    return ds_dt + jax.grad(phi)(x)


class ExactScore(AbstractScoreModel):
    r"""A score given by callables ``score_fn(x, t)`` (and optionally ``log_p(x, t)``, which makes
    `hjb_residual` the scalar log-density residual instead of the score residual); derivatives by
    autodiff. For checks and references."""

    score_fn: Callable
    log_p: Callable | None = None
    dim_: int = eqx.field(static=True, default=1)

    @property
    def dim(self):
        return self.dim_

    def score(self, x, t):
        return self.score_fn(x, t)

    def divergence(self, x, t, probe=None):
        return _divergence(self.score, x, t, probe)

    def hjb_residual(self, sde, x, t, probe=None):
        if self.log_p is not None:
            return _log_density_residual(sde, self.log_p, self.score, x, t, probe)
        return _score_residual(sde, self.score, x, t, probe)

    def settings(self):
        return {"model": "ExactScore"}


class GaussianScore(AbstractScoreModel):
    r"""The exact score of p_t when the data are N(μ, Σ): p_t = N(m_t μ, m_t²Σ + σ_t² I), so
    ℓ = log p_t and s = −C_t⁻¹(x − m_t μ); ``scale`` ≠ 1 multiplies both (a wrong density whose
    residual is not zero). ``form`` "potential" makes `hjb_residual` the log-density residual,
    "direct" the score residual. Its arrays are leaves: one compilation serves every (μ, Σ)."""

    sde: AbstractSDE
    mean: Float[Array, " d"]
    cov: Float[Array, "d d"]
    scale: Float[Array, ""]
    form: str = eqx.field(static=True)

    def __init__(self, sde: AbstractSDE, mean, cov, scale: float = 1.0, form: str = "potential"):
        check_sde("GaussianScore", sde)
        self.sde = sde
        self.mean = jnp.asarray(mean, float)
        self.cov = jnp.asarray(cov, float)
        d = self.mean.shape[0]
        if self.mean.ndim != 1 or self.cov.shape != (d, d):
            raise GenerativeError(f"GaussianScore: mean must be [d] and cov [d, d], got {self.mean.shape} and {self.cov.shape}")
        if form not in ("potential", "direct"):
            raise GenerativeError(f"GaussianScore: form must be 'potential' or 'direct', got {form!r}")
        self.scale = jnp.asarray(scale, float)
        self.form = form

    @property
    def dim(self):
        return self.mean.shape[0]

    def _moments(self, t):
        m, s = self.sde.marginal(t)
        return m * self.mean, m**2 * self.cov + s**2 * jnp.eye(self.dim, dtype=self.cov.dtype)

    def score(self, x, t):
        mu, C = self._moments(t)
        return -self.scale * jnp.linalg.solve(C, x - mu)

    def log_density(self, x, t):
        """scale × log p_t(x)."""
        mu, C = self._moments(t)
        r = x - mu
        logdet = jnp.linalg.slogdet(C)[1]
        return self.scale * (-0.5 * r @ jnp.linalg.solve(C, r) - 0.5 * logdet - 0.5 * self.dim * math.log(2 * math.pi))

    def divergence(self, x, t, probe=None):
        return _divergence(self.score, x, t, probe)

    def hjb_residual(self, sde, x, t, probe=None):
        if self.form == "potential":
            return _log_density_residual(sde, self.log_density, self.score, x, t, probe)
        return _score_residual(sde, self.score, x, t, probe)

    def settings(self):
        return {"model": "GaussianScore"}


_WEIGHTINGS = ("sigma2", "likelihood", "none")
_SCHEDULES = ("constant", "linear", "cosine")


def _weight(kind, sde, t):
    if kind == "sigma2":
        return sde.marginal(t)[1] ** 2
    if kind == "likelihood":
        return sde.g2(t)
    return jnp.ones_like(t)


class SGM(eqx.Module):
    r"""Score-based generative model as an MFG: DSM with weighting ``weighting`` (λ(t) = σ_t²
    "sigma2", g² "likelihood" or 1 "none") on t ~ U(``eps``, 1), plus ``lambda_hjb`` ×
    E[w(t)|R_θ|²] (w by ``hjb_weighting``: "none" or "sigma2") at the same forward samples, with
    the ``divergence`` "exact" or "hutchinson" (one Rademacher probe per sample).

    ``hjb_schedule`` ramps the weight over the first ``hjb_warmup`` = W training steps (`hjb_weight`;
    s the number of steps done): "constant" λ, "linear" λ·min(1, s/W), "cosine"
    λ·½(1 − cos(π·min(1, s/W))). Evaluation (`loss` without a step) uses the full λ."""

    sde: AbstractSDE
    weighting: str = eqx.field(static=True, default="sigma2")
    lambda_hjb: float = eqx.field(static=True, default=0.0)
    hjb_weighting: str = eqx.field(static=True, default="none")
    divergence: str = eqx.field(static=True, default="exact")
    eps: float = eqx.field(static=True, default=1e-5)
    hjb_schedule: str = eqx.field(static=True, default="constant")
    hjb_warmup: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        check_sde("SGM", self.sde)
        if self.hjb_schedule not in _SCHEDULES:
            raise GenerativeError(f"SGM: hjb_schedule must be one of {_SCHEDULES}, got {self.hjb_schedule!r}")
        w = self.hjb_warmup
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0:
            raise GenerativeError(f"SGM: hjb_warmup must be an int >= 0 (steps), got {w!r}")
        if self.hjb_schedule != "constant" and w < 1:
            raise GenerativeError(f"SGM: hjb_schedule={self.hjb_schedule!r} needs hjb_warmup >= 1 (steps of the ramp), got {w!r}")
        if self.weighting not in _WEIGHTINGS:
            raise GenerativeError(f"SGM: weighting must be one of {_WEIGHTINGS}, got {self.weighting!r}")
        if self.hjb_weighting not in ("none", "sigma2"):
            raise GenerativeError(f"SGM: hjb_weighting must be 'none' or 'sigma2', got {self.hjb_weighting!r}")
        if self.divergence not in ("exact", "hutchinson"):
            raise GenerativeError(f"SGM: divergence must be 'exact' or 'hutchinson', got {self.divergence!r}")
        lam = self.lambda_hjb
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
            raise GenerativeError(f"SGM: lambda_hjb must be a finite number >= 0, got {lam!r}")
        e = self.eps
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not (0 < e < 1):
            raise GenerativeError(f"SGM: eps must be a number in (0, 1), got {e!r}")

    def settings(self) -> dict:
        return {
            "problem": "SGM", **self.sde.settings(), "weighting": self.weighting, "lambda_hjb": float(self.lambda_hjb),
            "hjb_weighting": self.hjb_weighting, "divergence": self.divergence, "eps": float(self.eps),
            **({} if self.hjb_schedule == "constant" else {"hjb_schedule": self.hjb_schedule, "hjb_warmup": int(self.hjb_warmup)}),
        }

    def hjb_weight(self, step=None):
        """The HJB weight after ``step`` training steps (module docstring); λ_HJB when None."""
        lam = float(self.lambda_hjb)
        if step is None or self.hjb_schedule == "constant":
            return lam
        r = jnp.minimum(1.0, jnp.asarray(step) / float(self.hjb_warmup))
        if self.hjb_schedule == "linear":
            return lam * r
        return lam * 0.5 * (1.0 - jnp.cos(jnp.pi * r))

    def parts(self, model: AbstractScoreModel, x0: Float[Array, "n d"], key: PRNGKeyArray, *, divergence: str | None = None) -> dict:
        """Per-sample terms {"dsm": [n], "hjb": [n]} at fresh forward samples drawn from ``key``
        ("hjb" is computed only when λ_HJB > 0 or ``divergence`` is given)."""
        n, d = x0.shape
        kt, kz, kp = jr.split(key, 3)
        t = jr.uniform(kt, (n,), x0.dtype, self.eps, self.sde.T)
        z = jr.normal(kz, (n, d), x0.dtype)
        xt = self.sde.perturb(x0, t[:, None], z)
        sigma = self.sde.marginal(t)[1]
        s = jax.vmap(model.score)(xt, t)
        out = {"dsm": _weight(self.weighting, self.sde, t) * jnp.sum((s + z / sigma[:, None]) ** 2, -1)}
        div = divergence if divergence is not None else (self.divergence if self.lambda_hjb > 0 else None)
        if div is not None:
            if div == "hutchinson":
                probe = jr.rademacher(kp, (n, d), x0.dtype)
                R = jax.vmap(lambda x, tt, e: model.hjb_residual(self.sde, x, tt, e))(xt, t, probe)
            else:
                R = jax.vmap(lambda x, tt: model.hjb_residual(self.sde, x, tt))(xt, t)
            R2 = R**2 if R.ndim == 1 else jnp.sum(R**2, -1)
            out["hjb"] = _weight(self.hjb_weighting, self.sde, t) * R2
        return out

    def loss(self, means: dict, step=None):
        """E[DSM] + λ E[w R²], λ = `hjb_weight`(``step``) (λ_HJB without a step)."""
        return means["dsm"] + (self.hjb_weight(step) * means["hjb"] if self.lambda_hjb > 0 else 0.0)


def hjb_residual(model: AbstractScoreModel, sde: AbstractSDE, x: Float[Array, "n d"], t: Float[Array, " n"], probes=None) -> Array:
    """R_θ at samples x [n, d] and times t [n] (exact divergence unless ``probes`` [n, d])."""
    check_sde("hjb_residual", sde)
    return _hjb_residual(model, sde, jnp.asarray(x), jnp.asarray(t), probes)


@eqx.filter_jit
def _hjb_residual(model, sde, x, t, probes):
    if probes is None:
        return jax.vmap(lambda y, tt: model.hjb_residual(sde, y, tt))(x, t)
    return jax.vmap(lambda y, tt, e: model.hjb_residual(sde, y, tt, e))(x, t, probes)
