"""Reading a TOML file with errors that name the file: shared by study, generate and sweep configs."""

from __future__ import annotations

import tomllib
from pathlib import Path


def read_toml(path, error: type[Exception], what: str = "configuration file") -> tuple[dict, Path]:
    """(the parsed table, the path); ``error`` (the caller's config error) when the file is missing
    or not valid TOML."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), path
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path}: not valid TOML: {err}") from None
