"""Citi Bike trip histories (New York City) and the station-occupancy protocol of the calibration
paper (§6.5).

Provenance: monthly files ``YYYYMM-citibike-tripdata.csv.zip`` from the Citi Bike system-data page
(https://citibikenyc.com/system-data), published by Lyft / NYC Bike Share under the NYCBS Data Use
Policy. Not shipped with mfgx: `read_citibike` reads a file the user downloaded.
"""

from __future__ import annotations

import pathlib
import zipfile

import numpy as np
import pandas as pd

from ._errors import DataError
from ._io import read_table, read_text, where
from ._mobility import Bins, occupancy, rank_zones, zone_index
from ._observations import Observations

# Column names normalised by lower-casing and dropping spaces and underscores.
CURRENT = (
    "rideid", "rideabletype", "startedat", "endedat", "startstationname", "startstationid",
    "endstationname", "endstationid", "startlat", "startlng", "endlat", "endlng", "membercasual",
)  # fmt: skip
LEGACY = (
    "tripduration", "starttime", "stoptime", "startstationid", "startstationname", "startstationlatitude",
    "startstationlongitude", "endstationid", "endstationname", "endstationlatitude", "endstationlongitude",
    "bikeid", "usertype", "birthyear", "gender",
)  # fmt: skip
_SCHEMAS = {  # normalised header → (start time, end time, start id, end id) and the always-filled last column
    CURRENT: ("startedat", "endedat", "startstationid", "endstationid"),
    LEGACY: ("starttime", "stoptime", "startstationid", "endstationid"),
}
_MISSING_ID = ("", "NULL", "nan", "NaN")
_TIME_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S.%f")


def read_citibike(path) -> pd.DataFrame:
    """Read a Citi Bike trip file: a CSV, or a zip of one or more CSV parts (read in name order;
    ``__MACOSX/`` entries and other non-CSV members are skipped).

    Both schemas are accepted: the current 13-column one (``ride_id, rideable_type, started_at,
    …``, since February 2021) and the legacy 15-column one (``tripduration, starttime, …``, also
    capitalised as ``Trip Duration, Start Time, …``). Returns, in file order, ``start_time`` and
    ``end_time`` (datetime64, local New York time, milliseconds kept) and ``start_id`` and
    ``end_id`` (strings, exactly as written: ``1000.10`` and ``1000.1`` stay distinct; empty or
    ``NULL`` becomes missing).

    `DataError` names the file (``archive.zip:part.csv`` for a member), the line and the column of
    the first problem: an unknown header, a row with too many fields, an empty last column (a
    truncated row), or a start/end time that is empty or not a date-time.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            members = sorted(
                m.filename for m in z.infolist()
                if not m.is_dir() and m.filename.lower().endswith(".csv")
                and not m.filename.startswith("__MACOSX/") and not pathlib.PurePosixPath(m.filename).name.startswith("._")
            )  # fmt: skip
            if not members:
                raise DataError(f"{path}: the zip holds no CSV file (besides __MACOSX/ entries)")
            parts = [_read_part(*read_text(path, z.read(m), f"{path}:{m}")) for m in members]
        trips = pd.concat(parts, ignore_index=True)
    else:
        trips = _read_part(*read_text(path))
    trips.attrs["source"] = str(path)
    return trips


def _read_part(text: str, name: str) -> pd.DataFrame:
    header = text.split("\n", 1)[0]
    cols = [c.strip().strip('"').strip() for c in header.rstrip("\r").split(",")]
    norm = tuple(c.lower().replace(" ", "").replace("_", "") for c in cols)
    if norm not in _SCHEMAS:
        raise DataError(
            f"{name}, line 1: not a Citi Bike trip header ({len(cols)} columns: {header[:120]!r}); expected the "
            f"13-column schema (ride_id, rideable_type, started_at, ended_at, …) or the 15-column legacy one "
            f"(tripduration, starttime, stoptime, …)"
        )
    wanted = _SCHEMAS[norm]
    pick = {w: cols[norm.index(w)] for w in wanted}
    last = cols[-1]
    use = sorted({norm.index(w) for w in wanted} | {len(cols) - 1})
    df, lines = read_table(text, name, 0, use)
    df.columns = [c.strip() for c in df.columns]
    empty_last = (df[last] == "").to_numpy()
    if empty_last.any():
        raise DataError(f"{where(name, lines[np.argmax(empty_last)], last)}: empty value (row truncated?)")
    times = {}
    for key, label in ((wanted[0], "start"), (wanted[1], "end")):
        col = pick[key]
        s = df[col]
        t = pd.to_datetime(s, format="ISO8601", errors="coerce")
        for fmt in _TIME_FORMATS:
            miss = t.isna() & (s != "")
            if not miss.any():
                break
            t = t.where(~miss, pd.to_datetime(s.where(miss, None), format=fmt, errors="coerce"))
        bad = t.isna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            what = "empty" if s.iloc[i] == "" else f"{s.iloc[i]!r} is not a date-time"
            raise DataError(f"{where(name, lines[i], col)}: {what} (expected YYYY-MM-DD HH:MM:SS[.fff])")
        times[label] = t.astype("datetime64[us]")
    ids = {}
    for key, label in ((wanted[2], "start_id"), (wanted[3], "end_id")):
        s = df[pick[key]].astype("string")
        ids[label] = s.mask(s.isin(_MISSING_ID))
    return pd.DataFrame(
        {"start_time": times["start"], "end_time": times["end"], "start_id": ids["start_id"], "end_id": ids["end_id"]}
    )


def citibike_occupancy(
    trips: pd.DataFrame,
    top_k: int = 5,
    bin_minutes: int = 15,
    start: str = "06:00",
    end: str = "22:00",
    initial=(100, 500),
    bin_by: str = "end",
    *,
    train_fraction: float = 0.75,
) -> dict[str, Observations | None]:
    r"""Station occupancy flows μ[day, bin, station] by the paper's protocol (§6.5), corrected.

    - States: the ``top_k`` busiest stations (trips started + trips ended over the whole table;
      ties by id) and "External" (every other station, and trips with no station id): S = top_k + 1.
    - Bins: ``bin_minutes`` from ``start`` to ``end`` (default 15 min, 06:00–22:00, N = 64); the
      bin of a time is ⌊(minutes after midnight − start)/bin_minutes⌋, events outside are dropped.
    - A trip departs its start station in the bin (and on the date) of its start time and arrives
      at its end station in the bin of its end time (``bin_by="end"``, default), or of its start
      time as in the paper's code (``bin_by="start"``: trips treated as instantaneous).
    - Occupancy c_n = initial + Σ_{m≤n}(arrivals − departures), with ``initial`` = (per station,
      External) = (100, 500) or one count per state, floored at 1 and normalised to the simplex.
    - Days: dates with at least one departure in the window. Weekdays in date order: the first
      ⌊``train_fraction``·n⌋ → "train", the rest → "test_id"; weekend days → "test_ood".

    Returns ``{"train", "test_id", "test_ood"}`` of fully observed `Observations`
    [days, N, top_k + 1] (None for an empty part), labels = station ids + ("External",), times =
    clock hours at the end of each bin, ``metadata["trajectories"]`` = [{date, day_type,
    departures, arrivals}].
    """
    need = {"start_time", "end_time", "start_id", "end_id"}
    if not isinstance(trips, pd.DataFrame) or not need <= set(trips.columns):
        raise DataError(f"citibike_occupancy needs the frame of read_citibike (columns {sorted(need)})")
    if bin_by not in ("end", "start"):
        raise DataError(f'bin_by must be "end" or "start", got {bin_by!r}')
    bins = Bins(bin_minutes, start, end)
    stations = rank_zones(pd.concat([trips["start_id"], trips["end_id"]], ignore_index=True), top_k, "stations")
    d_day, d_bin = bins.of_times(trips["start_time"])
    a_day, a_bin = bins.of_times(trips["end_time" if bin_by == "end" else "start_time"])
    dep = (d_day, d_bin, zone_index(trips["start_id"], stations))
    arr = (a_day, a_bin, zone_index(trips["end_id"], stations))
    return occupancy(
        dep,
        arr,
        days=d_day[d_bin >= 0],
        bins=bins,
        labels=[*stations, "External"],
        initial=initial,
        train_fraction=train_fraction,
        metadata={
            "source": trips.attrs.get("source", "Citi Bike trip histories"),
            "protocol": "calibration paper §6.5 (top stations + External, cumulative flows, floored at 1)",
            "bin_by": bin_by,
            "stations": stations,
        },
    )
