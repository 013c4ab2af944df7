"""Run BenchMFG 0.1.3 (in .venv-peers) on one game and algorithm; write times, its exploitability history
and its final policy to an .npz. Called by benchmarks/peers/side_by_side_benchmfg.py, one process per case.

    .venv-peers/bin/python benchmarks/peers/benchmfg_driver.py ENV ALGO N OUT.npz
"""

import sys
import time

import numpy as np

ENV_OVERRIDES = {
    "lasry_lions_chain": ["environment=lasry_lions_chain"],
    "four_rooms_obstacles": ["environment=four_rooms_obstacles"],
    "mf_garnet": ["environment=mf_garnet"],
    "kinetic_congestion": ["environment=kinetic_congestion", "environment.grid.dimension=[20,20]",
                           "environment.num_states=400"],
}
ALGO_OVERRIDES = {
    "omd": lambda n: ["algorithm=omd", f"algorithm.omd.num_iterations={n}"],
    "fictitious_play": lambda n: ["algorithm=damped_fixed_point", f"algorithm.dampedfp.num_iterations={n}",
                                  "algorithm.dampedfp.lambda_schedule=fictitious_play"],
    "fixed_point": lambda n: ["algorithm=damped_fixed_point", f"algorithm.dampedfp.num_iterations={n}",
                              "algorithm.dampedfp.lambda_schedule=pure"],
}


def initial_policy(S, A, seed=0, temp=0.2):
    """BenchMFG's PSO_uniform initialisation (logits U(−1, 1), softmax at temperature 0.2), seeded."""
    logits = np.random.default_rng(seed).uniform(-1.0, 1.0, (S, A)) / temp
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def main():
    from benchmfg.api import load_config, make_environment, make_solver

    env_name, algo, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    env, _ = make_environment(load_config(["device=cpu", *ENV_OVERRIDES[env_name]]))
    pi0 = initial_policy(env.N_states, env.N_actions)
    mu_start = np.array(env.stationary_mean_field)
    runs = {}
    # cold: 1 iteration (compilation + 1 step); warm: n iterations on the same environment (its
    # jitted functions are keyed on it, so they are reused), from the same start.
    for kind, k in (("cold", 1), ("warm", n)):
        cfg = load_config(["device=cpu", *ENV_OVERRIDES[env_name], *ALGO_OVERRIDES[algo](k)])
        env.stationary_mean_field = mu_start.copy()  # eval() overwrites it with its result
        solver = make_solver(cfg, environment=env, initial_policy=pi0)
        t = time.perf_counter()
        result = solver.eval()
        runs[kind] = (time.perf_counter() - t, *result)
    t_warm, policy, mf, expl = runs["warm"]
    np.savez(out, t_cold=runs["cold"][0], t_warm=t_warm, n=n, policy=np.asarray(policy),
             mean_field=np.asarray(mf), expl=np.asarray(expl), pi0=pi0, mu_start=mu_start, gamma=env.gamma)


if __name__ == "__main__":
    main()
