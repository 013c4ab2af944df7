"""mfgx: differentiable mean-field games in JAX.

The loop at the heart of mfgx: parameters θ → game(θ) → `solve` → equilibrium (μ*, π*, V*).

Subpackages: `finite` (the finite-state engine, also at the top level), `games` (the zoo),
`calibrate` (fitting parameter paths to observed flows), `data` (observations and real data),
`continuous` (LQ closed forms, grid HJB–FP), `neural` (particle and neural SDE MFGs),
`generative` (generative flows as MFGs: OT-Flow potentials, CNFs), `studies` (real-data studies
and their configurations), `plot` (figures), `sweep` (sweeps of configurations over axes and seeds
as Ray tasks). The last six are imported on first use.
"""

import importlib

from . import _config  # noqa: F401  (enables float64 unless MFGX_X64=0)
from . import games
from . import calibrate, data, finite
from .finite import *  # noqa: F403  (the public face of the engine: see mfgx.finite.__all__)

__version__ = "0.1.0"

_LAZY = ("continuous", "generative", "neural", "plot", "studies", "sweep")

__all__ = ["calibrate", "continuous", "data", "finite", "games", "generative", "neural", "plot", "studies", "sweep", *finite.__all__]


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
