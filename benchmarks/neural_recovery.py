"""mfgx.neural benchmark (issue 13): training time until a neural MFG recovers a hidden conformity term.

Data: the meeting game (t_s = 15, θ = 0.8, ν = 1) plus the hidden conformity drift 0.8 (m − xᵢ)
(`hidden_conformity`), 16 training datasets × 42 agents, initial clouds N(12 + δ_b, s_b²), observed
at t = 2..6 from t = 1 (Euler–Maruyama dt0 = 0.5); 8 held-out datasets from another seed. Model:
meeting game + `AgentMLP(x, mean)` (width 16, depth 2, inputs standardised, no time input), loss
Moments-MSE + MMD(0.5, 1, 2), Adam 1e-2 cosine-decayed over 150 steps, batch 8 (the model of
`tests/test_neural.py`).

The loop is `neural.fit`'s (same batches, Brownian keys and jitted step); every ``--every`` steps the
held-out R² of the learned term against the hidden one (`correction_recovery`) is computed, untimed. Reported per seed: the first step with R² ≥ 0.9, the training time
to it (the sum of the steps' wall times, compile excluded), the compile time (first step minus the
median step) and the steady time per step. Evaluation of R² is not counted.

    .venv/bin/python benchmarks/neural_recovery.py [--seeds 3] [--every 10]   # writes results/neural_recovery.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import mfgx.neural as nm
from mfgx.neural._fit import _batch, _train_step, check_compatible, trainable_filter

OUT = pathlib.Path(__file__).parent / "results"
K, N, T0, TS, DT, STEPS = 0.8, 42, 1.0, (2.0, 3.0, 4.0, 5.0, 6.0), 0.5, 150
INTEG = nm.Integrator(DT)
LOSS = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)))
TARGET = 0.9


def data(seed, n_sets):
    r = np.random.default_rng(seed)
    x0 = 12.0 + r.normal(0, 1, (n_sets, 1, 1)) + r.uniform(0.5, 2.0, (n_sets, 1, 1)) * r.normal(size=(n_sets, N, 1))
    truth = nm.meeting(correction=nm.hidden_conformity(K))
    return nm.game_data(truth, x0, TS, jax.random.PRNGKey(seed), integrator=INTEG, t0=T0), truth


def one_seed(seed: int, every: int) -> dict:
    """`neural.fit`'s step loop (same batches, keys and jitted step), with the held-out R² checked every
    ``every`` steps outside the timed region."""
    train, truth = data(seed, 16)
    held, _ = data(1000 + seed, 8)
    scaling = nm.input_scaling(train, statistic=nm.Mean(), time=False)
    corr = nm.AgentMLP(1, statistic=nm.Mean(), time=False, width=16, **scaling, key=jax.random.PRNGKey(seed))
    model = nm.meeting(correction=corr)
    optimizer = optax.adam(optax.cosine_decay_schedule(1e-2, STEPS, alpha=0.01))  # = fit(schedule="cosine", steps=150)
    grid = check_compatible(model, train, LOSS, INTEG)
    params, static = eqx.partition(model, trainable_filter(model, lambda m: m.correction))
    opt_state = optimizer.init(params)
    key, B, weight = jax.random.PRNGKey(seed), 8, jnp.ones(8)
    secs, curve, reached = [], [], None
    for s in range(STEPS):
        pick, noise = jax.random.split(jax.random.fold_in(key, s))
        idx = np.sort(np.asarray(jax.random.choice(pick, train.n_datasets, (B,), replace=False)))
        keys = jax.random.split(noise, B)
        t = time.perf_counter()
        params, opt_state, value, _, _ = _train_step(params, static, opt_state, _batch(train, idx), keys, weight, optimizer, LOSS, grid, INTEG)
        jax.block_until_ready(value)
        secs.append(time.perf_counter() - t)
        if (s + 1) % every == 0:
            r2 = nm.correction_recovery(eqx.combine(params, static).correction, truth.correction, held.clouds, TS)["r2"]
            curve.append((s + 1, r2))
            if r2 >= TARGET:
                reached = s + 1
                break
    secs = np.asarray(secs)
    steady = float(np.median(secs[1:]))
    return {"seed": seed, "step_reached": reached, "r2_curve": curve, "compile_s": float(secs[0] - steady), "step_s": steady,
            "train_s_to_target": float(secs[1:reached].sum() + steady) if reached is not None else None}


def table_row(r: dict) -> str:
    reached = r["step_reached"] if r["step_reached"] is not None else f"not within {STEPS}"
    took = "—" if r["train_s_to_target"] is None else f"{r['train_s_to_target']:.1f}"
    curve = ", ".join(f"{v:.2f}" for _, v in r["r2_curve"])
    return f"| {r['seed']} | {reached} | {took} | {r['compile_s']:.1f} | {r['step_s'] * 1e3:.0f} | {curve} |"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--every", type=int, default=10)
    args = ap.parse_args()
    start, load0 = time.time(), os.getloadavg()[0]
    rows = []
    for seed in range(args.seeds):
        r = one_seed(seed, args.every)
        rows.append(r)
        print(f"seed {seed}: R² ≥ {TARGET} at step {r['step_reached']} ({r['train_s_to_target']} s of training), compile "
              f"{r['compile_s']:.1f} s, {r['step_s'] * 1e3:.0f} ms/step; R² curve {[(s, round(v, 3)) for s, v in r['r2_curve']]}", flush=True)
    ok = [r for r in rows if r["step_reached"] is not None]
    lines = [
        "# mfgx.neural: training time to recover a hidden conformity term (R² ≥ 0.9)",
        "",
        f"`python benchmarks/neural_recovery.py --seeds {args.seeds} --every {args.every}` on {jax.devices()[0]} (float64; 2 CPU cores "
        f"shared with other jobs, so times are indicative), {time.time() - start:.0f} s in all. Meeting game + hidden conformity "
        f"{K} (m − xᵢ), 16 datasets × {N} agents × {len(TS)} snapshots; AgentMLP(x, mean), cosine Adam 1e-2 over {STEPS} steps, "
        f"batch 8; R² on 8 held-out datasets, checked every {args.every} steps (not timed); load average {load0:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end. Training time = the steps' wall "
        "time up to the first check with R² ≥ 0.9, the first step counted at the steady rate; compile = first step − median step.",
        "",
        "| seed | step reaching R² ≥ 0.9 | training time to it (s) | compile (s) | steady step (ms) | R² at the checks |",
        "| --- | --- | --- | --- | --- | --- |",
        *[table_row(r) for r in rows],
        "",
        f"Reached in {len(ok)} of {len(rows)} seeds" + (f"; median training time {np.median([r['train_s_to_target'] for r in ok]):.1f} s, "
                                                         f"median compile {np.median([r['compile_s'] for r in rows]):.1f} s." if ok else "."),
    ]
    OUT.mkdir(exist_ok=True)
    (OUT / "neural_recovery.md").write_text("\n".join(lines) + "\n")
    (OUT / "neural_recovery.json").write_text(json.dumps({"device": str(jax.devices()[0]), "rows": rows}, indent=1))
    print(f"written {OUT / 'neural_recovery.md'}")


if __name__ == "__main__":
    main()
