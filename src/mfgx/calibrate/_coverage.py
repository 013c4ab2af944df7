r"""`coverage`: how often a model's nominal intervals contain the truth, over simulated replicates.

For r = 1…R: simulate observations at the truth (Dirichlet noise, noisy or clean μ₀), `refine` the
model from its starting values, compute the intervals of each kind and record whether they contain
the truth and the standardised errors (q̂ − q)/se. A calibrated method covers about ``level`` of
the replicates, and its standardised errors have standard deviation about 1. The reported interval
for each rate is Wilson's score interval at 95 %.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._progress import progress_bar
from ._errors import CalibrationError
from ._metrics import _as_model
from ._residuals import problem
from ._uncertainty import KINDS, bootstrap, intervals, refine


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, c - h)), float(min(1.0, c + h))


@dataclasses.dataclass(frozen=True)
class Coverage:
    """Coverage of each interval kind: ``covered[kind]`` [R, P] booleans, ``z[kind]`` [R, P]
    standardised errors, ``failed`` replicates whose fit or intervals failed (excluded)."""

    level: float
    truth: np.ndarray
    covered: dict
    z: dict
    failed: int
    settings: dict

    def rate(self, kind: str) -> np.ndarray:
        """The fraction of replicates whose interval contains the truth, per parameter."""
        return self.covered[kind].mean(0)

    def interval(self, kind: str) -> list[tuple[float, float]]:
        c = self.covered[kind]
        return [wilson(int(c[:, j].sum()), c.shape[0]) for j in range(c.shape[1])]

    def table(self) -> str:
        """A markdown table: kind, parameter, truth, coverage [Wilson 95 %], sd of z, replicates."""
        rows = [f"| interval | parameter | truth | coverage (nominal {self.level:.0%}) | 95 % CI | sd(z) | replicates |",
                "|---|---|---|---|---|---|---|"]
        for kind, c in self.covered.items():
            for j, ((lo, hi), r) in enumerate(zip(self.interval(kind), self.rate(kind))):
                rows.append(f"| {kind} | {j} | {self.truth[j]:.4g} | {r:.3f} | [{lo:.3f}, {hi:.3f}] | "
                            f"{np.std(self.z[kind][:, j]):.2f} | {c.shape[0]} |")
        return "\n".join(rows)


def coverage(
    model, truth, mu0, *, noise: float, replicates: int = 200, kinds=KINDS, level: float = 0.95,
    initial: str = "nuisance", noise_model: str = "dirichlet", noisy_initial: bool = True, seed: int = 0,
    steps: int = 20, bootstrap_replicates: int = 100, progress: bool = False,
) -> Coverage:
    """Check a model's intervals on data simulated at a known truth (see the module docstring).

    ``model``: a `CalibrationModel` with a `Constant`/`PiecewiseConstant` path, whose values are the
    fits' starting point; ``truth``: the true values (the path's shape); ``mu0`` [K, S]: the true
    initial states of the K trajectories of each replicate; ``noise``: Dirichlet noise level
    (``noisy_initial``: y₀ noisy too, the paper's protocol). ``kinds`` ⊆ ("gauss_newton",
    "sandwich", "bootstrap"); ``initial``/``noise_model`` as in `refine`."""
    from ._synthetic import simulate

    model = _as_model(model)
    bad = [k for k in kinds if k not in (*KINDS, "bootstrap")]
    if bad or not kinds:
        raise CalibrationError(f"kinds must be a non-empty subset of {(*KINDS, 'bootstrap')}, got {kinds!r}")
    if not noise > 0:
        raise CalibrationError(f"coverage needs noisy data (noise > 0), got noise = {noise}")
    if replicates < 1:
        raise CalibrationError(f"replicates must be positive, got {replicates}")
    truth = np.asarray(truth, float)
    if truth.shape != np.shape(model.path.values):
        raise CalibrationError(f"truth has shape {truth.shape}, the path's values {np.shape(model.path.values)}")
    true_path = model.path.with_values(truth)
    covered = {k: [] for k in kinds}
    zs = {k: [] for k in kinds}
    failed = 0
    with progress_bar(progress, 0, replicates, label="coverage", unit="replicates") as bar:
        for r in range(replicates):
            data = simulate(model.game, true_path, mu0, to_params=model.to_params, solver=model.solver,
                            tol=min(model.tol, 1e-10), max_steps=model.max_steps, noise=noise,
                            noisy_initial=noisy_initial, seed=seed + r)
            try:
                fitted = refine(model, data, steps=steps, initial=initial, noise_model=noise_model)
                prob, q = problem(fitted, data, initial, noise_model)
                us = intervals(prob, q, [k for k in kinds if k != "bootstrap"], level)
                if "bootstrap" in kinds:
                    us["bootstrap"] = bootstrap(fitted, data, replicates=bootstrap_replicates, level=level,
                                                seed=10**6 * (r + 1), initial=initial, noise_model=noise_model)
            except CalibrationError:
                failed += 1
                continue
            for k in kinds:
                covered[k].append(np.ravel(us[k].covers(truth)))
                zs[k].append(np.ravel((us[k].estimate - truth) / us[k].std_error))
            bar.update(r + 1, f"{failed} failed")
    if failed == replicates:
        raise CalibrationError(f"all {replicates} replicates failed to fit")
    settings = dict(noise=noise, replicates=replicates, initial=initial, noise_model=noise_model,
                    noisy_initial=noisy_initial, trajectories=int(np.shape(mu0)[0]), seed=seed)
    return Coverage(level, truth.ravel(), {k: np.array(v) for k, v in covered.items()},
                    {k: np.array(v) for k, v in zs.items()}, failed, settings)
