"""COVID-19 first wave: daily new confirmed cases in 201 countries over 84 days to about 1 April 2020.

Provenance: the ``Covid3Month`` regression problem of the Monash/UEA time-series archive as shipped
in the aeon 1.6.0 wheel (``aeon/datasets/data/Covid3Month/Covid3Month_{TRAIN,TEST}.ts``, BSD-3-Clause,
copyright the aeon and sktime developers), built from WHO's COVID-19 database. The two files are
vendored unchanged in ``covid3month/`` next to this module with aeon's licence; they are read by path,
aeon is never imported.

What the files contain (checked, not assumed): after ``@data`` one line per country with 84
comma-separated **daily new** confirmed-case counts (not cumulative, not normalised: non-negative
whole numbers; many 0-days are reporting gaps followed by catch-up days) and, after ``:``, the
regression target, the country's **death rate on 1 April 2020** (deaths / confirmed cases). There are
no country names, no dates and no population sizes: a country is known only by its row.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from ._errors import DataError

FOLDER = Path(__file__).parent / "covid3month"
FILES = ("Covid3Month_TRAIN.ts", "Covid3Month_TEST.ts")
N_COUNTRIES, N_DAYS = 201, 84


@dataclasses.dataclass(frozen=True)
class CovidCounts:
    """Daily new confirmed cases ``daily[K, D]`` (K countries, D days, day 0 about 8 January 2020),
    the death rate on 1 April 2020 ``death_rate[K]`` (the archive's regression target; unused by the
    epidemic study), ``country[K]`` (row labels ``"C000"``…, the archive gives no names) and
    ``aeon_split[K]`` ("train"/"test": the archive's own regression split, not ours)."""

    daily: np.ndarray
    death_rate: np.ndarray
    country: tuple[str, ...]
    aeon_split: tuple[str, ...]

    @property
    def n_countries(self) -> int:
        return self.daily.shape[0]

    @property
    def n_days(self) -> int:
        return self.daily.shape[1]

    def weekly(self) -> np.ndarray:
        """Weekly new cases [K, D // 7] (calendar weeks from day 0; D = 84 gives 12 whole weeks)."""
        W = self.n_days // 7
        return self.daily[:, : 7 * W].reshape(self.n_countries, W, 7).sum(-1)

    def subset(self, index) -> "CovidCounts":
        index = np.asarray(index, dtype=int)
        return CovidCounts(self.daily[index], self.death_rate[index], tuple(self.country[i] for i in index),
                           tuple(self.aeon_split[i] for i in index))


def read_ts(path) -> tuple[np.ndarray, np.ndarray]:
    """(series[K, D], targets[K]) of a univariate, equal-length ``.ts`` regression file (sktime/aeon
    format: ``#`` comments, ``@`` header lines, then ``v1,…,vD:target`` per line). Raises `DataError`
    naming the line of the first malformed row."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    series, targets, in_data, width = [], [], False, None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower() == "@data":
                in_data = True
            elif line.lower().startswith("@missing") and line.split()[-1].lower() != "false":
                raise DataError(f"{path}, line {number}: files with missing values are not supported")
            continue
        values, sep, target = line.rpartition(":")
        if not sep:
            raise DataError(f"{path}, line {number}: expected 'v1,...,vD:target', no ':' found")
        try:
            row = np.array([float(v) for v in values.split(",")])
            y = float(target)
        except ValueError as err:
            raise DataError(f"{path}, line {number}: {err}") from None
        if width is None:
            width = row.size
        if row.size != width:
            raise DataError(f"{path}, line {number}: {row.size} values, earlier rows have {width}")
        if not (np.all(np.isfinite(row)) and np.isfinite(y)):
            raise DataError(f"{path}, line {number}: non-finite value")
        series.append(row)
        targets.append(y)
    if not in_data or not series:
        raise DataError(f"{path}: no @data section with rows")
    return np.stack(series), np.array(targets)


@functools.cache
def _load() -> CovidCounts:
    parts = [read_ts(FOLDER / name) for name in FILES]
    daily = np.concatenate([p[0] for p in parts])
    if daily.shape != (N_COUNTRIES, N_DAYS):
        raise DataError(f"{FOLDER}: expected {N_COUNTRIES} × {N_DAYS} daily counts, got {daily.shape}")
    if np.any(daily < 0) or np.any(daily != np.round(daily)):
        raise DataError(f"{FOLDER}: daily counts must be non-negative whole numbers")
    split = tuple(["train"] * parts[0][0].shape[0] + ["test"] * parts[1][0].shape[0])
    country = tuple(f"C{i:03d}" for i in range(N_COUNTRIES))
    daily.setflags(write=False)
    death = np.concatenate([p[1] for p in parts])
    death.setflags(write=False)
    return CovidCounts(daily, death, country, split)


def covid3month() -> CovidCounts:
    """The 201 countries × 84 days of ``Covid3Month`` (vendored, offline; see the module docstring)."""
    return _load()
