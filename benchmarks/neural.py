"""mfgx.neural benchmarks: the cost of a training step of a neural MFG, and of the gradient through the
SDE solver with each Diffrax adjoint. Prints compile time and steady-state time separately.

Model: N = 10⁴ interacting particles in ℝ², dXᵢ = [a(m̄ − Xᵢ) − bXᵢ + f_φ(Xᵢ, t, m̄, v̄)] dt + σ dWᵢ,
f_φ an `AgentMLP` (width 32, depth 2) seeing the population mean and variance; T = 1 with 5
observation times. Loss: MSE of (mean, variance), and optionally + MMD (bandwidths 0.5, 1, chunked)
against observed clouds of 1000 points at every observation time (O(N² + NM) kernel evaluations).

1. Training step (`mfgx.neural.fit`'s jitted step: simulate, loss, gradient, Adam update) for
   n = 50 and 200 Euler–Maruyama steps (moments loss), and n = 50 with the MMD term; default adjoint.
2. Gradient of the loss through the solver with `RecursiveCheckpointAdjoint()` (diffrax default:
   O(log n) checkpoints), `RecursiveCheckpointAdjoint(checkpoints=n)`, `DirectAdjoint()` and
   `BacksolveAdjoint()` (continuous adjoint; Heun + virtual Brownian tree, as it requires): compile
   time, steady time (moments loss), and XLA's compiled memory statistics (temporary buffers; on CPU these are the
   working set XLA plans, a proxy for peak memory).

    .venv/bin/python benchmarks/neural.py            # writes benchmarks/results/neural.md (+ .json)
    .venv/bin/python benchmarks/neural.py --quick    # N = 2000, fewer repeats
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import time

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import mfgx.neural as nm
from mfgx.neural._fit import _batch, _batch_loss, _train_step, check_compatible

OUT = pathlib.Path(__file__).parent / "results"
TS = (0.2, 0.4, 0.6, 0.8, 1.0)


class Herding(eqx.Module):
    def __call__(self, t, x, s):
        return 1.0 * (s[:2] - x) - 0.5 * x


def setup(n_particles: int, m_obs: int = 1000):
    key = jax.random.PRNGKey(0)
    corr = nm.AgentMLP(2, statistic=nm.Moments(), width=32, depth=2, out_scale=0.5, key=key)
    model = nm.ParticleSDE(nm.Feedback(Herding(), nm.Mean()), corr, nm.ConstantDiffusion(0.5))
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(1, n_particles, 2))
    clouds = rng.normal(0.3, 0.8, size=(1, len(TS), m_obs, 2))
    stats = np.concatenate([clouds.mean(2), clouds.var(2)], axis=-1)
    data = nm.PathData(TS, x0, clouds=clouds, stats=stats, t0=0.0)
    full = nm.PathLoss(statistic=nm.Moments(), distance=nm.MMD((0.5, 1.0), chunk=1024))
    stats = nm.PathLoss(statistic=nm.Moments())
    return model, data, full, stats


def timed(fn, *args, repeats=3):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    steady = float(np.median(times))
    return first - steady, steady


def bench_train_step(model, data, loss, n_steps, repeats):
    integ = nm.Integrator(1.0 / n_steps)
    grid = check_compatible(model, data, loss, integ)
    params, static = eqx.partition(model, nm.trainable_filter(model, lambda m: m.correction))
    opt = optax.adam(1e-3)
    state = opt.init(params)
    batch = _batch(data, np.array([0]))
    keys = jax.random.split(jax.random.PRNGKey(1), 1)
    w = jnp.ones(1)

    def step(p, s):
        return _train_step(p, static, s, batch, keys, w, opt, loss, grid, integ)

    compile_s, steady = timed(step, params, state, repeats=repeats)
    fwd = eqx.filter_jit(lambda m: _batch_loss(m, loss, grid, integ, keys, w, batch)[0])
    fcompile, fsteady = timed(fwd, model, repeats=repeats)
    return {"n_steps": n_steps, "loss": "moments + MMD" if loss.distance is not None else "moments",
            "compile_s": compile_s, "step_s": steady, "forward_compile_s": fcompile, "forward_s": fsteady}


def bench_adjoint(model, data, loss, n_steps, name, adjoint, repeats):
    solver = diffrax.Heun() if isinstance(adjoint, diffrax.BacksolveAdjoint) else diffrax.Euler()
    integ = nm.Integrator(1.0 / n_steps, solver, adjoint)
    grid = check_compatible(model, data, loss, integ)
    params, static = eqx.partition(model, nm.trainable_filter(model, lambda m: m.correction))
    batch = _batch(data, np.array([0]))
    keys = jax.random.split(jax.random.PRNGKey(1), 1)
    w = jnp.ones(1)

    def value_and_grad(p):
        return jax.value_and_grad(lambda p: _batch_loss(eqx.combine(p, static), loss, grid, integ, keys, w, batch)[0])(p)

    t0 = time.perf_counter()
    compiled = jax.jit(value_and_grad).lower(params).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    _, steady = timed(compiled, params, repeats=repeats)
    _, grads = compiled(params)
    return {
        "adjoint": name, "solver": type(solver).__name__, "n_steps": n_steps, "compile_s": compile_s, "value_grad_s": steady,
        "temp_mb": None if mem is None else mem.temp_size_in_bytes / 2**20,
        "grad_norm": float(optax.tree.norm(grads)),
    }


def adjoint_of(name: str, n_steps: int):
    return {
        "RecursiveCheckpointAdjoint()": diffrax.RecursiveCheckpointAdjoint(),
        "RecursiveCheckpointAdjoint(checkpoints=n)": diffrax.RecursiveCheckpointAdjoint(checkpoints=n_steps),
        "DirectAdjoint()": diffrax.DirectAdjoint(),
        "BacksolveAdjoint()": diffrax.BacksolveAdjoint(),
    }[name]


def one_adjoint(n: int, n_steps: int, name: str, repeats: int) -> dict:
    """One adjoint configuration in a fresh process, so that its peak resident memory is its own."""
    model, data, _, stats = setup(n)
    if name == "forward only":
        integ = nm.Integrator(1.0 / n_steps)
        grid = check_compatible(model, data, stats, integ)
        batch, keys, w = _batch(data, np.array([0])), jax.random.split(jax.random.PRNGKey(1), 1), jnp.ones(1)
        fwd = eqx.filter_jit(lambda m: _batch_loss(m, stats, grid, integ, keys, w, batch)[0])
        compile_s, steady = timed(fwd, model, repeats=repeats)
        r = {"adjoint": name, "solver": "Euler", "n_steps": n_steps, "compile_s": compile_s, "value_grad_s": steady,
             "temp_mb": float("nan"), "grad_norm": float("nan")}
    else:
        r = bench_adjoint(model, data, stats, n_steps, name, adjoint_of(name, n_steps), repeats)
    r["peak_rss_mib"] = peak_rss_mib()
    return r


def peak_rss_mib() -> float:
    """VmHWM of this process (Linux; reset by exec, unlike ru_maxrss), else ru_maxrss."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


ADJOINTS = ("forward only", "RecursiveCheckpointAdjoint()", "RecursiveCheckpointAdjoint(checkpoints=n)", "DirectAdjoint()", "BacksolveAdjoint()")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--one", nargs=2, metavar=("N_STEPS", "ADJOINT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    n = 2000 if args.quick else 10_000
    repeats = 2 if args.quick else 3
    if args.one:
        print("RESULT " + json.dumps(one_adjoint(n, int(args.one[0]), args.one[1], repeats)))
        return
    model, data, full, stats = setup(n)
    device = jax.devices()[0]
    print(f"mfgx.neural benchmark: N = {n} particles in R^2, device {device}, float64 = {jax.config.jax_enable_x64}")

    train = []
    for n_steps, loss in ((50, stats), (200, stats), (50, full)):
        r = bench_train_step(model, data, loss, n_steps, repeats)
        train.append(r)
        print(f"  train step, {n_steps} EM steps, {r['loss']}: {r['step_s'] * 1e3:.0f} ms steady (compile {r['compile_s']:.1f} s); "
              f"forward loss {r['forward_s'] * 1e3:.0f} ms (compile {r['forward_compile_s']:.1f} s)")

    adjoints = []
    for n_steps in (50, 200):
        for name in ADJOINTS:
            cmd = [sys.executable, __file__, "--one", str(n_steps), name] + (["--quick"] if args.quick else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            r = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
            adjoints.append(r)
            print(f"  {n_steps:4d} steps {name:42s} {r['solver']:5s}: {r['value_grad_s'] * 1e3:7.0f} ms steady, "
                  f"compile {r['compile_s']:5.1f} s, XLA temp {r['temp_mb']:.1f} MiB, peak RSS {r['peak_rss_mib']:.0f} MiB, "
                  f"|grad| {r['grad_norm']:.4g}")
    peak = peak_rss_mib()

    state_mb = n * 2 * 8 / 2**20
    lines = [
        "# mfgx.neural benchmark",
        "",
        f"`python benchmarks/neural.py{' --quick' if args.quick else ''}` on {device} ({jax.devices()[0].platform}, float64; the "
        f"development machine has 2 CPU cores shared with other jobs, so times are indicative). N = {n} particles in ℝ²; "
        f"one particle-cloud state is {state_mb:.2f} MiB. AgentMLP correction (width 32, depth 2) seeing mean and variance; "
        f"loss = moments MSE, or moments MSE + chunked MMD against 1000-point clouds, at {len(TS)} times; batch of one dataset. Steady = "
        f"median of {repeats} calls after the first; compile = first call minus steady.",
        "",
        "## Training step (simulate + loss + gradient + Adam), default adjoint",
        "",
        "| EM steps | loss | step (ms) | compile (s) | forward loss only (ms) | forward compile (s) |",
        "|---|---|---|---|---|---|",
        *[f"| {r['n_steps']} | {r['loss']} | {r['step_s'] * 1e3:.0f} | {r['compile_s']:.1f} | {r['forward_s'] * 1e3:.0f} | "
          f"{r['forward_compile_s']:.1f} |" for r in train],
        "",
        "## Gradient through the solver: adjoints",
        "",
        "Loss: moments MSE only, so that the solver dominates. XLA temp = temporary buffers of the compiled value-and-gradient program (`compiled.memory_analysis()`), "
        "and the peak resident memory of a fresh process running only that configuration (its first row, forward only, "
        "is the baseline: JAX, XLA and the compiled programs). BacksolveAdjoint needs a Stratonovich solver (Heun) and "
        "the virtual Brownian tree; its gradient is that of the continuous adjoint (differs from the discrete one by O(Δt)).",
        "",
        "| EM steps | adjoint | solver | value+grad (ms) | compile (s) | XLA temp (MiB) | peak RSS of its process (MiB) | gradient norm |",
        "|---|---|---|---|---|---|---|---|",
        *[f"| {r['n_steps']} | {r['adjoint']} | {r['solver']} | {r['value_grad_s'] * 1e3:.0f} | {r['compile_s']:.1f} | "
          f"{r['temp_mb']:.1f} | {r['peak_rss_mib']:.0f} | {r['grad_norm']:.5g} |" for r in adjoints],
        "",
        f"Peak resident memory of the benchmark process: {peak:.0f} MiB.",
    ]
    OUT.mkdir(exist_ok=True)
    stem = "neural" + ("_quick" if args.quick else "")
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (OUT / f"{stem}.json").write_text(json.dumps({"n_particles": n, "device": str(device), "train": train, "adjoints": adjoints,
                                                  "peak_rss_mib": peak}, indent=1))
    print(f"written {OUT / stem}.md")


if __name__ == "__main__":
    main()
