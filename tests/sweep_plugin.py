"""Sweep targets for tests/test_sweep.py, imported by the Ray workers (tests/ is on their PYTHONPATH).

- `line`: a small checkpointed training loop (a line y = a x + b fitted by Adam to noisy points),
  one checkpoint per epoch through mfgx's own `_training.resume` / `_checkpoint.save`: it compiles
  in well under a second, so the Ray tests measure the sweep machinery, not XLA.
- `gated`: `run_synthetic` (the real calibration trial) for the slow end-to-end test.

With ``test.tag == "killed"`` a trial stops at the end of epoch 2 (epoch 1 checkpointed, epoch 2
not yet) and waits for the file ``test.gate``, so that the test can kill its worker there.
"""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mfgx import _checkpoint, _training


def _gate(test: dict, folder: Path, epoch: int) -> None:
    gate = Path(test["gate"]) if test.get("gate") else None
    if test.get("tag") == "killed" and epoch == 2 and gate is not None and not gate.exists():
        (folder / "waiting").write_text("1")
        while not gate.exists():
            time.sleep(0.05)


_OPT: dict = {}


@jax.jit
def _loss(p, x, y):
    return jnp.mean((p[0] * x + p[1] - y) ** 2)


def line(config, trial_dir, context):
    test = config.get("test", {})
    seed, epochs = config["study"]["seed"], config["fit"]["epochs"]
    lr, noise = config["fit"]["learning_rate"], config["data"]["noise"]
    folder = Path(trial_dir)
    rng = np.random.default_rng(seed)
    x = jnp.linspace(0.0, 1.0, 50)
    y = 2.0 * x + 1.0 + noise * jnp.asarray(rng.normal(size=50))
    opt = _OPT.setdefault(lr, optax.adam(lr))

    @jax.jit
    def epoch(p, s):
        def body(carry, _):
            p, s = carry
            g = jax.grad(_loss)(p, x, y)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, s), _ = jax.lax.scan(body, (p, s), None, length=20)
        return p, s

    params = jnp.zeros(2)
    state_opt = opt.init(params)
    state = _training.new_state("epoch")
    settings = {"seed": seed, "learning_rate": lr, "noise": noise}
    loaded = _training.resume(folder / "checkpoint", (params, state_opt), settings, kind="line", error=ValueError)
    resumed = 0
    if loaded is not None:
        state, (params, state_opt) = loaded
        resumed = state["epoch"]
    for e in _training.remaining(state, "epoch", epochs):
        params, state_opt = epoch(params, state_opt)
        record = {"epoch": e + 1, "loss": float(_loss(params, x, y))}
        _gate(test, folder, e + 1)
        state["history"].append(record)
        state["epoch"] = e + 1
        _checkpoint.save(folder / "checkpoint", {"settings": settings, "state": state}, (params, state_opt), kind="line")
    return {"loss": state["history"][-1]["loss"], "a": float(params[0]), "b": float(params[1]),
            "resumed_from_epoch": resumed, "epochs_run": state["epoch"]}


def gated(config, trial_dir, context):
    from mfgx.sweep import run_synthetic

    test = config.pop("test")
    return run_synthetic(config, trial_dir, callback=lambda r: _gate(test, Path(trial_dir), r["epoch"]))
