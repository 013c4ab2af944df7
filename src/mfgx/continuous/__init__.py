"""Continuous-state mean-field games.

- Linear-quadratic MFGs and mean-field control in closed form: `LQGame` (finite horizon,
  discounted or ergodic), `SystemicRisk` (Carmona–Fouque–Sun), solved by `Riccati` (Diffrax ODEs or
  the algebraic Riccati equation) into an `LQSolution`.
- Grid HJB–Fokker–Planck systems in 1-D and 2-D: `Grid`, `GridMFG` with costs (`Quadratic`,
  `MeanTracking`, `LogCongestion`, `CostFunction`, sums with ``+``), solved by `Picard` or
  `FictitiousPlay` with a monotone upwind scheme into a `GridSolution`.

One entry point: ``mfgx.continuous.solve(problem, solver)``.
"""

from ._errors import CFLError, ProblemError
from ._grid import (
    AbstractCost,
    CostFunction,
    Grid,
    GridMFG,
    LogCongestion,
    MeanTracking,
    Quadratic,
    SumCost,
    Zero,
)
from ._gridsolve import AbstractGridSolver, FictitiousPlay, GridSolution, Picard
from ._lq import LQGame, LQSolution, Riccati, SystemicRisk
from ._solve import solve

__all__ = [
    "AbstractCost",
    "AbstractGridSolver",
    "CFLError",
    "CostFunction",
    "FictitiousPlay",
    "Grid",
    "GridMFG",
    "GridSolution",
    "LQGame",
    "LQSolution",
    "LogCongestion",
    "MeanTracking",
    "Picard",
    "ProblemError",
    "Quadratic",
    "Riccati",
    "SumCost",
    "SystemicRisk",
    "Zero",
    "solve",
]
