"""`fit`: mini-batch gradient descent through the equilibrium, with validation-based selection,
atomic checkpoints and exact resume."""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import _checkpoint, _training
from .._progress import progress_bar
from ..finite import ConvergenceWarning
from ._errors import CalibrationError
from ._metrics import evaluate
from ._model import CalibrationModel, check_compatible, covariates_of, trajectory_loss
from ..data import Observations


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The result of `fit`.

    - `model`: the selected model: the best validation loss when a validation set was given,
      else the model after the last epoch. Never selected on test data: use `evaluate(cal, test)`.
    - `final_model`: the model after the last epoch run.
    - `history`: one record per epoch: ``epoch`` (1-based), ``train_loss`` (mean of the batch losses
      met during the epoch), ``n_nonconverged`` and ``max_residual`` of its equilibrium solves, and
      on evaluation epochs ``train`` and ``val`` metrics (see `evaluate`).
    - `best_epoch`, `selected_on` ("validation" or "last epoch"), `epochs_run`, `stopped_early`,
      `batch_size` (also the chunk size of `evaluate`, which then reuses the compiled solve).
    """

    model: CalibrationModel
    final_model: CalibrationModel
    history: list[dict[str, Any]]
    best_epoch: int
    selected_on: str
    epochs_run: int
    stopped_early: bool
    batch_size: int

    @property
    def path(self):
        return self.model.path

    def losses(self) -> np.ndarray:
        """The per-epoch training loss."""
        return np.array([r["train_loss"] for r in self.history])

    def val_losses(self) -> tuple[np.ndarray, np.ndarray]:
        """(epochs, validation losses) of the evaluation epochs."""
        rows = [(r["epoch"], r["val"]["loss"]) for r in self.history if r.get("val")]
        return np.array([e for e, _ in rows], int), np.array([v for _, v in rows])


@functools.lru_cache(maxsize=16)
def _adam(learning_rate: float) -> optax.GradientTransformation:
    """One optax.adam per learning rate, so that repeated fits reuse the compiled step."""
    return optax.adam(learning_rate)


@eqx.filter_jit
def _train_step(params, static, opt_state, y, mask, z, weight, key, optimizer, window):
    def batch_loss(p):
        model = eqx.combine(p, static)
        keys = jax.random.split(key, y.shape[0])
        losses, eq = eqx.filter_vmap(lambda yy, mm, kk, zz: trajectory_loss(model, yy, mm, kk, window, zz))(y, mask, keys, z)
        return jnp.sum(weight * losses) / jnp.sum(weight), (eq.converged, eq.residual)

    (loss, (converged, residual)), grads = eqx.filter_value_and_grad(batch_loss, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = eqx.apply_updates(params, updates)
    real = weight > 0
    n_bad = jnp.sum(real & ~converged)
    worst = jnp.max(jnp.where(real, residual, 0.0))
    return params, opt_state, loss, n_bad, worst


def _reason(err: Exception) -> str:
    """The message of an Equinox runtime error, without the stack traces around it."""
    for line in str(err).splitlines():
        if "RuntimeError: " in line:
            return line.split("RuntimeError: ", 1)[1].strip()
    lines = [x for x in str(err).splitlines() if x.strip()]
    return lines[0] if lines else type(err).__name__


def fit(
    model: CalibrationModel,
    train: Observations,
    *,
    val: Observations | None = None,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 5e-3,
    epochs: int = 100,
    batch_size: int = 10,
    seed: int = 0,
    window: float | None = None,
    eval_every: int = 1,
    eval_train: bool = True,
    checkpoint_dir=None,
    checkpoint_every: int = 10,
    resume: bool = True,
    patience: int | None = None,
    progress: bool = True,
    on_nonconvergence: str = "warn",
    callback: Callable[[dict], bool | None] | None = None,
) -> Calibration:
    r"""Fit ``model``'s path to the ``train`` trajectories by gradient descent through the equilibrium.

    Each epoch shuffles the trajectories (key derived from ``seed`` and the epoch) into mini-batches
    of ``batch_size`` (the last padded with zero-weight repeats, so one compiled step serves all);
    a batch is solved in one `eqx.filter_vmap` and differentiated with `eqx.filter_value_and_grad`
    through the implicit adjoint. The loss is the masked mean square over the full horizon, or over
    a random sub-window of ``window``·N points per trajectory (the paper used 0.2).

    - ``optimizer``: any optax transformation (default ``optax.adam(learning_rate)``).
    - Evaluation every ``eval_every`` epochs and at the end (full horizon, see `evaluate`) on
      ``val`` and, if ``eval_train``, on ``train``. The returned model has the best validation loss;
      ``patience`` stops after that many evaluations without improvement. Test data never enter.
    - ``checkpoint_dir``: every ``checkpoint_every`` epochs (and at the end) the trainable
      parameters, optimiser state, RNG key, epoch and history are written atomically; with
      ``resume=True`` a later call continues from there, and gives the same result as an
      uninterrupted run (raise ``epochs`` to train further).
    - Equilibrium solves that miss ``tol`` are counted per epoch (``n_nonconverged``) and warned
      about (``on_nonconvergence="warn"``), or raise `CalibrationError` (``"raise"``).
    - ``callback(record)`` runs after every epoch; returning True stops the fit.
    """
    check_compatible(model, train)
    if val is not None:
        check_compatible(model, val)
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("eval_every", eval_every), ("checkpoint_every", checkpoint_every)):
        if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= (0 if name == "epochs" else 1)):
            raise CalibrationError(f"{name} must be a positive int, got {v!r}")
    if patience is not None and (val is None or patience < 1):
        raise CalibrationError("patience needs a validation set (val=...) and a positive count")
    if on_nonconvergence not in ("warn", "raise"):
        raise CalibrationError(f"on_nonconvergence must be 'warn' or 'raise', got {on_nonconvergence!r}")
    N, K = train.n_times, train.n_trajectories
    win = None
    if window is not None:
        if not 0 < window <= 1:
            raise CalibrationError(f"window is a fraction of the horizon in (0, 1], got {window}")
        win = max(1, int(math.floor(window * N)))
    optimizer = _adam(float(learning_rate)) if optimizer is None else optimizer
    B = min(int(batch_size), K)
    n_batches = -(-K // B)

    params, static = eqx.partition(model, model.trainable())
    opt_state = optimizer.init(params)
    key = jax.random.PRNGKey(seed)
    best_params = params
    state = _training.new_state("epoch")
    settings = {"n_train": K, "n_val": 0 if val is None else len(val), "batch_size": B, "seed": int(seed), "window": win}
    if checkpoint_dir is not None and resume:
        loaded = _training.resume(checkpoint_dir, (params, opt_state, key, best_params), settings, kind="calibration", error=CalibrationError)
        if loaded is not None:
            state, (params, opt_state, key, best_params) = loaded

    def checkpoint():
        if checkpoint_dir is not None:
            _checkpoint.save(checkpoint_dir, {"settings": settings, "state": state}, (params, opt_state, key, best_params))

    def metrics(data):
        return evaluate(eqx.combine(params, static), data, batch_size=B)

    y, mask, z = train.values, train.mask, covariates_of(train)
    with progress_bar(progress, state["epoch"], epochs) as bar:
        for e in _training.remaining(state, "epoch", epochs):
            ekey = jax.random.fold_in(key, e)
            perm_key, win_key = jax.random.split(ekey)
            perm = np.asarray(jax.random.permutation(perm_key, K))
            order = np.concatenate([perm, perm[: n_batches * B - K]])
            weights = (np.arange(n_batches * B) < K).astype(float)
            total, n_bad, worst = 0.0, 0, 0.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # counted below, reported once per epoch
                for b in range(n_batches):
                    sel = order[b * B : (b + 1) * B]
                    w = jnp.asarray(weights[b * B : (b + 1) * B])
                    try:
                        params, opt_state, loss, bad, wr = _train_step(
                            params, static, opt_state, y[sel], mask[sel], None if z is None else z[sel], w, jax.random.fold_in(win_key, b), optimizer, win
                        )
                        loss = float(loss)
                    except (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError) as err:
                        raise CalibrationError(
                            f"epoch {e + 1}, batch {b + 1}: the equilibrium solve or its adjoint failed: {_reason(err)} "
                            f"(trajectories {sorted(set(sel.tolist()))})"
                        ) from err
                    if not math.isfinite(loss):
                        raise CalibrationError(f"the training loss is {loss} at epoch {e + 1}, batch {b + 1}")
                    total += loss * float(w.sum())
                    n_bad += int(bad)
                    worst = max(worst, float(wr))
            record: dict[str, Any] = {"epoch": e + 1, "train_loss": total / K, "n_nonconverged": n_bad, "max_residual": worst}
            if n_bad:
                message = (
                    f"epoch {e + 1}: {n_bad} of {K} equilibrium solves did not converge (worst residual {worst:.3g} > "
                    f"tol {float(model.tol):g}); their gradients are inexact. Raise max_steps, add damping or change the solver."
                )
                if on_nonconvergence == "raise":
                    raise CalibrationError(message)
                warnings.warn(message, ConvergenceWarning, stacklevel=2)
            improved, stopped, save = _training.end_unit(
                state, record, counter="epoch", total=epochs, eval_every=eval_every, checkpoint_every=checkpoint_every,
                evaluate=metrics, train=train, val=val, eval_train=eval_train, patience=patience, callback=callback,
            )
            if improved:
                best_params = params
            if save:
                checkpoint()
            bar.update(e + 1, _training.info(record["train_loss"], record) + (f"  [red]{n_bad} not converged" if n_bad else ""))
            if stopped:
                break

    final = eqx.combine(params, static)
    selected, on = _training.select(state, "epoch", final, eqx.combine(best_params, static), val is not None)
    stopped = bool(state.get("stopped", False))
    return Calibration(selected, final, list(state["history"]), state["best_epoch"], on, state["epoch"], stopped, B)
