"""Calibration: fit parameter paths of a mean-field game to observed population flows.

The loop: a parameter path γ(t, μ) → θ → `mfgx.solve` → predicted flow → masked loss against the
observations → gradient through the equilibrium (implicit adjoint) → optimiser update.

- `Observations`: flows y[K, N, S] with masks, validated; `split` by trajectory.
- Paths: `Constant`, `PiecewiseConstant`, `Spline` (smooth in time, B-splines), `Neural` (bounded by softplus + floor or a box),
  `Known(fn)`, a fixed path γ(t, μ) = fn(t, μ) (a ground truth to evaluate or simulate at), and
  `Reference`, the calibration paper's constant / arc / mean-field ground truths.
- `CalibrationModel(game, path, to_params, solver)`: predictions and the loss.
- `fit` → `Calibration` (validation-based selection, checkpoints, resume); `evaluate` on test data.
- `refine` (Levenberg–Marquardt polish), `laplace` (Gauss–Newton or sandwich intervals),
  `bootstrap` (parametric bootstrap intervals), all with each trajectory's μ₀ as a nuisance
  parameter by default and optional Dirichlet (Pearson) weighting; `coverage` (how often a model's
  intervals contain a known truth over simulated replicates); `identifiability` (the Fisher
  spectrum: which parameters the data cannot determine); `profile` (profile likelihood of one
  parameter and its likelihood-ratio interval).
- `simulate`: synthetic observations at a known path.
"""

from ._errors import CalibrationError
from ._fit import Calibration, FitFailedWarning, fit, roughness
from ._metrics import evaluate, path_error, paths
from ._model import CalibrationModel, identity_params, scalar_params
from ..data import Observations
from ._paths import AbstractPath, Constant, Known, Neural, PiecewiseConstant, Reference, Spline
from ._profile import Profile, profile
from ._synthetic import simulate
from ._coverage import Coverage, coverage
from ._identifiability import Identifiability, IdentifiabilityWarning, identifiability
from ._uncertainty import Uncertainty, bootstrap, laplace, refine

__all__ = [
    "AbstractPath",
    "Calibration",
    "CalibrationError",
    "FitFailedWarning",
    "Identifiability",
    "IdentifiabilityWarning",
    "Known",
    "CalibrationModel",
    "Constant",
    "Coverage",
    "Neural",
    "Observations",
    "PiecewiseConstant",
    "Profile",
    "Reference",
    "Spline",
    "Uncertainty",
    "bootstrap",
    "coverage",
    "evaluate",
    "fit",
    "identifiability",
    "identity_params",
    "laplace",
    "path_error",
    "paths",
    "profile",
    "refine",
    "roughness",
    "scalar_params",
    "simulate",
]
