"""Re-score the saved peer policies with the peers' own code and compare with the JSON numbers.

    .venv-peers/bin/python benchmarks/peers/verify_policies.py [--max-seconds 5]

mfglib: ``exploitability_score(env, pi)`` on the saved ``pi``.  OpenSpiel: the saved dense
``pi[t, k, a]`` is written back into a fresh ``TabularPolicy`` (state -> (t, k) by the same
observation-string parsing as reference_numbers.py) and NashConv is recomputed.  This checks the
state-indexing convention of the saved arrays.  Entries whose recorded NashConv took longer than
``--max-seconds`` CPU are not re-scored.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from reference_numbers import OUT_DEFAULT, parse_obs  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=pathlib.Path, default=OUT_DEFAULT)
    ap.add_argument("--max-seconds", type=float, default=5.0)
    args = ap.parse_args()
    bad = 0

    import torch

    torch.set_num_threads(1)
    import mfglib.alg  # noqa: F401  (mfglib.scoring cannot be imported first: circular import)
    from mfglib.env import Environment
    from mfglib.scoring import exploitability_score

    doc = json.loads((args.dir / "mfglib.json").read_text())
    for name, g in doc["games"].items():
        for s in g.get("solvers", []):
            if not s.get("policy_file"):
                continue
            pi = torch.tensor(np.load(args.dir / s["policy_file"])["pi"])
            e = exploitability_score(getattr(Environment, name)(), pi)
            ok = e == s["exploitability"]
            bad += not ok
            print(f"{'OK ' if ok else 'BAD'} mfglib {name} {s['name']}: {e!r} vs {s['exploitability']!r}")

    import pyspiel
    from open_spiel.python import policy as policy_std
    from open_spiel.python.mfg import games  # noqa: F401
    from open_spiel.python.mfg.algorithms import nash_conv
    from open_spiel.python.mfg.games import factory

    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from reference_numbers import OPENSPIEL_GAMES

    doc = json.loads((args.dir / "openspiel.json").read_text())
    for name, g in doc["games"].items():
        for s in g.get("solvers", []):
            if not s.get("policy_file") or s["seconds_nash_conv"]["cpu"] > args.max_seconds:
                continue
            game_name, setting, _ = OPENSPIEL_GAMES[name]
            if game_name == "python_mfg_dynamic_routing":
                game = factory.create_game_with_setting(game_name, setting)
            else:
                game = pyspiel.load_game(game_name, g["params_given"])
            d = np.load(args.dir / s["policy_file"])
            keys = [tuple(c) for c in d["coords"]] if "coords" in d else list(d["positions"])
            kidx = {k: i for i, k in enumerate(keys)}
            tab = policy_std.TabularPolicy(game, states=policy_std.get_tabular_policy_states(game))
            for i, st in enumerate(tab.states):
                t, key, coords = parse_obs(st.observation_string(0))
                tab.action_probability_array[i] = d["pi"][t, kidx[coords if "coords" in d else key]]
            v = nash_conv.NashConv(game, tab).nash_conv()
            ok = abs(v - s["nash_conv"]) <= 1e-9 * max(1.0, abs(v))
            bad += not ok
            print(f"{'OK ' if ok else 'BAD'} openspiel {name} {s['name']}: {v!r} vs {s['nash_conv']!r}")
    print(f"{bad} mismatches")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
