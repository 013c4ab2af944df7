"""CDC FluView clinical-laboratory influenza data ("ICL_NREVSS_Clinical_Labs.csv") and the
season/onset pipeline of the calibration paper (§6.4(c)), with its weaknesses fixed.

Provenance: U.S. WHO Collaborating Laboratories and NREVSS clinical laboratories, downloaded from
the CDC FluView interactive portal; U.S. Government work, public domain. Not shipped with mfgx:
`read_fluview` reads a file the user downloaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._errors import DataError
from ._io import decimals, header_problem, numbers, read_table, read_text, where
from ._mmwr import mmwr_week_start, mmwr_weeks_in_year
from ._observations import Observations

COLUMNS = (
    "REGION TYPE",
    "REGION",
    "YEAR",
    "WEEK",
    "TOTAL SPECIMENS",
    "TOTAL A",
    "TOTAL B",
    "PERCENT POSITIVE",
    "PERCENT A",
    "PERCENT B",
)
_HEADER_SEARCH = 10  # lines searched for the header (a portal note line may come first)


def read_fluview(path) -> pd.DataFrame:
    """Read a CDC FluView "ICL_NREVSS_Clinical_Labs.csv" file into a tidy frame, one row per
    (region, MMWR week), in file order.

    Columns: ``region_type``, ``region`` (the state; for a national row, whose REGION is ``X``,
    the region type, e.g. ``National``), ``date`` (the Sunday starting the MMWR week),
    ``year``, ``week``, ``specimens``, ``total_a``, ``total_b`` (nullable integers),
    ``percent_positive``, ``percent_a``, ``percent_b`` (floats). Suppressed values (``X``) are
    missing.

    Checked (else `DataError` naming the file, line and column): the header (found on the first
    line that starts with ``REGION TYPE``; anything before it, like the portal's note line, is
    skipped), whole non-negative counts, percentages in [0, 100], MMWR weeks that exist in their
    year (52 or 53), positives not above specimens, PERCENT A/B/POSITIVE = 100·count/specimens
    within the rounding of the printed value, and strictly increasing weeks per region (a
    duplicate week is named with both lines).
    """
    text, name = read_text(path)
    skip = _find_header(text, name)

    def check_header(header):
        if tuple(header) != COLUMNS:
            raise DataError(
                f"{name}, line {skip + 1}: not a FluView clinical-labs header: {header_problem(header, COLUMNS)}; "
                f"expected: {','.join(COLUMNS)}"
            )

    df, lines = read_table(text, name, skip, check_header)
    if df.empty:
        raise DataError(f"{name}: header on line {skip + 1} but no data rows")
    for col in ("REGION TYPE", "REGION"):
        empty = (df[col] == "").to_numpy()
        if empty.any():
            raise DataError(f"{where(name, lines[np.argmax(empty)], col)}: empty value")

    year = numbers(df["YEAR"], "YEAR", lines, name, integer=True, lo=1900, hi=2200).astype(np.int64)
    week = numbers(df["WEEK"], "WEEK", lines, name, integer=True, lo=1, hi=53).astype(np.int64)
    n_weeks = mmwr_weeks_in_year(year)
    bad = week > n_weeks
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{where(name, lines[i], 'WEEK')}: MMWR week {week[i]} does not exist in {year[i]} (52 weeks)")
    date = mmwr_week_start(year, week)

    kw = dict(missing=("X",))
    counts = {c: numbers(df[c], c, lines, name, integer=True, lo=0, **kw) for c in COLUMNS[4:7]}
    pcts = {c: numbers(df[c], c, lines, name, lo=0, hi=100, **kw) for c in COLUMNS[7:]}
    spec, a, b = counts["TOTAL SPECIMENS"], counts["TOTAL A"], counts["TOTAL B"]
    bad = a + b > spec  # NaN compares False
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{where(name, lines[i], 'TOTAL A')}: TOTAL A + TOTAL B = {a[i] + b[i]:g} exceeds "
            f"TOTAL SPECIMENS = {spec[i]:g}"
        )
    for col, num in (("PERCENT A", a), ("PERCENT B", b), ("PERCENT POSITIVE", a + b)):
        printed = pcts[col]
        with np.errstate(divide="ignore", invalid="ignore"):
            implied = np.where(spec > 0, 100 * num / spec, 0.0)
        tol = 0.5 * 10.0 ** -decimals(df[col]) + 1e-9
        bad = np.abs(printed - implied) > tol  # NaN (suppressed) compares False
        if bad.any():
            i = int(np.argmax(bad))
            what = "TOTAL A + TOTAL B" if col == "PERCENT POSITIVE" else col.replace("PERCENT", "TOTAL")
            raise DataError(
                f"{where(name, lines[i], col)}: {df[col].iloc[i]} but 100·{what}/TOTAL SPECIMENS = "
                f"100·{num[i]:g}/{spec[i]:g} = {implied[i]:.4g} (beyond rounding)"
            )

    national = (df["REGION"] == "X").to_numpy()
    out = pd.DataFrame(
        {
            "region_type": df["REGION TYPE"].to_numpy(dtype=object),
            "region": np.where(national, df["REGION TYPE"], df["REGION"]).astype(object),
            "date": pd.to_datetime(date),
            "year": year,
            "week": week,
            "specimens": pd.array(spec, dtype="Int64"),
            "total_a": pd.array(a, dtype="Int64"),
            "total_b": pd.array(b, dtype="Int64"),
            "percent_positive": pcts["PERCENT POSITIVE"],
            "percent_a": pcts["PERCENT A"],
            "percent_b": pcts["PERCENT B"],
        }
    )
    key = ["region_type", "region"]
    dup = out.duplicated(key + ["date"], keep=False).to_numpy()
    if dup.any():
        first = out[dup].iloc[0]
        same = (out.loc[dup, key + ["date"]] == first[key + ["date"]]).all(axis=1).to_numpy()
        l1, l2 = lines[dup][same][:2]
        raise DataError(
            f"{name}, lines {l1} and {l2}: duplicate row for region {first['region']!r}, "
            f"{first['year']} week {first['week']}"
        )
    grouped = out.assign(_row=np.arange(len(out))).groupby(key, sort=False)
    prev = grouped["date"].shift()
    back = (out["date"] < prev).to_numpy()
    if back.any():
        i = int(np.argmax(back))
        j = int(grouped["_row"].shift().iloc[i])
        raise DataError(
            f"{where(name, lines[i], 'WEEK')}: dates out of order for region {out['region'].iloc[i]!r}: "
            f"{year[i]} week {week[i]} comes after {year[j]} week {week[j]} (line {lines[j]})"
        )
    out.attrs["source"] = name
    return out


def _find_header(text: str, name: str) -> int:
    head = text.splitlines()[:_HEADER_SEARCH]
    for i, line in enumerate(head):
        if line.lstrip().lstrip('"').upper().startswith("REGION TYPE"):
            return i
    raise DataError(
        f"{name}: no header line starting with 'REGION TYPE' in the first {len(head)} lines "
        f"(line 1 reads {head[0][:80]!r}); expected the FluView clinical-labs header: {','.join(COLUMNS)}"
    )


def fluview_seasons(
    df: pd.DataFrame,
    *,
    region_type: str | None = "States",
    regions=None,
    season_start_week: int = 35,
    window: int = 30,
    threshold: float = 0.005,
    increases: int = 3,
    max_zero_fraction: float = 0.5,
    split_year: int = 2022,
) -> dict[str, Observations | None]:
    r"""Influenza-A seasons aligned at onset, as observations of the I compartment of an SIR model.

    The calibration paper's pipeline (§6.4(c)) with its weaknesses fixed:

    1. Rows of ``region_type`` (default the states; ``None`` keeps all), optionally only ``regions``.
       Weeks absent from the file count as missing.
    2. Seasons follow MMWR weeks and do not overlap: season i runs from MMWR week
       ``season_start_week`` of year i up to (excluding) that week of year i+1 (52 or 53 weeks).
    3. I_k = PERCENT A / 100; missing (``X``) values inside a season are linearly interpolated in
       time, missing values at its ends stay missing (unobserved, not 0).
    4. A (region, season) is dropped when at least ``max_zero_fraction`` of its weeks are 0 or
       missing.
    5. Onset: the first week k with I_k > ``threshold`` followed by ``increases`` strict increases
       (I_{k+1} > I_k, …); if none, the week of the maximum (recorded as ``"argmax"``).
    6. The trajectory is I_{onset}, …, I_{onset + window − 1}; weeks past the season's end are
       unobserved (masked), not zero-padded.
    7. Only I is observed: values[..., 1] = I with mask (False, True, False) on (S, I, R); S and
       R are unobserved, never faked (the paper set S = 1, R = 0).

    Returns ``{"train": …, "test": …}``: seasons starting before ``split_year`` (default 2022:
    train 2015–2021, test 2022–2025 as in the paper) and from it on; a part with no season is
    None (`DataError` if no season at all is kept). Each is `Observations` [K, window, 3] with
    ``times`` = weeks since onset (0, 1, …), labels ("S", "I", "R") and
    ``metadata["trajectories"]`` = [{region, season, onset_date, onset_rule}].
    """
    need = {"region_type", "region", "date", "percent_a"}
    if not isinstance(df, pd.DataFrame) or not need <= set(df.columns):
        raise DataError(f"fluview_seasons needs the frame of read_fluview (columns {sorted(need)})")
    if not (1 <= season_start_week <= 52):
        raise DataError(f"season_start_week must be in 1 … 52, got {season_start_week}")
    if window < 1 or increases < 1:
        raise DataError(f"window and increases must be positive, got {window} and {increases}")
    if not (0 < max_zero_fraction <= 1):
        raise DataError(f"max_zero_fraction must be in (0, 1], got {max_zero_fraction}")
    rows = df if region_type is None else df[df["region_type"] == region_type]
    if regions is not None:
        regions = [regions] if isinstance(regions, str) else list(regions)
        unknown = sorted(set(regions) - set(rows["region"]))
        if unknown:
            raise DataError(f"regions not in the data (of region type {region_type!r}): {unknown}")
        rows = rows[rows["region"].isin(regions)]
    if rows.empty:
        raise DataError(f"no rows of region type {region_type!r}")
    key = rows["region"] if region_type is not None else rows["region_type"] + "/" + rows["region"]
    try:
        panel = pd.DataFrame({"key": key, "date": rows["date"], "I": rows["percent_a"] / 100}).pivot(
            index="date", columns="key", values="I"
        )
    except ValueError as err:
        raise DataError(f"duplicate (region, date) rows: {err}") from None
    dates = panel.index.to_numpy().astype("datetime64[D]")
    if np.any((dates.astype(np.int64) + 4) % 7 != 0):
        raise DataError("dates must be MMWR week-start Sundays (as returned by read_fluview)")

    first = dates.min().astype(object).year - 1
    last = dates.max().astype(object).year
    starts = mmwr_week_start(np.arange(first, last + 2), season_start_week)
    values, mask, meta = [], [], []
    for i, year in enumerate(range(first, last + 1)):
        weeks = np.arange(starts[i], starts[i + 1], np.timedelta64(7, "D"))
        block = panel.reindex(pd.to_datetime(weeks))
        if block.isna().all().all():
            continue
        block = block.interpolate(method="linear", limit_area="inside")
        x = block.to_numpy(dtype=float)  # [n, R]
        n, R = x.shape
        empty = np.mean((x == 0) | np.isnan(x), axis=0) >= max_zero_fraction
        rising = x[: n - increases] > threshold
        for j in range(increases):
            with np.errstate(invalid="ignore"):
                rising &= x[j + 1 : n - increases + j + 1] > x[j : n - increases + j]
        has = rising.any(axis=0)
        onset = np.where(has, np.argmax(rising, axis=0), np.argmax(np.where(np.isnan(x), -np.inf, x), axis=0))
        idx = onset[None, :] + np.arange(window)[:, None]  # [window, R]
        traj = np.where(idx < n, x[np.minimum(idx, n - 1), np.arange(R)], np.nan)
        for r in np.flatnonzero(~empty):
            y = np.full((window, 3), np.nan)
            y[:, 1] = traj[:, r]
            values.append(y)
            mask.append(np.isfinite(y) & (np.arange(3) == 1))
            meta.append(
                {
                    "region": str(block.columns[r]),
                    "season": year,
                    "onset_date": str(weeks[onset[r]]),
                    "onset_rule": "increase" if has[r] else "argmax",
                }
            )
    if not values:
        raise DataError(
            f"no season kept: every (region, season) has at least max_zero_fraction = {max_zero_fraction} "
            f"of its weeks zero or missing"
        )
    common = {
        "source": df.attrs.get("source", "CDC FluView ICL/NREVSS clinical labs"),
        "observable": "I = PERCENT A / 100 (share of specimens positive for influenza A)",
        "time_unit": "MMWR week since onset",
        "season_start_week": season_start_week,
        "threshold": threshold,
        "increases": increases,
        "region_type": region_type,
    }
    out = {}
    for part, keep in (("train", lambda s: s < split_year), ("test", lambda s: s >= split_year)):
        sel = [k for k, m in enumerate(meta) if keep(m["season"])]
        out[part] = (
            Observations(
                np.stack([values[k] for k in sel]),
                np.stack([mask[k] for k in sel]),
                times=np.arange(window, dtype=float),
                labels=("S", "I", "R"),
                metadata={**common, "trajectories": [meta[k] for k in sel]},
            )
            if sel
            else None
        )
    return out
