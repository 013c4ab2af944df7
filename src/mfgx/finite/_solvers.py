"""Equilibrium solvers. Each is an immutable module with ``init(game) -> state`` and
``step(game, state) -> (state, residual)``; `mfgx.solve` runs the loop inside JAX.

Fixed-point solvers (`FixedPoint`, `Softmax`) iterate on the mean-field flow and report the
fixed-point residual ‖Φ(m) − m‖_∞. Policy-space solvers (`FictitiousPlay`, `MirrorDescent`,
`PriorDescent`) report the exploitability of their current policy.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import numpy as np
import jax.numpy as jnp

from . import _stationary
from ._dynamics import best_response, propagate, score, uniform_policy
from ._game import FiniteGame


class AbstractSolver(eqx.Module):
    """A solver iterates ``step`` from ``init``; its solution is a fixed point m* = Φ(m*) of
    Φ(m) = m(propagate(respond(m))), which is what the implicit adjoint differentiates."""

    @abc.abstractmethod
    def init(self, game: FiniteGame):
        """The initial solver state."""

    @abc.abstractmethod
    def step(self, game: FiniteGame, state):
        """One iteration: ``(new state, residual)``."""

    @abc.abstractmethod
    def mean_field(self, game: FiniteGame, state):
        """The mean-field flow m of a solver state."""

    @abc.abstractmethod
    def policy(self, game: FiniteGame, state):
        """The policy of a solver state."""

    def regularisation(self) -> float | None:
        """The entropy temperature τ of the equilibrium the solver converges to (None: exact Nash)."""
        return None

    def prepare(self, game: FiniteGame) -> "AbstractSolver":
        """Called by `solve` with the game before compiling: raise on games the solver does not apply
        to, and return the solver to run (default: itself)."""
        return self

    def respond(self, game: FiniteGame, mf):
        """The best response that defines the solver's equilibrium map Φ: exact, or the softmax
        best response when the solver targets the τ-regularised equilibrium."""
        return best_response(game, mf, self.regularisation())[0]

    def solution_policy(self, game: FiniteGame, mf, state):
        """The policy reported at the solution, as a function of the (differentiable) root m*.
        Policy-space solvers return their iterate, which carries no gradient."""
        return jax.lax.stop_gradient(self.policy(game, state))


def _concrete(value):
    """``value`` as a float when it is a concrete scalar (Python, NumPy or JAX), else None (traced)."""
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        a = np.asarray(value)
    except Exception:  # noqa: BLE001
        return None
    return float(a) if a.size == 1 and np.issubdtype(a.dtype, np.number) else None


def _check_unit_interval(name, value, upper_open=True):
    v = _concrete(value)
    if v is not None and not (0 <= v < 1 if upper_open else 0 < v <= 1):
        raise ValueError(f"{name} must be in {'[0, 1)' if upper_open else '(0, 1]'}, got {value}")


def _check_positive(name, value):
    v = _concrete(value)
    if v is not None and not v > 0:
        raise ValueError(f"{name} must be positive, got {value}")


class _FlowFixedPoint(AbstractSolver):
    """Damped Picard on the mean-field flow: m ← (1 − λ) Φ(m) + λ m, Φ(m) = m(BR(m))."""

    def init(self, game):
        pi = uniform_policy(game)
        return game.mean_field_of(propagate(game, pi), pi)

    def step(self, game, mf):
        pi = self.respond(game, mf)
        new = game.mean_field_of(propagate(game, pi), pi)
        residual = jnp.max(jnp.abs(new - mf))
        return (1 - self.damping) * new + self.damping * mf, residual

    def mean_field(self, game, mf):
        return mf

    def policy(self, game, mf):
        return self.respond(game, mf)

    def solution_policy(self, game, mf, state):
        return self.respond(game, mf)


class FixedPoint(_FlowFixedPoint):
    r"""Damped fixed point (Picard) with the exact best response.

    m^{k+1} = (1 − λ) m(BR(m^k)) + λ m^k, λ = ``damping`` (0: pure fixed point). Exact best
    responses are bang-bang, so this cycles on games whose equilibrium is mixed; use `Softmax`,
    `FictitiousPlay` or `MirrorDescent` there.
    """

    damping: float = 0.0

    def __check_init__(self):
        _check_unit_interval("damping", self.damping)

class Softmax(_FlowFixedPoint):
    r"""Damped fixed point with the softmax (entropy-regularised, Boltzmann) best response.

    π = softmax(Q_soft / τ) with the soft Bellman recursion V = τ log Σ_a exp(Q/τ). Its fixed point
    is the equilibrium of the game regularised by τ·entropy; exploitability in the original game is
    O(τ). Smooth in m and θ, so gradients pass through the control.
    """

    temperature: float = 0.1
    damping: float = 0.0

    def __check_init__(self):
        _check_positive("temperature", self.temperature)
        _check_unit_interval("damping", self.damping)

    def regularisation(self):
        return self.temperature


class _PolicySolver(AbstractSolver):
    def init(self, game, policy=None):
        """The state at ``policy`` (default: uniform)."""
        pi = uniform_policy(game) if policy is None else policy
        return self._state(game, pi, score(game, pi, self.regularisation()), jnp.asarray(0))

    def _state(self, game, pi, sc, k):
        # v_star, v_pi: warm starts of the next step's inner loops (discounted games); ok: they converged
        return dict(pi=pi, k=k, **{n: sc[n] for n in ("mu", "mf", "br", "q_star", "q_pi", "v_star", "v_pi", "ok")})

    def policy(self, game, state):
        return state["pi"]

    def mean_field(self, game, state):
        return state["mf"]

    def step(self, game, state):
        pi = self._update(game, state)
        sc = score(game, pi, self.regularisation(), warm=state)
        return self._state(game, pi, sc, state["k"] + 1), sc["expl"]


class FictitiousPlay(_PolicySolver):
    r"""Fictitious play in policy space (the averaged policy induces the averaged flow).

    π_br = BR(m(π̄_k)), then with weight w_k (1/(k+2) by default, or a constant ``learning_rate``)
    π̄_{k+1}(a|x) = [(1−w) μ̄_k(x) π̄_k(a|x) + w μ_br(x) π_br(a|x)] / [(1−w) μ̄_k(x) + w μ_br(x)].
    A constant ``learning_rate`` is mfglib's damped fixed point (1: the pure fixed point).
    """

    learning_rate: float | None = None

    def __check_init__(self):
        if self.learning_rate is not None:
            _check_unit_interval("learning_rate", self.learning_rate, upper_open=False)

    def _update(self, game, state):
        k = state["k"]
        w = 1.0 / (k + 2.0) if self.learning_rate is None else self.learning_rate
        pi_br = state["br"]
        if getattr(game, "stationary", False):  # warm start at the current distribution
            mu_br = _stationary.stationary_distribution(game, pi_br[0], state["mu"][0])[0][None]
        else:
            mu_br = propagate(game, pi_br)
        a = (1 - w) * state["mu"][..., None]
        b = w * mu_br[..., None]
        num = a * state["pi"] + b * pi_br
        den = a + b
        mixed = (1 - w) * state["pi"] + w * pi_br  # where nobody is, any mixture is a valid policy
        return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), mixed)


class MirrorDescent(_PolicySolver):
    r"""Online mirror descent: y^{k+1} = y^k + α Q^{π_k}_{m(π_k)}, π_{k+1} = softmax(y^{k+1}).

    Converges to the Nash equilibrium of monotone games (Pérolat et al., 2022); its residual is the
    exploitability of π_k.

    With ``temperature=τ``: regularised mirror descent, y^{k+1} = (1 − ατ) y^k + α Q^{π_k}_τ with the
    soft Q-values of π_k (entropy bonus τ·H included). It converges linearly (rate ≈ 1 − ατ) to the
    equilibrium of the τ-entropy-regularised game, the same one as `Softmax(τ)`, including small τ
    where the damped fixed point cycles; its residual is the regularised exploitability, and
    gradients pass through the softmax response as for `Softmax`. Needs ατ < 1.
    """

    learning_rate: float = 1.0
    temperature: float | None = None

    def __check_init__(self):
        _check_positive("learning_rate", self.learning_rate)
        if self.temperature is not None:
            _check_positive("temperature", self.temperature)
            rate = self.learning_rate * self.temperature
            if _concrete(rate) is not None and not _concrete(rate) < 1:
                raise ValueError(f"learning_rate × temperature must be < 1, got {rate:g}")

    def regularisation(self):
        return self.temperature

    def init(self, game, policy=None):
        state = super().init(game, policy)
        state["y"] = jnp.zeros_like(state["pi"])  # from an initial policy too (as BenchMFG's OMD)
        return state

    def _logits(self, state):
        decay = 1.0 if self.temperature is None else 1.0 - self.learning_rate * self.temperature
        return decay * state["y"] + self.learning_rate * state["q_pi"]

    def _update(self, game, state):
        return jax.nn.softmax(self._logits(state), -1)

    def step(self, game, state):
        y = self._logits(state)
        new, res = super().step(game, state)
        new["y"] = y
        return new, res

    def solution_policy(self, game, mf, state):
        if self.temperature is None:
            return super().solution_policy(game, mf, state)
        return self.respond(game, mf)  # the softmax response to the root: differentiable in m* and θ


class PriorDescent(_PolicySolver):
    r"""Prior descent (mfglib): π_{k+1} ∝ q · exp(Q*_{m(π_k)} / η), with the prior q reset to the
    current policy every ``n_inner`` iterations (never if None: a fixed uniform prior)."""

    temperature: float = 1.0
    n_inner: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        _check_positive("temperature", self.temperature)
        if self.n_inner is not None and not (isinstance(self.n_inner, int) and self.n_inner >= 1):
            raise ValueError(f"n_inner must be a positive int or None, got {self.n_inner!r}")

    def init(self, game, policy=None):
        state = super().init(game, policy)
        state["prior"] = state["pi"]
        return state

    def _update(self, game, state):
        logits = jnp.log(state["prior"]) + state["q_star"] / self.temperature
        return jax.nn.softmax(logits, -1)

    def step(self, game, state):
        new, res = super().step(game, state)
        if self.n_inner is None:
            new["prior"] = state["prior"]
        else:
            reset = (new["k"] % self.n_inner) == 0
            new["prior"] = jnp.where(reset, new["pi"], state["prior"])
        return new, res
