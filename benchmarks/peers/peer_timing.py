"""Time one peer solver run (run with .venv-peers/bin/python; called by side_by_side.py).

Prints one JSON object: seconds per iteration (CPU and wall, the solver step only) and the
exploitability (mfglib) / NashConv (OpenSpiel) after every iteration.

    .venv-peers/bin/python benchmarks/peers/peer_timing.py mfglib beach_bar FictitiousPlay 10
    .venv-peers/bin/python benchmarks/peers/peer_timing.py openspiel crowd_modelling_1d_cpp MirrorDescent 5
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(__file__))


def timed_loop(step, score, n_iter):
    cpu, wall, hist = [], [], [score()]
    for _ in range(n_iter):
        c0, w0 = time.process_time(), time.perf_counter()
        step()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        hist.append(score())
    return {"cpu_per_iteration": sum(cpu) / n_iter, "wall_per_iteration": sum(wall) / n_iter, "history": hist}


def mfglib_run(game, solver_name, n_iter):
    import torch

    torch.set_num_threads(1)
    from mfglib.alg import FictitiousPlay, OnlineMirrorDescent  # noqa: F401  (import order matters)
    from mfglib.env import Environment
    from mfglib.scoring import exploitability_score

    env = getattr(Environment, game)()
    solver = {"FictitiousPlay": lambda: FictitiousPlay(alpha=0.0), "OnlineMirrorDescent": lambda: OnlineMirrorDescent(alpha=1.0)}[solver_name]()
    pi0 = torch.ones((env.T + 1,) + env.S + env.A) / env.n_actions
    box = {"state": solver.init_state(env, pi0)}

    def step():
        box["state"] = solver.step_next_state(box["state"], None, None)

    return timed_loop(step, lambda: float(exploitability_score(env, box["state"].pi)), n_iter)


def openspiel_run(game, solver_name, n_iter):
    import pyspiel
    from open_spiel.python.mfg import games as _  # noqa: F401  (registers the Python games)
    from open_spiel.python.mfg.algorithms import fictitious_play, mirror_descent, nash_conv
    from open_spiel.python.mfg.games import factory
    from reference_numbers import OPENSPIEL_GAMES

    game_name, setting, extra = OPENSPIEL_GAMES[game]
    params = dict(factory.GAME_SETTINGS[setting]) if setting else {}
    params.update(extra)
    g = pyspiel.load_game(game_name, params)
    solver = fictitious_play.FictitiousPlay(g) if solver_name == "FictitiousPlay" else mirror_descent.MirrorDescent(g, lr=0.01)
    return timed_loop(solver.iteration, lambda: float(nash_conv.NashConv(g, solver.get_policy()).nash_conv()), n_iter)


if __name__ == "__main__":
    peer, game, solver_name, n_iter = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    run = mfglib_run if peer == "mfglib" else openspiel_run
    print(json.dumps(run(game, solver_name, n_iter)))
