"""Reference numbers from the peer libraries mfglib 0.3.0 and OpenSpiel 2.0.2.

Runs each peer's own code (environments/games, solvers, exploitability / NashConv) and writes
``tests/fixtures/peers/{mfglib,openspiel}.json`` plus one compressed ``.npz`` per saved policy,
so that mfgx can check exact parity without the peers installed.

Run with the peers' own venv (see ``benchmarks/peers/install.sh``)::

    bash benchmarks/peers/install.sh
    .venv-peers/bin/python benchmarks/peers/reference_numbers.py              # both peers
    .venv-peers/bin/python benchmarks/peers/reference_numbers.py --peer mfglib --games beach_bar

A run restricted with ``--games`` updates only those entries of the existing JSON file.
Single-threaded on purpose (torch.set_num_threads(1)); timings are CPU seconds of this process
(``time.process_time``) and wall seconds.  A solver run whose projected cost exceeds ``--budget``
CPU seconds (default 60) is skipped and recorded as such with the measured time.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import os
import pathlib
import platform
import re
import sys
import time
import traceback
from importlib.metadata import version

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT_DEFAULT = ROOT / "tests" / "fixtures" / "peers"
MAX_POLICY_BYTES = 2 * 1024 * 1024  # compressed .npz size limit for a saved policy

MFGLIB_GAMES = [
    "beach_bar",
    "linear_quadratic",
    "susceptible_infected",
    "crowd_motion",
    "building_evacuation",
    "left_right",
    "rock_paper_scissors",
    "conservative_treasure_hunting",
    "random_linear",
    "equilibrium_price",
]
MFGLIB_SOLVERS = [("FictitiousPlay", {"alpha": 0.0}, 10), ("OnlineMirrorDescent", {"alpha": 1.0}, 10)]

# name -> (registered game, factory setting or None, extra parameters); see peers.md §5.3.
OPENSPIEL_GAMES = {
    "crowd_modelling_1d_python": ("python_mfg_crowd_modelling", None, {}),
    "crowd_modelling_1d_cpp": ("mfg_crowd_modelling", None, {}),
    "crowd_modelling_2d_10x10": ("mfg_crowd_modelling_2d", "crowd_modelling_2d_10x10", {}),
    "crowd_modelling_2d_10x10_only_distribution_reward": (
        "mfg_crowd_modelling_2d",
        "crowd_modelling_2d_10x10",
        {"only_distribution_reward": True},
    ),
    "crowd_modelling_2d_four_rooms": ("mfg_crowd_modelling_2d", "crowd_modelling_2d_four_rooms", {}),
    "crowd_modelling_2d_maze": ("mfg_crowd_modelling_2d", "crowd_modelling_2d_maze", {}),
    "predator_prey_5x5x3": ("python_mfg_predator_prey", "predator_prey_5x5x3", {}),
    "linear_quadratic": ("mean_field_lin_quad", "linear_quadratic", {}),
    "periodic_aversion": ("python_mfg_periodic_aversion", "periodic_aversion", {}),
    "garnet": ("mfg_garnet", None, {}),
    "dynamic_routing_line_python": ("python_mfg_dynamic_routing", "dynamic_routing_line", {}),
    "dynamic_routing_line_cpp": ("mfg_dynamic_routing", "dynamic_routing_line", {}),
    "crowd_avoidance": ("python_mfg_crowd_avoidance", "crowd_avoidance", {}),
}
# Games whose reward depends on the previous action: OpenSpiel's values are memoised on
# observation strings without that action (peers.md §5.3), so NashConv is traversal-order dependent.
OPENSPIEL_PREV_ACTION_REWARD = {
    "crowd_modelling_1d_python",
    "crowd_modelling_1d_cpp",
    "crowd_modelling_2d_10x10",
    "linear_quadratic",
    "periodic_aversion",
    "garnet",
}
OPENSPIEL_SOLVERS = [("FictitiousPlay", {}, 5), ("MirrorDescent", {"lr": 0.01}, 5)]


class Clock:
    def __init__(self):
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()

    def cpu(self):
        return time.process_time() - self.cpu0

    def wall(self):
        return time.perf_counter() - self.wall0


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if hasattr(x, "tolist"):  # torch tensors
        return jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    return x


def save_npz(out_dir: pathlib.Path, rel: str, **arrays) -> dict:
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    size = path.stat().st_size
    if size > MAX_POLICY_BYTES:
        path.unlink()
        return {"policy_file": None, "policy_not_saved": f"compressed size {size} B > {MAX_POLICY_BYTES} B"}
    return {"policy_file": rel, "policy_file_bytes": size}


def command_line() -> str:
    return " ".join([".venv-peers/bin/python", "benchmarks/peers/reference_numbers.py", *sys.argv[1:]])


# ----------------------------------------------------------------------------------------- mfglib


def run_mfglib(names, out_dir, budget):
    import torch

    torch.set_num_threads(1)
    from mfglib.alg import FictitiousPlay, OnlineMirrorDescent
    from mfglib.env import Environment
    from mfglib.scoring import exploitability_score
    from mfglib.utils import mean_field_from_policy

    solvers = {"FictitiousPlay": FictitiousPlay, "OnlineMirrorDescent": OnlineMirrorDescent}

    def to_double(obj, seen=None):
        """Cast every float32 tensor held (attributes, lists) by a reward/transition object."""
        if isinstance(obj, torch.Tensor):
            return obj.double() if obj.is_floating_point() else obj
        if isinstance(obj, list):
            return [to_double(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(to_double(v) for v in obj)
        if hasattr(obj, "__dict__") and not isinstance(obj, type):
            for k, v in vars(obj).items():
                setattr(obj, k, to_double(v))
        return obj

    def make_env(name):
        ctor = getattr(Environment, name)
        env = ctor()
        params = {}
        for p in inspect.signature(ctor).parameters.values():
            params[p.name] = p.default
        return env, params

    def expl64(name, pi):
        """Same policy re-scored by mfglib's own code with torch's default dtype set to float64."""
        old = torch.get_default_dtype()
        env, _ = make_env(name)  # built in float32 (same RNG stream as the float32 run) ...
        try:
            torch.set_default_dtype(torch.float64)
            env.mu0 = env.mu0.double()
            to_double(env.reward_fn)
            to_double(env.transition_fn)
            return float(exploitability_score(env, pi.double()))
        except Exception as e:  # noqa: BLE001
            return f"error: {type(e).__name__}: {e}"
        finally:
            torch.set_default_dtype(old)

    results = {}
    for name in names:
        if not hasattr(Environment, name):
            results[name] = {"status": "absent", "reason": f"Environment.{name} does not exist in mfglib 0.3.0"}
            continue
        print(f"[mfglib] {name}", flush=True)
        env, params = make_env(name)
        entry = {
            "constructor": f"mfglib.env.Environment.{name}",
            "params": {k: (v if v != "uniform" else "uniform") for k, v in params.items()},
            "S": list(env.S),
            "A": list(env.A),
            "T": env.T,
            "n_times": env.T + 1,
            "horizon_convention": "mfglib: times t=0..T, reward collected at every t including T",
            "r_max": float(env.r_max),
            "mu0": env.mu0.tolist(),
            "dtype": str(torch.get_default_dtype()).replace("torch.", ""),
            "command": command_line(),
        }
        pi_u = torch.ones((env.T + 1,) + env.S + env.A) / env.n_actions
        c = Clock()
        e_u = float(exploitability_score(env, pi_u))
        entry["uniform"] = {
            "exploitability": e_u,
            "exploitability_float64": expl64(name, pi_u),
            "seconds_exploitability_eval": {"cpu": c.cpu(), "wall": c.wall()},
        }
        entry["solvers"] = []
        for sname, sparams, n_iter in MFGLIB_SOLVERS:
            rec = {"name": sname, "params": sparams, "iterations": n_iter, "pi_0": "uniform"}
            try:
                env, _ = make_env(name)  # fresh env (crowd_motion / random_linear re-seed torch)
                solver = solvers[sname](**sparams)
                state = solver.init_state(env, pi_u.clone())
                hist, cpu_steps, wall_steps = [e_u], [], []
                total = Clock()
                for i in range(n_iter):
                    c = Clock()
                    state = solver.step_next_state(state, None, None)
                    cpu_steps.append(c.cpu())
                    wall_steps.append(c.wall())
                    hist.append(float(exploitability_score(env, state.pi)))
                    if total.cpu() > budget and i + 1 < n_iter:
                        raise TimeoutError(f"budget {budget}s CPU exceeded after {i + 1} iterations ({total.cpu():.1f}s)")
                pi = state.pi.detach()
                rec["exploitability"] = hist[-1]
                rec["exploitability_history"] = hist
                rec["exploitability_float64"] = expl64(name, pi)
                # Cross-check: the library's own solve() loop gives the same numbers.
                env2, _ = make_env(name)
                c = Clock()
                _, expls, _ = solvers[sname](**sparams).solve(env2, max_iter=n_iter, atol=None, rtol=None)
                rec["solve_exploitability_history"] = [float(x) for x in expls]
                rec["seconds_per_iteration_solve_incl_exploitability"] = {
                    "cpu": c.cpu() / n_iter,
                    "wall": c.wall() / n_iter,
                }
                rec["seconds_per_iteration"] = {
                    "cpu": float(np.mean(cpu_steps)),
                    "wall": float(np.mean(wall_steps)),
                    "cpu_each": cpu_steps,
                }
                L = mean_field_from_policy(pi, env=env)
                rel = f"mfglib/{name}__{sname}_{n_iter}.npz"
                rec.update(
                    save_npz(
                        out_dir,
                        rel,
                        pi=pi.numpy(),
                        L=L.detach().numpy(),
                        mu0=env.mu0.numpy(),
                    )
                )
                rec["policy_shape"] = list(pi.shape)
                rec["policy_layout"] = "pi[t, *S, *A] (t=0..T), float32; L[t, *S, *A] = mean field induced by pi"
                rec["status"] = "ok"
            except Exception as e:  # noqa: BLE001
                rec["status"] = "failed"
                rec["error"] = f"{type(e).__name__}: {e}"
                rec["traceback_tail"] = traceback.format_exc().strip().splitlines()[-4:]
            entry["solvers"].append(rec)
        results[name] = jsonable(entry)
    return results


# --------------------------------------------------------------------------------------- OpenSpiel

_PAREN = re.compile(r"^\((-?\d+(?:,\s*-?\d+)*)\)$")
_T_EQ = re.compile(r"(?:,\s*)?\bt=(\d+)")
_POP = re.compile(r"^\(pop=(\d+), t=(\d+), pos=\[\s*(-?\d+)\s+(-?\d+)\s*\]\)$")


def parse_obs(obs: str):
    """Decision-state observation string -> (t, position key, integer coordinates or None)."""
    m = _POP.match(obs)
    if m:
        p, t, x, y = map(int, m.groups())
        return t, f"(pop={p}, pos=[{x} {y}])", (p, x, y)
    m = _PAREN.match(obs)
    if m:
        vals = [int(v) for v in m.group(1).split(",")]
        return vals[-1], str(tuple(vals[:-1])), tuple(vals[:-1])
    m = _T_EQ.search(obs)
    if m:
        return int(m.group(1)), _T_EQ.sub("", obs, count=1), None
    raise ValueError(f"cannot parse observation string {obs!r}")


def dense_policy(tab, num_actions):
    """TabularPolicy -> pi[t, k, a] over (decision index t, position k) with position keys."""
    rows = []
    for idx, state in enumerate(tab.states):
        obs = state.observation_string(0)
        t, key, coords = parse_obs(obs)
        rows.append((t, key, coords, idx, state.legal_actions_mask(state.current_player())))
    numeric = all(r[2] is not None for r in rows)
    keys = sorted({(r[2] if numeric else r[1]) for r in rows})
    kidx = {k: i for i, k in enumerate(keys)}
    H = max(r[0] for r in rows) + 1
    pi = np.zeros((H, len(keys), num_actions), dtype=np.float64)
    legal = np.zeros((H, len(keys), num_actions), dtype=bool)
    visited = np.zeros((H, len(keys)), dtype=bool)
    for t, key, coords, idx, mask in rows:
        k = kidx[coords if numeric else key]
        if visited[t, k]:
            raise ValueError(f"duplicate decision state for t={t} {key}")
        visited[t, k] = True
        pi[t, k] = tab.action_probability_array[idx]
        legal[t, k] = np.asarray(mask, dtype=bool)[:num_actions]
    out = {"pi": pi, "legal": legal, "visited": visited}
    if numeric:
        out["coords"] = np.array(keys, dtype=np.int64)
        out["positions"] = np.array([str(k) for k in keys])
    else:
        out["positions"] = np.array(keys)
    return out


def run_openspiel(names, out_dir, budget):
    import pyspiel
    from open_spiel.python import policy as policy_std
    from open_spiel.python.mfg import games as _games  # noqa: F401  (registers python games)
    from open_spiel.python.mfg.algorithms import fictitious_play, mirror_descent, nash_conv
    from open_spiel.python.mfg.games import factory

    def make_game(name):
        game_name, setting, extra = OPENSPIEL_GAMES[name]
        params = dict(factory.GAME_SETTINGS[setting]) if setting else {}
        params.update(extra)
        if game_name == "python_mfg_dynamic_routing":
            return factory.create_game_with_setting(game_name, setting), params
        return pyspiel.load_game(game_name, params), params

    def score(game, pol):
        c = Clock()
        nc = nash_conv.NashConv(game, pol)
        total = nc.nash_conv()
        roots = game.new_initial_states()
        br = [nc._br_value.eval_state(s) for s in roots]
        pv = [nc._pi_value.eval_state(s) for s in roots]
        return {
            "nash_conv": float(total),
            "br_values": [float(v) for v in br],
            "policy_values": [float(v) for v in pv],
            "seconds_nash_conv": {"cpu": c.cpu(), "wall": c.wall()},
        }

    results = {}
    for name in names:
        if name not in OPENSPIEL_GAMES:
            results[name] = {"status": "absent", "reason": "unknown entry"}
            continue
        print(f"[openspiel] {name}", flush=True)
        game_name, setting, extra = OPENSPIEL_GAMES[name]
        try:
            game, given = make_game(name)
        except Exception as e:  # noqa: BLE001
            results[name] = {"status": "absent", "reason": f"{type(e).__name__}: {e}"}
            continue
        gparams = game.get_parameters()
        entry = {
            "game": game_name,
            "factory_setting": setting,
            "params_given": given,
            "params": gparams,
            "num_players_populations": game.num_players(),
            "A": game.num_distinct_actions(),
            "horizon": gparams.get("horizon", gparams.get("max_num_time_step")),
            "max_game_length": game.max_game_length(),
            "horizon_convention": (
                "OpenSpiel: decision nodes t=0..H-1 pay the reward, terminal node at t=H pays 0; "
                "tabular form T = H-1 (peers.md §5.3)"
            ),
            "dtype": "float64 (Python floats)",
            "reward_depends_on_previous_action": name in OPENSPIEL_PREV_ACTION_REWARD,
            "command": command_line(),
        }
        try:
            uni = policy_std.UniformRandomPolicy(game)
            entry["uniform"] = score(game, uni)
            c = Clock()
            tab_u = uni.to_tabular()
            d = dense_policy(tab_u, game.num_distinct_actions())
            entry["S_positions"] = int(d["visited"].shape[1])
            entry["decision_times"] = int(d["visited"].shape[0])
            entry["n_decision_states"] = int(d["visited"].sum())
            entry["seconds_enumerate_states"] = {"cpu": c.cpu(), "wall": c.wall()}
            if entry["uniform"]["seconds_nash_conv"]["cpu"] > budget:
                raise TimeoutError(
                    f"uniform NashConv alone took {entry['uniform']['seconds_nash_conv']['cpu']:.1f}s CPU > {budget}s"
                )
        except Exception as e:  # noqa: BLE001
            entry["status"] = "skipped" if isinstance(e, TimeoutError) else "failed"
            entry["error"] = f"{type(e).__name__}: {e}"
            results[name] = jsonable(entry)
            continue
        entry["solvers"] = []
        for sname, sparams, n_iter in OPENSPIEL_SOLVERS:
            rec = {"name": sname, "params": sparams, "iterations": n_iter}
            try:
                if sname == "FictitiousPlay":
                    solver = fictitious_play.FictitiousPlay(game, **sparams)
                else:
                    solver = mirror_descent.MirrorDescent(game, **sparams)
                cpu_steps, wall_steps = [], []
                total = Clock()
                for i in range(n_iter):
                    c = Clock()
                    solver.iteration()
                    cpu_steps.append(c.cpu())
                    wall_steps.append(c.wall())
                    spent = total.cpu()
                    projected = spent + cpu_steps[-1] * (n_iter - i - 1) + entry["uniform"]["seconds_nash_conv"]["cpu"]
                    if projected > budget and i + 1 < n_iter:
                        raise TimeoutError(
                            f"{i + 1} iteration(s) took {spent:.1f}s CPU (last {cpu_steps[-1]:.1f}s); "
                            f"projected {projected:.0f}s for {n_iter} iterations + NashConv > budget {budget}s"
                        )
                pol = solver.get_policy()
                rec["seconds_per_iteration"] = {
                    "cpu": float(np.mean(cpu_steps)),
                    "wall": float(np.mean(wall_steps)),
                    "cpu_each": cpu_steps,
                }
                rec.update(score(game, pol))
                tab = pol if isinstance(pol, policy_std.TabularPolicy) else pol.to_tabular()
                d = dense_policy(tab, game.num_distinct_actions())
                rel = f"openspiel/{name}__{sname}_{n_iter}.npz"
                rec.update(save_npz(out_dir, rel, **d))
                rec["policy_shape"] = list(d["pi"].shape)
                rec["policy_layout"] = (
                    "pi[t, k, a]: t = decision time 0..H-1, k = index into `positions` (parsed from the decision "
                    "state's observation string, time removed; `coords` holds the integer tuple when numeric), "
                    "a = action id; `visited[t, k]` marks decision states present in OpenSpiel's tabular policy "
                    "(reachable from the root), other rows are 0; `legal` = legal-action mask"
                )
                rec["status"] = "ok"
            except Exception as e:  # noqa: BLE001
                rec["status"] = "skipped" if isinstance(e, TimeoutError) else "failed"
                rec["error"] = f"{type(e).__name__}: {e}"
                if not isinstance(e, TimeoutError):
                    rec["traceback_tail"] = traceback.format_exc().strip().splitlines()[-4:]
                if cpu_steps:
                    rec["seconds_per_iteration"] = {
                        "cpu": float(np.mean(cpu_steps)),
                        "wall": float(np.mean(wall_steps)),
                        "cpu_each": cpu_steps,
                    }
            entry["solvers"].append(rec)
        entry["status"] = "ok"
        results[name] = jsonable(entry)
    return results


# ------------------------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", choices=["mfglib", "openspiel", "all"], default="all")
    ap.add_argument("--games", nargs="*", help="subset of entries (default: all of the peer's)")
    ap.add_argument("--out", type=pathlib.Path, default=OUT_DEFAULT)
    ap.add_argument("--budget", type=float, default=60.0, help="CPU seconds allowed per solver run")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    peers = ["mfglib", "openspiel"] if args.peer == "all" else [args.peer]
    for peer in peers:
        default = MFGLIB_GAMES if peer == "mfglib" else list(OPENSPIEL_GAMES)
        names = args.games if args.games else default
        names = [n for n in names if n in default] if args.peer == "all" else names
        if not names:
            continue
        path = args.out / f"{peer}.json"
        doc = json.loads(path.read_text()) if (args.games and path.exists()) else {}
        run = run_mfglib if peer == "mfglib" else run_openspiel
        games = doc.get("games", {})
        games.update(run(names, args.out, args.budget))
        order = default + [k for k in games if k not in default]
        doc = {
            "peer": peer,
            "versions": {
                "mfglib": version("mfglib"),
                "open_spiel": version("open_spiel"),
                "torch": version("torch"),
                "numpy": version("numpy"),
                "python": platform.python_version(),
            },
            "command": command_line() if not args.games else doc.get("command", command_line()),
            "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": f"{platform.machine()} {platform.system()}, single-threaded (torch.set_num_threads(1))",
            "budget_cpu_seconds_per_solver_run": args.budget,
            "games": {k: games[k] for k in order if k in games},
        }
        path.write_text(json.dumps(jsonable(doc), indent=1) + "\n")
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)


if __name__ == "__main__":
    main()
