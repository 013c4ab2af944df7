"""The game zoo: each game is a constructor returning a `mfgx.FiniteGame`."""

from ._build import Constant, deterministic_moves, grid_kernel
from ._classic import (
    beach_bar,
    crowd_ring,
    left_right,
    rock_paper_scissors,
    susceptible_infected,
    two_state_congestion,
)

REGISTRY = {
    "beach_bar": beach_bar,
    "crowd_ring": crowd_ring,
    "left_right": left_right,
    "rock_paper_scissors": rock_paper_scissors,
    "susceptible_infected": susceptible_infected,
    "two_state_congestion": two_state_congestion,
}

__all__ = [
    "Constant",
    "REGISTRY",
    "beach_bar",
    "crowd_ring",
    "deterministic_moves",
    "grid_kernel",
    "left_right",
    "rock_paper_scissors",
    "susceptible_infected",
    "two_state_congestion",
]
