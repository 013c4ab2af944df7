"""Reproduction for the engine: under `jax.vmap` + `jax.grad` (jit or not), the implicit adjoint
with a *materialised* linear solver (lineax LU, QR — the engine's default below 400 unknowns) returns
non-deterministic gradients (~1e-3 relative error, sometimes a NaN that fails the LU solve), while
GMRES (matrix-free) and a Python loop over the batch are exact and reproducible.

    .venv/bin/python experiments/repro_vmap_lu_adjoint.py

Found while writing mfgx.calibrate; the engine's ImplicitAdjoint has since defaulted to GMRES at every
size (src/mfgx/finite/_adjoint.py). Kept as the regression reproduction for lineax 0.1.1.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

import mfgx

GAME = mfgx.games.sir(T=20.0, n_points=15)
SOLVER = mfgx.Softmax(0.05)
MU0 = jnp.array([[0.9, 0.1, 0.0], [0.8, 0.1, 0.1]] * 3)[:5]


def loss(beta, linear_solver, batched):
    def one(m0):
        g = eqx.tree_at(lambda g: g.mu0, GAME, m0).with_params({"beta": jnp.full(15, beta), "gamma": jnp.full(15, 0.2)})
        eq = mfgx.solve(g, SOLVER, tol=1e-10, max_steps=500, adjoint=mfgx.ImplicitAdjoint(linear_solver))
        return (eq.flow**2).sum()

    return jax.vmap(one)(MU0).mean() if batched else sum(one(m) for m in MU0) / len(MU0)


CASES = {
    "vmap + LU": (lx.LU(), True),
    "vmap + QR": (lx.QR(), True),
    "vmap + GMRES": (lx.GMRES(rtol=1e-12, atol=1e-14, restart=50, max_steps=1000), True),
    "loop + LU": (lx.LU(), False),
}
for name, (ls, batched) in CASES.items():
    grad = eqx.filter_jit(jax.grad(lambda b: loss(b, ls, batched)))
    values = []
    for _ in range(5):
        try:
            values.append(round(float(grad(0.3)), 9))
        except Exception as e:  # noqa: BLE001
            values.append(type(e).__name__)
    print(f"{name:14s} {values}")
