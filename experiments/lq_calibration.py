"""The calibration paper's LQ MFG experiment (Thöni et al., §6.1) with mfgx.calibrate.

Ground truths γ(t, μ) (b_min = 0.1, b_max = 3.0, T = 2):
  constant     1.55
  arc          b_min + (b_max − b_min)·4t(T − t)/T²
  mean_field   b_min + (b_max − b_min)·μ(0)       (evaluated on the equilibrium when generating data)

For each d the time grid is chosen so that explicit Euler keeps mass non-negative with margin:
N is raised from the paper's 100 until Δt·R ≤ 0.5 on the generated data, where R is the largest
total out-rate Σ_y a*_xy of the ground-truth equilibrium (Δt·R ≤ 1 is the positivity condition;
the margin covers the fit's iterates). The table reports N, Δt·R, and Δt·R at the paper's N = 100.

Fitted paths (floor 0.05, so the truth's minimum 0.1 is reachable):
  `network`   the paper's choice for every truth: an MLP of (t, μ) (here width 32, depth 2, tanh);
  `constant`  a single learned constant (constant truth only).
Data: μ₀ ~ Dirichlet(1, …, 1), noise-free; train / validation / test trajectories split by seed;
the model is selected on the validation loss, and γ- and μ-errors are measured on the test set
(γ evaluated on the observed test flows, as in the paper; both errors are the paper's metrics).

    .venv/bin/python experiments/lq_calibration.py --quick      # d ∈ {3, 4}, one seed, < 2 min
    .venv/bin/python experiments/lq_calibration.py              # d ∈ {3, 4, 8, 16, 32}, seeds 42–46

Writes experiments/results/lq_calibration{_quick}.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import time
import warnings
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import mfgx
from mfgx import calibrate as cal

T, B_MIN, B_MAX = 2.0, 0.1, 3.0
TRUTHS = {"constant": (1.55, 0.0, 0.0), "arc": (B_MIN, B_MAX - B_MIN, 0.0), "mean_field": (B_MIN, 0.0, B_MAX - B_MIN)}
RESULTS = Path(__file__).parent / "results"


class Truth(cal.AbstractPath):
    """γ = c₀ + c₁·4t(T − t)/T² + c₂·μ(0): every ground truth in one compiled form."""

    coef: jax.Array

    def __init__(self, coef):
        self.floor, self.upper = 0.0, None
        self.coef = jnp.asarray(coef, float)

    @property
    def size(self):
        return 1

    def __call__(self, t, mu):
        c0, c1, c2 = self.coef
        return jnp.reshape(c0 + c1 * 4 * t * (T - t) / T**2 + c2 * mu[0], (1,))


@eqx.filter_jit
def _max_out_rate(game, truth, mu0s):
    def one(m0):
        g = cal._iterate.on_iterate(eqx.tree_at(lambda g: g.mu0, game, m0), truth, cal.scalar_params, cal._model.game_times(game))
        eq = mfgx.solve(g, mfgx.FixedPoint(0.0), tol=1e-12, max_steps=1000)
        a = eq.policy[:-1] * (1 - jnp.eye(game.n_states))
        return a.sum(-1).max(), eq.converged

    return eqx.filter_vmap(one)(mu0s)


def out_rate(d, n_points, coef, mu0s):
    """Δt·R on these initial conditions, or inf if the Euler flow loses positivity."""
    game = mfgx.games.lq_rates(d=d, n_points=n_points, T=T)
    try:
        rates, conv = _max_out_rate(game, Truth(coef), jnp.asarray(mu0s))
    except Exception as e:  # noqa: BLE001  (the engine's negative-mass error)
        if "negative mass" in str(e):
            return math.inf
        raise
    if not bool(np.all(np.asarray(conv))):
        raise RuntimeError(f"ground-truth equilibrium did not converge (d={d}, N={n_points})")
    return float(np.max(np.asarray(rates))) * T / (n_points - 1)


def choose_n(d, mu0s, margin=0.5):
    """The smallest N on a coarse ladder (≥ 100) with Δt·R ≤ margin for every ground truth."""
    paper = {name: out_rate(d, 100, coef, mu0s) for name, coef in TRUTHS.items()}
    n = 100
    while True:
        worst = max(out_rate(d, n, coef, mu0s) for coef in TRUTHS.values())
        if worst <= margin:
            return n, worst, paper
        grow = 2.0 if math.isinf(worst) else 1.15 * worst / margin
        n = int(math.ceil((n - 1) * grow / 25.0) * 25) + 1


def run_case(d, n_points, truth_name, fitted, seed, sizes, epochs, lr, batch, progress):
    rng = np.random.default_rng(seed)
    K = sum(sizes)
    mu0 = rng.dirichlet(np.ones(d), size=K)
    game = mfgx.games.lq_rates(d=d, n_points=n_points, T=T)
    truth = Truth(TRUTHS[truth_name])
    t0 = time.perf_counter()
    data = cal.simulate(game, truth, mu0, metadata={"truth": truth_name, "d": d})
    train, val, test = data.split(*sizes, seed=seed)
    if fitted == "constant":
        path = cal.Constant(B_MAX, floor=0.05)
    else:
        path = cal.Neural(32, 2, jax.random.PRNGKey(seed), n_states=d, time_scale=T, init=B_MAX, floor=0.05)
    model = cal.CalibrationModel(game, path)
    fit = cal.fit(model, train, val=val, optimizer=_adam(lr), epochs=epochs, batch_size=batch, seed=seed,
                  eval_every=max(1, epochs // 10), eval_train=False, progress=progress)
    test_metrics = cal.evaluate(fit, test)
    row = {
        "d": d, "N": n_points, "truth": truth_name, "path": fitted, "seed": seed,
        "train/val/test": list(sizes), "epochs": fit.epochs_run, "best_epoch": fit.best_epoch,
        "gamma_error": cal.path_error(fit, truth, test), "mu_error": test_metrics["mu_error"],
        "test_loss": test_metrics["loss"], "n_nonconverged": test_metrics["n_nonconverged"]
        + sum(r["n_nonconverged"] for r in fit.history),
        "data_fixed_point_residual": data.metadata["max_fixed_point_residual"],
    }
    if fitted == "constant":
        # Adam's estimate, then the Gauss–Newton polish on the training set (selected on nothing else)
        row["gamma_adam"] = float(fit.path.values[0])
        polished = cal.refine(fit, train)
        row["gamma_hat"] = float(polished.path.values[0])
        row["gamma_rel_error"] = abs(row["gamma_hat"] - 1.55) / 1.55
        row["mu_error_refined"] = cal.evaluate(polished, test, batch_size=batch)["mu_error"]
    row["seconds"] = time.perf_counter() - t0
    return row


def probe_cost(d, n_points, batch, steps=3):
    """Seconds to compile one training step of the network fit and per step after that."""
    import optax

    rng = np.random.default_rng(0)
    game = mfgx.games.lq_rates(d=d, n_points=n_points, T=T)
    data = cal.simulate(game, Truth(TRUTHS["arc"]), rng.dirichlet(np.ones(d), size=batch))
    model = cal.CalibrationModel(game, cal.Neural(32, 2, jax.random.PRNGKey(0), n_states=d, time_scale=T, init=B_MAX, floor=0.05))
    opt = optax.adam(1e-3)
    t0 = time.perf_counter()
    cal.fit(model, data, optimizer=opt, epochs=1, batch_size=batch, eval_train=False, progress=False)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal.fit(model, data, optimizer=opt, epochs=steps, batch_size=batch, eval_train=False, progress=False)
    per_step = (time.perf_counter() - t0) / steps
    return {"d": d, "N": n_points, "compile_s": first - per_step, "step_s": per_step}


_OPTIMISERS = {}


def _adam(lr):
    import optax

    return _OPTIMISERS.setdefault(lr, optax.adam(lr))


def write(rows, grids, args, elapsed):
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "lq_calibration_quick" if args.quick else "lq_calibration"
    meta = {
        "command": "experiments/lq_calibration.py" + (" --quick" if args.quick else ""),
        "jax": jax.__version__, "platform": platform.platform(), "device": str(jax.devices()[0]),
        "seconds": elapsed, "settings": vars(args),
    }
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "grids": grids, "runs": rows}, indent=1))
    lines = [
        f"# LQ MFG calibration (paper §6.1){' — quick run' if args.quick else ''}",
        "",
        f"`{meta['command']}` — {elapsed:.0f} s on {meta['device']} ({meta['platform']}), jax {meta['jax']}.",
        "",
        "## Time grids (Euler positivity: Δt · max total out-rate ≤ 1 is required; we ask ≤ 0.5)",
        "",
        "| d | N chosen | Δt | Δt·R at N (worst truth) | Δt·R at the paper's N = 100: constant / arc / mean-field |",
        "|---|---|---|---|---|",
    ]
    fmt = lambda x: "negative mass" if math.isinf(x) else f"{x:.2f}"  # noqa: E731
    for g in grids:
        p = g["paper_N100"]
        lines.append(
            f"| {g['d']} | {g['N']} | {T / (g['N'] - 1):.4f} | {g['dt_R']:.2f} | "
            f"{fmt(p['constant'])} / {fmt(p['arc'])} / {fmt(p['mean_field'])} |"
        )
    lines += [
        "",
        "## Test-set errors (mean ± s.e. over seeds; γ-error = (1/N)Σ‖γ̂−γ‖², μ-error = (1/N)Σ‖μ̂−μ‖²)",
        "",
        "| d | N | truth | path | seeds | γ̂ Adam → Gauss–Newton (truth 1.55) | γ-error | μ-error | best epoch / epochs | non-converged solves | s per run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["d"], r["truth"], r["path"]) for r in rows}, key=lambda k: (k[0], list(TRUTHS).index(k[1]), k[2]))
    for d, truth, path in keys:
        rs = [r for r in rows if (r["d"], r["truth"], r["path"]) == (d, truth, path)]
        ms = lambda k, digits=3: _mean_se([r[k] for r in rs], digits)  # noqa: E731
        gh = f"{ms('gamma_adam', 5)} → {ms('gamma_hat', 7)}" if "gamma_hat" in rs[0] else "—"
        lines.append(
            f"| {d} | {rs[0]['N']} | {truth} | {path} | {len(rs)} | {gh} | {ms('gamma_error')} | {ms('mu_error')} | "
            f"{'/'.join(str(r['best_epoch']) for r in rs)} / {rs[0]['epochs']} | "
            f"{sum(r['n_nonconverged'] for r in rs)} | {np.mean([r['seconds'] for r in rs]):.0f} |"
        )
    if args.quick:
        steps = args.epochs * math.ceil(args.sizes[0] / args.batch)
        lines += [
            "",
            f"**Quick run: {steps} Adam steps per fit** (the paper: 500 epochs × 20 batches = 10 000). The constant "
            "path is recovered (and exactly after the Gauss–Newton polish); the networks are far from converged, "
            "so their γ-errors only show the pipeline runs. Their μ-errors are already small while γ is not: where "
            "γ is large the rates a* = q̄ − Δu/(2γ) hardly depend on γ, so the flows carry little information on it.",
        ]
    cost_file = RESULTS / "lq_calibration_cost.json"
    if cost_file.exists():
        cost = json.loads(cost_file.read_text())
        lines += [
            "",
            f"## Cost of the full run (`--probe`: one training step, batch {cost['batch']}, network path, {cost['device']})",
            "",
            f"{cost['steps_per_fit']} steps per fit, {cost['fits_per_d']}.",
            "",
            "| d | N | compile (s) | s per step | hours per fit | hours for all fits of this d |",
            "|---|---|---|---|---|---|",
        ]
        for g in cost["grids"]:
            if "step_s" in g:
                h = g["full_run_hours_per_fit"]
                lines.append(f"| {g['d']} | {g['N']} | {g['compile_s']:.0f} | {g['step_s']:.3g} | {h:.3g} | {20 * h:.3g} |")
            else:
                err = g.get("error", "")
                found = re.search(r"Out of memory allocating (\d+) bytes", err)
                err = f"out of memory: one step asked for {int(found.group(1)) / 2**30:.0f} GiB" if found else err[:90]
                lines.append(f"| {g['d']} | {g['N']} | — | {err} | — | — |")
    lines += [
        "",
        "γ-error and μ-error are those of the Adam fit selected on validation; for the constant path the "
        "Gauss–Newton polish (`calibrate.refine` on the training set) gives the second γ̂.",
        "",
        f"Settings: {json.dumps(vars(args))}.",
        "",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))


def _mean_se(values, digits=3):
    v = np.asarray(values, float)
    if v.size == 1:
        return f"{v[0]:.{digits}g}"
    return f"{v.mean():.{digits}g} ± {v.std(ddof=1) / math.sqrt(v.size):.2g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="d ∈ {3, 4}, one seed, small data (< 2 min)")
    ap.add_argument("--dims", type=int, nargs="*", default=None)
    ap.add_argument("--seeds", type=int, nargs="*", default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--probe", action="store_true", help="only time one training step per d (cost of the full run)")
    args = ap.parse_args()
    if args.quick:
        args.dims = args.dims or [3, 4]
        args.seeds = args.seeds or [42]
        args.epochs = args.epochs or 20
        args.lr = args.lr or 3e-2
        sizes = (30, 10, 10)
    else:
        args.dims = args.dims or [3, 4, 8, 16, 32]
        args.seeds = args.seeds or [42, 43, 44, 45, 46]
        args.epochs = args.epochs or 500
        args.lr = args.lr or 5e-3
        sizes = (200, 20, 20)  # the paper's 200 / 20 train / test, plus 20 for validation
    args.sizes = list(sizes)
    warnings.simplefilter("ignore", mfgx.NonSmoothWarning)
    start = time.perf_counter()
    rows, grids = [], []
    for d in args.dims:
        probe = np.random.default_rng(0).dirichlet(np.ones(d), size=8)
        n, worst, paper = choose_n(d, np.concatenate([probe, np.full((1, d), 1.0 / d)]))
        grids.append({"d": d, "N": n, "dt_R": worst, "paper_N100": paper})
        print(f"d={d}: N={n} (Δt·R={worst:.2f}); paper N=100: {paper}", flush=True)
        if args.probe:
            try:
                grids[-1].update(probe_cost(d, n, args.batch))
            except cal.CalibrationError as e:  # e.g. out of memory at d = 32
                grids[-1]["error"] = str(e)[:300]
            print(grids[-1], flush=True)
            continue
        for seed in args.seeds:
            for truth in TRUTHS:
                both = truth == "constant" and not args.quick
                for fitted in (["constant", "network"] if both else ["constant"] if truth == "constant" else ["network"]):
                    row = run_case(d, n, truth, fitted, seed, sizes, args.epochs, args.lr, args.batch, args.progress)
                    rows.append(row)
                    print({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    if args.probe:
        RESULTS.mkdir(parents=True, exist_ok=True)
        steps = 500 * math.ceil(200 / args.batch)  # the paper's 500 epochs of 200 trajectories
        for g in grids:
            if "step_s" in g:
                g["full_run_hours_per_fit"] = steps * g["step_s"] / 3600
        cost = {"device": str(jax.devices()[0]), "batch": args.batch, "steps_per_fit": steps,
                "fits_per_d": "4 per seed (constant path + network for 3 truths) x 5 seeds", "grids": grids}
        (RESULTS / "lq_calibration_cost.json").write_text(json.dumps(cost, indent=1))
        return
    write(rows, grids, args, time.perf_counter() - start)


if __name__ == "__main__":
    main()
