"""Parameters evaluated on the equilibrium iterate: the path sits inside the game's functions.

Each function of the game, called with (t, m, θ, ...), is wrapped to call the original with
θ = to_params(γ(t_phys, m)[None]): a one-row path, which the zoo's games read at every time (see
`mfgx.games._epidemic.at`). The path's parameters then live inside the game, so the equilibrium
map Φ depends on them and the implicit adjoint differentiates them like any other game array.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from ..finite import ControlGame, DenseKernel, FiniteGame, NeighbourKernel, RateKernel
from ._errors import CalibrationError
from ._paths import AbstractPath


class _OnIterate(eqx.Module):
    """fn(t, m, θ, *rest) with θ from the path at (t, m); ``times`` maps a step index to time."""

    fn: Callable
    path: AbstractPath
    to_params: Callable
    times: Array | None

    def __call__(self, t, m, theta, *rest):
        phys = t if self.times is None else self.times[jnp.clip(jnp.asarray(t, int), 0, self.times.shape[0] - 1)]
        return self.fn(t, m, self.to_params(self.path(phys, m)[None]), *rest)


class _TerminalOnIterate(eqx.Module):
    fn: Callable
    path: AbstractPath
    to_params: Callable
    t_end: Array

    def __call__(self, m, theta):
        return self.fn(m, self.to_params(self.path(self.t_end, m)[None]))


def on_iterate(game, path: AbstractPath, to_params: Callable, times) -> ControlGame | FiniteGame:
    """The game whose θ at (t, m) is ``to_params(path(t, m)[None])``."""
    times = jnp.asarray(times)
    if isinstance(game, ControlGame):
        wrap = lambda f: _OnIterate(f, path, to_params, None)  # noqa: E731  (ControlGame passes physical t)
        return eqx.tree_at(
            lambda g: (g.running_cost, g.best_rates, g.terminal_cost),
            game,
            (wrap(game.running_cost), wrap(game.best_rates), _TerminalOnIterate(game.terminal_cost, path, to_params, times[-1])),
        )
    if isinstance(game, FiniteGame):
        if game.mean_field != "state":
            raise CalibrationError("parameters on the iterate need mean_field='state' (the path reads μ_t)")
        wrap = lambda f: _OnIterate(f, path, to_params, times)  # noqa: E731  (FiniteGame passes the index n)
        kernel = game.kernel
        if isinstance(kernel, RateKernel):
            kernel = eqx.tree_at(lambda k: k.rates, kernel, wrap(kernel.rates))
        elif isinstance(kernel, DenseKernel):
            kernel = eqx.tree_at(lambda k: k.fn, kernel, wrap(kernel.fn))
        elif isinstance(kernel, NeighbourKernel):
            if callable(kernel.weights):
                kernel = eqx.tree_at(lambda k: k.weights, kernel, wrap(kernel.weights))
        else:
            raise CalibrationError(f"parameters on the iterate are not supported for {type(kernel).__name__}")
        return eqx.tree_at(lambda g: (g.kernel, g.reward), game, (kernel, wrap(game.reward)))
    raise CalibrationError(f"expected a FiniteGame or ControlGame, got {type(game).__name__}")
