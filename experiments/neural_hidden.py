"""Does a neural MFG learn a hidden interaction? (issue 13)

Data: the meeting game (Guéant, Lasry & Lions; t_s = 15, θ = 0.8, ν = 1) plus a hidden conformity
drift h(X)ᵢ = 0.8 (m − xᵢ), m the population mean (`mfgx.neural.hidden_conformity`), simulated by
`mfgx.neural.game_data`: B training datasets of 42 agents, initial clouds N(12 + δ_b, s_b²)
(δ_b ~ N(0, 1), s_b ~ U(0.5, 2)), observed at t = 2, 3, 4, 5, 6 (start t = 1, Euler–Maruyama
dt0 = 0.5). Held-out: 8 datasets from another seed (other initial clouds and noise).

Model: meeting game + `AgentMLP` correction (width 16, depth 2, Moments statistics) fitted by
`mfgx.neural.fit` on Moments-MSE + MMD(0.5, 1, 2), batch 8, the MFG drift and σ fixed.
Configurations (each a step of the diagnosis in neural_hidden.md):

  issue    the issue's: AgentMLP defaults (inputs x, t, mean, var unscaled), Adam 1e-3 constant, 300 steps
  scaled   inputs standardised (`input_scaling`), Adam 1e-2 constant, 150 steps
  fix      scaled, no time input (the hidden term is autonomous), cosine-decayed Adam 1e-2, 150 steps
  mean     `fix` with the population mean as the only statistic (no variance input; the test's model)
  null-*   `issue`, `fix` (`null`), `mean` on data WITHOUT the hidden term (negative controls: the
           learned correction should stay ≈ 0; its RMSE is the size of the spurious term)

Metrics on the held-out datasets: R² of the learned correction against h at every particle of
every held-out cloud (`correction_recovery`), its RMSE, and the held-out loss (fixed noise) of
the fitted model against the MFG without correction and the true model.

    .venv/bin/python experiments/neural_hidden.py --quick     # 1 seed, B = 16 (~2 min on 2 cores)
    .venv/bin/python experiments/neural_hidden.py             # 3 seeds, B = 8 and 16 (~12 min, in budgeted calls)

Each call stops after --budget seconds of fitting; --resume continues from the results json
(e.g. `--resume` until every run is done, then `--resume --figure`).

Writes experiments/results/neural_hidden{_quick}.{md,json,png}; then rerun
`experiments/neural_hidden_acceptance.py --table-only` to put the acceptance table back at the top.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from scipy import stats as st

import mfgx.neural as nm

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402
from _neural_common import arg_parser, g, meta, pyplot, row, write  # noqa: E402

from mfgx.plot import plot_correction  # noqa: E402

K, N, T0, TS, DT = 0.8, 42, 1.0, (2.0, 3.0, 4.0, 5.0, 6.0), 0.5
INTEG = nm.Integrator(DT)
LOSS = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)))
N_HELD = 8
CONFIGS = ("issue", "scaled", "fix", "mean", "null-issue", "null", "null-mean")
DIAGNOSIS = """## Diagnosis (issue 13, point 1): what was measured

Numbers from `experiments/neural_hidden_diagnose.py` (one seed each, 2 shared cores). Unless said otherwise: the
issue's setup, meeting game + conformity 0.8 (m − xᵢ), 8 training datasets × 42 agents, x(1) ~ N(12 + δ_b, s_b²),
observed at t = 3, 6, 9, 12, 15 (dt0 = 0.25), `AgentMLP` (width 32, depth 2, tanh, inputs x, t, mean, variance), loss
Moments-MSE + MMD, 300 Adam steps, batch 8; R² of the learned against the true term on 8 held-out datasets.

| case | held-out R² | learned sd (true 0.71) |
| --- | --- | --- |
| issue defaults: unscaled inputs, MMD(h = 1), Adam 1e-3, one shared x(1) ~ N(12, 0.5²) | 0.736 | 0.38 |
| same, Moments-MSE only | 0.783 | 0.42 |
| same, inputs scaled | 0.836 | 0.64 |
| same, Moments-MSE only, inputs scaled | 0.828 | 0.67 |
| unscaled, MMD(0.5, 1, 2), Adam 3e-3, a different x(1) per dataset | 0.846 | 0.49 |
| same, inputs scaled | **0.939** | 0.70 |
| same, inputs scaled, Adam 1e-2 | 0.910 | 0.72 |
| unscaled, MMD(1), Adam 1e-3, shared x(1), Euler dt0 = 1 (the paper's step) | 0.306 | 0.17 |
| unscaled, MMD(1), Adam 1e-3, shared x(1), σ trained too (`fit`'s default `trainable`) | 0.502 | 0.23 |

1. **Input scale (root cause, fixed).** With the default `AgentMLP` (loc 0, scale 1) the inputs are arrival times and
   clock times ≈ 3–15: the first tanh layer's pre-activations have median |·| 5.7, 94 % of them beyond 2 (tanh' < 0.07),
   mean tanh' 0.036; standardised inputs: median 0.35, none beyond 2, mean tanh' 0.82. The saturated network can only
   learn a flattened term (learned sd 0.38–0.49 against 0.71; R² 0.74–0.85 → 0.83–0.94 with scaling). Fix:
   `input_scaling(train)` gives `loc`/`scale` from the data, and `fit` warns when a network's inputs are far from unit
   scale on the training data.
2. **Overfitting through the mean-field inputs (root cause with few datasets, mitigated).** The network sees (t, mean,
   variance), which identify each training dataset. Negative control (no hidden term; 6 datasets × 32 agents,
   t = 2..6, dt0 = 0.25, Adam 1e-2, 200 steps): the training loss went from 0.86 (no correction) to 0.64 (fitted) while
   the held-out loss rose from 0.96 to 1.26; the learned term averaged −0.03 on the training clouds but +0.35 (RMS 0.49) on held-out clouds.
   RMS of the spurious term: 16 datasets × 24 agents 0.31; without the time input 0.21; plus a cosine-decayed learning rate
   (`fit(schedule="cosine")`, new) 0.115, while the conformity fit with the same settings kept R² 0.94.
3. **Constant-rate Adam never settles on noisy SDE gradients**: the cosine schedule halves the spurious term (above).
4. **Gradient variance through the SDE is not the bottleneck**: at initialisation, over 16 Brownian draws on the same 8
   datasets, the median per-parameter |mean|/sd of the gradient is 14 (unscaled) and 3.2 (scaled), 88–94 % of
   parameters above 1, cosine between independent draws 0.94–1.00. Common random numbers, antithetic paths or more
   particles were therefore not added.
5. **Identifiability of σ and conformity**: both set the spread; training σ with the correction (the default
   `trainable`) lets σ absorb the contraction (R² 0.50 vs 0.74). Fix the noise level or give it a prior.
6. **Euler dt0 = 1** (the paper's step) is too coarse for the meeting drift plus conformity: R² 0.31.
7. **Reading the term back**: calling `correction(t, grid)` on a plotting grid feeds the *grid's* mean and variance to
   the network (x = 10..20: variance 8.8 against the population's 0.89), so a model with held-out R² 0.94 reads as a
   flat negative curve (range −1.35 to −0.12). `correction.at(t, x, population)` (and `AgentMLP.term(t, x, s)`) read it
   with the population's statistics: R² 0.995 on the populated grid (naive: 0.917).

8. **The variance input enlarges spurious terms.** The test's setting (16 datasets × 24 agents, t = 2..6, dt0 = 0.5,
   no time input, cosine rate, 150 steps) at seeds 11, 21, 31: with `Moments` (mean, variance) held-out R² 0.866,
   0.929, 0.948 and spurious RMS without the hidden term 0.196, 0.425, 0.173; with `Mean` only R² 0.892, 0.946, 0.961
   and RMS 0.135, 0.252, 0.120. At seed 21 the spurious term is ≈ −0.1 (x − m) on the training clouds as well, and
   neither AdamW (weight decay 0.05) nor 300 steps changed it (0.251, 0.257): it is the resolution of 16 × 24 noisy
   agents, not an optimisation failure.

9. **Congestion-dependent speed is not recovered yet** (one seed, `neural_hidden_diagnose.py congestion`): the term
   −c ρ_h(xᵢ) b(xᵢ) with c = 0.9, h = 1.5 (sd 0.46 over the held-out particles), same setting and model as `fix`
   with 16 × 42 agents: held-out R² 0.19 (c = 0.6, h = 0.5: term sd 0.15, R² −0.18). It multiplies the game's
   discontinuous drift and is nearly confounded with a change of the MFG speed; open.

What changed in `mfgx.neural`: `input_scaling` and a saturation warning in `fit`; `fit(schedule="cosine")`;
`hidden_conformity`/`Conformity`, `hidden_congestion`/`Congestion` and `game_data` (games with a known hidden term);
`correction.at(t, x, population)`, `AgentMLP.term(t, x, s)`, `CostGradient.at`/`Feedback.at` and
`correction_recovery` (read-back and R²); `mfgx.plot.plot_correction` (the figure `neural_hidden.png`: learned vs true
over the populated states at four times, at three population quantiles over time, and at every held-out particle).

Not reproduced: the issue's "loss did not fall; correction ≈ 0.02 and flat". In every setup above the loss fell
(≈ 1.5 → 0.16) and the held-out R² was 0.74–0.94, except for dt0 = 1 and joint training of σ. The report is consistent
with unscaled inputs plus joint σ or dt0 = 1, and a grid read-back (point 7); its exact script is not available.
## Congestion-dependent speed (issue 13, open point): what was measured

Hidden term h = −c ρ_h(xᵢ) b(t, X)ᵢ (c = 0.9, h = 1.5; the meeting game's speed scaled by 1 − c ρ_h), 16 training
datasets × 42 agents, t = 2..6 from t = 1, dt0 = 0.5, 8 held-out datasets; numbers from
`experiments/neural_hidden_congestion.py` (table in `neural_hidden_congestion.md`) and, for points 1–3, a one-off diagnosis script at seed 0 (not committed),
2 cores shared with other jobs (load ≈ 10: times are noisy).

1. **The term is visible in the observed statistics.** Held-out loss (Moments-MSE + MMD, 4 noise seeds): true model
   0.919, MFG alone 1.574 (seed 0); mean arrival at t = 6: 13.15 (true) vs 14.23 (MFG alone).
2. **It is identifiable in its parametric form.** `Congestion(c)` with only c trained from 0.3 (100 cosine steps):
   ĉ = 0.879 against 0.9.
3. **The network's inputs could not represent it (root cause).** Supervised regression of h on held-out particles (MLP
   32×2 on the true values, no SDE; an upper bound for what a correction with those inputs can reach): inputs
   (x, mean, variance) R² 0.810; + ρ_1.5(xᵢ) 0.821; + the 0.8-quantile T 0.978; (ρ, bᵢ) 1.000. The missing input is
   mainly where the game's drift switches sign (at the quorum quantile T), not the density: h = −cρ·b flips sign at T,
   and the cloud concentrates around T.
4. **Fix: per-agent mean-field features.** `AgentMLP(features=(LocalDensity(h'), DriftFeature(game.drift)))` feeds the
   kernel crowding at the agent and the game's drift at the agent (gradients stop at the drift's parameters;
   `input_scaling(..., features=...)` standardises them). Bandwidth h' = 1.0, deliberately not the hidden 1.5.
5. **Result: better, not solved.** Held-out R² per seed (0, 1, 2): `moments` (the old model) 0.192, 0.178, 0.275 (mean 0.215 ± 0.130); `both` (mean,
   variance, ρ_1.0, b) 0.859, 0.456, 0.822 (mean 0.713 ± 0.553; paired gain over `moments` 0.50 ± 0.49, 95 % t over 3 seeds: just excludes zero); `density` only (seed 0) 0.624. Seed 0 also fits the held-out statistics better than
   the truth does (0.878 vs 0.919) — and so does the `moments` model (0.896) with R² 0.19: the loss on 5 snapshots of
   42 agents cannot tell the true term from other speed changes that produce the same clouds (point 1 says the
   term is visible, not that it is unique).
6. **Negative control fails.** On data without the hidden term, the `both` network learns a spurious term of RMS
   0.350, 0.238, 0.132 (seeds 0, 1, 2) against a true term of sd ≈ 0.45: with bᵢ as input, rescaling the game's speed is cheap and
   the 42-agent statistics do not pin it down. The slow test `test_fit_without_hidden_congestion_learns_a_small_term`
   is marked strict-xfail for this.

Open: R² ≥ 0.9 on held-out data over seeds (acceptance) is **not** met for congestion (see the next section).

## Seed variance and spurious terms: root cause and fix (issue 13, continued)

Measured on 2 shared cores at load 10–18 (times are not comparable with earlier runs; every fit below took 9–22 min).

1. **Root cause: the loss of one simulation of 42 particles is noisier than the effects to be learned, and biased.**
   On the 16 congestion training datasets *without* a hidden term (seed 0), the loss (Moments-MSE + MMD) of the true
   model (the MFG alone) over 8 simulation seeds is 0.709 ± 0.309 (mean ± sd), and the paired difference to a
   spurious congestion term (c = 0.3) 0.053 ± 0.041. The simulated statistics' own variance enters the expected loss
   (E (S_sim − y)² = (E S_sim − y)² + Var S_sim), so corrections that shrink the simulated spread lower it: a bias
   towards contracting terms, i.e. towards exactly the spurious terms the negative controls learned.
   With k copies of each initial cloud simulated (`PathLoss(replicas=k)`, same initial empirical measure, kN
   particles): k = 4: 0.476 ± 0.075 (difference 0.052 ± 0.026); k = 16: 0.416 ± 0.047 (0.047 ± 0.013).
2. **Validation-based selection was decided by that noise.** `SpeedFactor` on the null data with k = 1 and validation
   on 4 training-side datasets: the validation loss (one noise seed) of the untrained model was 1.150 and of step 20
   0.877, so step 20 was kept; over 4 other noise seeds the untrained model scores 0.74–1.05 and the kept one
   1.13–1.44, held-out 0.972 vs 0.752, spurious RMS 0.57. The same fit with k = 8: spurious RMS 0.042.
3. **The fix, in `mfgx.neural`** (no setting tuned to a seed): `PathLoss(replicas=k)`; `zero_init=True` for `AgentMLP`,
   `FluxCorrection`, `SpeedFactor` (default) and `CostMLP` (the last layer starts at 0: the initial model *is* the
   MFG without correction); `fit(val=...)` now evaluates the untrained model as a candidate (`initial_val`,
   `selected_on="validation (initial model)"`), so "no correction" stays unless a trained step beats it on
   training-side validation data (`train.split(0.25)`); and `SpeedFactor`, a learned per-agent factor on the game's
   own drift, f = g_φ(xᵢ, S, ρ)·bᵢ (the structured counterpart of `AgentMLP` + `DriftFeature`, as `FluxCorrection`
   is for SIR).
4. **Results with the fix** (table at the top of this file; 2 seeds for congestion and the HJB cost, where the third
   did not finish in the session):
   - Negative controls (RMS of the learned term / sd of the hidden term on the same seed's held-out data, target
     < 0.1): congestion (`SpeedFactor`) 0.042 / 0.457 = 0.09 at seed 0 (the unfixed `both` model: 0.35, 0.24, 0.13,
     i.e. 0.77, 0.54, 0.30); conformity 0.075 / 0.866 = 0.086 and 0.088 / 0.872 = 0.101 at seeds 0, 1 (unfixed
     `null-mean` 0.085, 0.117: 0.10, 0.13); HJB cost (unfixed) 0.12, 0.10, 0.09; SIR 0.01. The controls sit at the
     target, not clearly below it; the congestion control improved most (k = 8 is what did it: with k = 1 the same
     fit learned RMS 0.57).
   - Recovery does **not** reach R² ≥ 0.9 for every term, and the validation part of the fix makes it worse:
     conformity 0.949, 0.725, 0.780 (unfixed `mean`, B = 16: 0.961, 0.921, 0.975), congestion (`SpeedFactor`) 0.826,
     0.314 (unfixed `both`: 0.859, 0.456, 0.822), HJB cost 0.868, 0.803 (unfixed 0.873, 0.794). The selected steps
     were 110, 120, 30 (conformity), 110, 20 (congestion), 40, 100 of 200 (HJB): selection on 4 validation datasets
     with one noise seed still stops early on some seeds (congestion seed 1: held-out loss 0.855 against the true
     model's 0.707; the fit was not finished), and the split leaves 12 datasets for training. Every fitted model's
     held-out loss is far below the MFG without correction (paired Δ in the table: "better" for every term).
   - So the fix makes "no correction" the default (controls at ≈ 0.1) at the price of recovery. Next, not tried:
     evaluate validation over several noise seeds or with more replicas (its noise decides the early stops), select
     on training-side cross-validation instead of a single 4-dataset split, keep replicas but drop the split for
     recovery fits, and more agents or snapshots per dataset (the sample-size study was not rerun with the fix).
"""


def initial(seed, n_sets):
    r = np.random.default_rng(seed)
    return 12.0 + r.normal(0, 1, (n_sets, 1, 1)) + r.uniform(0.5, 2.0, (n_sets, 1, 1)) * r.normal(size=(n_sets, N, 1))


def data(k, seed, n_sets):
    truth = nm.meeting(correction=nm.hidden_conformity(k) if k else None)
    return nm.game_data(truth, initial(seed, n_sets), TS, jax.random.PRNGKey(seed), integrator=INTEG, t0=T0), truth


def fit(config, train, seed):
    key = jax.random.PRNGKey(seed)
    config = {"null": "fix"}.get(config, config.removeprefix("null-"))
    if config == "issue":
        corr = nm.AgentMLP(1, width=16, key=key)
        kw = dict(learning_rate=1e-3, steps=300)
    elif config == "scaled":
        corr = nm.AgentMLP(1, width=16, **nm.input_scaling(train), key=key)
        kw = dict(learning_rate=1e-2, steps=150)
    else:
        stat = nm.Mean() if config == "mean" else nm.Moments()
        corr = nm.AgentMLP(1, statistic=stat, width=16, time=False, **nm.input_scaling(train, statistic=stat, time=False), key=key)
        kw = dict(learning_rate=1e-2, steps=150, schedule="cosine")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the `issue` row is unscaled on purpose
        return nm.fit(nm.meeting(correction=corr), train, loss=LOSS, integrator=INTEG, batch_size=8, seed=seed,
                      trainable=lambda m: m.correction, progress=False, **kw)


def interval(v):
    v = np.asarray(v, float)
    if v.size < 2:
        return f"{v.mean():.3f}"
    h = st.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return f"{v.mean():.3f} ± {h:.3f}"


def main():
    ap = arg_parser()
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16], help="numbers of training datasets")
    ap.add_argument("--budget", type=float, default=210.0, help="seconds of fitting before stopping (rerun with --resume)")
    ap.add_argument("--resume", action="store_true", help="keep the finished runs of the results json and add the missing ones")
    ap.add_argument("--figure", action="store_true", help="refit seed --seed's `fix` run at the largest B for the figure")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = ap.parse_args()
    n_seeds = args.seeds or (1 if args.quick else 3)
    sizes = (16,) if args.quick and args.sizes == [8, 16] else tuple(args.sizes)
    configs = tuple(args.configs)
    start = time.time()
    stem = "neural_hidden" + ("_quick" if args.quick else "")
    cache = RESULTS / f"{stem}.json"
    rows = []
    if args.resume and cache.exists():
        rows = [r for r in json.loads(cache.read_text())["rows"]]
    done = {(r["seed"], r["B"], r["config"]) for r in rows}
    keep = None
    for seed in range(args.seed, args.seed + n_seeds):
        todo = [(B, c) for B in sizes for c in configs if (seed, B, c) not in done]
        if not todo and not (seed == args.seed and args.figure):
            continue
        held, truth = data(K, 1000 + seed, N_HELD)
        held0, _ = data(0.0, 1000 + seed, N_HELD)
        base = {name: held_loss(m, h) for name, (m, h) in
                {"mfg": (nm.meeting(), held), "truth": (truth, held), "mfg0": (nm.meeting(), held0)}.items()}
        for B in sizes:
            train, _ = data(K, seed, B)
            train0, _ = data(0.0, seed, B)
            for config in configs:
                figure = args.figure and seed == args.seed and B == sizes[-1] and config == "fix"
                if (seed, B, config) in done and not figure:
                    continue
                if time.time() - start > args.budget:
                    print(f"time budget of {args.budget} s spent: rerun with --resume to continue")
                    break
                t = time.time()
                null = config.startswith("null")
                res = fit(config, train0 if null else train, seed)
                h = held0 if null else held
                if figure:
                    keep = (res.model.correction, truth.correction, h.clouds)
                if (seed, B, config) in done:
                    continue
                rec = nm.correction_recovery(res.model.correction, None if null else truth.correction, h.clouds, TS)
                r = {"seed": seed, "B": B, "config": config, "r2": rec["r2"], "rmse": rec["rmse"], "true_sd": rec["true_sd"],
                     "loss_first": float(res.losses()[:10].mean()), "loss_last": float(res.losses()[-10:].mean()),
                     "held_fitted": held_loss(res.model, h), "held_mfg": base["mfg0" if null else "mfg"],
                     "held_truth": base["mfg0" if null else "truth"], "seconds": time.time() - t}
                rows.append(r)
                done.add((seed, B, config))
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
                write_json(cache, rows, args, n_seeds, sizes, start)

    lines = [
        f"# Neural MFG: recovering a hidden conformity term{' — quick run' if args.quick else ''}",
        "",
        f"`experiments/neural_hidden.py{' --quick' if args.quick else ''} --seed {args.seed}` — {sum(r['seconds'] for r in rows):.0f} s "
        f"of fits and evaluations on {jax.devices()[0]} (2 shared cores), float64. Meeting game + hidden conformity 0.8 (m − xᵢ); {N} agents, "
        f"observed at t = {', '.join(f'{t:g}' for t in TS)} from t = {T0:g} (dt0 = {DT}); {len({r['seed'] for r in rows})} seeds; held-out: {N_HELD} "
        "datasets with other initial clouds and noise. Intervals: mean ± 95 % t-interval over seeds.",
        "",
        row(["training datasets B", "config", "held-out R² (truth: 1)", "RMSE of f − h", "held-out loss: fitted", "MFG alone",
             "true model", "train loss first → last 10 steps"]),
        row(["---"] * 8),
    ]
    for B in sizes:
        for config in configs:
            sel = [r for r in rows if r["B"] == B and r["config"] == config]
            if not sel:
                continue
            r2 = "n/a (h = 0)" if config.startswith("null") else interval([r["r2"] for r in sel])
            lines.append(row([B, config, r2, interval([r["rmse"] for r in sel]), interval([r["held_fitted"] for r in sel]),
                              interval([r["held_mfg"] for r in sel]), interval([r["held_truth"] for r in sel]),
                              f"{np.mean([r['loss_first'] for r in sel]):.3g} → {np.mean([r['loss_last'] for r in sel]):.3g}"]))
    sd = np.mean([r["true_sd"] for r in rows if not r["config"].startswith("null")])
    lines += [
        "",
        f"The hidden term's standard deviation over the held-out particles is {g(sd)} (RMSE scale). `null-*`: data without the "
        "hidden term, so the RMSE is the size of the spurious learned correction and the 'true model' is the MFG alone. "
        "Held-out loss: the training loss (Moments-MSE + MMD) by `evaluate` on the held-out data, averaged over 4 fixed noise "
        "seeds; at 42 agents its floor (the true model's value) is well above 0, dominated by the sampling noise of the variance.",
    ]
    def avg(config, key):
        v = [r[key] for r in rows if r["config"] == config]
        return float(np.mean(v)) if v else float("nan")

    fits = [r["r2"] for r in rows if not r["config"].startswith("null")]
    if all(any(r["config"] == c for r in rows) for c in ("issue", "fix", "mean", "null-issue", "null", "null-mean")):
        lines += [
            "",
            f"Reading (means over seeds and both B): held-out R² {avg('issue', 'r2'):.3f} with the issue's settings, "
            f"{avg('fix', 'r2'):.3f} with scaled inputs, no time input and the cosine rate (`fix`), {avg('mean', 'r2'):.3f} when "
            f"the network sees the mean only (`mean`, the test's model). Every fitted model's held-out loss "
            f"({min(avg(c, 'held_fitted') for c in ('issue', 'scaled', 'fix', 'mean')):.3f}–"
            f"{max(avg(c, 'held_fitted') for c in ('issue', 'scaled', 'fix', 'mean')):.3f}) is near the true model's "
            f"({avg('fix', 'held_truth'):.3f}) and far below the MFG alone ({avg('fix', 'held_mfg'):.3f}). Spurious terms without a hidden term (RMS): "
            f"{avg('null-issue', 'rmse'):.3f} (`issue`: the saturated network barely moves, which also caps its recovery), "
            f"{avg('null', 'rmse'):.3f} (`fix`), {avg('null-mean', 'rmse'):.3f} (`mean`), against a hidden term of sd {g(sd)}. "
            f"With 3 seeds the 95 % intervals are wide (t₀.₉₇₅ = 4.3); single fits' R² range from {min(fits):.2f} to {max(fits):.2f}.",
        ]
    lines += ["", DIAGNOSIS]
    payload = {"meta": meta("experiments/neural_hidden.py" + (" --quick" if args.quick else ""), time.time() - start,
                            {"seeds": n_seeds, "sizes": sizes, "N": N, "times": TS, "dt0": DT, "k": K}), "rows": rows}
    write(stem, payload, lines)
    if keep is not None:
        pyplot()
        plot_correction(*keep[:2], keep[2], TS, path=RESULTS / f"{stem}.png")
        print(f"written {RESULTS / stem}.png")


def held_loss(model, data, n_eval=4):
    """The held-out loss averaged over ``n_eval`` fixed noise seeds (one seed is too noisy at 42 agents)."""
    return float(np.mean([nm.evaluate(model, data, loss=LOSS, integrator=INTEG, seed=s)["loss"] for s in range(n_eval)]))


def write_json(path, rows, args, n_seeds, sizes, start):
    payload = {"meta": meta("experiments/neural_hidden.py (partial)", time.time() - start, {"seeds": n_seeds, "sizes": sizes}),
               "rows": rows}
    path.write_text(json.dumps(payload, indent=1, default=float))


if __name__ == "__main__":
    main()
