"""Weekly measles notifications in 1,422 towns of England & Wales, 1944–1965, and epidemic waves
cut from them as observations of the I compartment of an SIR model.

Provenance: the PyPI package pypomp 1.1.0 (MIT licence; files ``data/uk_measles/``), which ships the
Registrar-General's weekly measles notifications as compiled by Korevaar, Metcalf & Grenfell,
J. R. Soc. Interface 17:20200010 (2020), with annual population and births (``demog.csv``) and the
20-town maximum-likelihood estimates of He, Ionides & King, J. R. Soc. Interface 7:271–283 (2010)
(``AK_mles.csv``, from King's SBIED course). Read offline from the installed package, which is
located with `importlib.util.find_spec` and not imported (it would load jax models).
"""

from __future__ import annotations

import difflib
import functools
from typing import NamedTuple

import numpy as np
import pandas as pd

from ._bundled import package_file
from ._errors import DataError
from ._observations import Observations

_EXTRA = "pypomp==1.1.0"
N_TOWNS, N_WEEKS = 1422, 1108
DEFAULT_RHO = 0.6  # ≈ median reporting rate of the 20 towns of AK_mles.csv (0.61)

# School terms of England & Wales as in He, Ionides & King (2010) (pypomp's model_001b): day of
# the year d = 0, 1, … is in term when d ∈ [7, 100] ∪ [115, 199] ∪ [252, 300] ∪ [308, 356], i.e.
# holidays are Christmas (d 357 → 6), Easter (101 → 114), summer (200 → 251), half-term (301 → 307).
TERMS = ((7, 100), (115, 199), (252, 300), (308, 356))

# Suspicious single weeks flagged by pypomp's UKMeasles.subset(clean=True) (e.g. a 0 between 124 and 58).
SUSPICIOUS = (
    ("London", "1955-08-26"),
    ("Liverpool", "1955-11-18"),
    ("Liverpool", "1959-05-01"),
    ("Nottingham", "1961-09-01"),
    ("Sheffield", "1961-05-19"),
    ("Hull", "1956-07-06"),
)


class MeaslesData(NamedTuple):
    """Weekly panels (index: the report date, a Friday ending the week; columns: towns)."""

    cases: pd.DataFrame  # reported cases (NaN where cleaned)
    population: pd.DataFrame  # population, interpolated linearly between 1 January values
    births: pd.DataFrame  # births per year, interpolated linearly between mid-year values


@functools.lru_cache(maxsize=1)
def _read() -> tuple[pd.DatetimeIndex, pd.Index, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    path = package_file("pypomp", "data/uk_measles/measles.csv.gz", extra=_EXTRA)
    raw = pd.read_csv(path, dtype={"unit": str, "cases": np.int64}, parse_dates=["date"])
    if list(raw.columns) != ["date", "unit", "cases"] or (raw["cases"] < 0).any():
        raise DataError(f"{path}: expected columns date, unit, cases with non-negative counts")
    cases = raw.pivot(index="date", columns="unit", values="cases")
    if cases.shape != (N_WEEKS, N_TOWNS) or cases.isna().any().any():
        raise DataError(f"{path}: expected {N_WEEKS} weeks × {N_TOWNS} towns without gaps, got {cases.shape}")
    if np.any(np.diff(cases.index.to_numpy()) != np.timedelta64(7, "D")):
        raise DataError(f"{path}: report dates are not consecutive weeks")
    demog_path = package_file("pypomp", "data/uk_measles/demog.csv", extra=_EXTRA)
    demog = pd.read_csv(demog_path)
    pop = demog.pivot(index="year", columns="unit", values="pop").reindex(columns=cases.columns)
    births = demog.pivot(index="year", columns="unit", values="births").reindex(columns=cases.columns)
    if pop.isna().any().any() or (pop.to_numpy() <= 0).any() or births.isna().any().any():
        raise DataError(f"{demog_path}: population or births missing or not positive for some town and year")
    dates = cases.index.to_numpy().astype("datetime64[D]")
    years = pop.index.to_numpy()
    jan1 = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    pop_w = _interp(dates, jan1, pop.to_numpy(dtype=float))
    births_w = _interp(dates, jan1 + 182, births.to_numpy(dtype=float))
    return cases.index, cases.columns, cases.to_numpy(), pop_w, births_w, years


def _interp(dates: np.ndarray, anchors: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation of values[len(anchors), towns] at dates, extended linearly beyond the ends."""
    t, a = dates.astype(np.int64).astype(float), anchors.astype(np.int64).astype(float)
    j = np.clip(np.searchsorted(a, t, side="right") - 1, 0, len(a) - 2)
    w = ((t - a[j]) / (a[j + 1] - a[j]))[:, None]
    return values[j] * (1 - w) + values[j + 1] * w


def _towns(towns, columns: pd.Index) -> list[str]:
    if towns is None:
        return list(columns)
    towns = [towns] if isinstance(towns, str) else [str(t) for t in towns]
    unknown = [t for t in towns if t not in columns]
    if unknown:
        hint = difflib.get_close_matches(unknown[0], list(columns), n=3)
        raise DataError(f"unknown town {unknown[0]!r}" + (f"; did you mean {hint}?" if hint else ""))
    if not towns:
        raise DataError("towns selects no town")
    return towns


def uk_measles(towns=None, *, clean: bool = False) -> MeaslesData:
    """Weekly measles cases, population and births of ``towns`` (default all 1,422), 1944-01-07 →
    1965-03-26 (1,108 weeks), as `MeaslesData` of three [weeks, towns] frames.

    Population is linear between its 1 January values (the census-based annual figures, anchored
    as in He et al. 2010) and extended linearly after 1964; births (per year) likewise between
    mid-year values. ``clean=True`` sets the six suspicious weeks listed in `SUSPICIOUS` (flagged
    by pypomp) to NaN. Data from pypomp 1.1.0 (MIT); the file is read once per process (cached).
    """
    index, columns, cases, pop, births, _ = _read()
    names = _towns(towns, columns)
    j = columns.get_indexer(names)
    c = pd.DataFrame(cases[:, j], index=index, columns=pd.Index(names, name="town"))
    if clean:
        c = c.astype(float)
        for town, date in SUSPICIOUS:
            if town in c.columns:
                c.loc[pd.Timestamp(date), town] = np.nan
    frame = lambda x: pd.DataFrame(x[:, j], index=index, columns=pd.Index(names, name="town"))  # noqa: E731
    return MeaslesData(c, frame(pop), frame(births))


@functools.lru_cache(maxsize=1)
def reporting_rates() -> dict[str, float]:
    """Reporting probability ρ per town from the maximum-likelihood fits in ``AK_mles.csv`` (20 towns)."""
    path = package_file("pypomp", "data/uk_measles/AK_mles.csv", extra=_EXTRA)
    ak = pd.read_csv(path, usecols=["town", "rho"])
    return dict(zip(ak["town"].astype(str), ak["rho"].astype(float)))


def school_term(dates) -> np.ndarray:
    """Fraction (0 … 1) of the 7 days ending on each date (a weekly report date) that fall in an
    England & Wales school term, with the calendar of He, Ionides & King (2010): see `TERMS`."""
    end = np.asarray(pd.to_datetime(np.atleast_1d(dates))).astype("datetime64[D]")
    days = end[:, None] - np.arange(7)[None, :].astype("timedelta64[D]")
    doy = (days - days.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64)
    term = np.zeros(doy.shape, bool)
    for lo, hi in TERMS:
        term |= (doy >= lo) & (doy <= hi)
    return term.mean(axis=1)


def _waves(cases: pd.DataFrame, window: int, smooth: int, min_peak: float, fraction: float, sep: int):
    """(column, onset, peak) of the epidemic waves in weekly case counts [weeks, towns] (see
    `measles_waves`, steps 1–2), by town and then time."""
    s = cases.rolling(smooth, center=True, min_periods=1).mean()
    local_max = s.rolling(2 * (sep // 2) + 1, center=True, min_periods=1).max()
    candidate = ((s >= local_max) & (s >= min_peak)).to_numpy()
    s = s.to_numpy()
    n = len(s)
    found = []
    for j in range(s.shape[1]):
        peaks = []
        for p in sorted(np.flatnonzero(candidate[:, j]), key=lambda k: (-s[k, j], k)):
            if all(abs(p - q) >= sep for q in peaks):
                peaks.append(p)
        peaks.sort()
        end_prev = 0
        for i, p in enumerate(peaks):
            lo = peaks[i - 1] + 1 if i else 0
            below = np.flatnonzero(s[lo:p, j] < fraction * s[p, j])
            if below.size == 0:
                continue
            onset = lo + int(below[-1]) + 1
            if onset < end_prev or onset + window > n or p >= onset + window:
                continue
            end_prev = onset + window
            found.append((j, onset, int(p)))
    return found


def measles_waves(
    towns=None,
    *,
    window: int = 40,
    smooth: int = 5,
    min_peak_cases: float = 50.0,
    onset_fraction: float = 0.1,
    min_separation: int | None = None,
    rho=None,
    default_rho: float = DEFAULT_RHO,
    clean: bool = True,
) -> Observations:
    r"""Measles epidemic waves, one trajectory per (town, wave), aligned at onset, observing I only.

    Per town, with c_k the weekly reported cases and s_k their centred ``smooth``-week moving mean:

    1. **Peaks:** weeks where s_k is the maximum of s over k ± ``min_separation``//2 and
       s_k ≥ ``min_peak_cases``; taken from the highest down, each at least ``min_separation``
       weeks (default ``window``) from those already taken.
    2. **Onset:** one week after the last week between the previous peak and this one with
       s_k < ``onset_fraction`` · s_peak (the start of the climb from a tenth of the peak). A wave
       whose climb is not seen (no such week), whose window does not fit in the data or overlaps
       the previous wave's window, or whose peak falls outside its window, is skipped.
    3. **Observation:** I_n = c_{onset+n} / (ρ · pop_{onset+n}), n = 0 … ``window``−1: the share of
       the population infected (reported cases scaled up by the reporting probability ρ) in the
       week, a proxy for the infected compartment (measles is infectious for about a week).
       ρ: ``rho`` (a number, or a mapping town → ρ); by default the town's ρ from ``AK_mles.csv``
       (20 towns, see `reporting_rates`) and ``default_rho`` (0.6, about their median) elsewhere.
    4. Only I is observed: mask (False, True, False) on (S, I, R); weeks cleaned as suspicious
       (``clean=True``, see `SUSPICIOUS`) are unobserved too.

    Defaults suit the big towns' biennial epidemics (a climb of ~10 weeks from a tenth of the
    peak, a decline of ~25 weeks). ``towns`` defaults to the 20 towns of ``AK_mles.csv``.

    Returns `Observations` [K, window, 3] ordered by town then date, with ``times`` = weeks since
    onset, labels ("S", "I", "R"), covariates [K, window, 1] = the school-term fraction of each
    week (`school_term`, label "school_term"), and ``metadata["trajectories"]`` = [{town,
    onset (date), peak (date), peak_cases, rho, population (at onset)}].
    """
    if towns is None:
        towns = sorted(reporting_rates())
    data = uk_measles(towns, clean=clean)
    if not (isinstance(window, (int, np.integer)) and window >= 4):
        raise DataError(f"window must be a whole number of weeks ≥ 4, got {window!r}")
    if not (isinstance(smooth, (int, np.integer)) and smooth >= 1):
        raise DataError(f"smooth must be a positive whole number of weeks, got {smooth!r}")
    if not (0 < onset_fraction < 1) or not (min_peak_cases > 0):
        raise DataError("onset_fraction must be in (0, 1) and min_peak_cases positive")
    sep = window if min_separation is None else int(min_separation)
    if sep < 1:
        raise DataError(f"min_separation must be positive, got {min_separation}")
    rates = reporting_rates()
    if rho is None:
        rho_of = {t: rates.get(t, default_rho) for t in data.cases.columns}
    elif isinstance(rho, (int, float, np.floating)):
        rho_of = dict.fromkeys(data.cases.columns, float(rho))
    else:
        rho_of = {t: float(rho.get(t, default_rho)) for t in data.cases.columns}
    bad = {t: r for t, r in rho_of.items() if not (0 < r <= 1)}
    if bad:
        raise DataError(f"reporting probabilities must be in (0, 1], got {bad}")

    cases = data.cases.to_numpy(dtype=float)
    pop = data.population.to_numpy()
    dates = data.cases.index.to_numpy().astype("datetime64[D]")
    term = school_term(dates)

    values, covs, meta = [], [], []
    for j, onset, p in _waves(data.cases, window, smooth, min_peak_cases, onset_fraction, sep):
        town = data.cases.columns[j]
        w = slice(onset, onset + window)
        y = np.full((window, 3), np.nan)
        y[:, 1] = cases[w, j] / (rho_of[town] * pop[w, j])
        values.append(y)
        covs.append(term[w, None])
        meta.append(
            {
                "town": str(town),
                "onset": str(dates[onset]),
                "peak": str(dates[p]),
                "peak_cases": float(np.nanmax(cases[w, j])),
                "rho": rho_of[town],
                "population": float(pop[onset, j]),
            }
        )
    if not values:
        raise DataError(f"no epidemic wave found in {list(data.cases.columns)[:5]}… with these settings")
    y = np.stack(values)
    return Observations(
        y,
        np.isfinite(y) & (np.arange(3) == 1),
        times=np.arange(window, dtype=float),
        labels=("S", "I", "R"),
        covariates=np.stack(covs),
        covariate_labels=("school_term",),
        metadata={
            "source": "pypomp 1.1.0 data/uk_measles (Korevaar et al. 2020; MIT)",
            "observable": "I = weekly reported cases / (rho * population)",
            "time_unit": "week since onset",
            "window": window,
            "smooth": smooth,
            "min_peak_cases": min_peak_cases,
            "onset_fraction": onset_fraction,
            "min_separation": sep,
            "clean": clean,
            "trajectories": meta,
        },
    )
