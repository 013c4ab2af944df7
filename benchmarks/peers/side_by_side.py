"""mfgx vs mfglib 0.3.0 and OpenSpiel 2.0.2, measured side by side in one run (`make bench-peers`).

For each game and solver, both libraries run the same solver for the same number of iterations
from the uniform policy. The peer runs in its own venv (.venv-peers, made by install.sh) through
peer_timing.py; mfgx runs here. Printed and written to benchmarks/results/peers.md:
exploitability reached by each, seconds per iteration (mfgx: steady state, compile reported
separately), the ratio, and the time mfgx needs to reach the peer's final exploitability.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time
import warnings

import equinox as eqx
import jax
import numpy as np

import mfgx

ROOT = pathlib.Path(__file__).resolve().parents[2]
PEER_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
OUT = ROOT / "benchmarks" / "results" / "peers.md"
REACH_BUDGET = 5000  # mfgx iterations allowed to reach the peer's final exploitability
TIMED_ITERATIONS = 200  # mfgx steady-state time per iteration is measured over this many steps

# (peer, peer game, peer solver, iterations, mfgx game, mfgx solver, comparable exploitability?)
# OpenSpiel's number is NashConv = Σ_populations gap = (number of populations) × mfgx's exploitability.
CASES = [
    ("mfglib", "beach_bar", "FictitiousPlay", 10, "beach_bar", mfgx.FictitiousPlay(), True),
    ("mfglib", "beach_bar", "OnlineMirrorDescent", 10, "beach_bar", mfgx.MirrorDescent(1.0), True),
    ("mfglib", "linear_quadratic", "FictitiousPlay", 10, "linear_quadratic", mfgx.FictitiousPlay(), True),
    ("mfglib", "linear_quadratic", "OnlineMirrorDescent", 10, "linear_quadratic", mfgx.MirrorDescent(1.0), True),
    ("mfglib", "crowd_motion", "FictitiousPlay", 10, "crowd_motion", mfgx.FictitiousPlay(), True),
    ("mfglib", "crowd_motion", "OnlineMirrorDescent", 10, "crowd_motion", mfgx.MirrorDescent(1.0), True),
    ("openspiel", "crowd_modelling_1d_cpp", "FictitiousPlay", 5, "crowd_modelling", mfgx.FictitiousPlay(), False),
    ("openspiel", "crowd_modelling_1d_cpp", "MirrorDescent", 5, "crowd_modelling", mfgx.MirrorDescent(0.01), False),
    ("openspiel", "crowd_modelling_1d_python", "MirrorDescent", 5, "crowd_modelling", mfgx.MirrorDescent(0.01), False),
    ("openspiel", "crowd_modelling_2d_four_rooms", "FictitiousPlay", 5, "crowd_modelling_2d_four_rooms", mfgx.FictitiousPlay(), True),
    ("openspiel", "crowd_modelling_2d_four_rooms", "MirrorDescent", 5, "crowd_modelling_2d_four_rooms", mfgx.MirrorDescent(0.01), True),
    ("openspiel", "linear_quadratic", "FictitiousPlay", 5, "mean_field_lin_quad", mfgx.FictitiousPlay(), False),
    ("openspiel", "linear_quadratic", "MirrorDescent", 5, "mean_field_lin_quad", mfgx.MirrorDescent(0.01), False),
    ("openspiel", "predator_prey_5x5x3", "MirrorDescent", 5, "predator_prey", mfgx.MirrorDescent(0.01), True),
]
POPULATIONS = {"predator_prey": 3}


def peer_run(peer, game, solver, n_iter):
    out = subprocess.run(
        [str(PEER_PYTHON), str(ROOT / "benchmarks/peers/peer_timing.py"), peer, game, solver, str(n_iter)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def mfgx_run(game, solver, n_iter):
    """Steady-state seconds per iteration, compile seconds, exploitability history, and the
    exploitability trace over REACH_BUDGET iterations (for the time-to-reach column)."""

    def make(n):
        @eqx.filter_jit
        def run(state):
            def body(s, _):
                s, _ = solver.step(game, s)
                return s, mfgx.exploitability(game, solver.policy(game, s))

            return jax.lax.scan(body, state, None, length=n)

        return run

    state = solver.init(game)
    run = make(n_iter)
    t0 = time.perf_counter()
    jax.block_until_ready(run(state))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, hist = jax.block_until_ready(run(state))
    steady = time.perf_counter() - t0
    _, long_hist = jax.block_until_ready(make(REACH_BUDGET)(state))
    # Per-iteration cost of the solver step alone (as the peers' step), over enough iterations that
    # the fixed cost of one call (dispatch, ~0.1 ms) does not count as iteration time.
    n_timed = max(n_iter, TIMED_ITERATIONS)
    step_only = eqx.filter_jit(lambda s: jax.lax.scan(lambda c, _: (solver.step(game, c)[0], None), s, None, length=n_timed)[0])
    jax.block_until_ready(step_only(state))
    t0 = time.perf_counter()
    jax.block_until_ready(step_only(state))
    per_iter = (time.perf_counter() - t0) / n_timed
    expl0 = float(mfgx.exploitability(game, mfgx.uniform_policy(game)))
    return per_iter, first - steady, [expl0, *map(float, hist)], np.asarray(long_hist)


def main():
    warnings.simplefilter("ignore", mfgx.ConvergenceWarning)
    if not PEER_PYTHON.exists():
        sys.exit("the peers' venv is missing: run `bash benchmarks/peers/install.sh` (or `make bench-peers`)")
    rows = []
    for peer, pgame, psolver, n_iter, mname, msolver, comparable in CASES:
        if mname not in mfgx.games.REGISTRY:
            print(f"skip {peer}/{pgame}: no mfgx game {mname!r} yet")
            continue
        game = mfgx.games.REGISTRY[mname]()
        p = peer_run(peer, pgame, psolver, n_iter)
        per_iter, compile_s, hist, long_hist = mfgx_run(game, msolver, n_iter)
        scale = POPULATIONS.get(mname, 1)  # report OpenSpiel's NashConv convention
        hist, long_hist = [h * scale for h in hist], long_hist * scale
        target = p["history"][-1]
        hit = np.flatnonzero(long_hist <= target)
        reach = f"{(hit[0] + 1) * per_iter * 1e3:.2f} ms ({hit[0] + 1} it)" if hit.size else f"not in {REACH_BUDGET} it"
        ratio = p["cpu_per_iteration"] / per_iter
        rows.append((f"{peer} {pgame}", psolver, n_iter, f"{target:.4g}", f"{hist[-1]:.4g}" + ("" if comparable else " (†)"),
                     f"{p['cpu_per_iteration'] * 1e3:.2f}", f"{per_iter * 1e3:.3f}", f"{ratio:.0f}×", f"{compile_s:.2f}", reach))
        print(" | ".join(map(str, rows[-1])), flush=True)
    lines = [
        "# mfgx vs peers, side by side",
        "",
        f"One run of `make bench-peers` on {jax.devices()[0].platform} (2 cores shared); peers single-threaded "
        "CPU time of the solver step; mfgx steady-state wall time of the jitted step (compile separate).",
        "",
        "| game | solver | iterations | peer exploitability | mfgx exploitability | peer ms/it | mfgx ms/it | speed-up | mfgx compile (s) | mfgx time to peer's exploitability |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *["| " + " | ".join(map(str, r)) + " |" for r in rows],
        "",
        "mfgx starts from the policy uniform over all actions (an illegal move stays put); OpenSpiel from the "
        "uniform policy over legal actions, so early iterates differ on the four-rooms maze.",
        "",
        "(†) OpenSpiel's 1-D crowd and linear-quadratic games charge the previous action and memoises values on strings without it "
        "(shared/peers.md §5.3): its NashConv is an artefact of the traversal order, mfgx computes the clean model's "
        "exploitability, so the two numbers are not comparable; the per-iteration times are. "
        "(`mfgx.games.crowd_modelling(openspiel_cache=True)` reproduces OpenSpiel's numbers exactly.)",
    ]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
