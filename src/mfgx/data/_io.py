"""Shared helpers of the file loaders: reading CSV text as strings, locating bad cells by file line
and column, parsing numbers with a clear error."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pandas as pd

from ._errors import DataError


def read_text(path, data: bytes | None = None, name: str | None = None) -> tuple[str, str]:
    """(text, name) of a UTF-8 file (a BOM is dropped); ``data`` gives the bytes of a zip member."""
    name = name or str(path)
    if data is None:
        path = pathlib.Path(path)
        if not path.is_file():
            raise DataError(f"{name}: no such file")
        data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{name}: not UTF-8 text ({err})") from None
    if not text.strip():
        raise DataError(f"{name}: file is empty")
    return text, name


def read_table(text: str, name: str, skip: int, columns: list | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """All cells as stripped strings, from the header on line ``skip + 1``; returns the frame and
    the 1-based file line of each row. Blank lines are dropped (their numbers are kept right)."""
    try:
        df = pd.read_csv(
            io.StringIO(text),
            skiprows=skip,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            usecols=columns,
        )
    except pd.errors.ParserError as err:
        msg = str(err).replace("Error tokenizing data. C error: ", "")
        raise DataError(f"{name}: {msg} (a stray comma or a broken line?)") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: no header and no rows") from None
    except ValueError as err:  # usecols not in the header
        raise DataError(f"{name}: {err}") from None
    lines = np.arange(len(df)) + skip + 2
    df = df.apply(lambda s: s.str.strip())
    blank = (df == "").all(axis=1).to_numpy()
    if blank.any():
        df, lines = df[~blank].reset_index(drop=True), lines[~blank]
    return df, lines


def where(name: str, line, column: str) -> str:
    return f"{name}, line {int(line)}, column '{column}'"


def numbers(
    s: pd.Series,
    column: str,
    lines: np.ndarray,
    name: str,
    *,
    integer: bool = False,
    missing: tuple[str, ...] = (),
    lo: float | None = None,
    hi: float | None = None,
) -> np.ndarray:
    """Parse a column of strings as float64 (NaN where the cell is one of ``missing``), checking
    that every other cell is a finite number (an integer if asked) within [lo, hi]."""
    absent = s.isin(missing).to_numpy()
    x = pd.to_numeric(s.where(~absent, None), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~absent & ~np.isfinite(x)
    if bad.any():
        i = int(np.argmax(bad))
        value = s.iloc[i]
        what = "empty value (row truncated?)" if value == "" else f"{value!r} is not a number"
        allowed = f" (or {' / '.join(map(repr, missing))} for missing)" if missing else ""
        raise DataError(f"{where(name, lines[i], column)}: {what}; expected a number{allowed}")
    ok = ~absent
    if integer:
        bad = ok & (x != np.round(x))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{where(name, lines[i], column)}: {s.iloc[i]!r} is not a whole number")
    if lo is not None:
        bad = ok & (x < lo)
        if bad.any():
            i = int(np.argmax(bad))
            kind = "negative count" if lo == 0 and integer else f"value below {lo:g}"
            raise DataError(f"{where(name, lines[i], column)}: {kind} {s.iloc[i]}")
    if hi is not None:
        bad = ok & (x > hi)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{where(name, lines[i], column)}: value {s.iloc[i]} above {hi:g}")
    return x


def decimals(s: pd.Series) -> np.ndarray:
    """Digits after the decimal point of each numeric string (0 without a point)."""
    frac = s.str.partition(".")[2]
    return frac.str.len().to_numpy(dtype=float)
