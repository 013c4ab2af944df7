r"""COVID first wave: SIR with and without behaviour, fitted the same way to daily confirmed cases.

Each country c has an *effective population* P_c (population × reporting, unknown: the data carry no
population sizes, so P_c is fitted and every compartment is a fraction of it), a **constant**
transmission rate β_c and N0_c infected at day 0; recovery γ is fixed (1/7 per day). Days t = 0, 1, …
with a positivity-preserving step (Δt = 1 day):

    p_t(α) = 1 − exp(−β α I_t),   q = 1 − exp(−γ),
    new_t = S_t Σ_α π_t(α) p_t(α),  S_{t+1} = S_t − new_t,  I_{t+1} = (1 − q) I_t + new_t,
    reported new cases on day t ~ NegBin(mean P_c new_t, size k)        (k shared per model).

Susceptibles choose a contact factor α ∈ {0, 1/(A−1), …, 1} against the cost (c_α/2)(1 − α)² per day
(c_α = 1) and c_I per day infected, with a softmax (entropy-regularised) response at temperature τ:

- ``sir``: α ≡ 1, no behaviour (3 parameters per country: β, N0, P);
- ``sir_free_beta``: α ≡ 1 and β_c(t) free per calendar week (the curve fitter; the last fitted
  week's β is carried into the forecast);
- ``mfg`` (anticipatory): π_t = softmax(−Q_t/τ) with the HJB of the S agent
      V_I = c_I + (1 − q) V_I  (so V_I = c_I/q),   Q_t(α) = (c_α/2)(1−α)² + p_t(α) V_I + (1 − p_t(α)) V_S(t+1),
      V_S(t) = −τ log Σ_α exp(−Q_t(α)/τ) − b,   V_S(H) = 0,
  values relative to an agent out of reach of infection (R), whose daily value is the entropy-regularised
  b = −τ log Σ_α exp(−(c_α/2)(1−α)²/τ) (I and R agents choose contact too, without consequence for
  themselves; without this shift, infection would "cost" the loss of future entropy bonuses);
  each day against that day's prevalence I_t (which agents observe) and the continuation value
  V_S(t+1) (which they anticipate). The Nash equilibrium is the fixed point V = Ψ(V): the values the
  agents anticipate are those of the flow their responses produce. Iterating on V (damped Picard,
  `optimistix.fixed_point`, implicit adjoint by BiCGStab) rather than on the prevalence path keeps the
  strong negative feedback of today's prevalence inside the forward pass, where it is exact; the
  prevalence iteration oscillates once c_I is large;
- ``mfg_myopic`` (reactive): the same response with V_S ≡ 0, i.e. Q_t(α) = (c_α/2)(1−α)² + p_t(α) c_I/q:
  today's prevalence only, no anticipation of future risk, no fixed point (the first Picard iterate).

The MFGs add one shared parameter, c_I (log-parametrised), to the baseline's. The temperature-only
response (c_I = 0) is the constant π⁰ ∝ exp(−(c_α/2)(1−α)²/τ), absorbed into β; what the equilibrium
does beyond it is the strategic part. The horizon runs ``extra_days`` past the data so that agents
near the last observed day still look ahead.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optax
import optimistix as optx
from jaxtyping import Array, Float

MODELS = ("sir", "sir_free_beta", "mfg", "mfg_myopic")
LABELS = {
    "sir": "(a) SIR, no behaviour",
    "sir_free_beta": "(b) SIR, free β(t) (curve fitter)",
    "mfg": "(c) SIR MFG, anticipatory (HJB)",
    "mfg_myopic": "(d) SIR MFG, myopic (reactive)",
}


@dataclasses.dataclass(frozen=True)
class CovidModel:
    """Settings shared by the four models (see the module docstring)."""

    gamma: float = 1.0 / 7.0
    n_alpha: int = 11
    c_alpha: float = 1.0
    temperature: float = 0.05
    damping: float = 0.5
    extra_days: int = 28
    tol: float = 1e-6
    max_steps: int = 500

    def __post_init__(self):
        if not (0 < self.gamma < 5 and self.temperature > 0 and 0 <= self.damping < 1 and self.n_alpha >= 2
                and self.extra_days >= 0 and self.c_alpha > 0 and self.tol > 0 and self.max_steps >= 1):
            raise ValueError(f"invalid COVID model settings: {self}")

    @property
    def alphas(self):
        return jnp.linspace(0.0, 1.0, self.n_alpha)

    def effort(self):
        return 0.5 * self.c_alpha * (1.0 - self.alphas) ** 2

    def temperature_only(self) -> float:
        """Mean contact factor of the response without any infection incentive (c_I = 0)."""
        w = jax.nn.softmax(-self.effort() / self.temperature)
        return float(jnp.sum(w * self.alphas))


def n_country_params(kind: str, n_weeks: int) -> int:
    return n_weeks + 2 if kind == "sir_free_beta" else 3


def unpack(kind: str, u, week_index):
    """(β_t[H], N0, P) of one country from its unconstrained vector ``u`` (β per day ``week_index[H]``)."""
    if kind == "sir_free_beta":
        beta = jnp.exp(u[:-2])[week_index]
    else:
        beta = jnp.full(week_index.shape, jnp.exp(u[0]))
    n0 = jnp.exp(u[-2])
    i0 = jax.nn.sigmoid(-u[-1])  # N0 / P
    return beta, n0, n0 / i0, i0


def _forward(beta, i0, pol, alphas, q):
    """Daily flow under policies pol[H, A]: (new[H], I[H]) as fractions of P."""

    def step(carry, xs):
        s, i = carry
        b, p = xs
        new = s * jnp.sum(p * -jnp.expm1(-b * alphas * i))
        return (s - new, (1 - q) * i + new), (new, i)

    _, (new, prev) = jax.lax.scan(step, (1.0 - i0, i0), (beta, pol))
    return new, prev


def _continuation(beta, prev, c_i, m: CovidModel):
    """The anticipatory S agent's continuation values V_S(t+1), t < H, by the backward HJB along the
    prevalence path prev[H] (entropy-regularised, relative to R: see the module docstring)."""
    v_i = c_i / -jnp.expm1(-m.gamma)
    alphas, effort = m.alphas, m.effort()
    bonus = -m.temperature * jax.nn.logsumexp(-effort / m.temperature)  # every agent's daily value without risk

    def step(v_next, xs):
        b, i = xs
        p = -jnp.expm1(-b * alphas * i)
        qa = effort + p * v_i + (1 - p) * v_next
        return -m.temperature * jax.nn.logsumexp(-qa / m.temperature) - bonus, v_next

    _, v_next = jax.lax.scan(step, jnp.zeros(()), (beta, prev), reverse=True)
    return v_next


def _respond(beta, i0, c_i, v_next, m: CovidModel):
    """The flow when susceptibles respond each day to that day's prevalence I_t and to the continuation
    values v_next[H] (V_S(t+1); 0 for the myopic agent): (new[H], I[H], policies[H, A])."""
    q = -jnp.expm1(-m.gamma)
    v_i = c_i / q
    alphas, effort = m.alphas, m.effort()

    def step(carry, xs):
        s, i = carry
        b, v = xs
        p = -jnp.expm1(-b * alphas * i)
        pol = jax.nn.softmax(-(effort + p * v_i + (1 - p) * v) / m.temperature)
        new = s * jnp.sum(pol * p)
        return (s - new, (1 - q) * i + new), (new, i, pol)

    _, (new, prev, pol) = jax.lax.scan(step, (1.0 - i0, i0), (beta, v_next))
    return new, prev, pol


# Matrix-free adjoint: BiCGStab on (I − ∂Φ)ᵀ, never a dense Jacobian of the H-day map (as precise as
# GMRES here and compiles faster).
_ADJOINT = optx.ImplicitAdjoint(lx.BiCGStab(rtol=1e-6, atol=1e-10, max_steps=400))


class Path(eqx.Module):
    """One country's simulated path: reported-case means, prevalence, policy, solver status."""

    mean: Float[Array, " H"]
    prevalence: Float[Array, " H"]
    policy: Float[Array, "H A"]
    converged: Array
    steps: Array
    fixed: Float[Array, " H"]  # the fixed point solved for (continuation values V_S(t+1)); a warm start


def simulate(kind: str, u, shared, week_index, m: CovidModel, guess=None) -> Path:
    """The path of one country (unconstrained parameters ``u``, shared {"log_k", "log_c"}); the
    anticipatory MFG starts its fixed-point iteration from ``guess`` (values V_S(t+1)) if given:
    the fixed point, hence the gradient, is the same."""
    beta, n0, P, i0 = unpack(kind, u, week_index)
    q = -jnp.expm1(-m.gamma)
    H, A = week_index.shape[0], m.n_alpha
    ones = jnp.zeros((H, A)).at[:, -1].set(1.0)  # α ≡ 1
    if kind in ("sir", "sir_free_beta"):
        new, prev = _forward(beta, i0, ones, m.alphas, q)
        return Path(P * new, prev, ones, jnp.array(True), jnp.array(0), prev)
    c_i = jnp.exp(shared["log_c"])
    if kind == "mfg_myopic":
        new, prev, pol = _respond(beta, i0, c_i, jnp.zeros(H), m)
        return Path(P * new, prev, pol, jnp.array(True), jnp.array(0), jnp.zeros(H))
    lam = 1.0 - m.damping

    def phi(v_next, _):
        prev = _respond(beta, i0, c_i, v_next, m)[1]
        return (1 - lam) * v_next + lam * _continuation(beta, prev, c_i, m)

    start = jnp.zeros(H) if guess is None else guess  # from the myopic agents' values
    sol = optx.fixed_point(phi, optx.FixedPointIteration(rtol=m.tol, atol=m.tol * 1e-3), start,
                           max_steps=m.max_steps, throw=False, adjoint=_ADJOINT)
    new, prev, pol = _respond(beta, i0, c_i, sol.value, m)
    return Path(P * new, prev, pol, sol.result == optx.RESULTS.successful, sol.stats["num_steps"], sol.value)


def nb_nll(y, mean, log_k):
    """−log NegBin(y; mean, size k), elementwise."""
    k = jnp.exp(log_k)
    mean = jnp.maximum(mean, 1e-10)
    return -(jax.scipy.special.gammaln(y + k) - jax.scipy.special.gammaln(k) - jax.scipy.special.gammaln(y + 1)
             + k * (jnp.log(k) - jnp.log(k + mean)) + y * (jnp.log(mean) - jnp.log(k + mean)))


def _paths(kind, U, shared, weeks, m, guess=None, train=None):
    """Every country's path; the shared parameters receive gradients only from countries with
    ``train`` True (held-out countries fit their own parameters against frozen shared ones)."""
    K = U.shape[0]
    guess = jnp.zeros(weeks.shape, U.dtype) if guess is None else guess
    train = jnp.ones(K, bool) if train is None else train

    def one(u, w, g, t):
        sh = jax.tree_util.tree_map(lambda v: jnp.where(t, v, jax.lax.stop_gradient(v)), shared)
        return simulate(kind, u, sh, w, m, g)

    return jax.vmap(one)(U, weeks, guess, train)


def _loss(params, kind, y, mask, weeks, m, train, guess):
    U, shared = params
    paths = _paths(kind, U, shared, weeks, m, jax.lax.stop_gradient(guess), train)
    log_k = jnp.where(train, shared["log_k"], jax.lax.stop_gradient(shared["log_k"]))[:, None]
    nll = nb_nll(y, paths.mean[:, : y.shape[1]], log_k)
    return jnp.sum(mask * nll) / jnp.sum(mask), paths


@eqx.filter_jit
def _train(params, opt_state, warm, kind, y, mask, weeks, m, train, optimizer, n_steps):
    """``n_steps`` optimiser steps in one compiled scan, each country's fixed point warm-started from
    its last one; returns (params, opt_state, warm, losses, n_nonconverged per step)."""

    def body(carry, _):
        p, o, wm = carry
        (loss, paths), g = eqx.filter_value_and_grad(_loss, has_aux=True)(p, kind, y, mask, weeks, m, train, wm)
        upd, o = optimizer.update(g, o, p)
        return (eqx.apply_updates(p, upd), o, paths.fixed), (loss, jnp.sum(~paths.converged))

    (params, opt_state, warm), (losses, bad) = jax.lax.scan(body, (params, opt_state, warm), None, length=n_steps)
    return params, opt_state, warm, losses, bad


@eqx.filter_jit
def predict(kind, U, shared, weeks, m: CovidModel) -> Path:
    """Paths of every country (vmapped, compiled once per shape)."""
    return _paths(kind, U, shared, weeks, m)


def initial_params(kind, counts, onset, fit_days, weeks, m: CovidModel, n_weeks, key):
    """Data-driven starting values: β from the growth of cumulative cases over the fit window, P 50×
    the cases seen, N0 back-cast from the last fitted day; jittered by ``key``."""
    K = counts.shape[0]
    cum = np.cumsum(counts[:, :fit_days], axis=1)
    rows = []
    for c in range(K):
        t = np.arange(onset[c], fit_days)
        slope = np.polyfit(t, np.log1p(cum[c, t]), 1)[0] if t.size >= 3 else 0.1
        r = float(np.clip(slope, 0.02, 0.4))
        beta = (r + m.gamma) / (m.temperature_only() if kind.startswith("mfg") else 1.0)
        seen = max(cum[c, -1], 1.0)
        infected_now = r * seen / max(r + m.gamma, 1e-3)
        n0 = max(infected_now * np.exp(-r * (fit_days - 1)), 1e-6)
        P = 50.0 * seen
        logit = np.log(P / n0 - 1.0)
        lb = [np.log(beta)] * (n_weeks if kind == "sir_free_beta" else 1)
        rows.append([*lb, np.log(n0), logit])
    U = np.array(rows) + 0.1 * np.asarray(jax.random.normal(key, (K, len(rows[0]))))
    return jnp.asarray(U)


@functools.lru_cache(maxsize=8)
def _optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    """One optimiser per setting, so that repeated fits reuse the compiled training scan."""
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05))


def fit(kind, y, mask, weeks, m: CovidModel, U0, shared0, train, *, steps=400, learning_rate=0.05):
    """Adam (cosine-decayed learning rate) on the masked NegBin loss (mean over every country's masked
    days) of per-country ``U`` and the shared parameters, which only the countries with ``train`` True
    inform. Returns (U, shared, losses[steps], worst n_nonconverged of a step)."""
    optimizer = _optimizer(float(learning_rate), int(steps))
    params = (jnp.asarray(U0), {k: jnp.asarray(v, float) for k, v in shared0.items()})
    train = jnp.asarray(train, bool)
    weeks = jnp.asarray(weeks)
    opt_state = optimizer.init(params)
    warm = predict(kind, params[0], params[1], weeks, m).fixed
    chunk = steps if steps <= 250 else 100
    losses, bad = [], 0
    for start in range(0, steps, chunk):
        n = min(chunk, steps - start)
        params, opt_state, warm, ls, nb = _train(params, opt_state, warm, kind, jnp.asarray(y), jnp.asarray(mask),
                                                 weeks, m, train, optimizer, n)
        losses.extend(np.asarray(ls).tolist())
        bad = max(bad, int(np.max(np.asarray(nb))))
    U, shared = params
    return U, shared, np.array(losses), bad
