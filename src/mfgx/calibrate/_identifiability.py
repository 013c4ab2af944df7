"""The identifiability diagnostic: the Fisher spectrum of a finite-dimensional path at a fit."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ._residuals import linearise, problem


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
    prob, q = problem(obj, observations[:max_trajectories], "fixed", "gaussian")
    blocks, _ = linearise(prob, q, None)
    r, J, mask = blocks.r, blocks.Jqk.reshape(*blocks.r.shape, -1), prob.mask
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
