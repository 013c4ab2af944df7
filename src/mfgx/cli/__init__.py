"""The ``mfgx`` command line (Typer + Rich): ``mfgx solve GAME ...``, ``mfgx calibrate --config FILE`` and ``mfgx demo``.

Installed as the ``mfgx`` script; also runnable as ``python -m mfgx.cli``.
"""

from ._app import app, main, make_game, make_solver, run_solver

__all__ = ["app", "main", "make_game", "make_solver", "run_solver"]
