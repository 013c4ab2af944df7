r"""A synthetic calibration trial: the calibration paper's protocol (Thöni et al., §5–6) as a config.

Data: K equilibria of a zoo game at a known parameter path γ(t, μ) (evaluated on the iterate, as
the paper's generator), μ₀ ~ Dirichlet(1, …, 1), Dirichlet observation noise y_n ~ Dir(μ̄_n/σ),
split by trajectory into train / validation / test. Fit: a `Constant` path (Adam, then
Levenberg–Marquardt `calibrate.refine` on the training set) or the paper's network γ_φ(t, μ)
(Adam, selected on the validation loss). Errors on the test set, paths evaluated on the observed
flows: γ-MAE = mean |γ̂ − γ|, γ-MSE = (1/N)Σ_n‖γ̂_n − γ_n‖² (the paper's), μ-error (1/N)Σ_n‖μ̂_n − y_n‖².

Games and ground truths (a(t) = 4t(T − t)/T²):

| game | θ | constant | arc | mean_field | solver |
|---|---|---|---|---|---|
| ``lq`` (`lq_rates`, implicit, T = 2) | γ | 1.55 | 0.1 + 2.9 a(t) | 0.1 + 2.9 μ(0) | `FixedPoint(0)` |
| ``cybersecurity`` (T = 10) | 8 rates | b | b a(t) | b μ(DI) | `Softmax(0.005)` |
| ``sir`` (T = 40) | (β, γ) | (0.4, 0.125) | (0.2, 0.05) + (0.4, 0.15) a(t) | (0.2, 0.05) + (0.4, 0.15) (μ(S), μ(I)) | `Softmax(0.005)` |

with b = `games.CYBER_BASE`. The configuration (TOML tables; every key optional but ``game.name``):

    [study]  kind = "synthetic", seed = 42
    [game]   name = "lq" | "cybersecurity" | "sir", d = 3 (lq only), n_points = 100, T
    [truth]  kind = "constant" | "arc" | "mean_field"
    [data]   n_train = 20, n_val = 5, n_test = 10, noise = 0.0
    [model]  path = "auto" | "constant" | "network" (auto: constant for a constant truth), width = 32, depth = 2
    [fit]    `calibrate.fit` keywords (epochs, batch_size, learning_rate, ...) and refine_steps = 20
"""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from .. import _checkpoint, finite, games
from .. import calibrate as cal
from ._spec import SweepError


Truth = cal.Reference  # the paper's constant / arc / mean-field ground truths


def _cyber_params(path):
    return tuple(path[:, i] for i in range(8))


def _sir_params(path):
    return {"beta": path[:, 0], "gamma": path[:, 1]}


_LQ_ADJOINT = finite.ImplicitAdjoint(lx.GMRES(rtol=1e-10, atol=1e-12, restart=10, max_steps=100_000))
_SOFTMAX = finite.Softmax(0.005, 0.0)


def _game_spec(name: str, game_cfg: dict) -> dict[str, Any]:
    """Game, truths, solver, to_params, initial value and floor of the fitted paths, per game."""
    n_points = game_cfg.get("n_points", 100)
    if name == "lq":
        T, d = float(game_cfg.get("T", 2.0)), game_cfg.get("d", 3)
        return dict(
            game=games.lq_rates(d=d, n_points=n_points, T=T, scheme="implicit"), T=T, d=d, to_params=cal.scalar_params,
            solver=finite.FixedPoint(0.0), adjoint=_LQ_ADJOINT, floor=0.05, init_network=1.55, init_constant=3.0,
            truths={"constant": Truth("constant", [1.55], [0.0], T), "arc": Truth("arc", [0.1], [2.9], T),
                    "mean_field": Truth("mean_field", [0.1], [2.9], T, states=[0])},
        )
    if name == "cybersecurity":
        T, b = float(game_cfg.get("T", 10.0)), np.asarray(games.CYBER_BASE)
        return dict(
            game=games.cybersecurity(T=T, n_points=n_points), T=T, d=4, to_params=_cyber_params, solver=_SOFTMAX,
            adjoint=None, floor=0.0, init_network=np.full(8, 0.35), init_constant=np.full(8, 0.35),
            truths={"constant": Truth("constant", b, np.zeros(8), T), "arc": Truth("arc", np.zeros(8), b, T),
                    "mean_field": Truth("mean_field", np.zeros(8), b, T, states=np.zeros(8, int))},
        )
    if name == "sir":
        T = float(game_cfg.get("T", 40.0))
        return dict(
            game=games.sir(T=T, n_points=n_points), T=T, d=3, to_params=_sir_params, solver=_SOFTMAX, adjoint=None,
            floor=0.01, init_network=np.array([0.3, 0.1]), init_constant=np.array([0.3, 0.1]),
            truths={"constant": Truth("constant", [0.4, 0.125], [0.0, 0.0], T),
                    "arc": Truth("arc", [0.2, 0.05], [0.4, 0.15], T),
                    "mean_field": Truth("mean_field", [0.2, 0.05], [0.4, 0.15], T, states=[0, 1])},
        )
    raise SweepError(f"[game] name must be one of lq, cybersecurity, sir, got {name!r}")


_SECTIONS = {
    "study": {"kind", "seed"},
    "game": {"name", "d", "n_points", "T"},
    "truth": {"kind"},
    "data": {"n_train", "n_val", "n_test", "noise"},
    "model": {"path", "width", "depth"},
}


def _check(config: dict) -> None:
    for section, table in config.items():
        if section == "fit":
            continue
        if section not in _SECTIONS:
            raise SweepError(f"synthetic configuration: unknown section [{section}]; expected {sorted([*_SECTIONS, 'fit'])}")
        if not isinstance(table, dict):
            raise SweepError(f"synthetic configuration: [{section}] must be a table")
        bad = set(table) - _SECTIONS[section]
        if bad:
            raise SweepError(f"synthetic configuration [{section}]: unknown key(s) {sorted(bad)}; allowed: {sorted(_SECTIONS[section])}")
    for section, key, low in (("data", "n_train", 1), ("data", "n_val", 0), ("data", "n_test", 1), ("game", "d", 2),
                              ("game", "n_points", 3), ("model", "width", 1), ("model", "depth", 1), ("study", "seed", 0)):
        v = config.get(section, {}).get(key)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= low):
            raise SweepError(f"synthetic configuration [{section}]: {key} must be an integer ≥ {low}, got {v!r}")
    noise = config.get("data", {}).get("noise", 0.0)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not (math.isfinite(noise) and 0 <= noise < 1):
        raise SweepError(f"synthetic configuration [data]: noise must be a number in [0, 1), got {noise!r}")
    if config.get("truth", {}).get("kind", "constant") not in ("constant", "arc", "mean_field"):
        raise SweepError(f"synthetic configuration [truth]: kind must be constant, arc or mean_field, got {config['truth']['kind']!r}")
    if config.get("model", {}).get("path", "auto") not in ("auto", "constant", "network"):
        raise SweepError(f"synthetic configuration [model]: path must be auto, constant or network, got {config['model']['path']!r}")
    if "name" not in config.get("game", {}):
        raise SweepError("synthetic configuration: [game] needs name = \"lq\", \"cybersecurity\" or \"sir\"")


def _path_errors(model, truth, observations) -> dict[str, float]:
    g = np.asarray(cal.paths(model, observations))  # [K, N, p]
    y = jnp.where(observations.mask, observations.values, 0.0)
    true = np.asarray(eqx.filter_vmap(eqx.filter_vmap(truth))(jnp.broadcast_to(model.times, y.shape[:2]), y)).reshape(g.shape)
    diff = g - true
    late = int(np.ceil(0.75 * diff.shape[1]))
    return {"gamma_mae": float(np.abs(diff).mean()), "gamma_mse": float((diff**2).sum(-1).mean()),
            "gamma_mae_last_quarter": float(np.abs(diff[:, late:]).mean())}


def run_synthetic(config: dict[str, Any], trial_dir, *, callback=None, progress: bool = False) -> dict[str, Any]:
    """Run one synthetic calibration (module docstring) with checkpoints in ``trial_dir``/checkpoint
    (an interrupted trial resumes there); return its metrics. ``callback(record)`` runs after every
    epoch, as in `calibrate.fit`."""
    _check(config)
    t0 = time.perf_counter()
    trial_dir = Path(trial_dir)
    seed = config.get("study", {}).get("seed", 0)
    data_cfg, model_cfg = config.get("data", {}), config.get("model", {})
    fit_cfg = dict(config.get("fit", {}))
    refine_steps = fit_cfg.pop("refine_steps", 20)
    spec = _game_spec(config["game"]["name"], config["game"])
    truth_kind = config.get("truth", {}).get("kind", "constant")
    truth = spec["truths"][truth_kind]
    sizes = [data_cfg.get("n_train", 20), data_cfg.get("n_val", 5), data_cfg.get("n_test", 10)]
    noise = float(data_cfg.get("noise", 0.0))
    mu0 = np.random.default_rng(seed).dirichlet(np.ones(spec["d"]), size=sum(sizes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", finite.NonSmoothWarning)
        data = cal.simulate(spec["game"], truth, mu0, to_params=spec["to_params"], solver=spec["solver"], noise=noise,
                            seed=seed, max_steps=5000)
    train, val, test = data.split(*sizes, seed=seed)
    val = val if sizes[1] else None
    kind = model_cfg.get("path", "auto")
    kind = ("constant" if truth_kind == "constant" else "network") if kind == "auto" else kind
    if kind == "constant":
        path = cal.Constant(spec["init_constant"], floor=spec["floor"])
    else:
        path = cal.Neural(model_cfg.get("width", 32), model_cfg.get("depth", 2), jax.random.PRNGKey(seed), n_states=spec["d"],
                          out_size=truth.size, time_scale=spec["T"], init=spec["init_network"], floor=spec["floor"])
    model = cal.CalibrationModel(spec["game"], path, spec["to_params"], spec["solver"], max_steps=5000, adjoint=spec["adjoint"])
    ckpt = trial_dir / "checkpoint"
    resumed_from = 0
    if _checkpoint.checkpoint_path(ckpt).exists():
        try:  # the epoch the fit resumes from (header only; a corrupt file is reported by fit itself)
            with open(_checkpoint.checkpoint_path(ckpt), "rb") as f:
                f.readline()
                n = int.from_bytes(f.read(8), "little")
                resumed_from = int(json.loads(f.read(n))["state"]["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            resumed_from = 0
    options = {"epochs": 40, "batch_size": 10, "identify": False, "eval_train": False, "checkpoint_every": 1, **fit_cfg}
    options.setdefault("eval_every", max(1, options["epochs"] // 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cal.IdentifiabilityWarning)
        fitted = cal.fit(model, train, val=val, seed=seed, checkpoint_dir=ckpt, progress=progress, callback=callback, **options)
    final = fitted.model
    row: dict[str, Any] = {"path": kind, "epochs_run": fitted.epochs_run, "best_epoch": fitted.best_epoch,
                           "resumed_from_epoch": resumed_from, "fit_status": fitted.status,
                           "n_nonconverged": sum(r["n_nonconverged"] for r in fitted.history),
                           "final_train_loss": float(fitted.history[-1]["train_loss"]) if fitted.history else math.nan}
    if kind == "constant" and refine_steps:
        final = cal.refine(final, train, steps=refine_steps)
    if kind == "constant":
        est, true = np.asarray(final.path.values).ravel(), np.asarray(truth.lo)
        row["max_rel_error"] = float(np.max(np.abs(est - true) / np.abs(true)))
    metrics = cal.evaluate(final, test, batch_size=options["batch_size"])
    row.update(_path_errors(final, truth, test))
    row.update(mu_error=metrics["mu_error"], test_loss=metrics["loss"], n_nonconverged=row["n_nonconverged"] + metrics["n_nonconverged"],
               data_fixed_point_residual=data.metadata["max_fixed_point_residual"], seconds=time.perf_counter() - t0)
    return row
