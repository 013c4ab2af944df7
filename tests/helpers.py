"""Shared test games, jitted entry points and independent NumPy references.

Compilation dominates the cost of this suite, so every game here is built from *module-level*
functions whose randomness lives in ``params`` (arrays, traced by ``eqx.filter_jit``): two games of
the same shape share one compiled best response / evaluation / propagation / solve.

The NumPy references below are plain loops written from the mathematical definitions in the
docstrings of `mfgx.FiniteGame`, `mfgx.best_response`, `mfgx.evaluate`, `mfgx.exploitability`;
they share no code with mfgx.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

import mfgx

# Fixed small shapes, so that nothing recompiles across tests and hypothesis examples.
S, A, T = 4, 3, 3

# --------------------------------------------------------------------------------------------
# jitted entry points (one compilation per game structure/shape, reused everywhere)
# --------------------------------------------------------------------------------------------

best_response_jit = eqx.filter_jit(mfgx.best_response)
evaluate_jit = eqx.filter_jit(mfgx.evaluate)
propagate_jit = eqx.filter_jit(mfgx.propagate)
exploitability_jit = eqx.filter_jit(mfgx.exploitability)


@eqx.filter_jit
def kernel_matrix_jit(game, t, m):
    return game.kernel.matrix(t, m, game.params)


# One solver configuration for the closed-form games: reusing (solver, max_steps) reuses the
# compiled `solve` (static arguments of its jit).
MD = mfgx.MirrorDescent(1.0)
MD_TOL = 1e-10
MD_STEPS = 200


def solve_md(game):
    return mfgx.solve(game, MD, tol=MD_TOL, max_steps=MD_STEPS)


def replace(game, *, mu0=None, params=None):
    """The same game (same compiled code) with new μ₀ and/or θ; skips validation."""
    if params is not None:
        game = game.with_params(params)
    if mu0 is not None:
        game = eqx.tree_at(lambda g: g.mu0, game, jnp.asarray(mu0, dtype=float))
    return game


# --------------------------------------------------------------------------------------------
# a random dense game whose kernel and reward both depend on the mean field
# --------------------------------------------------------------------------------------------


def dense_transition(t, m, p):
    """P_t(x'|x,a; μ) = (1 − w) P0_t + w P1,  w = μ·v ∈ [0, 1]."""
    w = m @ p["v"]
    return (1.0 - w) * p["P0"][t] + w * p["P1"]


def dense_reward(t, m, p):
    """r_t(x, a; μ) = R_t(x, a) + Σ_y C(x, a, y) μ(y)."""
    return p["R"][t] + jnp.einsum("xay,y->xa", p["C"], m)


def np_dense_transition(t, m, p):
    w = float(np.dot(np.asarray(m), np.asarray(p["v"])))
    return (1.0 - w) * np.asarray(p["P0"])[t] + w * np.asarray(p["P1"])


def np_dense_reward(t, m, p):
    C = np.asarray(p["C"])
    R = np.asarray(p["R"])[t]
    out = np.empty((C.shape[0], C.shape[1]))
    for x in range(C.shape[0]):
        for a in range(C.shape[1]):
            out[x, a] = R[x, a] + sum(C[x, a, y] * m[y] for y in range(C.shape[2]))
    return out


def random_dense_params(rng, S=S, A=A, T=T):
    return dict(
        P0=jnp.asarray(rng.dirichlet(np.ones(S), size=(T + 1, S, A))),
        P1=jnp.asarray(rng.dirichlet(np.ones(S), size=(S, A))),
        v=jnp.asarray(rng.uniform(0.0, 1.0, size=S)),
        R=jnp.asarray(rng.normal(size=(T + 1, S, A))),
        C=jnp.asarray(rng.normal(size=(S, A, S))),
    )


def random_dense_game(seed, S=S, A=A, T=T):
    rng = np.random.default_rng(seed)
    mu0 = rng.dirichlet(np.ones(S))
    params = random_dense_params(rng, S, A, T)
    return mfgx.FiniteGame(mu0, dense_transition, dense_reward, T, params)


def random_policy(rng, S=S, A=A, T=T):
    return rng.dirichlet(np.ones(A), size=(T + 1, S))


def random_flow(rng, S=S, T=T):
    return rng.dirichlet(np.ones(S), size=T + 1)


# --------------------------------------------------------------------------------------------
# a state-action mean-field game: congestion on the action marginal
# --------------------------------------------------------------------------------------------


def sa_transition(t, L, p):
    """P(x'|x, a; L) = (1 − w) 1[x' = a] + w ν(x'), ν = Σ_x L(x, ·) the action marginal (S = A = 2)."""
    nu = L.sum(0)
    n = nu.shape[0]
    go_to_a = jnp.broadcast_to(jnp.eye(n)[None, :, :], (n, n, n))
    return (1.0 - p["w"]) * go_to_a + p["w"] * nu[None, None, :]


def sa_reward(t, L, p):
    """r(x, a; L) = −c_a ν(a): congestion on actions (monotone)."""
    nu = L.sum(0)
    return jnp.broadcast_to(-p["c"] * nu, L.shape)


def np_sa_transition(t, L, p):
    L = np.asarray(L)
    nu = L.sum(0)
    n = nu.shape[0]
    w = float(p["w"])
    P = np.zeros((n, n, n))
    for x in range(n):
        for a in range(n):
            for y in range(n):
                P[x, a, y] = (1 - w) * (a == y) + w * nu[y]
    return P


def np_sa_reward(t, L, p):
    L = np.asarray(L)
    c = np.asarray(p["c"])
    nu = L.sum(0)
    return np.array([[-c[a] * nu[a] for a in range(L.shape[1])] for _ in range(L.shape[0])])


def state_action_game(c=(1.0, 3.0), w=0.3, mu0=(0.8, 0.2), T=3):
    params = dict(c=jnp.asarray(c, float), w=jnp.asarray(w, float))
    return mfgx.FiniteGame(
        jnp.asarray(mu0, float), sa_transition, sa_reward, T, params,
        mean_field="state_action", n_actions=2,
    )


# --------------------------------------------------------------------------------------------
# rate games (continuous-time chains); all randomness in params
# --------------------------------------------------------------------------------------------


def rg_rates(t, m, p):
    """q[x, a, y] = q0[x, a, y] (1 + μ·v): non-negative for q0, v ≥ 0."""
    return p["q"] * (1.0 + m @ p["v"])


def rg_running(t, m, p):
    return p["f"]


def rg_terminal(m, p):
    return p["g"]


def rate_params(q, f, g, v=None):
    q = jnp.asarray(q, float)
    v = jnp.zeros(q.shape[0]) if v is None else jnp.asarray(v, float)
    return dict(q=q, f=jnp.asarray(f, float), g=jnp.asarray(g, float), v=v)


def make_rate_game(mu0, params, n_steps, dt, scheme):
    return mfgx.rate_game(mu0, rg_rates, rg_running, rg_terminal, n_steps, dt, params, scheme=scheme)


def np_generator(q):
    """Q[a] (shape [A, S, S]) from jump rates q[x, a, y]: off-diagonal kept, diagonal = −row sum."""
    q = np.asarray(q, float)
    S_, A_ = q.shape[0], q.shape[1]
    Q = np.zeros((A_, S_, S_))
    for a in range(A_):
        for x in range(S_):
            for y in range(S_):
                if y != x:
                    Q[a, x, y] = q[x, a, y]
            Q[a, x, x] = -sum(Q[a, x, y] for y in range(S_) if y != x)
    return Q


# --------------------------------------------------------------------------------------------
# independent NumPy references (plain loops)
# --------------------------------------------------------------------------------------------


def np_mean_field(mu, pi, mode):
    return mu if mode == "state" else mu[:, None] * pi


def np_propagate(mu0, policy, P_fn, mode="state"):
    """μ_{t+1}(y) = Σ_{x,a} μ_t(x) π_t(a|x) P_t(x, a, y; m_t)."""
    policy = np.asarray(policy)
    Tp1, S_, A_ = policy.shape
    mu = np.zeros((Tp1, S_))
    mu[0] = mu0
    for t in range(Tp1 - 1):
        P = P_fn(t, np_mean_field(mu[t], policy[t], mode))
        for x in range(S_):
            for a in range(A_):
                for y in range(S_):
                    mu[t + 1, y] += mu[t, x] * policy[t, x, a] * P[x, a, y]
    return mu


def np_backward(mf, r_fn, P_fn, Tp1, S_, A_, policy=None, temperature=None):
    """Backward induction against a fixed mean-field flow ``mf`` (V_{T+1} = 0).

    policy given: policy evaluation (Q^π, V^π). Else exact (max) or soft (τ log Σ exp) Bellman.
    Returns (Q, V, π) with π the greedy / softmax policy (or the given one).
    """
    Q = np.zeros((Tp1, S_, A_))
    V = np.zeros((Tp1, S_))
    pi = np.zeros((Tp1, S_, A_))
    v_next = np.zeros(S_)
    for t in reversed(range(Tp1)):
        r = r_fn(t, mf[t])
        P = P_fn(t, mf[t])
        for x in range(S_):
            for a in range(A_):
                Q[t, x, a] = r[x, a] + sum(P[x, a, y] * v_next[y] for y in range(S_))
            q = Q[t, x]
            if policy is not None:
                pi[t, x] = policy[t][x]
                V[t, x] = sum(policy[t][x][a] * q[a] for a in range(A_))
            elif temperature is None:
                best = int(np.argmax(q))
                pi[t, x, best] = 1.0
                V[t, x] = q[best]
            else:
                mx = q.max()
                z = np.exp((q - mx) / temperature)
                pi[t, x] = z / z.sum()
                V[t, x] = mx + temperature * np.log(z.sum())
        v_next = V[t]
    return Q, V, pi


def np_exploitability(mu0, policy, r_fn, P_fn, mode="state"):
    policy = np.asarray(policy)
    Tp1, S_, A_ = policy.shape
    mu = np_propagate(mu0, policy, P_fn, mode)
    mf = [np_mean_field(mu[t], policy[t], mode) for t in range(Tp1)]
    _, v_star, _ = np_backward(mf, r_fn, P_fn, Tp1, S_, A_)
    _, v_pi, _ = np_backward(mf, r_fn, P_fn, Tp1, S_, A_, policy=policy)
    return float(np.dot(mu0, v_star[0] - v_pi[0]))


def assert_on_simplex(p, tol=1e-12):
    p = np.asarray(p)
    assert np.all(np.isfinite(p)), p
    assert p.min() >= -tol, p.min()
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=0, atol=tol)
