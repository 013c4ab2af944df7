"""The shared driver of the cybersecurity and SIR calibration experiments (finite-action rate games).

For each ground truth (constant, arc, mean-field) and seed: synthetic equilibria at the truth
(evaluated on the iterate, as the paper's generator), Dirichlet observation noise, a train /
validation / test split by trajectory, then

- constant truth: a constant vector path, a few Adam epochs, Levenberg–Marquardt on the training
  set, Gauss–Newton 95 % intervals and the condition number of JᵀJ (identifiability);
- arc and mean-field truths: the paper's network γ_φ(t, μ) (MLP width 32, depth 2), Adam with model
  selection on the validation loss.

Errors on the test set: parameter MAE / MSE (paths evaluated on the observed test flows) and the
μ-error (1/N)Σ_n‖μ̂_n − y_n‖².
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import jax
import numpy as np

import mfgx
from mfgx import calibrate as cal

from _common import dirichlet_mu0, fit_case, fmt_row, mean_se, meta, show, write


Truth = cal.Reference  # γ = lo + span·s(t, μ): constant, arc 4t(T − t)/T² or μ(state)


@dataclass
class Experiment:
    name: str  # results stem
    title: str
    game: Callable[[], object]
    to_params: Callable
    truths: dict  # kind -> Truth
    names: list  # parameter names
    solver: object
    T: float
    n_states: int
    init: np.ndarray  # initial value of the fitted paths
    floor: float
    quick: dict  # defaults for --quick
    full: dict  # defaults for the full run
    notes: list


def main(exp: Experiment):
    ap = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--truths", nargs="*", default=list(exp.truths), choices=list(exp.truths))
    ap.add_argument("--seeds", type=int, nargs="*", default=None)
    ap.add_argument("--noise", type=float, nargs="*", default=None)
    ap.add_argument("--epochs", type=int, default=None, help="network epochs")
    ap.add_argument("--epochs-constant", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--lr-constant", type=float, default=2e-2)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--sizes", type=int, nargs=3, default=None)
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args()
    defaults = exp.quick if args.quick else exp.full
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    warnings.simplefilter("ignore", mfgx.NonSmoothWarning)
    start = time.perf_counter()
    game = exp.game()
    rows = []
    for noise in args.noise:
        for seed in args.seeds:
            for kind in args.truths:
                truth = exp.truths[kind]
                mu0 = dirichlet_mu0(exp.n_states, sum(args.sizes), seed)
                t0 = time.perf_counter()
                data = cal.simulate(game, truth, mu0, to_params=exp.to_params, solver=exp.solver, noise=noise, seed=seed,
                                    max_steps=5000)
                t_data = time.perf_counter() - t0
                split = data.split(*args.sizes, seed=seed)
                if kind == "constant":
                    path = cal.Constant(exp.init, floor=exp.floor)
                    model = cal.CalibrationModel(game, path, exp.to_params, exp.solver, max_steps=5000)
                    row = fit_case(model, split, truth, kind="finite", epochs=args.epochs_constant, lr=args.lr_constant,
                                   batch=args.batch, seed=seed, progress=args.progress)
                    est, true = np.asarray(row["values_hat"]), np.asarray(truth.lo)
                    row["abs_error"] = np.abs(est - true).tolist()
                    row["rel_error"] = (np.abs(est - true) / true).tolist()
                    for sfx in ("", "_sandwich"):
                        if "ci_lower" + sfx in row:
                            row["covered" + sfx] = ((np.asarray(row["ci_lower" + sfx]) <= true) & (true <= np.asarray(row["ci_upper" + sfx]))).tolist()
                else:
                    path = cal.Neural(32, 2, jax.random.PRNGKey(seed), n_states=exp.n_states, out_size=truth.size,
                                      time_scale=exp.T, init=exp.init, floor=exp.floor)
                    model = cal.CalibrationModel(game, path, exp.to_params, exp.solver, max_steps=5000)
                    row = fit_case(model, split, truth, kind="network", epochs=args.epochs, lr=args.lr, batch=args.batch,
                                   seed=seed, progress=args.progress)
                row.update(truth=kind, noise=noise, path="constant" if kind == "constant" else "network",
                           data_seconds=t_data, data_fixed_point_residual=data.metadata["max_fixed_point_residual"],
                           data_max_exploitability=data.metadata["max_exploitability"])
                rows.append(row)
                print(show(row), flush=True)
    elapsed = time.perf_counter() - start
    m = meta(f"experiments/{exp.name}.py " + " ".join(sys.argv[1:]), elapsed, vars(args))
    lines = [
        f"# {exp.title}{' — quick run' if args.quick else ''}",
        "",
        f"`{m['command'].strip()}` — {elapsed:.0f} s wall on {m['device']} ({m['cpu_count']} cores shared), jax {m['jax']}, {m['date']}.",
        "",
        *exp.notes,
        "",
        "## Test-set errors",
        "",
        "Parameter errors: paths evaluated on the observed test flows, MAE = mean |γ̂ − γ| over trajectories, times "
        "and components; μ-error = (1/N)Σ_n‖μ̂_n − y_n‖² on the test trajectories.",
        "",
        "| truth | noise | path | seeds | γ-MAE | γ-MSE | μ-error | fit | non-converged | s per run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {k: i for i, k in enumerate(exp.truths)}
    for key in sorted({(r["truth"], r["noise"]) for r in rows}, key=lambda k: (order[k[0]], k[1])):
        rs = [r for r in rows if (r["truth"], r["noise"]) == key]
        fit = (f"{rs[0]['adam_steps']} Adam steps + LM" if key[0] == "constant" else f"{rs[0]['adam_steps']} Adam steps")
        lines.append(fmt_row([
            key[0], key[1], rs[0]["path"], len(rs), mean_se([r["gamma_mae"] for r in rs]), mean_se([r["gamma_mse"] for r in rs]),
            mean_se([r["mu_error"] for r in rs]), fit, sum(r["n_nonconverged"] for r in rs), f"{np.mean([r['seconds'] for r in rs]):.0f}",
        ]))
    const = [r for r in rows if r["truth"] == "constant"]
    if const:
        lines += [
            "",
            "## Constant truth: per-parameter estimates (Levenberg–Marquardt, training set) and 95 % intervals",
            "",
            "Levenberg–Marquardt and standard errors with mfgx's defaults: each trajectory's μ₀ a nuisance parameter "
            "(profiled out) and Pearson-weighted residuals (Dirichlet noise). Two standard errors on the training set: "
            "Gauss–Newton and the trajectory-clustered sandwich. Identifiability: `calibrate.identifiability` at the fit "
            "(training set, same residual model): a parameter is NOT identified when it loads on a flat direction of the "
            "Fisher spectrum or its 95 % interval (relative s.e., the larger of Gauss–Newton and the clustered sandwich, "
            "times 1.96) is wider than ±10 %.",
            "",
            "| noise | seed | parameter | truth | estimate | rel. error | s.e. Gauss–Newton | in interval | s.e. sandwich | in interval | cond(JᵀJ) | identifiability (rel. s.e.) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        true = np.asarray(exp.truths["constant"].lo)
        for r in const:
            se = r.get("std_error", [np.nan] * len(true))
            cov = r.get("covered", [None] * len(true))
            se2 = r.get("std_error_sandwich", [np.nan] * len(true))
            cov2 = r.get("covered_sandwich", [None] * len(true))
            yn = {True: "yes", False: "no", None: "—"}
            for i, nm in enumerate(exp.names):
                rse = r.get("ident_rel_se", [np.nan] * len(true))[i]
                ident = ("NOT identified" if i in r.get("ident_weak", []) else "identified") + f" (±{rse:.0%})"
                lines.append(fmt_row([
                    r["noise"], r["seed"], nm, f"{true[i]:.4g}", f"{r['values_hat'][i]:.5g}",
                    f"{abs(r['values_hat'][i] - true[i]) / true[i]:.1%}", f"{se[i]:.2g}", yn[cov[i]],
                    f"{se2[i]:.2g}", yn[cov2[i]], f"{r.get('jtj_condition', np.nan):.3g}" if i == 0 else "", ident,
                ]))
    nets = [r for r in rows if r["truth"] != "constant"]
    if nets:
        lines += ["", "## Per-component MAE of the network fits (mean over seeds)", "",
                  "| truth | noise | " + " | ".join(exp.names) + " |", "|---|---|" + "---|" * len(exp.names)]
        for key in sorted({(r["truth"], r["noise"]) for r in nets}, key=lambda k: (order[k[0]], k[1])):
            rs = [r for r in nets if (r["truth"], r["noise"]) == key]
            by = np.mean([r["gamma_mae_by_component"] for r in rs], axis=0)
            lines.append(fmt_row([*key, *(f"{v:.3g}" for v in by)]))
    lines += ["", f"Settings: `{vars(args)}`."]
    write(exp.name + ("_quick" if args.quick else ""), {"meta": m, "runs": rows}, lines)
