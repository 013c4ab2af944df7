"""Regenerate ``mfglib_seed0.json``: the torch random draws behind mfglib 0.3.0's seeded games.

Run with the peer environment (mfglib 0.3.0, torch 2.13.0 CPU), from the repository root:

    .venv-peers/bin/python src/mfgx/games/data/make_mfglib_seed0.py

It records, after ``torch.manual_seed(0)`` (what the constructors call):

* ``crowd_motion.bits``: the first draws of ``torch.randint(0, 2, size=(1,))``, the only random
  calls of ``mfglib.env.examples.crowd_motion.RewardFn`` (two per bar move: right/left, then
  up/down; 0 -> -1, 1 -> +1); plus the default game's bar path, read from the environment;
* ``random_linear``: the unit draws ``torch.rand`` of ``RewardFn(5, m)`` (r1, r2: [5, 5]) and
  ``TransitionFn(5, m)`` (p1, p2: [5, 5, 5]), in that order (the constructor builds the reward
  first); mfglib uses ``2*m*u - m`` in float32.

and checks both against mfglib's own environments (several bar-path settings; the four
random_linear arrays bit for bit, for two values of m).
"""

import json
import pathlib

import numpy as np
import torch

import mfglib.alg  # noqa: F401  (import order: mfglib.scoring alone is a circular import)
from mfglib.env import Environment

N_BITS = 512
HERE = pathlib.Path(__file__).resolve().parent


def bar_path(bits, T, l, w, freq):
    """mfglib's crowd_motion bar path b_0..b_T, from the recorded randint draws."""
    loc = (l // 2, w // 2)
    locs, k = [loc], 0
    for i in range(T + 1):
        if (i + 1) % freq == 0:
            rl, ud = (-1, 1)[bits[k]], (-1, 1)[bits[k + 1]]
            k += 2
            new = (loc[0] + rl, loc[1] + ud)
            if 0 <= new[0] < l and 0 <= new[1] < w:
                loc = new
        locs.append(loc)
    return locs[: T + 1]


def env_bar_path(env, l, w):
    """The bar positions of an mfglib crowd_motion environment (argmax of its c1 tables)."""
    out = []
    for c1 in env.reward_fn.c1s:
        i = int(torch.argmax(c1[..., 0]))
        out.append((i // w, i % w))
    return out


def main():
    torch.manual_seed(0)
    bits = [int(torch.randint(0, 2, size=(1,))) for _ in range(N_BITS)]
    for T, l, w, freq in [(3, 20, 20, 2), (10, 20, 20, 2), (40, 20, 20, 1), (30, 6, 4, 3), (200, 20, 20, 2)]:
        env = Environment.crowd_motion(T=T, torus_l=l, torus_w=w, loc_change_freq=freq)
        assert bar_path(bits, T, l, w, freq) == env_bar_path(env, l, w), (T, l, w, freq)
    default = bar_path(bits, 3, 20, 20, 2)

    torch.manual_seed(0)
    n = 5
    draws = {"r1": torch.rand(n, n), "r2": torch.rand(n, n), "p1": torch.rand(n, n, n), "p2": torch.rand(n, n, n)}
    for m in (10.0, 3.0):
        env = Environment.random_linear(n=n, m=m)
        mine = {k: 2 * m * u - m for k, u in draws.items()}
        held = {"r1": env.reward_fn.r1, "r2": env.reward_fn.r2, "p1": env.transition_fn.p1, "p2": env.transition_fn.p2}
        for k in mine:
            assert torch.equal(mine[k], held[k]), (k, m)
        # the same in NumPy float32, as mfgx recomputes it
        for k, u in draws.items():
            a = np.float32(2 * m) * u.numpy() - np.float32(m)
            assert np.array_equal(a, held[k].numpy()), (k, m)

    data = {
        "source": "mfglib 0.3.0 (MIT licence, see README.md), torch 2.13.0+cpu, torch.manual_seed(0)",
        "produced_by": ".venv-peers/bin/python src/mfgx/games/data/make_mfglib_seed0.py",
        "crowd_motion": {
            "bits": bits,
            "meaning": "torch.randint(0, 2, size=(1,)) after torch.manual_seed(0); 0 -> -1, 1 -> +1",
            "default_bar_path": [list(b) for b in default],
            "default_params": {"T": 3, "torus_l": 20, "torus_w": 20, "loc_change_freq": 2},
        },
        "random_linear": {
            "n": n,
            "meaning": "unit draws torch.rand in float32, drawn in the order r1, r2, p1, p2; arrays = 2*m*u - m (float32)",
            **{k: u.tolist() for k, u in draws.items()},
        },
    }
    (HERE / "mfglib_seed0.json").write_text(json.dumps(data) + "\n")
    print("bar path (default):", default)
    print("wrote", HERE / "mfglib_seed0.json")


if __name__ == "__main__":
    main()
