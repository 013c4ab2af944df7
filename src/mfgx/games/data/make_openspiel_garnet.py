"""Regenerate ``openspiel_garnet_seed0.json``: the random structure of OpenSpiel's ``mfg_garnet``.

Run with the peer environment (open_spiel 2.0.2), from the repository root:

    .venv-peers/bin/python src/mfgx/games/data/make_openspiel_garnet.py

OpenSpiel draws the garnet's rewards and transitions in C++ (``std::mt19937(seed)`` and
``absl::Uniform``) inside the state's constructor; they are not exposed, so they are read back
through the game API, for the default game (``size=10, num_action=3, num_chance_action=3,
sparsity_factor=1, seed=0``):

* ``transition[x][a][e]`` (the next state) and ``probability[x][a][e]``: from the chance node
  reached by action ``a`` at state ``x`` (its ``chance_outcomes()`` and the children's states);
* ``reward[x][a]`` = ``R(x, a)``, the reward of *being at* ``x`` when the previous action was ``a``
  (``r = R(x, a_{t-1}) - eta log(mu_t(x) + 1e-25)``): read at the decision node reached through
  ``a``, after writing a one-hot distribution at ``x`` (so ``log(1 + 1e-25) == 0`` and the number is
  ``R`` bit for bit).  ``R(x, a)`` is ``null`` where no state reaches ``x`` through action ``a``
  (never used by the game); ``R(x, 0)`` (the neutral first action) is completed from the t = 0
  decision nodes, where OpenSpiel's stored distribution is uniform (exact up to one rounding).
"""

import json
import math
import pathlib
import re

from importlib.metadata import version

import numpy as np
import pyspiel

HERE = pathlib.Path(__file__).resolve().parent
PARAMS = dict(size=10, horizon=10, seed=0, num_action=3, num_chance_action=3, sparsity_factor=1.0, eta=1.0)
EPS = float(np.float32(1e-25))  # garnet.cc: `inline constexpr float kEpsilon = 1e-25`


def main():
    game = pyspiel.load_game("mfg_garnet", PARAMS)
    n, A, K = PARAMS["size"], PARAMS["num_action"], PARAMS["num_chance_action"]
    root = game.new_initial_state()
    transition = np.zeros((n, A, K), int)
    probability = np.zeros((n, A, K))
    reward = np.full((n, A), np.nan)
    for x in range(n):
        decision = root.child(x)
        for a in range(A):
            chance = decision.child(a)
            for e, p in chance.chance_outcomes():
                node = chance.child(e)
                x2 = int(re.match(r"\((\d+), 1\)_a", str(node)).group(1))
                transition[x, a, e], probability[x, a, e] = x2, p
                node.update_distribution([1.0 if i == x2 else 0.0 for i in range(n)])
                r = node.rewards()[0]
                assert np.isnan(reward[x2, a]) or reward[x2, a] == r
                reward[x2, a] = r
    for x in range(n):  # t = 0: r = R(x, 0) - eta log(1/n + eps)
        r0 = root.child(x).rewards()[0] + PARAMS["eta"] * math.log(1.0 / n + EPS)
        if np.isnan(reward[x, 0]):
            reward[x, 0] = r0
        assert abs(reward[x, 0] - r0) < 1e-12
    data = {
        "source": "open_spiel " + version("open_spiel") + ", game mfg_garnet, read through the game API",
        "generator": "src/mfgx/games/data/make_openspiel_garnet.py",
        "params": PARAMS,
        "epsilon": EPS,
        "transition": transition.tolist(),
        "probability": probability.tolist(),
        "reward": [[None if np.isnan(v) else float(v) for v in row] for row in reward],
    }
    (HERE / "openspiel_garnet_seed0.json").write_text(json.dumps(data, indent=1) + "\n")
    print("missing R(x, a):", int(np.isnan(reward).sum()), "of", reward.size)


if __name__ == "__main__":
    main()
