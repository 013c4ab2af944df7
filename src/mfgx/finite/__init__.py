"""Finite-state mean-field games: games, dynamics, solvers and `solve`."""

from ._adjoint import AbstractAdjoint, ImplicitAdjoint, UnrolledAdjoint
from ._control import ControlGame, individual_value, social_cost
from ._exact import ExactNash
from ._dynamics import best_response, evaluate, exploitability, propagate, uniform_policy
from ._stationary import benchmfg_exploitability
from ._game import FiniteGame, rate_game
from ._neumann import Neumann
from ._precision import PrecisionWarning
from ._kernels import AbstractKernel, DenseKernel, NeighbourKernel, RateKernel
from ._solve import (
    ConvergenceWarning,
    Equilibrium,
    NonSmoothWarning,
    equilibrium_from_state,
    fixed_point_map,
    solve,
)
from ._solvers import (
    AbstractSolver,
    FictitiousPlay,
    FixedPoint,
    MirrorDescent,
    PriorDescent,
    Softmax,
)
from ._validate import GameError

__all__ = [
    "ControlGame",
    "individual_value",
    "social_cost",
    "AbstractAdjoint",
    "ImplicitAdjoint",
    "UnrolledAdjoint",
    "Neumann",
    "fixed_point_map",
    "AbstractKernel",
    "AbstractSolver",
    "ConvergenceWarning",
    "NonSmoothWarning",
    "PrecisionWarning",
    "DenseKernel",
    "Equilibrium",
    "ExactNash",
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
    "benchmfg_exploitability",
    "best_response",
    "evaluate",
    "exploitability",
    "propagate",
    "rate_game",
    "solve",
    "uniform_policy",
]
