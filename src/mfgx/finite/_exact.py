"""`ExactNash`: a primal–dual interior-point solver for potential mean-field games.

A finite-horizon game whose kernel does not depend on the mean field and whose reward is
r_t(x, a; μ_t) = b_t(x, a) + g_t(x; μ_t) with g_t = ∇Φ_t for a concave potential Φ_t (∂g_t/∂μ
symmetric and negative semidefinite) has its Nash equilibria at the maximisers of the concave program
over state–action flows m_t(x, a) ≥ 0 (μ_t = Σ_a m_t(·, a)):

    max  F(m) = Σ_t [Φ_t(μ_t) + Σ_{x,a} b_t(x, a) m_t(x, a)]
    s.t. Σ_a m_0(x, a) = μ₀(x),   Σ_a m_{t+1}(x′, a) = Σ_{x,a} P_t(x′|x, a) m_t(x, a).

Its KKT conditions are the Nash conditions: the multipliers V_t(x) are the values, the slacks
z = V_t(x) − r_t(x, a) − Σ_{x′} P_t(x′|x, a) V_{t+1}(x′) ≥ 0 are the regrets of each action, and
m ∘ z = 0 says that only best actions carry mass. Mehrotra's predictor–corrector drives m ∘ z to 0
superlinearly. Each step solves one block-tridiagonal system in ΔV (T + 1 blocks of S × S) by a
block Cholesky sweep in time; the per-time blocks are built from the sparse kernel (O(S·(A·K)²) for a
`NeighbourKernel`), only the Schur complements are dense.
"""

from __future__ import annotations

import dataclasses
import weakref

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float

from ._dynamics import propagate, rewards, score, uniform_policy
from ._game import FiniteGame
from ._kernels import NeighbourKernel
from ._solvers import AbstractSolver, _check_positive
from ._validate import GameError, _is_traced


def _kernel_blocks(game: FiniteGame, t, mu_t, d, extra) -> tuple[Float[Array, "S S"], Float[Array, "S S"]]:
    """For d[x, a] > 0 (δ_x = Σ_a d) and extra[x] ≥ 0: C[x, y] = Σ_a d P(y|x, a) and

        G = Σ_x P_xᵀ M_x P_x,   M_x = [diag(d_x) − d_x d_xᵀ/δ_x] + extra_x d_x d_xᵀ,

    P_x the A × S matrix of rows P(·|x, a). The bracket is formed without cancellation (its diagonal
    is d_a Σ_{b≠a} d_b / δ): G stays accurate when one action's weight dwarfs the others'."""
    S, A = d.shape
    delta = d.sum(-1)
    delta = jnp.where(delta > 0, delta, 1.0)  # d = 0 (a state no policy reaches): M = 0
    others = jnp.stack([sum((d[:, b] for b in range(A) if b != a), jnp.zeros(S, d.dtype)) for a in range(A)], -1)
    M = -(d[:, :, None] * d[:, None, :]) / delta[:, None, None]
    M = M.at[:, jnp.arange(A), jnp.arange(A)].set(d * others / delta[:, None])
    M = M + extra[:, None, None] * d[:, :, None] * d[:, None, :]
    kernel = game.kernel
    if isinstance(kernel, NeighbourKernel):  # O(S·(A·K)²) scatters, no S×S×A intermediate
        w = kernel._w(t, mu_t, game.params)
        dest = kernel.dest
        rows = jnp.broadcast_to(jnp.arange(S)[:, None, None], dest.shape)
        C = jnp.zeros((S, S), d.dtype).at[rows.ravel(), dest.ravel()].add((d[..., None] * w).ravel())
        coef = M[:, :, None, :, None] * w[:, :, :, None, None] * w[:, None, None, :, :]  # [S, A, K, A, K]
        i = jnp.broadcast_to(dest[:, :, :, None, None], coef.shape)
        j = jnp.broadcast_to(dest[:, None, None, :, :], coef.shape)
        G = jnp.zeros((S, S), d.dtype).at[i.ravel(), j.ravel()].add(coef.ravel())
        return G, C
    P = kernel.matrix(t, mu_t, game.params)  # [S, A, S]
    return jnp.einsum("xay,xab,xbz->yz", P, M, P), (d[..., None] * P).sum(1)


def _block_cholesky(diag, upper):
    """Factor the SPD block-tridiagonal N (diagonal blocks ``diag[t]``, N_{t,t+1} = ``upper[t]``) as
    N = L̃ L̃ᵀ, L̃ with diagonal blocks L_t (lower Cholesky) and blocks W_tᵀ below them,
    W_t = L_{t−1}⁻¹ N_{t−1,t}. Returns (L_t⁻¹, W_t): solves are then matrix–vector products only
    (a chain of small triangular solves costs far more per flop on CPU)."""
    S = diag.shape[-1]
    eye = jnp.eye(S, dtype=diag.dtype)
    upper_in = jnp.concatenate([jnp.zeros((1, S, S), diag.dtype), upper])  # N_{t−1,t}, zero for t = 0

    def fwd(Li_prev, xs):
        D_t, U_t = xs
        W = Li_prev @ U_t
        L = jnp.linalg.cholesky(D_t - W.T @ W)
        Li = jax.scipy.linalg.solve_triangular(L, eye, lower=True)
        return Li, (Li, W)

    _, (Lis, Ws) = lax.scan(fwd, eye, (diag, upper_in))
    return Lis, Ws


def _block_solve(Lis, Ws, rhs):
    """Solve N x = rhs with the factors of `_block_cholesky`."""

    def fwd(y_prev, xs):
        Li, W, b = xs
        y = Li @ (b - W.T @ y_prev)
        return y, y

    _, ys = lax.scan(fwd, jnp.zeros_like(rhs[0]), (Lis, Ws, rhs))
    W_next = jnp.concatenate([Ws[1:], jnp.zeros_like(Ws[:1])])

    def bwd(x_next, xs):
        Li, W, y = xs
        x = Li.T @ (y - W @ x_next)
        return x, x

    _, xs = lax.scan(bwd, jnp.zeros_like(rhs[0]), (Lis, W_next, ys), reverse=True)
    return xs


class _Problem(eqx.Module):
    """The concave program of a game: A m (flow balance), Aᵀ V, the gradient r(μ) and curvature −∂g/∂μ."""

    game: FiniteGame

    def times(self):
        return jnp.arange(self.game.horizon)

    def push(self, m):
        g = self.game
        return jax.vmap(lambda t, mt: g.kernel.push(t, mt.sum(-1), g.params, mt))(self.times(), m[:-1])

    def expect(self, V):
        g = self.game
        return jax.vmap(lambda t, v: g.kernel.expect(t, g.mu0, g.params, v))(self.times(), V[1:])

    def A(self, m):
        """(A m)_t = Σ_a m_t(·, a) − Σ_{x,a} P_{t−1}(·|x, a) m_{t−1}(x, a)."""
        return m.sum(-1).at[1:].add(-self.push(m))

    def AT(self, V):
        """(Aᵀ V)_t(x, a) = V_t(x) − Σ_{x′} P_t(x′|x, a) V_{t+1}(x′) (V_{T+1} = 0)."""
        return jnp.broadcast_to(V[..., None], V.shape + (self.game.n_actions,)).at[:-1].add(-self.expect(V))

    def rhs(self):
        return jnp.zeros((self.game.horizon + 1, self.game.n_states), self.game.mu0.dtype).at[0].set(self.game.mu0)

    def gradient(self, mu):
        return rewards(self.game, mu)

    def curvature(self, mu, separable: bool):
        """Y_t = −∂g_t/∂μ_t (g_t = r_t(·, a₀)), positive semidefinite: its diagonal [T+1, S] when the
        potential is separable (Y diagonal), else the symmetrised [T+1, S, S]."""
        g = self.game

        def jac(t, mu_t):
            fn = lambda m: g.reward(t, m, g.params)[:, 0]  # noqa: E731
            if separable:  # J 1 = diag J for a diagonal J: one JVP
                return -jax.jvp(fn, (mu_t,), (jnp.ones_like(mu_t),))[1]
            Jt = jax.jacfwd(fn)(mu_t)
            return -0.5 * (Jt + Jt.T)

        return jax.vmap(jac)(g.times(), mu)

    def newton_factor(self, m, z, Y, live):
        """Factor N = A W⁻¹ Aᵀ, W_t = diag(z/m) + Eᵀ Y_t E (E sums over actions). With d = m/z,
        Δ = diag Σ_a d and B = (I + ΔY)⁻¹ (no cancellation in these forms):
        E W⁻¹ Eᵀ = B Δ, E W⁻¹ Kᵀ = B C, K W⁻¹ Kᵀ = G − Cᵀ Y B C (C, G: `_kernel_blocks`; for a
        separable potential the last is one G with the correction inside M_x)."""
        game = self.game
        d = jnp.where(live[..., None], m / z, 0.0)  # states no policy reaches carry no variables
        delta = d.sum(-1)
        if Y.ndim == 2:  # separable: B diagonal, K W⁻¹ Kᵀ = Σ_x P_xᵀ [diag d − d dᵀ y/(1 + yδ)] P_x
            B = 1.0 / (1.0 + Y * delta)
            extra = B / jnp.where(live, delta, 1.0)
        else:
            eye = jnp.eye(game.n_states, dtype=m.dtype)
            B = jnp.linalg.inv(eye + delta[:, :, None] * Y)
            extra = 1.0 / jnp.where(live, delta, 1.0)  # G = K D⁻¹ Kᵀ; the dense correction −Cᵀ Y B C follows
        G, C = jax.vmap(lambda t, mu_t, dt, et: _kernel_blocks(game, t, mu_t, dt, et))(
            self.times(), m[:-1].sum(-1), d[:-1], extra[:-1])
        if Y.ndim == 2:
            EWE = jax.vmap(jnp.diag)(B * delta)
            EWK = B[:-1, :, None] * C
            KWK = G
        else:
            EWE = B * delta[:, None, :]
            EWK = jnp.einsum("txy,tyz->txz", B[:-1], C)
            KWK = G - jnp.einsum("txy,txz->tyz", C, jnp.einsum("txy,tyz->txz", Y[:-1], EWK))
        diag = EWE.at[1:].add(0.5 * (KWK + jnp.swapaxes(KWK, -1, -2)))
        diag = diag + jax.vmap(jnp.diag)(jnp.where(live, 0.0, 1.0))  # ΔV = 0 where nobody can be
        Ls, Ws = _block_cholesky(diag, -EWK)
        return d, delta, B, Ls, Ws

    def apply_Winv(self, factor, u):
        """W⁻¹u = d(u − ū) + (d/Δ) B Σ_a d u, ū = Σ_a d u / Δ (the weighted mean over actions)."""
        d, delta, B = factor[:3]
        s = (d * u).sum(-1)
        w = B * s if B.ndim == 2 else jnp.einsum("txy,ty->tx", B, s)
        delta = jnp.where(delta > 0, delta, 1.0)
        return d * (u - (s / delta)[..., None]) + d * (w / delta)[..., None]

    def apply_W(self, m, z, Y, v):
        """W v = (z/m) v + Eᵀ Y E v (v = 0 where m = 0)."""
        ev = v.sum(-1)
        yv = Y * ev if Y.ndim == 2 else jnp.einsum("txy,ty->tx", Y, ev)
        return z / jnp.where(m > 0, m, 1.0) * v + yv[..., None]

    def newton(self, factor, m, z, Y, r_d, r_p, r_c, refine):
        """(Δm, ΔV, Δz) of the linearised KKT system W Δm + Aᵀ ΔV = u, A Δm = r_p (u = r_d + r_c/m),
        Δz = (r_c − z Δm)/m, with ``refine`` steps of iterative refinement on the first two equations."""
        Ls, Ws = factor[3:]

        def refined(_, carry):  # the first pass starts from 0: one traced copy of the solve
            dm, dV = carry
            res_u = u - self.AT(dV) - self.apply_W(m, z, Y, dm)
            dV_new = _block_solve(Ls, Ws, self.A(self.apply_Winv(factor, res_u)) - (r_p - self.A(dm)))
            return dm + self.apply_Winv(factor, res_u - self.AT(dV_new)), dV + dV_new

        live = factor[0] > 0
        safe_m = jnp.where(live, m, 1.0)
        u = jnp.where(live, r_d + r_c / safe_m, 0.0)
        dm, dV = lax.fori_loop(0, refine + 1, refined, (jnp.zeros_like(m), jnp.zeros_like(r_p)))
        dz = jnp.where(live, (r_c - z * dm) / safe_m, 0.0)
        return dm, dV, dz


def _policy(m):
    """π_t(a|x) = m_t(x, a)/μ_t(x), uniform where μ_t(x) = 0."""
    mass = m.sum(-1, keepdims=True)
    return jnp.where(mass > 0, m / jnp.where(mass > 0, mass, 1.0), 1.0 / m.shape[-1])


def _max_step(x, dx):
    """The largest α ≤ 1 with x + α dx ≥ 0."""
    ratio = jnp.where(dx < 0, -x / jnp.where(dx < 0, dx, -1.0), jnp.inf)
    return jnp.minimum(1.0, ratio.min())


class ExactNash(AbstractSolver):
    r"""Exact Nash equilibria of *potential* games by a primal–dual interior-point method.

    Applies to finite-horizon games with a state mean field whose kernel does not depend on μ and
    whose reward is r_t(x, a; μ_t) = b_t(x, a) + g_t(x; μ_t), the μ-dependent part g_t the gradient of
    a concave potential (∂g_t/∂μ_t symmetric negative semidefinite): log-congestion −log(μ(x) + ε),
    linear congestion −c μ(x), and any concave potential of the whole distribution. Such an
    equilibrium maximises the concave program F(m) over state–action flows m_t(x, a) ≥ 0 with flow
    balance (see the module docstring); its multipliers are the values V_t(x) and its slacks the
    regrets z_t(x, a) = V_t(x) − Q_t(x, a) ≥ 0. Each step is one Mehrotra predictor–corrector Newton
    step on (m, V, z) with the central path m ∘ z = σ μ̂: one factorisation of a block-tridiagonal
    system (T + 1 blocks of S × S), two solves. The iterates converge superlinearly near the
    solution. Other games are rejected with a `GameError` when `solve` starts (probes at t = 0 and
    T and two random μ, skipped for traced games).

    The residual is the ordinary exploitability of the policy π_t(a|x) = m_t(x, a)/μ_t(x) (the best
    iterate so far), so ``tol`` certifies the equilibrium. When no further progress is possible (a
    Newton step failed, e.g. a Cholesky breakdown; the gap m·z reached float64 resolution; or 5 steps
    without improvement) the loop stops with residual NaN: not converged, and the `Equilibrium`
    holds the best iterate and its exploitability.

    Gradients are not available yet: the default implicit adjoint differentiates the exact
    best-response map (as for `MirrorDescent`), which misses the control channel — on
    `two_state_congestion` it gives ∂μ_1(0)/∂c = (0, 0) where the truth is (−2/9, 1/9), and a
    `NonSmoothWarning` says so. The exact derivative is one more solve with the Newton matrix at the
    solution (the KKT system linearised on the active set, right-hand side ∂r/∂θ·θ̇), not yet wired
    into `solve`; use `Softmax(τ)` when gradients are needed.

    Cost per step: the factorisation, O((T + 1)·S³) with dense S × S Schur complements, dominates. On
    CPU it is a chain of small LAPACK calls: run with a single-threaded BLAS
    (``OPENBLAS_NUM_THREADS=1``) when cores are shared, a threaded one was 10–100× slower there.

    - `step_fraction`: the fraction of the step to the boundary taken (0.99–0.9999).
    - `start_gap`: the regret κ > 0 every action starts with (V starts at V* + κ(T + 1 − t)).
    - `separable`: whether g_t(x; μ) depends on μ(x) only (diagonal curvature, O(S) per time instead of
      an S × S inverse). None: detected by `solve` from the probe (dense for traced games).
    - `refine`: steps of iterative refinement of the corrector's Newton solve (accuracy near the solution).
    - `skip_unreachable`: drop the variables of (t, x) no policy reaches (fewer steps on crowd_avoidance,
      29 → 19 steps, and four-rooms, 29 → 22, but on crowd_modelling_2d_maze the gap then did not move
      in 6 steps, where the default converges in 77: off by default).
    """

    step_fraction: float = 0.995
    start_gap: float = 1.0
    separable: bool | None = eqx.field(static=True, default=None)
    refine: int = eqx.field(static=True, default=1)
    skip_unreachable: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        _check_positive("start_gap", self.start_gap)
        if not 0.5 <= self.step_fraction < 1:
            raise ValueError(f"step_fraction must be in [0.5, 1), got {self.step_fraction}")

    def prepare(self, game) -> "ExactNash":
        """`solve`'s hook, on the concrete game before compiling: raise `GameError` unless the game is
        one `ExactNash` applies to (see above); fix ``separable`` when it is None."""
        separable = self.check_game(game)
        if self.separable is None:
            return dataclasses.replace(self, separable=bool(separable))
        if self.separable and separable is False:
            raise GameError("ExactNash(separable=True): ∂r_t(x, ·)/∂μ(y) is not zero for y ≠ x in this game")
        return self

    def check_game(self, game) -> bool | None:
        """Raise `GameError` unless the game is one `ExactNash` applies to (see the class docstring);
        return whether its potential is separable (None when the game is traced and not probed)."""
        name = type(self).__name__
        if not isinstance(game, FiniteGame):
            raise GameError(f"{name} solves a FiniteGame, got {type(game).__name__}")
        if game.stationary:
            raise GameError(f"{name} solves finite-horizon games; this game is discounted (stationary)")
        if game.mean_field != "state":
            raise GameError(f"{name} needs mean_field='state' (a potential in μ); this game sees the joint μπ")
        if _is_traced((game.mu0, game.params)):
            return None
        key = id(game)
        hit = _PROBED.get(key)
        if hit is None or hit[0]() is not game:  # probe each game object once (solve in a loop)
            _PROBED[key] = (weakref.ref(game, lambda _: _PROBED.pop(key, None)), _check_potential(game, name))
        return _PROBED[key][1]

    def init(self, game):
        pi = uniform_policy(game)
        mu = propagate(game, pi)
        # (t, x) some policy reaches (the uniform policy reaches them all), or all of them
        live = mu > 0 if self.skip_unreachable else jnp.ones(mu.shape, bool)
        # > 0 wherever anybody can be; the floor keeps the start off the boundary where the uniform
        # flow is tiny (a point mass μ₀ spreading: 1e-45 at its front), at a 1e-10 primal infeasibility
        m = jnp.where(live[..., None], mu[..., None] * pi + 1e-10, 0.0)
        prob = _Problem(game)
        r = prob.gradient(m.sum(-1))
        V = _best_values(game, r) + self.start_gap * (game.horizon + 1 - jnp.arange(game.horizon + 1))[:, None]
        z = prob.AT(V) - r
        pi = _policy(m)
        sc = score(game, pi)
        return dict(m=m, V=V, z=z, live=live, k=jnp.asarray(0), pi=pi, mf=sc["mf"], expl=sc["expl"],
                    since_best=jnp.asarray(0), stalled=jnp.asarray(False))

    def _update(self, game, state, m, V, z, finite):
        """The state after a step to (m, V, z): the best iterate so far (lowest exploitability) is
        what the state reports; ``stalled`` once the complementarity gap is at float64 resolution, the
        best has not improved for 5 steps, or the step failed."""
        pi = _policy(m)
        sc = score(game, pi)
        better = finite & (sc["expl"] < state["expl"])
        keep = lambda new, old: jnp.where(better, new, old)  # noqa: E731
        since_best = jnp.where(better, 0, state["since_best"] + 1)
        scale = 1.0 + jnp.abs(jnp.dot(game.mu0, V[0]))
        stalled = ~finite | (jnp.vdot(m, z) <= 1e-12 * scale) | (since_best >= 5)
        return dict(m=m, V=V, z=z, live=state["live"], k=state["k"] + 1, pi=keep(pi, state["pi"]),
                    mf=keep(sc["mf"], state["mf"]), expl=keep(sc["expl"], state["expl"]), since_best=since_best,
                    stalled=stalled)

    def step(self, game, state):
        """One predictor–corrector step; residual: the best exploitability so far, NaN once stalled
        (the loop stops there, not converged)."""
        return lax.cond(state["stalled"], lambda s: (s, jnp.full((), jnp.nan, s["expl"].dtype)),
                        lambda s: self._step(game, s), state)

    def _step(self, game, state):
        prob = _Problem(game)
        m, V, z = state["m"], state["V"], state["z"]
        mu = m.sum(-1)
        live = state["live"]
        n = jnp.maximum(live.sum() * game.n_actions, 1)
        r_d = prob.gradient(mu) - prob.AT(V) + z
        r_p = prob.rhs() - prob.A(m)
        gap = jnp.vdot(m, z) / n
        Y = prob.curvature(mu, bool(self.separable))
        factor = prob.newton_factor(m, z, Y, live)
        # Predictor (affine scaling), then Mehrotra's centring and second-order correction: two passes
        # of one traced Newton solve (a scan of length 2 compiles it once).
        def phase(carry, corrector):
            dm_a, dz_a = carry
            a_aff = jnp.minimum(_max_step(m, dm_a), _max_step(z, dz_a))
            sigma = jnp.clip(jnp.vdot(m + a_aff * dm_a, z + a_aff * dz_a) / n / gap, 0.0, 1.0) ** 3
            r_c = jnp.where(corrector, sigma * gap - m * z - dm_a * dz_a, -m * z)
            dm, dV, dz = prob.newton(factor, m, z, Y, r_d, r_p, r_c, jnp.where(corrector, self.refine, 0))
            return (dm, dz), dV

        zero = jnp.zeros_like(m)
        (dm, dz), dVs = lax.scan(phase, (zero, zero), jnp.array([False, True]))
        dV = dVs[1]
        alpha = self.step_fraction * jnp.minimum(_max_step(m, dm), _max_step(z, dz))
        new = (m + alpha * dm, V + alpha * dV, z + alpha * dz)
        finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in new])) & (alpha > 0)
        m, V, z = (jnp.where(finite, a, b) for a, b in zip(new, (m, V, z)))
        out = self._update(game, state, m, V, z, finite)
        return out, jnp.where(finite, out["expl"], jnp.nan)

    def mean_field(self, game, state):
        return state["mf"]

    def policy(self, game, state):
        return state["pi"]


def _best_values(game, r):
    """V*_t of the exact best response to the rewards r[T+1, S, A] (kernel independent of μ)."""
    mu = jnp.broadcast_to(game.mu0, r.shape[:2])

    def back(v_next, xs):
        t, r_t, mu_t = xs
        v = (r_t + game.kernel.expect(t, mu_t, game.params, v_next)).max(-1)
        return v, v

    _, V = lax.scan(back, jnp.zeros(game.n_states, r.dtype), (game.times(), r, mu), reverse=True)
    return V


_PROBED: dict = {}  # id(game) -> (weak reference, separable): games already probed


def _check_potential(game: FiniteGame, name: str) -> bool:
    """Probe the game at t ∈ {0, T} and two random μ: kernel independent of μ, reward differences
    between actions independent of μ, ∂g/∂μ symmetric and negative semidefinite. Returns whether
    ∂g/∂μ is diagonal (a separable potential)."""
    S, A = game.n_states, game.n_actions
    rng = np.random.default_rng(0)
    mus = [jnp.asarray(rng.dirichlet(np.ones(S)), game.mu0.dtype) for _ in range(2)]
    v = jnp.asarray(rng.standard_normal(S), game.mu0.dtype)
    why = (f"{name} applies to potential games only (kernel independent of μ, reward b(x, a) + g(x; μ) with "
           "g = ∇Φ for a concave potential Φ); ")
    separable = True
    for t in sorted({0, game.horizon}):
        if t < game.horizon:
            e0, e1 = (np.asarray(game.kernel.expect(t, mu, game.params, v)) for mu in mus)
            if not np.allclose(e0, e1, rtol=1e-9, atol=1e-12):
                raise GameError(why + f"the transition kernel depends on the mean field (at t = {t})")
        r0, r1 = (np.asarray(game.reward(t, mu, game.params)) for mu in mus)
        if not np.allclose(r0 - r0[:, :1], r1 - r1[:, :1], rtol=1e-9, atol=1e-12):
            raise GameError(why + f"the reward's dependence on μ differs between actions (at t = {t})")
        J = np.asarray(jax.jacfwd(lambda m: game.reward(t, m, game.params)[:, 0])(mus[0]))
        scale = max(np.abs(J).max(), 1.0)
        if not np.allclose(J, J.T, rtol=1e-8, atol=1e-10 * scale):
            raise GameError(why + f"∂r/∂μ is not symmetric (at t = {t}): no potential")
        if np.linalg.eigvalsh(0.5 * (J + J.T)).max() > 1e-9 * scale:
            raise GameError(why + f"∂r/∂μ has a positive eigenvalue (at t = {t}): the potential is not concave")
        separable = separable and bool(np.all(np.abs(J - np.diag(np.diag(J))) <= 1e-12 * scale))
    return separable
