"""`Observations`: observed population flows y[K, N, S] with a mask, checked when built."""

from __future__ import annotations

import warnings

import json
import pathlib
import zipfile
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._atomic import atomic_open
from ._io import check_member
from ._errors import DataError

SUM_TOL = 1e-6
_FORMAT = "mfgx.Observations/1"


class Observations(eqx.Module):
    r"""K observed trajectories of a population flow over N time points and S states.

    **Arguments:**

    - `values`: y[K, N, S] (or [N, S] for a single trajectory). Entries that are not observed
      may hold anything, NaN included; they are stored as 0.
    - `mask`: which entries are observed: [S] (e.g. only the infected compartment), [N, S] or
      [K, N, S], booleans. Default: the finite entries of `values`.
    - `times`: the N observation times (strictly increasing), for the record and for plots.
    - `labels`: S state names. `noise`: the observation noise level, if known.
    - `covariates`: x[K, N, C] finite floats known along each trajectory (e.g. a school-term
      indicator per week), or [N, C] shared by all trajectories; `covariate_labels`: C names.
    - `metadata`: anything JSON-like (source, seed, generating parameters). The key
      ``"trajectories"``, if present, is a list of K per-trajectory records (e.g. town and start
      date); `subset` and `split` select from it.

    Checked here: shapes, finite observed values, no negative mass, and every fully observed row
    y[k, n, :] sums to 1 (partially observed rows must not exceed 1). Errors (`DataError`) name
    the first bad trajectory, time and state.
    """

    values: Float[Array, "K N S"]
    mask: Bool[Array, "K N S"]
    times: Float[Array, " N"] | None
    covariates: Float[Array, "K N C"] | None
    labels: tuple[str, ...] | None = eqx.field(static=True)
    covariate_labels: tuple[str, ...] | None = eqx.field(static=True)
    noise: float | None = eqx.field(static=True)
    metadata: dict[str, Any]

    def __init__(
        self,
        values,
        mask=None,
        *,
        times=None,
        labels=None,
        noise=None,
        covariates=None,
        covariate_labels=None,
        metadata=None,
    ):
        y = np.array(values, dtype=float)
        if y.ndim == 2:
            y = y[None]
        if y.ndim != 3:
            raise DataError(f"values must have shape [K, N, S] (or [N, S]), got shape {y.shape}")
        K, N, S = y.shape
        if K < 1 or N < 1 or S < 1:
            raise DataError(f"values must be non-empty, got shape {y.shape}")
        if mask is None:
            if np.isinf(y).any():  # NaN marks a missing entry; ±inf is a broken value, not a gap
                k, n, s = _first(np.isinf(y))
                raise DataError(f"value is not finite ({y[k, n, s]}) at trajectory {k}, time {n}, state {s}; "
                                "mark missing entries with NaN (or pass a mask)")
            m = ~np.isnan(y)
        else:
            m = np.asarray(mask)
            if m.dtype != bool:
                if not np.all(np.isin(m, (0, 1))):
                    raise DataError("mask must be boolean (or 0/1)")
                m = m.astype(bool)
            if m.shape not in ((S,), (N, S), (K, N, S)):
                raise DataError(
                    f"mask must have shape [S] = {(S,)}, [N, S] = {(N, S)} or [K, N, S] = {(K, N, S)}, got {m.shape}"
                )
            m = np.broadcast_to(m, y.shape).copy()
        if not m.any():
            raise DataError("mask observes nothing")
        bad = m & ~np.isfinite(y)
        if bad.any():
            k, n, s = _first(bad)
            raise DataError(f"observed value is not finite ({y[k, n, s]}) at trajectory {k}, time {n}, state {s}")
        y = np.where(m, y, 0.0)
        if np.any(y < 0):
            k, n, s = np.unravel_index(int(np.argmin(y)), y.shape)
            raise DataError(
                f"negative mass: {int((y < 0).sum())} entries < 0, the most negative {y[k, n, s]:.3g} at trajectory {k}, "
                f"time {n}, state {s}"
            )
        rows = y.sum(-1)
        full = m.all(-1)
        bad = full & (np.abs(rows - 1) > SUM_TOL)
        if bad.any():
            k, n = _first(bad)
            raise DataError(
                f"fully observed row at trajectory {k}, time {n} sums to {rows[k, n]:.8g}, not 1 "
                f"(tolerance {SUM_TOL:g}); normalise the flow or mask what is not observed"
            )
        bad = ~full & (rows > 1 + SUM_TOL)
        if bad.any():
            k, n = _first(bad)
            raise DataError(f"observed mass at trajectory {k}, time {n} sums to {rows[k, n]:.8g} > 1")
        if times is not None:
            times = np.asarray(times, dtype=float)
            if times.shape != (N,):
                raise DataError(f"times must have shape [N] = {(N,)}, got {times.shape}")
            if not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
                raise DataError("times must be finite and strictly increasing")
            times = jnp.asarray(times)
        if labels is not None:
            labels = _names(labels, "labels")
            if len(labels) != S:
                raise DataError(f"labels must name the S = {S} states, got {len(labels)}")
        if noise is not None:
            noise = float(noise)
            if not (np.isfinite(noise) and noise >= 0):
                raise DataError(f"noise must be a non-negative number, got {noise}")
        covariates, covariate_labels = _check_covariates(covariates, covariate_labels, K, N)
        metadata = dict(metadata or {})
        if "trajectories" in metadata:
            per = metadata["trajectories"]
            if isinstance(per, (str, bytes)) or not isinstance(per, Sequence) or len(per) != K:
                raise DataError(
                    f'metadata["trajectories"] must be a list of K = {K} per-trajectory records, '
                    f"got {type(per).__name__}" + (f" of length {len(per)}" if isinstance(per, Sequence) else "")
                )
            metadata["trajectories"] = list(per)
        _warn_if_sparse(m)
        self.values, self.mask = jnp.asarray(y), jnp.asarray(m)
        self.times, self.labels, self.noise = times, labels, noise
        self.covariates, self.covariate_labels = covariates, covariate_labels
        self.metadata = metadata

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
        """The trajectories ``index`` (integers, a slice or a boolean mask), everything else kept;
        covariates and ``metadata["trajectories"]`` are selected alongside."""
        idx = np.arange(self.n_trajectories)[index]
        idx = np.atleast_1d(idx)
        if idx.size == 0:
            raise DataError("subset selects no trajectory")
        metadata = dict(self.metadata)
        if "trajectories" in metadata:
            metadata["trajectories"] = [metadata["trajectories"][i] for i in idx]
        return Observations(
            np.asarray(self.values)[idx],
            np.asarray(self.mask)[idx],
            times=self.times,
            labels=self.labels,
            noise=self.noise,
            covariates=None if self.covariates is None else np.asarray(self.covariates)[idx],
            covariate_labels=self.covariate_labels,
            metadata=metadata,
        )

    __getitem__ = subset

    def split(self, train: float = 0.8, val: float = 0.1, test: float = 0.1, seed: int = 0):
        """Split by trajectory into (train, val, test), shuffled by ``seed``.

        Fractions (summing to 1) or counts (summing to K). A part of size 0 is returned as None;
        a positive fraction that rounds to no trajectory is an error."""
        K = self.n_trajectories
        sizes = np.array([train, val, test], dtype=float)
        if not np.all(np.isfinite(sizes)) or np.any(sizes < 0):
            raise DataError(f"split sizes must be non-negative, got {tuple(sizes)}")
        if abs(sizes.sum() - 1) <= 1e-9:
            # Largest remainders: the counts sum to K and each is within 1 of its share.
            share = sizes * K
            counts = np.floor(share).astype(int)
            extra = max(int(K - counts.sum()), 0)
            counts[np.argsort(-(share - counts), kind="stable")[:extra]] += 1
            for name, s, c in zip(("train", "val", "test"), sizes, counts):
                if s > 0 and c < 1:
                    raise DataError(f"{name} fraction {s} gives no trajectory out of K = {K}")
        elif all(float(s).is_integer() for s in sizes) and sizes.sum() == K:
            counts = sizes.astype(int)
        else:
            raise DataError(f"split fractions must sum to 1 (or counts to K = {K}), got {tuple(sizes)}")
        order = np.random.default_rng(seed).permutation(K)
        bounds = np.cumsum(counts)[:-1]
        return tuple(self.subset(part) if part.size else None for part in np.split(order, bounds))

    def save(self, path) -> pathlib.Path:
        """Write to one ``.npz`` file (arrays, plus labels/noise/metadata as a JSON string).

        Written atomically: to a temporary file in the same folder, then moved into place with
        `os.replace`, so an error leaves no partial file. Metadata must be JSON-serialisable
        (NumPy scalars and arrays are converted)."""
        path = pathlib.Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        try:
            header = json.dumps(
                {
                    "format": _FORMAT,
                    "labels": self.labels,
                    "covariate_labels": self.covariate_labels,
                    "noise": self.noise,
                    "metadata": self.metadata,
                },
                default=_json_default,
                allow_nan=False,
            )
        except (TypeError, ValueError) as err:
            raise DataError(f"cannot save {path}: metadata is not JSON-serialisable ({err})") from None
        arrays = {"values": np.asarray(self.values), "mask": np.asarray(self.mask), "header": np.array(header)}
        if self.times is not None:
            arrays["times"] = np.asarray(self.times)
        if self.covariates is not None:
            arrays["covariates"] = np.asarray(self.covariates)
        if not path.parent.is_dir():
            raise DataError(f"cannot save {path}: folder {path.parent} does not exist")
        with atomic_open(path) as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "Observations":
        """Read a file written by `save` (validated again on the way in)."""
        path = pathlib.Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                for info in z.zip.infolist():  # declared sizes checked before anything is decompressed
                    check_member(info, path, MAX_NPZ_BYTES)
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(f"{path}: not an Observations .npz file ({err})") from None
        try:
            header = json.loads(str(arrays.pop("header")))
            if header.get("format") != _FORMAT:
                raise ValueError(f"unknown format {header.get('format')!r}")
            values, mask = arrays.pop("values"), arrays.pop("mask")
        except (KeyError, ValueError) as err:
            raise DataError(f"{path}: not an Observations .npz file ({err})") from None
        return cls(
            values,
            mask,
            times=arrays.get("times"),
            labels=header["labels"],
            noise=header["noise"],
            covariates=arrays.get("covariates"),
            covariate_labels=header["covariate_labels"],
            metadata=header["metadata"],
        )

    def __repr__(self) -> str:
        K, N, S = self.values.shape
        observed = float(np.asarray(self.mask).mean())
        cov = "" if self.covariates is None else f", C={self.covariates.shape[-1]}"
        return f"Observations(K={K}, N={N}, S={S}{cov}, observed={observed:.0%}, noise={self.noise})"


MAX_NPZ_BYTES = 2**30  # 1 GiB per array of an Observations file (a study's flows are kilobytes to megabytes)


class SparseDataWarning(UserWarning):
    """Most entries of the observations are missing, or some trajectories carry almost nothing."""


SPARSE_FRACTION = 0.5  # warn when fewer than this share of the entries is observed


def _warn_if_sparse(m) -> None:
    """Warn when observations are mostly missing: fewer than half the entries of the states that are
    observed at all (compartments never observed, such as S and R of prevalence data, are a design,
    not missing data), or whole trajectories observed at fewer than 2 times."""
    frac = float(m[..., m.any((0, 1))].mean())
    per_time = m.any(-1).sum(-1)  # [K]: times with at least one observed state
    thin = np.flatnonzero(per_time < 2)
    parts = []
    if frac < SPARSE_FRACTION:
        parts.append(f"only {frac:.1%} of the entries of the observed states are present")
    if thin.size:
        parts.append(f"{thin.size} trajectories are observed at fewer than 2 times (e.g. {thin[:5].tolist()})")
    if parts:
        warnings.warn(
            "sparse observations: " + "; ".join(parts) + ". Fits to them are weakly determined; check the mask, "
            "or drop those trajectories.",
            SparseDataWarning,
            stacklevel=_caller_level(),
        )


def _caller_level() -> int:
    """The `warnings.warn` stacklevel of the first frame outside mfgx and Equinox (Observations is
    an `eqx.Module`, so its ``__init__`` runs under Equinox's metaclass)."""
    import sys

    frame, level = sys._getframe(2), 2
    while frame is not None and any(part in frame.f_code.co_filename for part in ("/mfgx/", "/equinox/")):
        frame, level = frame.f_back, level + 1
    return level


def _check_covariates(covariates, covariate_labels, K, N):
    if covariates is None:
        if covariate_labels is not None:
            raise DataError("covariate_labels given without covariates")
        return None, None
    x = np.array(covariates, dtype=float)
    if x.ndim == 2:
        x = np.broadcast_to(x, (K, *x.shape))
    if x.ndim != 3 or x.shape[:2] != (K, N) or x.shape[2] < 1:
        raise DataError(f"covariates must have shape [K, N, C] = [{K}, {N}, C] (or [N, C]), got {np.shape(covariates)}")
    bad = ~np.isfinite(x)
    if bad.any():
        k, n, c = _first(bad)
        raise DataError(f"covariate is not finite ({x[k, n, c]}) at trajectory {k}, time {n}, covariate {c}")
    if covariate_labels is not None:
        covariate_labels = _names(covariate_labels, "covariate_labels")
        if len(covariate_labels) != x.shape[2]:
            raise DataError(f"covariate_labels must name the C = {x.shape[2]} covariates, got {len(covariate_labels)}")
    return jnp.asarray(x), covariate_labels


def _names(names, what) -> tuple[str, ...]:
    if isinstance(names, str):
        raise DataError(f"{what} must be a sequence of names, got the string {names!r}")
    return tuple(str(x) for x in names)


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (pathlib.PurePath,)):
        return str(x)
    raise TypeError(f"{type(x).__name__} is not JSON-serialisable")


def _first(mask) -> tuple:
    return tuple(int(i) for i in np.argwhere(mask)[0])
