"""Epidemic study on real data: the SIR MFG with contact-factor control against the forward SIR ODE,
both with β(t, school term), γ(t, school term) (and the MFG's cost of infection c_I) from the same
network, on measles epidemic waves in the 20 towns of England and Wales of He, Ionides & King (2010)
(bundled with pypomp), aligned at onset, observing I only, split by town (test towns never seen).

The settings are those of `mfgx.studies.MEASLES_CONFIG`, repeated over seeds: the seed draws the
town split and the network's initialisation. Writes experiments/results/epidemic_study{_quick}.{md,json}
and each seed's full report (figures, fitted models) under outputs/epidemic_study/seed<k>/.

    .venv/bin/python experiments/epidemic_study.py --quick    # 3 seeds × 20 epochs (~10 min, 2 cores)
    .venv/bin/python experiments/epidemic_study.py            # 3 seeds × 60 epochs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from mfgx import studies

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("outputs/epidemic_study"))
    parser.add_argument("--table-only", action="store_true", help="rewrite the .md from the saved .json")
    args = parser.parse_args()
    suffix = "_quick" if args.quick else ""
    if args.table_only:
        saved = json.loads((RESULTS / f"epidemic_study{suffix}.json").read_text())
        (RESULTS / f"epidemic_study{suffix}.md").write_text(_table(saved["runs"], saved["epochs"]))
        return
    epochs = args.epochs or (20 if args.quick else 60)
    base = studies.load_config(studies.MEASLES_CONFIG)
    runs = []
    for seed in args.seeds:
        cfg = dataclasses.replace(base, seed=seed, output=args.out / f"seed{seed}", fit={**base.fit, "epochs": epochs})
        start = time.perf_counter()
        result = studies.run(cfg, progress=False)
        runs.append({"seed": seed, "metrics": result.metrics, "wall_time_s": time.perf_counter() - start,
                     "test_towns": sorted({m["town"] for m in studies.load_splits(cfg)["test"].metadata["trajectories"]})})
        print(f"seed {seed}: test rel. L2 baseline {result.metrics['baseline']['test']['rel_l2']:.4f}, "
              f"MFG {result.metrics['mfg']['test']['rel_l2']:.4f} ({runs[-1]['wall_time_s']:.0f} s)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"epidemic_study{suffix}.json").write_text(json.dumps({"epochs": epochs, "runs": runs}, indent=2))
    (RESULTS / f"epidemic_study{suffix}.md").write_text(_table(runs, epochs))


def _table(runs, epochs) -> str:
    def stat(model, split, metric):
        v = np.array([r["metrics"][model][split][metric] for r in runs])
        se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
        return v, f"{v.mean():.4g} ± {se:.2g}"

    lines = [
        "# Epidemic study: SIR MFG vs forward SIR ODE on UK measles waves (I observed only)",
        "",
        f"Seeds {[r['seed'] for r in runs]} (town split and initialisation), {epochs} epochs, settings of "
        "`mfgx/studies/configs/measles.toml`; mean ± standard error over seeds.",
        "",
        "| split | L2 baseline | L2 MFG | rel. L2 baseline | rel. L2 MFG | improvement (rel. L2) | MFG better in |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for split in ("train", "val", "test"):
        _, l2b = stat("baseline", split, "l2")
        _, l2m = stat("mfg", split, "l2")
        rb, rlb = stat("baseline", split, "rel_l2")
        rm, rlm = stat("mfg", split, "rel_l2")
        imp = 100 * (rb - rm) / rb
        lines.append(f"| {split} | {l2b} | {l2m} | {rlb} | {rlm} | {imp.mean():+.1f} % | {(imp > 0).sum()}/{len(imp)} seeds |")
    test_imp = np.array([100 * (r["metrics"]["baseline"]["test"]["rel_l2"] - r["metrics"]["mfg"]["test"]["rel_l2"])
                         / r["metrics"]["baseline"]["test"]["rel_l2"] for r in runs])
    v = studies.verdict(test_imp)
    lines += ["", f"On the test towns, MFG vs baseline: **{v.label}** (relative-L2 improvement per seed: "
              + ", ".join(f"{x:+.1f} %" for x in test_imp)
              + f"; mean {v.mean:+.1f} %, 95 % interval over seeds [{v.low:+.1f}, {v.high:+.1f}] %).", "",
              "This is no evidence for strategic behaviour either way: at measles prevalence (1e-4 to 1e-3) the "
              "MFG's contact factor stays at its temperature-only value (the baseline with β rescaled), β(t, school "
              "term) from the same network absorbs any behavioural factor, and the SIR model is too crude for "
              "measles (no births, no latent period). The strategic test is the COVID first-wave study "
              "(`experiments/results/covid_study.md`).", "",
              "Test towns per seed: " + "; ".join(f"{r['seed']}: {', '.join(r['test_towns'])}" for r in runs), "",
              "Wall time per seed (s): " + ", ".join(f"{r['wall_time_s']:.0f}" for r in runs), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
