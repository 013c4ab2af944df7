"""mfgx vs BenchMFG 0.1.3 side by side on BenchMFG's stationary games (issue 17); `make bench-peers`.

For each game (lasry-lions chain S=7, four-rooms obstacles S=121, MF-Garnet S=100, kinetic
congestion 20×20) and algorithm (OMD, fictitious play, pure fixed point), both libraries run the same
number of iterations from the same initial policy (BenchMFG's PSO_uniform draw, seeded):
BenchMFG in .venv-peers (one process per case, `benchmfg_driver.py`; float32, its default), mfgx
here (float64) with the games of `mfgx.games` (kernels and rewards checked equal to BenchMFG's).
Reported: compile time (first call minus steady call), steady time per iteration, the ratio
mfgx/BenchMFG, and the final policies' exploitability in both measures (BenchMFG's truncated one and
mfgx's exact one). Timings on a shared machine are noisy; ratios come from one run.

    .venv/bin/python benchmarks/peers/side_by_side_benchmfg.py [--quick]
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import mfgx

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from benchmfg_driver import initial_policy  # noqa: E402

GAMES = ["lasry_lions_chain", "four_rooms_obstacles", "mf_garnet", "kinetic_congestion"]
ALGOS = {
    # BenchMFG's OMD(η = 0.005, τ = 0.2) is mirror descent with learning rate η/τ (same iterates)
    "omd": lambda: mfgx.MirrorDescent(0.005 / 0.2),
    "fictitious_play": lambda: mfgx.FictitiousPlay(),
    "fixed_point": lambda: mfgx.FixedPoint(),
}


def run_mfgx(game, algo, n, pi0):
    solver = ALGOS[algo]()
    guess = pi0[None] if algo != "fixed_point" else mfgx.propagate(game, pi0[None])
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            t = time.perf_counter()
            eq = mfgx.solve(game, solver, tol=0.0, max_steps=n, guess=guess)
            jax.block_until_ready(eq)
            times.append(time.perf_counter() - t)
    return times[0] - times[1], times[1] / n, eq


def mfgx_history(game, algo, n_steps, pi0):
    """mfgx's exploitability after each of ``n_steps`` iterations (index 0: the start), in both measures:
    exact (`mfgx.exploitability`) and BenchMFG's (`benchmfg_exploitability` from the current mean field,
    as BenchMFG's solvers evaluate). The same iterates as `solve` (its init and step)."""
    solver = ALGOS[algo]()

    def measures(state):
        pi = solver.policy(game, state)
        mu = solver.mean_field(game, state)[0]
        return jnp.stack([mfgx.exploitability(game, pi), mfgx.benchmfg_exploitability(game, pi, mu / mu.sum())])

    @eqx.filter_jit
    def run(game, pi0):
        state = mfgx.propagate(game, pi0) if algo == "fixed_point" else solver.init(game, pi0)

        def body(state, _):
            state, _ = solver.step(game, state)
            return state, measures(state)

        _, hist = jax.lax.scan(body, state, None, length=n_steps)
        return jnp.concatenate([measures(state)[None], hist])

    return np.asarray(run(game, jnp.asarray(pi0[None])))


def first_hit(history, target):
    """First index i with history[i] ≤ target (None: never)."""
    hits = np.flatnonzero(np.asarray(history) <= target)
    return int(hits[0]) if hits.size else None


def time_to_same(ours_hist, peer_hist, ours_iter, peer_iter):
    """Per measure: target = the worse (larger) of the two final values within the common horizon; time
    (s) each library takes to first reach it = first iteration × its steady time per iteration."""
    out = {}
    for key, (ho, hp) in {k: v for k, v in zip(("exact", "bench"), zip(ours_hist, peer_hist)) if v[1] is not None}.items():
        n = len(hp) - 1
        target = max(ho[n], hp[-1])
        ko, kp = first_hit(ho, target), first_hit(hp, target)
        out[key] = (target, None if ko is None else ko * ours_iter, kp * peer_iter)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer iterations")
    p.add_argument("--games", nargs="+", default=GAMES, choices=GAMES, help="a subset of the games")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "benchmfg.md"))
    args = p.parse_args(argv)
    iters = {"lasry_lions_chain": 30, "four_rooms_obstacles": 30, "mf_garnet": 5, "kinetic_congestion": 20}
    if args.quick:
        iters = {k: max(2, v // 5) for k, v in iters.items()}
    peer_py = ROOT / ".venv-peers" / "bin" / "python"
    rows = []
    for name in args.games:
        game = mfgx.games.REGISTRY[name]()
        pi0 = initial_policy(game.n_states, game.n_actions)
        for algo in ALGOS:
            n = iters[name]
            with tempfile.TemporaryDirectory() as d:
                out = pathlib.Path(d) / "r.npz"
                proc = subprocess.run([str(peer_py), str(HERE / "benchmfg_driver.py"), name, algo, str(n), str(out)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    rows.append((name, algo, n, None, None, None, "BenchMFG failed: " + proc.stderr.strip()[-300:]))
                    print(rows[-1], flush=True)
                    continue
                peer = dict(np.load(out))
            # BenchMFG's eval: initialisation (1 exploitability) + n iterations; cold = 1 iteration incl. compile
            peer_iter = float(peer["t_warm"]) / n
            peer_compile = float(peer["t_cold"]) - 2 * peer_iter
            try:
                compile_s, per_iter, eq = run_mfgx(game, algo, n, pi0)
            except Exception as e:  # noqa: BLE001 -- a crash is a result here
                rows.append((name, algo, n, None, None, None, f"mfgx crashed: {type(e).__name__}: {str(e)[:200]}"))
                print(rows[-1], flush=True)
                continue
            peer_pi = peer["policy"].astype(float)[None]
            peer_pi = peer_pi / peer_pi.sum(-1, keepdims=True)
            start_peer = peer["mean_field"].astype(float)
            ours = dict(exact=float(eq.exploitability),
                        bench=float(mfgx.benchmfg_exploitability(game, eq.policy, eq.flow[0])))
            theirs = dict(exact=float(mfgx.exploitability(game, peer_pi)),
                          bench=float(mfgx.benchmfg_exploitability(game, peer_pi, start_peer / start_peer.sum())),
                          own=float(peer["expl"][-1]))
            hist = mfgx_history(game, algo, n, pi0)
            # BenchMFG's own history (its measure) per iteration; for the exact measure only its final
            # policy is known, so it is charged all n iterations (an upper bound on its time)
            peer_own = np.asarray(peer["expl"], float)[-(n + 1):]
            peer_exact = np.full(n + 1, np.inf)
            peer_exact[-1] = theirs["exact"]
            same = time_to_same((hist[:, 0], hist[:, 1]), (peer_exact, peer_own), per_iter, peer_iter)
            rows.append((name, algo, n, (compile_s, per_iter), (peer_compile, peer_iter), (ours, theirs, same),
                         "" if bool(eq.inner_converged) else "mfgx inner loop not settled (reported)"))
            print(rows[-1], flush=True)
    write(rows, args.out)


def _same(entry):
    target, ours, peer = entry
    ours_s = "not reached" if ours is None else f"{1e3 * ours:.3g}"
    ratio = "" if ours is None or peer == 0 else f" ({ours / peer:.2g})" if peer > 0 else ""
    return f"{target:.3g}: {ours_s} / {1e3 * peer:.3g}{ratio}"


def write(rows, path):
    lines = [
        "# mfgx vs BenchMFG 0.1.3 (stationary games)",
        "",
        "`make bench-peers` (`benchmarks/peers/side_by_side_benchmfg.py`). Same machine, one run, back to back; shared 2-core",
        "machine, so absolute times are noisy (ratios from the same run). BenchMFG float32 (its default), mfgx",
        "float64. Same initial policy, same number of iterations n. Compile: first call − steady call. Per",
        "iteration: steady time / n (BenchMFG's includes its per-iteration exploitability and Python loop;",
        "mfgx's includes its exact exploitability, the residual of policy solvers). Exploitability of each",
        "library's final policy: `exact` = mfgx's (stationary μ^π, exact values), `bench` = BenchMFG's",
        "convention (`mfgx.benchmfg_exploitability`: 50 mean-field steps from the final mean field, 99 sweeps),",
        "`own` = the last value BenchMFG logged. ratio < 1: mfgx faster.",
        "",
        "Time to the same exploitability (`target: mfgx ms / BenchMFG ms (ratio)`), per measure: target = the worse of",
        "the two libraries' values after n iterations; each library's time = its first iteration at or below the",
        "target × its steady time per iteration. `exact`: mfgx's measure, from mfgx's per-iteration history",
        "(`mfgx_history`: the same iterates as `solve`) and BenchMFG's final policy only (charged all n",
        "iterations: an upper bound on BenchMFG's time). `bench`: BenchMFG's measure, its own logged history vs",
        "`benchmfg_exploitability` of mfgx's iterates from their current mean field.",
        "",
        "| game | algorithm | n | mfgx compile s | BenchMFG compile s | mfgx ms/iter | BenchMFG ms/iter | ratio/iter |"
        " mfgx expl exact / bench | BenchMFG expl exact / bench / own | to same expl, exact | to same expl, bench |"
        " note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, algo, n, ours, peer, ex, note in rows:
        if ours is None or peer is None:
            lines.append(f"| {name} | {algo} | {n} | | | | | | | | {note} |")
            continue
        o, t, same = ex
        lines.append(
            f"| {name} | {algo} | {n} | {ours[0]:.2f} | {peer[0]:.2f} | {1e3 * ours[1]:.2f} | {1e3 * peer[1]:.2f} | "
            f"{ours[1] / peer[1]:.2g} | {o['exact']:.3g} / {o['bench']:.3g} | "
            f"{t['exact']:.3g} / {t['bench']:.3g} / {t['own']:.3g} | "
            + " | ".join(_same(same[k]) for k in ("exact", "bench")) + f" | {note} |")
    pathlib.Path(path).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
