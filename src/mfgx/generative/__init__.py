r"""The MFG laboratory for generative modelling (science note generative_lab.md): generative
flows as mean-field games whose agents are the samples.

One Lagrangian engine:

- `Potential`: OT-Flow's Φ(x, t) = wᵀN(x, t) + ½ sᵀ(AᵀA)s + bᵀs + c (ResNet with log-cosh
  activation), with the closed-form gradient and the exact Laplacian Δₓ Φ by forward recursion
  (and a Hutchinson estimate).
- `characteristics`: dx/dt = −∇ₓΦ/α integrated with Diffrax (`RK4` on a fixed grid by default),
  carrying the log-determinant ℓ, the kinetic cost L and the HJB residual R along each path.

Problems on it:

- `CNF`: data → N(0, I) with OT-Flow's objective α_L L + α_C C + α_R R (C the NLL / KL terminal
  cost); a trained `Flow` gives `log_density`, `sample` (inverse flow), `inverse`, `inverse_error`.
- `DynamicOT`: data ~ ρ₀ → a target density ρ₁ with a KL terminal cost and HJB penalties
  (running and terminal), MFGnet's settings; `transport` is the learned map.
- `CrowdMotion`: the same with a running cost: an `Obstacle` Q(x) and congestion c ∫ρ log ρ.
- `JKOStep`: one JKO step ρ ↦ argmin ℰ(ρ) + W₂²/(2τ) of an energy (`KL`, `PotentialEnergy`,
  `InteractionEnergy`) as an MFG on [0, τ]; `gradient_flow` chains them into a
  `WassersteinGradientFlow` (`gaussian_jko_step`: the closed form for KL to N(0, I)).

Shared: `metrics` (MMD², energy distance, sliced and exact Wasserstein, Gaussian closed forms,
NLL and the entropy floor) and `datasets` (the 2-D toys, Gaussian mixtures with known density).

Score-based models (§3): SDEs `VP`, `SubVP`, `VE` with closed-form kernels; score models
`PotentialScore` (ℓ_θ = −Φ, s = ∇ℓ_θ) and `ScoreNet` (direct s_θ); the problem `SGM` (denoising
score matching + λ_HJB × the HJB residual of the log-density / score equation); `sample_sde`
(reverse SDE), `sample_ode` (probability-flow ODE), `log_likelihood` / `sgm_nll` /
`bits_per_dim` (PF-ODE), `fit_sgm` → `SGMFit` on the shared training loop.

Training: `fit(problem, data, key=…)` → `GenerativeFit` (checkpoints, exact resume, progress,
validation selection), `evaluate`.

The lab end to end (`mfgx generate`): `load_config` / `default_config` → `GenerateConfig` (TOML,
checked before any work), `run` → `GenerateResult`: training with checkpoints and exact resume,
held-out metrics, figures, metrics.json and report.md.
"""

from . import datasets, metrics
from ._characteristics import RK4, Characteristics, characteristics
from ._errors import GenerativeError
from ._fit import GenerativeFit, evaluate, fit
from ._potential import Potential
from ._problems import CNF, AbstractProblem, Flow, inverse, inverse_error, log_density, sample, transport
from ._jko import (
    KL,
    InteractionEnergy,
    JKOStep,
    PotentialEnergy,
    WassersteinGradientFlow,
    gaussian_jko_step,
    gradient_flow,
)
from ._transport import CrowdMotion, DynamicOT, Obstacle
from ._sde import VE, VP, AbstractSDE, SubVP
from ._score import SGM, AbstractScoreModel, ExactScore, GaussianScore, PotentialScore, ScoreNet, hjb_residual
from ._sgm import SGMFit, bits_per_dim, evaluate_sgm, fit_sgm, log_likelihood, reverse_trajectories, sample_ode, sample_sde
from ._sgm import nll as sgm_nll
from ._config import ConfigError, GenerateConfig, config_from_dict, default_config, load_config
from ._run import GenerateResult, run

__all__ = [
    "ConfigError",
    "GenerateConfig",
    "GenerateResult",
    "config_from_dict",
    "default_config",
    "load_config",
    "run",
    "AbstractSDE",
    "AbstractScoreModel",
    "ExactScore",
    "PotentialScore",
    "SGM",
    "SGMFit",
    "ScoreNet",
    "SubVP",
    "VE",
    "VP",
    "bits_per_dim",
    "evaluate_sgm",
    "fit_sgm",
    "GaussianScore",
    "hjb_residual",
    "log_likelihood",
    "reverse_trajectories",
    "sample_ode",
    "sample_sde",
    "sgm_nll",
    "AbstractProblem",
    "CNF",
    "Characteristics",
    "CrowdMotion",
    "DynamicOT",
    "Obstacle",
    "Flow",
    "GenerativeError",
    "GenerativeFit",
    "InteractionEnergy",
    "JKOStep",
    "KL",
    "Potential",
    "PotentialEnergy",
    "RK4",
    "characteristics",
    "datasets",
    "gaussian_jko_step",
    "gradient_flow",
    "evaluate",
    "fit",
    "inverse",
    "inverse_error",
    "log_density",
    "metrics",
    "sample",
    "transport",
    "WassersteinGradientFlow",
]
