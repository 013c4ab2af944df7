r"""Gauss–Newton (Laplace) uncertainty for finite-dimensional paths, and a Gauss–Newton polish.

With residuals r(q) = M ⊙ (μ̂(q) − y) over all observed entries and J = ∂r/∂q at the fit q̂
(q the path's constrained values, e.g. a `Constant`'s vector), the Gauss–Newton / Laplace
approximation of a Gaussian likelihood gives

    Cov(q̂) ≈ σ̂² (JᵀJ)⁻¹,     σ̂² = ‖r‖² / ν,

ν = Σ_{k, n≥1} (observed entries − 1 if the row is fully observed) − dim q: the initial row is
fitted exactly (μ₀ = y₀) and the residuals of a fully observed row sum to zero (model and data both
sum to 1), so each such row carries S − 1 degrees of freedom. ``kind="sandwich"`` uses the
trajectory-clustered sandwich (JᵀJ)⁻¹ (Σ_k J_kᵀ r_k r_kᵀ J_k) (JᵀJ)⁻¹ · K/(K−1) instead, which
does not assume equal noise across entries. μ₀ logits are held fixed (conditional errors).
"""

from __future__ import annotations

import dataclasses
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._errors import CalibrationError
from ._metrics import _as_model
from ._model import CalibrationModel, check_compatible


@dataclasses.dataclass(frozen=True)
class Uncertainty:
    """Estimates, standard errors and ``level`` intervals (estimate ± z·se) of a path's values."""

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


def _with_q(model: CalibrationModel, q):
    return eqx.tree_at(lambda m: m.path, model, model.path.with_values(q))


@eqx.filter_jit
def _residuals(model, q, y, mask):
    m = _with_q(model, q)
    flows = eqx.filter_vmap(lambda yy, mm: m.solve_one(yy, mm).flow)(y, mask)
    return jnp.where(mask, flows - y, 0.0)


@eqx.filter_jit
def _jacobian(model, q, y, mask):
    r = _residuals(model, q, y, mask)
    J = jax.jacfwd(lambda qq: _residuals(model, qq, y, mask))(q)
    return r, J  # r[K, N, S], J[K, N, S, P]


def _setup(obj, observations):
    model = _as_model(obj)
    check_compatible(model, observations)
    q = jnp.ravel(model.path.values)
    return model, q, observations.values, observations.mask


def laplace(obj, observations, *, level: float = 0.95, kind: str = "gauss_newton") -> Uncertainty:
    """Standard errors and intervals of the fitted path's values at the fit (see module docstring).

    Valid at a least-squares minimiser: polish an Adam fit with `refine` first. Reports the rank
    and condition number of JᵀJ; a rank-deficient Jacobian (non-identifiable parameters) raises."""
    if kind not in ("gauss_newton", "sandwich"):
        raise CalibrationError(f"kind must be 'gauss_newton' or 'sandwich', got {kind!r}")
    if not 0 < level < 1:
        raise CalibrationError(f"level must be in (0, 1), got {level}")
    model, q, y, mask = _setup(obj, observations)
    r, J = map(np.asarray, _jacobian(model, q, y, mask))
    K, P = r.shape[0], q.size
    Jf, rf = J.reshape(-1, P), r.ravel()
    H = Jf.T @ Jf
    svals = np.linalg.svd(H, compute_uv=False)
    rank = int(np.sum(svals > svals[0] * 1e-10)) if svals[0] > 0 else 0
    cond = float(svals[0] / svals[-1]) if svals[-1] > 0 else float("inf")
    if rank < P:
        raise CalibrationError(
            f"the flow's Jacobian in the {P} path values has rank {rank}: the parameters are not identifiable "
            "from these observations (fix some, observe more states or trajectories)"
        )
    m = np.asarray(mask)
    obs_rows = m[:, 1:].sum(-1)
    dof = int(obs_rows.sum() - m[:, 1:].all(-1).sum() - P)
    if dof < 1:
        raise CalibrationError(f"not enough observations for {P} parameters (residual degrees of freedom {dof})")
    sigma2 = float(rf @ rf / dof)
    Hinv = np.linalg.inv(H)
    if kind == "gauss_newton":
        cov = sigma2 * Hinv
    else:
        if K < 2:
            raise CalibrationError("the clustered sandwich needs at least 2 trajectories")
        scores = np.einsum("knsp,kns->kp", J, r)
        cov = Hinv @ (scores.T @ scores) @ Hinv * K / (K - 1)
    se = np.sqrt(np.diag(cov))
    z = float(jax.scipy.special.ndtri(0.5 + level / 2))
    shape = np.shape(model.path.values)
    est = np.asarray(q).reshape(shape)
    se = se.reshape(shape)
    return Uncertainty(est, se, est - z * se, est + z * se, cov, sigma2, dof, rank, cond, level, kind)


def refine(obj, observations, *, steps: int = 20, rtol: float = 1e-10) -> CalibrationModel:
    """Polish a finite-dimensional path by Levenberg–Marquardt on the residuals r(q) = M ⊙ (μ̂(q) − y)
    (all trajectories at once). Steps are shortened to keep at least half the distance to the
    floor/ceiling. Returns the model at the least-squares minimiser (or after ``steps``)."""
    model, q, y, mask = _setup(obj, observations)
    lo, hi = model.path.floor, model.path.upper
    lam = 1e-3
    r, J = map(np.asarray, _jacobian(model, q, y, mask))
    rss = float((r**2).sum())
    qn = np.asarray(q)
    for _ in range(steps):
        Jf = J.reshape(-1, q.size)
        g, H = Jf.T @ r.ravel(), Jf.T @ Jf
        delta = -np.linalg.solve(H + lam * np.diag(np.diag(H)) + 1e-300, g)
        cand = qn + delta
        cand = np.maximum(cand, lo + 0.5 * (qn - lo))
        if hi is not None:
            cand = np.minimum(cand, hi - 0.5 * (hi - qn))
        r_new = np.asarray(_residuals(model, jnp.asarray(cand), y, mask))
        rss_new = float((r_new**2).sum())
        if rss_new <= rss:
            small = np.max(np.abs(cand - qn)) <= rtol * max(1.0, np.max(np.abs(qn)))
            qn, rss, lam = cand, rss_new, max(lam / 10, 1e-12)
            if small:
                break
            r, J = map(np.asarray, _jacobian(model, jnp.asarray(qn), y, mask))
        else:
            lam *= 10
            if lam > 1e12:
                break
    return _with_q(model, jnp.asarray(qn))


class IdentifiabilityWarning(UserWarning):
    """Some fitted parameters are not determined by the observations (a flat direction of the loss)."""


@dataclasses.dataclass(frozen=True)
class Identifiability:
    r"""The Gauss–Newton (Fisher) spectrum of a finite-dimensional path at a fit.

    With relative sensitivities J̃ = ∂r/∂ log q (residuals r = M ⊙ (μ̂ − y), so nothing depends on
    the parameters' units), the eigenvalues λ₁ ≥ … ≥ λ_P of J̃ᵀJ̃ say how much the flows move along
    each direction of log-parameters. Two checks:

    - *structural*: a direction with λ_i < ``threshold``·λ₁ is flat: the data cannot tell the
      parameters loading on it (|v_ij| ≥ 0.3) apart, or cannot see them at all;
    - *practical*: the relative standard errors of the parameters, the larger of Gauss–Newton,
      sqrt(σ̂² diag((J̃ᵀJ̃)⁺)) with σ̂² = ‖r‖²/ν, and the trajectory-clustered sandwich
      (J̃ᵀJ̃)⁺ (Σ_k J̃_kᵀ r_k r_kᵀ J̃_k) (J̃ᵀJ̃)⁺ · K/(K−1), which stays honest when errors are
      correlated within a trajectory (e.g. a noisy first observation used as μ₀); above
      ``max_rel_se`` the noise in these data leaves a parameter undetermined to that precision.

    - `eigenvalues` [P] (descending), `eigenvectors` [P, P] (columns), `condition` = λ₁/λ_P;
    - `rel_std_error` [P]; `weak`: the parameters failing either check; `reason`: why, in words;
    - `identified`: no parameter fails.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    condition: float
    rel_std_error: np.ndarray
    weak: tuple[int, ...]
    threshold: float
    max_rel_se: float
    reason: str

    @property
    def identified(self) -> bool:
        return not self.weak

    def summary(self) -> str:
        head = f"identifiability: condition number {self.condition:.3g} over {len(self.eigenvalues)} parameters"
        return head + ("; all identified" if self.identified else f"; NOT identified: {self.reason}")


def identifiability(
    obj, observations, *, threshold: float = 1e-8, max_rel_se: float = 0.1, max_trajectories: int = 32
) -> Identifiability:
    """The identifiability diagnostic of a `Constant`/`PiecewiseConstant` path at a fit (see
    `Identifiability`), on the first ``max_trajectories`` trajectories of ``observations``. Warns
    (`IdentifiabilityWarning`) when some parameters are not identified."""
    model, q, y, mask = _setup(obj, observations)
    y, mask = y[:max_trajectories], mask[:max_trajectories]
    r, J = map(np.asarray, _jacobian(model, q, y, mask))
    P = q.size
    Jr = J.reshape(-1, P) * np.abs(np.asarray(q))[None, :]  # ∂r/∂ log q
    H = Jr.T @ Jr
    lam, vec = np.linalg.eigh(H)
    lam, vec = np.clip(lam[::-1], 0.0, None), vec[:, ::-1]
    top = lam[0] if lam[0] > 0 else 1.0
    flat = np.flatnonzero(lam < threshold * top)
    m = np.asarray(mask)
    dof = max(int(m[:, 1:].sum() - m[:, 1:].all(-1).sum() - P), 1)
    sigma2 = float((r**2).sum() / dof)
    Hinv = np.linalg.pinv(H, hermitian=True)
    var = sigma2 * np.diag(Hinv)
    K = r.shape[0]
    if K >= 2:  # trajectory-clustered sandwich: robust to errors correlated within a trajectory (noisy μ₀)
        scores = np.einsum("kip,ki->kp", (J * np.abs(np.asarray(q))).reshape(K, -1, P), r.reshape(K, -1))
        var = np.maximum(var, np.diag(Hinv @ (scores.T @ scores) @ Hinv) * K / (K - 1))
    rel_se = np.sqrt(np.clip(var, 0.0, None))
    rel_se[[i for j in flat for i in np.flatnonzero(np.abs(vec[:, j]) >= 0.3)]] = np.inf
    cond = float(lam[0] / lam[-1]) if lam[-1] > 0 else float("inf")
    parts = [
        f"direction {j + 1} of log-parameters (eigenvalue {lam[j] / top:.2g} × the largest) loads on parameters "
        + ", ".join(f"{i} ({vec[i, j]:+.2f})" for i in np.flatnonzero(np.abs(vec[:, j]) >= 0.3))
        + ": the flows barely change along it, so these parameters (or their combination) are not determined by "
        "the observations"
        for j in flat
    ]
    loose = [i for i in range(P) if np.isfinite(rel_se[i]) and rel_se[i] > max_rel_se]
    if loose:
        parts.append(
            "relative standard errors above " + f"{max_rel_se:.0%}: "
            + ", ".join(f"parameter {i} ±{rel_se[i]:.0%}" for i in loose)
            + f" (Gauss–Newton or clustered sandwich, residual variance {sigma2:.2g}): the noise leaves them "
            "undetermined to that precision"
        )
    weak = sorted({int(i) for i in np.flatnonzero(~np.isfinite(rel_se))} | set(loose))
    reason = "; ".join(parts)
    if weak:
        reason += "; fix some parameters, observe more states or trajectories, or add a prior"
        warnings.warn(f"parameters {weak} are not identified: {reason}", IdentifiabilityWarning, stacklevel=2)
    return Identifiability(lam, vec, cond, rel_se, tuple(weak), float(threshold), float(max_rel_se), reason)
