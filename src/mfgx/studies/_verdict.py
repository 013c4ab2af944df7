r"""One verdict rule for every study: "better" only when the interval excludes zero.

The input is a table of paired differences d[s, r] = score(peer) − score(model) (positive: the model
is better) over seeds s and held-out regions r (NaN where region r was not held out under seed s).
Two 95 % intervals are formed and the verdict uses the wider of them (their union):

- **over seeds**: Student-t interval of the seed means d̄_s = mean_r d[s, r] (S − 1 degrees of
  freedom; infinite for one seed: a single seed cannot show a difference);
- **over regions**: percentile bootstrap (resampling regions) of the mean of the region means
  d̄_r = mean_s d[s, r] (infinite for one region).

"better" when the lower end is > 0, "worse" when the upper end is < 0, else "no significant
difference" (a zero-width interval at 0, e.g. two identical models, is no difference).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

BETTER, WORSE, TIE = "better", "worse", "no significant difference"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The verdict on paired differences (see the module docstring)."""

    label: str
    mean: float
    low: float
    high: float
    seeds: tuple[float, float]  # the interval over seeds
    regions: tuple[float, float]  # the interval over regions
    n_seeds: int
    n_regions: int
    level: float = 0.95

    def sentence(self, model: str, peer: str, what: str = "") -> str:
        """E.g. "mfg vs sir: better (+1.2, 95 % interval [0.3, 2.1] over 5 seeds × 12 regions)"."""
        pct = int(round(100 * self.level))
        return (f"{model} vs {peer}{' ' + what if what else ''}: **{self.label}** (mean {self.mean:+.3g}, {pct} % interval "
                f"[{self.low:+.3g}, {self.high:+.3g}] over {self.n_seeds} seed(s) × {self.n_regions} region(s))")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _t_interval(x: np.ndarray, level: float) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size < 2:
        return -math.inf, math.inf
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def _bootstrap(x: np.ndarray, level: float, n_boot: int, seed: int) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size < 2:
        return -math.inf, math.inf
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(1)
    lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return float(lo), float(hi)


def verdict(diff, *, level: float = 0.95, n_boot: int = 4000, seed: int = 0) -> Verdict:
    """The verdict on d[S, R] (or d[S] for one region per seed); see the module docstring."""
    d = np.asarray(diff, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2 or not np.isfinite(d).any():
        raise ValueError(f"verdict needs a table d[seeds, regions] with finite entries, got shape {d.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    seeds = d[np.isfinite(d).any(1)]
    seed_means = np.array([np.nanmean(r) for r in seeds])
    cols = d[:, np.isfinite(d).any(0)]
    region_means = np.array([np.nanmean(c) for c in cols.T])
    s_int = _t_interval(seed_means, level)
    r_int = _bootstrap(region_means, level, n_boot, seed) if region_means.size > 1 else (-math.inf, math.inf)
    if d.shape[1] == 1:  # one region: the interval over seeds alone
        r_int = s_int
    low, high = min(s_int[0], r_int[0]), max(s_int[1], r_int[1])
    label = BETTER if low > 0 else WORSE if high < 0 else TIE
    return Verdict(label, float(np.nanmean(d)), low, high, s_int, r_int, int(seed_means.size), int(region_means.size), level)
