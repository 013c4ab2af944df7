"""Generative peers, run as a subprocess in .venv-gen-peers (install_generative.sh); never imported by mfgx.

    python generative_driver.py METHOD DATA.npz BUDGET_S SEED OUT.npz

METHOD: ``otcfm`` (torchcfm's ExactOptimalTransportConditionalFlowMatcher, σ = 0.1, its tutorials'
MLP(w = 64) and Adam 1e-3, batch 256), ``vpcfm`` (torchcfm's VariancePreservingConditionalFlowMatcher,
the trigonometric diffusion-type interpolant, same network) or ``flowjax`` (a masked autoregressive
flow with rational-quadratic splines: 8 layers, 8 knots on [−5, 5], width 50, Adam 1e-3, batch 256).
Each trains on DATA.npz["train"] until BUDGET_S seconds of wall time have passed (checked after every
step), then on DATA.npz["test"]:

- ``nll``: mean −log p in nats. CFM: the flow ODE dx/dt = v(x, t) from the test point at t = 1 back to
  t = 0 with the exact divergence (autograd, d = 2), log p₁(x) = log N(x(0)) − ∫₀¹ ∇·v dt, torchdiffeq
  dopri5 rtol = atol = 1e-5. flowjax: its exact log_prob.
- ``kinetic``: E ∫₀¹ ½|v|² dt along those paths (CFM); none for flowjax (a discrete flow has no path).
- ``displacement``: ½ E|x − T⁻¹(x)|², the cost of the straight line from each test point to its
  base-space image (a lower bound on any path's kinetic energy between the two).
- ``sample_s``: seconds for 10⁵ samples (CFM: dopri5 rtol = atol = 1e-4 from N(0, I), the tutorials'
  tolerance), timed twice (``sample_s_first`` includes flowjax's compilation).
Writes OUT.npz with 5000 samples and the per-point log p of the test set, and prints a JSON line.
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

N_SAMPLE = 100_000


def cfm(method, train, test, budget, seed):
    import torch
    import torchdiffeq
    from torchcfm import ExactOptimalTransportConditionalFlowMatcher, VariancePreservingConditionalFlowMatcher
    from torchcfm.models.models import MLP

    torch.manual_seed(seed)
    # One intra-op thread: on this 2-core machine shared with other jobs, torch's 2-thread pool made a step of
    # this small MLP ~150× slower (387 ms vs 2.4 ms measured); 1 thread is torch's best setting here.
    torch.set_num_threads(1)
    d = train.shape[1]
    model = MLP(dim=d, time_varying=True, w=64)
    fm = ExactOptimalTransportConditionalFlowMatcher(sigma=0.1) if method == "otcfm" else VariancePreservingConditionalFlowMatcher(sigma=0.0)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    X = torch.as_tensor(train, dtype=torch.float32)
    rng = np.random.default_rng(seed)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget:
        x1 = X[rng.choice(X.shape[0], 256, replace=False)]
        x0 = torch.randn_like(x1)
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        loss = torch.mean((vt - ut) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    train_s = time.perf_counter() - t0

    def v(t, x):
        return model(torch.cat([x, t.expand(x.shape[0], 1)], dim=-1))

    def aug(t, state):
        x = state[:, :d]
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            vt = v(t, x)
            div = sum(torch.autograd.grad(vt[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(d))
        return torch.cat([vt.detach(), div.detach()[:, None], 0.5 * (vt.detach() ** 2).sum(1, keepdim=True)], 1)

    xt = torch.as_tensor(test, dtype=torch.float32)
    y1 = torch.cat([xt, torch.zeros(xt.shape[0], 2)], 1)
    with torch.no_grad():
        y0 = torchdiffeq.odeint(aug, y1, torch.tensor([1.0, 0.0]), method="dopri5", rtol=1e-5, atol=1e-5)[-1]
    z, delta, kin = y0[:, :d], y0[:, d], y0[:, d + 1]
    logp0 = -0.5 * (z**2).sum(1) - 0.5 * d * math.log(2 * math.pi)
    logp = (logp0 + delta).numpy()
    nll = float(-logp.mean())
    kinetic = float((-kin).mean())  # integrated from 1 to 0
    displacement = float(0.5 * ((xt - z) ** 2).sum(1).mean())

    def sample():
        with torch.no_grad():
            x0 = torch.randn(N_SAMPLE, d)
            return torchdiffeq.odeint(v, x0, torch.tensor([0.0, 1.0]), method="dopri5", rtol=1e-4, atol=1e-4)[-1]

    times = []
    for _ in range(2):
        s0 = time.perf_counter()
        xs = sample()
        times.append(time.perf_counter() - s0)
    import torchcfm

    return {"steps": steps, "train_s": train_s, "nll": nll, "kinetic": kinetic, "displacement": displacement,
            "sample_s_first": times[0], "sample_s": times[1], "version": f"torchcfm {torchcfm.__version__}, torch {torch.__version__}"}, xs.numpy(), logp


def flowjax_run(train, test, budget, seed):
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr
    import optax
    import paramax
    from importlib.metadata import version
    from flowjax.bijections import RationalQuadraticSpline
    from flowjax.distributions import Normal
    from flowjax.flows import masked_autoregressive_flow
    from flowjax.train.losses import MaximumLikelihoodLoss

    d = train.shape[1]
    key, kf = jr.split(jr.key(seed))
    dist = masked_autoregressive_flow(kf, base_dist=Normal(jnp.zeros(d)), transformer=RationalQuadraticSpline(knots=8, interval=5.0))
    params, static = eqx.partition(dist, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable))
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)
    loss_fn = MaximumLikelihoodLoss()
    X = jnp.asarray(train, jnp.float32)

    @eqx.filter_jit
    def step(params, opt_state, key):
        xb = X[jr.choice(key, X.shape[0], (256,), replace=False)]
        loss, grads = eqx.filter_value_and_grad(loss_fn)(params, static, xb)
        updates, opt_state = opt.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss

    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget:
        params, opt_state, loss = step(params, opt_state, jr.fold_in(key, steps))
        jax.block_until_ready(loss)
        steps += 1
    train_s = time.perf_counter() - t0
    dist = paramax.unwrap(eqx.combine(params, static))
    xt = jnp.asarray(test, jnp.float32)
    logp = np.asarray(eqx.filter_jit(dist.log_prob)(xt))
    nll = float(-logp.mean())
    z = eqx.filter_jit(lambda b, x: jax.vmap(lambda r: b.inverse(r))(x))(dist.bijection, xt)
    displacement = float(0.5 * jnp.mean(jnp.sum((xt - z) ** 2, 1)))
    sample = eqx.filter_jit(lambda k: dist.sample(k, (N_SAMPLE,)))
    times = []
    for i in range(2):
        s0 = time.perf_counter()
        xs = jax.block_until_ready(sample(jr.fold_in(key, 10**6 + i)))
        times.append(time.perf_counter() - s0)
    return {"steps": steps, "train_s": train_s, "nll": nll, "kinetic": None, "displacement": displacement,
            "sample_s_first": times[0], "sample_s": times[1], "version": f"flowjax {version('flowjax')}, jax {jax.__version__}"}, np.asarray(xs), logp


def main():
    method, data, budget, seed, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    arrays = np.load(data)
    train, test = arrays["train"].astype(np.float32), arrays["test"].astype(np.float32)
    if method in ("otcfm", "vpcfm"):
        res, xs, logp = cfm(method, train, test, budget, seed)
    elif method == "flowjax":
        res, xs, logp = flowjax_run(train, test, budget, seed)
    else:
        raise SystemExit(f"unknown method {method!r}: otcfm, vpcfm or flowjax")
    np.savez(out, samples=xs[:5000], logp=logp)
    print(json.dumps({"method": method, **res}))


if __name__ == "__main__":
    main()
