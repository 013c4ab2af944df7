"""Hidden terms a neural MFG must recover beyond a drift (issue 13, part 2).

sir    SIR neural MFG (`mfgx.neural.sir`: β = 3, γ = 1, myopic contact a* = clip(1 − κβI), κ = 1) with a
       hidden prevalence-dependent contact factor φ(I) = 1 − c I/(I + h), c = 0.6, h = 0.05
       (`hidden_contact`). 16 outbreaks (one population per dataset), S₀ ~ U(0.5, 0.95), I₀ ~ U(0.01, 0.08), the
       shares observed at t = 1..8 with N(0, 0.003²) noise (Euler dt0 = 0.1). Model: `FluxCorrection`
       on S → I (inputs S, I, R standardised), masked MSE of the shares, cosine Adam 1e-2, 150 steps.
       Recovery: R² of the learned flux against the hidden one, and of the learned factor
       φ̂ = `transmission_factor` against φ(I), on held-out outbreaks (other initial conditions).
value  anticipatory agents (`value_game`): dX = −∂ₓu dt + σ dW, u the HJB value on a grid [−4, 4] (40 cells,
       80 steps, 15 damped Picard iterations) with terminal cost ½(x − 1)² and a hidden running cost
       ½ k (x − m̄)², k = 2 (attraction to the population mean: agents anticipate it). 16 datasets × 32
       agents, x(0) ~ N(δ_b, s_b²), observed at t = 0.4, …, 2 (Euler–Maruyama dt0 = 0.05). Model:
       `CostMLP(x, m̄)` inside the HJB, Moments-MSE + MMD, cosine Adam 1e-2, --value-steps steps.
       Recovery: R² of the learned against the hidden cost, both centred over each held-out cloud
       (`cost_recovery`: the drift identifies a cost up to a function of time).
null-* the same fits on data without the hidden term (negative controls: the learned term's size).
value-v, null-value-v   `value` with the fix of issue 13: the loss simulates 8 copies of each initial cloud
       (``PathLoss(replicas=8)``), the cost starts at 0 (``CostMLP(zero_init=True)``) and `fit` keeps the best
       of the untrained model and every 10th step on 4 of the 16 training datasets held out for validation.

    .venv/bin/python experiments/neural_hidden_strategic.py --seeds 3 --budget 200   # rerun with --resume

Writes experiments/results/neural_hidden_strategic.{md,json}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
from scipy import stats as st

import mfgx.neural as nm
from mfgx.continuous import Grid, MeanTracking, Quadratic

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402
from _neural_common import arg_parser, meta, row, write  # noqa: E402

# SIR with a hidden contact factor
BETA, GAMMA, KAPPA, C, H = 3.0, 1.0, 1.0, 0.6, 0.05
SIR_TS, SIR_INTEG = tuple(float(t) for t in range(1, 9)), nm.Integrator(0.1)
SIR_LOSS = nm.PathLoss(statistic=nm.Mean(), scale=(0.05, 0.01, 0.05))
# anticipatory agents with a hidden running cost
GRID, SIGMA, T, NT, K, N = Grid(-4.0, 4.0, 40), 0.6, 2.0, 80, 2.0, 32
VAL_TS, VAL_INTEG = (0.4, 0.8, 1.2, 1.6, 2.0), nm.Integrator(0.05)
VAL_LOSS = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)))
VAL_LOSS_R = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)), replicas=8)
CONFIGS = ("sir", "null-sir", "value", "null-value", "value-v", "null-value-v")
LEFT = """## What these runs do not show yet

- The anticipatory game is solved on a grid from the kernel density of the initial cloud (d = 1 only); the particles
  follow that continuum equilibrium's feedback (a finite-N population is not re-solved along its path). A value
  network (the paper's route, any d) is not built.
- `value` fits cost 0.5–1 s per step on 2 shared cores (15 unrolled Picard iterations × 80 HJB/FP steps, vmapped over 8
  datasets): the recovery test is `@pytest.mark.slow`; implicit differentiation of the fixed point would cut it.
- The fixed-point residual after 15 damped iterations is ≈ 0.01 (L¹) with the hidden cost; it is not reported per fit.
- R² ≥ 0.9 (the issue's bar) is met by the SIR flux; the contact factor φ(I) reaches 0.73–0.98 over seeds (it is
  least identified where S·I is small) and the HJB cost 0.79–0.93 over seeds at 200 steps (mean 0.87), while its
  held-out loss equals the true model's: with 16 × 32 agents the data do not pin the cost down further.
- `value-v` (the fix of issue 13: replicas = 8 in the loss, zero-initialised cost, validation on 4 of the 16
  training datasets that may keep the untrained game) does not change this: held-out R² 0.868 and 0.803 at seeds 0
  and 1 (`value`: 0.873, 0.794). With the less noisy loss the fitted game's held-out loss is now visibly above the true
  game's (seed 0: 0.032 vs 0.015), and validation kept step 40 and 100 of 200: the 12 remaining training datasets ×
  32 agents, not the optimiser's noise, limit the recovery. Not tried: more agents or datasets (the sample-size
  question), implicit differentiation of the fixed point (to afford more steps).
- Not done: a learned diffusion σ_φ in these games; congestion: `neural_hidden.md`."""


def sir_data(c, seed, n_sets, noise):
    r = np.random.default_rng(seed)
    i, s = r.uniform(0.01, 0.08, n_sets), r.uniform(0.5, 0.95, n_sets)
    x0 = np.stack([s, i, 1 - s - i], -1)[:, None, :]
    game = nm.sir(BETA, GAMMA, awareness=KAPPA)
    truth = nm.sir(BETA, GAMMA, awareness=KAPPA, correction=nm.hidden_contact(game.drift, c, H) if c else None)
    return nm.game_data(truth, x0, SIR_TS, jax.random.PRNGKey(seed), integrator=SIR_INTEG, t0=0.0, statistic=nm.Mean(), noise=noise)


def value_game(cost=None):
    return nm.value_game(GRID, T, SIGMA, Quadratic(1.0, 1.0), cost=cost, n_t=NT, iterations=15)


def value_data(k, seed, n_sets):
    r = np.random.default_rng(seed)
    x0 = r.normal(0, 0.7, (n_sets, 1, 1)) + r.uniform(0.4, 1.2, (n_sets, 1, 1)) * r.normal(size=(n_sets, N, 1))
    return nm.game_data(value_game(MeanTracking(k) if k else None), x0, VAL_TS, jax.random.PRNGKey(seed), integrator=VAL_INTEG, t0=0.0)


def run(config, seed, args):
    null = config.startswith("null")
    if config.endswith("sir"):
        train = sir_data(0.0 if null else C, seed, args.sir_sets, 0.003)
        held = sir_data(0.0 if null else C, 1000 + seed, 8, 0.0)
        corr = nm.FluxCorrection(3, [(0, 1)], width=16, depth=2, **nm.input_scaling(train, statistic=None, time=False),
                                 key=jax.random.PRNGKey(seed))
        fit = nm.fit(nm.sir(BETA, GAMMA, awareness=KAPPA, correction=corr), train, loss=SIR_LOSS, integrator=SIR_INTEG,
                     learning_rate=1e-2, schedule="cosine", steps=150, batch_size=8, seed=seed, trainable=lambda m: m.correction,
                     progress=False)
        model = fit.model
        game = nm.sir(BETA, GAMMA, awareness=KAPPA)
        hidden = nm.hidden_contact(game.drift, C, H)
        rec = nm.correction_recovery(model.correction, None if null else hidden, held.clouds, SIR_TS)
        states = np.asarray(held.clouds).reshape(-1, 3)
        phi, true_phi = nm.transmission_factor(model.drift, model.correction, states), np.asarray(hidden.factor(states[:, 1]))
        out = {"r2": rec["r2"], "rmse": rec["rmse"], "true_sd": rec["true_sd"],
               "factor_r2": float(1 - np.sum((phi - true_phi) ** 2) / np.sum((true_phi - true_phi.mean()) ** 2)),
               "factor_rms_dev": float(np.sqrt(np.mean((phi - (1.0 if null else true_phi)) ** 2)))}
        if null:
            out["factor_r2"] = float("nan")
            out["learned_rms"], out["true_sd"] = rec["rmse"], float(np.sqrt(np.mean(np.asarray(hidden(0.0, held.clouds.reshape(-1, 3))) ** 2)))
        truth = game if null else nm.sir(BETA, GAMMA, awareness=KAPPA, correction=hidden)
        loss, integ = SIR_LOSS, SIR_INTEG
    else:
        train = value_data(0.0 if null else K, seed, args.value_sets)
        held = value_data(0.0 if null else K, 1000 + seed, 8)
        fixed = config.endswith("-v")
        fit_train, val = train.split(0.25, seed=seed) if fixed else (train, None)
        cost = nm.CostMLP(width=16, zero_init=fixed, **nm.input_scaling(fit_train, statistic=nm.Mean(), time=False),
                          key=jax.random.PRNGKey(seed))
        fit = nm.fit(value_game(cost), fit_train, val=val, eval_every=10, loss=VAL_LOSS_R if fixed else VAL_LOSS, integrator=VAL_INTEG,
                     learning_rate=1e-2, schedule="cosine", steps=args.value_steps, batch_size=8, seed=seed,
                     trainable=lambda m: m.drift.correction, progress=False)
        model = fit.model
        rec = nm.cost_recovery(model.drift.correction, MeanTracking(K), GRID, held.clouds, VAL_TS)
        out = {"r2": float("nan") if null else rec["r2"], "rmse": rec["rmse"], "true_sd": rec["true_sd"],
               "learned_rms": float(np.sqrt(np.mean(rec["learned"] ** 2)))}
        game, loss, integ = value_game(), VAL_LOSS_R if fixed else VAL_LOSS, VAL_INTEG
        out["best_step"] = int(fit.best_step)
        truth = game if null else value_game(MeanTracking(K))
    ev = lambda m: float(np.mean([nm.evaluate(m, held, loss=loss, integrator=integ, seed=s)["loss"] for s in range(3)]))  # noqa: E731
    out.update(held_fitted=ev(model), held_mfg=ev(game), held_truth=ev(truth), loss_first=float(fit.losses()[:10].mean()),
               loss_last=float(fit.losses()[-10:].mean()), compile_s=fit.history[0]["seconds"])
    return out


def interval(v):
    v = np.asarray([x for x in v if np.isfinite(x)], float)
    if v.size == 0:
        return "n/a"
    if v.size < 2:
        return f"{v.mean():.3g}"
    h = st.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return f"{v.mean():.3g} ± {h:.2g}"


def main():
    ap = arg_parser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--sir-sets", type=int, default=16)
    ap.add_argument("--value-sets", type=int, default=16)
    ap.add_argument("--value-steps", type=int, default=200)
    ap.add_argument("--budget", type=float, default=200.0, help="seconds of fitting before stopping (rerun with --resume)")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    start = time.time()
    stem = "neural_hidden_strategic"
    cache = RESULTS / f"{stem}.json"
    rows = json.loads(cache.read_text())["rows"] if args.resume and cache.exists() else []
    done = {(r["seed"], r["config"]) for r in rows}
    for seed in range(args.seed, args.seed + args.seeds):
        for config in args.configs:
            if (seed, config) in done:
                continue
            if time.time() - start > args.budget:
                print(f"time budget of {args.budget} s spent: rerun with --resume to continue")
                break
            t = time.time()
            r = {"seed": seed, "config": config, **run(config, seed, args), "seconds": time.time() - t}
            rows.append(r)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
            cache.write_text(json.dumps({"meta": meta(f"experiments/{stem}.py (partial)", time.time() - start, vars(args)),
                                         "rows": rows}, indent=1, default=float))
    lines = [
        "# Neural MFG: hidden contact rate (SIR) and hidden running cost through the HJB",
        "",
        f"`experiments/{stem}.py` — {sum(r['seconds'] for r in rows):.0f} s of fits on {jax.devices()[0]} (2 shared cores), "
        f"{len({r['seed'] for r in rows})} seeds; held-out: 8 datasets from another seed (other initial conditions). "
        "Intervals: mean ± 95 % t-interval over seeds. See the script's docstring for the settings.",
        "",
        row(["config", "seeds", "held-out R² of the term", "R² of the contact factor φ(I)", "RMSE of f − h", "learned term RMS (null)",
             "true term sd", "held-out loss: fitted", "MFG alone", "true model", "train loss first → last 10 steps"]),
        row(["---"] * 11),
    ]
    for config in args.configs:
        sel = [r for r in rows if r["config"] == config]
        if not sel:
            continue
        lines.append(row([config, len(sel), interval([r["r2"] for r in sel]), interval([r.get("factor_r2", np.nan) for r in sel]),
                          interval([r["rmse"] for r in sel]), interval([r.get("learned_rms", np.nan) for r in sel]),
                          interval([r["true_sd"] for r in sel]), interval([r["held_fitted"] for r in sel]),
                          interval([r["held_mfg"] for r in sel]), interval([r["held_truth"] for r in sel]),
                          f"{np.mean([r['loss_first'] for r in sel]):.3g} → {np.mean([r['loss_last'] for r in sel]):.3g}"]))
    lines += [
        "",
        "`sir`: the term is the S → I flux; φ̂ = 1 + F̂/(β a* S I) read back by `transmission_factor`. `value`: the term is the "
        "running cost, centred over each cloud (`cost_recovery`); its effect on the agents is strategic: the optimal drift −∂ₓu "
        "changes already before the cost acts, because the value function anticipates it. `null-*`: data without the hidden "
        "term; `learned term RMS` is then the size of the spurious learned term (SIR: the flux; value: the centred cost), to "
        "compare with `true term sd`. Held-out loss: the training loss by `evaluate` on held-out data, 3 fixed noise seeds; "
        "'true model' of a null row is the MFG alone (its data have no hidden term); its 'true term sd' is the sd the hidden term "
        "would have on the null held-out clouds.",
    ]
    lines += ["", LEFT]
    write(stem, {"meta": meta(f"experiments/{stem}.py", time.time() - start, vars(args)), "rows": rows}, lines)


if __name__ == "__main__":
    main()
