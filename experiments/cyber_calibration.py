"""Calibrating the 8 parameters of the Carmona–Delarue cybersecurity game (calibration paper §6.3).

States DI, DS, UI, US; θ = (q_rec^D, q_rec^U, q_inf^D, q_inf^U, β_DD, β_DU, β_UU, β_UD), base values
b = (0.5, 0.4, 0.4, 0.3, 0.4, 0.3, 0.3, 0.4); T = 10, N = 100 (Δt = 10/99, explicit Euler: the total
out-rate stays below 2, so Δt·R < 0.25). Ground truths: constant b, arc b·4t(T − t)/T² (0 at both
ends: the fitted paths use floor 0, unlike the paper's 0.1), mean-field b·μ(DI).

The best response is smoothed: `mfgx.Softmax(τ = 0.005)` both to generate the data and to fit them
(the paper's exact {0, 1} switch has zero derivative through the control, §8 item 2). τ acts per
time step; at τ = 0.005 the exploitability of the smoothed equilibrium in the exact game is ≈ 0.02
(values ≈ 2.5), and the undamped fixed point converges in 4–5 steps (the paper damps by 0.5, which
changes the speed, not the fixed point).
Observation noise: Dirichlet, level 1e-3 (the paper's), on every time including y_0 (μ₀ = y_0).

    .venv/bin/python experiments/cyber_calibration.py --quick    # 1 seed, small data (~5 min, 2 cores)
    .venv/bin/python experiments/cyber_calibration.py            # seeds 42–46, the paper's sizes

Writes experiments/results/cyber_calibration{_quick}.{md,json}.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import mfgx

sys.path.insert(0, str(Path(__file__).parent))
from _rate_experiment import Experiment, Truth, main  # noqa: E402

T = 10.0
BASE = np.asarray(mfgx.games.CYBER_BASE)
NAMES = ["q_rec^D", "q_rec^U", "q_inf^D", "q_inf^U", "β_DD", "β_DU", "β_UU", "β_UD"]


def game():
    return mfgx.games.cybersecurity(T=T, n_points=100)


def to_params(path):
    return tuple(path[:, i] for i in range(8))


EXPERIMENT = Experiment(
    name="cyber_calibration",
    title="Cybersecurity game: calibrating its 8 parameters (paper §6.3)",
    game=game,
    to_params=to_params,
    truths={
        "constant": Truth("constant", BASE, np.zeros(8), T),
        "arc": Truth("arc", np.zeros(8), BASE, T),
        "mean_field": Truth("mean_field", np.zeros(8), BASE, T, states=np.zeros(8, int)),  # b·μ(DI)
    },
    names=NAMES,
    solver=mfgx.Softmax(0.005, 0.0),
    T=T,
    n_states=4,
    init=np.full(8, 0.35),
    floor=0.0,
    quick=dict(seeds=[42], noise=[1e-3], epochs=40, epochs_constant=3, lr=2e-2, sizes=[20, 5, 10]),
    full=dict(seeds=[42, 43, 44, 45, 46], noise=[1e-3], epochs=1000, epochs_constant=50, lr=5e-3, sizes=[200, 20, 40]),
    notes=[
        "Game `mfgx.games.cybersecurity(T=10, n_points=100)` (explicit Euler), solver `Softmax(0.005)` (undamped) "
        "for data and fits (exploitability of the data in the exact game: `data_max_exploitability` in the JSON); μ₀ ~ Dirichlet(1, 1, 1, 1); Dirichlet noise 1e-3 on all times. Paths: floor 0 (the arc truth is 0 "
        "at t = 0 and T).",
    ],
)

if __name__ == "__main__":
    main(EXPERIMENT)
