r"""Sampling, likelihood and training of score-based generative models (science note
generative_lab.md §3, §7).

- `sample_sde`: the reverse-time SDE dY = [−f + g² s_θ] dτ + g dW̄ in τ = T − t, from the prior at
  t = T down to t = ε, with Diffrax's Euler–Maruyama (``solver="euler"``, fixed steps) or ShARK
  (``"shark"``, strong order 1.5 for this additive noise, space-time Lévy area).
- `sample_ode`: the probability-flow ODE dx/dt = f − ½g² s_θ from T to ε, adaptive Dopri5 (RK45)
  with rtol = atol = 1e-5.
- `log_likelihood` / `nll` / `bits_per_dim`: log p_ε(x) = log p_T(x(T)) + ∫_ε^T ∇·ṽ dt along the
  PF-ODE ṽ = f − ½g² s_θ, ∇·ṽ = d a − ½g² ∇·s_θ, exact divergence (closed form for
  `PotentialScore`, Jacobian trace for `ScoreNet`) or Hutchinson; bits/dim = NLL/(d ln 2).
- `fit_sgm`: Adam on the `SGM` objective on the shared training loop (`mfgx._training`):
  validation selection, patience, progress, atomic checkpoints with exact resume that refuses
  changed settings — the conventions of `generative.fit`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .. import _training
from ._characteristics import check_samples
from ._errors import GenerativeError
from ._fit import _adam, _int, _key_data, loop_options, optimiser_name, positive_real, resumable, train_loop
from ._problems import _fingerprint
from ._score import SGM, AbstractScoreModel, PotentialScore, ScoreNet
from ._sde import AbstractSDE, check_sde


def _check_model(owner, model, sde):
    if not isinstance(model, AbstractScoreModel):
        raise GenerativeError(f"{owner}: model must be a score model (PotentialScore, ScoreNet), got {type(model).__name__}")
    check_sde(owner, sde)


def _dtype(model):
    leaves = [x for x in jax.tree.leaves(model) if eqx.is_inexact_array(x)]
    return leaves[0].dtype if leaves else jax.dtypes.canonicalize_dtype(jnp.float64)


# ---------------------------------------------------------------- sampling


@eqx.filter_jit
def _reverse_sde(model, sde, key, n, d, n_steps, eps, solver_name, n_frames=1):
    dtype = _dtype(model)
    T = sde.T
    kx, kw = jr.split(key)
    y0 = sde.prior_std() * jr.normal(kx, (n, d), dtype)
    tau1 = T - eps

    def drift(tau, y, args):
        t = T - tau
        s = jax.vmap(model.score, in_axes=(0, None))(y, t)
        return -sde.drift_coef(t) * y + sde.g2(t) * s

    def diffusion(tau, y, args):
        return lx.DiagonalLinearOperator(jnp.full((n, d), jnp.sqrt(sde.g2(T - tau)), dtype))

    if solver_name == "shark":
        solver = diffrax.ShARK()
        bm = diffrax.VirtualBrownianTree(0.0, tau1, tol=tau1 / (4 * n_steps), shape=(n, d), key=kw, levy_area=diffrax.SpaceTimeLevyArea)
    else:
        solver = diffrax.Euler()
        bm = diffrax.UnsafeBrownianPath(shape=(n, d), key=kw)
    terms = diffrax.MultiTerm(diffrax.ODETerm(drift), diffrax.ControlTerm(diffusion, bm))
    sol = diffrax.diffeqsolve(
        terms, solver, 0.0, tau1, tau1 / n_steps, y0, stepsize_controller=diffrax.ConstantStepSize(),
        saveat=diffrax.SaveAt(ts=jnp.linspace(0.0, tau1, n_frames)) if n_frames > 1 else diffrax.SaveAt(t1=True),
        max_steps=n_steps + 1,
        adjoint=diffrax.DirectAdjoint() if solver_name == "euler" else diffrax.RecursiveCheckpointAdjoint(),
    )
    return sol.ys if n_frames > 1 else sol.ys[-1]


def sample_sde(
    model: AbstractScoreModel, sde: AbstractSDE, key: PRNGKeyArray, n: int, *,
    n_steps: int = 1000, eps: float = 1e-3, solver: str = "euler",
) -> Float[Array, "n d"]:
    """``n`` samples by the reverse-time SDE from N(0, s² I) at t = T to t = ``eps`` in
    ``n_steps`` equal steps of ``solver`` ("euler": Euler–Maruyama; "shark": ShARK)."""
    _check_model("sample_sde", model, sde)
    n = _int("n", n, 1)
    n_steps = _int("n_steps", n_steps, 1)
    if solver not in ("euler", "shark"):
        raise GenerativeError(f"sample_sde: solver must be 'euler' or 'shark', got {solver!r}")
    if not (0 < eps < sde.T):
        raise GenerativeError(f"sample_sde: eps must be in (0, {sde.T}), got {eps!r}")
    return _reverse_sde(model, sde, key, n, model.dim, n_steps, float(eps), solver)


def reverse_trajectories(
    model: AbstractScoreModel, sde: AbstractSDE, key: PRNGKeyArray, n: int, *,
    n_frames: int = 25, n_steps: int = 500, eps: float = 1e-3, solver: str = "euler",
) -> tuple[Float[Array, " k"], Float[Array, "k n d"]]:
    """(t [k], y [k, n, d]): ``n`` reverse-SDE paths (as `sample_sde`, same key → same end points)
    saved at ``n_frames`` = k equally spaced times from t = T down to ``eps``: the reverse diffusion
    for pictures and animations."""
    _check_model("reverse_trajectories", model, sde)
    n, n_steps, n_frames = _int("n", n, 1), _int("n_steps", n_steps, 1), _int("n_frames", n_frames, 2)
    if solver not in ("euler", "shark"):
        raise GenerativeError(f"reverse_trajectories: solver must be 'euler' or 'shark', got {solver!r}")
    if not (0 < eps < sde.T):
        raise GenerativeError(f"reverse_trajectories: eps must be in (0, {sde.T}), got {eps!r}")
    ys = _reverse_sde(model, sde, key, n, model.dim, n_steps, float(eps), solver, n_frames)
    return sde.T - np.linspace(0.0, sde.T - float(eps), n_frames), ys


def _pf_field(model, sde):
    def v(t, y, args):
        return sde.drift_coef(t) * y - 0.5 * sde.g2(t) * jax.vmap(model.score, in_axes=(0, None))(y, t)

    return v


_PID = dict(rtol=1e-5, atol=1e-5)


@eqx.filter_jit
def _pf_sample(model, sde, key, n, d, eps, rtol, atol):
    y0 = sde.prior_std() * jr.normal(key, (n, d), _dtype(model))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_pf_field(model, sde)), diffrax.Dopri5(), sde.T, eps, -1e-2, y0,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), saveat=diffrax.SaveAt(t1=True),
        max_steps=16384, adjoint=diffrax.DirectAdjoint(),
    )
    return sol.ys[-1], sol.stats["num_steps"]


def sample_ode(
    model: AbstractScoreModel, sde: AbstractSDE, key: PRNGKeyArray, n: int, *,
    eps: float = 1e-3, rtol: float = 1e-5, atol: float = 1e-5,
) -> Float[Array, "n d"]:
    """``n`` samples by the probability-flow ODE from the prior at T to ``eps`` (Dopri5, PID)."""
    _check_model("sample_ode", model, sde)
    n = _int("n", n, 1)
    if not (0 < eps < sde.T):
        raise GenerativeError(f"sample_ode: eps must be in (0, {sde.T}), got {eps!r}")
    return _pf_sample(model, sde, key, n, model.dim, float(eps), float(rtol), float(atol))[0]


# ---------------------------------------------------------------- likelihood


@eqx.filter_jit
def _loglik(model, sde, x, probes, eps, rtol, atol, prior):
    d = x.shape[1]
    prior = sde.prior_log_prob if prior is None else prior

    def one(x0, probe):
        def field(t, y, args):
            xt, _ = y
            s = model.score(xt, t)
            div = model.divergence(xt, t, probe)
            a, g2 = sde.drift_coef(t), sde.g2(t)
            return a * xt - 0.5 * g2 * s, d * a - 0.5 * g2 * div

        y0 = (x0, jnp.zeros((), x0.dtype))
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Dopri5(), eps, sde.T, 1e-2, y0,
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), saveat=diffrax.SaveAt(t1=True),
            max_steps=16384, adjoint=diffrax.DirectAdjoint(),
        )
        xT, delta = sol.ys[0][-1], sol.ys[1][-1]
        return prior(xT) + delta

    return jax.vmap(one, in_axes=(0, None if probes is None else 0))(x, probes)


def log_likelihood(
    model: AbstractScoreModel, sde: AbstractSDE, x: Float[Array, "n d"], *,
    eps: float = 1e-5, divergence: str = "exact", key: PRNGKeyArray | None = None,
    rtol: float = 1e-5, atol: float = 1e-5, prior_log_prob: Callable | None = None,
) -> Float[Array, " n"]:
    """log p_ε(x) per sample (nats) through the PF-ODE from ``eps`` to T (Dopri5, rtol = atol =
    1e-5, the prior at T); ``divergence`` "exact" or "hutchinson" (one Rademacher probe per sample
    from ``key``, held along the path: an unbiased estimate of log p). ``prior_log_prob(x)``
    replaces the SDE's prior N(0, s² I) (e.g. the exact p_T in checks)."""
    _check_model("log_likelihood", model, sde)
    x = check_samples(x, model.dim, "x", _dtype(model))
    if divergence == "exact":
        probes = None
    elif divergence == "hutchinson":
        if key is None:
            raise GenerativeError("log_likelihood: the Hutchinson divergence needs key=")
        probes = jr.rademacher(key, x.shape, x.dtype)
    else:
        raise GenerativeError(f"log_likelihood: divergence must be 'exact' or 'hutchinson', got {divergence!r}")
    if not (0 < eps < sde.T):
        raise GenerativeError(f"log_likelihood: eps must be in (0, {sde.T}), got {eps!r}")
    return _loglik(model, sde, x, probes, float(eps), float(rtol), float(atol), prior_log_prob)


def nll(model, sde, x, **kw) -> float:
    """Mean −log p_ε(x) in nats per sample (`log_likelihood`)."""
    return -float(jnp.mean(log_likelihood(model, sde, x, **kw)))


def bits_per_dim(model, sde, x, **kw) -> float:
    """`nll` / (d ln 2): dimension-agnostic, no dequantisation offset."""
    return nll(model, sde, x, **kw) / (model.dim * math.log(2.0))


# ---------------------------------------------------------------- training

_TRACES = {"train": 0}


@eqx.filter_jit
def _train_step(params, static, opt_state, data, key, batch_size, optimizer, problem, step):
    _TRACES["train"] += 1
    pick, lkey = jr.split(key)
    idx = jr.choice(pick, data.shape[0], (batch_size,), replace=False)
    xb = data[idx]

    def f(p):
        terms = problem.parts(eqx.combine(p, static), xb, lkey)
        means = {k: jnp.mean(v) for k, v in terms.items()}
        return problem.loss(means, step), means

    (value, parts), grads = eqx.filter_value_and_grad(f, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = eqx.apply_updates(params, updates)
    return params, opt_state, value, parts, optax.tree.norm(grads)


@eqx.filter_jit
def _eval_chunk(model, problem, x, key):
    return {k: jnp.sum(v) for k, v in problem.parts(model, x, key, divergence="exact").items()}


def evaluate_sgm(model: AbstractScoreModel, problem: SGM, data: Float[Array, "n d"], *, key: PRNGKeyArray, batch_size: int = 4096) -> dict[str, float]:
    """Means over ``data`` of the DSM term and the HJB residual (exact divergence) at forward
    samples drawn from ``key`` (fixed key: comparable across calls), and ``loss`` = the
    problem's objective of them."""
    if not isinstance(problem, SGM):
        raise GenerativeError(f"evaluate_sgm: problem must be an SGM, got {type(problem).__name__}")
    _check_model("evaluate_sgm", model, problem.sde)
    x = check_samples(data, model.dim, "data", _dtype(model))
    N = x.shape[0]
    B = max(1, min(int(batch_size), N))
    tot: dict[str, float] = {}
    for i, start in enumerate(range(0, N, B)):
        for k, v in _eval_chunk(model, problem, x[start:start + B], jr.fold_in(key, i)).items():
            tot[k] = tot.get(k, 0.0) + float(v)
    means = {k: v / N for k, v in tot.items()}
    return {"loss": float(problem.loss(means)), **means}


@dataclasses.dataclass(frozen=True)
class SGMFit(_training.StepHistory):
    """The result of `fit_sgm`: `model` (best validation loss, else the last), `final_model`,
    `history` (per step: ``step``, ``loss``, ``dsm`` (and ``hjb``), ``grad_norm``, ``seconds``;
    on evaluation steps ``val``/``train``), `best_step`, `selected_on`, `steps_run`, `stopped_early`."""

    model: AbstractScoreModel
    final_model: AbstractScoreModel
    history: list[dict[str, Any]]
    best_step: int
    selected_on: str
    steps_run: int
    stopped_early: bool


def fit_sgm(
    problem: SGM,
    data: Float[Array, "n d"],
    *,
    key: PRNGKeyArray,
    model: AbstractScoreModel | str = "direct",
    width: int = 64,
    depth: int = 3,
    steps: int = 2000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    val: Float[Array, "m d"] | None = None,
    eval_every: int = 100,
    eval_batch_size: int = 4096,
    eval_train: bool = False,
    checkpoint_dir=None,
    checkpoint_every: int = 100,
    resume: bool = True,
    patience: int | None = None,
    progress: bool = True,
    callback: Callable[[dict], bool | None] | None = None,
) -> SGMFit:
    r"""Minimise the `SGM` objective (DSM + λ_HJB·HJB residual) over a score model on ``data``
    [n, d] with Adam(``learning_rate``) or ``optimizer``; the conventions of `generative.fit`.

    - ``model``: a score model, or "direct" (`ScoreNet(d, width, depth)`) / "potential"
      (`PotentialScore(d, width, depth)`) initialised from ``key``, in the data's precision.
    - Step s: a batch of ``batch_size`` rows without replacement, times, noise and probes, all
      from fold_in(key, s); the HJB term weighs ``problem.hjb_weight(s)`` (its schedule).
    - Evaluation every ``eval_every`` steps and at the end on ``val`` (`evaluate_sgm`, a fixed
      key, exact divergence); the best validation loss is returned; ``patience`` stops.
    - ``checkpoint_dir``: atomic checkpoints every ``checkpoint_every`` steps; ``resume=True``
      continues bitwise where an uninterrupted run would; other settings are refused.
    """
    if not isinstance(problem, SGM):
        raise GenerativeError(f"fit_sgm: problem must be an SGM, got {type(problem).__name__}")
    if data is None:
        raise GenerativeError("fit_sgm: data must be an array [n, d], got None")
    raw = np.asarray(data) if not isinstance(data, jax.Array) else data
    if getattr(raw, "ndim", 0) != 2:
        raise GenerativeError(f"fit_sgm: data must have shape [n, d] (samples by dimension), got shape {np.shape(raw)}")
    d = int(raw.shape[1])
    key_list = _key_data(key)
    init_key, train_key = jr.split(key)
    if isinstance(model, str):
        dtype = jnp.float32 if raw.dtype == np.float32 else jax.dtypes.canonicalize_dtype(jnp.float64)
        if model == "direct":
            model = ScoreNet(d, width, depth, key=init_key, dtype=dtype)
        elif model == "potential":
            model = PotentialScore(d, width, max(depth, 2), key=init_key, dtype=dtype)
        else:
            raise GenerativeError(f"fit_sgm: model must be 'direct', 'potential' or a score model, got {model!r}")
    _check_model("fit_sgm", model, problem.sde)
    dtype = _dtype(model)
    train = check_samples(raw, model.dim, "data", dtype)
    if val is not None:
        val = check_samples(val, model.dim, "val", dtype)
    steps, batch_size, eval_every, checkpoint_every = loop_options(
        steps, batch_size, eval_every, checkpoint_every, patience, val is not None, "fit_sgm: ")
    if optimizer is None:
        positive_real("learning_rate", learning_rate, "fit_sgm: ")
        optimizer = _adam(float(learning_rate), 1.0, 0)
        opt_name = f"adam({float(learning_rate)!r})"
    else:
        if not isinstance(optimizer, optax.GradientTransformation):
            raise GenerativeError(f"fit_sgm: optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
        opt_name = optimiser_name(optimizer)
    N = train.shape[0]
    B = min(batch_size, N)
    eval_key = jr.fold_in(train_key, -1 % (2**31))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    best_params = params
    settings = {
        "problem": problem.settings(), "model": model.settings(), "dim": model.dim, "n_train": N,
        "n_val": 0 if val is None else int(val.shape[0]), "data": _fingerprint(train),
        "val": None if val is None else _fingerprint(val), "batch_size": B, "key": key_list,
        "optimizer": opt_name, "initial_model": _fingerprint(params), "dtype": str(jnp.dtype(dtype)),
    }
    state, (params, opt_state, best_params), save = resumable(
        checkpoint_dir, resume, settings, (params, opt_state, best_params), kind="sgm")

    params, opt_state, best_params = train_loop(
        lambda p, o, s: _train_step(p, static, o, train, jr.fold_in(train_key, s), B, optimizer, problem, jnp.asarray(s)),
        params, opt_state, best_params, state, steps=steps, save=save,
        metrics=lambda p, x: evaluate_sgm(eqx.combine(p, static), problem, x, key=eval_key, batch_size=eval_batch_size),
        train=train, val=val, eval_every=eval_every, checkpoint_every=checkpoint_every, eval_train=eval_train,
        patience=patience, callback=callback, progress=progress, label="fit_sgm",
        hint="lower the learning rate or lambda_hjb, or standardise the data",
    )

    final = eqx.combine(params, static)
    selected, on = _training.select(state, "step", final, eqx.combine(best_params, static), val is not None)
    return SGMFit(selected, final, list(state["history"]), state["best_step"], on, state["step"], bool(state.get("stopped", False)))
