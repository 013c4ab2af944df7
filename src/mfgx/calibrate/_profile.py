r"""Profile likelihood of one component of a finite-dimensional path.

For component i of the path's values q, the profile is

    p(v) = min_{q_{−i}, a} ‖r(q, a)‖²  subject to q_i = v,

the other components and the nuisance μ₀ re-fitted at each v (Levenberg–Marquardt from the
neighbouring point, walking outwards from q̂). With σ̂² = ‖r(q̂)‖²/ν at the minimiser, the statistic
(p(v) − p(q̂_i))/σ̂² is asymptotically χ²₁, so {v : statistic ≤ χ²₁(level)} is the likelihood-ratio
interval. Unlike the Gauss–Newton interval it follows a curved or one-sided loss; a side on which the
statistic never reaches the threshold is unbounded: the parameter is *practically* non-identifiable
there (Raue et al. 2009), a flat profile *structurally* so.
"""

from __future__ import annotations

import dataclasses
import warnings

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri

from .._progress import progress_bar
from ._errors import CalibrationError
from ._residuals import fit_nuisance, polish, problem


@dataclasses.dataclass(frozen=True)
class Profile:
    """The profile of parameter `index`: grid `values` [n], re-fitted residual sums `rss` [n],
    `statistic` [n] = (rss − rss at the estimate)/σ̂², `others` [n, P] (all components at each
    point), the `level` likelihood-ratio interval [`lower`, `upper`] (±inf where the statistic stays
    below the threshold to the end of the grid on that side) and `converged` [n]."""

    index: int
    estimate: float
    values: np.ndarray
    rss: np.ndarray
    statistic: np.ndarray
    others: np.ndarray
    converged: np.ndarray
    sigma2: float
    threshold: float
    lower: float
    upper: float
    level: float

    @property
    def bounded(self) -> bool:
        """Whether the interval is finite on both sides."""
        return bool(np.isfinite(self.lower) and np.isfinite(self.upper))

    def summary(self) -> str:
        lo = "−∞ (not reached)" if not np.isfinite(self.lower) else f"{self.lower:.6g}"
        hi = "+∞ (not reached)" if not np.isfinite(self.upper) else f"{self.upper:.6g}"
        verdict = "" if self.bounded else ": the data do not bound it on that side (practically non-identifiable)"
        return f"parameter {self.index}: estimate {self.estimate:.6g}, {self.level:.0%} profile interval [{lo}, {hi}]{verdict}"


def _crossing(v, s, threshold, side):
    """Where the statistic s(v) first exceeds ``threshold`` walking from the minimum to ``side``
    (−1 or +1), by linear interpolation; ±inf if it never does."""
    order = np.argsort(v)
    v, s = v[order], s[order]
    m = int(np.argmin(s))
    idx = range(m - 1, -1, -1) if side < 0 else range(m + 1, len(v))
    prev = m
    for j in idx:
        if s[j] > threshold:
            w = (threshold - s[prev]) / (s[j] - s[prev])
            return float(v[prev] + w * (v[j] - v[prev]))
        prev = j
    return float(side * np.inf)


def _check_values(values, lo, hi):
    values = np.asarray(values, float).ravel()
    if values.size < 2 or not np.all(np.isfinite(values)) or np.any(values <= lo) or (hi is not None and np.any(values >= hi)):
        raise CalibrationError(f"profile values must be ≥ 2 finite numbers inside the path's bounds ({lo}, {hi})")
    return values


def profile(
    obj, observations, index: int = 0, values=None, *, level: float = 0.95, n: int = 9, span: float = 4.0,
    steps: int = 20, initial: str = "nuisance", noise_model: str = "dirichlet", progress: bool = False,
) -> Profile:
    """The profile likelihood of component ``index`` of the path's values (see the module
    docstring), at a least-squares fit (polish with `refine` first, same ``initial`` and
    ``noise_model``).

    ``values``: the grid of q_i (default: ``n`` points spanning ±``span`` Gauss–Newton standard
    errors around the estimate, kept above the path's floor and below its ceiling)."""
    if not 0 < level < 1:
        raise CalibrationError(f"level must be in (0, 1), got {level}")
    prob, q = problem(obj, observations, initial, noise_model)
    q = np.asarray(q, float)
    P = q.size
    if not (isinstance(index, (int, np.integer)) and 0 <= index < P):
        raise CalibrationError(f"index must be an int in [0, {P}), got {index!r}")
    dof = prob.dof()
    if dof < 1:
        raise CalibrationError(f"not enough observations for {P} parameters (residual degrees of freedom {dof})")
    lo, hi = prob.model.path.floor, prob.model.path.upper
    if values is not None:
        _check_values(values, lo, hi)
    A0, blocks = fit_nuisance(prob, q)
    rss0, sigma2 = blocks.rss, blocks.rss / dof
    if values is None:
        S, _ = blocks.schur()
        se = float(np.sqrt(sigma2 * np.linalg.pinv(S, hermitian=True)[index, index]))
        se = se if np.isfinite(se) and se > 0 else 0.1 * max(abs(q[index]), 1.0)
        grid = q[index] + span * se * np.linspace(-1, 1, n)
        grid = np.maximum(grid, lo + 0.05 * (q[index] - lo))
        if hi is not None:
            grid = np.minimum(grid, hi - 0.05 * (hi - q[index]))
        values = np.unique(grid)
    values = _check_values(values, lo, hi)
    free = np.ones(P, bool)
    free[index] = False
    results = {}
    below, above = np.sort(values[values <= q[index]])[::-1], np.sort(values[values > q[index]])
    with progress_bar(progress, 0, values.size, label="profile", unit="points") as bar:
        for side in (below, above):  # walk outwards from the estimate, warm-starting each point
            cq, cA = q.copy(), A0
            for v in side:
                cq = cq.copy()
                cq[index] = v
                try:
                    cq, cA, b = polish(prob, jnp.asarray(cq), cA, free_q=free, steps=steps, rtol=1e-8)
                    results[float(v)] = (b.rss, np.asarray(cq), True)
                except CalibrationError:
                    results[float(v)] = (np.nan, cq.copy(), False)
                bar.update(len(results), f"q[{index}] = {v:.4g}")
    v = np.array(sorted(results))
    rss = np.array([results[x][0] for x in v])
    others = np.stack([results[x][1] for x in v])
    ok = np.array([results[x][2] for x in v])
    base = min(rss0, float(np.nanmin(rss))) if ok.any() else rss0
    if rss0 - base > 1e-3 * sigma2:
        warnings.warn(
            f"the profile of parameter {index} falls below its value at the estimate (by {(rss0 - base) / sigma2:.3g} σ̂²): "
            "the estimate is not a least-squares minimiser; polish it with calibrate.refine first",
            UserWarning, stacklevel=2,
        )
    stat = (rss - base) / sigma2
    threshold = float(ndtri(0.5 + level / 2)) ** 2  # χ²₁ quantile
    vs = np.concatenate([v[ok], [q[index]]])
    ss = np.concatenate([stat[ok], [(rss0 - base) / sigma2]])
    return Profile(int(index), float(q[index]), v, rss, stat, others, ok, float(sigma2), threshold,
                   _crossing(vs, ss, threshold, -1), _crossing(vs, ss, threshold, +1), float(level))
