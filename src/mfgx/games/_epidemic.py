"""Continuous-time games of the calibration paper (Thöni et al., arXiv 2606.23155) with finite actions.

Parameters θ are scalars or paths over the time grid (one value per grid point n = 0..N).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from ..finite import FiniteGame, rate_game
from ._checked import checked


def at(path, t, dt, value_ndim: int = 0):
    """θ at physical time t: the value itself (``value_ndim`` dimensions), or entry n = round(t/Δt)
    of a path (one more leading dimension)."""
    path = jnp.asarray(path)
    if path.ndim == value_ndim:
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
    dt: float = 1.0

    def __call__(self, t, mu, theta):
        c_alpha = at(theta.get("c_alpha", self.c_alpha), t, self.dt)
        c_infected = at(theta.get("c_infected", self.c_infected), t, self.dt)
        f_s = 0.5 * c_alpha * (1 - self.alphas) ** 2
        zeros = jnp.zeros_like(self.alphas)
        return jnp.stack([f_s, zeros + c_infected, zeros])


def _zero_terminal(mu, theta):
    return jnp.zeros_like(mu)


@checked
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
    control: bool = True,
) -> FiniteGame:
    r"""SIR epidemic with contact-factor control (calibration paper §6.4; Aurell et al. 2022).

    States S = 0, I = 1, R = 2; the action is the contact factor α ∈ {0, 1/(K−1), …, 1}:

        S → I at rate β α μ(I),   I → R at rate γ,   R absorbing;
        f(S, α) = (c_α/2)(1 − α)²,  f(I) = c_I,  f(R) = 0,  g = 0   (costs, minimised).

    θ = {"beta": β, "gamma": γ}, scalars or paths of ``n_points`` values; θ may also carry
    "c_alpha" and "c_infected" (then learnable; else the arguments are used). Time grid t_n = nΔt,
    Δt = T/(N−1), N = ``n_points`` (the paper: T = 40, N = 100). The paper's best response is a
    grid argmin (piecewise constant in θ); use `mfgx.Softmax` for gradients through the control.

    ``control=False`` gives the forward SIR ODE without game structure (the single action α = 1):
    the baseline the MFG is compared with, fitted the same way.
    """
    dt = T / (n_points - 1)
    alphas = jnp.linspace(0.0, 1.0, n_alpha) if control else jnp.ones(1)
    theta = {"beta": jnp.asarray(beta, float), "gamma": jnp.asarray(gamma, float)}
    return rate_game(
        jnp.asarray(mu0, float), _SIRRates(alphas, dt), _SIRCost(alphas, c_alpha, c_infected, dt),
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


@checked
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


class _LQCost(eqx.Module):
    dt: float
    q_bar: float
    w: float
    c: float
    p: float
    kappa: float
    per_state: bool = False

    def __call__(self, t, mu, theta, a):
        rho = 1 + self.kappa * mu
        off = 1 - jnp.eye(mu.shape[0], dtype=mu.dtype)
        effort = (off * (a - self.q_bar) ** 2 * rho[None, :]).sum(-1)
        return self.w * at(theta, t, self.dt, int(self.per_state)) * effort + self.c * _power(mu, self.p)


class _LQBestRates(eqx.Module):
    dt: float
    q_bar: float
    w: float
    kappa: float
    a_max: float
    per_state: bool = False

    def __call__(self, t, mu, theta, u_next):
        rho = 1 + self.kappa * mu
        du = u_next[None, :] - u_next[:, None]  # u(y) − u(x)
        gamma = at(theta, t, self.dt, int(self.per_state))[..., None]  # γ or γ_x, per origin state x
        a = self.q_bar - du / (2 * self.w * gamma * rho[None, :])
        return jnp.clip(a, 0.0, self.a_max)


class _LQTerminal(eqx.Module):
    s: float
    c_T: float
    p: float

    def __call__(self, mu, theta):
        d = mu.shape[0]
        return self.s * (d - 1 - jnp.arange(d)) + self.c_T * _power(mu, self.p)


def _power(x, p):
    """x**p, by repeated multiplication when p is a whole number (XLA's general pow is exp∘log)."""
    if float(p).is_integer():
        return jax.lax.integer_pow(x, int(p))
    return x**p


@checked
def lq_rates(
    gamma=1.55,
    d: int = 3,
    mu0=None,
    T: float = 2.0,
    n_points: int = 100,
    s: float = 5.0,
    c: float = 0.1,
    p: float = 1.0,
    w: float = 1.0,
    c_T: float = 1.0,
    kappa: float = 0.0,
    q_bar: float = 2.0,
    a_max: float = 100.0,
    *,
    per_state: bool = False,
    scheme: str = "euler",
    problem: str = "mfg",
):
    r"""Linear-quadratic jump-rate MFG of the calibration paper (§6.1), a `ControlGame`.

    The control is the rate vector a_xy (y ≠ x); with ρ(y) = 1 + κ μ(y) and θ = γ:

        f(x, a, μ) = w γ Σ_{y≠x} (a_xy − q̄)² ρ(y) + c μ(x)^p,    g(x, μ) = s (d − 1 − x) + c_T μ(x)^p,
        a*_xy = clip(q̄ − (u(y) − u(x)) / (2 w γ ρ(y)), 0, a_max).

    γ is a scalar or a path [N]; with ``per_state=True`` one value per origin state, γ_x: a
    vector [d] or a path [N, d]. Grid: N = ``n_points`` points on [0, T] (N − 1 steps of
    ``scheme``, "euler" or "implicit"); ``problem="mfc"`` is the mean-field control problem
    (paper §6.2; see `ControlGame`).
    """
    from ..finite import ControlGame

    dt = T / (n_points - 1)
    mu0 = jnp.full(d, 1.0 / d) if mu0 is None else jnp.asarray(mu0, float)
    gamma = jnp.asarray(gamma, float)
    if per_state and (gamma.ndim not in (1, 2) or gamma.shape[-1] != d):
        raise ValueError(f"per_state γ must have shape [d] or [N, d] with d = {d}, got {gamma.shape}")
    return ControlGame(
        mu0, _LQCost(dt, q_bar, w, c, p, kappa, per_state), _LQTerminal(s, c_T, p),
        _LQBestRates(dt, q_bar, w, kappa, a_max, per_state), n_points - 1, dt, gamma, scheme=scheme, problem=problem,
    )


class _BikeCost(eqx.Module):
    dt: float

    def __call__(self, t, mu, theta, a):
        base = at(theta["q_base"], t, self.dt, value_ndim=2)
        off = 1 - jnp.eye(mu.shape[0], dtype=mu.dtype)
        effort = theta["b"] * (off * (a - base) ** 2).sum(-1)
        return effort + theta["c"] * (off * a * mu[None, :]).sum(-1)


class _BikeBestRates(eqx.Module):
    dt: float
    a_max: float

    def __call__(self, t, mu, theta, u_next):
        base = at(theta["q_base"], t, self.dt, value_ndim=2)
        du = u_next[None, :] - u_next[:, None]  # u(y) − u(x)
        return jnp.clip(base - (theta["c"] * mu[None, :] + du) / (2 * theta["b"]), 0.0, self.a_max)


class _BikeTerminal(eqx.Module):
    def __call__(self, mu, theta):
        return jnp.broadcast_to(theta["w_g"], mu.shape)


def bike_share(
    q_base, b=1.0, c=0.5, w_g=None, mu0=None, T: float = 1.0, n_points: int = 64, a_max: float = 100.0,
    *, scheme: str = "euler",
):
    r"""Bike-share MFG of the calibration paper (§6.5, variant B), a `ControlGame`.

    States are stations (the last one "external"); the control a_xy is the rate of riding x → y:

        f(x, a, μ) = b Σ_{y≠x} (a_xy − q^base_xy)² + c Σ_{y≠x} μ(y) a_xy,     g(x) = w_g(x),
        a*_xy = clip(q^base_xy − (c μ(y) + u(y) − u(x)) / (2b), 0, a_max).

    θ = {"q_base": [S, S] or a path [N, S, S], "b", "c", "w_g": [S]}. With c = 0 and w_g = 0 the
    value is 0, a* = q^base and the flow is the forward ODE of the base rates (the paper's baseline).
    Unlike the paper's code, the flow is not projected onto the simplex: explicit Euler must keep
    it there (Δt Σ_y a_xy ≤ 1), or solving raises; ``scheme="implicit"`` keeps it there for any Δt.
    """
    from ..finite import ControlGame

    q_base = jnp.asarray(q_base, float)
    d = q_base.shape[-1]
    dt = T / (n_points - 1)
    theta = {
        "q_base": q_base, "b": jnp.asarray(b, float), "c": jnp.asarray(c, float),
        "w_g": jnp.zeros(d) if w_g is None else jnp.asarray(w_g, float),
    }
    mu0 = jnp.full(d, 1.0 / d) if mu0 is None else jnp.asarray(mu0, float)
    return ControlGame(
        mu0, _BikeCost(dt), _BikeTerminal(), _BikeBestRates(dt, a_max), n_points - 1, dt, theta, scheme=scheme
    )
