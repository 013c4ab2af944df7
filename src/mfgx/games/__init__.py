"""The game zoo: each game is a constructor returning a `mfgx.FiniteGame`."""

from ._build import Constant, deterministic_moves, grid_kernel
from ._grid import crowd_grid
from ._epidemic import CYBER_BASE, cybersecurity, lq_rates, sir
from ._classic import (
    beach_bar,
    crowd_ring,
    left_right,
    rock_paper_scissors,
    susceptible_infected,
    two_state_congestion,
)
from ._mfglib import (
    building_evacuation,
    conservative_treasure_hunting,
    crowd_motion,
    equilibrium_price,
    linear_quadratic,
    random_linear,
    mfglib_bar_path,
)

REGISTRY = {
    "building_evacuation": building_evacuation,
    "conservative_treasure_hunting": conservative_treasure_hunting,
    "crowd_motion": crowd_motion,
    "equilibrium_price": equilibrium_price,
    "linear_quadratic": linear_quadratic,
    "random_linear": random_linear,
    "beach_bar": beach_bar,
    "crowd_grid": crowd_grid,
    "crowd_ring": crowd_ring,
    "cybersecurity": cybersecurity,
    "sir": sir,
    "left_right": left_right,
    "lq_rates": lq_rates,
    "rock_paper_scissors": rock_paper_scissors,
    "susceptible_infected": susceptible_infected,
    "two_state_congestion": two_state_congestion,
}

__all__ = [
    "building_evacuation",
    "conservative_treasure_hunting",
    "crowd_motion",
    "equilibrium_price",
    "linear_quadratic",
    "random_linear",
    "mfglib_bar_path",
    "Constant",
    "REGISTRY",
    "beach_bar",
    "CYBER_BASE",
    "crowd_grid",
    "crowd_ring",
    "cybersecurity",
    "deterministic_moves",
    "grid_kernel",
    "left_right",
    "lq_rates",
    "rock_paper_scissors",
    "sir",
    "susceptible_infected",
    "two_state_congestion",
]
