r"""`PathData`: what a neural MFG is trained on. B independent datasets, each observed at the same
T times: particle clouds (samples of the population) and/or statistics of the population,
with masks, an initial cloud to start the simulation from, and optional covariates."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._errors import NeuralError


def _finite(a, what):
    bad = np.argwhere(~np.isfinite(a))
    if bad.size:
        raise NeuralError(f"{what} has a non-finite value at index {tuple(int(i) for i in bad[0])}")


class PathData(eqx.Module):
    r"""B datasets observed at T times t₁ < … < t_T (the simulation starts at ``t0`` ≤ t₁).

    - ``x0`` [B, N, d] (or [N, d], shared): the initial particle cloud of each dataset.
    - ``clouds`` [B, T, M, d]: observed samples at each time (compared with a distance, e.g.
      MMD); ``cloud_weights`` [B, T, M] ≥ 0 (default 1): padding gets weight 0, and a time whose
      weights are all 0 is unobserved.
    - ``stats`` [B, T, k]: observed statistics (compared by masked mean square with the loss's
      statistic of the simulated cloud); ``stat_mask`` [k], [T, k] or [B, T, k] (default: the
      finite entries).
    - ``covariates`` [B, T, C] (or [T, C], shared): c at each observation time, held until the next.
    - ``metadata``: anything JSON-like (generator, seeds, …).

    At least one of ``clouds`` and ``stats`` is required. Errors name the offending entry.
    """

    times: tuple[float, ...] = eqx.field(static=True)
    t0: float = eqx.field(static=True)
    x0: Float[Array, "B N d"]
    clouds: Float[Array, "B T M d"] | None
    cloud_weights: Float[Array, "B T M"] | None
    stats: Float[Array, "B T k"] | None
    stat_mask: Bool[Array, "B T k"] | None
    covariates: Float[Array, "B T C"] | None
    metadata: dict[str, Any]

    def __init__(
        self,
        times,
        x0,
        *,
        clouds=None,
        cloud_weights=None,
        stats=None,
        stat_mask=None,
        covariates=None,
        t0: float | None = None,
        metadata=None,
    ):
        ts = np.atleast_1d(np.asarray(times, dtype=float))
        if ts.ndim != 1 or ts.size == 0:
            raise NeuralError(f"times must be a non-empty 1-D array, got shape {ts.shape}")
        _finite(ts, "times")
        if np.any(np.diff(ts) <= 0):
            raise NeuralError(f"times must be strictly increasing, got {ts}")
        T = ts.size
        t0 = float(ts[0]) if t0 is None else float(t0)
        if not (np.isfinite(t0) and t0 <= ts[0]):
            raise NeuralError(f"t0 = {t0} must be finite and not after the first observation time {ts[0]}")
        if clouds is None and stats is None:
            raise NeuralError("PathData needs observed clouds, statistics, or both")

        B = None
        if clouds is not None:
            c = np.asarray(clouds, dtype=float)
            if c.ndim == 3:
                c = c[..., None]
            if c.ndim != 4 or c.shape[1] != T:
                raise NeuralError(f"clouds must have shape [B, T, M, d] with T = {T}, got {c.shape}")
            B = c.shape[0]
            w = np.ones(c.shape[:3]) if cloud_weights is None else np.asarray(cloud_weights, dtype=float)
            if w.shape != c.shape[:3]:
                raise NeuralError(f"cloud_weights must have shape [B, T, M] = {c.shape[:3]}, got {w.shape}")
            _finite(w, "cloud_weights")
            if np.any(w < 0):
                raise NeuralError(f"cloud_weights must be >= 0, got {w.min()} at {tuple(np.argwhere(w < 0)[0])}")
            bad = (w > 0)[..., None] & ~np.isfinite(c)
            if bad.any():
                b, t, m, j = np.argwhere(bad)[0]
                raise NeuralError(f"clouds: non-finite sample at dataset {b}, time {t}, point {m}, coordinate {j}")
            c = np.where((w > 0)[..., None], c, 0.0)
            if not (w.sum(-1) > 0).any():
                raise NeuralError("clouds: every cloud has zero total weight (nothing observed)")
            self.clouds, self.cloud_weights = jnp.asarray(c), jnp.asarray(w)
        else:
            if cloud_weights is not None:
                raise NeuralError("cloud_weights given without clouds")
            self.clouds = self.cloud_weights = None

        if stats is not None:
            s = np.asarray(stats, dtype=float)
            if s.ndim == 2 and B is None:
                s = s[None]
            if s.ndim != 3 or s.shape[1] != T:
                raise NeuralError(f"stats must have shape [B, T, k] with T = {T}, got {s.shape}")
            if B is not None and s.shape[0] != B:
                raise NeuralError(f"stats has {s.shape[0]} datasets but clouds has {B}")
            B = s.shape[0]
            if stat_mask is None:
                m = np.isfinite(s)
            else:
                m = np.asarray(stat_mask)
                if m.dtype != bool:
                    if not np.all(np.isin(m, (0, 1))):
                        raise NeuralError("stat_mask must be boolean (or 0/1)")
                    m = m.astype(bool)
                if m.shape not in (s.shape[2:], s.shape[1:], s.shape):
                    raise NeuralError(f"stat_mask must have shape [k], [T, k] or [B, T, k] for stats {s.shape}, got {m.shape}")
                m = np.broadcast_to(m, s.shape).copy()
            bad = m & ~np.isfinite(s)
            if bad.any():
                b, t, j = np.argwhere(bad)[0]
                raise NeuralError(f"stats: observed value is not finite at dataset {b}, time {t}, entry {j}")
            if not m.any():
                raise NeuralError("stat_mask observes nothing")
            self.stats, self.stat_mask = jnp.asarray(np.where(m, s, 0.0)), jnp.asarray(m)
        else:
            if stat_mask is not None:
                raise NeuralError("stat_mask given without stats")
            self.stats = self.stat_mask = None

        x = np.asarray(x0, dtype=float)
        if x.ndim == 2:
            x = np.broadcast_to(x, (B,) + x.shape)
        if x.ndim != 3 or x.shape[0] != B:
            raise NeuralError(f"x0 must have shape [N, d] or [B, N, d] with B = {B} datasets, got {np.shape(x0)}")
        _finite(x, "x0")
        if self.clouds is not None and self.clouds.shape[-1] != x.shape[-1]:
            raise NeuralError(f"clouds are in ℝ^{self.clouds.shape[-1]} but x0 in ℝ^{x.shape[-1]}")
        self.x0 = jnp.asarray(x)

        if covariates is not None:
            z = np.asarray(covariates, dtype=float)
            if z.ndim == 2:
                z = np.broadcast_to(z, (B,) + z.shape)
            if z.ndim != 3 or z.shape[:2] != (B, T):
                raise NeuralError(f"covariates must have shape [T, C] or [B, T, C] = [{B}, {T}, C], got {np.shape(covariates)}")
            _finite(z, "covariates")
            self.covariates = jnp.asarray(z)
        else:
            self.covariates = None
        self.times, self.t0 = tuple(float(v) for v in ts), t0
        self.metadata = dict(metadata or {})

    @property
    def n_datasets(self) -> int:
        return int(self.x0.shape[0])

    def __len__(self) -> int:
        return self.n_datasets

    @property
    def n_times(self) -> int:
        return len(self.times)

    @property
    def dim(self) -> int:
        return int(self.x0.shape[-1])

    def subset(self, index) -> "PathData":
        """The datasets ``index`` (ints or a boolean mask), as a new `PathData`."""
        idx = np.arange(self.n_datasets)[np.asarray(index)]
        if idx.size == 0:
            raise NeuralError("subset selects no dataset")
        pick = lambda a: None if a is None else np.asarray(a)[idx]  # noqa: E731
        meta = dict(self.metadata)
        if isinstance(meta.get("datasets"), list) and len(meta["datasets"]) == self.n_datasets:
            meta["datasets"] = [meta["datasets"][i] for i in idx]
        return PathData(
            self.times,
            pick(self.x0),
            clouds=pick(self.clouds),
            cloud_weights=pick(self.cloud_weights),
            stats=pick(self.stats),
            stat_mask=pick(self.stat_mask),
            covariates=pick(self.covariates),
            t0=self.t0,
            metadata=meta,
        )

    def split(self, val: float = 0.2, seed: int = 0) -> tuple["PathData", "PathData"]:
        """(train, validation): a random split of the datasets, ``val`` the validation fraction
        (at least one dataset each)."""
        n = self.n_datasets
        if not 0 < val < 1:
            raise NeuralError(f"val must be a fraction in (0, 1), got {val}")
        if n < 2:
            raise NeuralError("split needs at least 2 datasets")
        perm = np.random.default_rng(seed).permutation(n)
        k = min(n - 1, max(1, int(round(val * n))))
        return self.subset(np.sort(perm[k:])), self.subset(np.sort(perm[:k]))

    @classmethod
    def from_observations(cls, obs, x0, *, t0: float | None = None, times=None) -> "PathData":
        """Observed population flows (`mfgx.data.Observations`, y[K, N, S] with mask and
        covariates) as statistics of the particle cloud: compare them with e.g. `Mean` (the
        ensemble mean of population states) in `PathLoss`. ``times`` default to ``obs.times``."""
        ts = obs.times if times is None else times
        if ts is None:
            raise NeuralError("the observations carry no times: pass times=")
        meta = dict(obs.metadata)
        if "trajectories" in meta:
            meta["datasets"] = meta.pop("trajectories")
        return cls(
            np.asarray(ts),
            x0,
            stats=np.asarray(obs.values),
            stat_mask=np.asarray(obs.mask),
            covariates=None if obs.covariates is None else np.asarray(obs.covariates),
            t0=t0,
            metadata=meta,
        )

    def __repr__(self) -> str:
        parts = [f"B={self.n_datasets}", f"T={self.n_times}", f"N={self.x0.shape[1]}", f"d={self.dim}"]
        if self.clouds is not None:
            parts.append(f"clouds M={self.clouds.shape[2]}")
        if self.stats is not None:
            parts.append(f"stats k={self.stats.shape[2]}")
        if self.covariates is not None:
            parts.append(f"covariates C={self.covariates.shape[2]}")
        return f"PathData({', '.join(parts)})"
