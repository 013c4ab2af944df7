"""Splits of observations by group (town, region, season): no group is in two parts."""

from __future__ import annotations

import numpy as np

from ..data import DataError, Observations


def split_by(observations: Observations, key: str, *, val: float = 0.15, test: float = 0.2, seed: int = 0):
    """{"train", "val", "test"} with whole groups ``metadata["trajectories"][k][key]`` (e.g. "town")
    in each part: round(val·G) and round(test·G) of the G groups, at least one each when the
    fraction is positive, drawn with ``seed``; the rest train."""
    meta = observations.metadata.get("trajectories")
    if meta is None or any(key not in m for m in meta):
        raise DataError(f"cannot split by {key!r}: the observations' metadata['trajectories'] lack that key")
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DataError(f"val and test fractions must be in [0, 1) with val + test < 1, got {val}, {test}")
    labels = np.array([str(m[key]) for m in meta])
    groups = np.random.default_rng(seed).permutation(np.unique(labels))
    G = groups.size
    n_test = max(int(round(test * G)), int(test > 0))
    n_val = max(int(round(val * G)), int(val > 0))
    if n_test + n_val >= G:
        raise DataError(f"{G} groups by {key!r} are too few for val {val} and test {test}")
    parts = {"test": groups[:n_test], "val": groups[n_test : n_test + n_val], "train": groups[n_test + n_val :]}
    out = {}
    for name, members in parts.items():
        out[name] = observations.subset(np.flatnonzero(np.isin(labels, members))) if members.size else None
    return out
