"""mfgx.continuous: LQ closed forms (Riccati via Diffrax and algebraic) and the grid HJB–FP solver.

Every reference value is computed here from formulas (analytic_benchmarks.md §1–§3, or closed forms
derived in the comments), with NumPy/SciPy as the independent code path.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import mfgx
import mfgx.continuous as mc

# ---------------------------------------------------------------------------------------------
# closed forms


def riccati_tau(A, C, k, P_T, tau):
    """Solution of dP/dτ = −kP² + AP + C, P(0) = P_T (constant coefficients).

    With roots P± = (A ± √(A² + 4kC))/(2k): (P − P₊)/(P − P₋) = (P_T − P₊)/(P_T − P₋) e^{−k(P₊−P₋)τ}."""
    root = math.sqrt(A * A + 4 * k * C)
    pp, pm = (A + root) / (2 * k), (A - root) / (2 * k)
    R = (P_T - pp) / (P_T - pm) * np.exp(-k * (pp - pm) * np.asarray(tau))
    return (pp - R * pm) / (1 - R)


def eta_systemic(a, q, eps, c, T, t):
    """analytic_benchmarks.md §1: the closed-form η_t of the systemic-risk model."""
    root = math.sqrt((a + q) ** 2 + eps - q**2)
    dp, dm = -(a + q) + root, -(a + q) - root
    E = np.exp((dp - dm) * (T - np.asarray(t)))
    return (-(eps - q**2) * (E - 1) - c * (dp * E - dm)) / ((dm * E - dp) - c * (E - 1))


def gauss_legendre(fn, lo, hi, n=60):
    x, w = np.polynomial.legendre.leggauss(n)
    s = 0.5 * (hi - lo) * x + 0.5 * (hi + lo)
    return 0.5 * (hi - lo) * np.sum(w * fn(s))


SYSTEMIC_INPUTS = [  # (a, q, ε, c, σ, ρ, T) from §1
    (1.0, 1.0, 2.0, 1.0, 1.0, 0.0, 1.0),
    (0.1, 0.1, 0.5, 1.0, 1.0, 0.0, 1.0),
    (0.1, 0.1, 0.5, 0.5, 1.0, 0.2, 1.0),
]


# ---------------------------------------------------------------------------------------------
# LQ: finite horizon through Diffrax


@pytest.mark.parametrize("inputs", SYSTEMIC_INPUTS)
def test_systemic_risk_matches_closed_form(inputs):
    a, q, eps, c, sigma, rho, T = inputs
    m0, var0 = 0.3, 0.2
    sol = mc.solve(mc.SystemicRisk(a, q, eps, c, sigma, rho, m0=m0, var0=var0, horizon=T), mc.Riccati())
    ts = np.asarray(sol.ts)
    eta = eta_systemic(a, q, eps, c, T, ts)
    np.testing.assert_allclose(sol.riccati, eta, rtol=0, atol=1e-8)
    np.testing.assert_allclose(sol.gain, q + eta, rtol=0, atol=1e-8)  # α* = (q + η)(m − x)
    np.testing.assert_allclose(sol.mean, m0, atol=1e-10)
    np.testing.assert_allclose(sol.control(np.array([m0 - 1.0]))[:, 0], q + eta, atol=1e-8)
    # V(0, x) = (η₀/2)(m₀ − x)² + μ₀ with μ₀ = ½σ²(1 − ρ²)∫₀ᵀ η: E V(0, X₀) = η₀ var0/2 + μ₀.
    mu0 = 0.5 * sigma**2 * (1 - rho**2) * gauss_legendre(lambda s: eta_systemic(a, q, eps, c, T, s), 0.0, T)
    assert abs(float(sol.value) - (eta[0] * var0 / 2 + mu0)) < 1e-8
    # Var X_t = v_t + σ²ρ²t, v̇ = −2(a + q + η)v + σ²(1 − ρ²), v₀ = var0 (common noise moves m and X alike).
    v = solve_ivp(lambda t, v: -2 * (a + q + eta_systemic(a, q, eps, c, T, t)) * v + sigma**2 * (1 - rho**2),
                  (0, T), [var0], t_eval=ts, method="DOP853", rtol=1e-12, atol=1e-13).y[0]
    np.testing.assert_allclose(sol.variance, v + sigma**2 * rho**2 * ts, atol=1e-8)
    np.testing.assert_allclose(sol.mean_variance, sigma**2 * rho**2 * ts, atol=1e-8)


@pytest.mark.parametrize("kind", ["mfg", "mfc"])
def test_constant_coefficient_riccati_matches_explicit_solution(kind):
    a, abar, b, r, beta = 0.3, -0.4, 1.3, 0.7, 0.2
    q, qbar, s, qm, qT, qbarT, sT = 0.5, 0.8, 0.6, 0.4, 1.5, 0.7, 0.3
    T, k = 2.0, b**2 / r
    g = mc.LQGame(a=a, abar=abar, b=b, r=r, q=q, kappa=0.2, qbar=qbar, s=s, qm=qm, qT=qT, kappaT=-0.5,
                  qbarT=qbarT, sT=sT, sigma=0.4, discount=beta, m0=0.1, var0=0.3, horizon=T, kind=kind)
    sol = mc.solve(g, mc.Riccati())
    tau = T - np.asarray(sol.ts)
    P = riccati_tau(2 * a - beta, q + qbar, k, qT + qbarT, tau)
    if kind == "mfg":  # K = P + Π: −K̇ = (2a + ā − β)K − kK² + q + q̄(1 − s)
        K = riccati_tau(2 * a + abar - beta, q + qbar * (1 - s), k, qT + qbarT * (1 - sT), tau)
    else:  # the planner's mean problem: −K̇ = (2(a + ā) − β)K − kK² + q + q̄(1 − s)² + q_m
        K = riccati_tau(2 * (a + abar) - beta, q + qbar * (1 - s) ** 2 + qm, k, qT + qbarT * (1 - sT) ** 2, tau)
    np.testing.assert_allclose(sol.riccati, P, atol=1e-8)
    np.testing.assert_allclose(sol.gain, b / r * P, atol=1e-8)
    np.testing.assert_allclose(sol.mean_gain, b / r * K, atol=1e-8)


def terminal_tracking(ts, T, qT, kappa, m0, var0, sigma2):
    """a = ā = q = q̄ = 0, b = r = 1, g = ½q_T(x − κ)²: P_t = q_T/u_t with u_t = 1 + q_T(T − t),
    M_t = κ + (m₀ − κ)u_t/u₀, Var_t = σ²u_t(1 − u_t/u₀)/q_T + var0 (u_t/u₀)², and
    J = ½P₀((m₀ − κ)² + var0) + ½σ² log(1 + q_T T) (V = ½P(x − κ)² + ½σ²∫_t^T P)."""
    u = 1 + qT * (T - ts)
    u0 = 1 + qT * T
    M = kappa + (m0 - kappa) * u / u0
    var = sigma2 * u * (1 - u / u0) / qT + var0 * (u / u0) ** 2
    J = 0.5 * qT / u0 * ((m0 - kappa) ** 2 + var0) + 0.5 * sigma2 * math.log(u0)
    return qT / u, M, var, J


def test_terminal_tracking_with_common_noise():
    T, qT, kappa, m0, var0, sigma, sigma0 = 1.5, 2.0, 1.0, -0.5, 0.16, 0.6, 0.3
    sol = mc.solve(mc.LQGame(qT=qT, kappaT=kappa, sigma=sigma, sigma0=sigma0, m0=m0, var0=var0, horizon=T),
                   mc.Riccati())
    ts = np.asarray(sol.ts)
    P, M, var, J = terminal_tracking(ts, T, qT, kappa, m0, var0, sigma**2 + sigma0**2)
    np.testing.assert_allclose(sol.riccati, P, atol=1e-8)
    np.testing.assert_allclose(sol.mean, M, atol=1e-8)
    np.testing.assert_allclose(sol.variance, var, atol=1e-8)
    _, _, w, _ = terminal_tracking(ts, T, qT, kappa, 0.0, 0.0, sigma0**2)
    np.testing.assert_allclose(sol.mean_variance, w, atol=1e-8)
    assert abs(float(sol.value) - J) < 1e-8
    # the feedback −P(x − κ), whatever the (conditional) mean m
    x, m = np.array([-1.0, 0.5, 2.0]), np.full(ts.shape, 0.7)
    np.testing.assert_allclose(sol.control(x, m), -P[:, None] * (x - kappa), atol=1e-8)
    P_mid, _, _, _ = terminal_tracking(np.array([0.37]), T, qT, kappa, m0, var0, 0.0)
    np.testing.assert_allclose(sol.control_at(0.37, x, 0.7), -P_mid[0] * (x - kappa), atol=1e-4)  # interpolated


# ---------------------------------------------------------------------------------------------
# LQ: infinite horizon (§2), algebraic Riccati vs closed form, and the finite-horizon turnpike

C1, C2, C3, C4, C5, BETA, SIGMA = 0.25, 1.5, 0.5, 0.6, 1.0, 1.0, 0.3
GAMMA2 = (-BETA + math.sqrt(BETA**2 + 8 * (C1 + C3))) / 4
M_MFG = C3 * C4 / (C1 + C3 - C1 * C2)
M_MFC = C3 * C4 / (C1 * (1 - C2) ** 2 + C3 + C5)
STATIONARY = mc.Riccati(t_max=60.0)  # one solver configuration: one compilation


def angiuli_game(kind, horizon=math.inf, m0=0.0):
    """§2's cost ½α² + c₁(X − c₂m)² + c₃(X − c₄)² + c₅m²: q̄ = 2c₁, s = c₂, q = 2c₃, κ = c₄, q_m = 2c₅."""
    return mc.LQGame(q=2 * C3, kappa=C4, qbar=2 * C1, s=C2, qm=2 * C5, sigma=SIGMA, discount=BETA, m0=m0,
                     horizon=horizon, kind=kind)


@pytest.mark.parametrize("kind", ["mfg", "mfc"])
def test_discounted_lq_mfg_vs_mfc(kind):
    sol = mc.solve(angiuli_game(kind), STATIONARY)
    m = M_MFG if kind == "mfg" else M_MFC
    assert abs(float(sol.riccati[0]) - 2 * GAMMA2) < 1e-12
    assert abs(float(sol.mean[-1]) - m) < 1e-12
    # α*(x) = −(2Γ₂x + Γ₁); Γ₁ = −2Γ₂m, and for the MFG also Γ₁ = −2(c₁c₂m + c₃c₄)/(β + 2Γ₂)
    gamma1 = -2 * (C1 * C2 * m + C3 * C4) / (BETA + 2 * GAMMA2) if kind == "mfg" else -2 * GAMMA2 * m
    assert abs(gamma1 + 2 * GAMMA2 * m) < 1e-12
    x = np.linspace(-1, 2, 5)
    np.testing.assert_allclose(sol.control(x, np.full(sol.ts.shape, m))[-1], -(2 * GAMMA2 * x + gamma1), atol=1e-12)
    np.testing.assert_allclose(sol.variance[-1], SIGMA**2 / (2 * (2 * GAMMA2)), atol=1e-12)  # σ²/(2P)


@pytest.mark.parametrize("kind", ["mfg", "mfc"])
def test_long_horizon_riccati_reaches_the_stationary_solution(kind):
    """Turnpike: on [0, 20] started at the stationary mean, the Diffrax solution at t = 10 is the
    closed-form stationary (Γ₂, m) of §2 up to e^{−(decay rate)·10}."""
    m = M_MFG if kind == "mfg" else M_MFC
    sol = mc.solve(angiuli_game(kind, horizon=20.0, m0=m), mc.Riccati())
    i = len(sol.ts) // 2
    assert abs(float(sol.ts[i]) - 10.0) < 1e-12
    assert abs(float(sol.riccati[i]) - 2 * GAMMA2) < 1e-8
    assert abs(float(sol.mean[i]) - m) < 1e-8


def test_stationary_values_closed_form():
    # a = ā = 0, b = r = 1, f = ½q x², κ = 0: V = ½P x² + c with kP² + βP = q (discounted: βc = ½σ²P),
    # so J = ½P(m₀² + var0) + σ²P/(2β); ergodic (β = 0): P = √q and the average cost λ̄ = ½σ²√q.
    q, sigma, beta, m0, var0 = 2.0, 0.7, 0.5, 0.8, 0.3
    P = (-beta + math.sqrt(beta**2 + 4 * q)) / 2
    disc = mc.solve(mc.LQGame(q=q, sigma=sigma, discount=beta, m0=m0, var0=var0, horizon=math.inf), STATIONARY)
    assert abs(float(disc.value) - (0.5 * P * (m0**2 + var0) + sigma**2 * P / (2 * beta))) < 1e-12
    erg = mc.solve(mc.LQGame(q=q, sigma=sigma, m0=m0, var0=var0, horizon=math.inf), STATIONARY)
    assert abs(float(erg.value) - 0.5 * sigma**2 * math.sqrt(q)) < 1e-12


def test_lq_validation():
    with pytest.raises(mc.ProblemError, match="r .*must be positive"):
        mc.LQGame(r=0.0)
    with pytest.raises(mc.ProblemError, match="sigma must be non-negative"):
        mc.LQGame(sigma=-1.0)
    with pytest.raises(mc.ProblemError, match="not finite"):
        mc.LQGame(q=float("nan"))
    with pytest.raises(mc.ProblemError, match="kind"):
        mc.LQGame(kind="nash")
    with pytest.raises(mc.ProblemError, match="horizon"):
        mc.LQGame(horizon=-1.0)
    with pytest.raises(mc.ProblemError, match="q² ≤ ε"):
        mc.SystemicRisk(q=2.0, epsilon=1.0)
    with pytest.raises(mc.ProblemError, match="rho"):
        mc.SystemicRisk(rho=1.5)
    with pytest.raises(TypeError, match="Riccati"):
        mc.solve(mc.LQGame(), mc.Picard())
    with pytest.raises(TypeError, match="Picard"):
        mc.solve(_lq_grid_problem(12), mc.Riccati())
    with pytest.raises(TypeError, match="LQGame, SystemicRisk or GridMFG"):
        mc.solve(mfgx.games.left_right(), mc.Riccati())


# ---------------------------------------------------------------------------------------------
# grid HJB–FP

QBAR, QT, KAPPA, SIG, MU0, S0, T = 1.0, 2.0, 1.0, 0.6, -0.5, 0.4, 1.0


def lq_grid_reference(ts):
    """f = ½q̄(x − m̄)², g = ½q_T(x − κ)², b = r = 1, a = 0 (s = 1). Then K = q_T/(1 + q_T(T − t))
    and ψ = −κK, so M_t = κ + (m₀ − κ)(1 + q_T(T − t))/(1 + q_T T); P solves dP/dτ = q̄ − P², i.e.
    P = k(q_T + k tanh kτ)/(k + q_T tanh kτ), k = √q̄; Var: v̇ = −2Pv + σ² (SciPy)."""
    ts = np.asarray(ts)
    M = KAPPA + (MU0 - KAPPA) * (1 + QT * (T - ts)) / (1 + QT * T)
    k = math.sqrt(QBAR)

    def P(t):
        th = np.tanh(k * (T - t))
        return k * (QT + k * th) / (k + QT * th)

    v = solve_ivp(lambda t, v: -2 * P(t) * v + SIG**2, (0, T), [S0**2], t_eval=ts, method="DOP853",
                  rtol=1e-12, atol=1e-13).y[0]
    return M, v, P


def test_lq_riccati_mean_tracking():
    sol = mc.solve(mc.LQGame(qbar=QBAR, s=1.0, qT=QT, kappaT=KAPPA, sigma=SIG, m0=MU0, var0=S0**2, horizon=T),
                   mc.Riccati())
    M, v, P = lq_grid_reference(sol.ts)
    np.testing.assert_allclose(sol.riccati, P(np.asarray(sol.ts)), atol=1e-8)
    np.testing.assert_allclose(sol.mean, M, atol=1e-8)
    np.testing.assert_allclose(sol.variance, v, atol=1e-8)


def _lq_grid_problem(n, dim=1, n_t=None, center=KAPPA):
    grid = mc.Grid([-4.0] * dim, [4.0] * dim, [n] * dim)
    mean0 = np.array([MU0, 0.2][:dim])
    m0 = grid.density(lambda x: jnp.exp(-jnp.sum((x - mean0) ** 2, -1) / (2 * S0**2)))
    return mc.GridMFG(grid, T, SIG, mc.MeanTracking(QBAR), mc.Quadratic(QT, center), m0, n_t=n_t)


def _grid_lq_errors(sol):
    M, v, _ = lq_grid_reference(sol.ts)
    return float(np.max(np.abs(sol.mean[:, 0] - M))), float(np.max(np.abs(sol.variance[:, 0] - v)))


@pytest.fixture(scope="module")
def lq_grid_1d():
    return {n: mc.solve(_lq_grid_problem(n), mc.Picard(0.5), tol=1e-10) for n in (40, 80, 160)}


def test_grid_lq_first_order_convergence(lq_grid_1d):
    errs = {n: _grid_lq_errors(s) for n, s in lq_grid_1d.items()}
    for s in lq_grid_1d.values():
        assert bool(s.converged) and float(s.cfl) <= 1
        np.testing.assert_allclose(s.mass, 1.0, atol=1e-12)
        assert float(np.min(s.density)) >= 0
    for j in range(2):  # mean, variance
        e = np.array([errs[n][j] for n in (40, 80, 160)])
        orders = np.log2(e[:-1] / e[1:])
        assert np.all(orders >= 0.8), (j, e, orders)
    assert errs[160][0] < 0.02 and errs[160][1] < 0.03


def test_grid_lq_2d_matches_riccati_per_axis(lq_grid_1d):
    """Coordinates decouple: axis 1 has the 1-D reference; axis 2 (m₀ = 0.2, κ = 1) its own closed form."""
    sol = mc.solve(_lq_grid_problem(40, dim=2, center=jnp.array([KAPPA, KAPPA])), mc.Picard(0.5), tol=1e-9)
    assert bool(sol.converged)
    M, v, _ = lq_grid_reference(sol.ts)
    M2 = KAPPA + (0.2 - KAPPA) * (1 + QT * (T - np.asarray(sol.ts))) / (1 + QT * T)
    e1d = _grid_lq_errors(lq_grid_1d[40])
    # the same h as the 1-D run (only Δt differs): errors of the same size
    assert np.max(np.abs(sol.mean[:, 0] - M)) < 1.2 * e1d[0]
    assert np.max(np.abs(sol.mean[:, 1] - M2)) < 1.2 * e1d[0]
    assert np.max(np.abs(sol.variance - v[:, None])) < 1.2 * e1d[1]
    np.testing.assert_allclose(sol.mass, 1.0, atol=1e-12)


def gaussian_benchmark(n, dim, lam=1.0, nu=1.0, beta=1.0, half_width=7.0):
    """§3: ρ = N(0, ν/α I), φ(x, t) = α|x|²/2 − c t with c = dνα + (λd/2) log(α/(2πν))."""
    alpha = (-lam + math.sqrt(lam**2 + 4 * nu**2 * beta)) / (2 * nu)
    c = dim * nu * alpha + lam * dim / 2 * math.log(alpha / (2 * math.pi * nu))
    grid = mc.Grid([-half_width] * dim, [half_width] * dim, [n] * dim)
    r2 = np.sum(np.asarray(grid.x) ** 2, -1)
    rho = (alpha / (2 * math.pi * nu)) ** (dim / 2) * np.exp(-alpha * r2 / (2 * nu))
    phi0 = alpha * r2 / 2
    # g = φ(·, 1) = α|x|²/2 − c; ρ₀ = ρ (normalised on the grid)
    terminal = mc.CostFunction(lambda x, m, t: alpha * jnp.sum(x**2, -1) / 2 - c)
    problem = mc.GridMFG(grid, 1.0, math.sqrt(2 * nu), mc.Quadratic(beta) + mc.LogCongestion(lam), terminal,
                         rho / (rho.sum() * grid.cell_volume))
    return problem, rho, phi0


def gaussian_errors(sol, rho, phi0):
    axes = tuple(range(1, sol.density.ndim))
    e_rho = np.max(np.sqrt(np.sum((np.asarray(sol.density) - rho) ** 2, axis=axes) / np.sum(rho**2)))
    e_phi = math.sqrt(np.sum(rho * (np.asarray(sol.value[0]) - phi0) ** 2) / np.sum(rho * phi0**2))
    return e_rho, e_phi


@pytest.mark.parametrize("dim, sizes", [(1, (40, 80)), (2, (20, 40))])
def test_log_congestion_gaussian_converges_at_first_order(dim, sizes):
    errs = []
    for n in sizes:
        problem, rho, phi0 = gaussian_benchmark(n, dim)
        sol = mc.solve(problem, mc.Picard(0.5), tol=1e-9)
        assert bool(sol.converged) and float(sol.cfl) <= 1
        errs.append(gaussian_errors(sol, rho, phi0))
    errs = np.array(errs)
    orders = np.log2(errs[0] / errs[1])
    assert np.all(orders >= 0.8), (errs, orders)
    assert np.all(errs[1] < ((0.03, 0.06) if dim == 1 else (0.07, 0.12))), errs  # (ρ, φ(·, 0))


def test_periodic_hjb_matches_cole_hopf():
    """Torus [0, 1), f = 0, g = A cos 2πx: u = −2ν log w with w the backward heat flow of e^{−g/(2ν)}:
    w(x, t) = I₀(z) + 2 Σₖ (−1)ᵏ Iₖ(z) e^{−ν(2πk)²(T − t)} cos 2πkx, z = A/(2ν) (Cole–Hopf)."""
    from scipy.special import iv

    A, nu, T_ = 0.5, 0.1, 1.0
    errs = []
    for n in (32, 64):
        grid = mc.Grid([0.0], [1.0], [n])
        problem = mc.GridMFG(grid, T_, math.sqrt(2 * nu), mc.Zero(),
                             mc.CostFunction(lambda x, m, t: A * jnp.cos(2 * jnp.pi * x[..., 0])),
                             np.ones(n), boundary="periodic")
        sol = mc.solve(problem, mc.Picard(0.0), tol=1e-12)
        assert bool(sol.converged) and float(sol.cfl) <= 1
        np.testing.assert_allclose(sol.mass, 1.0, atol=1e-12)
        x = np.asarray(grid.axes[0])
        z = A / (2 * nu)
        w = iv(0, z) + 2 * sum((-1) ** k * iv(k, z) * np.exp(-nu * (2 * np.pi * k) ** 2 * T_) * np.cos(2 * np.pi * k * x)
                               for k in range(1, 30))
        errs.append(np.max(np.abs(np.asarray(sol.value[0]) + 2 * nu * np.log(w))))
    assert math.log2(errs[0] / errs[1]) >= 0.8, errs
    assert errs[1] < 0.02, errs


def test_fictitious_play_and_nonconvergence(lq_grid_1d):
    problem = _lq_grid_problem(40)
    fp_sol = mc.solve(problem, mc.FictitiousPlay(), tol=2e-3, max_steps=400)
    assert bool(fp_sol.converged)
    ref = lq_grid_1d[40]
    assert np.max(np.abs(fp_sol.mean - ref.mean)) < 5e-3
    with pytest.warns(mfgx.ConvergenceWarning, match="did not converge in 2 steps"):
        sol = mc.solve(problem, mc.Picard(0.5), tol=1e-10, max_steps=2)
    assert not bool(sol.converged) and int(sol.steps) == 2
    with pytest.raises(RuntimeError, match="did not converge"):
        mc.solve(problem, mc.Picard(0.5), tol=1e-10, max_steps=2, throw=True)


def test_cfl_violation_raises_with_advice():
    problem = _lq_grid_problem(40, n_t=30)
    with pytest.raises(mc.CFLError, match=r"Δt · max out-rate = .* > 1 with n_t = 30.*n_t=\d+"):
        mc.solve(problem, mc.Picard(0.5), tol=1e-8)


def test_grid_validation():
    grid = mc.Grid([-1.0], [1.0], [10])
    good = np.full(10, 0.5)
    costs = (mc.Zero(), mc.Zero())
    with pytest.raises(mc.ProblemError, match=r"shape \(10,\), got \(9,\)"):
        mc.GridMFG(grid, 1.0, 0.5, *costs, good[:9])
    bad = good.copy()
    bad[3] = -0.1
    with pytest.raises(mc.ProblemError, match=r"negative .* at cell \(3,\)"):
        mc.GridMFG(grid, 1.0, 0.5, *costs, bad)
    bad[3] = np.nan
    with pytest.raises(mc.ProblemError, match=r"not finite at cell \(3,\)"):
        mc.GridMFG(grid, 1.0, 0.5, *costs, bad)
    with pytest.raises(mc.ProblemError, match="integrates to 2"):
        mc.GridMFG(grid, 1.0, 0.5, *costs, 2 * good)
    with pytest.raises(mc.ProblemError, match="sigma"):
        mc.GridMFG(grid, 1.0, -0.5, *costs, good)
    with pytest.raises(mc.ProblemError, match="pass n_t explicitly"):
        mc.GridMFG(grid, 1.0, 0.5, mc.Zero(), mc.CostFunction(lambda x, m, t: jnp.log(x[..., 0] + 0.9)), good)
    with pytest.raises(mc.ProblemError, match="AbstractCost"):
        mc.GridMFG(grid, 1.0, 0.5, lambda g, t, m: m, mc.Zero(), good)
    with pytest.raises(mc.ProblemError, match="boundary"):
        mc.GridMFG(grid, 1.0, 0.5, *costs, good, boundary="open")
    with pytest.raises(mc.ProblemError, match="1-D and 2-D"):
        mc.Grid([0, 0, 0], [1, 1, 1], [4, 4, 4])
    with pytest.raises(mc.ProblemError, match="lower < upper"):
        mc.Grid([1.0], [0.0], [10])
    with pytest.raises(mc.ProblemError, match="ints ≥ 3"):
        mc.Grid([0.0], [1.0], [2])
    with pytest.raises(mc.ProblemError, match="damping"):
        mc.Picard(1.0)
    with pytest.raises(ValueError, match="max_steps"):
        mc.solve(mc.GridMFG(grid, 1.0, 0.5, *costs, good), mc.Picard(), max_steps=0)


# ---------------------------------------------------------------------------------------------
# slow: stiff solver, gradients, finer grids


@pytest.mark.slow
def test_kvaerno5_matches_closed_form():
    import diffrax

    a, q, eps, c, sigma, rho, T = SYSTEMIC_INPUTS[0]
    sol = mc.solve(mc.SystemicRisk(a, q, eps, c, sigma, rho, horizon=T), mc.Riccati(diffrax.Kvaerno5()))
    np.testing.assert_allclose(sol.riccati, eta_systemic(a, q, eps, c, T, np.asarray(sol.ts)), atol=1e-8)


@pytest.mark.slow
def test_value_gradient_matches_closed_form():
    import jax

    T, kappa, m0, var0, sigma = 1.5, 1.0, -0.5, 0.16, 0.6

    def value(qT):
        return mc.solve(mc.LQGame(qT=qT, kappaT=kappa, sigma=sigma, m0=m0, var0=var0, horizon=T), mc.Riccati()).value

    # J(q) = ½ q/(1 + qT)((m₀ − κ)² + var0) + ½σ² log(1 + qT)
    q = 2.0
    dJ = 0.5 * ((m0 - kappa) ** 2 + var0) / (1 + q * T) ** 2 + 0.5 * sigma**2 * T / (1 + q * T)
    assert abs(float(jax.grad(value)(q)) - dJ) < 1e-7


@pytest.mark.slow
def test_log_congestion_2d_fine_grid_meets_benchmark_gate():
    errs = []
    for n in (40, 80, 160):
        problem, rho, phi0 = gaussian_benchmark(n, 2)
        errs.append(gaussian_errors(mc.solve(problem, mc.Picard(0.5), tol=1e-9), rho, phi0))
    errs = np.array(errs)
    assert np.all(np.log2(errs[:-1] / errs[1:]) >= 0.8), errs
    assert errs[-1][0] < 0.03


def test_particles_driven_by_the_grid_feedback_reproduce_the_grid_moments(lq_grid_1d):
    """Grid vs particle solver on the 1-D LQ problem: N particles of `mfgx.neural.simulate`
    (Euler–Maruyama on the grid's time steps) driven by the grid equilibrium's control α(t, x)
    (linear interpolation in x) have the grid density's mean and variance, within the Monte Carlo
    error 4·sd/√N plus the grid's own O(h) error measured above (≤ 0.02 / 0.03 at n = 160)."""
    import jax

    from mfgx import neural

    sol = lq_grid_1d[160]
    x_nodes = sol.grid.axes[0]
    ts = np.asarray(sol.ts)
    dt = float(ts[1] - ts[0])
    vel = sol.velocity[..., 0]

    def control(t, x, s):
        n = jnp.clip(jnp.floor(t / dt + 1e-9).astype(int), 0, vel.shape[0] - 1)
        return jnp.interp(x[0], x_nodes, vel[n])

    N = 4000
    model = neural.ParticleSDE(drift=neural.Feedback(control), diffusion=neural.ConstantDiffusion(SIG))
    x0 = MU0 + S0 * jax.random.normal(jax.random.PRNGKey(0), (N, 1))
    every = max(1, (len(ts) - 1) // 10)
    obs_t = ts[::every]
    clouds = neural.simulate(model, x0, obs_t, jax.random.PRNGKey(1), integrator=neural.Integrator(dt))
    mean, var = np.asarray(clouds[..., 0].mean(1)), np.asarray(clouds[..., 0].var(1))
    sd = np.sqrt(np.asarray(sol.variance[::every, 0]))
    np.testing.assert_array_less(np.abs(mean - np.asarray(sol.mean[::every, 0])), 4 * sd / np.sqrt(N) + 0.02)
    np.testing.assert_array_less(np.abs(var - np.asarray(sol.variance[::every, 0])),
                                 4 * sd**2 * np.sqrt(2 / N) + 0.03)
