"""mfgx: differentiable mean-field games in JAX.

The loop at the heart of mfgx: parameters θ → game(θ) → `solve` → equilibrium (μ*, π*, V*).
"""

from . import _config  # noqa: F401  (enables float64 unless MFGX_X64=0)
from . import games
from . import calibrate, finite
from .finite import *  # noqa: F403  (the public face of the engine: see mfgx.finite.__all__)

__version__ = "0.1.0"

__all__ = ["calibrate", "finite", "games", *finite.__all__]
