r"""Linear-quadratic mean-field games and control in closed form (Riccati equations).

The scalar LQ model (state X ∈ ℝ, control α ∈ ℝ, m_t the population's conditional mean):

    dX_t = (a X_t + ā m_t + b α_t) dt + σ dW_t + σ₀ dW⁰_t
    f(x, m, α) = ½ [ r α² + q (x − κ)² + q̄ (x − s m)² + q_m m² ]
    g(x, m)    = ½ [ q_T (x − κ_T)² + q̄_T (x − s_T m)² ]
    J(α) = E[ ∫₀ᵀ e^{−βt} f dt + e^{−βT} g(X_T, m_T) ]

With k = b²/r, deviation y = x − m and τ = T − t, both the Nash equilibrium (MFG) and the social
optimum (MFC) have the feedback

    α*(t, x, m) = −(b/r) ( P_t (x − m) + K_t m + ψ_t ),

where P (the curvature V_xx of the value) and K, ψ solve, backwards from t = T,

    −Ṗ = (2a − β) P − k P² + q + q̄,                               P_T = q_T + q̄_T
    MFG: −K̇ = (2a + ā − β) K − k K² + q + q̄(1 − s),                K_T = q_T + q̄_T(1 − s_T)
         −ψ̇ = (a − β − k K) ψ − q κ,                                ψ_T = −q_T κ_T
    MFC: −K̇ = (2(a + ā) − β) K − k K² + q + q̄(1 − s)² + q_m,       K_T = q_T + q̄_T(1 − s_T)²
         −ψ̇ = (a + ā − β − k K) ψ − q κ,                            ψ_T = −q_T κ_T

(MFG: K = P + Π from the ansatz V_x = P x + Π m + ψ; MFC: K is the Riccati of the planner's mean
problem). Under the equilibrium the mean M = E m_t, the idiosyncratic variance v = Var(x − m) and
the common-noise variance w = Var(m_t) follow

    Ṁ = λ_M M − k ψ,   v̇ = 2 λ_v v + σ²,   ẇ = 2 λ_M w + σ₀²,    λ_M = a + ā − kK, λ_v = a − kP,

and Var X_t = v + w. The value is the representative agent's expected cost J at the equilibrium
(the social cost per agent for MFC), accumulated along these moments.

Infinite horizon (``horizon=inf``): β > 0 discounted, β = 0 ergodic (J is then the long-run
average cost). P, K, ψ are the stabilising roots of the algebraic Riccati equations (the right-hand
sides above set to 0) and the moments relax exponentially to M* = kψ/λ_M, v* = −σ²/(2λ_v).
"""

from __future__ import annotations

import math
from typing import Literal

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._errors import ProblemError, is_traced


def _scalar(x) -> Array:
    return jnp.asarray(x, dtype=float)


def _field():
    return eqx.field(converter=_scalar)


class LQGame(eqx.Module):
    r"""A scalar linear-quadratic mean-field game (``kind="mfg"``) or control problem (``"mfc"``).

    See the module docstring for the model. Every coefficient, the horizon T and the MFG/MFC flag are
    arrays, so problems of one kind (finite horizon, or stationary with ``horizon=math.inf``:
    discounted for β > 0, ergodic for β = 0) share one compilation, `jax.vmap` and differentiate.
    The initial law has mean `m0` and variance `var0`.
    """

    a: Array = _field()
    abar: Array = _field()
    b: Array = _field()
    r: Array = _field()
    q: Array = _field()
    kappa: Array = _field()
    qbar: Array = _field()
    s: Array = _field()
    qm: Array = _field()
    qT: Array = _field()
    kappaT: Array = _field()
    qbarT: Array = _field()
    sT: Array = _field()
    sigma: Array = _field()
    sigma0: Array = _field()
    discount: Array = _field()
    m0: Array = _field()
    var0: Array = _field()
    horizon: Array = _field()
    social: Array = eqx.field(converter=lambda v: jnp.asarray(v, dtype=bool))
    stationary: bool = eqx.field(static=True)

    def __init__(
        self,
        *,
        a=0.0,
        abar=0.0,
        b=1.0,
        r=1.0,
        q=0.0,
        kappa=0.0,
        qbar=0.0,
        s=1.0,
        qm=0.0,
        qT=0.0,
        kappaT=0.0,
        qbarT=0.0,
        sT=1.0,
        sigma=0.0,
        sigma0=0.0,
        discount=0.0,
        m0=0.0,
        var0=0.0,
        horizon: float = 1.0,
        kind: Literal["mfg", "mfc"] = "mfg",
    ):
        self.a, self.abar, self.b, self.r = a, abar, b, r
        self.q, self.kappa, self.qbar, self.s, self.qm = q, kappa, qbar, s, qm
        self.qT, self.kappaT, self.qbarT, self.sT = qT, kappaT, qbarT, sT
        self.sigma, self.sigma0, self.discount, self.m0, self.var0 = sigma, sigma0, discount, m0, var0
        if not is_traced(horizon) and not float(horizon) > 0:
            raise ProblemError(f"horizon must be a positive number (or math.inf), got {horizon!r}")
        self.stationary = not is_traced(horizon) and math.isinf(float(horizon))
        self.horizon = horizon
        if kind not in ("mfg", "mfc"):
            raise ProblemError(f"kind must be 'mfg' (Nash equilibrium) or 'mfc' (social optimum), got {kind!r}")
        self.social = kind == "mfc"

    def __check_init__(self):
        coeffs = {n: getattr(self, n) for n in _COEFFS}
        if is_traced(coeffs):
            return
        for name, v in coeffs.items():
            if np.shape(v) != ():
                raise ProblemError(f"LQGame.{name} must be a scalar, got shape {np.shape(v)}")
            if not np.isfinite(v):
                raise ProblemError(f"LQGame.{name} is not finite: {float(v)}")
        for name in ("r",):
            if not coeffs[name] > 0:
                raise ProblemError(f"LQGame.{name} (control cost) must be positive, got {float(coeffs[name])}")
        for name in ("sigma", "sigma0", "var0", "discount"):
            if coeffs[name] < 0:
                raise ProblemError(f"LQGame.{name} must be non-negative, got {float(coeffs[name])}")
        if coeffs["b"] == 0:
            raise ProblemError("LQGame.b must be non-zero (the control must enter the dynamics)")
        if self.stationary and self.discount == 0 and self.sigma0 > 0:
            raise ProblemError("the ergodic problem (horizon=inf, discount=0) needs sigma0 = 0: common noise "
                               "makes Var(m_t) grow without a stationary law")

    @property
    def kind(self) -> str:
        """"mfg" (Nash equilibrium) or "mfc" (social optimum)."""
        return "mfc" if bool(self.social) else "mfg"

    @property
    def k(self) -> Array:
        """k = b²/r, the feedback gain per unit of V_x."""
        return self.b**2 / self.r


_COEFFS = ("a", "abar", "b", "r", "q", "kappa", "qbar", "s", "qm", "qT", "kappaT", "qbarT", "sT",
           "sigma", "sigma0", "discount", "m0", "var0")


class SystemicRisk(eqx.Module):
    r"""The systemic-risk LQ MFG of Carmona, Fouque & Sun (2015), with common noise:

        dX_t = [ a (m_t − X_t) + α_t ] dt + σ ( ρ dW⁰_t + √(1 − ρ²) dW_t )
        J(α) = E[ ∫₀ᵀ ( ½ α² − q α (m − X) + (ε/2)(m − X)² ) dt + (c/2)(m_T − X_T)² ],  q² ≤ ε.

    Completing the square, ½α² − qα(m − x) + (ε/2)(m − x)² = ½(α − q(m − x))² + ½(ε − q²)(m − x)²,
    so with α′ = α − q(m − x) it is the `LQGame` with a ↦ −(a + q), ā = a + q, q̄ = ε − q², s = 1,
    q̄_T = c, s_T = 1, σ ↦ σ√(1 − ρ²), σ₀ = σρ (`as_lq`). Its equilibrium is

        α*(t, x) = (q + η_t)(m_t − x),   η̇ = 2(a + q) η + η² − (ε − q²),   η_T = c,

    (η = P of the LQ form, reported as `LQSolution.riccati`) and V(t, x) = (η_t/2)(m_t − x)² + μ_t,
    μ_t = ½σ²(1 − ρ²) ∫_t^T η_s ds. The initial law has mean `m0` and variance `var0`.
    """

    a: Array = _field()
    q: Array = _field()
    epsilon: Array = _field()
    c: Array = _field()
    sigma: Array = _field()
    rho: Array = _field()
    m0: Array = _field()
    var0: Array = _field()
    horizon: Array = _field()

    def __init__(self, a=1.0, q=1.0, epsilon=2.0, c=1.0, sigma=1.0, rho=0.0, *, m0=0.0, var0=0.0,
                 horizon: float = 1.0):
        self.a, self.q, self.epsilon, self.c, self.sigma, self.rho = a, q, epsilon, c, sigma, rho
        self.m0, self.var0 = m0, var0
        if not is_traced(horizon) and not 0 < float(horizon) < math.inf:
            raise ProblemError(f"SystemicRisk.horizon must be a positive finite number, got {horizon!r}")
        self.horizon = horizon

    def __check_init__(self):
        names = ("a", "q", "epsilon", "c", "sigma", "rho", "m0", "var0")
        vals = {n: getattr(self, n) for n in names}
        if is_traced(vals):
            return
        for n, v in vals.items():
            if np.shape(v) != () or not np.isfinite(v):
                raise ProblemError(f"SystemicRisk.{n} must be a finite scalar, got {v!r}")
        if not vals["q"] ** 2 <= vals["epsilon"]:
            raise ProblemError(f"SystemicRisk needs q² ≤ ε (convex cost), got q = {float(vals['q'])}, "
                               f"ε = {float(vals['epsilon'])}")
        if not 0 <= vals["rho"] <= 1:
            raise ProblemError(f"SystemicRisk.rho must be in [0, 1], got {float(vals['rho'])}")
        for n in ("sigma", "var0", "c"):
            if vals[n] < 0:
                raise ProblemError(f"SystemicRisk.{n} must be non-negative, got {float(vals[n])}")

    def as_lq(self) -> LQGame:
        """The equivalent `LQGame` in the control α′ = α − q(m − x) (see the class docstring)."""
        aq = self.a + self.q
        return LQGame(
            a=-aq, abar=aq, qbar=self.epsilon - self.q**2, s=1.0, qbarT=self.c, sT=1.0,
            sigma=self.sigma * jnp.sqrt(1 - self.rho**2), sigma0=self.sigma * self.rho,
            m0=self.m0, var0=self.var0, horizon=self.horizon,
        )


class LQSolution(eqx.Module):
    r"""The solution of an LQ problem on the output times `ts`.

    - `riccati`: P_t = V_xx (η_t of the systemic-risk model; 2Γ₂ of a stationary value Γ₂x² + Γ₁x + Γ₀).
    - feedback α*(t, x, m) = −`gain`_t (x − m) − `mean_gain`_t m − `offset`_t, m the population's
      (conditional) mean; without common noise m = `mean`.
    - `mean` E X_t, `variance` Var X_t, `mean_variance` Var m_t (common noise only).
    - `value`: the expected cost J of the representative agent at the solution (discounted; the
      long-run average cost for the ergodic problem).
    """

    ts: Float[Array, " N"]
    riccati: Float[Array, " N"]
    gain: Float[Array, " N"]
    mean_gain: Float[Array, " N"]
    offset: Float[Array, " N"]
    mean: Float[Array, " N"]
    variance: Float[Array, " N"]
    mean_variance: Float[Array, " N"]
    value: Float[Array, ""]

    def control(self, x: Float[Array, "*X"], m: Float[Array, " N"] | None = None) -> Float[Array, " N *X"]:
        """α*(t_i, x) at every output time (m defaults to the mean path)."""
        m = self.mean if m is None else jnp.asarray(m)
        x = jnp.asarray(x)
        e = (slice(None),) + (None,) * x.ndim
        return -self.gain[e] * (x - m[e]) - self.mean_gain[e] * m[e] - self.offset[e]

    def control_at(self, t, x, m=None):
        """α*(t, x, m) at any t ∈ [ts₀, ts_end], coefficients linearly interpolated (error O(Δt²))."""
        coef = [jnp.interp(t, self.ts, c) for c in (self.gain, self.mean_gain, self.offset)]
        m = jnp.interp(t, self.ts, self.mean) if m is None else m
        return -coef[0] * (x - m) - coef[1] * m - coef[2]


class Riccati(eqx.Module):
    r"""Solve an LQ problem through its Riccati equations.

    Finite horizon: the backward system (P, K, ψ) and the forward moments (M, v, w, cost) are
    integrated by Diffrax with `solver` (e.g. ``diffrax.Tsit5()`` or the implicit
    ``diffrax.Kvaerno5()`` for stiff coefficients) under a `PIDController(rtol, atol)`; the forward
    pass reads (P, K, ψ) from the backward solution's dense interpolant. Infinite horizon: the
    algebraic Riccati equations are solved in closed form (stabilising roots). Results are saved on
    `n_save` equally spaced times on [0, T] (or [0, `t_max`] when T = ∞).
    """

    solver: diffrax.AbstractSolver = diffrax.Tsit5()
    rtol: float = eqx.field(static=True, default=1e-12)
    atol: float = eqx.field(static=True, default=1e-12)
    n_save: int = eqx.field(static=True, default=101)
    max_steps: int = eqx.field(static=True, default=100_000)
    t_max: float = eqx.field(static=True, default=10.0)

    def __check_init__(self):
        if not (isinstance(self.n_save, int) and self.n_save >= 2):
            raise ProblemError(f"Riccati.n_save must be an int ≥ 2, got {self.n_save!r}")
        if not (self.rtol > 0 and self.atol > 0):
            raise ProblemError(f"Riccati tolerances must be positive, got rtol={self.rtol}, atol={self.atol}")
        if not self.t_max > 0:
            raise ProblemError(f"Riccati.t_max must be positive, got {self.t_max}")


def _backward_rhs(g: LQGame):
    """dY/dτ for Y = (P, K, ψ), τ = T − t."""
    k, beta = g.k, g.discount

    # MFG and MFC differ in the mean's coefficients: select them by the (traced) flag `social`.
    aK = jnp.where(g.social, 2 * (g.a + g.abar), 2 * g.a + g.abar) - beta
    cK = g.q + jnp.where(g.social, g.qbar * (1 - g.s) ** 2 + g.qm, g.qbar * (1 - g.s))
    apsi = jnp.where(g.social, g.a + g.abar, g.a) - beta

    def rhs(tau, y, args):
        P, K, psi = y
        dP = (2 * g.a - beta) * P - k * P**2 + g.q + g.qbar
        dK = aK * K - k * K**2 + cK
        dpsi = (apsi - k * K) * psi - g.q * g.kappa
        return dP, dK, dpsi

    return rhs


def _terminal(g: LQGame):
    KT = g.qT + g.qbarT * jnp.where(g.social, (1 - g.sT) ** 2, 1 - g.sT)
    return g.qT + g.qbarT, KT, -g.qT * g.kappaT


def _cost_rate(g: LQGame, P, K, psi, M, v, w):
    """E f at the feedback, for mean M and variances v (idiosyncratic), w (common)."""
    k = g.k
    F = 0.5 * k * (K * M + psi) ** 2 + 0.5 * g.q * (M - g.kappa) ** 2 + 0.5 * (g.qbar * (1 - g.s) ** 2 + g.qm) * M**2
    Av = 0.5 * (k * P**2 + g.q + g.qbar)
    Aw = 0.5 * (k * K**2 + g.q + g.qbar * (1 - g.s) ** 2 + g.qm)
    return F + Av * v + Aw * w


def _terminal_cost(g: LQGame, M, v, w):
    return 0.5 * g.qT * (v + w + (M - g.kappaT) ** 2) + 0.5 * g.qbarT * (v + (1 - g.sT) ** 2 * (w + M**2))


def _solution(g: LQGame, ts, P, K, psi, M, v, w, value) -> LQSolution:
    br = g.b / g.r
    return LQSolution(ts, P, br * P, br * K, br * psi, M, v + w, w, value)


@eqx.filter_jit
def _solve_finite(g: LQGame, solver: Riccati) -> LQSolution:
    T = g.horizon
    ts = jnp.linspace(0.0, T, solver.n_save)
    taus = T - ts[::-1]
    control = diffrax.PIDController(rtol=solver.rtol, atol=solver.atol)
    back = diffrax.diffeqsolve(
        diffrax.ODETerm(_backward_rhs(g)), solver.solver, 0.0, T, None, _terminal(g),
        saveat=diffrax.SaveAt(ts=taus, dense=True), stepsize_controller=control, max_steps=solver.max_steps,
    )
    P, K, psi = (y[::-1] for y in back.ys)
    k = g.k

    def forward(t, z, back):
        M, v, w, _ = z
        Pt, Kt, psit = back.evaluate(T - t)
        lam_m, lam_v = g.a + g.abar - k * Kt, g.a - k * Pt
        cost = jnp.exp(-g.discount * t) * _cost_rate(g, Pt, Kt, psit, M, v, w)
        return lam_m * M - k * psit, 2 * lam_v * v + g.sigma**2, 2 * lam_m * w + g.sigma0**2, cost

    z0 = (g.m0, g.var0, jnp.zeros_like(g.var0), jnp.zeros_like(g.var0))
    fwd = diffrax.diffeqsolve(
        diffrax.ODETerm(forward), solver.solver, 0.0, T, None, z0, args=back,
        saveat=diffrax.SaveAt(ts=ts), stepsize_controller=control, max_steps=solver.max_steps,
    )
    M, v, w, C = fwd.ys
    value = C[-1] + jnp.exp(-g.discount * T) * _terminal_cost(g, M[-1], v[-1], w[-1])
    return _solution(g, ts, P, K, psi, M, v, w, value)


def _stable_root(A, C, k):
    """The larger root of −k X² + A X + C = 0, i.e. X = (A + √(A² + 4kC)) / (2k)."""
    disc = A**2 + 4 * k * C
    return (A + jnp.sqrt(jnp.maximum(disc, 0.0))) / (2 * k), disc


@eqx.filter_jit
def _solve_stationary(g: LQGame, solver: Riccati) -> LQSolution:
    k, beta = g.k, g.discount
    P, dP = _stable_root(2 * g.a - beta, g.q + g.qbar, k)
    aK = jnp.where(g.social, 2 * (g.a + g.abar), 2 * g.a + g.abar) - beta
    cK = g.q + jnp.where(g.social, g.qbar * (1 - g.s) ** 2 + g.qm, g.qbar * (1 - g.s))
    K, dK = _stable_root(aK, cK, k)
    psi = -g.q * g.kappa / (beta - jnp.where(g.social, g.a + g.abar, g.a) + k * K)
    lam_v, lam_m = g.a - k * P, g.a + g.abar - k * K
    P = eqx.error_if(P, dP < 0, "LQGame: the algebraic Riccati equation for P has no real root")
    K = eqx.error_if(K, dK < 0, "LQGame: the algebraic Riccati equation for K has no real root (no stationary equilibrium)")
    P = eqx.error_if(P, lam_v >= 0, "LQGame: the stationary feedback does not stabilise the deviation x − m (a − kP ≥ 0)")
    K = eqx.error_if(K, lam_m >= 0, "LQGame: the stationary feedback does not stabilise the mean (a + ā − kK ≥ 0)")
    M_star = k * psi / lam_m
    v_star = -(g.sigma**2) / (2 * lam_v)
    w_star = -(g.sigma0**2) / (2 * lam_m)
    ts = jnp.linspace(0.0, solver.t_max, solver.n_save)
    dM = g.m0 - M_star
    M = M_star + dM * jnp.exp(lam_m * ts)
    v = v_star + (g.var0 - v_star) * jnp.exp(2 * lam_v * ts)
    w = w_star * (1 - jnp.exp(2 * lam_m * ts))
    # E f(t) = F(M_t) + A_v v_t + A_w w_t, F quadratic: F(M* + Δe^{λt}) = F(M*) + F′(M*)Δe^{λt} + F₂Δ²e^{2λt}
    F = lambda m: _cost_rate(g, P, K, psi, m, 0.0, 0.0)
    F0 = F(M_star)
    F2 = 0.5 * k * K**2 + 0.5 * g.q + 0.5 * (g.qbar * (1 - g.s) ** 2 + g.qm)
    F1 = jax.grad(F)(M_star)
    Av = 0.5 * (k * P**2 + g.q + g.qbar)
    Aw = 0.5 * (k * K**2 + g.q + g.qbar * (1 - g.s) ** 2 + g.qm)
    stationary = F0 + Av * v_star + Aw * w_star
    # ∫₀^∞ e^{−βt} e^{ct} dt = 1/(β − c); β = 0 (ergodic) reports the long-run average instead.
    b_ = jnp.where(beta > 0, beta, 1.0)
    discounted = (stationary / b_ + F1 * dM / (b_ - lam_m) + F2 * dM**2 / (b_ - 2 * lam_m)
                  + Av * (g.var0 - v_star) / (b_ - 2 * lam_v) - Aw * w_star / (b_ - 2 * lam_m))
    value = jnp.where(beta > 0, discounted, stationary)
    one = jnp.ones_like(ts)
    return _solution(g, ts, P * one, K * one, psi * one, M, v, w, value)


def solve_lq(problem: LQGame | SystemicRisk, solver: Riccati) -> LQSolution:
    """Solve an `LQGame` or `SystemicRisk` problem with `Riccati` (see `mfgx.continuous.solve`)."""
    if isinstance(problem, SystemicRisk):
        sol = solve_lq(problem.as_lq(), solver)
        return eqx.tree_at(lambda s: s.gain, sol, sol.gain + problem.q)
    if problem.stationary:
        return _solve_stationary(problem, solver)
    return _solve_finite(problem, solver)
