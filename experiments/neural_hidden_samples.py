"""How few observations does a neural MFG need? (issue 13: the paper's "few observations" claim, measured)

Data: the meeting game + hidden conformity 0.8 (m − xᵢ) (`experiments/neural_hidden.py`'s setting: 42 agents,
x(1) ~ N(12 + δ_b, s_b²), Euler–Maruyama dt0 = 0.5), with B ∈ {1, 2, 4, 8, 16} observed datasets and 3, 5 or 10
snapshots over t ∈ (1, 6] (3: t = 2, 4, 6; 5: t = 2, …, 6; 10: t = 1.5, 2, …, 6). Model: the `mean` configuration
(AgentMLP(x, mean), width 16, standardised inputs, no time input; Moments-MSE + MMD(0.5, 1, 2); cosine Adam 1e-2,
150 steps, batch min(8, B)). Held-out: 8 datasets from another seed at the same snapshots. Metrics: R² of the
learned against the hidden term on the held-out clouds (`correction_recovery`) and the held-out loss.

Noise study (``--noise`` levels, B = 16, 5 snapshots): every observed position carries independent
N(0, ε²) observation noise (`game_data(noise=ε)`), ε ∈ {0.25, 0.5, 1} against cloud sds of 0.5–2; the
held-out clouds (where R² is measured) are noise-free, the held-out loss is on noisy held-out data.

    .venv/bin/python experiments/neural_hidden_samples.py --budget 200            # then repeat with --resume
    .venv/bin/python experiments/neural_hidden_samples.py --noise 0.25 0.5 1 --sizes 16 --snapshots 5 --resume
    .venv/bin/python experiments/neural_hidden_samples.py --resume --table-only   # write the table from the json

Writes experiments/results/neural_hidden_samples.{md,json,png}.
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

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402
from _neural_common import arg_parser, meta, pyplot, row, save_figure, write  # noqa: E402

K, N, T0 = 0.8, 42, 1.0
INTEG = nm.Integrator(0.5)
LOSS = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0, 2.0)))
SNAPSHOTS = {3: (2.0, 4.0, 6.0), 5: (2.0, 3.0, 4.0, 5.0, 6.0), 10: tuple(1.5 + 0.5 * i for i in range(10))}
SIZES = (1, 2, 4, 8, 16)


def data(seed, n_sets, ts, noise=0.0):
    r = np.random.default_rng(seed)
    x0 = 12.0 + r.normal(0, 1, (n_sets, 1, 1)) + r.uniform(0.5, 2.0, (n_sets, 1, 1)) * r.normal(size=(n_sets, N, 1))
    truth = nm.meeting(correction=nm.hidden_conformity(K))
    return nm.game_data(truth, x0, ts, jax.random.PRNGKey(seed), integrator=INTEG, t0=T0, noise=noise), truth


def run(B, n_snap, seed, noise=0.0):
    ts = SNAPSHOTS[n_snap]
    train, truth = data(seed, B, ts, noise)
    held_clean, _ = data(1000 + seed, 8, ts)
    held = data(1000 + seed, 8, ts, noise)[0] if noise else held_clean
    stat = nm.Mean()
    corr = nm.AgentMLP(1, statistic=stat, time=False, width=16, **nm.input_scaling(train, statistic=stat, time=False),
                       key=jax.random.PRNGKey(seed))
    fit = nm.fit(nm.meeting(correction=corr), train, loss=LOSS, integrator=INTEG, learning_rate=1e-2, schedule="cosine",
                 steps=150, batch_size=min(8, B), seed=seed, trainable=lambda m: m.correction, progress=False)
    rec = nm.correction_recovery(fit.model.correction, truth.correction, held_clean.clouds, ts)
    ev = lambda m: float(np.mean([nm.evaluate(m, held, loss=LOSS, integrator=INTEG, seed=s)["loss"] for s in range(3)]))  # noqa: E731
    return {"r2": rec["r2"], "rmse": rec["rmse"], "held_fitted": ev(fit.model), "held_mfg": ev(nm.meeting()), "held_truth": ev(truth)}


def interval(v):
    v = np.asarray(v, float)
    if v.size < 2:
        return f"{v.mean():.3f}" if v.size else "–"
    h = st.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return f"{v.mean():.3f} ± {h:.3f}"


def main():
    ap = arg_parser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--snapshots", type=int, nargs="+", default=list(SNAPSHOTS), choices=list(SNAPSHOTS))
    ap.add_argument("--budget", type=float, default=200.0, help="seconds of fitting before stopping (rerun with --resume)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0], help="observation noise levels ε (noise study)")
    args = ap.parse_args()
    start = time.time()
    stem = "neural_hidden_samples"
    cache = RESULTS / f"{stem}.json"
    rows = json.loads(cache.read_text())["rows"] if args.resume and cache.exists() else []
    for r in rows:
        r.setdefault("noise", 0.0)
    done = {(r["seed"], r["B"], r["snapshots"], r["noise"]) for r in rows}
    todo = [(s, B, n, e) for s in range(args.seed, args.seed + args.seeds) for e in args.noise for n in args.snapshots
            for B in args.sizes if (s, B, n, e) not in done]
    for seed, B, n, e in ([] if args.table_only else todo):
        if time.time() - start > args.budget:
            print(f"time budget of {args.budget} s spent: rerun with --resume to continue")
            break
        t = time.time()
        r = {"seed": seed, "B": B, "snapshots": n, "noise": e, **run(B, n, seed, e), "seconds": time.time() - t}
        rows.append(r)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
        cache.write_text(json.dumps({"meta": meta(f"experiments/{stem}.py (partial)", time.time() - start, vars(args)), "rows": rows},
                                    indent=1, default=float))
    grid = {(s, B, n, 0.0) for s in range(args.seed, args.seed + args.seeds) for n in SNAPSHOTS for B in SIZES}
    grid |= {(s, 16, 5, e) for s in range(args.seed, args.seed + args.seeds) for e in (0.25, 0.5, 1.0)}
    left = len(grid - {(r["seed"], r["B"], r["snapshots"], r["noise"]) for r in rows})
    clean = [r for r in rows if r["noise"] == 0.0]
    lines = [
        "# Neural MFG: sample size and snapshots needed to recover a hidden conformity term",
        "",
        f"`experiments/{stem}.py` — {sum(r['seconds'] for r in rows):.0f} s of fits on {jax.devices()[0]} (2 shared cores); "
        f"{len(rows)} fits done, {left} of the planned grid still to run (`--resume`). Meeting game + conformity 0.8 (m − xᵢ), "
        f"{N} agents per dataset; held-out: 8 datasets from another seed. Cells: held-out R² of the learned term "
        "(mean ± 95 % t-interval over seeds, n = number of seeds done).",
        "",
        row(["snapshots \\ datasets B", *args.sizes]),
        row(["---"] * (1 + len(args.sizes))),
    ]
    for n in args.snapshots:
        cells = []
        for B in args.sizes:
            sel = [r["r2"] for r in clean if r["B"] == B and r["snapshots"] == n]
            cells.append(f"{interval(sel)} (n = {len(sel)})" if sel else "–")
        lines.append(row([n, *cells]))
    lines += ["", "Held-out loss of the fitted model (MFG alone / true model in the json):", "",
              row(["snapshots \\ datasets B", *args.sizes]), row(["---"] * (1 + len(args.sizes)))]
    for n in args.snapshots:
        lines.append(row([n, *[interval([r["held_fitted"] for r in clean if r["B"] == B and r["snapshots"] == n]) for B in args.sizes]]))
    noisy = sorted({r["noise"] for r in rows})
    lines += ["", "Noise study (B = 16, 5 snapshots; ε = observation noise sd on every observed position; R² on noise-free "
              "held-out clouds; held-out losses on held-out data with the same noise):", "",
              row(["noise ε", "seeds", "held-out R²", "held-out loss: fitted", "MFG alone", "true model"]), row(["---"] * 6)]
    for e in noisy:
        sel = [r for r in rows if r["noise"] == e and r["B"] == 16 and r["snapshots"] == 5]
        if sel:
            lines.append(row([e, len(sel), interval([r["r2"] for r in sel]), interval([r["held_fitted"] for r in sel]),
                              interval([r["held_mfg"] for r in sel]), interval([r["held_truth"] for r in sel])]))
    write(stem, {"meta": meta(f"experiments/{stem}.py", time.time() - start, vars(args)), "rows": rows}, lines)
    figure(rows, stem)


def figure(rows, stem):
    """R² against the number of datasets (one line per snapshot count, mean and 95 % interval over seeds) and
    against the observation noise."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    for n in SNAPSHOTS:
        pts = [(B, [r["r2"] for r in rows if r["B"] == B and r["snapshots"] == n and r["noise"] == 0.0]) for B in SIZES]
        pts = [(B, np.asarray(v)) for B, v in pts if len(v)]
        if pts:
            xs = [B for B, _ in pts]
            m = [v.mean() for _, v in pts]
            h = [st.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0 for _, v in pts]
            a.errorbar(xs, m, yerr=h, marker="o", capsize=3, label=f"{n} snapshots")
    a.axhline(0.9, color="k", lw=0.8, ls="--")
    a.set(xscale="log", xlabel="observed datasets B (42 agents each)", ylabel="held-out R² of the learned term", ylim=(-0.2, 1.05))
    a.set_xticks(SIZES, [str(v) for v in SIZES])
    a.legend(fontsize=8)
    pts = sorted({r["noise"] for r in rows if r["B"] == 16 and r["snapshots"] == 5})
    vals = [np.asarray([r["r2"] for r in rows if r["noise"] == e and r["B"] == 16 and r["snapshots"] == 5]) for e in pts]
    if pts:
        b.errorbar(pts, [v.mean() for v in vals], yerr=[st.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0
                                                         for v in vals], marker="o", capsize=3)
    b.axhline(0.9, color="k", lw=0.8, ls="--")
    b.set(xlabel="observation noise ε (B = 16, 5 snapshots)", ylabel="held-out R²", ylim=(-0.2, 1.05))
    save_figure(fig, stem, 120)


if __name__ == "__main__":
    main()
