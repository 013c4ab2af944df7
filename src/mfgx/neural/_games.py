r"""The neural-MFG paper's games as particle models, with their data generators (Thöni,
Bachrach & Kachman, arXiv 2504.13228; the project's science note neural_mfg.md §3), and an SIR epidemic
neural MFG for compartmental data.

The paper's "MFG drift" is a myopic best response: each agent descends its own instantaneous
cost with the population statistic held fixed (`CostGradient`). It is a forward gradient flow,
not a Nash equilibrium; an equilibrium feedback (e.g. LQ Riccati) enters through `Feedback`.
Data generators draw on the host with NumPy from an explicit ``seed`` (they make data, outside
compiled code); simulation randomness is always threaded through JAX keys.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array

from .._transforms import inverse_softplus
from ._errors import NeuralError
from ._model import AbstractCorrection, AbstractDiffusion, AbstractDrift, ConstantDiffusion, CostGradient, ParticleSDE
from ._statistics import Quantile


def _pos(name, v, allow_zero=False):
    v = float(v)
    if not (math.isfinite(v) and (v >= 0 if allow_zero else v > 0)):
        raise NeuralError(f"{name} must be {'non-negative' if allow_zero else 'positive'} and finite, got {v}")
    return v


def _hierarchical(rng, n_datasets, mu, sigma, shape, scale, n_groups, group_size):
    r"""x_{g,m} ~ N(μ_g, σ_g²), μ_g ~ N(μ, σ²), σ_g² ~ Gamma(shape, scale): [B, G·M]."""
    mg = rng.normal(mu, sigma, size=(n_datasets, n_groups, 1))
    vg = rng.gamma(shape, scale, size=(n_datasets, n_groups, 1))
    x = rng.normal(mg, np.sqrt(vg), size=(n_datasets, n_groups, group_size))
    return x.reshape(n_datasets, n_groups * group_size)


# ---------------------------------------------------------------------------------------------
# meeting arrival times (Guéant, Lasry & Lions)


class MeetingCost(eqx.Module):
    r"""c(τ; t_s, T) = a (τ − t_s)₊ + b (τ − T)₊ + c (T − τ)₊: lateness against the schedule t_s,
    lateness against the actual start T (the statistic s[0], a quantile of the arrivals) and
    waiting time."""

    scheduled: float = eqx.field(static=True)
    a: float = eqx.field(static=True, default=1.0)
    b: float = eqx.field(static=True, default=1.0)
    c: float = eqx.field(static=True, default=1.0)

    def __call__(self, t, x, s):
        tau, start = x[0], s[0]
        return self.a * jax.nn.relu(tau - self.scheduled) + self.b * jax.nn.relu(tau - start) + self.c * jax.nn.relu(start - tau)


def meeting(
    *,
    scheduled: float = 15.0,
    quorum: float = 0.8,
    a: float = 1.0,
    b: float = 1.0,
    c: float = 1.0,
    nu: float = 1.0,
    common_noise: float = 0.0,
    correction: AbstractCorrection | None = None,
) -> ParticleSDE:
    r"""The meeting game (Guéant, Lasry & Lions 2011, p. 9) as the paper's neural SDE: agent i's
    planned arrival τᵢ follows

        dτᵢ = −∂c(τᵢ; t_s, T)/∂τᵢ dt + f_φ dt + √(2ν) dWᵢ,    T = the ``quorum`` quantile of the τ's,

    i.e. −[a·1{τ > t_s} + b·1{τ > T} − c·1{τ < T}] (the meeting starts when a fraction θ =
    ``quorum`` has arrived). ``common_noise`` ρ: the paper's code used one common Brownian
    motion (ρ = 1); the default is idiosyncratic noise (ρ = 0). ``nu = 0``: no noise.
    """
    if not math.isfinite(float(scheduled)):
        raise NeuralError(f"scheduled must be finite, got {scheduled}")
    cost = MeetingCost(float(scheduled), _pos("a", a, True), _pos("b", b, True), _pos("c", c, True))
    if not 0 <= quorum <= 1:
        raise NeuralError(f"quorum θ must be in [0, 1], got {quorum}")
    nu = _pos("nu", nu, allow_zero=True)
    diffusion = ConstantDiffusion(math.sqrt(2 * nu)) if nu > 0 else None
    return ParticleSDE(CostGradient(cost, Quantile(quorum)), correction, diffusion, common_noise=float(common_noise))


def meeting_data(
    seed: int,
    n_datasets: int,
    *,
    mu: float = 15.0,
    sigma: float = 0.5,
    shape: float = 2.0,
    scale: float = 0.2,
    n_groups: int = 6,
    group_size: int = 7,
) -> np.ndarray:
    r"""Observed arrival times, [B, G·M, 1]: per dataset, group means μ_g ~ N(μ, σ²) and variances
    σ_g² ~ Gamma(k = ``shape``, θ = ``scale``), arrivals x_{g,m} ~ N(μ_g, σ_g²) (the paper's
    hierarchical generator: 6 groups × 7 agents). The arrivals have mean μ and variance
    σ² + kθ (= 0.65 by default)."""
    rng = np.random.default_rng(seed)
    return _hierarchical(rng, n_datasets, mu, sigma, shape, scale, n_groups, group_size)[..., None]


# ---------------------------------------------------------------------------------------------
# El Farol bar


class ElFarolDrift(AbstractDrift):
    r"""El Farol's myopic drift on the probabilities pᵢ of going to the bar. Each step draws the
    attendances Aᵢ ~ Bernoulli(clip(pᵢ, 0, 1)) (from the step's key) and the attendance fraction
    a = mean Aᵢ; agent i then follows −∂ℓᵢ/∂pᵢ with, for w = ``weight`` and τ = ``threshold``,

        ℓᵢ = w (pᵢ − τ)₊ 1{a > τ} Aᵢ + w (τ − pᵢ)₊ 1{a ≤ τ} (1 − Aᵢ) + w (pᵢ − a)²

    (crowded bar and went; missed a good evening; peer pressure), a held fixed."""

    stochastic = True
    threshold: float = eqx.field(static=True, default=0.9)
    weight: float = eqx.field(static=True, default=0.33)

    def __call__(self, t, x, key, c=None):
        if key is None:
            raise NeuralError("ElFarolDrift draws attendances: it needs a key")
        p = x[:, 0]
        go = jr.bernoulli(key, jnp.clip(p, 0.0, 1.0)).astype(x.dtype)
        att = jnp.mean(go)
        w, tau = self.weight, self.threshold
        crowded = (p > tau) * (att > tau) * go
        missed = (p < tau) * (att <= tau) * (1.0 - go)
        grad = w * crowded - w * missed + 2.0 * w * (p - att)
        return -grad[:, None]


def el_farol(*, threshold: float = 0.9, weight: float = 0.33, correction: AbstractCorrection | None = None) -> ParticleSDE:
    r"""The El Farol bar as the paper's neural ODE with random attendance: dpᵢ = [−∂ℓᵢ/∂pᵢ + f_φ] dt
    (`ElFarolDrift`; no diffusion), the saved probabilities clipped to [0, 1]."""
    if not 0 < threshold < 1:
        raise NeuralError(f"threshold must be in (0, 1), got {threshold}")
    return ParticleSDE(ElFarolDrift(float(threshold), _pos("weight", weight)), correction, None, clip=(0.0, 1.0))


class ElFarolData(NamedTuple):
    """`el_farol_data`'s draws: observed ``rates`` [B], hidden ``intentions`` [B, n] and nightly ``counts`` [B, n_draws]."""

    rates: np.ndarray
    intentions: np.ndarray
    counts: np.ndarray


def el_farol_data(
    seed: int,
    n_datasets: int,
    *,
    mu: float = 0.2,
    sigma: float = 0.01,
    shape: float = 2.0,
    scale: float = 0.01,
    n_groups: int = 6,
    group_size: int = 7,
    n_draws: int = 10,
) -> ElFarolData:
    r"""`ElFarolData` (rates [B], intentions [B, G·M], counts [B, n_draws]): per dataset,
    intentions pᵢ from the hierarchical generator (`meeting_data`'s, with μ = 0.2, σ = 0.01,
    Gamma(2, 0.01)) clipped to [0, 1]; ``n_draws`` nights of Bernoulli(pᵢ) attendance of all
    agents give counts, and the observation is the mean attendance rate mean(count)/(G·M). Only
    the rates are observed (the paper's target); the intentions are the hidden truth."""
    rng = np.random.default_rng(seed)
    p = np.clip(_hierarchical(rng, n_datasets, mu, sigma, shape, scale, n_groups, group_size), 0.0, 1.0)
    counts = (rng.random((n_draws,) + p.shape) < p).sum(axis=-1).T  # [B, draws]
    return ElFarolData(counts.mean(axis=1) / p.shape[1], p, counts)


# ---------------------------------------------------------------------------------------------
# SIR epidemic neural MFG


class SIRDrift(AbstractDrift):
    r"""The SIR mean-field drift on population shares x = (S, I, R) ∈ Δ₃ with myopic contact
    choice: a susceptible agent picks its contact factor a ∈ [0, 1] against the cost rate
    (c_α/2)(1 − a)² + a β I · c_I/γ (contact effort vs the expected cost of an infection), so

        a* = clip(1 − κ β I, 0, 1),  κ = c_I/(γ c_α) (``awareness``),
        dS = −β a* S I dt,  dI = (β a* S I − γ I) dt,  dR = γ I dt

    (the rates of `mfgx.games.sir`; κ = 0: the plain SIR ODE). β, γ, κ are trainable (stored
    as log β, log γ and softplus⁻¹ κ)."""

    log_beta: Array
    log_gamma: Array
    raw_awareness: Array

    def __init__(self, beta: float, gamma: float, awareness: float = 0.0):
        self.log_beta = jnp.log(jnp.asarray(_pos("beta", beta)))
        self.log_gamma = jnp.log(jnp.asarray(_pos("gamma", gamma)))
        aw = _pos("awareness", awareness, allow_zero=True)
        self.raw_awareness = inverse_softplus(aw) if aw > 0 else jnp.asarray(-30.0)

    @property
    def beta(self):
        return jnp.exp(self.log_beta)

    @property
    def gamma(self):
        return jnp.exp(self.log_gamma)

    @property
    def awareness(self):
        return jax.nn.softplus(self.raw_awareness)

    def contact(self, x):
        """The best-response contact factor a* of the susceptibles, per particle."""
        return jnp.clip(1.0 - self.awareness * self.beta * x[:, 1], 0.0, 1.0)

    def __call__(self, t, x, key=None, c=None):
        if x.shape[1] != 3:
            raise NeuralError(f"SIRDrift works on (S, I, R) shares, got states in ℝ^{x.shape[1]}")
        s, i = x[:, 0], x[:, 1]
        infect = self.beta * self.contact(x) * s * i
        recover = self.gamma * i
        return jnp.stack([-infect, infect - recover, recover], axis=1)


class SusceptibleShare(eqx.Module):
    r"""A learned initial state for SIR data that observe I only: X(t₀) = (s₀, I₀, 1 − s₀ − I₀),
    with I₀ taken from the given cloud and s₀ = sigmoid(z) trained."""

    logit_s0: Array

    def __init__(self, s0: float):
        if not 0 < s0 < 1:
            raise NeuralError(f"the initial susceptible share s0 must be in (0, 1), got {s0}")
        self.logit_s0 = jnp.log(jnp.asarray(s0 / (1 - s0)))

    @property
    def s0(self):
        return jax.nn.sigmoid(self.logit_s0)

    def __call__(self, x0):
        s = jnp.broadcast_to(self.s0.astype(x0.dtype), x0[:, 1].shape)
        i = x0[:, 1]
        return jnp.stack([s, i, 1.0 - s - i], axis=1)


def sir(
    beta: float,
    gamma: float,
    *,
    awareness: float = 0.0,
    s0: float | None = None,
    correction: AbstractCorrection | None = None,
    diffusion: AbstractDiffusion | None = None,
) -> ParticleSDE:
    r"""An epidemic neural MFG on (S, I, R) shares: `SIRDrift` (β, γ, myopic contact with awareness κ)
    plus a learned ``correction`` (e.g. `FluxCorrection(3, [(0, 1)], covariates=C)`: a learned
    modulation of transmission by covariates such as school terms) and ``diffusion`` (e.g.
    `FluxDiffusion(3, [(0, 1)], σ)`: environmental noise on transmission). Each particle is one
    replicate of the population state; the ensemble mean (`Mean`) is compared with observed
    shares. ``s0``: learn the initial susceptible share (`SusceptibleShare`)."""
    initial = None if s0 is None else SusceptibleShare(s0)
    return ParticleSDE(SIRDrift(beta, gamma, awareness), correction, diffusion, initial=initial)
