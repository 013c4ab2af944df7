"""Citi Bike trip histories (New York City) and the station-occupancy protocol of the calibration
paper (§6.5).

Provenance: monthly files ``YYYYMM-citibike-tripdata.csv.zip`` from the Citi Bike system-data page
(https://citibikenyc.com/system-data), published by Lyft / NYC Bike Share under the NYCBS Data Use
Policy. Not shipped with mfgx: `read_citibike` reads a file the user downloaded.
"""

from __future__ import annotations

import pathlib
import zipfile
import zlib

import numpy as np
import pandas as pd

from ._errors import DataError
from ._io import check_member, header_problem, numbers, read_member, read_table, read_text, where
from ._mobility import Bins, occupancy, rank_zones, zone_index
from ._observations import Observations

# The two schemas, as written (the legacy names also appear capitalised, 2016-10 to 2017-03).
CURRENT_COLUMNS = (
    "ride_id", "rideable_type", "started_at", "ended_at", "start_station_name", "start_station_id",
    "end_station_name", "end_station_id", "start_lat", "start_lng", "end_lat", "end_lng", "member_casual",
)  # fmt: skip
LEGACY_COLUMNS = (
    "tripduration", "starttime", "stoptime", "start station id", "start station name", "start station latitude",
    "start station longitude", "end station id", "end station name", "end station latitude",
    "end station longitude", "bikeid", "usertype", "birth year", "gender",
)  # fmt: skip


def _norm(column: str) -> str:
    """Header names compared lower-case without spaces and underscores."""
    return column.lower().replace(" ", "").replace("_", "")


CURRENT, LEGACY = tuple(map(_norm, CURRENT_COLUMNS)), tuple(map(_norm, LEGACY_COLUMNS))
_NAMES = {CURRENT: CURRENT_COLUMNS, LEGACY: LEGACY_COLUMNS}
_SCHEMAS = {  # normalised header → (start time, end time, start id, end id)
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
    the first problem: a header that is neither schema (naming the missing or unexpected columns),
    a row with more fields than the header, a truncated row (an empty or cut last column:
    ``member_casual`` must be member/casual, ``gender`` 0/1/2), a start/end time that is empty or
    not a date-time, a trip that ends before it starts (except within the repeated hour 01:00–02:00
    when clocks go back on the first Sunday of November: times are local), a coordinate that is
    not a number, a ``tripduration`` that is not a whole number ≥ 0, or a file without trips.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                members = sorted(
                    (m for m in z.infolist()
                    if not m.is_dir() and m.filename.lower().endswith(".csv")
                    and not m.filename.startswith("__MACOSX/")
                    and not pathlib.PurePosixPath(m.filename).name.startswith("._")),
                    key=lambda m: m.filename,
                )  # fmt: skip
                if not members:
                    raise DataError(f"{path}: the zip holds no CSV file (besides __MACOSX/ entries)")
                for m in members:
                    check_member(m, path)  # all checked before any is decompressed
                parts = [_read_part(*read_text(path, read_member(z, m, path), f"{path}:{m.filename}")) for m in members]
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise DataError(f"{path}: broken zip archive ({err}); download it again") from None
        trips = pd.concat(parts, ignore_index=True)
    elif path.suffix.lower() == ".zip":
        raise DataError(f"{path}: not a zip archive (truncated download?)")
    else:
        trips = _read_part(*read_text(path))
    trips.attrs["source"] = str(path)
    return trips


def _read_part(text: str, name: str) -> pd.DataFrame:
    def check_header(cols):
        norm = tuple(_norm(c) for c in cols)
        if norm not in _SCHEMAS:
            # The schema meant: the one sharing the most columns (the current one on a tie).
            schema = max(_SCHEMAS, key=lambda sch: (len(set(sch) & set(norm)), sch is CURRENT))
            names = _NAMES[schema]
            raise DataError(
                f"{name}, line 1: not a Citi Bike trip header: {header_problem(cols, names, _norm)}; expected the "
                f"{len(names)}-column {'current' if schema is CURRENT else 'legacy'} schema: {','.join(names)}"
            )

    df, lines = read_table(text, name, 0, check_header)
    cols = list(df.columns)
    norm = tuple(_norm(c) for c in cols)
    if df.empty:
        raise DataError(f"{name}: header but no trips")
    t0, t1, id0, id1 = (cols[norm.index(w)] for w in _SCHEMAS[norm])
    legacy = norm == LEGACY

    # A truncated row: fewer fields are padded with "", so its last cell is empty or cut short.
    last = cols[-1]
    allowed = ("0", "1", "2") if legacy else ("member", "casual")
    bad = ~df[last].str.lower().isin(allowed).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        value = df[last].iloc[i]
        what = "empty value (row truncated?)" if value == "" else f"{value!r} is not one of {'/'.join(allowed)}"
        raise DataError(f"{where(name, lines[i], last)}: {what}")

    times = {}
    for col in (t0, t1):
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
        times[col] = t.astype("datetime64[us]")
    start, end = times[t0], times[t1]
    back = (end < start).to_numpy() & ~_fall_back_hour(start, end)
    if back.any():
        i = int(np.argmax(back))
        raise DataError(
            f"{where(name, lines[i], t1)}: trip ends before it starts ({df[t1].iloc[i]} < {df[t0].iloc[i]}); "
            f"dates out of order or swapped"
        )

    for col in cols:
        n = _norm(col)
        if n.endswith(("lat", "lng", "latitude", "longitude")):
            numbers(df[col], col, lines, name, missing=_MISSING_ID)
    if legacy:
        numbers(df[cols[0]], cols[0], lines, name, integer=True, lo=0)  # tripduration (seconds)

    ids = {}
    for col, label in ((id0, "start_id"), (id1, "end_id")):
        s = df[col].astype("string")
        ids[label] = s.mask(s.isin(_MISSING_ID))
    return pd.DataFrame({"start_time": start, "end_time": end, "start_id": ids["start_id"], "end_id": ids["end_id"]})


def _fall_back_hour(start: pd.Series, end: pd.Series) -> np.ndarray:
    """Trips whose start and end both lie in 01:00–02:00 on the first Sunday of November, the hour
    that local (US Eastern) clocks repeat: such a trip may seem to end before it starts."""
    same_day = (start.dt.normalize() == end.dt.normalize()).to_numpy()
    sunday = (start.dt.day_of_week == 6).to_numpy() & (start.dt.month == 11).to_numpy() & (start.dt.day <= 7).to_numpy()
    one = (start.dt.hour == 1).to_numpy() & (end.dt.hour == 1).to_numpy()
    return same_day & sunday & one


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
