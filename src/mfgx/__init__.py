"""mfgx: differentiable mean-field games in JAX.

The loop at the heart of mfgx: parameters θ → game(θ) → `solve` → equilibrium (μ*, π*, V*).
"""

from . import _config  # noqa: F401  (enables float64 unless MFGX_X64=0)
from . import games
from .finite import (
    ControlGame,
    AbstractAdjoint,
    ImplicitAdjoint,
    UnrolledAdjoint,
    fixed_point_map,
    AbstractKernel,
    AbstractSolver,
    ConvergenceWarning,
    NonSmoothWarning,
    DenseKernel,
    Equilibrium,
    equilibrium_from_state,
    FictitiousPlay,
    FiniteGame,
    FixedPoint,
    GameError,
    MirrorDescent,
    NeighbourKernel,
    PriorDescent,
    RateKernel,
    Softmax,
    best_response,
    evaluate,
    exploitability,
    propagate,
    rate_game,
    solve,
    uniform_policy,
)

__version__ = "0.1.0"

__all__ = [
    "ControlGame",
    "AbstractAdjoint",
    "ImplicitAdjoint",
    "UnrolledAdjoint",
    "fixed_point_map",
    "AbstractKernel",
    "AbstractSolver",
    "ConvergenceWarning",
    "NonSmoothWarning",
    "DenseKernel",
    "Equilibrium",
    "equilibrium_from_state",
    "FictitiousPlay",
    "FiniteGame",
    "FixedPoint",
    "GameError",
    "MirrorDescent",
    "NeighbourKernel",
    "PriorDescent",
    "RateKernel",
    "Softmax",
    "best_response",
    "evaluate",
    "exploitability",
    "games",
    "propagate",
    "rate_game",
    "solve",
    "uniform_policy",
]
