"""Helpers shared by the neural-MFG experiment scripts: run metadata, result files, pooled metrics."""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _common import RESULTS, write  # noqa: F401 (write is re-exported to the scripts)
from _common import meta as _meta

import mfgx.neural as nm


def meta(command: str, seconds: float, settings: dict) -> dict:
    return _meta(command, round(seconds, 1), settings)


def arg_parser() -> argparse.ArgumentParser:
    """The options every neural experiment takes: ``--quick`` and ``--seed``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    return ap


class Identity(nm.AbstractStatistic):
    """The whole population vector of ``n_agents`` agents, in order (not exchangeable): PathLoss
    with it is the papers' index-wise MSE."""

    n_agents: int = eqx.field(static=True)

    def __call__(self, x):
        return x.reshape(-1)

    def size(self, d):
        return self.n_agents * d


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


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, stem: str, dpi: int) -> None:
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}.png", dpi=dpi)
    print(f"written {RESULTS / stem}.png")
