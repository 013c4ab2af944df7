"""mfgx.generative benchmarks (`make bench`; issues 14, 15). Compile and steady state are separate:
compile ≈ (first step) − (median of the later steps), both read from the fits' per-step records.

1. SGM training step (`fit_sgm`, direct ScoreNet(64, 2), batch 256, VP) without the HJB regulariser
   (λ = 0) and with it (λ = 0.1), exact divergence and Hutchinson (one Rademacher probe per sample),
   at d = 2, 10, 50, 100.
2. CNF training step (`fit`, OT-Flow potential w32 nTh2, 8 RK4 steps, batch 512): exact Laplacian
   (closed-form recursion) vs Hutchinson, at d = 2, 10, 50, 100, with the relative variance of the
   Hutchinson gradient over 8 probe draws, E‖ĝ − ḡ‖²/‖ḡ‖² (exact: 0).
3. Sampling 10⁴ samples at d = 2: CNF (inverse flow, 16 RK4 steps), SGM reverse SDE (Euler–Maruyama,
   500 steps) and probability-flow ODE (Dopri5, rtol = atol = 1e-5); first call (compile included) and
   second call.

    .venv/bin/python benchmarks/generative.py [--quick]   # writes benchmarks/results/generative.md (+ .json)
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import mfgx  # noqa: F401
from mfgx import generative as g

OUT = pathlib.Path(__file__).parent / "results" / "generative"


def step_times(fit):
    secs = [r["seconds"] for r in fit.history]
    steady = float(np.median(secs[1:]))
    return secs[0] - steady, steady


def data(d, n=4096, seed=0):
    """A Gaussian mixture in d dimensions (MFGnet's 8 Gaussians in the first two coordinates)."""
    return datasets_mix(d).sample(jr.PRNGKey(seed), n)


def datasets_mix(d):
    return g.datasets.mfgnet_eight_gaussians(d)


def bench_sgm(dims, steps):
    rows = []
    for d in dims:
        x = data(d)
        for name, lam, div in [("plain", 0.0, "exact"), ("HJB exact", 0.1, "exact"), ("HJB Hutchinson", 0.1, "hutchinson")]:
            fit = g.fit_sgm(g.SGM(g.VP(), lambda_hjb=lam, divergence=div), x, key=jr.PRNGKey(1), width=64, depth=2,
                            steps=steps, batch_size=256, eval_every=10**6, progress=False)
            c, s = step_times(fit)
            rows.append({"d": d, "arm": name, "compile_s": c, "step_ms": 1e3 * s})
            print(f"  SGM d={d:3d} {name:15s} step {1e3 * s:8.2f} ms  compile {c:6.2f} s", flush=True)
    return rows


def grad_variance(problem, x, key, n_draws=8):
    """E‖ĝ − ḡ‖²/‖ḡ‖² of the Hutchinson CNF gradient over probe draws (fixed parameters and batch)."""
    pot = g.Potential(x.shape[1], 32, 2, key=key)
    params, static = eqx.partition(pot, eqx.is_inexact_array)

    @eqx.filter_jit
    def grad(params, probe):
        def f(p):
            parts = problem.parts(eqx.combine(p, static), x, probe=probe)
            return problem.loss({k: jnp.mean(v) for k, v in parts.items()})

        return jax.flatten_util.ravel_pytree(jax.grad(f)(params))[0]

    gs = jnp.stack([grad(params, jr.rademacher(jr.fold_in(key, i), x.shape, x.dtype)) for i in range(n_draws)])
    exact = grad(params, None)
    mean = gs.mean(0)
    return float(jnp.mean(jnp.sum((gs - mean) ** 2, 1)) / jnp.sum(mean**2)), float(jnp.linalg.norm(mean - exact) / jnp.linalg.norm(exact))


def bench_cnf(dims, steps):

    rows = []
    for d in dims:
        x = data(d)
        for trace in ("exact", "hutchinson"):
            problem = g.CNF(alpha_C=100.0, alpha_R=5.0, n_steps=8, trace=trace)
            fit = g.fit(problem, x, key=jr.PRNGKey(1), steps=steps, batch_size=512, learning_rate=0.01, progress=False)
            c, s = step_times(fit)
            row = {"d": d, "trace": trace, "compile_s": c, "step_ms": 1e3 * s}
            if trace == "hutchinson":
                row["grad_rel_var"], row["mean_vs_exact"] = grad_variance(problem, x[:256], jr.PRNGKey(2))
            rows.append(row)
            extra = f"  grad rel. var {row['grad_rel_var']:.3g}" if "grad_rel_var" in row else ""
            print(f"  CNF d={d:3d} {trace:10s} step {1e3 * s:8.2f} ms  compile {c:6.2f} s{extra}", flush=True)
    return rows


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*a, **k))
    return time.perf_counter() - t0


def bench_sampling(n=10_000):
    x = data(2)
    flow = g.fit(g.CNF(alpha_C=30.0, alpha_R=1.0), x, key=jr.PRNGKey(1), steps=20, batch_size=512, progress=False).model
    sde = g.VP()
    model = g.fit_sgm(g.SGM(sde), x, key=jr.PRNGKey(1), steps=20, width=64, depth=2, progress=False).model
    rows = []
    for name, fn in [
        ("CNF inverse flow (RK4, 16 steps)", lambda k: g.sample(flow, k, n, n_steps=16)),
        ("SGM reverse SDE (Euler–Maruyama, 500 steps)", lambda k: g.sample_sde(model, sde, k, n, n_steps=500)),
        ("SGM PF-ODE (Dopri5, 1e-5)", lambda k: g.sample_ode(model, sde, k, n)),
    ]:
        first = timed(fn, jr.PRNGKey(3))
        second = timed(fn, jr.PRNGKey(4))
        rows.append({"sampler": name, "first_s": first, "second_s": second})
        print(f"  sample 10⁴: {name:45s} {second:7.3f} s (first call {first:6.2f} s)", flush=True)
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    dims = [2, 10] if a.quick else [2, 10, 50, 100]
    steps = 8 if a.quick else 20
    print(f"mfgx.generative benchmarks: device={jax.devices()[0].platform}, float64={jax.config.jax_enable_x64}")
    sgm = bench_sgm(dims, steps)
    cnf = bench_cnf(dims, steps)
    smp = bench_sampling()
    res = {"sgm_step": sgm, "cnf_step": cnf, "sampling": smp, "steps": steps}
    OUT.parent.mkdir(exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(res, indent=1))
    base = {r["d"]: r["step_ms"] for r in sgm if r["arm"] == "plain"}
    ex = {r["d"]: r["step_ms"] for r in cnf if r["trace"] == "exact"}
    lines = [
        "# mfgx.generative benchmark",
        "",
        f"Generated by `benchmarks/generative.py` (CPU, float64, 2 cores shared with other jobs: noisy). Step times: median "
        f"of {steps - 1} steady steps of the fit's compiled step; compile ≈ first step − steady step. Data: MFGnet's 8 "
        f"Gaussians embedded in d dimensions.",
        "",
        "## SGM training step (ScoreNet(64, 2), batch 256), with and without the HJB regulariser",
        "",
        "| d | arm | step (ms) | × plain | compile (s) |",
        "|---|---|---|---|---|",
        *[f"| {r['d']} | {r['arm']} | {r['step_ms']:.2f} | {r['step_ms'] / base[r['d']]:.2f} | {r['compile_s']:.2f} |" for r in sgm],
        "",
        "## CNF training step (OT-Flow potential w32 nTh2, 8 RK4 steps, batch 512): exact trace vs Hutchinson",
        "",
        "| d | trace | step (ms) | × exact | compile (s) | Hutchinson gradient: rel. variance (8 probes) | ‖mean − exact‖/‖exact‖ |",
        "|---|---|---|---|---|---|---|",
        *[f"| {r['d']} | {r['trace']} | {r['step_ms']:.2f} | {r['step_ms'] / ex[r['d']]:.2f} | {r['compile_s']:.2f} | "
          f"{r.get('grad_rel_var', 0.0):.3g} | {r.get('mean_vs_exact', 0.0):.3g} |" for r in cnf],
        "",
        "## Sampling 10⁴ samples (d = 2)",
        "",
        "| sampler | second call (s) | first call, compile included (s) |",
        "|---|---|---|",
        *[f"| {r['sampler']} | {r['second_s']:.3f} | {r['first_s']:.2f} |" for r in smp],
    ]
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"written {OUT.with_suffix('.md')}")


if __name__ == "__main__":
    main()
