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

from .. import _checkpoint, _fingerprint, _training
from .._progress import progress_bar
from .._sharding import shard_batch
from ..finite import ConvergenceWarning
from ._errors import CalibrationError, runtime_reason as _reason
from ._metrics import evaluate
from ._paths import Constant, PiecewiseConstant, Spline
from ._identifiability import identifiability
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
    - `status`: "ok", or "failed" when an epoch met a failing solve (negative mass, adjoint
      failure) or a non-finite loss; `reason` says which epoch, batch and why. The models are then
      those of the last completed epoch (and the best validated one before it).
    - `identifiability`: for `Constant`/`PiecewiseConstant` paths, the `Identifiability` diagnostic
      of the selected model on the training data (None for neural paths or ``identify=False``).
    """

    model: CalibrationModel
    final_model: CalibrationModel
    history: list[dict[str, Any]]
    best_epoch: int
    selected_on: str
    epochs_run: int
    stopped_early: bool
    batch_size: int
    status: str = "ok"
    reason: str | None = None
    identifiability: Any = None

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


def roughness(model: CalibrationModel, y, mask, z=None):
    r"""R(γ) = Σ_n ‖γ_{n+1} − γ_n‖² / (t_{n+1} − t_n) ≈ ∫ ‖γ'(t)‖² dt: the roughness in time of the
    path on one observed trajectory (grid-independent; 0 for a `Constant`)."""
    g = model.path_on(y, mask, z)
    return jnp.sum(jnp.diff(g, axis=0) ** 2 / jnp.diff(model.times)[:, None])


def _batch_step(params, static, opt_state, y, mask, z, weight, starts, guess, optimizer, window, smoothness=0.0):
    """One optimiser step on one mini-batch: (params, opt_state, data loss, n_nonconverged, worst
    residual, equilibrium flows). The optimised loss adds ``smoothness`` × `roughness`."""
    # Sharding hook (mfgx.sweep, issue 19): split the mini-batch over the local devices; no-op on one.
    y, mask, z, weight, starts, guess = shard_batch((y, mask, z, weight, starts, guess))

    def batch_loss(p):
        model = eqx.combine(p, static)
        losses, eq = eqx.filter_vmap(
            lambda yy, mm, ss, zz, gg: trajectory_loss(model, yy, mm, ss, window, zz, gg)
        )(y, mask, starts, z, guess)
        data = jnp.sum(weight * losses) / jnp.sum(weight)
        total = data
        if smoothness:
            rough = eqx.filter_vmap(lambda yy, mm, zz: roughness(model, yy, mm, zz))(y, mask, z)
            total = data + smoothness * jnp.sum(weight * rough) / jnp.sum(weight)
        return total, (data, eq.converged, eq.residual, eq.mean_field)

    (_, (loss, converged, residual, flows)), grads = eqx.filter_value_and_grad(batch_loss, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = eqx.apply_updates(params, updates)
    real = weight > 0
    n_bad = jnp.sum(real & ~converged)
    worst = jnp.max(jnp.where(real, residual, 0.0))
    return params, opt_state, loss, n_bad, worst, flows


@eqx.filter_jit
def _init_optimizer(optimizer, params):
    """The optimiser's state, in one compiled call (not one compile per array operation)."""
    return optimizer.init(params)


@eqx.filter_jit
def _initial_flows(model, y, mask):
    """Each training trajectory's first warm start: its μ₀ at every time (for a state-action mean
    field, μ₀ times the uniform policy). Any flow serves as a start; this one needs no compile."""
    mu0 = jax.vmap(model.initial)(y[:, 0], mask[:, 0])
    N, game = y.shape[1], model.game
    flow = jnp.broadcast_to(mu0[:, None, :], (mu0.shape[0], N, mu0.shape[1]))
    if getattr(game, "mean_field", "state") == "state":
        return flow
    return jnp.broadcast_to(flow[..., None] / game.n_actions, flow.shape + (game.n_actions,))


@eqx.filter_jit
def _train_epoch(params, static, opt_state, warm, y, mask, z, order, weights, starts, optimizer, window, smoothness=0.0):
    """A whole epoch in one compiled call: `lax.scan` of `_batch_step` over the mini-batches
    ``order[b]`` (indices into the training arrays, on device). Each trajectory's solve starts from
    its last equilibrium ``warm[k]`` (warm start; the fixed point, hence the gradient, is the same),
    which is updated. Returns (params, opt_state, warm) and per-batch (loss, n_nonconverged, worst
    residual)."""

    def body(carry, xs):
        p, o, wm = carry
        sel, w, st = xs
        zz = None if z is None else z[sel]
        p, o, loss, bad, worst, flows = _batch_step(
            p, static, o, y[sel], mask[sel], zz, w, st, wm[sel], optimizer, window, smoothness
        )
        return (p, o, wm.at[sel].set(flows)), (loss, bad, worst)

    (params, opt_state, warm), out = jax.lax.scan(body, (params, opt_state, warm), (order, weights, starts))
    return params, opt_state, warm, out


class FitFailedWarning(UserWarning):
    """`fit` stopped at an epoch whose solves failed and returned the model before it."""


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
    on_failure: str = "return",
    identify: bool | None = None,
    smoothness: float = 0.0,
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
    - An epoch that meets a failing solve or a non-finite loss is discarded: with
      ``on_failure="return"`` (default) the fit stops there, warns (`FitFailedWarning`) and returns
      the last completed epoch's model (``status="failed"`` and the ``reason``); ``"raise"`` raises
      `CalibrationError`.
    - ``smoothness`` λ ≥ 0: the optimised loss adds λ·`roughness`, ∫‖γ'(t)‖² dt of the path on
      each trajectory (a Tikhonov/H¹ penalty for time paths: `PiecewiseConstant`, `Neural` in t);
      the reported ``train_loss`` is the data loss alone. Choose λ on validation data.
    - ``identify`` (default: on for `Constant`/`PiecewiseConstant`/`Spline` paths): after the fit, the
      Fisher-spectrum diagnostic (`identifiability`) of the selected model on the training data;
      non-identified parameters are warned about (`IdentifiabilityWarning`) with the reason.
    - ``callback(record)`` runs after every epoch; returning True stops the fit.

    An epoch runs as one compiled call (a scan over its mini-batches), so the Python loop costs
    nothing per batch; progress, evaluation and checkpoints are per epoch.
    """
    check_compatible(model, train)
    if val is not None:
        check_compatible(model, val)
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("eval_every", eval_every), ("checkpoint_every", checkpoint_every)):
        if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= (0 if name == "epochs" else 1)):
            raise CalibrationError(f"{name} must be a positive int, got {v!r}")
    if patience is not None and (val is None or patience < 1):
        raise CalibrationError("patience needs a validation set (val=...) and a positive count")
    if not (isinstance(smoothness, (int, float)) and math.isfinite(smoothness) and smoothness >= 0):
        raise CalibrationError(f"smoothness must be a non-negative number, got {smoothness!r}")
    if on_failure not in ("return", "raise"):
        raise CalibrationError(f"on_failure must be 'return' or 'raise', got {on_failure!r}")
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
    opt_state = _init_optimizer(optimizer, params)
    key = jax.random.PRNGKey(seed)
    best_params = params
    y, mask, z = jnp.asarray(train.values), jnp.asarray(train.mask), covariates_of(train)
    z = None if z is None else jnp.asarray(z)
    warm = _initial_flows(model, y, mask)
    state = _training.new_state("epoch")
    settings = {
        "n_train": K, "n_val": 0 if val is None else len(val), "batch_size": B, "seed": int(seed), "window": win,
        "smoothness": float(smoothness), "model": _fingerprint.digest(model), "optimizer": _fingerprint.digest(optimizer),
        "train_data": _fingerprint.data_digest(train), "val_data": None if val is None else _fingerprint.data_digest(val),
    }
    if checkpoint_dir is not None and resume:
        loaded = _training.resume(checkpoint_dir, (params, opt_state, key, best_params, warm), settings, kind="calibration", error=CalibrationError)
        if loaded is not None:
            state, (params, opt_state, key, best_params, warm) = loaded

    def checkpoint():
        if checkpoint_dir is not None:
            _checkpoint.save(checkpoint_dir, {"settings": settings, "state": state}, (params, opt_state, key, best_params, warm))

    def metrics(data):
        return evaluate(eqx.combine(params, static), data, batch_size=B)

    status, reason = "ok", None
    with progress_bar(progress, state["epoch"], epochs) as bar:
        for e in _training.remaining(state, "epoch", epochs):
            # The epoch's shuffle and window starts, drawn on the host from (seed key, epoch).
            rng = np.random.default_rng([*np.asarray(jax.random.key_data(key)).ravel().tolist(), e])
            perm = rng.permutation(K)
            order = np.concatenate([perm, perm[: n_batches * B - K]]).reshape(n_batches, B)
            weights = (np.arange(n_batches * B) < K).astype(float).reshape(n_batches, B)
            starts = rng.integers(0, N - (win or N) + 1, size=(n_batches, B))  # uniform over window positions
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # counted below, reported once per epoch
                try:
                    new_params, new_opt, new_warm, (losses, bad, worst) = _train_epoch(
                        params, static, opt_state, warm, y, mask, z, jnp.asarray(order), jnp.asarray(weights, y.dtype),
                        jnp.asarray(starts), optimizer, win, float(smoothness),
                    )
                    losses, bad, worst = np.asarray(losses), np.asarray(bad), np.asarray(worst)
                except (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError) as err:
                    status, reason = "failed", f"epoch {e + 1}: the equilibrium solve or its adjoint failed: {_reason(err)}"
                    break
            if not np.all(np.isfinite(losses)):
                b = int(np.flatnonzero(~np.isfinite(losses))[0])
                status, reason = "failed", f"epoch {e + 1}, batch {b + 1}: the training loss is {losses[b]} (trajectories {sorted(set(order[b].tolist()))})"
                break
            last_good = (params, opt_state, warm)
            params, opt_state, warm = new_params, new_opt, new_warm
            n_bad = int(bad.sum())
            record: dict[str, Any] = {
                "epoch": e + 1, "train_loss": float((losses * weights.sum(1)).sum() / K), "n_nonconverged": n_bad,
                "max_residual": float(worst.max()),
            }
            if n_bad:
                message = (
                    f"epoch {e + 1}: {n_bad} of {K} equilibrium solves did not converge (worst residual {worst.max():.3g} > "
                    f"tol {float(model.tol):g}); their gradients are inexact. Raise max_steps, add damping or change the solver."
                )
                if on_nonconvergence == "raise":
                    raise CalibrationError(message)
                warnings.warn(message, ConvergenceWarning, stacklevel=2)
            try:
                improved, stopped, save = _training.end_unit(
                    state, record, counter="epoch", total=epochs, eval_every=eval_every, checkpoint_every=checkpoint_every,
                    evaluate=metrics, train=train, val=val, eval_train=eval_train, patience=patience, callback=callback,
                )
            except CalibrationError as err:  # evaluation after the epoch met a failing solve
                params, opt_state, warm = last_good
                status, reason = "failed", f"epoch {e + 1} (evaluation): {err}"
                break
            if improved:
                best_params = params
            if save:
                checkpoint()
            bar.update(e + 1, _training.info(record["train_loss"], record) + (f"  [red]{n_bad} not converged" if n_bad else ""))
            if stopped:
                break

    if status == "failed":
        if on_failure == "raise":
            raise CalibrationError(reason + " (fit(..., on_failure='return') returns the best model so far instead)")
        warnings.warn(f"fit stopped: {reason}; returning the model of the last completed epoch ({state['epoch']})", FitFailedWarning, stacklevel=2)
    final = eqx.combine(params, static)
    selected, on = _training.select(state, "epoch", final, eqx.combine(best_params, static), val is not None)
    stopped = bool(state.get("stopped", False))
    ident = None
    if identify is None:
        identify = isinstance(model.path, (Constant, PiecewiseConstant, Spline))
    if identify:
        try:
            ident = identifiability(selected, train)
        except (CalibrationError, eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError) as err:
            warnings.warn(f"identifiability diagnostic not computed: {_reason(err)}", FitFailedWarning, stacklevel=2)
        else:
            if progress:
                print(ident.summary())
    return Calibration(selected, final, list(state["history"]), state["best_epoch"], on, state["epoch"], stopped, B, status, reason, ident)
