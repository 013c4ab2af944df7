r"""Epidemic study: the SIR MFG with contact-factor control against the forward SIR ODE.

Both models share the time grid of the observations (Δt = one observation interval), the
positivity-preserving implicit scheme and the parameter network γ(t, z) = softplus(MLP(t/N, z))
of time and the observations' covariates z (e.g. school terms), and are fitted the same way:

- **baseline** (no game): S → I at rate β(t, z) μ(I), I → R at rate γ(t, z) — `games.sir(control=False)`;
  θ = {β = 10 γ₀, γ = γ₁}.
- **mfg**: agents choose their contact factor α ∈ {0, …, 1} against the cost (c_α/2)(1 − α)² + c_I 1[I]
  (softmax best response at temperature τ, so gradients pass through the control);
  θ = {β = 10 γ₀, γ = γ₁, c_I = 10 γ₂}: the cost of infection is learned too.

Only I is observed (the observations' mask); μ₀ keeps the observed I₀ and shares the rest between S
and R by learnable logits (initially 5 % susceptible, as for measles before vaccination).
"""

from __future__ import annotations

import jax
import numpy as np

from .. import calibrate, games
from ..calibrate import CalibrationModel, Neural
from ..data import DataError, Observations
from ..finite import FixedPoint, Softmax

BETA_SCALE, COST_SCALE = 10.0, 10.0


def _baseline_params(g):
    return {"beta": BETA_SCALE * g[:, 0], "gamma": g[:, 1]}


def _mfg_params(g):
    return {"beta": BETA_SCALE * g[:, 0], "gamma": g[:, 1], "c_infected": COST_SCALE * g[:, 2]}


def epidemic_models(
    observations: Observations,
    *,
    seed: int = 0,
    width: int = 8,
    depth: int = 1,
    n_alpha: int = 5,
    temperature: float = 0.05,
    damping: float = 0.5,
    susceptible: float = 0.05,
    init=(2.5, 1.0, 0.05),
    tol: float = 1e-9,
    max_steps: int = 300,
) -> dict[str, CalibrationModel]:
    """{"baseline": forward SIR ODE, "mfg": SIR MFG} on the grid of ``observations`` (see module
    docstring). ``init`` = (β/10, γ, c_I/10) per time unit at the start; ``susceptible``: the
    initial share of the unobserved mass in S."""
    N, S = observations.n_times, observations.n_states
    if S != 3:
        raise DataError(f"the epidemic study needs (S, I, R) observations, got {S} states {observations.labels}")
    if not 0 < susceptible < 1:
        raise DataError(f"susceptible must be in (0, 1), got {susceptible}")
    C = 0 if observations.covariates is None else observations.covariates.shape[-1]
    logits = np.log([susceptible, 1.0, 1.0 - susceptible])
    key = jax.random.PRNGKey(seed)
    models = {}
    for name, control, to_params, solver in (
        ("baseline", False, _baseline_params, FixedPoint(0.0)),  # one action: the response is exact
        ("mfg", True, _mfg_params, Softmax(temperature, damping)),
    ):
        p = 3 if control else 2
        game = games.sir(T=float(N - 1), n_points=N, n_alpha=n_alpha, scheme="implicit", control=control)
        path = Neural(width, depth, key, n_states=S, out_size=p, inputs="t", time_scale=float(N),
                      init=list(init[:p]), n_covariates=C)
        models[name] = CalibrationModel(game, path, to_params, solver, tol=tol, max_steps=max_steps, mu0_logits=logits)
    return models


def epidemic_parameters(model, observations: Observations) -> dict[str, np.ndarray]:
    """The fitted parameters on each trajectory: {"beta", "gamma"[, "c_infected"]}[K, N]."""
    g = np.asarray(calibrate.paths(model, observations))
    names = ("beta", "gamma", "c_infected")
    scale = (BETA_SCALE, 1.0, COST_SCALE)
    return {names[i]: scale[i] * g[..., i] for i in range(g.shape[-1])}
