"""Run the calibration paper's own code (KachmanLab/MFGParameterCalibration) on its LQ MFG benchmark.

Runs inside .venv-paper (benchmarks/peers/install_paper.sh) with the paper's repository on
sys.path; called by benchmarks/paper_calibration.py, which runs mfgx on the same data. Nothing of
the paper's code is copied here: its trainer, solver, game and network are imported and driven.

For one (case, d, noise, seed): the paper's `LinearQuadraticTrainer.generate_data` makes the
train and test trajectories (seeds s and s + 10 000), the paper's `train_step` (the one of
`BaseTrainer.train_single_seed`: vmapped window loss, `jax.value_and_grad`, Adam) trains its 64-64
network for ``--epochs`` epochs, and we record: the data (npz), the compile time of the step (first
call), the steady time of each epoch, and the parameter path the network predicts on the test
trajectories at the end (γ̂[K, N]) with the true path.

    .venv-paper/bin/python benchmarks/peers/paper_calibration_driver.py --paper-code DIR \
        --case constant --d 3 --epochs 5 --out /tmp/paper_d3.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--paper-code", required=True)
    ap.add_argument("--case", default="constant", choices=["constant", "time_dependent", "mf_dependent"])
    ap.add_argument("--d", type=int, default=3)
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=20)
    ap.add_argument("--x64", action="store_true", help="run the paper's code in float64 (default: its float32)")
    ap.add_argument("--data-only", action="store_true", help="generate the data and stop")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.x64:
        os.environ["JAX_ENABLE_X64"] = "1"
    sys.path.insert(0, os.path.abspath(a.paper_code))
    os.chdir(os.path.abspath(a.paper_code))  # the paper's modules import `src.…` and `experiments.…`

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax.training import train_state

    import experiments.linear_quadratic.mean_field_game as lq

    lq.cfg.num_samples, lq.cfg.num_test_samples = a.n_train, a.n_test
    trainer = lq.LinearQuadraticTrainer(case=a.case)
    cfg = trainer.cfg
    t0 = time.perf_counter()
    mu_tr, mu0_tr, g_tr = trainer.generate_data(cfg.num_samples, a.seed, a.noise, a.d)
    mu_te, mu0_te, g_te = trainer.generate_data(cfg.num_test_samples, a.seed + 10_000, a.noise, a.d)
    data_s = time.perf_counter() - t0
    info = {"case": a.case, "d": a.d, "noise": a.noise, "seed": a.seed, "epochs": a.epochs, "T": cfg.T, "N": cfg.N,
            "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate, "delta_steps": cfg.delta_steps,
            "x64": bool(a.x64), "data_s": data_s, "dtype": str(mu_tr.dtype)}
    arrays = dict(mu_train=np.asarray(mu_tr), mu0_train=np.asarray(mu0_tr), g_train=np.asarray(g_tr),
                  mu_test=np.asarray(mu_te), mu0_test=np.asarray(mu0_te), g_test=np.asarray(g_te))
    if a.data_only:
        np.savez(a.out, info=json.dumps(info), **arrays)
        return

    # The paper's training step, exactly as BaseTrainer.train_single_seed builds it.
    mfg, solver_fn = trainer._build_mfg(a.d)
    model = trainer._make_model()
    key = jax.random.PRNGKey(a.seed)
    key, init_key = jax.random.split(key)
    params = model.init(init_key, 0.0, jnp.zeros(a.d))["params"]
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(cfg.learning_rate))
    loss_fn = trainer._build_loss_fn(model, solver_fn, a.d)

    @jax.jit
    def train_step(st, b_mu, b_mu0, b_s):
        def batch_loss(p):
            losses, _ = jax.vmap(loss_fn, in_axes=(None, 0, 0, 0))(p, b_mu, b_mu0, b_s)
            return jnp.mean(losses)

        loss, grads = jax.value_and_grad(batch_loss)(st.params)
        return st.apply_gradients(grads=grads), loss

    rng = jax.random.PRNGKey(a.seed)
    B, n_b = cfg.batch_size, cfg.num_samples // cfg.batch_size
    compile_s, epoch_s, losses = None, [], []
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        total = 0.0
        for i in range(n_b):
            rng, sk = jax.random.split(rng)
            b_s = jax.random.randint(sk, (B,), 0, cfg.N - cfg.delta_steps)
            tb = time.perf_counter()
            state, l = train_step(state, mu_tr[i * B:(i + 1) * B], mu0_tr[i * B:(i + 1) * B], b_s)
            l = float(l)
            if compile_s is None:
                compile_s = time.perf_counter() - tb
                t0 = time.perf_counter()  # the epoch's steady time excludes the compile
            total += l
        epoch_s.append(time.perf_counter() - t0)
        losses.append(total / n_b)
    g_pred = jax.vmap(lambda mo: trainer._pred_g_traj(model, state.params, trainer.t_grid, mo))(mu_te)
    info.update(compile_s=compile_s, epoch_s=epoch_s, train_loss=losses)
    np.savez(a.out, info=json.dumps(info), g_pred=np.asarray(g_pred), **arrays)
    print(json.dumps({k: info[k] for k in ("case", "d", "compile_s", "epoch_s")}))


if __name__ == "__main__":
    main()
