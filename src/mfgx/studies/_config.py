r"""Study configurations in TOML: what `mfgx calibrate --config FILE` runs.

    [study]
    kind = "epidemic"          # "epidemic" (SIR MFG vs SIR ODE), "mobility" (bike-share MFG vs forward ODE)
                               # or "covid" (four SIR models on COVID first-wave cases; see _covid_study)
    output = "outputs/measles" # results, checkpoints, fitted models and figures go here
    seed = 0

    [data]
    source = "measles"         # epidemic: "measles" (bundled), "fluview" (file), "observations" (.npz file)
                               # mobility: "flights" (bundled), "citibike" (file), "observations" (.npz file)
    # file = "ICL_NREVSS_Clinical_Labs.csv"
    split_by = "town"          # group key of metadata["trajectories"] for val/test (else by trajectory)
    val = 0.15
    test = 0.2
    # any other key is passed to the loader, e.g. window = 40, towns = ["London", "Bristol"]

    [model]                    # keywords of `epidemic_models` / `mobility_models` (width, depth, temperature, …)

    [fit]                      # keywords of `calibrate.fit` (epochs, batch_size, learning_rate, patience, …)
    epochs = 30

Relative paths (``file``, ``output``) are taken from the configuration file's folder.
"""

from __future__ import annotations

import inspect

import numpy as np
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._toml import read_toml
from ..calibrate import fit
from ..data import DataError, Observations

SECTIONS = ("study", "data", "model", "fit")
_FIT_KEYS = set(inspect.signature(fit).parameters) - {"model", "train", "val", "checkpoint_dir", "progress"}
SOURCES = {
    "epidemic": ("measles", "fluview", "observations"),
    "mobility": ("flights", "citibike", "observations"),
    "covid": ("covid3month",),
}


class ConfigError(ValueError):
    """A study configuration that cannot be run, with the file and key at fault."""


@dataclass(frozen=True)
class StudyConfig:
    """A validated study configuration (see the module docstring for the TOML layout)."""

    kind: str
    output: Path
    source: str
    seed: int = 0
    file: Path | None = None
    split_by: str | None = None
    val: float = 0.15
    test: float = 0.2
    loader: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    origin: str = "<dict>"


def _get(table: dict, key: str, kind, where: str, default=None, required: bool = False):
    if key not in table:
        if required:
            raise ConfigError(f"{where}: missing key {key!r}")
        return default
    value = table[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}: {key!r} must be {names}, got {value!r}")
    return value


_POSITIVE = {"epochs", "batch_size", "eval_every", "checkpoint_every", "patience", "learning_rate", "width",
             "n_alpha", "temperature", "max_steps", "T", "a_max", "tol", "seeds", "steps", "countries", "gamma",
             "c_alpha", "min_cases", "fit_days"}
_UNIT = {"window": (0.0, 1.0, False), "damping": (0.0, 1.0, True), "susceptible": (0.0, 1.0, True)}


def check_options(options: dict[str, Any], fn, where: str) -> None:
    """Each option's type and range from ``fn``'s signature (its default's type) before any work:
    integers (not booleans) ≥ 0, reals finite, and the names in ``_POSITIVE`` > 0; a `ConfigError`
    names the section, the key, what it must be and what it got. Unknown keys are reported too."""
    params = inspect.signature(fn).parameters
    for key, value in options.items():
        if key not in params:
            allowed = sorted(k for k, p in params.items() if p.kind is p.KEYWORD_ONLY)
            raise ConfigError(f"{where}: unknown key {key!r}; allowed: {allowed}")
        default = params[key].default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {key!r} must be true or false, got {value!r}")
            continue
        if isinstance(default, int) or (default is None and isinstance(value, int) and not isinstance(value, bool)
                                        and key in _POSITIVE):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}: {key!r} must be an integer, got {value!r}")
            low = 1 if key in _POSITIVE else 0
            if value < low:
                raise ConfigError(f"{where}: {key!r} must be an integer ≥ {low}, got {value}")
        elif isinstance(default, float) or (isinstance(value, float) and key in _POSITIVE | set(_UNIT)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: {key!r} must be a number, got {value!r}")
            if not np.isfinite(value):
                raise ConfigError(f"{where}: {key!r} must be finite, got {value}")
            if key in _POSITIVE and not value > 0:
                raise ConfigError(f"{where}: {key!r} must be > 0, got {value}")
            if key in _UNIT:
                lo, hi, open_hi = _UNIT[key]
                if not (lo < value < hi if open_hi else lo < value <= hi):
                    raise ConfigError(f"{where}: {key!r} must be in ({lo:g}, {hi:g}{')' if open_hi else ']'}, got {value}")


def config_from_dict(raw: dict[str, Any], base: Path = Path("."), origin: str = "<dict>") -> StudyConfig:
    """Validate a parsed configuration; relative paths are resolved against ``base``."""
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"{origin}: unknown section(s) {sorted(unknown)}; expected {list(SECTIONS)}")
    for name in SECTIONS:
        if not isinstance(raw.get(name, {}), dict):
            raise ConfigError(f"{origin}: [{name}] must be a table")
    study, data = dict(raw.get("study", {})), dict(raw.get("data", {}))
    kind = _get(study, "kind", str, f"{origin} [study]", required=True)
    if kind not in SOURCES:
        raise ConfigError(f"{origin} [study]: kind must be one of {list(SOURCES)}, got {kind!r}")
    output = base / _get(study, "output", str, f"{origin} [study]", default=f"outputs/{kind}")
    seed = _get(study, "seed", int, f"{origin} [study]", default=0)
    extra = set(study) - {"kind", "output", "seed"}
    if extra:
        raise ConfigError(f"{origin} [study]: unknown key(s) {sorted(extra)}")
    where = f"{origin} [data]"
    source = _get(data, "source", str, where, default=SOURCES[kind][0])
    if source not in SOURCES[kind]:
        raise ConfigError(f"{where}: source for a {kind} study must be one of {list(SOURCES[kind])}, got {source!r}")
    file = data.pop("file", None)
    if source in ("fluview", "citibike", "observations"):
        if not isinstance(file, str):
            raise ConfigError(f"{where}: source {source!r} needs file = \"PATH\"")
        file = base / file
        if not file.is_file():
            raise ConfigError(f"{where}: file {str(file)!r} does not exist")
    elif file is not None:
        raise ConfigError(f"{where}: source {source!r} is bundled and takes no file")
    split_by = _get(data, "split_by", str, where)
    val = float(_get(data, "val", (int, float), where, default=0.15))
    test = float(_get(data, "test", (int, float), where, default=0.2))
    loader = {k: v for k, v in data.items() if k not in ("source", "split_by", "val", "test")}
    if kind == "covid":
        return _covid_config(raw, kind, output, source, seed, split_by, test, loader, origin)
    fit_options = dict(raw.get("fit", {}))
    bad = set(fit_options) - _FIT_KEYS
    if bad:
        raise ConfigError(f"{origin} [fit]: unknown key(s) {sorted(bad)}; allowed: {sorted(_FIT_KEYS - {'optimizer', 'callback'})}")
    check_options(fit_options, fit, f"{origin} [fit]")
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"{where}: val and test must be fractions in [0, 1) with val + test < 1, got {val}, {test}")
    model = dict(raw.get("model", {}))
    if kind == "epidemic":
        from ._epidemic import epidemic_models as builder
    else:
        from ._mobility import mobility_models as builder
    check_options({k: v for k, v in model.items() if k != "init"}, builder, f"{origin} [model]")
    return StudyConfig(kind, output, source, seed, file, split_by, val, test, loader, model, fit_options, origin)


def _covid_config(raw, kind, output, source, seed, split_by, test, loader, origin) -> StudyConfig:
    """A COVID study: [data] loader keys, [model] `CovidModel` fields and [fit] keys of its own."""
    from ._covid_study import covid_options, data_options, model_options

    if split_by is not None:
        raise ConfigError(f"{origin} [data]: a covid study always holds out whole countries; drop split_by")
    if not 0 < test < 1:
        raise ConfigError(f"{origin} [data]: test must be a fraction in (0, 1), got {test}")
    model, fit_options = dict(raw.get("model", {})), dict(raw.get("fit", {}))
    check_options(loader, data_options, f"{origin} [data]")
    check_options(model, model_options, f"{origin} [model]")
    check_options(fit_options, covid_options, f"{origin} [fit]")
    return StudyConfig(kind, output, source, seed, None, None, 0.0, test, loader, model, fit_options, origin)


def load_config(path) -> StudyConfig:
    """Read and validate a TOML study configuration."""
    raw, path = read_toml(path, ConfigError)
    return config_from_dict(raw, path.parent, str(path))


def load_splits(config: StudyConfig) -> dict[str, Observations | None]:
    """The observations named by ``config``, split into train/val and held-out test part(s)."""
    from .. import data
    from ._splits import split_by

    try:
        if config.source == "measles":
            obs = data.measles_waves(**config.loader)
        elif config.source == "observations":
            obs = Observations.load(config.file)
        elif config.source == "fluview":
            parts = data.fluview_seasons(data.read_fluview(config.file), **config.loader)
            return _with_val(parts, config)
        elif config.source == "flights":
            return _with_val(data.nyc_flights(**config.loader), config)
        else:  # citibike
            return _with_val(data.citibike_occupancy(data.read_citibike(config.file), **config.loader), config)
    except TypeError as err:  # a loader option that does not exist
        raise ConfigError(f"{config.origin} [data]: {err}") from None
    if config.split_by is not None:
        return split_by(obs, config.split_by, val=config.val, test=config.test, seed=config.seed)
    train, val, test = obs.split(1 - config.val - config.test, config.val, config.test, seed=config.seed)
    return {"train": train, "val": val, "test": test}


def _with_val(parts: dict, config: StudyConfig) -> dict:
    """A loader's own split (train + held-out parts), with ``val`` of train set aside for selection."""
    train = parts["train"]
    if train is None:
        raise DataError(f"{config.origin}: the data give no training trajectory")
    if config.val > 0:
        train, val, _ = train.split(1 - config.val, config.val, 0.0, seed=config.seed)
    else:
        val = None
    return {"train": train, "val": val, **{k: v for k, v in parts.items() if k != "train"}}
