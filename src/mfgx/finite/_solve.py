"""`solve(game, solver)`: run a solver to convergence inside JAX and report an `Equilibrium`."""

from __future__ import annotations

import functools
import warnings

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from ._adjoint import AbstractAdjoint, ImplicitAdjoint, implicit_jvp
from ._dynamics import evaluate, exploitability, propagate, score, uniform_policy
from ._game import FiniteGame
from ._control import ControlGame
from ._solvers import AbstractSolver, FixedPoint, Softmax, _PolicySolver
from ._precision import resolve_tol
from ._validate import SIMPLEX_TOL, check_distribution


class ConvergenceWarning(UserWarning):
    """A solver stopped at ``max_steps`` before its residual reached ``tol``, or its solution is
    not a valid population flow (see `Equilibrium.valid`)."""


class NonSmoothWarning(UserWarning):
    """A derivative was taken through an exact (argmax) best response."""


class Equilibrium(eqx.Module):
    """The result of `mfgx.solve`.

    - `flow`: μ[T+1, S], the population flow induced by `policy`.
    - `mean_field`: m[T+1, ...], the mean field the game sees (μ, or the joint μπ).
    - `policy`: π[T+1, S, A].
    - `value`: V^π[T+1, S], the population's value against its own flow.
    - `exploitability`: of `policy` (0 at a Nash equilibrium).
    - `regularised_exploitability`: for solvers of the τ-regularised game (`Softmax(τ)`,
      `MirrorDescent(α, temperature=τ)`), the exploitability in the
      τ-entropy-regularised game (0 at its fixed point); equal to `exploitability` otherwise.
    - `steps`, `residual`, `converged`: the solver's iteration count, last residual and whether
      ``residual <= tol`` was reached within ``max_steps`` *and* the solution is `valid`.
    - `valid`: the runtime invariants held along the solution: every row of the flow is finite,
      ≥ −ε and sums to 1 within ε (ε = max(1e-6, 1000·machine ε)), and (with diagnostics) the
      kernel at every (t, m_t) actually used has no negative probability (or rate) and rows summing
      to 1. A kernel valid where the game was probed but not elsewhere is caught here.
    - `inner_converged`: for discounted games, whether the inner loops of the final evaluation (the
      stationary distribution of the policy, its value and the best-response value) reached their
      tolerance; False makes `converged` False (a mean field that never settles, e.g. a kernel that
      jumps with μ). Always True for finite-horizon games.
    """

    flow: Float[Array, "T1 S"]
    mean_field: Array
    policy: Float[Array, "T1 S A"]
    value: Float[Array, "T1 S"]
    exploitability: Float[Array, ""]
    regularised_exploitability: Float[Array, ""]
    steps: Int[Array, ""]
    residual: Float[Array, ""]
    converged: Bool[Array, ""]
    valid: Bool[Array, ""]
    inner_converged: Bool[Array, ""]


def _mass_tol(dtype) -> float:
    return max(SIMPLEX_TOL, 1e3 * float(jnp.finfo(dtype).eps))


def _runtime_valid(game, eq: "Equilibrium", kernels: bool) -> Bool[Array, ""]:
    """The invariants of `Equilibrium.valid` (no gradient flows through them)."""
    flow = lax.stop_gradient(eq.flow)
    eps = _mass_tol(flow.dtype)
    ok = jnp.all(jnp.isfinite(flow)) & (flow.min() >= -eps) & (jnp.abs(flow.sum(-1) - 1).max() <= eps)
    if kernels and isinstance(game, FiniteGame):
        params = jax.tree_util.tree_map(lambda x: lax.stop_gradient(x) if eqx.is_array(x) else x, game.params)
        mf = lax.stop_gradient(eq.mean_field)
        n = 1 if game.stationary else game.horizon

        def body(carry, xs):
            t, m = xs
            low, err = game.kernel.check(t, m, params)
            return (jnp.minimum(carry[0], low), jnp.maximum(carry[1], err)), None

        start = (jnp.asarray(jnp.inf, flow.dtype), jnp.asarray(0.0, flow.dtype))
        (low, err), _ = lax.scan(body, start, (jnp.arange(n), mf[:n]))
        ok = ok & (low >= -eps) & (err <= eps)
    return ok


def _warn_if_not_converged(converged, steps, residual, name, valid=True):
    converged, steps, residual, valid = map(np.asarray, (converged, steps, residual, valid))
    if not np.all(valid):
        bad = np.flatnonzero(~np.broadcast_to(valid, converged.shape).ravel())
        warnings.warn(
            f"{name}: the solution of {bad.size} of {converged.size} game(s) is not a valid population flow: "
            "mass left the probability simplex (negative or not summing to 1), or the transition kernel/jump "
            "rates had a negative entry or rows not summing to 1 at some (t, μ) along the solution. The game "
            "is invalid there although it passed the probe at construction: check the kernel/rates for every t "
            "and μ (or use more time points / scheme='implicit' for Euler rates). Reported as not converged "
            "(throw=True raises).",
            ConvergenceWarning,
            stacklevel=3,
        )
        return
    if not np.all(converged):
        bad = np.flatnonzero(~converged.ravel())
        warnings.warn(
            f"{name} did not converge in {int(np.max(steps))} steps for {bad.size} of "
            f"{converged.size} game(s); worst residual {float(np.max(residual)):.3g} (for a discounted game, "
            "also when an inner loop did not settle: see Equilibrium.inner_converged). "
            "Raise max_steps, add damping, or use a different solver (throw=True raises instead).",
            ConvergenceWarning,
            stacklevel=3,
        )


def _iterate(game, solver, tol, max_steps, loop_kind, guess=None):
    """Run ``solver.step`` until residual ≤ tol or max_steps; returns (steps, state, residual).
    ``guess``: an initial mean-field flow for flow fixed-point solvers (warm start)."""

    def cond(carry):
        k, _, res = carry
        return (k < max_steps) & (res > tol)

    def body(carry):
        k, state, _ = carry
        state, res = solver.step(game, state)
        return k + 1, state, res

    if guess is None:
        start = solver.init(game)
    elif isinstance(solver, _PolicySolver):  # an initial policy
        start = solver.init(game, lax.stop_gradient(guess))
    else:
        start = lax.stop_gradient(guess)
    init = (jnp.asarray(0), start, jnp.asarray(jnp.inf, game.mu0.dtype))
    if loop_kind == "lax":
        return lax.while_loop(cond, body, init)
    # "bounded" (nested scans) rather than "checkpointed": with jax 0.10.2 the checkpointed loop's
    # transpose fails on policy-space solver states ("Expected cotangent type ...").
    return eqxi.while_loop(cond, body, init, max_steps=max_steps, kind="bounded")


def _primal(inputs):
    game, solver, tol, max_steps, guess = inputs
    steps, state, residual = _iterate(game, solver, tol, max_steps, "lax", guess)
    return solver.mean_field(game, state), (steps, residual, state)


def fixed_point_map(game: FiniteGame, solver: AbstractSolver, mf):
    """Φ(m) = m(propagate(respond(m))): the map whose fixed point is the solver's equilibrium."""
    pi = solver.respond(game, mf)
    return game.mean_field_of(propagate(game, pi), pi)


def _rewrite(root, _, inputs):
    game, solver = inputs[:2]
    smooth = solver.regularisation() is not None or getattr(game, "smooth_response", False) or game.n_actions == 1
    if not smooth:  # traced only under autodiff; with one action there is no control channel
        warnings.warn(
            f"differentiating a {type(solver).__name__} equilibrium: its exact best response is "
            "piecewise constant, so gradients miss the control channel and flow only through the "
            "explicit dependence of transitions and rewards on m and θ. Use mfgx.Softmax(τ) for "
            "gradients through the agents' response.",
            NonSmoothWarning,
            stacklevel=2,
        )
    return fixed_point_map(game, solver, root) - root


@eqx.filter_jit
def _solve(game: FiniteGame, solver: AbstractSolver, tol, max_steps: int, throw: bool, adjoint, diagnostics: bool = True, guess=None):
    if isinstance(adjoint, ImplicitAdjoint):
        inputs = (game, solver, tol, max_steps, None if guess is None else lax.stop_gradient(guess))
        size = game.mean_field_of(jnp.zeros((game.horizon + 1, game.n_states)), uniform_policy(game)).size
        mf, (steps, residual, state) = implicit_jvp(
            _primal, _rewrite, inputs, adjoint.solver_for(size, game.mu0.dtype)
        )
        # Without diagnostics no policy either: nothing is traced beyond the root.
        policy = solver.solution_policy(game, mf, state) if diagnostics else None
    else:
        steps, state, residual = _iterate(game, solver, tol, max_steps, "unrolled", guess)
        mf, policy = solver.mean_field(game, state), solver.policy(game, state)
    if diagnostics:
        eq = _finalise(game, solver, policy, steps, residual, tol)
    else:
        eq = _flow_only(game, mf, policy, steps, residual, tol)
    valid = _runtime_valid(game, eq, kernels=diagnostics)
    eq = eqx.tree_at(lambda e: (e.valid, e.converged), eq, (valid, eq.converged & valid))
    if throw:
        flow = eqx.error_if(
            eq.flow, ~valid,
            f"{type(solver).__name__}: the solution is not a valid population flow (mass off the simplex, or a "
            "kernel/rate entry negative or rows not summing to 1 at some (t, μ) along it)",
        )
        flow = eqx.error_if(flow, ~eq.converged, f"{type(solver).__name__} did not converge (residual > tol)")
        eq = eqx.tree_at(lambda e: e.flow, eq, flow)
    return eq


def _finalise(game, solver, policy, steps, residual, tol) -> Equilibrium:
    if getattr(game, "stationary", False):  # one evaluation gives flow, value and exploitability
        sc = score(game, lax.stop_gradient(policy))
        mu, mf, value, expl, ok = sc["mu"], sc["mf"], sc["v_pi"], sc["expl"], sc["ok"]
    else:
        mu = propagate(game, policy)
        mf = game.mean_field_of(mu, policy)
        _, value = evaluate(game, policy, mf)
        expl = exploitability(game, lax.stop_gradient(policy))
        ok = jnp.asarray(True)
    tau = solver.regularisation()
    reg_expl = expl if tau is None else exploitability(game, lax.stop_gradient(policy), tau)
    return Equilibrium(mu, mf, policy, value, expl, reg_expl, jnp.asarray(steps), residual,
                       (residual <= tol) & ok, jnp.asarray(True), ok)


def _flow_only(game, mf, policy, steps, residual, tol) -> Equilibrium:
    """The solution without value or exploitability (NaN): for inner loops that use the flow only.
    With a state mean field the flow is the root m* itself (no further propagation)."""
    if policy is None:  # the policy was not computed: NaN of its shape
        policy = jnp.full_like(uniform_policy(game), jnp.nan)
        mu = mf if game.mean_field == "state" else mf.sum(-1)
    else:
        mu = mf if game.mean_field == "state" else propagate(game, policy)
    nan = jnp.full((), jnp.nan, mu.dtype)
    value = jnp.full(mu.shape, jnp.nan, mu.dtype)
    return Equilibrium(mu, mf, policy, value, nan, nan, jnp.asarray(steps), residual, residual <= tol, jnp.asarray(True),
                       jnp.asarray(True))


@eqx.filter_jit
def equilibrium_from_state(game: FiniteGame, solver: AbstractSolver, state, steps, residual, tol) -> Equilibrium:
    """The `Equilibrium` of a solver state, exactly as `solve` reports it after ``steps`` steps.

    For loops run step by step outside `solve` (progress displays, custom stopping rules)."""
    eq = _finalise(game, solver, solver.policy(game, state), steps, residual, tol)
    valid = _runtime_valid(game, eq, kernels=True)
    return eqx.tree_at(lambda e: (e.valid, e.converged), eq, (valid, eq.converged & valid))


def solve(
    game: FiniteGame,
    solver: AbstractSolver,
    *,
    tol: float | None = None,
    max_steps: int = 1000,
    throw: bool = False,
    adjoint: AbstractAdjoint = ImplicitAdjoint(),
    diagnostics: bool = True,
    guess=None,
) -> Equilibrium:
    """Solve a mean-field game.

    Runs ``solver.step`` in a `jax.lax.while_loop` until its residual is ≤ ``tol`` or ``max_steps``
    iterations have run. ``tol`` defaults to 1e-8 in float64 and 1.2e-6 (10 machine ε) in float32; a
    tolerance below 10 machine ε of the game's dtype is raised to it with a `PrecisionWarning`. Non-convergence is reported: ``Equilibrium.converged`` is False and a
    `ConvergenceWarning` is issued, or an error is raised when ``throw=True``.

    Jit-compiled; `jax.vmap` it over games that differ in arrays only (e.g. ``game.with_params``).
    Differentiable in the game's arrays (θ, μ₀, ...): by the implicit function theorem at the
    equilibrium (``adjoint=ImplicitAdjoint()``, the default) or through the iterations
    (``adjoint=UnrolledAdjoint()``). See `ImplicitAdjoint` for what exact best
    responses contribute.

    ``diagnostics=False`` skips what inner loops (calibration, sweeps of flows) do not use: the
    value, exploitability and regularised exploitability are NaN (with the implicit adjoint, the
    policy too), and the flow is the solver's root m* itself (summed over actions for a
    state-action mean field) (within ``tol`` of the flow of its policy), and under a
    caller's jit/vmap no `ConvergenceWarning` is issued (its host callback would stall the compiled
    loop): read ``Equilibrium.converged``. This removes about three best-response/evaluation passes
    per solve.

    ``guess``: a mean-field flow m[T+1, S] to start from instead of the flow of the uniform policy
    (warm start, e.g. the previous solution in a loop over nearby parameters); flow fixed-point
    solvers (`FixedPoint`, `Softmax`) only. It changes where the iteration starts, not its fixed
    point, and carries no gradient. For policy-space solvers (`FictitiousPlay`, `MirrorDescent`,
    `PriorDescent`): an initial policy π[T+1, S, A] instead of the uniform one (mirror descent's
    logits still start at 0, as in BenchMFG's OMD, so only its first step sees it).
    """
    if not isinstance(game, (FiniteGame, ControlGame)):
        raise TypeError(f"solve expects a FiniteGame or ControlGame, got {type(game).__name__}")
    if isinstance(game, ControlGame) and not isinstance(solver, (FixedPoint, Softmax)):
        raise TypeError(
            f"{type(solver).__name__} needs finite actions; a ControlGame (closed-form rates) is solved "
            "by mfgx.FixedPoint(damping)"
        )
    if not isinstance(solver, AbstractSolver):
        raise TypeError(f"solve expects a solver such as mfgx.FixedPoint(), got {type(solver).__name__}")
    if not (isinstance(max_steps, int) and max_steps >= 1):
        raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
    tol = resolve_tol(tol, game.mu0.dtype)
    if isinstance(game, FiniteGame):
        solver = solver.prepare(game)
    if not isinstance(adjoint, AbstractAdjoint):
        raise TypeError(f"adjoint must be ImplicitAdjoint() or UnrolledAdjoint(), got {adjoint!r}")
    if guess is not None and isinstance(solver, _PolicySolver) and isinstance(game, FiniteGame):
        shape = (game.horizon + 1, game.n_states, game.n_actions)
        check_distribution(guess, "guess (an initial policy)", shape)
        guess = jnp.asarray(guess, game.mu0.dtype)
    elif guess is not None:
        if not isinstance(solver, (FixedPoint, Softmax)):
            raise TypeError(f"guess (a warm-start flow) is for FixedPoint and Softmax, not {type(solver).__name__}")
        if isinstance(game, FiniteGame):  # the flow's shape without tracing init (≈ 70 ms per call)
            extra = (game.n_actions,) if game.mean_field == "state_action" else ()
            want = jax.ShapeDtypeStruct((game.horizon + 1, game.n_states, *extra), game.mu0.dtype)
        else:
            want = jax.eval_shape(lambda: solver.init(game))
        if jnp.shape(guess) != want.shape:
            raise ValueError(f"guess must be a mean-field flow of shape {want.shape}, got {jnp.shape(guess)}")
        guess = jnp.asarray(guess, want.dtype)
    eq = _solve(game, solver, jnp.asarray(tol, game.mu0.dtype), max_steps, throw, adjoint, bool(diagnostics), guess)
    if throw:
        return eq
    report = (eq.converged, eq.steps, eq.residual, eq.valid)
    if not diagnostics and any(isinstance(x, jax.core.Tracer) for x in report):
        return eq  # inner loops read eq.converged themselves: no host callback inside their compiled step
    if not any(isinstance(x, jax.core.Tracer) for x in report):
        _warn_if_not_converged(*report[:3], type(solver).__name__, report[3])
        return eq
    # Under the caller's jit/vmap/grad: warn when the values exist, once for a whole vmapped batch.
    # The callback's zero output is threaded into the flow so that it is never dead code.
    zero = jax.pure_callback(
        functools.partial(_warn_callback, name=type(solver).__name__),
        jax.ShapeDtypeStruct(eq.residual.shape, eq.residual.dtype),
        *map(lax.stop_gradient, report),
        vmap_method="broadcast_all",
    )
    return eqx.tree_at(lambda e: e.flow, eq, eq.flow + lax.stop_gradient(zero)[..., None, None])


def _warn_callback(converged, steps, residual, valid, *, name):
    _warn_if_not_converged(converged, steps, residual, name, valid)
    return np.zeros(np.shape(residual), np.asarray(residual).dtype)
