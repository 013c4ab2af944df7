r"""Neural mean-field games: particle SDEs whose drift combines a mean-field (MFG) term with a
learned correction, trained on observed paths or distributions (Thöni, Bachrach & Kachman,
arXiv 2504.13228, with the improvements listed in the project's science note neural_mfg.md §7).

    dXᵢ = [ b(t, X, c)ᵢ + f_φ(t, X, c)ᵢ ] dt + σ(t, X)ᵢ (√(1−ρ²) dWᵢ + ρ dW⁰),   i = 1..N

- Model: `ParticleSDE` with a drift (`CostGradient`: the paper's myopic best response;
  `Feedback`: a given, e.g. equilibrium, feedback; `ValueDrift`/`value_game`: anticipatory
  agents following −∂ₓu of an HJB solved on a 1-D grid, with a learned running cost `CostMLP`
  read back by `cost_recovery`), a correction (`AgentMLP`: exchangeable,
  sees population statistics and covariates; `PopulationMLP`: the paper's baseline;
  `FluxCorrection`: a learned generator term on compartments; `SpeedFactor`: a learned factor on
  the game's own drift) and a diffusion
  (`ConstantDiffusion`, `AgentDiffusion`, `FluxDiffusion`).
- Mean field: statistics of the empirical measure (`Mean`, `Moments`, `Quantile`, `Histogram`,
  `KernelEmbedding`, `Stack`); per-agent features for `AgentMLP(features=...)` (`LocalDensity`:
  kernel crowding ρ_h(xᵢ); `DriftFeature`: the game's drift bᵢ).
- `simulate(model, x0, ts, key, integrator=Integrator(dt0, solver, adjoint))` with Diffrax.
- Training: `PathData`, `PathLoss` (masked MSE on statistics + `MMD`/`Sinkhorn`/`Wasserstein1D`
  on clouds at all observed times), `fit` → `NeuralFit`, `evaluate`; distances `mmd`,
  `sinkhorn`, `sinkhorn_divergence`, `wasserstein_1d`.
- Games: `meeting`/`meeting_data`, `el_farol`/`el_farol_data`, `sir` (`SIRDrift`,
  `SusceptibleShare`).
- Known hidden terms (the test of a neural MFG: does f_φ recover them?): `hidden_conformity`
  (`Conformity`: k(m − xᵢ)), `hidden_congestion` (`Congestion`: speed (1 − cρ_h(xᵢ))·b),
  `hidden_contact` (`PrevalenceContact`: SIR contact factor 1 − cI/(I + h), read back by
  `transmission_factor`);
  `game_data` simulates a game with its hidden term into `PathData`; `correction_recovery` (R²
  of f_φ against the term on held-out clouds); `input_scaling` (unit-scale network inputs);
  a correction's ``at(t, x, population)`` / `AgentMLP.term` (t, x, s) read it back as a function
  (plots: `mfgx.plot.plot_correction`).
"""

from ._data import PathData
from ._errors import NeuralError
from ._features import AbstractFeature, DriftFeature, LocalDensity
from ._fit import NeuralFit, PathLoss, evaluate, fit, trainable_filter
from ._games import (
    ElFarolData,
    ElFarolDrift,
    MeetingCost,
    SIRDrift,
    SusceptibleShare,
    el_farol,
    el_farol_data,
    meeting,
    meeting_data,
    sir,
)
from ._hidden import (
    Conformity,
    Congestion,
    PrevalenceContact,
    correction_recovery,
    game_data,
    hidden_conformity,
    hidden_congestion,
    hidden_contact,
    input_scaling,
    transmission_factor,
)
from ._losses import (
    MMD,
    AbstractDistance,
    Sinkhorn,
    Wasserstein1D,
    mmd,
    sinkhorn,
    sinkhorn_divergence,
    wasserstein_1d,
)
from ._model import (
    AbstractCorrection,
    AbstractDiffusion,
    AbstractDrift,
    AgentDiffusion,
    AgentMLP,
    ConstantDiffusion,
    CostGradient,
    Feedback,
    FluxCorrection,
    FluxDiffusion,
    ParticleSDE,
    PopulationMLP,
)
from ._simulate import Integrator, TimeGrid, simulate, time_grid
from ._speed import SpeedFactor

from ._statistics import AbstractStatistic, Histogram, KernelEmbedding, Mean, Moments, Quantile, Stack
from ._value import BoundValueDrift, CostMLP, ValueDrift, cost_recovery, value_game

__all__ = [
    "MMD",
    "AbstractCorrection",
    "AbstractDiffusion",
    "AbstractDistance",
    "AbstractDrift",
    "AbstractFeature",
    "AbstractStatistic",
    "AgentDiffusion",
    "AgentMLP",
    "BoundValueDrift",
    "Conformity",
    "Congestion",
    "ConstantDiffusion",
    "CostGradient",
    "CostMLP",
    "DriftFeature",
    "ElFarolData",
    "ElFarolDrift",
    "Feedback",
    "FluxCorrection",
    "FluxDiffusion",
    "Histogram",
    "Integrator",
    "LocalDensity",
    "KernelEmbedding",
    "Mean",
    "MeetingCost",
    "Moments",
    "NeuralError",
    "NeuralFit",
    "ParticleSDE",
    "PathData",
    "PathLoss",
    "PopulationMLP",
    "PrevalenceContact",
    "Quantile",
    "SIRDrift",
    "Sinkhorn",
    "SpeedFactor",
    "Stack",
    "SusceptibleShare",
    "TimeGrid",
    "ValueDrift",
    "Wasserstein1D",
    "correction_recovery",
    "cost_recovery",
    "el_farol",
    "el_farol_data",
    "evaluate",
    "fit",
    "game_data",
    "hidden_conformity",
    "hidden_congestion",
    "hidden_contact",
    "input_scaling",
    "meeting",
    "meeting_data",
    "mmd",
    "simulate",
    "sinkhorn",
    "sinkhorn_divergence",
    "sir",
    "time_grid",
    "transmission_factor",
    "trainable_filter",
    "value_game",
    "wasserstein_1d",
]
