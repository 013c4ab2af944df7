r"""Uncertainty of a finite-dimensional path at a fit: Gauss–Newton, sandwich and bootstrap intervals,
and the Levenberg–Marquardt polish that puts an Adam fit at the least-squares minimiser.

With the residuals r(q, a) of `_residuals` (optionally Dirichlet-weighted, optionally with each
trajectory's μ₀ as a nuisance parameter a_k) and their Jacobians J_q, J_a at the fit:

- ``kind="gauss_newton"``: Cov(q̂) ≈ σ̂² S⁻¹, σ̂² = ‖r‖²/ν, S = J_qᵀJ_q − Σ_k J_qkᵀJ_ak (J_akᵀJ_ak)⁻¹ J_akᵀJ_qk
  (the nuisance profiled out; S = J_qᵀJ_q without it);
- ``kind="sandwich"``: S⁻¹ (Σ_k s_k s_kᵀ) S⁻¹ · K/(K−1), s_k the profiled score of trajectory k:
  clustered by trajectory, so it does not assume equal or independent errors within a trajectory;
- `bootstrap`: a parametric bootstrap: data re-simulated at (q̂, μ̂₀) with Dirichlet noise (κ from
  the Pearson residuals unless given), refitted, percentile intervals.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .._progress import progress_bar
from ._errors import CalibrationError
from ._model import CalibrationModel
from ._residuals import Problem, fit_nuisance, polish, problem, with_values

KINDS = ("gauss_newton", "sandwich")


@dataclasses.dataclass(frozen=True)
class Uncertainty:
    """Estimates, standard errors and ``level`` intervals of a path's values.

    ``kind``: "gauss_newton" or "sandwich" (estimate ± z·se) or "bootstrap" (percentile interval;
    ``std_error`` the replicates' standard deviation). ``initial``/``noise_model``: the residual model
    (see `refine`); ``initial_states`` [K, S]: the fitted μ₀ of each trajectory (nuisance) or None."""

    estimate: np.ndarray
    std_error: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    covariance: np.ndarray
    sigma2: float
    dof: int
    rank: int
    condition: float
    level: float
    kind: str
    initial: str = "fixed"
    noise_model: str = "gaussian"
    initial_states: np.ndarray | None = None
    replicates: int = 0

    def covers(self, truth) -> np.ndarray:
        """Whether each interval contains ``truth`` (same shape as `estimate`)."""
        t = np.broadcast_to(np.asarray(truth, float), self.estimate.shape)
        return (self.lower <= t) & (t <= self.upper)

    def table(self) -> str:
        rows = [f"{'parameter':>10} {'estimate':>12} {'std.err':>10} {'lower':>12} {'upper':>12}"]
        for i, (e, s, lo, hi) in enumerate(
            zip(self.estimate.ravel(), self.std_error.ravel(), self.lower.ravel(), self.upper.ravel())
        ):
            rows.append(f"{i:>10} {e:>12.6g} {s:>10.3g} {lo:>12.6g} {hi:>12.6g}")
        return "\n".join(rows)


def _check_level(level):
    if not 0 < level < 1:
        raise CalibrationError(f"level must be in (0, 1), got {level}")


def intervals(prob: Problem, q, kinds, level: float, *, profile_steps: int = 20) -> dict[str, Uncertainty]:
    """Gauss–Newton and/or sandwich `Uncertainty` of q at the fit (the nuisance profiled first)."""
    _check_level(level)
    A, blocks = fit_nuisance(prob, q, profile_steps)
    K, P = blocks.r.shape[0], q.size
    S, inv = blocks.schur()
    svals = np.linalg.svd(S, compute_uv=False)
    rank = int(np.sum(svals > svals[0] * 1e-10)) if svals[0] > 0 else 0
    cond = float(svals[0] / svals[-1]) if svals[-1] > 0 else float("inf")
    if rank < P:
        raise CalibrationError(
            f"the flow's Jacobian in the {P} path values has rank {rank}: the parameters are not identifiable "
            "from these observations (fix some, observe more states or trajectories)"
        )
    dof = prob.dof()
    if dof < 1:
        raise CalibrationError(f"not enough observations for {P} parameters (residual degrees of freedom {dof})")
    sigma2 = blocks.rss / dof
    Sinv = np.linalg.inv(S)
    z = float(jax.scipy.special.ndtri(0.5 + level / 2))
    shape = np.shape(prob.model.path.values)
    est = np.asarray(q).reshape(shape)
    out = {}
    for kind in kinds:
        if kind == "gauss_newton":
            cov = sigma2 * Sinv
        else:
            if K < 2:
                raise CalibrationError("the clustered sandwich needs at least 2 trajectories")
            s = blocks.scores(inv)
            cov = Sinv @ (s.T @ s) @ Sinv * K / (K - 1)
        se = np.sqrt(np.diag(cov)).reshape(shape)
        out[kind] = Uncertainty(
            est, se, est - z * se, est + z * se, cov, sigma2, dof, rank, cond, level, kind,
            "nuisance" if prob.nuisance else "fixed", "dirichlet" if prob.weighted else "gaussian",
            prob.initial_states(A),
        )
    return out


def laplace(
    obj, observations, *, level: float = 0.95, kind: str = "gauss_newton", initial: str = "nuisance",
    noise_model: str = "dirichlet",
) -> Uncertainty:
    """Standard errors and intervals of the fitted path's values (see the module docstring).

    Valid at a least-squares minimiser of the same residual model: polish an Adam fit with `refine`
    (same ``initial`` and ``noise_model``) first. ``initial="nuisance"`` (default) fits each
    trajectory's μ₀ (profiled out here), the right model when y₀ is itself noisy; ``"fixed"`` reads
    μ₀ from y₀ and gives conditional errors. ``noise_model="dirichlet"`` (default) weights residuals
    by 1/sqrt(μ̂) (compositional noise, whose variance grows with μ̂); ``"gaussian"`` leaves them
    unweighted (equal noise everywhere). Reports the rank and condition number; a rank-deficient
    Jacobian (non-identifiable parameters) raises."""
    if kind not in KINDS:
        raise CalibrationError(f"kind must be one of {KINDS}, got {kind!r} (for a bootstrap use calibrate.bootstrap)")
    prob, q = problem(obj, observations, initial, noise_model)
    return intervals(prob, q, (kind,), level)[kind]


def refine(
    obj, observations, *, steps: int = 20, rtol: float = 1e-10, initial: str = "nuisance",
    noise_model: str = "dirichlet",
) -> CalibrationModel:
    """Polish a finite-dimensional path by Levenberg–Marquardt on the residuals r(q, a) (all
    trajectories at once; with ``initial="nuisance"`` each trajectory's μ₀ is fitted alongside, in
    block form). Steps are shortened to keep at least half the distance to the floor/ceiling.
    Returns the model at the least-squares minimiser (or after ``steps``)."""
    prob, q = problem(obj, observations, initial, noise_model)
    q, _, _ = polish(prob, q, prob.initial_logits(), free_q=True, steps=steps, rtol=rtol)
    return with_values(prob.model, jnp.asarray(q))


def _noise_from(prob: Problem, q) -> float:
    """κ⁻¹ of Dirichlet noise from the Pearson residuals: σ̂² estimates 1/(κ + 1)."""
    pearson = Problem(prob.model, prob.y, prob.mask, prob.z, prob.nuisance, True)
    _, blocks = fit_nuisance(pearson, q, 20)
    s2 = blocks.rss / max(pearson.dof(), 1)
    if not 0 < s2 < 1:
        raise CalibrationError(f"cannot estimate Dirichlet noise from these residuals (σ̂² = {s2:.3g})")
    return s2 / (1 - s2)


def bootstrap(
    obj, observations, *, replicates: int = 200, level: float = 0.95, noise: float | None = None, seed: int = 0,
    initial: str = "nuisance", noise_model: str = "dirichlet", steps: int = 10, progress: bool = False,
) -> Uncertainty:
    """Parametric-bootstrap intervals of the fitted path's values (call at a `refine`d fit).

    Each replicate re-simulates the observations at the fit (q̂ and, with ``initial="nuisance"``, the
    fitted μ̂₀ with a noisy first row; else y₀ exactly) with Dirichlet noise of level ``noise``
    (estimated from the Pearson residuals when None), keeps the original mask, and refits by
    `refine` from q̂ with the same residual model. The interval is the replicates' percentile
    interval; ``std_error`` their standard deviation. Replicates whose refit fails are dropped (the
    count used is ``replicates``; all failing raises)."""
    from ..data import Observations
    from ._synthetic import simulate

    _check_level(level)
    if replicates < 2:
        raise CalibrationError(f"replicates must be at least 2, got {replicates}")
    prob, q = problem(obj, observations, initial, noise_model)
    if prob.z is not None:
        raise CalibrationError("the bootstrap re-simulates the observations and cannot re-create covariates")
    noise = _noise_from(prob, q) if noise is None else float(noise)
    A, blocks = fit_nuisance(prob, q, 20)
    mu0 = prob.initial_states(A) if prob.nuisance else np.asarray(
        jax.vmap(prob.model.initial)(prob.y[:, 0], prob.mask[:, 0]))
    model = prob.model
    mask = np.asarray(observations.mask)
    draws = []
    with progress_bar(progress, 0, replicates, label="bootstrap", unit="replicates") as bar:
        for b in range(replicates):
            sim = simulate(model.game, model.path, mu0, to_params=model.to_params, solver=model.solver,
                           tol=model.tol, max_steps=model.max_steps, noise=noise, noisy_initial=prob.nuisance,
                           seed=seed + b)
            data = Observations(np.where(mask, np.asarray(sim.values), np.nan), times=observations.times)
            try:
                fit_b = refine(model, data, steps=steps, initial=initial, noise_model=noise_model)
                draws.append(np.ravel(np.asarray(fit_b.path.values)))
            except CalibrationError:
                pass
            bar.update(b + 1, f"{len(draws)} refits")
    if not draws:
        raise CalibrationError("every bootstrap refit failed")
    D = np.stack(draws)
    shape = np.shape(model.path.values)
    est = np.asarray(q).reshape(shape)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(D, [alpha, 1 - alpha], axis=0)
    cov = np.atleast_2d(np.cov(D, rowvar=False))
    S, _ = blocks.schur()
    svals = np.linalg.svd(S, compute_uv=False)
    return Uncertainty(
        est, D.std(0, ddof=1).reshape(shape), lo.reshape(shape), hi.reshape(shape), cov,
        blocks.rss / max(prob.dof(), 1), prob.dof(), int(np.sum(svals > svals[0] * 1e-10)),
        float(svals[0] / svals[-1]) if svals[-1] > 0 else float("inf"), level, "bootstrap", initial, noise_model,
        prob.initial_states(A), len(draws),
    )
