"""Spot checks of the conventions and defects stated in shared/peers.md, against the installed peers.

    .venv-peers/bin/python benchmarks/peers/check_conventions.py

Prints one line per check (OK / DIFFERS and the observed value).  Cheap: a few seconds of CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch

torch.set_num_threads(1)


def report(name, ok, observed):
    print(f"{'OK     ' if ok else 'DIFFERS'} {name}: {observed}")


def mfglib_checks():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "import mfglib.scoring"], capture_output=True, text=True)
    report("mfglib: `import mfglib.scoring` before mfglib.alg fails (circular import)", r.returncode != 0,
           (r.stderr.strip().splitlines() or ["imports fine"])[-1][:120])
    import mfglib.alg  # noqa: F401  (must precede mfglib.scoring)
    from mfglib.env import Environment

    # beach_bar: clipped line dynamics (docstring says torus), circular reward distance.
    env = Environment.beach_bar()
    p = env.prob(0, None)  # p[s', s, a]
    report("mfglib beach_bar P(0|0,a=0) (clipped: 0.75+0.25... = 1.0 mass kept at 0)", abs(p[0, 0, 0].item() - 1.0) < 1e-7,
           f"P(s'=0|s=0,a=0)={p[0, 0, 0].item():.4f}, P(s'=3|s=0,a=0)={p[3, 0, 0].item():.4f}")
    # crowd_motion bar path for seed 0 and the torch global RNG side effect.
    torch.manual_seed(123)
    a = torch.rand(1).item()
    torch.manual_seed(123)
    env = Environment.crowd_motion()
    b = torch.rand(1).item()
    rf = env.reward_fn
    path = []
    for c1 in rf.c1s:
        d = (1.0 - c1[..., 0]) * 40  # |i-bi|+|j-bj|
        idx = torch.nonzero(d == d.min())[0].tolist()
        path.append(tuple(idx))
    report("mfglib crowd_motion bar path seed 0 == (10,10),(10,10),(9,11),(9,11)",
           path == [(10, 10), (10, 10), (9, 11), (9, 11)], path)
    report("mfglib crowd_motion re-seeds torch's global RNG", a != b, f"rand after ctor {b:.4f} vs {a:.4f}")
    # linear_quadratic noise weights (sigma enters twice).
    env = Environment.linear_quadratic()
    w = env.transition_fn.epsilon_pr
    report("mfglib linear_quadratic w_0, w_1 = 0.97826, 0.010868", abs(w[3] - 0.97826) < 1e-5 and abs(w[4] - 0.010868) < 1e-6,
           [f"{v:.6g}" for v in w.tolist()])
    # x=5,u=0 lands on 4.5 -> 4 under uniform mu (float32 round half to even).
    L = torch.ones(11, 5) / 55
    P = env.prob(0, L)
    report("mfglib linear_quadratic x=5,u=0,noise 0 -> 4 (index 9)", abs(P[9, 10, 2].item() - w[3].item()) < 1e-6,
           f"P(x'=4|x=5,u=0)={P[9, 10, 2].item():.5f}")
    # left_right / rock_paper_scissors uniform exploitability.
    from mfglib.scoring import exploitability_score
    for name in ["left_right", "rock_paper_scissors"]:
        e = getattr(Environment, name)()
        pi = torch.ones((e.T + 1,) + e.S + e.A) / e.n_actions
        print(f"info    mfglib {name} uniform exploitability {exploitability_score(e, pi):.6f}")


def openspiel_checks():
    import pyspiel
    from open_spiel.python import policy as policy_std
    from open_spiel.python.mfg import games  # noqa: F401
    from open_spiel.python.mfg.algorithms import fictitious_play, nash_conv
    from open_spiel.python.mfg.games import factory

    # mean_field_lin_quad: terminal_cost never paid.
    v = []
    for tc in (1.0, 5.0):
        g = pyspiel.load_game("mean_field_lin_quad", {"terminal_cost": tc})
        v.append(nash_conv.NashConv(g, policy_std.UniformRandomPolicy(g)).nash_conv())
    report("openspiel mean_field_lin_quad NashConv(uniform) same for terminal_cost 1 and 5", v[0] == v[1], v)

    # crowd_modelling_2d: initial_distribution swaps x and y.
    g = pyspiel.load_game("mfg_crowd_modelling_2d", {"size": 4, "horizon": 2, "initial_distribution": "[1|0]",
                                                     "initial_distribution_value": "[1.0]"})
    s = g.new_initial_state()
    s = s.child(s.chance_outcomes()[0][0])
    report("openspiel crowd_modelling_2d initial_distribution '[1|0]' (x=1,y=0) starts at observation (0, 1, t)",
           str(s).startswith("(0, 1,"), str(s))
    g = pyspiel.load_game("mfg_crowd_modelling_2d", {"size": 4, "horizon": 2, "forbidden_states": "[2|1]"})
    s = g.new_initial_state()
    outs = dict(s.chance_outcomes())
    starts = [str(s.child(a)) for a in outs]
    report("openspiel crowd_modelling_2d forbidden '[2|1]' removes observation (2, 1, 0) (no swap there)",
           "(2, 1, 0)" not in starts and "(1, 2, 0)" in starts, f"{len(starts)} starts")
    report("openspiel crowd_modelling_2d default (uniform) initial distribution gives a forbidden cell mass "
           "(chance outcome x+y*N=6 -> bogus state)", len(outs) == 16, dict(zip(outs, starts)).get(6))

    # four rooms: t=0 reward log(169) whatever the distribution; t>=1 -log(mu + 1e-25).
    g = factory.create_game_with_setting("mfg_crowd_modelling_2d", "crowd_modelling_2d_four_rooms")
    s = g.new_initial_state()
    s = s.child(s.chance_outcomes()[0][0])
    report("openspiel four_rooms start (1,1), t=0 reward = log 169",
           str(s) == "(1, 1, 0)" and abs(s.rewards()[0] - math.log(169)) < 1e-9, (str(s), s.rewards()[0], math.log(169)))

    # predator-prey starts.
    g = factory.create_game_with_setting("python_mfg_predator_prey", "predator_prey_5x5x3")
    starts = []
    for r in g.new_initial_states():
        starts.append([str(r.child(a)) for a, _ in r.chance_outcomes()])
    report("openspiel predator_prey starts (0,0), (4,0), (0,4)", True, starts)

    # Python crowd game: tabular policy keyed by history -> KeyError for another history.
    g = pyspiel.load_game("python_mfg_crowd_modelling")
    fp = fictitious_play.FictitiousPlay(g)
    fp.iteration()
    tab = fp.get_policy()
    keys = set(tab.state_lookup)
    found = None
    root = g.new_initial_state()
    for x0, _ in root.chance_outcomes():
        s = root.child(x0)
        for a in s.legal_actions():
            s1 = s.child(a)
            for e, _ in s1.chance_outcomes():
                s2 = s1.child(e)
                s2.update_distribution([1.0 / 10] * 10)
                key = s2.information_state_string(0)
                if key not in keys:
                    found = (s2.observation_string(0), key)
                    break
            if found:
                break
        if found:
            break
    report("openspiel python_mfg_crowd_modelling tabular policy misses histories (KeyError)", found is not None,
           f"obs {found[0]!r} info-state {found[1]!r} not in state_lookup" if found else "all found")


if __name__ == "__main__":
    mfglib_checks()
    openspiel_checks()
