"""Helpers shared by the neural-MFG experiment scripts: run metadata, result files, pooled metrics."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import mfgx.neural as nm

RESULTS = Path(__file__).parent / "results"


def meta(command: str, seconds: float, settings: dict) -> dict:
    return {
        "command": command,
        "jax": jax.__version__,
        "platform": platform.platform(),
        "device": str(jax.devices()[0]),
        "cpu_count": os.cpu_count(),
        "seconds": round(seconds, 1),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": sys.version.split()[0],
        "settings": settings,
    }


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def write(stem: str, payload: dict, lines: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(payload, indent=1, default=_jsonable))
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written {RESULTS / stem}.md and .json")


def row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def g(v, digits=3) -> str:
    return f"{v:.{digits}g}"


def simulate_many(model, x0, ts, integrator, seed: int, n: int, t0=None, covariates=None):
    """n independent simulations (keys fold_in(PRNGKey(seed), i)) from x0 [N, d] or [n, N, d]: [n, T, N, d]."""
    x0 = jnp.asarray(x0)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(jnp.arange(n))
    x_axis = 0 if x0.ndim == 3 else None
    c_axis = None if covariates is None else (0 if jnp.ndim(covariates) == 3 else None)

    @eqx.filter_jit
    def run(model, x0, keys, covariates):
        return jax.vmap(lambda x, k, c: nm.simulate(model, x, ts, k, integrator=integrator, t0=t0, covariates=c),
                        in_axes=(x_axis, 0, c_axis))(x0, keys, covariates)

    return np.asarray(run(model, x0, keys, covariates))


def history_curves(fit):
    steps = np.array([r["step"] for r in fit.history])
    train = np.array([r["loss"] for r in fit.history])
    vs, vl = fit.val_losses()
    return steps, train, vs, vl
