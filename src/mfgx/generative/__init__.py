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

Training: `fit(problem, data, key=…)` → `GenerativeFit` (checkpoints, exact resume, progress,
validation selection), `evaluate`.
"""

from ._characteristics import RK4, Characteristics, characteristics
from ._errors import GenerativeError
from ._fit import GenerativeFit, evaluate, fit
from ._potential import Potential
from ._problems import CNF, Flow, inverse, inverse_error, log_density, sample

__all__ = [
    "CNF",
    "Characteristics",
    "Flow",
    "GenerativeError",
    "GenerativeFit",
    "Potential",
    "RK4",
    "characteristics",
    "evaluate",
    "fit",
    "inverse",
    "inverse_error",
    "log_density",
    "sample",
]
