"""Shared helpers of the file loaders: reading CSV text as strings, locating bad cells by file line
and column, parsing numbers with a clear error."""

from __future__ import annotations

import io
import pathlib
import re

import numpy as np
import pandas as pd

from ._errors import DataError


MAX_MEMBER_BYTES = 4 * 2**30  # 4 GiB uncompressed per archive member
MAX_RATIO = 200  # CSV and numeric data compress 3–20×; far beyond that is a decompression bomb


def read_member(z, info, path, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """The bytes of zip member ``info`` of archive ``z`` (file ``path``), refusing before any
    decompression a member whose declared size exceeds ``limit`` or whose compression ratio is
    implausible, and stopping at ``limit`` bytes if the declared size lies."""
    check_member(info, path, limit)
    with z.open(info) as f:
        data = f.read(min(info.file_size, limit) + 1)
    if len(data) > info.file_size:
        raise DataError(f"{path}:{info.filename}: decompresses to more than its declared {info.file_size} bytes "
                        "(corrupt or hostile archive)")
    return data


def check_member(info, path, limit: int = MAX_MEMBER_BYTES) -> None:
    """`DataError` for a zip member too large or too compressed to be plausible data."""
    if info.file_size > limit:
        raise DataError(f"{path}:{info.filename}: declares {info.file_size / 2**30:.1f} GiB uncompressed, above "
                        f"the {limit / 2**30:.1f} GiB limit")
    if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise DataError(f"{path}:{info.filename}: compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 "
                        f"(over {MAX_RATIO}:1) is not plausible data (a decompression bomb?)")


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


def read_table(text: str, name: str, skip: int, check_header=None) -> tuple[pd.DataFrame, np.ndarray]:
    """All cells as stripped strings, with the header on line ``skip + 1``; returns the frame and
    the 1-based file line of each row. Blank lines are dropped (the line numbers stay right).

    ``check_header(columns)`` (stripped names) may raise first. Then a row with more fields than
    the header is an error naming its line; a row with fewer (a truncated line) is padded with
    empty cells, which the caller reports by column."""
    try:
        df = pd.read_csv(
            io.StringIO(text),
            skiprows=skip,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: no header and no rows") from None
    except pd.errors.ParserError as err:
        raise DataError(f"{name}{_parser_problem(str(err))}") from None
    columns = [str(c).strip() for c in df.columns]
    if check_header is not None:
        check_header(columns)
    if not isinstance(df.index, pd.RangeIndex):  # pandas took the first data row's extra field as an index
        raise DataError(
            f"{name}, line {skip + 2}: {len(df.columns) + 1} fields but the header has {len(df.columns)} "
            f"(a stray comma, or a header that lost a column?)"
        )
    unnamed = [i for i, c in enumerate(columns) if c == "" or c.startswith("Unnamed: ")]
    if unnamed:
        raise DataError(f"{name}, line {skip + 1}: header column {unnamed[0] + 1} is empty (a stray comma?)")
    df.columns = columns
    lines = np.arange(len(df)) + skip + 2
    df = df.apply(lambda s: s.str.strip())
    blank = (df == "").all(axis=1).to_numpy()
    if blank.any():
        df, lines = df[~blank].reset_index(drop=True), lines[~blank]
    return df, lines


def _parser_problem(msg: str) -> str:
    """", line L: what" from a pandas parser message (whose line numbers count physical lines)."""
    msg = msg.replace("Error tokenizing data. C error: ", "").strip()
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", msg)
    if m:
        n, line, saw = m.groups()
        return f", line {line}: {saw} fields but the header has {n} (a stray comma, or two rows run together?)"
    m = re.search(r"EOF inside string starting at row (\d+)", msg)
    if m:
        return f", line {int(m.group(1)) + 1}: a quoted field is never closed (file truncated?)"
    return f": {msg} (a stray comma or a broken line?)"


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


def header_problem(found: list[str], expected: tuple[str, ...], norm=lambda c: c) -> str:
    """What is wrong with a header ``found`` that should read ``expected`` (compared after ``norm``)."""
    have, want = [norm(c) for c in found], [norm(c) for c in expected]
    missing = [e for e, w in zip(expected, want) if w not in have]
    extra = [f for f, h in zip(found, have) if h not in want]
    parts = []
    if missing:
        parts.append("missing column" + "s" * (len(missing) > 1) + " " + ", ".join(map(repr, missing)))
    if extra:
        parts.append("unexpected column" + "s" * (len(extra) > 1) + " " + ", ".join(map(repr, extra)))
    if not parts:
        i = next(i for i, (h, w) in enumerate(zip(have, want)) if h != w)
        parts.append(f"columns out of order: column {i + 1} is {found[i]!r}, expected {expected[i]!r}")
    return "; ".join(parts)
