"""Sweep throughput on Ray: N identical small calibrations with 1 and with 2 Ray workers.

Each trial is `mfgx.sweep.run_synthetic` on the LQ game (d = 3, N = 100 time points, 10 training
trajectories, 5 Adam epochs of one batch, constant γ; trials differ only in their seed). Measured in
one run, on the same machine:

- in process (no Ray): one trial to compile, then N trials → c, the steady-state seconds per trial;
- Ray with 1 CPU and with 2 CPUs: a fresh local Ray, a warm-up sweep (one trial per worker: start-up
  and compilation, reported separately), then a timed sweep of N trials into a fresh folder → T₁, T₂.

Scaling efficiency = T₁ / (2 T₂) (1 = perfect). Overhead per trial = T₁/N − c (task dispatch,
result and trial files, progress polling). Timings on a shared machine are noisy: compare the ratios.

    .venv/bin/python benchmarks/sweep.py [--trials 8]

Writes benchmarks/results/sweep.md and sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

BASE = {
    "study": {"kind": "synthetic"},
    "game": {"name": "lq", "d": 3, "n_points": 100},
    "truth": {"kind": "constant"},
    "data": {"n_train": 10, "n_val": 0, "n_test": 5, "noise": 1e-3},
    "fit": {"epochs": 5, "batch_size": 10, "learning_rate": 0.05, "refine_steps": 0},
}


def spec(folder: Path, seeds: list[int]):
    from mfgx import sweep

    return sweep.spec_from_dict({"sweep": {"output": str(folder), "name": folder.name}, "base": BASE, "axes": {"seed": seeds}})


def timed_sweep(folder: Path, seeds: list[int]) -> float:
    from mfgx import sweep

    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    res = sweep.run(spec(folder, seeds), progress=False)
    seconds = time.perf_counter() - t0
    if res.n_failed:
        raise RuntimeError([r["error"] for r in res.records if r["status"] != "done"])
    return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    args = ap.parse_args()
    import ray

    from mfgx import sweep

    n = args.trials
    tmp = Path(tempfile.mkdtemp(prefix="mfgx-sweep-bench-"))
    out: dict = {"trials": n, "config": BASE, "cpu_count": os.cpu_count(), "platform": platform.platform(),
                 "ray": ray.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_start": os.getloadavg()[0]}
    try:
        cfg = dict(BASE, study={"kind": "synthetic", "seed": 1000})
        t0 = time.perf_counter()
        sweep.run_synthetic(cfg, tmp / "inproc-warm")
        out["in_process_first_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in range(n):
            sweep.run_synthetic(dict(BASE, study={"kind": "synthetic", "seed": s}), tmp / f"inproc-{s}")
        out["in_process_per_trial_s"] = (time.perf_counter() - t0) / n
        for workers in (1, 2):
            t0 = time.perf_counter()
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            out[f"ray{workers}_init_s"] = time.perf_counter() - t0
            try:
                out[f"ray{workers}_warmup_s"] = timed_sweep(tmp / f"warm{workers}", list(range(1000, 1000 + workers)))
                out[f"ray{workers}_sweep_s"] = timed_sweep(tmp / f"sweep{workers}", list(range(n)))
            finally:
                ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["load_average_end"] = os.getloadavg()[0]
    t1, t2, c = out["ray1_sweep_s"], out["ray2_sweep_s"], out["in_process_per_trial_s"]
    out["speedup_2_vs_1"] = t1 / t2
    out["scaling_efficiency"] = t1 / (2 * t2)
    out["overhead_per_trial_s"] = t1 / n - c
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sweep.json").write_text(json.dumps(out, indent=1, default=str))
    lines = [
        "# Sweep throughput on Ray (benchmarks/sweep.py)",
        "",
        f"{n} identical small calibrations (LQ d = 3, N = 100, 10 trajectories, 5 epochs; seeds differ), "
        f"{out['date']}, {out['cpu_count']} cores shared with other jobs (load average {out['load_average_start']:.1f} at the "
        f"start, {out['load_average_end']:.1f} at the end: noisy, compare the ratios), ray {out['ray']}.",
        "",
        "| run | start-up (ray.init) | warm-up sweep (compile, one trial per worker) | timed sweep | per trial |",
        "|---|---:|---:|---:|---:|",
        f"| in process, no Ray | — | {out['in_process_first_s']:.1f} s | {c * n:.1f} s | {c:.2f} s |",
        *[f"| Ray, {w} worker{'s' if w > 1 else ''} | {out[f'ray{w}_init_s']:.1f} s | {out[f'ray{w}_warmup_s']:.1f} s | "
          f"{out[f'ray{w}_sweep_s']:.1f} s | {out[f'ray{w}_sweep_s'] / n:.2f} s |" for w in (1, 2)],
        "",
        f"- Speed-up of 2 workers over 1: **{out['speedup_2_vs_1']:.2f}×**; scaling efficiency T₁/(2T₂) = "
        f"**{out['scaling_efficiency']:.2f}**.",
        f"- Overhead per trial on Ray (1 worker, vs the same trial in process): **{out['overhead_per_trial_s']:.2f} s** "
        f"({100 * out['overhead_per_trial_s'] / c:.0f} % of a {c:.2f} s trial).",
        "- Two workers cannot reach 2× here: XLA's CPU runtime already spreads one trial over both cores in part, and "
        "other jobs share them. The warm-up column is per-worker start-up and JIT compilation (paid once per worker "
        "and shape), which is why a sweep should give each worker many trials.",
        "",
    ]
    (RESULTS / "sweep.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
