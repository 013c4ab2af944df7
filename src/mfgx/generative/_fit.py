r"""Training a generative problem: `evaluate` and `fit` (Optax) on the shared training loop
(`mfgx._training`): validation selection, patience, progress display and atomic checkpoints with
exact resume that refuses changed settings.

Step s draws a batch of rows without replacement from the training data (and, for a Hutchinson
trace, one Rademacher probe per row), both from fold_in(key, s), inside one compiled step that
integrates the characteristics, forms the problem's objective from the means of its per-sample
terms (`AbstractProblem.parts` and `.loss`; for `CNF`: α_L E[L] + α_C E[C] + α_R E[R]; for
`DynamicOT`/`CrowdMotion`: α_L E[L] + α_F E[F] + α_G E[G] + α_R E[R] + α_RT E[RT]) and applies the optimiser to its gradient through the Diffrax
solve (`diffrax.RecursiveCheckpointAdjoint`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from .. import _checkpoint, _training
from .._progress import progress_bar
from ._characteristics import check_samples
from ._errors import GenerativeError
from ._potential import Potential
from ._problems import CNF, AbstractProblem, Flow, _check_flow, _fingerprint, training_probes

_TRACES = {"train": 0}  # times the training step was traced (tests check that fits reuse it)


@eqx.filter_jit
def _train_step(params, static, opt_state, data, key, batch_size, optimizer, problem):
    _TRACES["train"] += 1
    pick, pkey = jr.split(key)
    idx = jr.choice(pick, data.shape[0], (batch_size,), replace=False)
    xb = data[idx]
    probe = training_probes(problem, pkey, batch_size, data.shape[1], data.dtype)

    def f(p):
        terms = problem.parts(eqx.combine(p, static), xb, probe=probe)
        means = {k: jnp.mean(v) for k, v in terms.items()}
        return problem.loss(means), means

    (value, parts), grads = eqx.filter_value_and_grad(f, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = eqx.apply_updates(params, updates)
    return params, opt_state, value, parts, optax.tree.norm(grads)


@eqx.filter_jit
def _eval_chunk(potential, problem, x, w, n_steps):
    return {k: jnp.sum(w * v) for k, v in problem.parts(potential, x, n_steps=n_steps).items()}


def evaluate(
    flow: Flow, data: Float[Array, "n d"], *, n_steps: int | None = None, batch_size: int = 4096
) -> dict[str, float]:
    r"""Means over ``data`` of the problem's terms (`AbstractProblem.parts`) with the exact trace,
    and ``loss``, the problem's objective of them. For a `CNF`: ``L`` (kinetic), ``C`` (= ``nll``,
    nats per sample), ``R`` (HJB residual), ``loss`` = α_L L + α_C C + α_R R; for `DynamicOT` and
    `CrowdMotion` see their docstrings.
    Chunks of ``batch_size`` rows, the last padded with zero-weight repeats so that one compiled
    function serves all; ``n_steps`` overrides the problem's."""
    n = _check_flow(flow, n_steps)
    x = check_samples(data, flow.dim, "data", jnp.result_type(flow.potential.K0))
    N = x.shape[0]
    B = max(1, min(int(batch_size), N))
    tot: dict[str, float] = {}
    for start in range(0, N, B):
        idx = np.arange(start, start + B)
        w = (idx < N).astype(float)
        idx = np.where(idx < N, idx, idx % N)
        for k, v in _eval_chunk(flow.potential, flow.problem, x[idx], jnp.asarray(w, x.dtype), n).items():
            tot[k] = tot.get(k, 0.0) + float(v)
    means = {k: v / N for k, v in tot.items()}
    out = {"loss": float(flow.problem.loss(means)), **means}
    if isinstance(flow.problem, CNF):
        out["nll"] = means["C"]
    return out


@dataclasses.dataclass(frozen=True)
class GenerativeFit(_training.StepHistory):
    """The result of `fit`.

    - `model`: the selected `Flow`: the best validation loss when a validation set was given,
      else the flow after the last step. `final_model`: after the last step run.
    - `history`: one record per step: ``step`` (1-based), ``loss`` (the batch objective), its
      terms' batch means (`CNF`: ``L``, ``C``, ``R``; `DynamicOT`: ``L``, ``G``, ``R``, ``RT``), ``grad_norm``, ``seconds`` (wall time of the step), and on
      evaluation steps ``val`` (and ``train``) metrics from `evaluate`.
    - `best_step`, `selected_on` ("validation" or "last step"), `steps_run`, `stopped_early`.
    """

    model: Flow
    final_model: Flow
    history: list[dict[str, Any]]
    best_step: int
    selected_on: str
    steps_run: int
    stopped_early: bool



@functools.lru_cache(maxsize=16)
def _adam(learning_rate: float, lr_drop: float, drop_every: int) -> optax.GradientTransformation:
    """One Adam per setting, so that repeated fits reuse the compiled step: the learning rate
    divided by ``lr_drop`` every ``drop_every`` steps (OT-Flow's schedule; 0 = constant)."""
    if drop_every == 0 or lr_drop == 1.0:
        return optax.adam(learning_rate)
    return optax.adam(optax.exponential_decay(learning_rate, drop_every, 1.0 / lr_drop, staircase=True))


def _int(name, v, lo):
    if isinstance(v, bool) or not (isinstance(v, (int, np.integer)) and v >= lo):
        raise GenerativeError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def _key_data(key) -> list[int]:
    try:
        return np.asarray(jax.random.key_data(key)).ravel().tolist()
    except Exception as e:  # noqa: BLE001
        raise GenerativeError(f"key must be a JAX PRNG key (jax.random.key or PRNGKey), got {key!r}") from e


def positive_real(name: str, value, prefix: str = "") -> float:
    """``value`` as a float, or `GenerativeError` unless it is a finite number > 0 (not a bool)."""
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise GenerativeError(f"{prefix}{name} must be a finite number > 0, got {value!r}")
    return float(value)


def loop_options(steps, batch_size, eval_every, checkpoint_every, patience, has_val: bool, prefix: str = ""):
    """The checked counts of a training loop: (steps, batch_size, eval_every, checkpoint_every)."""
    out = (_int("steps", steps, 0), _int("batch_size", batch_size, 1), _int("eval_every", eval_every, 1),
           _int("checkpoint_every", checkpoint_every, 1))
    if patience is not None:
        _int("patience", patience, 1)
        if not has_val:
            raise GenerativeError(f"{prefix}patience needs a validation set (val=...)")
    return out


def optimiser_name(optimizer) -> str:
    """The settings entry of a custom Optax optimiser: its fingerprint (hyperparameters included)."""
    from .._fingerprint import digest

    return f"custom {digest(optimizer)}"


def resumable(checkpoint_dir, resume: bool, settings: dict, trees, *, kind: str):
    """(state, trees, save): the loop state and the arrays ``trees`` (params, optimiser state, best
    params) from a checkpoint under ``checkpoint_dir`` whose ``settings`` match (a changed setting
    raises, naming it), else fresh; ``save(params, opt_state, best)`` writes a checkpoint (no-op
    without a folder)."""
    state = _training.new_state("step")
    if checkpoint_dir is not None and resume:
        loaded = _training.resume(checkpoint_dir, trees, settings, kind=kind, error=GenerativeError)
        if loaded is not None:
            state, trees = loaded

    def save(p, o, b):
        if checkpoint_dir is not None:
            _checkpoint.save(checkpoint_dir, {"settings": settings, "state": state}, (p, o, b), kind=kind)

    return state, trees, save


def train_loop(step, params, opt_state, best_params, state, *, steps: int, save, metrics, train, val, eval_every: int,
               checkpoint_every: int, eval_train: bool, patience, callback, progress: bool, label: str, hint: str):
    """The step loop shared by the generative fits: ``step(params, opt_state, s)`` → (params,
    opt_state, loss, means, gradient norm); records, evaluation by ``metrics(params, data)``,
    validation selection, patience, ``save(params, opt_state, best_params)`` checkpoints and the
    progress bar (`mfgx._training`). A non-finite loss or gradient raises with ``hint``.
    Returns (params, opt_state, best_params); ``state`` is updated in place."""
    with progress_bar(progress, state["step"], steps, label=label, unit="steps") as bar:
        for s in _training.remaining(state, "step", steps):
            t_start = time.perf_counter()
            params, opt_state, value, means, gnorm = step(params, opt_state, s)
            value = float(value)
            seconds = time.perf_counter() - t_start
            if not math.isfinite(value) or not math.isfinite(float(gnorm)):
                raise GenerativeError(
                    f"{label}: step {s + 1}: the training objective is {value} (gradient norm {float(gnorm)}); {hint}"
                )
            record: dict[str, Any] = {
                "step": s + 1, "loss": value, **{k: float(v) for k, v in means.items()},
                "grad_norm": float(gnorm), "seconds": seconds,
            }
            improved, stopped, do_save = _training.end_unit(
                state, record, counter="step", total=steps, eval_every=eval_every, checkpoint_every=checkpoint_every,
                evaluate=lambda x: metrics(params, x), train=train, val=val, eval_train=eval_train, patience=patience,
                callback=callback,
            )
            if improved:
                best_params = params
            if do_save:
                save(params, opt_state, best_params)
            bar.update(s + 1, _training.info(value, record))
            if stopped:
                break
    return params, opt_state, best_params


def fit(
    problem: AbstractProblem,
    data: Float[Array, "n d"],
    *,
    key: PRNGKeyArray,
    steps: int = 1000,
    batch_size: int = 1024,
    learning_rate: float = 0.05,
    lr_drop: float = 2.0,
    drop_every: int = 0,
    optimizer: optax.GradientTransformation | None = None,
    potential: Potential | None = None,
    width: int = 32,
    depth: int = 2,
    rank: int | None = None,
    val: Float[Array, "m d"] | None = None,
    eval_every: int = 50,
    eval_steps: int | None = None,
    eval_batch_size: int = 4096,
    eval_train: bool = False,
    checkpoint_dir=None,
    checkpoint_every: int = 100,
    resume: bool = True,
    patience: int | None = None,
    progress: bool = True,
    callback: Callable[[dict], bool | None] | None = None,
) -> GenerativeFit:
    r"""Minimise the ``problem``'s objective (any `AbstractProblem`: `CNF`, `DynamicOT`,
    `CrowdMotion`, `JKOStep`; ``data`` are samples of ρ₀) over the potential Φ on ``data`` [n, d] by Adam
    (``learning_rate``, divided by ``lr_drop`` every ``drop_every`` steps as in OT-Flow; 0 =
    never) or by ``optimizer`` (any Optax transformation).

    - The initial potential: ``potential``, or ``Potential(d, width, depth, rank, key=…)`` from
      ``key``, in the data's precision (float64 under mfgx's default; float32 data → float32).
    - Batches: ``batch_size`` rows per step without replacement, from fold_in(key, step).
    - Evaluation every ``eval_every`` steps and at the end on ``val`` (and ``data`` if
      ``eval_train``) with `evaluate` (exact trace, ``eval_steps`` steps, default the problem's);
      the returned model has the best validation loss; ``patience`` evaluations without
      improvement stop the fit.
    - ``checkpoint_dir``: every ``checkpoint_every`` steps (and at the end) the parameters, the
      optimiser state, the best parameters, the step and the history are written atomically;
      with ``resume=True`` a later call continues from there and ends bitwise where an
      uninterrupted run would (raise ``steps`` to train further). A checkpoint written with other
      settings (problem, data, key, batch, optimiser, network) is refused.
    - ``callback(record)`` runs after every step; returning True stops the fit.
    """
    if not isinstance(problem, AbstractProblem):
        raise GenerativeError(
            f"problem must be a mfgx.generative problem (CNF, DynamicOT, CrowdMotion), got {type(problem).__name__}"
        )
    if potential is not None and not isinstance(potential, Potential):
        raise GenerativeError(f"potential must be a mfgx.generative.Potential, got {type(potential).__name__}")
    if data is None:
        raise GenerativeError("data must be an array [n, d], got None")
    raw = np.asarray(data) if not isinstance(data, jax.Array) else data
    if getattr(raw, "ndim", 0) != 2:
        raise GenerativeError(f"data must have shape [n, d] (samples by dimension), got shape {np.shape(raw)}")
    d = int(raw.shape[1])
    if potential is not None:
        dtype = jnp.result_type(potential.K0)
    else:
        dtype = jnp.float32 if raw.dtype == np.float32 else jax.dtypes.canonicalize_dtype(jnp.float64)
    dim = d if potential is None else potential.dim
    train = check_samples(raw, dim, "data", dtype)
    problem.check_data(dim)
    if val is not None:
        val = check_samples(val, dim, "val", dtype)
    steps, batch_size, eval_every, checkpoint_every = loop_options(
        steps, batch_size, eval_every, checkpoint_every, patience, val is not None)
    eval_batch_size = _int("eval_batch_size", eval_batch_size, 1)
    if eval_steps is not None:
        _int("eval_steps", eval_steps, 1)
    if optimizer is None:
        positive_real("learning_rate", learning_rate)
        positive_real("lr_drop", lr_drop)
        drop_every = _int("drop_every", drop_every, 0)
        optimizer = _adam(float(learning_rate), float(lr_drop), drop_every)
        opt_name = f"adam({float(learning_rate)!r}, lr_drop={float(lr_drop)!r}, drop_every={drop_every})"
    else:
        if not isinstance(optimizer, optax.GradientTransformation):
            raise GenerativeError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
        opt_name = optimiser_name(optimizer)
    N = train.shape[0]
    B = min(batch_size, N)
    key_list = _key_data(key)
    init_key, train_key = jr.split(key)
    if potential is None:
        potential = Potential(d, width, depth, rank, key=init_key, dtype=dtype)
    params, static = eqx.partition(potential, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    best_params = params
    settings = {
        "problem": problem.settings(), "dim": dim, "n_train": N, "n_val": 0 if val is None else int(val.shape[0]),
        "data": _fingerprint(train), "val": None if val is None else _fingerprint(val), "batch_size": B,
        "key": key_list, "optimizer": opt_name, "initial_potential": _fingerprint(params),
        "width": potential.width, "depth": potential.depth, "rank": potential.rank, "dtype": str(jnp.dtype(dtype)),
        "eval_steps": eval_steps,
    }
    state, (params, opt_state, best_params), save = resumable(
        checkpoint_dir, resume, settings, (params, opt_state, best_params), kind="generative")

    params, opt_state, best_params = train_loop(
        lambda p, o, s: _train_step(p, static, o, train, jr.fold_in(train_key, s), B, optimizer, problem),
        params, opt_state, best_params, state, steps=steps, save=save,
        metrics=lambda p, x: evaluate(Flow(eqx.combine(p, static), problem), x, n_steps=eval_steps,
                                      batch_size=eval_batch_size),
        train=train, val=val, eval_every=eval_every, checkpoint_every=checkpoint_every, eval_train=eval_train,
        patience=patience, callback=callback, progress=progress, label="generative fit",
        hint="lower the learning rate, add steps (n_steps) or standardise the data",
    )

    final = Flow(eqx.combine(params, static), problem)
    selected, on = _training.select(state, "step", final, Flow(eqx.combine(best_params, static), problem), val is not None)
    return GenerativeFit(selected, final, list(state["history"]), state["best_step"], on, state["step"], bool(state.get("stopped", False)))
