r"""Training a neural MFG on whole paths: `PathLoss`, `evaluate` and `fit` (Optax), with
train/validation selection, progress display and atomic checkpoints with exact resume.

For one dataset b with observation times t₁..t_T, the simulated cloud X(t) ~ model, and the
observed statistics y and clouds Y:

    L_b(φ) = w_s · Σ_{t,j} m_{t,j} ((S(X_t)_j − y_{t,j}) / s_j)² / Σ m   +   w_D · mean_{t observed} D(X_t, Y_t),

S a statistic of the empirical measure (`Mean`, `Moments`, `Quantile`, …), s per-entry scales,
m the observation mask and D an exchangeable distance (`MMD`, `Sinkhorn`, `Wasserstein1D`). The
training loss is the mean of L_b over a random batch of datasets; gradients flow through the
Diffrax solve by the integrator's adjoint (checkpointed by default).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax

from .. import _checkpoint, _fingerprint, _training
from .._progress import progress_bar
from ._data import PathData
from ._errors import NeuralError
from ._losses import AbstractDistance
from ._model import ParticleSDE, _AgentNet
from ._simulate import Integrator, TimeGrid, _solve, check_covariates, check_simulation, check_x0, time_grid
from ._statistics import AbstractStatistic


class PathLoss(eqx.Module):
    r"""The loss over whole paths (see the module docstring).

    - ``statistic``: S compared with the data's ``stats`` (masked mean square), or None.
    - ``scale``: s, one positive number or one per statistic entry (default 1).
    - ``distance``: D compared with the data's ``clouds`` at every observed time, or None.
    - ``stat_weight``, ``distance_weight``: w_s, w_D.
    - ``replicas``: k ≥ 1; the model is simulated from k copies of each initial cloud (k·N
      particles, the same initial empirical measure), so the simulated statistics and clouds carry
      k times less sampling variance. With 42 agents and k = 1 the loss of one simulation varies
      by more than the difference between a spurious and no correction (issue 13), which misleads
      both the gradient and validation-based selection.
    """

    statistic: AbstractStatistic | None = None
    distance: AbstractDistance | None = None
    scale: tuple[float, ...] | float = eqx.field(static=True, default=1.0)
    stat_weight: float = eqx.field(static=True, default=1.0)
    distance_weight: float = eqx.field(static=True, default=1.0)
    replicas: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        if self.statistic is None and self.distance is None:
            raise NeuralError("PathLoss needs a statistic, a distance, or both")
        if isinstance(self.replicas, bool) or not (isinstance(self.replicas, (int, np.integer)) and self.replicas >= 1):
            raise NeuralError(f"replicas must be an int >= 1 (copies of each initial cloud simulated), got {self.replicas!r}")
        if self.statistic is not None and not isinstance(self.statistic, AbstractStatistic):
            raise NeuralError(f"statistic must be a mfgx.neural statistic, got {type(self.statistic).__name__}")
        if self.distance is not None and not isinstance(self.distance, AbstractDistance):
            raise NeuralError(f"distance must be MMD, Sinkhorn or Wasserstein1D, got {type(self.distance).__name__}")
        s = np.atleast_1d(np.asarray(self.scale, dtype=float))
        if not (np.all(np.isfinite(s)) and np.all(s > 0)):
            raise NeuralError(f"scale must be positive and finite, got {self.scale!r}")
        for name in ("stat_weight", "distance_weight"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise NeuralError(f"{name} must be a finite number >= 0, got {v!r}")


def _scale_tuple(scale):
    return tuple(np.atleast_1d(np.asarray(scale, dtype=float)).tolist())


def check_compatible(model: ParticleSDE, data: PathData, loss: PathLoss, integrator: Integrator) -> TimeGrid:
    """Errors for a model, data, loss and integrator that do not fit together; the time grid."""
    if not isinstance(data, PathData):
        raise NeuralError(f"data must be a PathData, got {type(data).__name__}")
    if not isinstance(loss, PathLoss):
        raise NeuralError(f"loss must be a PathLoss, got {type(loss).__name__}")
    check_simulation(model, integrator)
    check_x0(model, data.x0[0])
    if data.covariates is not None:
        check_covariates(model, data.covariates[0], data.n_times)
    else:
        check_covariates(model, None, data.n_times)
    if loss.statistic is not None:
        if data.stats is None:
            raise NeuralError("the loss has a statistic but the data carry no stats")
        k = loss.statistic.size(data.dim)
        if data.stats.shape[2] != k:
            raise NeuralError(f"the loss's statistic has {k} entries, the data's stats {data.stats.shape[2]}")
        s = _scale_tuple(loss.scale)
        if len(s) not in (1, k):
            raise NeuralError(f"scale must be one number or {k} (one per statistic entry), got {len(s)}")
    if loss.distance is not None and data.clouds is None:
        raise NeuralError("the loss has a distance but the data carry no clouds")
    return time_grid(data.times, integrator.dt0, data.t0)


def _dataset_loss(model, loss, grid, integrator, x0, key, cov, clouds, cw, stats, smask):
    """(L_b, stat part, distance part) for one dataset."""
    if loss.replicas > 1:
        x0 = jnp.tile(x0, (loss.replicas,) + (1,) * (x0.ndim - 1))
    ys = _solve(model, x0, key, grid, integrator, cov)
    total = jnp.zeros((), ys.dtype)
    stat = dist = jnp.zeros((), ys.dtype)
    if loss.statistic is not None:
        s = jax.vmap(loss.statistic)(ys)  # [T, k]
        r = (s - stats) / jnp.asarray(_scale_tuple(loss.scale), ys.dtype)
        stat = jnp.sum(jnp.where(smask, r**2, 0.0)) / jnp.maximum(jnp.sum(smask), 1)
        total = total + loss.stat_weight * stat
    if loss.distance is not None:
        per_t = jax.vmap(lambda x, y, w: loss.distance(x, y, jnp.where(jnp.sum(w) > 0, w, 1.0)))(ys, clouds, cw)
        seen = jnp.sum(cw, axis=-1) > 0
        dist = jnp.sum(jnp.where(seen, per_t, 0.0)) / jnp.maximum(jnp.sum(seen), 1)
        total = total + loss.distance_weight * dist
    return total, stat, dist


def _batch(data: PathData, idx):
    take = lambda a: None if a is None else a[idx]  # noqa: E731
    return (take(data.x0), take(data.covariates), take(data.clouds), take(data.cloud_weights), take(data.stats), take(data.stat_mask))


def _batch_loss(model, loss, grid, integrator, keys, weight, batch):
    x0, cov, clouds, cw, stats, smask = batch
    ax = lambda a: None if a is None else 0  # noqa: E731
    fn = functools.partial(_dataset_loss, model, loss, grid, integrator)
    total, stat, dist = jax.vmap(fn, in_axes=(0, 0, ax(cov), ax(clouds), ax(cw), ax(stats), ax(smask)))(x0, keys, cov, clouds, cw, stats, smask)
    norm = jnp.sum(weight)
    return jnp.sum(weight * total) / norm, (jnp.sum(weight * stat) / norm, jnp.sum(weight * dist) / norm)


@eqx.filter_jit
def _train_step(params, static, opt_state, batch, keys, weight, optimizer, loss, grid, integrator):
    def f(p):
        return _batch_loss(eqx.combine(p, static), loss, grid, integrator, keys, weight, batch)

    (value, parts), grads = eqx.filter_value_and_grad(f, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = eqx.apply_updates(params, updates)
    gnorm = optax.tree.norm(grads)
    return params, opt_state, value, parts, gnorm


@eqx.filter_jit
def _eval_step(model, batch, keys, weight, loss, grid, integrator):
    value, (stat, dist) = _batch_loss(model, loss, grid, integrator, keys, weight, batch)
    return value, stat, dist


def _eval_keys(seed: int, idx):
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.asarray(idx))


def evaluate(
    model: ParticleSDE,
    data: PathData,
    *,
    loss: PathLoss,
    integrator: Integrator,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, float]:
    r"""The loss on ``data`` with fixed noise: dataset b uses the key fold_in(PRNGKey(seed), b),
    so repeated evaluations (e.g. of successive training steps) see the same Brownian paths.
    Returns {"loss", "stat", "distance"} averaged over the datasets (chunks of ``batch_size``,
    the last padded with zero-weight repeats so that one compiled function serves all)."""
    grid = check_compatible(model, data, loss, integrator)
    K = data.n_datasets
    B = max(1, min(int(batch_size), K))
    tot = np.zeros(3)
    for start in range(0, K, B):
        idx = np.arange(start, start + B)
        w = (idx < K).astype(float)
        idx = np.where(idx < K, idx, idx % K)
        v = _eval_step(model, _batch(data, idx), _eval_keys(seed, idx), jnp.asarray(w), loss, grid, integrator)
        tot += np.asarray([float(a) for a in v]) * w.sum()
    tot /= K
    return {"loss": float(tot[0]), "stat": float(tot[1]), "distance": float(tot[2])}


@dataclasses.dataclass(frozen=True)
class NeuralFit(_training.StepHistory):
    """The result of `fit`.

    - `model`: the selected model: the best validation loss when a validation set was given,
      else the model after the last step. `final_model`: after the last step run.
    - `history`: one record per step: ``step`` (1-based), ``loss`` (the training batch loss),
      ``stat``, ``distance`` (its parts), ``grad_norm``, ``seconds`` (wall time of the step), and
      on evaluation steps ``val`` (and ``train``) metrics from `evaluate`.
    - `best_step`, `selected_on` ("validation", "validation (initial model)": no step beat the
      untrained model on ``val``, best_step 0; or "last step"), `steps_run`, `stopped_early`.
    - `initial_val`: the untrained model's validation metrics (None without ``val``).
    """

    model: ParticleSDE
    final_model: ParticleSDE
    history: list[dict[str, Any]]
    best_step: int
    selected_on: str
    steps_run: int
    stopped_early: bool
    initial_val: dict | None = None



def trainable_filter(model: ParticleSDE, trainable: Callable | None):
    """The Equinox filter spec of the trained leaves: every inexact array of the model, or of the
    sub-trees that ``trainable(model)`` returns (e.g. ``lambda m: m.correction``)."""
    if trainable is None:
        spec = jtu.tree_map(eqx.is_inexact_array, model)
    else:
        try:
            parts = trainable(model)
        except Exception as e:  # noqa: BLE001
            raise NeuralError(f"trainable(model) failed: {e}") from e
        if parts is None or not any(eqx.is_inexact_array(v) for v in jtu.tree_leaves(parts)):
            raise NeuralError("trainable(model) selects no floating-point array to train")
        spec = jtu.tree_map(lambda _: False, model)
        spec = eqx.tree_at(trainable, spec, replace=jtu.tree_map(eqx.is_inexact_array, parts))
    if not any(jtu.tree_leaves(spec)):
        raise NeuralError("the model has no floating-point array to train")
    return spec


@functools.lru_cache(maxsize=16)
def _adam(learning_rate: float, schedule: str = "constant", steps: int = 0) -> optax.GradientTransformation:
    """One optax.adam per (learning rate, schedule, steps), so that repeated fits reuse the compiled step."""
    if schedule == "cosine":
        return optax.adam(optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=0.01))
    return optax.adam(learning_rate)


_SATURATED = 4.0


def _data_digest(data) -> str:
    """The fingerprint of a `PathData`'s arrays and observation times (not its metadata)."""
    return _fingerprint.digest(data.times, data.t0, data.x0, data.clouds, data.cloud_weights, data.stats,
                               data.stat_mask, data.covariates)


def _unscaled_inputs(model: ParticleSDE, data: PathData) -> list[str]:
    """The inputs of the model's per-agent networks whose normalised values (z − loc)/scale on the
    data's initial clouds are far from unit scale (median |·| > 4), as readable names: a tanh
    layer fed such inputs is saturated at initialisation (issue 13)."""

    nets = [v for v in jtu.tree_leaves(model, is_leaf=lambda v: isinstance(v, _AgentNet)) if isinstance(v, _AgentNet)]
    out = []
    x0 = np.asarray(data.x0)
    for net in nets:
        d = data.dim
        names = [f"x[{j}]" for j in range(d)]
        cols = [x0.reshape(-1, d)]
        if net.time:
            names.append("t")
            ts = np.concatenate([[data.t0], np.asarray(data.times)])
            cols.append(np.resize(ts, (cols[0].shape[0], 1)))
        if net.statistic is not None:
            s = np.stack([np.asarray(net.statistic(jnp.asarray(x))) for x in x0])
            names += [f"{type(net.statistic).__name__}[{j}]" for j in range(s.shape[1])]
            cols.append(np.repeat(s, x0.shape[1], axis=0))
        if net.covariates and data.covariates is not None:
            names += [f"c[{j}]" for j in range(net.covariates)]
            c = np.asarray(data.covariates)[:, 0]
            cols.append(np.repeat(c, x0.shape[1], axis=0))
        if len(names) != len(net.loc):
            continue
        z = (np.concatenate(cols, axis=1) - np.asarray(net.loc)) / np.asarray(net.scale)
        bad = np.median(np.abs(z), axis=0) > _SATURATED
        out += [n for n, b in zip(names, bad) if b]
    return out


def _int(name, v, lo):
    if isinstance(v, bool) or not (isinstance(v, (int, np.integer)) and v >= lo):
        raise NeuralError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def fit(
    model: ParticleSDE,
    train: PathData,
    *,
    loss: PathLoss,
    integrator: Integrator,
    val: PathData | None = None,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1e-3,
    schedule: str = "constant",
    steps: int = 500,
    batch_size: int = 8,
    seed: int = 0,
    trainable: Callable | None = None,
    eval_every: int = 25,
    eval_train: bool = False,
    eval_seed: int = 12345,
    checkpoint_dir=None,
    checkpoint_every: int = 100,
    resume: bool = True,
    patience: int | None = None,
    progress: bool = True,
    callback: Callable[[dict], bool | None] | None = None,
) -> NeuralFit:
    r"""Fit ``model`` to the ``train`` datasets by gradient descent on `PathLoss` through the solver.

    Step s draws ``batch_size`` datasets without replacement and one Brownian path per dataset,
    both from fold_in(PRNGKey(seed), s), simulates them in one vmapped Diffrax solve, and applies
    ``optimizer`` (default ``optax.adam(learning_rate)``, or with ``schedule="cosine"`` a cosine
    decay of the rate to 1 % over ``steps``, which lets the noisy SDE gradients settle; the paper
    used ``optax.adabelief(5e-4)``) to the gradient with respect to the ``trainable`` leaves
    (default: every floating-point array of the model; e.g. ``lambda m: m.correction`` keeps the
    MFG drift and the diffusion fixed).

    - Memory: gradients go through ``integrator.adjoint`` (`diffrax.RecursiveCheckpointAdjoint`
      by default; ``checkpoints=k`` bounds the stored states; `diffrax.BacksolveAdjoint` for O(1)).
    - Evaluation every ``eval_every`` steps and at the end on ``val`` (and on ``train`` if
      ``eval_train``) with fixed noise (`evaluate` with ``eval_seed``). The returned model has the
      best validation loss among the untrained model (step 0) and the evaluated steps; ``patience``
      stops after that many evaluations without improvement. Validate on held-out *training-side*
      datasets (e.g. ``train.split(0.25)``), never on the test set.
    - ``checkpoint_dir``: every ``checkpoint_every`` steps (and at the end) the trainable leaves,
      the optimiser state, the best leaves, the step and the history are written atomically;
      with ``resume=True`` a later call continues from there and ends where an uninterrupted
      run would (raise ``steps`` to train further).
    - ``callback(record)`` runs after every step; returning True stops the fit.

    A `UserWarning` flags network inputs far from unit scale on the data (they saturate tanh
    layers): build the network with ``**input_scaling(train)``.
    """
    grid = check_compatible(model, train, loss, integrator)
    if val is not None:
        if val.times != train.times or val.t0 != train.t0:
            raise NeuralError("val must be observed at the same times (and t0) as train")
        check_compatible(model, val, loss, integrator)
    steps = _int("steps", steps, 0)
    batch_size = _int("batch_size", batch_size, 1)
    eval_every = _int("eval_every", eval_every, 1)
    checkpoint_every = _int("checkpoint_every", checkpoint_every, 1)
    if patience is not None:
        _int("patience", patience, 1)
        if val is None:
            raise NeuralError("patience needs a validation set (val=...)")
    if schedule not in ("constant", "cosine"):
        raise NeuralError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    if optimizer is None:
        if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
            raise NeuralError(f"learning_rate must be > 0, got {learning_rate!r}")
        optimizer = _adam(float(learning_rate), schedule, steps if schedule == "cosine" else 0)
    elif schedule != "constant":
        raise NeuralError("schedule applies to the default optimizer only: put the schedule into your optimizer")
    unscaled = _unscaled_inputs(model, train)
    if unscaled:
        warnings.warn(
            f"the network inputs {', '.join(unscaled)} are far from unit scale on the training data (median |(z − loc)/scale| > "
            f"{_SATURATED:g}): tanh layers saturate and learning stalls; pass loc/scale, e.g. AgentMLP(..., **input_scaling(train))",
            stacklevel=2,
        )
    K = train.n_datasets
    B = min(batch_size, K)

    spec = trainable_filter(model, trainable)
    params, static = eqx.partition(model, spec)
    opt_state = optimizer.init(params)
    best_params = params
    state = _training.new_state("step")
    settings = {
        "n_train": K, "n_val": 0 if val is None else val.n_datasets, "batch_size": B, "seed": int(seed),
        "eval_seed": int(eval_seed), "model": _fingerprint.digest(model), "optimizer": _fingerprint.digest(optimizer),
        "loss": _fingerprint.digest(loss), "integrator": _fingerprint.digest(integrator),
        "trainable": _fingerprint.digest(spec), "train_data": _data_digest(train),
        "val_data": None if val is None else _data_digest(val),
    }
    if checkpoint_dir is not None and resume:
        loaded = _training.resume(checkpoint_dir, (params, opt_state, best_params), settings, kind="neural", error=NeuralError)
        if loaded is not None:
            state, (params, opt_state, best_params) = loaded

    def checkpoint():
        if checkpoint_dir is not None:
            _checkpoint.save(checkpoint_dir, {"settings": settings, "state": state}, (params, opt_state, best_params), kind="neural")

    def metrics(data):
        return evaluate(eqx.combine(params, static), data, loss=loss, integrator=integrator, seed=eval_seed, batch_size=B)

    if val is not None and state["step"] == 0 and "initial_val" not in state:
        # the model before training is a candidate too: with a correction that starts at 0
        # (``zero_init``) it is the MFG without correction, kept unless training beats it on val
        state["initial_val"] = metrics(val)
        state["best_val"] = state["initial_val"]["loss"]

    key = jax.random.PRNGKey(seed)
    weight = jnp.ones(B)
    with progress_bar(progress, state["step"], steps, label="neural fit", unit="steps") as bar:
        for s in _training.remaining(state, "step", steps):
            skey = jax.random.fold_in(key, s)
            pick, noise = jax.random.split(skey)
            idx = np.sort(np.asarray(jax.random.choice(pick, K, (B,), replace=False)))
            keys = jax.random.split(noise, B)
            t_start = time.perf_counter()
            params, opt_state, value, (stat, dist), gnorm = _train_step(
                params, static, opt_state, _batch(train, idx), keys, weight, optimizer, loss, grid, integrator
            )
            value = float(value)
            seconds = time.perf_counter() - t_start
            if not math.isfinite(value) or not math.isfinite(float(gnorm)):
                raise NeuralError(
                    f"step {s + 1}: the training loss is {value} (gradient norm {float(gnorm)}) on datasets {idx.tolist()}; "
                    "lower the learning rate or dt0, or scale the network's inputs"
                )
            done = s + 1
            record: dict[str, Any] = {
                "step": done, "loss": value, "stat": float(stat), "distance": float(dist),
                "grad_norm": float(gnorm), "seconds": seconds,
            }
            improved, stopped, save = _training.end_unit(
                state, record, counter="step", total=steps, eval_every=eval_every, checkpoint_every=checkpoint_every,
                evaluate=metrics, train=train, val=val, eval_train=eval_train, patience=patience, callback=callback,
            )
            if improved:
                best_params = params
            if save:
                checkpoint()
            bar.update(done, _training.info(value, record))
            if stopped:
                break

    final = eqx.combine(params, static)
    if val is not None and "initial_val" in state and state["best_step"] == 0:
        selected, on = eqx.combine(best_params, static), "validation (initial model)"
    else:
        selected, on = _training.select(state, "step", final, eqx.combine(best_params, static), val is not None)
    return NeuralFit(selected, final, list(state["history"]), state["best_step"], on, state["step"], bool(state.get("stopped", False)),
                     state.get("initial_val"))
