"""mfgx's CNF and SGM vs torchcfm (OT-CFM, VP-CFM) and flowjax (spline MAF) on the 2-D toys, side by side
in one run at the same wall-clock training budget (issues 14 and 15; `make bench-gen-peers`).

Every method gets the same training rows (20 000 samples of the toy, raw coordinates) and BUDGET seconds
of wall time for training, compilation included (each loop stops at the first step that ends past the
budget). The peers run in .venv-gen-peers (install_generative.sh) through generative_driver.py as
subprocesses, one after another; mfgx runs here, in float32 like the peers. Then on the same held-out
points:

- NLL (nats per sample) on 2000 test points, exactly: mfgx CNF by its RK4 flow with the exact trace
  (16 steps; it trains with OT-Flow's 8–12), mfgx SGM by the PF-ODE (Dopri5, rtol = atol = 1e-5, exact
  divergence), CFM by the flow ODE with the exact divergence (dopri5 1e-5), flowjax by its log_prob;
  ΔNLL vs mfgx's CNF with a 95 % interval paired over the test points (the test-set noise of this one
  training run; training seeds are not repeated).
- MMD² (unbiased, RBF mixture) and sliced W₂ between 5000 model samples and 5000 test points (mfgx's
  metrics for every method).
- kinetic energy E∫₀¹½|v|² dt of the learned flow along the paths of the test points (CNF and CFM:
  both on t ∈ [0, 1] between data and N(0, I)); displacement ½E|x − T(x)|², T(x) the base-space image
  (a lower bound on the kinetic energy of any path between them).
- sampling time for 10⁵ samples (second call; the first includes compilation for the JAX methods).

    python benchmarks/peers/side_by_side_generative.py [--budget 60] [--toys moons 8gaussians checkerboard]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import math
import pathlib
import subprocess
import tempfile
import time
import zlib

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import mfgx  # noqa: F401
from mfgx import generative as g
from mfgx.generative import datasets, metrics

ROOT = pathlib.Path(__file__).resolve().parents[2]
PEER_PYTHON = ROOT / ".venv-gen-peers" / "bin" / "python"
DRIVER = ROOT / "benchmarks" / "peers" / "generative_driver.py"
OUT = ROOT / "benchmarks" / "results" / os.environ.get("GEN_PEERS_NAME", "generative_peers")
N_TRAIN, N_NLL, N_MMD, N_SAMPLE = 20_000, 2000, 5000, 100_000
# OT-Flow's toy settings (science note §5.5): (α_L, α_C, α_R), lr, drop_every, nt. Batch 1024 (theirs 5000–10 000)
# so that a CPU budget holds more steps.
CNF_SETTINGS = {
    "8gaussians": ((1.0, 30.0, 1.0), 0.1, 500, 8),
    "moons": ((1.0, 8.0, 1.0), 0.05, 1000, 8),
    "checkerboard": ((1.0, 15.0, 2.0), 0.05, 1000, 12),
    "swissroll": ((1.0, 30.0, 15.0), 0.05, 1000, 8),
    "circles": ((1.0, 5.0, 1.0), 0.05, 1000, 8),
    "pinwheel": ((1.0, 30.0, 15.0), 0.05, 1000, 8),
    "2spirals": ((1.0, 10.0, 1.0), 0.05, 1000, 8),
}
EVAL_STEPS = 16


class Budget:
    """A fit callback that stops the loop at the first step ending past ``seconds`` of wall time."""

    def __init__(self, seconds):
        self.seconds, self.t0 = seconds, time.perf_counter()

    def __call__(self, record):
        return time.perf_counter() - self.t0 >= self.seconds


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kw))
    return out, time.perf_counter() - t0


def mfgx_cnf(toy, train, test, budget, key):
    (aL, aC, aR), lr, drop, nt = CNF_SETTINGS[toy]
    problem = g.CNF(alpha_L=aL, alpha_C=aC, alpha_R=aR, n_steps=nt)
    t0 = time.perf_counter()
    fit = g.fit(problem, train, key=key, steps=10**7, batch_size=1024, learning_rate=lr, drop_every=drop,
                width=32, depth=2, progress=False, callback=Budget(budget))
    train_s = time.perf_counter() - t0
    flow = fit.final_model
    logp = np.asarray(g.log_density(flow, test, n_steps=EVAL_STEPS))
    ev = g.evaluate(flow, test, n_steps=EVAL_STEPS)
    z = g.transport(flow, test, n_steps=EVAL_STEPS)
    disp = float(0.5 * jnp.mean(jnp.sum((test - z) ** 2, 1)))
    xs, first = timed(g.sample, flow, jr.fold_in(key, 1), N_SAMPLE, n_steps=EVAL_STEPS)
    xs, second = timed(g.sample, flow, jr.fold_in(key, 2), N_SAMPLE, n_steps=EVAL_STEPS)
    return {"steps": fit.steps_run, "train_s": train_s, "first_step_s": fit.history[0]["seconds"], "nll": -float(logp.mean()),
            "kinetic": ev["L"], "hjb_residual": ev["R"], "displacement": disp, "sample_s_first": first, "sample_s": second,
            "version": f"mfgx CNF (OT-Flow form) w32 nTh2, α={problem.alpha_L, problem.alpha_C, problem.alpha_R}, nt={nt}, RK4 {EVAL_STEPS} steps in eval"}, np.asarray(xs), logp


def mfgx_sgm(toy, train, test, budget, key):
    sde = g.VP()
    t0 = time.perf_counter()
    fit = g.fit_sgm(g.SGM(sde), train, key=key, model="direct", width=64, depth=2, steps=10**7, batch_size=256,
                    learning_rate=2e-3, eval_every=10**6, progress=False, callback=Budget(budget))
    train_s = time.perf_counter() - t0
    model = fit.final_model
    logp = np.asarray(g.log_likelihood(model, sde, test))
    xs, first = timed(g.sample_ode, model, sde, jr.fold_in(key, 1), N_SAMPLE)
    return {"steps": fit.steps_run, "train_s": train_s, "first_step_s": fit.history[0]["seconds"], "nll": -float(logp.mean()),
            "kinetic": None, "displacement": None, "sample_s_first": first, "sample_s": None,
            "version": "mfgx SGM: VP, ScoreNet(64, 2), DSM σ², PF-ODE Dopri5 1e-5 (sampling timed once, compile included)"}, np.asarray(xs), logp


def peer(method, data_file, budget, seed, tmp):
    out = pathlib.Path(tmp) / f"{method}.npz"
    proc = subprocess.run([str(PEER_PYTHON), str(DRIVER), method, str(data_file), str(budget), str(seed), str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} driver failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    arr = np.load(out)
    return res, arr["samples"], arr["logp"]


def paired(logp_ref, logp):
    d = -np.asarray(logp, float) + np.asarray(logp_ref, float)  # NLL(method) − NLL(ref) per point
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def fmt(v, spec=".3g"):
    return "–" if v is None else format(v, spec)


def entropy_floor(toy):
    """The data entropy H (nats), the floor of the expected NLL, where it is known: checkerboard is uniform on
    8 squares of side 2 (area 32); 8gaussians is the mixture Σₖ N(4(cos kπ/4, sin kπ/4)/1.414, (0.5/1.414)² I)/8
    (Monte Carlo, 10⁶ samples, s.e. ≈ 0.001)."""
    if toy == "checkerboard":
        return math.log(32.0)
    if toy == "8gaussians":
        k = np.arange(8) * np.pi / 4
        gm = datasets.GaussianMixture(4 * np.stack([np.cos(k), np.sin(k)], 1) / 1.414, (0.5 / 1.414) ** 2)
        return -float(jnp.mean(gm.log_prob(gm.sample(jr.PRNGKey(0), 10**6))))
    return None


def verdicts(rows):
    out = []
    for toy in dict.fromkeys(r["toy"] for r in rows):
        rs = {r["method"]: r for r in rows if r["toy"] == toy}
        cnf = rs.get("mfgx-cnf")
        if cnf is None:
            continue
        best = min(rs.values(), key=lambda r: r["nll"])
        nll = []
        for m, r in rs.items():
            if m == "mfgx-cnf":
                continue
            lo, hi = r["dnll"][1], r["dnll"][2]
            nll.append(f"{m} {'worse' if lo > 0 else 'better' if hi < 0 else 'no significant difference'}")
        line = f"- **{toy}**: lowest NLL {best['method']} ({best['nll']:.3f}); vs mfgx CNF: " + ", ".join(nll) + "."
        if "otcfm" in rs and rs["otcfm"]["kinetic"] is not None:
            k = cnf["kinetic"] / rs["otcfm"]["kinetic"]
            line += f" Kinetic energy CNF/OT-CFM = {k:.2f} ({'CNF lower' if k < 1 else 'OT-CFM lower'})."
        tc = [rs[m]["sample_s"] for m in ("otcfm", "vpcfm") if m in rs]
        if tc:
            line += f" Sampling 10⁵: torchcfm {min(tc) / cnf['sample_s']:.1f}–{max(tc) / cnf['sample_s']:.1f}× the CNF's time."
        out.append(line)
    return out


def render(rows, budget):
    lines = [
        "# Generative peers side by side (issues 14, 15)",
        "",
        f"Generated by `benchmarks/peers/side_by_side_generative.py` in one run on this machine (2 shared CPU cores, "
        f"other jobs running: timings are noisy; ratios were measured in the same run). Every method trained for "
        f"{budget:g} s of wall time (compilation included) on the same 20 000 samples, float32, one training seed; "
        f"NLL on the same {N_NLL} test points (nats, exact divergence/trace), MMD² and sliced W₂ between {N_MMD} samples "
        f"and {N_MMD} test points. ΔNLL: method − mfgx CNF, paired over test points (95 %; test-set noise of this one "
        f"run only). Kinetic: E∫₀¹½|v|²dt along the test points' paths; displacement: ½E|x − T(x)|², T(x) the base "
        f"point. Sample: seconds for 10⁵ samples (second call); × = that time / mfgx CNF's.",
        "",
        "Entropy floors (the lowest possible expected NLL): " + ", ".join(
            f"{t} {entropy_floor(t):.3f}" for t in dict.fromkeys(r["toy"] for r in rows) if entropy_floor(t) is not None)
        + " nats; moons: not known in closed form.",
        "",
        "| toy | method | steps | NLL | ΔNLL vs CNF (95 %) | MMD² | sliced W₂ | kinetic | displacement | sample 10⁵ (s) | × CNF |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for toy in dict.fromkeys(r["toy"] for r in rows):
        rs = [r for r in rows if r["toy"] == toy]
        cnf = next(r for r in rs if r["method"] == "mfgx-cnf")
        for r in rs:
            s = r["sample_s"] if r["sample_s"] is not None else r["sample_s_first"]
            star = "" if r["sample_s"] is not None else "*"
            dl = "–" if r["method"] == "mfgx-cnf" else f"{r['dnll'][0]:+.3f} [{r['dnll'][1]:+.3f}, {r['dnll'][2]:+.3f}]"
            lines.append(f"| {toy} | {r['method']} | {r['steps']} | {r['nll']:.3f} | {dl} | {r['mmd2']:.2e} | {r['sw2']:.3f} | "
                         f"{fmt(r['kinetic'])} | {fmt(r['displacement'])} | {s:.2f}{star} | {s / cnf['sample_s']:.2f} |")
    lines += ["", "\\* timed once, compilation included.", "", "## Verdicts (this run)", "", *verdicts(rows), "",
              "## Versions and settings", "",
              "- mfgx-cnf: OT-Flow potential (width 32, nTh 2), OT-Flow's toy weights (α_L, α_C, α_R), learning rate, "
              "lr drop and RK4 time steps nt per toy (science note §5.5; batch 1024 instead of 5000–10 000); "
              "evaluation with 16 RK4 steps and the exact trace.",
              "- mfgx-sgm: VP SDE, ScoreNet(64, 2), DSM with λ = σ², Adam 2e-3, batch 256; PF-ODE Dopri5 rtol = atol = "
              "1e-5 for NLL (exact divergence) and sampling.",
              "- otcfm / vpcfm: torchcfm's ExactOptimalTransportConditionalFlowMatcher (σ = 0.1) / "
              "VariancePreservingConditionalFlowMatcher, its MLP(w = 64), Adam 1e-3, batch 256, torch with 1 thread "
              "(its fastest setting on this loaded machine); NLL by dopri5 1e-5 with the exact divergence, sampling "
              "dopri5 1e-4.",
              "- flowjax: masked autoregressive flow, rational-quadratic splines (8 layers, 8 knots on [−5, 5], "
              "width 50), Adam 1e-3, batch 256.",
              ""]
    lines.append(f"- mfgx {importlib.metadata.version('mfgx')}, jax {jax.__version__}")
    for m in dict.fromkeys(r["method"] for r in rows if not r["method"].startswith("mfgx")):
        lines.append(f"- {m}: {next(r['version'] for r in rows if r['method'] == m)}")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--budget", type=float, default=60.0)
    p.add_argument("--toys", nargs="+", default=["moons", "8gaussians", "checkerboard"])
    p.add_argument("--methods", nargs="+", default=["mfgx-cnf", "mfgx-sgm", "otcfm", "vpcfm", "flowjax"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table", action="store_true", help="only re-render the table from the last run's JSON")
    a = p.parse_args()
    if a.table:
        rows = json.loads(OUT.with_suffix(".json").read_text())
        md = render(rows, a.budget)
        OUT.with_suffix(".md").write_text(md + "\n")
        print(md)
        return
    if not PEER_PYTHON.exists():
        print(f"skipped: {PEER_PYTHON} is missing (run: bash benchmarks/peers/install_generative.sh)")
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for toy in a.toys:
            key = jr.PRNGKey(a.seed)
            kd, kt, km = jr.split(jr.fold_in(key, zlib.crc32(toy.encode()) % 1000), 3)
            train = np.asarray(datasets.toy(toy, kd, N_TRAIN), np.float32)
            test = np.asarray(datasets.toy(toy, kt, N_MMD), np.float32)
            data_file = pathlib.Path(tmp) / f"{toy}.npz"
            np.savez(data_file, train=train, test=test[:N_NLL])
            results = {}
            for m in a.methods:
                if m == "mfgx-cnf":
                    res, xs, logp = mfgx_cnf(toy, jnp.asarray(train), jnp.asarray(test[:N_NLL]), a.budget, km)
                elif m == "mfgx-sgm":
                    res, xs, logp = mfgx_sgm(toy, jnp.asarray(train), jnp.asarray(test[:N_NLL]), a.budget, km)
                else:
                    res, xs, logp = peer(m, data_file, a.budget, a.seed, tmp)
                xs = jnp.asarray(np.asarray(xs)[:N_MMD], jnp.float32)
                ok = bool(np.all(np.isfinite(np.asarray(xs))))
                res.update(toy=toy, method=m, budget_s=a.budget, finite_samples=ok,
                           mmd2=float(metrics.mmd2(xs, jnp.asarray(test))) if ok else float("nan"),
                           sw2=float(metrics.sliced_wasserstein(xs, jnp.asarray(test), key=jr.PRNGKey(7))) if ok else float("nan"))
                results[m] = (res, logp)
                print(json.dumps({k: v for k, v in res.items() if k != "version"}), flush=True)
            ref = results.get("mfgx-cnf", (None, None))[1]
            for m, (res, logp) in results.items():
                res["dnll"] = paired(ref, logp) if ref is not None and m != "mfgx-cnf" else None
                rows.append(res)
    OUT.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    if all(any(r["method"] == "mfgx-cnf" and r["toy"] == t for r in rows) for t in a.toys):
        md = render(rows, a.budget)
        OUT.with_suffix(".md").write_text(md + "\n")
        print(md)


if __name__ == "__main__":
    main()
