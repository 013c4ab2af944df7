"""Deterministic full-horizon metrics of a model on observations (`evaluate`) and path errors."""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..finite import ConvergenceWarning
from .._sharding import shard_batch
from ._errors import CalibrationError, runtime_reason
from ._model import CalibrationModel, _predict, check_compatible, covariates_of


def _as_model(obj) -> CalibrationModel:
    model = getattr(obj, "model", obj)
    if not isinstance(model, CalibrationModel):
        raise CalibrationError(f"expected a CalibrationModel or Calibration, got {type(obj).__name__}")
    return model


def predict_batched(model: CalibrationModel, values, mask, batch_size: int, covariates=None):
    """Predicted flows, converged flags and residuals, in chunks of ``batch_size`` trajectories
    (the last chunk padded, so that one compiled shape serves every chunk)."""
    K = values.shape[0]
    B = max(1, int(batch_size))
    idx = np.arange(-(-K // B) * B) % K
    flows, conv, res = [], [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # counted and reported by the caller
        for start in range(0, idx.size, B):
            sel = idx[start : start + B]
            try:
                # Sharding hook (mfgx.sweep, issue 19): the chunk split over the local devices; no-op on one.
                f, c, r = _predict(model, *shard_batch((values[sel], mask[sel], None if covariates is None else covariates[sel])))
            except (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError) as err:
                rows = sorted(set((sel % K).tolist()))
                raise CalibrationError(
                    f"the equilibrium solve failed for trajectories {rows}: {runtime_reason(err)}"
                ) from None
            flows.append(np.asarray(f))
            conv.append(np.asarray(c))
            res.append(np.asarray(r))
    return np.concatenate(flows)[:K], np.concatenate(conv)[:K], np.concatenate(res)[:K]


def evaluate(model, observations, *, batch_size: int | None = None) -> dict:
    """Full-horizon metrics of a `CalibrationModel` (or a `Calibration`'s selected model):

    - ``loss``: the training loss without windows, the masked mean square per trajectory averaged
      over trajectories;
    - ``mu_error``: the paper's μ-error (1/N) Σ_n Σ_x M (μ̂_{n,x} − y_{n,x})², averaged over trajectories;
    - ``n_nonconverged``, ``max_residual``: equilibrium solves that missed ``tol``;
    - ``n_trajectories``.

    Solved in chunks of ``batch_size`` trajectories (default: a `Calibration`'s training batch size).
    """
    if batch_size is None:
        batch_size = getattr(model, "batch_size", 16)
    model = _as_model(model)
    check_compatible(model, observations)
    y, m = np.asarray(observations.values), np.asarray(observations.mask)
    flows, conv, res = predict_batched(model, observations.values, observations.mask, batch_size, covariates_of(observations))
    err = m * (flows - y) ** 2
    per_traj = err.sum((1, 2)) / np.maximum(m.sum((1, 2)), 1)
    return {
        "loss": float(per_traj.mean()),
        "mu_error": float(err.sum(2).mean(1).mean()),
        "n_nonconverged": int((~conv).sum()),
        "max_residual": float(res.max()),
        "n_trajectories": int(y.shape[0]),
    }


def path_error(model, truth, observations) -> float:
    """The paper's γ-error (1/N) Σ_n ‖γ_fit(t_n, y_n) − γ_true(t_n, y_n)‖², averaged over trajectories,
    both paths evaluated on the observed flows (``truth``: any `AbstractPath` or callable (t, μ) → γ)."""
    model = _as_model(model)
    check_compatible(model, observations)
    fitted = np.asarray(_paths_on(model, observations.values, observations.mask, covariates_of(observations)))
    y = jnp.where(observations.mask, observations.values, 0.0)
    true = np.asarray(eqx.filter_vmap(eqx.filter_vmap(truth))(jnp.broadcast_to(model.times, y.shape[:2]), y))
    true = true.reshape(fitted.shape)
    return float(((fitted - true) ** 2).sum(-1).mean())


@eqx.filter_jit
def _paths_on(model, values, mask, z=None):
    return eqx.filter_vmap(model.path_on)(values, mask, z)


def paths(model, observations):
    """γ[K, N, p]: the fitted path on each observed trajectory."""
    model = _as_model(model)
    check_compatible(model, observations)
    return _paths_on(model, observations.values, observations.mask, covariates_of(observations))
