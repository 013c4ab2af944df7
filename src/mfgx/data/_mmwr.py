"""MMWR (CDC epidemiological) weeks: week 1 of year Y is the first Sunday–Saturday week with at
least four days in Y, i.e. the week that contains 4 January. A year has 52 or 53 MMWR weeks."""

from __future__ import annotations

import numpy as np

from ._errors import DataError


def _week1_start(year) -> np.ndarray:
    """The Sunday that starts MMWR week 1 of ``year`` (vectorised, datetime64[D])."""
    year = np.asarray(year, dtype=np.int64)
    jan4 = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + 3
    since_sunday = (jan4.astype(np.int64) + 4) % 7  # 1970-01-01 was a Thursday (4 days after Sunday)
    return jan4 - since_sunday.astype("timedelta64[D]")


def mmwr_weeks_in_year(year) -> np.ndarray:
    """The number of MMWR weeks (52 or 53) in each ``year``."""
    year = np.asarray(year, dtype=np.int64)
    return ((_week1_start(year + 1) - _week1_start(year)).astype(np.int64) // 7).astype(np.int64)


def mmwr_week_start(year, week) -> np.ndarray:
    """The Sunday starting MMWR week ``week`` of ``year`` (arrays broadcast; datetime64[D]).

    date = S(year) + 7 (week − 1) with S(year) the Sunday on or before 4 January. Raises
    `DataError` for a week outside 1 … 52/53 of its year."""
    year, week = np.broadcast_arrays(np.asarray(year, dtype=np.int64), np.asarray(week, dtype=np.int64))
    n = mmwr_weeks_in_year(year)
    bad = (week < 1) | (week > n)
    if bad.any():
        i = np.argwhere(bad)[0]
        y, w = int(year[tuple(i)]), int(week[tuple(i)])
        raise DataError(f"MMWR week {w} does not exist in {y} (which has {int(n[tuple(i)])} weeks)")
    return _week1_start(year) + (7 * (week - 1)).astype("timedelta64[D]")
