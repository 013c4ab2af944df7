"""How many trajectories the LQ arc truth needs: the Cramér–Rao floor of γ(t) (issue 12).

`experiments/lq_accuracy.py` asks for the arc γ(t) = 0.1 + 2.9·4t(T − t)/T² within 5 % of its range
(max over t) at noise 1e-2. This script computes, for the same data sets (its `data_set`, seed 0),
the 95 % half-width 1.96·max_t sd(γ̂(t)) that the Fisher information at the truth allows
(`calibrate.laplace` at the true spline coefficients: the inverse information of the residual
model, each trajectory's μ₀ profiled out), for a cubic spline with 4 coefficients (the grid's path
family) and a quadratic one with 3 (the smallest family containing the truth), and the number of
trajectories at which that floor would reach the 5 % target (it falls like 1/sqrt(K)).

    .venv/bin/python experiments/lq_information.py            # d = 3, 8; K = 200 (the paper's)
Results: experiments/results/lq_information.{md,json}.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np

import mfgx

from _common import fmt_row, meta, write
from lq_accuracy import arc, cramer_rao, data_set


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="*", default=[3, 8])
    ap.add_argument("--trajectories", type=int, nargs="*", default=[200])
    ap.add_argument("--n-basis", type=int, nargs="*", default=[3, 4])
    ap.add_argument("--noise", type=float, default=1e-2)
    a = ap.parse_args()
    warnings.simplefilter("ignore", mfgx.PrecisionWarning)
    start, rows = time.perf_counter(), []
    for d in a.dims:
        for K in a.trajectories:
            for nb in a.n_basis:
                t0 = time.perf_counter()
                model, obs, _ = data_set(d, a.noise, 0, "arc", K, nb)
                t = np.asarray(model.times)
                floor = cramer_rao(model, obs, t, np.array([arc(s, None) for s in t]))
                need = math.ceil(K * (floor / 0.05) ** 2) if math.isfinite(floor) else None
                rows.append({"d": d, "K": K, "n_basis": nb, "degree": min(3, nb - 1), "floor": floor,
                             "trajectories_for_5pct": need, "seconds": time.perf_counter() - t0})
                print(f"d={d} K={K} n_basis={nb}: floor {floor:.2%}, K for 5 %: {need}", flush=True)
    lines = [
        "# The information in the LQ arc data: Cramér–Rao floor of γ(t)", "",
        f"`experiments/lq_information.py`: data sets of `experiments/lq_accuracy.py` (seed 0, noise {a.noise}, "
        "Dirichlet at every time, μ₀ a nuisance), arc truth. Floor: 1.96·max_t sd(γ̂(t)) / range(γ) from the Fisher "
        "information at the true spline coefficients; no unbiased estimator of that spline family does better on "
        "such data. Target of issue 12: 5 % of the range.", "",
        "| d | trajectories | spline | Cramér–Rao 95 % floor (max over t) | trajectories for 5 % | s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(fmt_row([r["d"], r["K"], f"{r['n_basis']} coefficients, degree {r['degree']}", f"{r['floor']:.1%}",
                              r["trajectories_for_5pct"] or "∞", f"{r['seconds']:.0f}"]))
    write("lq_information", {"meta": meta("experiments/lq_information.py", time.perf_counter() - start, vars(a)),
                             "rows": rows}, lines)


if __name__ == "__main__":
    main()
