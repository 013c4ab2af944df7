"""Closed-form control games (the calibration paper's LQ jump-rate game) against independent checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfgx

N_POINTS = 30
GAME = mfgx.games.lq_rates(d=3, mu0=(0.5, 0.3, 0.2), n_points=N_POINTS)
SOLVER = mfgx.FixedPoint(0.0)


def solve(gamma, adjoint=mfgx.ImplicitAdjoint()):
    return mfgx.solve(GAME.with_params(gamma), SOLVER, tol=1e-13, max_steps=500, adjoint=adjoint)


def numpy_cost_to_go(control, mu, gamma, dt, q_bar=2.0, s=5.0, c=0.1, c_T=1.0):
    """Euler recursion u_n = Δt f(a_n) + (I + Δt Q(a_n)) u_{n+1}, u_N = g, with plain loops."""
    N, d = control.shape[0] - 1, mu.shape[1]
    u = s * (d - 1 - np.arange(d)) + c_T * mu[N]
    for n in range(N - 1, -1, -1):
        a = control[n] * (1 - np.eye(d))
        f = gamma * ((a - q_bar) ** 2 * (1 - np.eye(d))).sum(1) + c * mu[n]
        P = np.eye(d) + dt * (a - np.diag(a.sum(1)))
        u = dt * f + P @ u
    return u


def test_lq_equilibrium_and_value():
    eq = solve(1.55)
    assert bool(eq.converged) and float(eq.exploitability) < 1e-10
    flow = np.asarray(eq.flow)
    assert flow.min() >= 0 and np.allclose(flow.sum(1), 1, atol=1e-13)
    u = numpy_cost_to_go(np.asarray(eq.policy), flow, 1.55, GAME.dt)
    np.testing.assert_allclose(-np.asarray(eq.value[0]), u, atol=1e-11)
    # any other control is worse for a deviating agent: perturb the equilibrium control
    rng = np.random.default_rng(0)
    for _ in range(3):
        other = np.clip(np.asarray(eq.policy) + 0.3 * rng.normal(size=eq.policy.shape), 0, None)
        assert numpy_cost_to_go(other, flow, 1.55, GAME.dt) @ np.asarray(GAME.mu0) > u @ np.asarray(GAME.mu0)


def test_best_rates_minimise_the_hamiltonian():
    rng = np.random.default_rng(1)
    u_next, mu = jnp.asarray(rng.normal(size=3) * 3), jnp.asarray(rng.dirichlet(np.ones(3)))
    a = np.asarray(GAME.best_rates(0.0, mu, jnp.asarray(1.55), u_next))

    def hamiltonian(rates):
        rates = jnp.asarray(rates)
        return GAME.running_cost(0.0, mu, jnp.asarray(1.55), rates) + (rates * (1 - jnp.eye(3))) @ u_next - (
            rates * (1 - jnp.eye(3))
        ).sum(1) * u_next

    h_star = np.asarray(hamiltonian(a))
    for x in range(3):
        for y in range(3):
            if x == y:
                continue
            for delta in (-0.1, 0.1):
                b = a.copy()
                b[x, y] = max(b[x, y] + delta, 0.0)
                assert hamiltonian(b)[x] >= h_star[x] - 1e-12


def test_gradient_implicit_unrolled_fd():
    loss = lambda g, adj=mfgx.ImplicitAdjoint(): (solve(g, adj).flow[:, 0] ** 2).sum()  # noqa: E731
    implicit = float(jax.grad(loss)(1.55))
    unrolled = float(jax.grad(lambda g: loss(g, mfgx.UnrolledAdjoint()))(1.55))
    f, h = jax.jit(loss), 1e-6
    fd = float((f(1.55 + h) - f(1.55 - h)) / (2 * h))
    assert abs(implicit) > 1e-3
    np.testing.assert_allclose(implicit, unrolled, rtol=1e-10)
    np.testing.assert_allclose(implicit, fd, rtol=1e-6)
    # a constant path's gradient sums to the scalar gradient
    path_game = mfgx.games.lq_rates(d=3, mu0=(0.5, 0.3, 0.2), n_points=N_POINTS, gamma=jnp.full(N_POINTS, 1.55))
    path_loss = lambda p: (mfgx.solve(path_game.with_params(p), SOLVER, tol=1e-13, max_steps=500).flow[:, 0] ** 2).sum()  # noqa: E731
    np.testing.assert_allclose(float(jax.grad(path_loss)(jnp.full(N_POINTS, 1.55)).sum()), implicit, rtol=1e-10)


def test_euler_positivity_failure_is_an_error():
    with pytest.raises(Exception, match="negative mass"):
        mfgx.solve(mfgx.games.lq_rates(d=8, n_points=20), SOLVER, max_steps=50)


def test_policy_solvers_are_rejected():
    with pytest.raises(TypeError, match="needs finite actions"):
        mfgx.solve(GAME, mfgx.MirrorDescent())


def test_bike_share_nests_the_forward_ode():
    """c = 0, g = 0: the value is 0, a* = q^base, and the equilibrium flow is μ_{n+1} = μ_n (I + Δt Q^base)."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0.1, 2.0, size=(4, 4)) * (1 - np.eye(4))
    mu0 = rng.dirichlet(np.ones(4))
    game = mfgx.games.bike_share(base, c=0.0, mu0=mu0, n_points=21)
    eq = mfgx.solve(game, SOLVER, tol=1e-13, max_steps=50)
    Q = base - np.diag(base.sum(1))
    flow = [mu0]
    for _ in range(20):
        flow.append(flow[-1] @ (np.eye(4) + game.dt * Q))
    np.testing.assert_allclose(np.asarray(eq.flow), np.array(flow), atol=1e-13)
    np.testing.assert_allclose(np.asarray(eq.value), 0.0, atol=1e-13)
    # with congestion cost, agents avoid crowded stations: fewer rides into the most crowded one
    crowded = mfgx.solve(game.with_params({**game.params, "c": jnp.asarray(2.0)}), SOLVER, tol=1e-12, max_steps=200)
    assert bool(crowded.converged) and float(crowded.exploitability) < 1e-10
    target = int(np.argmax(np.asarray(crowded.flow[0])))
    assert np.asarray(crowded.policy)[0, :, target].sum() < base[:, target].sum()


# --- implicit scheme and mean-field control (vector parameters) -----------------------------------


def _implicit_and_fd(loss, x, direction, h=1e-6):
    """(implicit-adjoint gradient, central-difference directional derivative, jitted loss) of loss(x)."""
    implicit = np.asarray(jax.grad(loss)(x))
    f = jax.jit(loss)
    return implicit, float((f(x + h * direction) - f(x - h * direction)) / (2 * h)), f


def test_implicit_scheme_positivity_and_gradient():
    """Implicit steps on a grid where explicit Euler loses positivity; gradient vs central differences.
    (Implicit vs unrolled on this game agree to 1e-10; left out here for test time: see the Euler LQ test.)"""
    x = jnp.linspace(0.5, 2.0, 15)  # a time path γ[N]
    game = mfgx.games.lq_rates(d=3, mu0=(0.5, 0.3, 0.2), n_points=15, gamma=x, scheme="implicit")
    with pytest.raises(Exception, match="negative mass"):
        mfgx.solve(mfgx.games.lq_rates(d=3, mu0=(0.5, 0.3, 0.2), n_points=15, gamma=x), SOLVER, max_steps=30)
    eq = mfgx.solve(game, SOLVER, tol=1e-13, max_steps=30)
    flow = np.asarray(eq.flow)
    assert bool(eq.converged) and flow.min() >= 0 and np.allclose(flow.sum(1), 1, atol=1e-12)
    assert float(eq.exploitability) < 1e-10  # the control is the exact best response of the discrete game

    def loss(gamma):
        eq = mfgx.solve(game.with_params(gamma), SOLVER, tol=1e-13, max_steps=30)  # converges in 11 steps
        return (eq.flow[:, 0] ** 2).sum() + eq.value[0] @ game.mu0

    direction = jnp.asarray(np.random.default_rng(0).normal(size=15))
    implicit, fd, _ = _implicit_and_fd(loss, x, direction)
    assert np.abs(implicit).max() > 1e-3
    np.testing.assert_allclose(implicit @ np.asarray(direction), fd, rtol=1e-6)


MFC_KW = dict(d=3, T=1.0, n_points=12, c=2.0, p=2.0, q_bar=0.3, s=0.0, c_T=0.0, mu0=(0.6, 0.3, 0.1), per_state=True)
MFC_THETA = jnp.array([0.5, 1.0, 2.0])


def test_mfc_is_the_social_optimum():
    """The planner's solution (Pontryagin adjoint) is a stationary point of the social cost J(a),
    differentiated independently by autodiff through the flow, and a minimum. (Also holds for Euler.)"""
    mfc = mfgx.games.lq_rates(gamma=MFC_THETA, problem="mfc", scheme="implicit", **MFC_KW)
    opt = mfgx.solve(mfc, mfgx.FixedPoint(0.5), tol=1e-13, max_steps=60)
    assert bool(opt.converged)
    J = jax.jit(jax.value_and_grad(lambda a: mfgx.finite.social_cost(mfc, a)))
    j_opt, dJ = J(opt.policy)
    a = np.asarray(opt.policy)[:-1]
    assert a[:, ~np.eye(3, dtype=bool)].min() > 1e-6  # interior: the first-order condition is dJ/da = 0
    assert np.abs(np.asarray(dJ)[:-1] * (1 - np.eye(3))).max() < 1e-10
    rng = np.random.default_rng(2)
    for _ in range(3):  # and every perturbed control costs more
        other = jnp.clip(opt.policy + 0.05 * rng.normal(size=opt.policy.shape), 0, None)
        assert float(J(other)[0]) > float(j_opt) + 1e-8


def test_mfc_vector_parameter_gradient():
    mfc = mfgx.games.lq_rates(gamma=MFC_THETA, problem="mfc", scheme="implicit", **MFC_KW)

    def loss(theta):
        # undamped Picard cycles on this planner's problem; damped by 0.5 it converges in 39 steps
        eq = mfgx.solve(mfc.with_params(theta), mfgx.FixedPoint(0.5), tol=1e-13, max_steps=60)
        return (eq.flow[:, 0] ** 2).sum() + (eq.flow[:, 2] ** 3).sum()

    direction = jnp.array([0.3, -1.0, 0.7])
    implicit, fd, f = _implicit_and_fd(loss, MFC_THETA, direction)
    assert np.abs(implicit).min() > 1e-4  # every component of θ moves the planner's flow
    np.testing.assert_allclose(implicit @ np.asarray(direction), fd, rtol=1e-6)
    # each component separately (central differences along the coordinate axes)
    h = 1e-6
    for i in range(3):
        e = jnp.zeros(3).at[i].set(h)
        np.testing.assert_allclose(implicit[i], (f(MFC_THETA + e) - f(MFC_THETA - e)) / (2 * h), rtol=1e-5)


def paper_picard_map(mu, gamma, mu0, dt, q_bar=2.0, s=5.0, c=0.1, c_T=1.0):
    """The calibration paper's Picard map Φ(μ) with plain loops, transcribed from its equations
    (shared/science/finite_state_calibration.md §2.2–2.3, LQ game of §6.1, κ = 0, p = 1): explicit
    HJB with the control from u_{n+1}, then explicit Euler forward with rates recomputed from u_n."""
    N, d = mu.shape
    off = 1 - np.eye(d)

    def rates(u, g):
        du = u[None, :] - u[:, None]
        return np.clip(q_bar - du / (2 * g), 0, 100) * off

    u = np.zeros((N, d))
    u[N - 1] = s * (d - 1 - np.arange(d)) + c_T * mu[N - 1]
    for n in range(N - 2, -1, -1):
        a = rates(u[n + 1], gamma[n])
        f = gamma[n] * ((a - q_bar) ** 2 * off).sum(1) + c * mu[n]
        H = (a * (u[n + 1][None, :] - u[n + 1][:, None])).sum(1)
        u[n] = u[n + 1] + dt * (f + H)
    out = np.zeros((N, d))
    out[0] = mu0
    for n in range(N - 1):
        a = rates(u[n], gamma[n])
        out[n + 1] = out[n] + dt * (out[n] @ a - out[n] * a.sum(1))
    return out


@pytest.mark.parametrize("d", [3, 5])
def test_calibration_paper_scheme_reproduces_the_papers_picard_map(d):
    rng = np.random.default_rng(d)
    N, T = 12 * d, 2.0  # explicit steps need Δt × out-rate < 1 to keep μ ≥ 0
    dt = T / (N - 1)
    mu0 = rng.dirichlet(np.ones(d))
    gamma = rng.uniform(0.5, 3.0, N)
    game = mfgx.games.lq_rates(gamma, d=d, mu0=mu0, T=T, n_points=N, scheme="calibration_paper")
    flow = rng.dirichlet(np.ones(d), size=N)  # any input flow, not an equilibrium
    got = np.asarray(mfgx.fixed_point_map(game, mfgx.FixedPoint(0.0), jnp.asarray(flow)))
    np.testing.assert_allclose(got, paper_picard_map(flow, gamma, mu0, dt), rtol=0, atol=1e-12)
    # the paper's data generator: undamped Picard from μ₀ at every time, stop when max|Δμ| ≤ 1e-5
    # after at least 3 maps; `solve` with FixedPoint(0) and tol 1e-5 runs the same iterates
    prev, cur, k = np.tile(mu0, (N, 1)), None, 0
    cur = paper_picard_map(prev, gamma, mu0, dt)
    while k < 2 or np.abs(cur - prev).max() > 1e-5:
        prev, cur, k = cur, paper_picard_map(cur, gamma, mu0, dt), k + 1
    eq = mfgx.solve(game, mfgx.FixedPoint(0.0), tol=1e-5, max_steps=1000, diagnostics=False)  # the root iterate
    assert int(eq.steps) >= 3
    np.testing.assert_allclose(np.asarray(eq.mean_field), cur, rtol=0, atol=1e-12)
    # and it differs from mfgx's consistent Euler scheme by O(Δt), which the exploitability shows
    consistent = mfgx.solve(eqx_replace_scheme(game, "euler"), mfgx.FixedPoint(0.0), tol=1e-12, max_steps=1000)
    paper = mfgx.solve(game, mfgx.FixedPoint(0.0), tol=1e-12, max_steps=1000)
    gap = np.abs(np.asarray(consistent.flow) - np.asarray(paper.flow)).max()
    assert 1e-6 < gap < 0.5  # O(Δt) at Δt ≈ 1/(6d), rates ~ q̄ = 2
    assert float(consistent.exploitability) < 1e-9 < float(paper.exploitability)


def eqx_replace_scheme(game, scheme):
    return mfgx.ControlGame(
        game.mu0, game.running_cost, game.terminal_cost, game.best_rates, game.horizon, game.dt, game.params, scheme=scheme
    )


def test_calibration_paper_scheme_is_mfg_only():
    with pytest.raises(mfgx.GameError, match="problem='mfg'"):
        mfgx.games.lq_rates(d=3, scheme="calibration_paper", problem="mfc")
