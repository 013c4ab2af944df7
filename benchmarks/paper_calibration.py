"""mfgx against the calibration paper's own code on its LQ benchmark, side by side (`make bench`).

The paper's code (KachmanLab/MFGParameterCalibration, MIT) is not part of mfgx: fetch it into a
folder outside this repository, install its venv once (``bash benchmarks/peers/install_paper.sh``)
and pass the folder:

    .venv/bin/python benchmarks/paper_calibration.py --paper-code /tmp/paper/code
    .venv/bin/python benchmarks/paper_calibration.py --paper-code DIR --dims 3 --epochs 20

Without ``--paper-code`` (or if the folder or .venv-paper is missing) it says so and exits 0.

For each d, in one run on this machine:

1. **Parity.** The paper's data generator is run in float64 (its code, its undamped Picard with
   tol 1e-5) on a few trajectories; mfgx with ``lq_rates(scheme="calibration_paper")`` and
   `FixedPoint(0)` at the same tolerance must reproduce them (max abs difference printed).
2. **Speed.** Both train the paper's 64-64 MLP γ(t, μ) (ReLU, softplus + 0.1) with Adam 5e-3,
   batch 10, random 20-point windows, on the *same* data (the paper's generator, seed 42, 200 train
   / 20 test trajectories, T = 2, N = 100, constant γ = 1.55): the paper with its own training
   step (benchmarks/peers/paper_calibration_driver.py), mfgx with `calibrate.fit` at its defaults
   (float64, Picard tol 1e-8, Neumann adjoint). Compile (first step/epoch) and steady time per
   epoch (median over epochs after the first) are separate; the ratio is paper / mfgx. mfgx runs
   twice: at its defaults (Picard tol 1e-8, adjoint rtol 1e-8) and at the paper's tolerances
   (1e-5 for both).
3. **Accuracy** after ``--epochs`` epochs: γ̂ on the test trajectories against the truth.

Writes benchmarks/results/paper_calibration.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np

import mfgx
from mfgx import calibrate, games
from mfgx.data import Observations

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
DRIVER = ROOT / "benchmarks" / "peers" / "paper_calibration_driver.py"
PAPER_PY = ROOT / ".venv-paper" / "bin" / "python"
T, N, GAMMA = 2.0, 100, 1.55


def run_paper(paper_code, out, **kw):
    args = [str(PAPER_PY), str(DRIVER), "--paper-code", str(paper_code), "--out", str(out)]
    for k, v in kw.items():
        if v is True:
            args.append(f"--{k.replace('_', '-')}")
        elif v is not False:
            args += [f"--{k.replace('_', '-')}", str(v)]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    f = np.load(out)
    return json.loads(str(f["info"])), f


def parity(paper_code, d, tmp, case="constant"):
    """max |mfgx − paper| over a few float64 trajectories of the paper's generator."""
    if case != "constant":
        return float("nan")  # the generator's path is evaluated on its Picard iterate: checked for the constant case
    info, f = run_paper(paper_code, tmp / f"parity_d{d}.npz", d=d, n_train=4, n_test=1, x64=True, data_only=True)
    worst = 0.0
    for mu0, mu in zip(f["mu0_train"], f["mu_train"]):
        game = games.lq_rates(GAMMA, d=d, mu0=mu0, T=T, n_points=N, scheme="calibration_paper")
        eq = mfgx.solve(game, mfgx.FixedPoint(0.0), tol=1e-5, max_steps=1000, diagnostics=False)
        worst = max(worst, float(np.abs(np.asarray(eq.flow) - mu).max()))
    return worst


def _mfgx_model(d, seed, paper_tol):
    game = games.lq_rates(d=d, T=T, n_points=N, scheme="calibration_paper")
    path = calibrate.Neural(64, 2, jax.random.PRNGKey(seed), n_states=d, inputs="t,mu", activation=jax.nn.relu,
                            floor=0.1, init=1.0)
    if paper_tol:  # the paper's tolerances: Picard 1e-5, adjoint 1e-5
        return calibrate.CalibrationModel(game, path, solver=mfgx.FixedPoint(0.0), tol=1e-5,
                                          adjoint=mfgx.ImplicitAdjoint(mfgx.Neumann(rtol=1e-5, atol=1e-7, fallback=False)))
    return calibrate.CalibrationModel(game, path, solver=mfgx.FixedPoint(0.0))


def _mfgx_worker(npz, d, epochs, seed, paper_tol):
    """In a fresh process (so compile times are cold): compile = first 1-epoch fit − second 1-epoch fit
    (the same cold equilibrium solves, compiled once), then the timed fit of ``epochs`` epochs."""
    f = np.load(npz)
    train = Observations(np.asarray(f["mu_train"], float))
    test = Observations(np.asarray(f["mu_test"], float))
    model = _mfgx_model(d, seed, paper_tol)
    kw = dict(batch_size=10, window=0.2, learning_rate=5e-3, seed=seed, progress=False, eval_train=False)
    t0 = time.perf_counter()
    calibrate.fit(model, train, epochs=1, **kw)
    t1 = time.perf_counter()
    calibrate.fit(model, train, epochs=1, **kw)
    t2 = time.perf_counter()
    stamps = []
    t3 = time.perf_counter()
    fit = calibrate.fit(model, train, epochs=epochs, callback=lambda r: stamps.append(time.perf_counter()), **kw)
    epoch_s = np.diff([t3, *stamps])
    g_pred = np.asarray(calibrate.paths(fit, test))[..., 0]
    return {"compile_s": float((t1 - t0) - (t2 - t1)), "epoch_s": epoch_s[1:].tolist(), "status": fit.status,
            "reason": fit.reason, "epochs_run": fit.epochs_run}, g_pred


def run_mfgx(npz, d, epochs, seed, paper_tol=False, x64=True):
    import multiprocessing

    old = os.environ.get("MFGX_X64")
    os.environ["MFGX_X64"] = "1" if x64 else "0"  # read by mfgx at import in the fresh process
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(_mfgx_worker, (str(npz), d, epochs, seed, paper_tol))
    finally:
        if old is None:
            os.environ.pop("MFGX_X64")
        else:
            os.environ["MFGX_X64"] = old


def accuracy(g_pred, g_true):
    rel = np.abs(g_pred - g_true) / np.abs(g_true)
    span = float(np.ptp(g_true)) or 1.0  # the truth's range over (k, t); 1 for a constant truth
    return {"gamma_mean": float(g_pred.mean()), "rel_err_mean": float(rel.mean()),
            "rel_err_of_mean": float(abs(g_pred.mean() - g_true.mean()) / abs(g_true.mean())),
            "max_t_err_over_range": float(np.abs(g_pred.mean(0) - g_true.mean(0)).max() / span)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paper-code", default=os.environ.get("PAPER_CODE"), help="the paper's repository (a folder)")
    ap.add_argument("--dims", type=int, nargs="*", default=[3, 8])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--case", default="constant", choices=["constant", "time_dependent", "mf_dependent"],
                    help="the paper's ground truth: constant 1.55, the arc 0.1 + 2.9·4t(T−t)/T², or 0.1 + 2.9 μ(0)")
    a = ap.parse_args()
    if not a.paper_code or not (pathlib.Path(a.paper_code) / "src" / "core" / "PicardSolver.py").exists():
        print("paper_calibration: skipped (pass --paper-code DIR, the fetched KachmanLab/MFGParameterCalibration)")
        return
    if not PAPER_PY.exists():
        print("paper_calibration: skipped (.venv-paper missing: bash benchmarks/peers/install_paper.sh)")
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for d in a.dims:
            err = parity(a.paper_code, d, tmp, a.case)
            print(f"d={d}: parity with the paper's generator (float64): max |Δμ| = {err:.2e}", flush=True)
            pinfo, f = run_paper(a.paper_code, tmp / f"paper_d{d}.npz", d=d, epochs=a.epochs, seed=a.seed, case=a.case)
            p_steady = float(np.median(pinfo["epoch_s"][1:]))
            pinfo["compile_s"] -= p_steady / 20  # the paper's first step beyond a steady step
            settings = (("mfgx (defaults: float64, tol 1e-8)", False, True), ("mfgx (float64, paper's tol 1e-5)", True, True),
                        ("mfgx (float32 as the paper, defaults: tol 1.2e-6)", False, False))
            for label, paper_tol, x64 in settings:
                m, g_pred = run_mfgx(tmp / f"paper_d{d}.npz", d, a.epochs, a.seed, paper_tol, x64)
                g_true = np.asarray(f["g_test"], float).reshape(g_pred.shape)
                m_steady = float(np.median(m["epoch_s"]))
                row = {
                    "d": d, "case": a.case, "epochs": a.epochs, "parity_max_abs": err, "mfgx_settings": label,
                    "paper": {"compile_s": pinfo["compile_s"], "epoch_s": p_steady, "dtype": pinfo["dtype"],
                              **accuracy(np.asarray(f["g_pred"], float).reshape(g_true.shape), g_true)},
                    "mfgx": {"compile_s": m["compile_s"], "epoch_s": m_steady, "dtype": "float64" if x64 else "float32", "status": m["status"],
                             "reason": m["reason"], **accuracy(g_pred, g_true)},
                }
                row["speedup_epoch"] = p_steady / m_steady
                rows.append(row)
                print(f"d={d} {label}: epoch paper {p_steady * 1e3:.0f} ms, mfgx {m_steady * 1e3:.0f} ms "
                      f"(paper/mfgx {row['speedup_epoch']:.2f}×); compile paper {pinfo['compile_s']:.1f} s, "
                      f"mfgx {m['compile_s']:.1f} s; γ rel. error paper "
                      f"{row['paper']['rel_err_mean']:.3%}, mfgx {row['mfgx']['rel_err_mean']:.3%} [{m['status']}]", flush=True)
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "jax": jax.__version__,
            "date": time.strftime("%Y-%m-%d"), "epochs": a.epochs, "seed": a.seed}
    OUT.mkdir(parents=True, exist_ok=True)
    name = "paper_calibration" + ("" if a.case == "constant" else f"_{a.case}")
    (OUT / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        f"# mfgx vs the calibration paper's code (LQ MFG, {a.case} γ)", "",
        f"One run of `benchmarks/paper_calibration.py --case {a.case} --epochs {a.epochs}` on {meta['cpus']} CPU cores, jax {meta['jax']}, "
        f"{meta['date']}. Same data (the paper's generator, seed {a.seed}, 200 train / 20 test, T = 2, N = 100), same "
        "network (64-64 ReLU, softplus + 0.1), Adam 5e-3, batch 10, 20-point windows. The paper runs its own "
        "training step in float32 (its default); mfgx `calibrate.fit` in float64 at its defaults and at the paper's "
        "tolerances (Picard and adjoint 1e-5), and in float32 (`MFGX_X64=0`) at its defaults, with "
        "`scheme=\"calibration_paper\"` (the data's discretisation). Epoch: median steady time (20 steps); "
        "compile: the paper's first step beyond a steady one; mfgx's first 1-epoch fit minus a second one (same cold solves), each mfgx setting in a fresh process. γ error: mean over test "
        "trajectories and times of |γ̂ − γ|/γ after the last epoch; max-t error: max over t of |mean_k γ̂ − mean_k γ| "
        "over the truth's range (for a constant truth, absolute).", "",
        "| d | mfgx settings | parity max abs | epoch paper (ms) | epoch mfgx (ms) | paper / mfgx | compile paper (s) | compile mfgx (s) | γ error paper | γ error mfgx | max-t error paper | max-t error mfgx | mfgx status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p, m = r["paper"], r["mfgx"]
        lines.append(f"| {r['d']} | {r['mfgx_settings']} | {r['parity_max_abs']:.1e} | {p['epoch_s'] * 1e3:.0f} | {m['epoch_s'] * 1e3:.0f} | "
                     f"{r['speedup_epoch']:.2f}× | {p['compile_s']:.1f} | {m['compile_s']:.1f} | {p['rel_err_mean']:.2%} | "
                     f"{m['rel_err_mean']:.2%} | {p['max_t_err_over_range']:.3g} | {m['max_t_err_over_range']:.3g} | {m['status']} |")
    (OUT / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / f'{name}.md'}")


if __name__ == "__main__":
    sys.exit(main())
