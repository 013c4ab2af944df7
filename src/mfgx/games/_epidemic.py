"""Continuous-time games of the calibration paper (Thöni et al., arXiv 2606.23155) with finite actions.

Parameters θ are scalars or paths over the time grid (one value per grid point n = 0..N).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ..finite import FiniteGame, rate_game


def at(path, t, dt):
    """θ at physical time t: the scalar itself, or entry n = round(t/Δt) of a path."""
    path = jnp.asarray(path)
    if path.ndim == 0:
        return path
    return path[jnp.clip(jnp.round(t / dt).astype(int), 0, path.shape[0] - 1)]


class _SIRRates(eqx.Module):
    alphas: Array
    dt: float

    def __call__(self, t, mu, theta):
        beta, gamma = at(theta["beta"], t, self.dt), at(theta["gamma"], t, self.dt)
        A = self.alphas.shape[0]
        q = jnp.zeros((3, A, 3), mu.dtype)
        q = q.at[0, :, 1].set(beta * self.alphas * mu[1])  # S → I at β α μ(I)
        return q.at[1, :, 2].set(gamma)  # I → R at γ; R absorbing


class _SIRCost(eqx.Module):
    alphas: Array
    c_alpha: float
    c_infected: float

    def __call__(self, t, mu, theta):
        f_s = 0.5 * self.c_alpha * (1 - self.alphas) ** 2
        zeros = jnp.zeros_like(self.alphas)
        return jnp.stack([f_s, zeros + self.c_infected, zeros])


def _zero_terminal(mu, theta):
    return jnp.zeros_like(mu)


def sir(
    beta=0.4,
    gamma=0.125,
    mu0=(0.9, 0.1, 0.0),
    T: float = 40.0,
    n_points: int = 100,
    n_alpha: int = 10,
    c_alpha: float = 1.0,
    c_infected: float = 0.1,
    scheme: str = "euler",
) -> FiniteGame:
    r"""SIR epidemic with contact-factor control (calibration paper §6.4; Aurell et al. 2022).

    States S = 0, I = 1, R = 2; the action is the contact factor α ∈ {0, 1/(K−1), …, 1}:

        S → I at rate β α μ(I),   I → R at rate γ,   R absorbing;
        f(S, α) = (c_α/2)(1 − α)²,  f(I) = c_I,  f(R) = 0,  g = 0   (costs, minimised).

    θ = {"beta": β, "gamma": γ}, scalars or paths of ``n_points`` values. Time grid t_n = nΔt,
    Δt = T/(N−1), N = ``n_points`` (the paper: T = 40, N = 100). The paper's best response is a
    grid argmin (piecewise constant in θ); use `mfgx.Softmax` for gradients through the control.
    """
    dt = T / (n_points - 1)
    alphas = jnp.linspace(0.0, 1.0, n_alpha)
    theta = {"beta": jnp.asarray(beta, float), "gamma": jnp.asarray(gamma, float)}
    return rate_game(
        jnp.asarray(mu0, float), _SIRRates(alphas, dt), _SIRCost(alphas, c_alpha, c_infected),
        _zero_terminal, n_points - 1, dt, theta, scheme=scheme,
    )


CYBER_BASE = (0.5, 0.4, 0.4, 0.3, 0.4, 0.3, 0.3, 0.4)


class _CyberRates(eqx.Module):
    dt: float
    switch_speed: float
    hacker: float

    def __call__(self, t, mu, theta):
        q_rec_d, q_rec_u, q_inf_d, q_inf_u, b_dd, b_du, b_uu, b_ud = (at(p, t, self.dt) for p in theta)
        DI, DS, UI, US = 0, 1, 2, 3
        q = jnp.zeros((4, 2, 4), mu.dtype)
        q = q.at[DI, :, DS].set(q_rec_d)
        q = q.at[UI, :, US].set(q_rec_u)
        q = q.at[DS, :, DI].set(self.hacker * q_inf_d + b_dd * mu[DI] + b_ud * mu[UI])
        q = q.at[US, :, UI].set(self.hacker * q_inf_u + b_uu * mu[UI] + b_du * mu[DI])
        switch = self.switch_speed  # action 1 switches protection level, action 0 keeps it
        for x, y in ((DI, UI), (DS, US), (UI, DI), (US, DS)):
            q = q.at[x, 1, y].set(switch)
        return q


class _CyberCost(eqx.Module):
    k_defended: float
    k_infected: float

    def __call__(self, t, mu, theta):
        f = jnp.array([self.k_defended + self.k_infected, self.k_defended, self.k_infected, 0.0])
        return jnp.repeat(f[:, None], 2, axis=1)


def cybersecurity(
    theta=CYBER_BASE,
    mu0=(0.25, 0.25, 0.25, 0.25),
    T: float = 10.0,
    n_points: int = 100,
    switch_speed: float = 0.8,
    hacker: float = 0.6,
    k_defended: float = 0.3,
    k_infected: float = 0.5,
    scheme: str = "euler",
) -> FiniteGame:
    r"""Carmona–Delarue cybersecurity game (Vol. I p. 656; calibration paper §6.3).

    States 0 = DI, 1 = DS, 2 = UI, 3 = US (defended/unprotected, infected/susceptible); action
    α ∈ {0: keep, 1: switch protection level} at rate λ_sw. With
    θ = (q_rec^D, q_rec^U, q_inf^D, q_inf^U, β_DD, β_DU, β_UU, β_UD) (each a scalar or a path):

        DI → DS: q_rec^D,  UI → US: q_rec^U,
        DS → DI: v_H q_inf^D + β_DD μ(DI) + β_UD μ(UI),  US → UI: v_H q_inf^U + β_UU μ(UI) + β_DU μ(DI),
        f(x) = k_D 1[x ∈ D] + k_I 1[x ∈ I],  g = 0   (costs, minimised).
    """
    dt = T / (n_points - 1)
    theta = tuple(jnp.asarray(p, float) for p in theta)
    if len(theta) != 8:
        raise ValueError(f"cybersecurity takes 8 parameters, got {len(theta)}")
    return rate_game(
        jnp.asarray(mu0, float), _CyberRates(dt, switch_speed, hacker), _CyberCost(k_defended, k_infected),
        _zero_terminal, n_points - 1, dt, theta, scheme=scheme,
    )
