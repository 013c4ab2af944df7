"""`Observations`: observed population flows y[K, N, S] with a mask, checked when built."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._errors import CalibrationError

SUM_TOL = 1e-6


class Observations(eqx.Module):
    r"""K observed trajectories of a population flow over N time points and S states.

    **Arguments:**

    - `values`: y[K, N, S] (or [N, S] for a single trajectory). Entries that are not observed
      may hold anything, NaN included; they are stored as 0.
    - `mask`: which entries are observed: [S] (e.g. only the infected compartment), [N, S] or
      [K, N, S], booleans. Default: the finite entries of `values`.
    - `times`: the N observation times (strictly increasing), for the record and for plots.
    - `labels`: S state names. `noise`: the observation noise level, if known.
    - `metadata`: anything JSON-like (source, seed, generating parameters).

    Checked here: shapes, finite observed values, no negative mass, and every fully observed row
    y[k, n, :] sums to 1 (partially observed rows must not exceed 1). Errors name the first bad
    trajectory, time and state.
    """

    values: Float[Array, "K N S"]
    mask: Bool[Array, "K N S"]
    times: Float[Array, " N"] | None
    labels: tuple[str, ...] | None = eqx.field(static=True)
    noise: float | None = eqx.field(static=True)
    metadata: dict[str, Any]

    def __init__(self, values, mask=None, *, times=None, labels=None, noise=None, metadata=None):
        y = np.array(values, dtype=float)
        if y.ndim == 2:
            y = y[None]
        if y.ndim != 3:
            raise CalibrationError(f"values must have shape [K, N, S] (or [N, S]), got shape {y.shape}")
        K, N, S = y.shape
        if K < 1 or N < 1 or S < 1:
            raise CalibrationError(f"values must be non-empty, got shape {y.shape}")
        if mask is None:
            m = np.isfinite(y)
        else:
            m = np.asarray(mask)
            if m.dtype != bool:
                if not np.all(np.isin(m, (0, 1))):
                    raise CalibrationError("mask must be boolean (or 0/1)")
                m = m.astype(bool)
            if m.shape not in ((S,), (N, S), (K, N, S)):
                raise CalibrationError(
                    f"mask must have shape [S] = {(S,)}, [N, S] = {(N, S)} or [K, N, S] = {(K, N, S)}, got {m.shape}"
                )
            m = np.broadcast_to(m, y.shape).copy()
        if not m.any():
            raise CalibrationError("mask observes nothing")
        bad = m & ~np.isfinite(y)
        if bad.any():
            k, n, s = _first(bad)
            raise CalibrationError(f"observed value is not finite ({y[k, n, s]}) at trajectory {k}, time {n}, state {s}")
        y = np.where(m, y, 0.0)
        if np.any(y < 0):
            k, n, s = _first(y < 0)
            raise CalibrationError(f"negative mass {y[k, n, s]:.3g} at trajectory {k}, time {n}, state {s}")
        rows = y.sum(-1)
        full = m.all(-1)
        bad = full & (np.abs(rows - 1) > SUM_TOL)
        if bad.any():
            k, n = _first(bad)
            raise CalibrationError(
                f"fully observed row at trajectory {k}, time {n} sums to {rows[k, n]:.8g}, not 1 "
                f"(tolerance {SUM_TOL:g}); normalise the flow or mask what is not observed"
            )
        bad = ~full & (rows > 1 + SUM_TOL)
        if bad.any():
            k, n = _first(bad)
            raise CalibrationError(f"observed mass at trajectory {k}, time {n} sums to {rows[k, n]:.8g} > 1")
        if times is not None:
            times = np.asarray(times, dtype=float)
            if times.shape != (N,):
                raise CalibrationError(f"times must have shape [N] = {(N,)}, got {times.shape}")
            if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
                raise CalibrationError("times must be finite and strictly increasing")
            times = jnp.asarray(times)
        if labels is not None:
            labels = tuple(str(x) for x in labels)
            if len(labels) != S:
                raise CalibrationError(f"labels must name the S = {S} states, got {len(labels)}")
        if noise is not None:
            noise = float(noise)
            if not (np.isfinite(noise) and noise >= 0):
                raise CalibrationError(f"noise must be a non-negative number, got {noise}")
        self.values, self.mask = jnp.asarray(y), jnp.asarray(m)
        self.times, self.labels, self.noise = times, labels, noise
        self.metadata = dict(metadata or {})

    @property
    def n_trajectories(self) -> int:
        return self.values.shape[0]

    @property
    def n_times(self) -> int:
        return self.values.shape[1]

    @property
    def n_states(self) -> int:
        return self.values.shape[2]

    @property
    def fully_observed(self) -> bool:
        return bool(np.all(np.asarray(self.mask)))

    def __len__(self) -> int:
        return self.n_trajectories

    def subset(self, index) -> "Observations":
        """The trajectories ``index`` (integers, a slice or a boolean mask), everything else kept."""
        idx = np.arange(self.n_trajectories)[index]
        idx = np.atleast_1d(idx)
        if idx.size == 0:
            raise CalibrationError("subset selects no trajectory")
        return Observations(
            np.asarray(self.values)[idx], np.asarray(self.mask)[idx], times=self.times, labels=self.labels,
            noise=self.noise, metadata=self.metadata,
        )

    __getitem__ = subset

    def split(self, train: float = 0.8, val: float = 0.1, test: float = 0.1, seed: int = 0):
        """Split by trajectory into (train, val, test), shuffled by ``seed``.

        Fractions (summing to 1) or counts (summing to K). A part of size 0 is returned as None;
        a positive fraction that rounds to no trajectory is an error."""
        K = self.n_trajectories
        sizes = np.array([train, val, test], dtype=float)
        if np.any(sizes < 0):
            raise CalibrationError(f"split sizes must be non-negative, got {tuple(sizes)}")
        if all(float(s).is_integer() for s in sizes) and sizes.sum() == K and sizes.max() > 1:
            counts = sizes.astype(int)
        else:
            if abs(sizes.sum() - 1) > 1e-9:
                raise CalibrationError(f"split fractions must sum to 1 (or counts to K = {K}), got {tuple(sizes)}")
            counts = np.round(sizes * K).astype(int)
            counts[0] = K - counts[1:].sum()
            for name, s, c in zip(("train", "val", "test"), sizes, counts):
                if s > 0 and c < 1:
                    raise CalibrationError(f"{name} fraction {s} gives no trajectory out of K = {K}")
        order = np.random.default_rng(seed).permutation(K)
        bounds = np.cumsum(counts)[:-1]
        return tuple(self.subset(part) if part.size else None for part in np.split(order, bounds))

    def __repr__(self) -> str:
        K, N, S = self.values.shape
        observed = float(np.asarray(self.mask).mean())
        return f"Observations(K={K}, N={N}, S={S}, observed={observed:.0%}, noise={self.noise})"


def _first(mask) -> tuple:
    return tuple(int(i) for i in np.argwhere(mask)[0])
