r"""The particle model: N interacting agents in ℝᵈ,

    dXᵢ = [ b(t, X, c_t)ᵢ + f_φ(t, X, c_t)ᵢ ] dt + σ(t, X)ᵢ · ( √(1−ρ²) dWᵢ + ρ dW⁰ ),   i = 1..N,

with b the mean-field (MFG) drift, f_φ a learned correction, c_t exogenous covariates (e.g.
school terms), σ the diffusion (diagonal, or a [d, m] matrix per particle), Wᵢ idiosyncratic and
W⁰ common Brownian motions (ρ = 0: idiosyncratic noise only; ρ = 1: common noise only). The
population enters b, f_φ and σ only through statistics of the empirical measure
(`mfgx.neural.Mean`, `Moments`, `Quantile`, `Histogram`, `KernelEmbedding`), except in
`PopulationMLP`, the paper's non-exchangeable baseline.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._errors import NeuralError
from ._features import AbstractFeature, check_features
from ._statistics import AbstractStatistic, Moments


def _empty(x):
    return jnp.zeros((0,), x.dtype)


# ---------------------------------------------------------------------------------------------
# mean-field drifts


class AbstractDrift(eqx.Module):
    r"""The mean-field part b(t, X, c) ∈ ℝ^{N×d} of the particle drift.

    ``stochastic = True`` marks drifts that draw randomness (e.g. El Farol's attendance): they
    receive a key that is a deterministic function of the simulation key and the grid step, so
    the randomness is threaded explicitly (never host randomness) and recomputed identically by
    checkpointed backprop. ``c`` holds the covariates at time t (empty when there are none).
    """

    stochastic: ClassVar[bool] = False

    @property
    def n_covariates(self) -> int:
        """The number C of covariates the drift reads (0: it ignores them)."""
        return 0

    @abc.abstractmethod
    def __call__(self, t, x: Float[Array, "N d"], key: PRNGKeyArray | None, c: Array | None = None) -> Float[Array, "N d"]:
        """The drift of every particle."""

    def at(self, t, x: Float[Array, "n d"], population: Float[Array, "N d"], c: Array | None = None) -> Float[Array, "n d"]:
        """The drift at query states x [n, d] of agents in ``population`` [N, d] (the queries do
        not enter the mean field). Deterministic per-agent drifts only."""
        raise NeuralError(f"{type(self).__name__} cannot be evaluated at arbitrary states")

    def bind(self, t0, x0: Float[Array, "N d"]) -> AbstractDrift:
        """The drift for a path started at t0 from the cloud x0 (called once per simulated path,
        before integrating). Myopic drifts return themselves; an anticipatory drift
        (`mfgx.neural.ValueDrift`) solves its game here."""
        return self


class Feedback(AbstractDrift):
    r"""A given feedback: bᵢ = α(t, xᵢ, S(μᴺ)) with α: (t, x[d], s[k]) ↦ ℝᵈ (or a scalar,
    broadcast to ℝᵈ).

    ``fn`` may be a function or an `eqx.Module` holding parameters (which `fit` then trains).
    With ``statistic=None``, s is empty. Use it for an equilibrium feedback, e.g. the LQ
    Riccati feedback α = −P(t)(x − m) + …, evaluated on the simulated empirical measure.
    """

    fn: Callable
    statistic: AbstractStatistic | None = None

    def __call__(self, t, x, key=None, c=None):
        return self.at(t, x, x, c)

    def at(self, t, x, population, c=None):
        population = jnp.asarray(population)
        x = jnp.asarray(x, population.dtype)
        s = _empty(x) if self.statistic is None else self.statistic(population)
        return jax.vmap(lambda xi: jnp.asarray(self.fn(t, xi, s), x.dtype) * jnp.ones_like(xi))(x)


class CostGradient(AbstractDrift):
    r"""The myopic best response of the paper: each agent descends its own cost,

        bᵢ = − ∂ℓ(t, xᵢ, s)/∂xᵢ |_{s = S(μᴺ)},

    the statistic s held fixed (one agent does not move the population). ``cost(t, x[d], s[k])``
    returns a scalar. This is a forward gradient flow of instantaneous costs, not a Nash
    equilibrium: use `Feedback` with an equilibrium feedback for the latter.
    """

    cost: Callable
    statistic: AbstractStatistic | None = None

    def __call__(self, t, x, key=None, c=None):
        return self.at(t, x, x, c)

    def at(self, t, x, population, c=None):
        population = jnp.asarray(population)
        x = jnp.asarray(x, population.dtype)
        s = _empty(x) if self.statistic is None else self.statistic(population)
        grad = jax.grad(lambda xi: jnp.asarray(self.cost(t, xi, s)).sum())
        return -jax.vmap(grad)(x)


# ---------------------------------------------------------------------------------------------
# learned corrections


class AbstractCorrection(eqx.Module):
    r"""A learned drift correction f_φ(t, X, c) ∈ ℝ^{N×d}."""

    @property
    def n_covariates(self) -> int:
        """The number C of covariates the correction reads (0: it ignores them)."""
        return getattr(getattr(self, "net", None), "covariates", 0)

    @abc.abstractmethod
    def __call__(self, t, x: Float[Array, "N d"], c: Array | None = None) -> Float[Array, "N d"]:
        """The correction for every particle."""

    def at(self, t, x: Float[Array, "n d"], population: Float[Array, "N d"], c: Array | None = None) -> Float[Array, "n d"]:
        r"""The learned term read back as a function of the state: f(t, x, μᴺ) for query states
        x [n, d] of agents in the population ``population`` [N, d] (the queries do not enter the
        mean field). Exchangeable corrections only."""
        raise NeuralError(f"{type(self).__name__} is not a per-agent term f(t, xᵢ, μ): it cannot be read at arbitrary states")


def zero_output(mlp: eqx.nn.MLP) -> eqx.nn.MLP:
    """``mlp`` with its last layer's weight and bias set to 0: the network outputs 0 everywhere at
    initialisation (a correction that starts as "no correction"), while its hidden layers keep their
    random initialisation, so the first gradient step moves the last layer and later ones the rest."""
    last = mlp.layers[-1]
    zeros = (jnp.zeros_like(last.weight), None if last.bias is None else jnp.zeros_like(last.bias))
    return eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp, zeros, is_leaf=lambda v: v is None)


def _normaliser(n_in, loc, scale, what):
    loc = np.zeros(n_in) if loc is None else np.broadcast_to(np.asarray(loc, float), (n_in,))
    scale = np.ones(n_in) if scale is None else np.broadcast_to(np.asarray(scale, float), (n_in,))
    if not (np.all(np.isfinite(loc)) and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise NeuralError(f"{what}: input loc must be finite and scale positive, got loc={loc}, scale={scale}")
    return tuple(loc.tolist()), tuple(scale.tolist())


def _covariates(c, n, x, what):
    """The covariate vector c[n] (checked at trace time), or an empty vector when n = 0."""
    if n == 0:
        return _empty(x)
    if c is None or jnp.shape(c) != (n,):
        got = None if c is None else jnp.shape(c)
        raise NeuralError(f"{what} was built for {n} covariates, got {got}: pass covariates with the data")
    return jnp.asarray(c, x.dtype)


class _AgentNet(eqx.Module):
    """MLP((zᵢ − loc)/scale) with zᵢ = (xᵢ, t, S(μᴺ), φ(t, xᵢ, μᴺ), c) (t, S, φ and c optional), per agent."""

    mlp: eqx.nn.MLP
    statistic: AbstractStatistic | None
    time: bool = eqx.field(static=True)
    covariates: int = eqx.field(static=True)
    loc: tuple[float, ...] = eqx.field(static=True)
    scale: tuple[float, ...] = eqx.field(static=True)
    features: tuple[AbstractFeature, ...] = ()

    def __init__(self, d, out, statistic, time, covariates, width, depth, activation, loc, scale, key, what, features=(), zero=False):
        if not (isinstance(d, (int, np.integer)) and d >= 1):
            raise NeuralError(f"{what}: d must be a positive int, got {d!r}")
        if not (isinstance(covariates, (int, np.integer)) and covariates >= 0):
            raise NeuralError(f"{what}: covariates is the number of covariate inputs (int >= 0), got {covariates!r}")
        if statistic is not None and not isinstance(statistic, AbstractStatistic):
            raise NeuralError(f"{what}: statistic must be a mfgx.neural statistic or None, got {type(statistic).__name__}")
        self.features = check_features(features, what)
        n_in = int(d) + int(bool(time)) + (0 if statistic is None else statistic.size(int(d))) + int(covariates)
        n_in += sum(f.size(int(d)) for f in self.features)
        self.mlp = eqx.nn.MLP(n_in, out, width, depth, activation=activation, key=key)
        if zero:
            self.mlp = zero_output(self.mlp)
        self.statistic, self.time, self.covariates = statistic, bool(time), int(covariates)
        self.loc, self.scale = _normaliser(n_in, loc, scale, what)

    def __call__(self, t, x, c):
        return self.local(t, x, _empty(x) if self.statistic is None else self.statistic(x), c, x)

    def local(self, t, x, s, c, population=None):
        """The per-agent map at query states x [n, d] with given statistics s [k] of the population
        (and the ``population`` [N, d] itself when the network reads per-agent features)."""
        if self.statistic is None:
            s = _empty(x)
        else:
            s = jnp.asarray(s, x.dtype)
            if s.shape != (self.statistic.size(x.shape[-1]),):
                raise NeuralError(f"the statistic {type(self.statistic).__name__} has {self.statistic.size(x.shape[-1])} entries, got s of shape {s.shape}")
        tt = jnp.reshape(jnp.asarray(t, x.dtype), (1,)) if self.time else _empty(x)
        cc = _covariates(c, self.covariates, x, "this network")
        if self.features and population is None:
            raise NeuralError("this network reads per-agent features of the population: read it with .at(t, x, population)")
        phi = jnp.concatenate([f(t, x, population, c) for f in self.features], axis=1) if self.features else x[:, :0]
        loc, scale = jnp.asarray(self.loc, x.dtype), jnp.asarray(self.scale, x.dtype)
        return jax.vmap(lambda xi, fi: self.mlp((jnp.concatenate([xi, tt, s, fi, cc]) - loc) / scale))(x, phi)


class AgentMLP(AbstractCorrection):
    r"""One MLP shared by all agents (exchangeable): f_φ(t, X, c)ᵢ = κ · MLP((zᵢ − loc)/scale),
    zᵢ = (xᵢ, t, S(μᴺ), φ(t, xᵢ, μᴺ), c) (t, S, φ and c optional).

    - ``d``: the state dimension; ``statistic``: the population features S (default `Moments`:
      mean and variance; None for none); ``time``: whether t is an input; ``covariates``: the
      number C of covariates c_t (e.g. intervention indicators) fed to the network.
    - ``features``: per-agent features φ of the mean field (`LocalDensity`: the crowding at the
      agent; `DriftFeature`: the game's drift at the agent), a tuple (default none).
    - ``loc``/``scale``: fixed normalisation of the input vector (x, t, s, φ, c) (scalars or one per
      entry); ``out_scale`` κ multiplies the output (a small κ starts near the pure MFG drift).
    - ``zero_init``: start exactly at f ≡ 0 (last layer zero, `zero_output`): the initial model is
      the MFG without correction, which `fit` with a validation set then keeps unless a trained
      correction beats it on the validation data (the negative control of issue 13).
    """

    net: _AgentNet
    out_scale: float = eqx.field(static=True)

    def __init__(
        self,
        d: int,
        *,
        statistic: AbstractStatistic | None = Moments(),
        time: bool = True,
        covariates: int = 0,
        width: int = 32,
        depth: int = 2,
        activation: Callable = jax.nn.tanh,
        loc=None,
        scale=None,
        out_scale: float = 1.0,
        features=(),
        zero_init: bool = False,
        key: PRNGKeyArray,
    ):
        self.net = _AgentNet(d, d, statistic, time, covariates, width, depth, activation, loc, scale, key, "AgentMLP", features,
                             zero=zero_init)
        self.out_scale = float(out_scale)

    def __call__(self, t, x, c=None):
        return self.out_scale * self.net(t, x, c)

    def term(self, t, x: Float[Array, "n d"], s: Float[Array, " k"], c: Array | None = None) -> Float[Array, "n d"]:
        r"""The learned drift as a function (t, x, s) ↦ κ · MLP((x, t, s, c)): at query states
        x [n, d] with the population statistics s = S(μ) [k] given (ignored without a statistic).
        A network with per-agent ``features`` needs the population: use `at`."""
        x = jnp.asarray(x)
        return self.out_scale * self.net.local(t, x, s, c)

    def at(self, t, x, population, c=None):
        population = jnp.asarray(population)
        s = _empty(population) if self.net.statistic is None else self.net.statistic(population)
        return self.out_scale * self.net.local(t, jnp.asarray(x, population.dtype), s, c, population)


class PopulationMLP(AbstractCorrection):
    r"""The reference implementation's correction: one MLP on the whole population vector,
    f_θ(X) = κ · MLP((vec X − loc)/scale) ∈ ℝ^{N·d} (optionally with t appended).

    Not exchangeable (agent i is output i): kept as the paper's baseline; prefer `AgentMLP`.
    """

    mlp: eqx.nn.MLP
    n: int = eqx.field(static=True)
    d: int = eqx.field(static=True)
    time: bool = eqx.field(static=True)
    loc: tuple[float, ...] = eqx.field(static=True)
    scale: tuple[float, ...] = eqx.field(static=True)
    out_scale: float = eqx.field(static=True)

    def __init__(
        self,
        n: int,
        d: int = 1,
        *,
        time: bool = False,
        width: int = 8,
        depth: int = 3,
        activation: Callable = jax.nn.leaky_relu,
        loc=None,
        scale=None,
        out_scale: float = 1.0,
        key: PRNGKeyArray,
    ):
        if not (isinstance(n, (int, np.integer)) and n >= 1 and isinstance(d, (int, np.integer)) and d >= 1):
            raise NeuralError(f"PopulationMLP: n and d must be positive ints, got n={n!r}, d={d!r}")
        n_in = n * d + int(bool(time))
        self.mlp = eqx.nn.MLP(n_in, n * d, width, depth, activation=activation, key=key)
        self.n, self.d, self.time = int(n), int(d), bool(time)
        self.loc, self.scale = _normaliser(n_in, loc, scale, "PopulationMLP")
        self.out_scale = float(out_scale)

    def __call__(self, t, x, c=None):
        z = x.reshape(-1)
        if self.time:
            z = jnp.concatenate([z, jnp.reshape(jnp.asarray(t, x.dtype), (1,))])
        z = (z - jnp.asarray(self.loc, x.dtype)) / jnp.asarray(self.scale, x.dtype)
        return self.out_scale * self.mlp(z).reshape(x.shape)


def _edges(edges, d, what):
    e = tuple((int(a), int(b)) for a, b in edges)
    if not e or any(not (0 <= a < d and 0 <= b < d and a != b) for a, b in e):
        raise NeuralError(f"{what}: edges must be pairs (from, to) of distinct compartments in 0..{d - 1}, got {edges!r}")
    return e


def _flux_matrix(edges, d, dtype):
    """D[e] = e_to − e_from: the change of the state per unit flux on each edge, shape [E, d]."""
    m = np.zeros((len(edges), d))
    for k, (a, b) in enumerate(edges):
        m[k, a], m[k, b] = -1.0, 1.0
    return jnp.asarray(m, dtype)


class FluxCorrection(AbstractCorrection):
    r"""A learned generator term for compartmental states x ∈ Δ_d (e.g. S, I, R shares):

        f_φ(t, X, c)ᵢ = Σ_e κ · MLP_e(zᵢ) · x_{i,a_e} · x_{i,b_e} · (e_{b_e} − e_{a_e}),

    a signed mass-action flux on each edge a → b (``edges``), with zᵢ as in `AgentMLP`. The
    flux conserves total mass exactly and vanishes when either compartment is empty, so the
    simplex is invariant in continuous time: for SIR, the edge S → I is a learned modulation of
    transmission (ΔβSI). ``scale``/``loc`` normalise the network inputs; ``zero_init`` starts at
    no flux (as in `AgentMLP`).
    """

    net: _AgentNet
    edges: tuple[tuple[int, int], ...] = eqx.field(static=True)
    out_scale: float = eqx.field(static=True)

    def __init__(
        self,
        d: int,
        edges: Sequence[tuple[int, int]],
        *,
        statistic: AbstractStatistic | None = None,
        time: bool = False,
        covariates: int = 0,
        width: int = 16,
        depth: int = 2,
        activation: Callable = jax.nn.tanh,
        loc=None,
        scale=None,
        out_scale: float = 1.0,
        zero_init: bool = False,
        key: PRNGKeyArray,
    ):
        self.edges = _edges(edges, d, "FluxCorrection")
        self.net = _AgentNet(d, len(self.edges), statistic, time, covariates, width, depth, activation, loc, scale, key, "FluxCorrection",
                             zero=zero_init)
        self.out_scale = float(out_scale)

    def __call__(self, t, x, c=None):
        return self._flux(x, self.out_scale * self.net(t, x, c))

    def at(self, t, x, population, c=None):
        population = jnp.asarray(population)
        x = jnp.asarray(x, population.dtype)
        s = _empty(x) if self.net.statistic is None else self.net.statistic(population)
        return self._flux(x, self.out_scale * self.net.local(t, x, s, c))

    def _flux(self, x, rates):
        """Σ_e rates_e · x_a x_b · (e_b − e_a) for rates [n, E] at states x [n, d]."""
        a = jnp.asarray([e[0] for e in self.edges])
        b = jnp.asarray([e[1] for e in self.edges])
        return (rates * x[:, a] * x[:, b]) @ _flux_matrix(self.edges, x.shape[1], x.dtype)


# ---------------------------------------------------------------------------------------------
# diffusions


class AbstractDiffusion(eqx.Module):
    r"""The diffusion σ(t, X): diagonal (an array broadcastable to [N, d], multiplying dWᵢ ∈ ℝᵈ
    entrywise) when ``noise_dim`` is None, else a matrix [N, d, m] acting on dWᵢ ∈ ℝᵐ.

    ``additive = True`` when σ does not depend on X (additive noise: Itô = Stratonovich, and the
    SRK solvers `diffrax.SRA1`/`ShARK` apply).
    """

    additive: ClassVar[bool] = True

    @property
    def noise_dim(self) -> int | None:
        """m, the dimension of each particle's Brownian motion, or None for diagonal noise (m = d)."""
        return None

    @abc.abstractmethod
    def __call__(self, t, x: Float[Array, "N d"]) -> Array:
        """σ for every particle: broadcastable to x's shape, or [N, d, m]."""


class ConstantDiffusion(AbstractDiffusion):
    r"""σ > 0 constant: a scalar or one per coordinate [d]. Stored as log σ, so a trained σ
    stays positive (train it by leaving the diffusion in `fit`'s ``trainable``)."""

    log_sigma: Array

    def __init__(self, sigma):
        s = np.asarray(sigma, dtype=float)
        if s.ndim > 1 or not np.all(np.isfinite(s)) or not np.all(s > 0):
            raise NeuralError(f"ConstantDiffusion: sigma must be a positive finite scalar or [d] vector, got {sigma!r}")
        self.log_sigma = jnp.log(jnp.asarray(s))

    @property
    def sigma(self) -> Array:
        return jnp.exp(self.log_sigma)

    def __call__(self, t, x):
        return jnp.exp(self.log_sigma).astype(x.dtype)


class AgentDiffusion(AbstractDiffusion):
    r"""A learned diagonal diffusion σ(t, X)ᵢ = floor + softplus(MLP(xᵢ, t, S(μᴺ))) ∈ ℝᵈ
    (multiplicative noise: Euler–Maruyama for Itô, `diffrax.Heun` for Stratonovich)."""

    additive: ClassVar[bool] = False
    net: AgentMLP
    floor: float = eqx.field(static=True)

    def __init__(self, d: int, *, floor: float = 1e-3, key: PRNGKeyArray, **mlp_kwargs):
        if not floor >= 0:
            raise NeuralError(f"AgentDiffusion: floor must be >= 0, got {floor}")
        if mlp_kwargs.get("covariates", 0):
            raise NeuralError("AgentDiffusion: the diffusion does not see covariates")
        self.net = AgentMLP(d, key=key, **mlp_kwargs)
        self.floor = float(floor)

    def __call__(self, t, x):
        return self.floor + jax.nn.softplus(self.net(t, x))


class FluxDiffusion(AbstractDiffusion):
    r"""Mass-action noise on the edges of a compartmental model (one Brownian motion per edge):

        σ(t, X)ᵢ dWᵢ = Σ_e σ_e · x_{i,a_e} x_{i,b_e} · (e_{b_e} − e_{a_e}) dW_{i,e},

    e.g. environmental noise on SIR transmission (σ S I dW on S → I). It conserves total mass
    and vanishes on the faces of the simplex. σ_e > 0 are stored as logs (trainable)."""

    additive: ClassVar[bool] = False
    log_sigma: Array
    edges: tuple[tuple[int, int], ...] = eqx.field(static=True)
    d: int = eqx.field(static=True)

    def __init__(self, d: int, edges: Sequence[tuple[int, int]], sigma):
        self.edges = _edges(edges, d, "FluxDiffusion")
        s = np.broadcast_to(np.asarray(sigma, dtype=float), (len(self.edges),))
        if not (np.all(np.isfinite(s)) and np.all(s > 0)):
            raise NeuralError(f"FluxDiffusion: sigma must be positive and finite (one per edge), got {sigma!r}")
        self.log_sigma, self.d = jnp.log(jnp.asarray(s)), int(d)

    @property
    def noise_dim(self) -> int:
        return len(self.edges)

    def __call__(self, t, x):
        a = jnp.asarray([e[0] for e in self.edges])
        b = jnp.asarray([e[1] for e in self.edges])
        amp = jnp.exp(self.log_sigma).astype(x.dtype) * x[:, a] * x[:, b]  # [N, E]
        return amp[:, None, :] * _flux_matrix(self.edges, x.shape[1], x.dtype).T[None]  # [N, d, E]


# ---------------------------------------------------------------------------------------------
# the particle SDE


class ParticleSDE(eqx.Module):
    r"""N interacting particles, dXᵢ = [b(t, X, c)ᵢ + f_φ(t, X, c)ᵢ] dt + σ(t, X)ᵢ · (√(1−ρ²) dWᵢ + ρ dW⁰).

    - ``drift``: the mean-field drift b (`CostGradient`, `Feedback`, a game's drift) or None.
    - ``correction``: the learned f_φ (`AgentMLP`, `PopulationMLP`, `FluxCorrection`) or None.
    - ``diffusion``: σ (`ConstantDiffusion`, `AgentDiffusion`, `FluxDiffusion`) or None (an ODE).
    - ``common_noise``: ρ ∈ [0, 1], the weight of the common Brownian motion W⁰.
    - ``initial``: None, or a (possibly learned) map x0 ↦ X(t₀) applied to the given initial
      cloud (e.g. an unknown susceptible share, `mfgx.neural.SusceptibleShare`).
    - ``clip``: (lo, hi) applied to the *saved* states (El Farol's probabilities), or None.

    Simulate with `mfgx.neural.simulate`; fit with `mfgx.neural.fit`.
    """

    drift: AbstractDrift | None = None
    correction: AbstractCorrection | None = None
    diffusion: AbstractDiffusion | None = None
    common_noise: float = eqx.field(static=True, default=0.0)
    initial: Callable | None = None
    clip: tuple[float, float] | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.drift is not None and not isinstance(self.drift, AbstractDrift):
            raise NeuralError(f"drift must be an AbstractDrift (e.g. CostGradient, Feedback), got {type(self.drift).__name__}")
        if self.correction is not None and not isinstance(self.correction, AbstractCorrection):
            raise NeuralError(f"correction must be an AbstractCorrection (e.g. AgentMLP), got {type(self.correction).__name__}")
        if self.diffusion is not None and not isinstance(self.diffusion, AbstractDiffusion):
            raise NeuralError(f"diffusion must be an AbstractDiffusion (e.g. ConstantDiffusion), got {type(self.diffusion).__name__}")
        if not (isinstance(self.common_noise, (int, float)) and 0.0 <= self.common_noise <= 1.0):
            raise NeuralError(f"common_noise ρ must be a number in [0, 1], got {self.common_noise!r}")
        if self.initial is not None and not callable(self.initial):
            raise NeuralError(f"initial must be a callable x0 -> x0, got {type(self.initial).__name__}")
        if self.clip is not None and not (len(self.clip) == 2 and self.clip[0] < self.clip[1]):
            raise NeuralError(f"clip must be (lo, hi) with lo < hi, got {self.clip!r}")

    @property
    def stochastic(self) -> bool:
        """Whether a simulation needs a key (noise, or a drift that draws randomness)."""
        return self.diffusion is not None or (self.drift is not None and self.drift.stochastic)

    def drift_field(self, t, x, key=None, c=None) -> Float[Array, "N d"]:
        r"""b(t, X, c) + f_φ(t, X, c)."""
        out = jnp.zeros_like(x)
        if self.drift is not None:
            out = out + self.drift(t, x, key, c)
        if self.correction is not None:
            out = out + self.correction(t, x, c)
        return out

    def noise_weights(self) -> tuple[float, float]:
        """(√(1−ρ²), ρ): the weights of the idiosyncratic and the common Brownian motion."""
        rho = float(self.common_noise)
        return math.sqrt(max(0.0, 1.0 - rho * rho)), rho
