"""Occupancy flows from timed moves between zones: the Citi Bike protocol of the calibration paper
(§6.5), shared by `citibike_occupancy` and `nyc_flights` (one implementation, two front-ends).

A day's clock window [start, end) is cut into N bins of ``bin_minutes``. With dep_n(x) and
arr_n(x) the departures from and arrivals at zone x in bin n,

    c_n(x) = c_0(x) + Σ_{m ≤ n} (arr_m(x) − dep_m(x)),   μ_n = max(c_n, 1) / Σ_x max(c_n(x), 1),

with nominal initial counts c_0. Days are split as in the paper: weekdays in date order, the first
⌊f·n⌋ for training and the rest test-ID; weekend days test-OOD (out of distribution).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._errors import DataError
from ._observations import Observations

_NS_PER_MIN = 60 * 10**9


def clock_minutes(text: str, what: str) -> int:
    """Minutes after midnight of "HH:MM" (24:00 allowed as the end of the day)."""
    try:
        h, m = (int(p) for p in str(text).split(":"))
    except ValueError:
        raise DataError(f"{what} must read 'HH:MM', got {text!r}") from None
    if not (0 <= m < 60 and 0 <= h * 60 + m <= 24 * 60):
        raise DataError(f"{what} must be a clock time between 00:00 and 24:00, got {text!r}")
    return h * 60 + m


class Bins:
    """The bins of the clock window ``start``–``end`` (``"HH:MM"``) of ``bin_minutes`` each."""

    def __init__(self, bin_minutes: int, start: str, end: str):
        lo, hi = clock_minutes(start, "start"), clock_minutes(end, "end")
        if not (isinstance(bin_minutes, (int, np.integer)) and bin_minutes > 0):
            raise DataError(f"bin_minutes must be a positive whole number, got {bin_minutes!r}")
        if hi <= lo or (hi - lo) % bin_minutes:
            raise DataError(
                f"the window {start}–{end} must be non-empty and a whole number of {bin_minutes}-minute bins"
            )
        self.start, self.end, self.minutes = start, end, int(bin_minutes)
        self.lo, self.n = lo, (hi - lo) // bin_minutes

    def of(self, ns_after_midnight: np.ndarray) -> np.ndarray:
        """Bin index ⌊(t − start)/bin⌋ of times in nanoseconds after midnight; −1 outside the window
        (and for NaN/NaT-derived negatives)."""
        b = (np.asarray(ns_after_midnight, dtype=np.int64) - self.lo * _NS_PER_MIN) // (self.minutes * _NS_PER_MIN)
        return np.where((b >= 0) & (b < self.n), b, -1)

    def of_times(self, t: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """(day as datetime64[D], bin) of timestamps; bin −1 outside the window or for NaT."""
        t = pd.to_datetime(t)
        day = t.dt.normalize()
        ns = (t - day).to_numpy().astype("timedelta64[ns]").astype(np.int64)
        b = np.where(t.isna().to_numpy(), -1, self.of(np.where(t.isna().to_numpy(), 0, ns)))
        return day.to_numpy().astype("datetime64[D]"), b

    @property
    def hours(self) -> np.ndarray:
        """Clock time (hours) at the end of each bin: the time at which μ_n is observed."""
        return (self.lo + self.minutes * np.arange(1, self.n + 1)) / 60.0


def rank_zones(ids: pd.Series, top_k: int, what: str) -> list[str]:
    """The ``top_k`` most frequent ids (ties broken by id), as strings."""
    if not (isinstance(top_k, (int, np.integer)) and top_k >= 1):
        raise DataError(f"top_k must be a positive whole number, got {top_k!r}")
    counts = ids.dropna().astype(str).value_counts()
    if len(counts) < top_k:
        raise DataError(f"top_k = {top_k} but the data have only {len(counts)} distinct {what}")
    order = pd.DataFrame({"id": counts.index.astype(str), "n": counts.to_numpy()})
    order = order.sort_values(["n", "id"], ascending=[False, True], kind="mergesort")
    return order["id"].head(top_k).tolist()


def zone_index(ids: pd.Series, zones: list[str]) -> np.ndarray:
    """Index of each id among ``zones``; len(zones) (the "External" state) for others and missing."""
    lookup = pd.Index(zones)
    idx = lookup.get_indexer(ids.astype(object).where(ids.notna(), None))
    return np.where(idx < 0, len(zones), idx)


def occupancy(
    departures: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    arrivals: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    days: np.ndarray,
    bins: Bins,
    labels: list[str],
    initial,
    train_fraction: float,
    metadata: dict,
) -> dict[str, Observations | None]:
    """Observations {"train", "test_id", "test_ood"} of the occupancy shares from events given as
    (day datetime64[D], bin, zone) arrays; events on other days or with bin −1 are ignored."""
    S, N = len(labels), bins.n
    c0 = np.asarray(initial, dtype=float)
    if c0.shape == (2,):
        c0 = np.r_[np.full(S - 1, c0[0]), c0[1]]
    if c0.shape != (S,) or not np.all(np.isfinite(c0)) or np.any(c0 <= 0):
        raise DataError(
            f"initial must be positive counts (per zone, External) or one per state ({S}), got {initial!r}"
        )
    if not (0 < train_fraction < 1):
        raise DataError(f"train_fraction must be in (0, 1), got {train_fraction}")
    days = np.unique(np.asarray(days, dtype="datetime64[D]"))
    if days.size == 0:
        raise DataError("no event falls in the clock window on any day")
    D = days.size

    def count(events):
        if events is None:
            return np.zeros((D, N, S))
        day, b, z = events
        d = np.searchsorted(days, day)
        ok = (b >= 0) & (d < D)
        ok &= days[np.minimum(d, D - 1)] == day
        flat = (d[ok] * N + b[ok]) * S + z[ok]
        return np.bincount(flat, minlength=D * N * S).reshape(D, N, S).astype(float)

    dep, arr = count(departures), count(arrivals)
    counts = c0 + np.cumsum(arr - dep, axis=1)
    floored = int(np.sum(counts < 1))
    counts = np.maximum(counts, 1.0)
    mu = counts / counts.sum(-1, keepdims=True)

    weekday = ((days.astype(np.int64) + 3) % 7) < 5  # 1970-01-01 was a Thursday (Mon = 0)
    wd = np.flatnonzero(weekday)
    n_train = int(np.floor(train_fraction * wd.size))
    parts = {"train": wd[:n_train], "test_id": wd[n_train:], "test_ood": np.flatnonzero(~weekday)}
    meta = {
        **metadata,
        "bin_minutes": bins.minutes,
        "window": f"{bins.start}-{bins.end}",
        "initial": c0.tolist(),
        "floored_entries": floored,
        "time_unit": "hour of day at the end of each bin",
    }
    out = {}
    for part, idx in parts.items():
        records = [
            {"date": str(days[i]), "day_type": "weekday" if weekday[i] else "weekend",
             "departures": int(dep[i].sum()), "arrivals": int(arr[i].sum())}
            for i in idx
        ]
        out[part] = (
            Observations(mu[idx], times=bins.hours, labels=labels, metadata={**meta, "trajectories": records})
            if idx.size
            else None
        )
    return out
