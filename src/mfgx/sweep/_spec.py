r"""Sweep files in TOML: a base configuration, axes to vary, and the trials they expand to.

    [sweep]
    output = "outputs/my-sweep"   # trials/, sweep.json, sweep.md and figures/ go here
    base = "measles.toml"         # a base configuration file (or an inline [base] table below)
    mode = "grid"                 # "grid": every combination; "random": `samples` draws per grid
    samples = 8                   # random mode only
    seed = 0                      # random mode: the draws' seed
    # target = "pkg.module:fn"    # default: from the base's [study] kind ("synthetic" or a study kind)
    metrics = ["gamma_mae"]       # the metrics in sweep.md and figures/ (sweep.json keeps all)
    notes = ["a line"]            # text put above the table in sweep.md
    max_retries = 3               # Ray retries of a trial whose worker died
    cpus_per_trial = 1
    gpus_per_trial = 0            # e.g. 1 on a GPU cluster (Ray then sets CUDA_VISIBLE_DEVICES per trial)

    [base]                        # inline base configuration (instead of `base = FILE`)
    study.kind = "synthetic"

    [axes]                        # dotted keys into the base configuration → values
    seed = [42, 43, 44]           # "seed" is short for "study.seed": the replicate axis of the table
    "data.noise" = [0.0, 1e-3]
    "fit.learning_rate" = {low = 1e-3, high = 1e-1, log = true}   # random mode: a range

    [[grid]]                      # optional sub-grids: each adds fixed settings and its own axes
    name = "lq"
    set = {"game.name" = "lq"}
    axes = {"game.d" = [3, 8]}

Trials are the union over the sub-grids (one implicit grid without any) of the product of the
shared and the grid's axes (random mode: `samples` draws of the non-seed axes, each crossed with every
seed). A trial's id names its grid and axis values; its fingerprint is the SHA-256 of its resolved
configuration and target, so a trial whose settings changed is recognised and rerun.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._toml import read_toml
from .. import _fingerprint


class SweepError(ValueError):
    """A sweep file or sweep that cannot be run, with the file and key at fault."""


SEED_AXIS = "seed"
SEED_KEY = "study.seed"
_SWEEP_KEYS = {"output", "base", "mode", "samples", "seed", "target", "max_retries", "cpus_per_trial", "name", "metrics", "notes", "gpus_per_trial"}


@dataclass(frozen=True)
class Trial:
    """One configuration of a sweep: ``values`` (axis → value, "seed" included), the resolved
    ``config`` (the base with the grid's settings and the values applied) and its ``fingerprint``."""

    id: str
    grid: str
    values: dict[str, Any]
    config: dict[str, Any]
    target: str
    fingerprint: str


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file: where it writes, the trials, and how to run them."""

    name: str
    output: Path
    target: str
    trials: tuple[Trial, ...]
    axes: tuple[str, ...]  # every axis name, in order of first appearance ("seed" last if present)
    mode: str = "grid"
    max_retries: int = 3
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    base_dir: Path = Path(".")
    origin: str = "<dict>"
    raw: dict[str, Any] = field(default_factory=dict)


def _set(config: dict, key: str, value, where: str) -> None:
    """config[a][b][c] = value for key "a.b.c" (tables created as needed)."""
    parts = key.split(".")
    node = config
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise SweepError(f"{where}: {key!r}: {p!r} is a value in the base configuration, not a table")
        node = nxt
    node[parts[-1]] = value


def _key(axis: str) -> str:
    return SEED_KEY if axis == SEED_AXIS else axis


def _check_axes(axes, where: str, mode: str) -> dict[str, Any]:
    if not isinstance(axes, dict):
        raise SweepError(f"{where}: axes must be a table of KEY = [values]")
    out = {}
    for k, v in axes.items():
        if isinstance(v, dict):  # a range, random mode only
            if mode != "random":
                raise SweepError(f"{where}: axis {k!r} is a range; ranges need mode = \"random\" (grid axes are lists)")
            if k == SEED_AXIS:
                raise SweepError(f"{where}: the seed axis must be a list of seeds")
            bad = set(v) - {"low", "high", "log", "integer"}
            if bad or not {"low", "high"} <= set(v):
                raise SweepError(f"{where}: axis {k!r}: a range is {{low = .., high = .., log = false, integer = false}}, got {v!r}")
            lo, hi = v["low"], v["high"]
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (lo, hi)) or not lo < hi:
                raise SweepError(f"{where}: axis {k!r}: need finite numbers low < high, got {lo!r}, {hi!r}")
            if v.get("log") and lo <= 0:
                raise SweepError(f"{where}: axis {k!r}: a log range needs low > 0, got {lo!r}")
            out[k] = dict(v)
        elif isinstance(v, list):
            if not v:
                raise SweepError(f"{where}: axis {k!r} has no values")
            if len({repr(x) for x in v}) != len(v):
                raise SweepError(f"{where}: axis {k!r} repeats a value: {v!r}")
            if k == SEED_AXIS and not all(isinstance(s, int) and not isinstance(s, bool) for s in v):
                raise SweepError(f"{where}: seeds must be integers, got {v!r}")
            out[k] = list(v)
        else:
            raise SweepError(f"{where}: axis {k!r} must be a list of values{' or a range table' if mode == 'random' else ''}, got {v!r}")
    return out


def _draw(axis: dict, rng: np.random.Generator):
    lo, hi = axis["low"], axis["high"]
    x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if axis.get("log") else rng.uniform(lo, hi)
    return int(round(x)) if axis.get("integer") else float(x)


def _slug(values: dict[str, Any]) -> str:
    def short(v):
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v)

    text = "_".join(f"{k.rsplit('.', 1)[-1]}={short(v)}" for k, v in values.items())
    text = re.sub(r"[^A-Za-z0-9=.,+_-]+", "-", text).strip("-") or "trial"
    if len(text) > 96:
        text = text[:80] + "-" + _fingerprint.digest(values)[:12]
    return text


def trial_fingerprint(config: dict, target: str) -> str:
    """The fingerprint of what determines a trial's result: its resolved configuration and target."""
    return _fingerprint.digest({"config": config, "target": target})


def _target_of(base: dict, given: str | None, where: str) -> str:
    if given is not None:
        if not isinstance(given, str) or not given:
            raise SweepError(f"{where}: target must be a name or \"module:function\", got {given!r}")
        return given
    kind = base.get("study", {}).get("kind") if isinstance(base.get("study"), dict) else None
    if kind == "synthetic":
        return "synthetic"
    from ..studies._config import SOURCES  # the study kinds of `mfgx calibrate --config`

    if kind in SOURCES:
        return "study"
    kinds = ", ".join(repr(k) for k in ["synthetic", *SOURCES])
    raise SweepError(f"{where}: cannot tell what the base configuration runs: set [study] kind ({kinds}) in it, "
                     f"or target = \"module:function\" in [sweep]")


def spec_from_dict(raw: dict[str, Any], base_dir: Path = Path("."), origin: str = "<dict>") -> SweepSpec:
    """Validate a parsed sweep file and expand its trials (relative paths from ``base_dir``)."""
    raw = copy.deepcopy(raw)
    unknown = set(raw) - {"sweep", "base", "axes", "grid"}
    if unknown:
        raise SweepError(f"{origin}: unknown section(s) {sorted(unknown)}; expected [sweep], [base], [axes], [[grid]]")
    sweep = raw.get("sweep", {})
    if not isinstance(sweep, dict):
        raise SweepError(f"{origin}: [sweep] must be a table")
    where = f"{origin} [sweep]"
    bad = set(sweep) - _SWEEP_KEYS
    if bad:
        raise SweepError(f"{where}: unknown key(s) {sorted(bad)}; allowed: {sorted(_SWEEP_KEYS)}")
    mode = sweep.get("mode", "grid")
    if mode not in ("grid", "random"):
        raise SweepError(f"{where}: mode must be \"grid\" or \"random\", got {mode!r}")
    samples = sweep.get("samples", 1)
    if mode == "random" and not (isinstance(samples, int) and not isinstance(samples, bool) and samples >= 1):
        raise SweepError(f"{where}: samples must be an integer ≥ 1, got {samples!r}")
    for k, low in (("max_retries", 0), ("seed", 0)):
        v = sweep.get(k, 0)
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= low):
            raise SweepError(f"{where}: {k} must be an integer ≥ {low}, got {v!r}")
    cpus = sweep.get("cpus_per_trial", 1)
    if isinstance(cpus, bool) or not isinstance(cpus, (int, float)) or not cpus > 0:
        raise SweepError(f"{where}: cpus_per_trial must be a number > 0, got {cpus!r}")
    gpus = sweep.get("gpus_per_trial", 0)
    if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not gpus >= 0:
        raise SweepError(f"{where}: gpus_per_trial must be a number ≥ 0, got {gpus!r}")
    # The base configuration: a file or an inline table.
    base_file = sweep.get("base")
    if base_file is not None and "base" in raw:
        raise SweepError(f"{where}: give the base configuration either as base = FILE or as a [base] table, not both")
    if base_file is not None:
        if not isinstance(base_file, str):
            raise SweepError(f"{where}: base must be a file name, got {base_file!r}")
        path = base_dir / base_file
        if not path.is_file():
            raise SweepError(f"{where}: base configuration {str(path)!r} does not exist")
        try:
            base = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise SweepError(f"{path}: not valid TOML: {err}") from None
        config_dir = path.parent
    else:
        base = raw.get("base")
        if not isinstance(base, dict) or not base:
            raise SweepError(f"{where}: no base configuration: set base = FILE, or add a [base] table")
        config_dir = base_dir
    name = sweep.get("name", Path(origin).stem if origin != "<dict>" else "sweep")
    output = base_dir / sweep.get("output", f"outputs/sweeps/{name}")
    shared = _check_axes(raw.get("axes", {}), f"{origin} [axes]", mode)
    grids = raw.get("grid", [{}])
    if not isinstance(grids, list) or not grids or not all(isinstance(g, dict) for g in grids):
        raise SweepError(f"{origin}: [[grid]] must be an array of tables")
    trials: list[Trial] = []
    axis_names: list[str] = []
    target = None
    rng = np.random.default_rng(sweep.get("seed", 0))
    names = set()
    for i, grid in enumerate(grids):
        gname = grid.get("name", "main" if len(grids) == 1 else f"grid{i + 1}")
        gwhere = f"{origin} [[grid]] {gname!r}"
        bad = set(grid) - {"name", "set", "axes"}
        if bad:
            raise SweepError(f"{gwhere}: unknown key(s) {sorted(bad)}; allowed: name, set, axes")
        if not isinstance(gname, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", gname) or gname in names:
            raise SweepError(f"{gwhere}: name must be unique and made of letters, digits, '_', '.', '-'")
        names.add(gname)
        fixed = grid.get("set", {})
        if not isinstance(fixed, dict):
            raise SweepError(f"{gwhere}: set must be a table of KEY = value")
        own = _check_axes(grid.get("axes", {}), gwhere, mode)
        clash = set(own) & set(shared)
        if clash:
            raise SweepError(f"{gwhere}: axis {sorted(clash)} also in [axes]")
        axes = {**{k: v for k, v in shared.items() if k != SEED_AXIS}, **{k: v for k, v in own.items() if k != SEED_AXIS}}
        seeds = own.get(SEED_AXIS, shared.get(SEED_AXIS))
        for k in [*axes, *([SEED_AXIS] if seeds else [])]:
            if k not in axis_names:
                axis_names.append(k)
        gbase = copy.deepcopy(base)
        for k, v in fixed.items():
            _set(gbase, k, v, gwhere)
        gtarget = _target_of(gbase, sweep.get("target"), where)
        if target is not None and gtarget != target:
            raise SweepError(f"{gwhere}: every grid must run the same target ({target!r}), got {gtarget!r}")
        target = gtarget
        if mode == "grid":
            points = [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
        else:
            points = [{k: (_draw(v, rng) if isinstance(v, dict) else v[rng.integers(len(v))]) for k, v in axes.items()}
                      for _ in range(samples)]
        for point in points:
            for seed in seeds or [None]:
                values = {**point, **({SEED_AXIS: seed} if seed is not None else {})}
                config = copy.deepcopy(gbase)
                for k, v in values.items():
                    _set(config, _key(k), v, gwhere)
                tid = f"{gname}/{_slug(values)}"
                trials.append(Trial(tid, gname, values, config, gtarget, trial_fingerprint(config, gtarget)))
    ids = [t.id for t in trials]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise SweepError(f"{origin}: trials drawn twice (random mode draws from a small set?): {dup[:3]}")
    if not trials:
        raise SweepError(f"{origin}: the sweep has no trials")
    return SweepSpec(name, output, target, tuple(trials), tuple(axis_names), mode, sweep.get("max_retries", 3), cpus,
                     gpus, config_dir, origin, raw)


def load_spec(path) -> SweepSpec:
    """Read and validate a TOML sweep file (see the module docstring)."""
    raw, path = read_toml(path, SweepError, "sweep file")
    return spec_from_dict(raw, path.parent, str(path))
