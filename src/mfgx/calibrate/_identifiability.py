"""The identifiability diagnostic: the Fisher spectrum of a finite-dimensional path at a fit."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from jax.scipy.special import ndtri

from ._errors import CalibrationError
from ._residuals import fit_nuisance, problem


class IdentifiabilityWarning(UserWarning):
    """Some fitted parameters are not determined by the observations (a flat direction of the loss)."""


@dataclasses.dataclass(frozen=True)
class Identifiability:
    r"""The Gauss–Newton (Fisher) spectrum of a finite-dimensional path at a fit.

    The residual model is that of `refine`/`laplace` (by default each trajectory's μ₀ a nuisance
    parameter, profiled out, and Pearson weights for compositional noise). With relative
    sensitivities (∂/∂ log q, so nothing depends on the parameters' units) and the nuisance
    profiled out, S̃ = D S D (D = diag|q|, S the Schur complement of `laplace`) has eigenvalues
    λ₁ ≥ … ≥ λ_P saying how much the flows move along each direction of log-parameters. Two checks:

    - *structural*: a direction with λ_i < ``threshold``·λ₁ is flat: the data cannot tell the
      parameters loading on it (|v_ij| ≥ 0.3) apart, or cannot see them at all;
    - *practical*: the relative standard errors, the larger of Gauss–Newton sqrt(σ̂² diag(S̃⁺)),
      σ̂² = ‖r‖²/ν, and the trajectory-clustered sandwich S̃⁺ (Σ_k s̃_k s̃_kᵀ) S̃⁺ · K/(K−1); a
      parameter whose ``level`` interval is wider than ±``precision`` (relative half-width
      z·se > precision) is not determined to that precision by these data.

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
    precision: float
    level: float
    reason: str

    @property
    def identified(self) -> bool:
        return not self.weak

    def summary(self) -> str:
        head = f"identifiability: condition number {self.condition:.3g} over {len(self.eigenvalues)} parameters"
        return head + ("; all identified" if self.identified else f"; NOT identified: {self.reason}")


def identifiability(
    obj, observations, *, precision: float = 0.1, level: float = 0.95, threshold: float = 1e-8,
    max_trajectories: int = 32, initial: str = "nuisance", noise_model: str = "dirichlet",
) -> Identifiability:
    """The identifiability diagnostic of a `Constant`/`PiecewiseConstant` path at a fit (see
    `Identifiability`), on the first ``max_trajectories`` trajectories of ``observations``, with the
    residual model of `refine` (``initial``, ``noise_model``). Warns (`IdentifiabilityWarning`)
    when some parameters are not identified."""
    if not (precision > 0 and 0 < level < 1):
        raise CalibrationError(f"precision must be > 0 and level in (0, 1), got {precision!r}, {level!r}")
    prob, q = problem(obj, observations[:max_trajectories], initial, noise_model)
    _, blocks = fit_nuisance(prob, q)
    S, inv = blocks.schur()
    P = q.size
    D = np.abs(np.asarray(q))
    H = S * np.outer(D, D)  # ∂/∂ log q
    lam, vec = np.linalg.eigh(H)
    lam, vec = np.clip(lam[::-1], 0.0, None), vec[:, ::-1]
    top = lam[0] if lam[0] > 0 else 1.0
    flat = np.flatnonzero(lam < threshold * top)
    sigma2 = blocks.rss / max(prob.dof(), 1)
    Hinv = np.linalg.pinv(H, hermitian=True)
    var = sigma2 * np.diag(Hinv)
    K = blocks.r.shape[0]
    if K >= 2:  # trajectory-clustered sandwich: robust to errors correlated within a trajectory
        scores = blocks.scores(inv) * D[None, :]
        var = np.maximum(var, np.diag(Hinv @ (scores.T @ scores) @ Hinv) * K / (K - 1))
    rel_se = np.sqrt(np.clip(var, 0.0, None))
    rel_se[[i for j in flat for i in np.flatnonzero(np.abs(vec[:, j]) >= 0.3)]] = np.inf
    cond = float(lam[0] / lam[-1]) if lam[-1] > 0 else float("inf")
    z = float(ndtri(0.5 + level / 2))
    parts = [
        f"direction {j + 1} of log-parameters (eigenvalue {lam[j] / top:.2g} × the largest) loads on parameters "
        + ", ".join(f"{i} ({vec[i, j]:+.2f})" for i in np.flatnonzero(np.abs(vec[:, j]) >= 0.3))
        + ": the flows barely change along it, so these parameters (or their combination) are not determined by "
        "the observations"
        for j in flat
    ]
    loose = [i for i in range(P) if np.isfinite(rel_se[i]) and z * rel_se[i] > precision]
    if loose:
        parts.append(
            f"{level:.0%} intervals wider than ±{precision:.0%}: "
            + ", ".join(f"parameter {i} ±{z * rel_se[i]:.0%}" for i in loose)
            + f" (relative standard error {', '.join(f'{rel_se[i]:.1%}' for i in loose)}; Gauss–Newton or "
            f"clustered sandwich, residual variance {sigma2:.2g}): the noise leaves them undetermined to that precision"
        )
    weak = sorted({int(i) for i in np.flatnonzero(~np.isfinite(rel_se))} | set(loose))
    reason = "; ".join(parts)
    if weak:
        reason += "; fix some parameters, observe more states or trajectories, or add a prior"
        warnings.warn(f"parameters {weak} are not identified: {reason}", IdentifiabilityWarning, stacklevel=2)
    return Identifiability(lam, vec, cond, rel_se, tuple(weak), float(threshold), float(precision), float(level), reason)
