"""Issue 13, point 1: why does an `AgentMLP` correction not learn a hidden conformity drift in the
meeting game? Reproduces the failure and measures one hypothesis at a time.

Setup (the issue's): meeting game (t_s = 15, θ = 0.8, ν = 1) plus a hidden conformity drift
k·(m − xᵢ), k = 0.8, m the population mean; 8 train datasets × 42 agents, x(1) ~ N(12 + δ_b, s_b²)
per dataset, clouds observed at t = 3, 6, 9, 12, 15 (Euler–Maruyama dt0 = 0.25).

    .venv/bin/python experiments/neural_hidden_diagnose.py CASE [CASE ...]

CASE: `saturation` (first-layer pre-activations), `snr` (gradient signal-to-noise over Brownian
draws), `congestion` (a first recovery try of the congestion term), or a fit named by dash-separated flags: `raw` (default AgentMLP, unscaled inputs) or
`scaled`; `mse` (Moments-MSE only), `w1d`, `mmd1` (MMD h = 1 + Moments; default MMD(0.5, 1, 2) +
Moments); `lr2` (1e-2), `lr3` (1e-3; default 3e-3); `fixed` (one shared x(1) ~ N(12, 0.5²));
`dt1` (Euler dt0 = 1); `all` (σ trained too). E.g. `raw-mmd1-lr3-fixed scaled snr`.

Each fit prints the loss (first 10 / last 10 steps), the gradient norm, the learned correction's
range and the R² of the learned against the true term on held-out clouds.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mfgx.neural as nm

K_TRUE, N, T0, TS, DT = 0.8, 42, 1.0, (3.0, 6.0, 9.0, 12.0, 15.0), 0.25
INTEG = nm.Integrator(DT)


def initial(seed, n_sets, fixed=False):
    r = np.random.default_rng(seed)
    if fixed:  # the paper's notebook: one N(12, 0.5²) draw shared by every dataset
        return np.broadcast_to(np.random.default_rng(0).normal(12.0, 0.5, size=(1, N, 1)), (n_sets, N, 1))
    loc = 12.0 + r.normal(0.0, 1.0, size=(n_sets, 1, 1))
    sd = r.uniform(0.5, 2.0, size=(n_sets, 1, 1))
    return loc + sd * r.normal(size=(n_sets, N, 1))


def make_data(seed, n_sets, k=K_TRUE, fixed=False, integ=INTEG):
    x0 = initial(seed, n_sets, fixed)
    truth = nm.meeting(correction=nm.hidden_conformity(k) if k else None)
    return nm.game_data(truth, x0, TS, jax.random.PRNGKey(seed), integrator=integ, t0=T0), truth


def correction(case, key):
    if "raw" in case:  # the issue's: default AgentMLP, no input normalisation
        return nm.AgentMLP(1, statistic=nm.Moments(), key=key)
    return nm.AgentMLP(1, statistic=nm.Moments(), key=key, loc=(13.0, 8.0, 13.0, 1.0), scale=(2.0, 4.0, 2.0, 1.0))


def run(case, steps=300):
    integ = nm.Integrator(1.0) if "dt1" in case else INTEG  # dt1: the paper's Euler step
    train, truth = make_data(1, 8, fixed="fixed" in case, integ=integ)
    test, _ = make_data(2, 8)
    key = jax.random.PRNGKey(0)
    model = nm.meeting(correction=correction(case, key))
    if "mse" in case:
        loss = nm.PathLoss(statistic=nm.Moments())
    elif "w1d" in case:
        loss = nm.PathLoss(distance=nm.Wasserstein1D())
    elif "mmd1" in case:  # the defaults: MMD with bandwidth 1 + moments MSE
        loss = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD())
    else:
        loss = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)))
    lr = 1e-2 if "lr2" in case else 1e-3 if "lr3" in case else 3e-3
    t = time.time()
    res = nm.fit(model, train, loss=loss, integrator=integ, optimizer=optax.adam(lr), steps=steps, batch_size=8,
                 trainable=None if "all" in case else lambda m: m.correction, progress=False)
    losses, g = res.losses(), np.array([r["grad_norm"] for r in res.history])
    rec = nm.correction_recovery(res.model.correction, truth.correction, test.clouds, TS)
    f = rec["learned"]
    print(f"{case:>16}: loss {losses[:10].mean():.4g} -> {losses[-10:].mean():.4g}; grad norm {g[:10].mean():.3g} -> "
          f"{g[-10:].mean():.3g}; learned range [{f.min():.3f}, {f.max():.3f}] sd {f.std():.3f}, true sd "
          f"{rec['true'].std():.3f}; held-out R2 {rec['r2']:.3f}; {time.time() - t:.0f} s")
    # read-back artefact: calling the correction on a state grid feeds the grid's own statistics
    # (mean, variance of the grid) to the network instead of the population's
    pop = test.clouds[0, 2]
    grid = jnp.linspace(float(pop.min()), float(pop.max()), 41)[:, None]
    naive = np.asarray(res.model.correction(TS[2], grid))
    right = np.asarray(res.model.correction.at(TS[2], grid, pop))
    true = np.asarray(truth.correction.at(TS[2], grid, pop))
    r2 = lambda f: 1 - np.sum((f - true) ** 2) / np.sum((true - true.mean()) ** 2)  # noqa: E731
    wide = jnp.linspace(10.0, 20.0, 41)[:, None]  # a plotting grid much wider than the population
    fw = np.asarray(res.model.correction(TS[2], wide))
    print(f"{'':>16}  naive read-back on x = 10..20 (grid variance {float(wide.var()):.1f}): range [{fw.min():.3f}, {fw.max():.3f}], "
          f"sd {fw.std():.3f}; the population's variance {float(pop.var()):.2f}")
    print(f"{'':>16}  read-back on a grid at t = {TS[2]}: naive f(t, grid) sd {naive.std():.3f} R2 {r2(naive):.3f}; "
          f"f.at(t, grid, population) sd {right.std():.3f} R2 {r2(right):.3f}; true sd {true.std():.3f}")


def saturation():
    """Pre-activations of the first tanh layer of the default AgentMLP on meeting-game inputs."""
    train, _ = make_data(1, 8)
    for case in ("raw", "scaled"):
        net = correction(case, jax.random.PRNGKey(0)).net
        x = train.clouds[0, 2]
        z = jnp.concatenate([x, jnp.full_like(x, 9.0), jnp.broadcast_to(nm.Moments()(x), (N, 2))], axis=1)
        z = (z - jnp.asarray(net.loc)) / jnp.asarray(net.scale)
        pre = jax.vmap(net.mlp.layers[0])(z)
        print(f"{case:>8}: |pre-activation| median {float(jnp.median(jnp.abs(pre))):.2f}, share with |.|>2 (tanh' < 0.07): "
              f"{float(jnp.mean(jnp.abs(pre) > 2)):.2f}, mean tanh' {float(jnp.mean(1 - jnp.tanh(pre) ** 2)):.3f}")




def snr(n_keys=16):
    """Gradient signal-to-noise over Brownian paths at initialisation: per parameter |E g| / sd(g)
    over ``n_keys`` noise draws on the same 8 datasets (median over parameters), and the
    cosine between the gradients of two independent draws."""
    import equinox as eqx

    from mfgx.neural._fit import _batch, _batch_loss, check_compatible

    train, _ = make_data(1, 8)
    loss = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)))
    for case in ("raw", "scaled"):
        model = nm.meeting(correction=correction(case, jax.random.PRNGKey(0)))
        grid = check_compatible(model, train, loss, INTEG)
        params, static = eqx.partition(model, eqx.tree_at(lambda m: m.correction, jax.tree_util.tree_map(lambda _: False, model),
                                                           replace=jax.tree_util.tree_map(eqx.is_inexact_array, model.correction)))
        batch = _batch(train, np.arange(8))

        @eqx.filter_jit
        def grad(p, keys):
            return eqx.filter_grad(lambda p: _batch_loss(eqx.combine(p, static), loss, grid, INTEG, keys, jnp.ones(8), batch)[0])(p)

        gs = [np.concatenate([np.ravel(v) for v in jax.tree_util.tree_leaves(grad(params, jax.random.split(jax.random.PRNGKey(i), 8)))])
              for i in range(n_keys)]
        g = np.stack(gs)
        ratio = np.abs(g.mean(0)) / (g.std(0) + 1e-30)
        cos = np.mean([g[i] @ g[i + 1] / np.linalg.norm(g[i]) / np.linalg.norm(g[i + 1]) for i in range(0, n_keys - 1, 2)])
        print(f"{case:>8}: gradient SNR median {np.median(ratio):.2f}, share of parameters with SNR > 1: {np.mean(ratio > 1):.2f}, "
              f"cosine between independent noise draws {cos:.2f}, |g| {np.linalg.norm(g.mean(0)):.3g}")


def congestion(c=0.9, h=1.5):
    """First try at the congestion term −c ρ_h(xᵢ) b(xᵢ) in the test's setting (16 × 42, t = 2..6, dt0 = 0.5)."""
    integ, ts = nm.Integrator(0.5), (2.0, 3.0, 4.0, 5.0, 6.0)
    truth = nm.meeting(correction=nm.hidden_congestion(nm.meeting().drift, c, h))
    train = nm.game_data(truth, initial(0, 16), ts, jax.random.PRNGKey(0), integrator=integ, t0=T0)
    held = nm.game_data(truth, initial(1000, 8), ts, jax.random.PRNGKey(1000), integrator=integ, t0=T0)
    corr = nm.AgentMLP(1, width=16, time=False, **nm.input_scaling(train, time=False), key=jax.random.PRNGKey(0))
    loss = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)))
    res = nm.fit(nm.meeting(correction=corr), train, loss=loss, integrator=integ, batch_size=8, learning_rate=1e-2,
                 schedule="cosine", steps=150, trainable=lambda m: m.correction, progress=False)
    rec = nm.correction_recovery(res.model.correction, truth.correction, held.clouds, ts)
    print(f"congestion c = {c}, h = {h}: held-out R2 {rec['r2']:.3f}, RMSE {rec['rmse']:.3f}, true sd {rec['true_sd']:.3f}")


if __name__ == "__main__":
    for c in sys.argv[1:]:
        {"saturation": saturation, "snr": snr, "congestion": congestion}.get(c, lambda c=c: run(c))()
