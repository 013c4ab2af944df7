"""Coverage of nominal 95 % intervals under the calibration paper's protocol (issue 12).

The paper's protocol: 20 trajectories per data set, μ₀ ~ Dirichlet(1, …, 1), Dirichlet observation
noise 1e-3 at every time *including the first*, whose noisy value is the only information about μ₀.
For each game, R replicates (data simulated at the truth, `calibrate.refine`, intervals) are run by
`calibrate.coverage` under several residual models:

- ``fixed / gaussian``: μ₀ read from y₀, unweighted residuals (mfgx's behaviour before issue 12);
- ``nuisance / gaussian``: each trajectory's μ₀ fitted as a nuisance parameter;
- ``nuisance / dirichlet``: the same with Pearson weights 1/sqrt(μ̂) (the defaults now).

Games: SIR (β, γ) = (0.4, 0.125), T = 40, N = 100, `Softmax(0.005)` (as experiments/sir_calibration.py);
LQ jump rates γ = 1.55, d = 3, T = 2, N = 100 (the paper's §6.1 game, mfgx's consistent scheme).
Coverage is reported with Wilson 95 % intervals and the sd of the standardised errors (≈ 1 if
calibrated). ``--bootstrap B`` adds parametric-bootstrap intervals (B refits per replicate) on LQ.

    .venv/bin/python experiments/coverage.py --replicates 200      # ~40 min on 2 cores
    .venv/bin/python experiments/coverage.py --quick                # 20 replicates

Writes experiments/results/coverage{_quick}.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import mfgx
from mfgx import calibrate as cal

sys.path.insert(0, str(Path(__file__).parent))
from _common import dirichlet_mu0, meta, write  # noqa: E402

CONFIGS = [("fixed", "gaussian"), ("nuisance", "gaussian"), ("nuisance", "dirichlet")]


def games():
    sir = cal.CalibrationModel(
        mfgx.games.sir(T=40.0, n_points=100), cal.Constant([0.3, 0.1], floor=0.01),
        lambda g: {"beta": g[:, 0], "gamma": g[:, 1]}, solver=mfgx.Softmax(0.005, 0.0),
    )
    lq = cal.CalibrationModel(mfgx.games.lq_rates(d=3, n_points=100), cal.Constant(2.0))
    return {"SIR": (sir, np.array([0.4, 0.125]), ["β", "γ"]), "LQ d=3": (lq, np.array([1.55]), ["γ"])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--trajectories", type=int, default=20)
    ap.add_argument("--noise", type=float, default=1e-3)
    ap.add_argument("--bootstrap", type=int, default=0, help="bootstrap refits per replicate (LQ only; 0: skip)")
    ap.add_argument("--bootstrap-replicates", type=int, default=50)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.replicates = 20
    warnings.simplefilter("ignore")  # NonSmooth/convergence warnings of single replicates; failures are counted
    start = time.time()
    rows, payload = [], {"results": []}
    for name, (model, truth, names) in games().items():
        mu0 = dirichlet_mu0(model.n_states, args.trajectories, 42)
        runs = [(ini, nm, ("gauss_newton", "sandwich"), args.replicates) for ini, nm in CONFIGS]
        if args.bootstrap and name.startswith("LQ"):
            runs.append(("nuisance", "dirichlet", ("bootstrap",), args.bootstrap_replicates))
        for ini, nm, kinds, R in runs:
            t0 = time.time()
            c = cal.coverage(model, truth, mu0, noise=args.noise, replicates=R, kinds=kinds, initial=ini,
                             noise_model=nm, bootstrap_replicates=args.bootstrap, progress=False)
            secs = time.time() - t0
            for kind in kinds:
                for j, pname in enumerate(names):
                    lo, hi = c.interval(kind)[j]
                    rate = float(c.rate(kind)[j])
                    verdict = "calibrated" if lo <= 0.95 <= hi and 0.90 <= rate <= 0.98 else (
                        "under-covers" if hi < 0.95 else ("over-covers" if lo > 0.95 else "within 90–98 %" if 0.9 <= rate <= 0.98 else "off"))
                    row = dict(game=name, parameter=pname, initial=ini, noise_model=nm, interval=kind, coverage=rate,
                               ci=[lo, hi], z_sd=float(np.std(c.z[kind][:, j])), z_mean=float(np.mean(c.z[kind][:, j])), replicates=int(c.covered[kind].shape[0]),
                               failed=c.failed, seconds=secs, verdict=verdict)
                    rows.append(row)
                    payload["results"].append(row)
                    print(row, flush=True)
    lines = [
        "# Coverage of nominal 95 % intervals under the calibration paper's protocol",
        "",
        f"{args.trajectories} trajectories per data set, μ₀ ~ Dirichlet(1), Dirichlet noise {args.noise:g} at every time "
        "including the first (the noisy y₀ is all we know of μ₀). Each replicate: simulate at the truth, "
        "`calibrate.refine` (Levenberg–Marquardt from the same start), intervals. Coverage with Wilson 95 % CI; "
        "mean(z) and sd(z) are the mean and standard deviation of z = (estimate − truth)/std.err (0 and 1 if calibrated). The verdict asks for "
        "coverage within 90–98 %.",
        "",
        "| game | parameter | μ₀ | residuals | interval | coverage | 95 % CI | mean(z) | sd(z) | replicates | failed | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['game']} | {r['parameter']} | {r['initial']} | {r['noise_model']} | {r['interval']} | {r['coverage']:.3f} | "
            f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}] | {r['z_mean']:+.2f} | {r['z_sd']:.2f} | {r['replicates']} | {r['failed']} | {r['verdict']} |"
        )
    lines += ["", f"Run time {time.time() - start:.0f} s (`{' '.join(['experiments/coverage.py', *(argv or sys.argv[1:])])}`)."]
    payload["meta"] = meta("experiments/coverage.py", time.time() - start, vars(args))
    write("coverage_quick" if args.quick else "coverage", payload, lines)


if __name__ == "__main__":
    main()
