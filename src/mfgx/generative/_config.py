r"""Configurations of `mfgx generate` (TOML), checked before any work.

    [run]
    problem = "cnf"          # cnf | ot | crowd | jko | sgm
    output = "outputs/generate/cnf_moons"   # relative to the file's folder
    seed = 0
    quick = false            # tiny sizes and a few steps (`QUICK`): a smoke run

    [data]                   # ρ₀: the training data (samples of it)
    name = "moons"           # a 2-D toy (datasets.TOYS), "gaussian" (N(mean, var·I)) or "mixture8"
                             # (MFGnet's 8 Gaussians on a circle of `radius`, variance `var`)
    n_train = 20000
    n_val = 2000             # validation (model selection); 0: none
    n_test = 2000            # held out: every metric of the report
    # dim = 2, mean = [0.0, 3.0] (padded with zeros to dim), var = 0.3, radius = 4.0, standardize = false

    [target]                 # ot, crowd, jko: the target density ρ₁ (jko: of the KL energy); same keys

    [problem]                # keywords of CNF / DynamicOT / CrowdMotion / JKOStep / SGM;
                             # sgm: sde = "vp" | "subvp" | "ve" with beta_min, beta_max / sigma_min, sigma_max;
                             # jko: n_jko (steps of the chain); crowd: obstacle = {height, center, widths}

    [fit]                    # keywords of `generative.fit` (cnf, ot, crowd, jko) or `fit_sgm` (sgm):
                             # steps, batch_size, learning_rate, width, depth, …

    [evaluate]               # n_samples, n_exact (exact W₂ by POT), n_nll (sgm), eval_steps (flows), grid
                             # (density heatmap), frames (GIF), n_paths, sampler ("ode" | "sde", sgm), sde_steps

`load_config` / `config_from_dict` return a `GenerateConfig`; a `ConfigError` names the file,
the section and the key at fault. The problem, the densities and every option are built or
type-checked here, so a bad configuration fails before data are drawn or a step is trained.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._toml import read_toml
from ._errors import GenerativeError

PROBLEMS = ("cnf", "ot", "crowd", "jko", "sgm")
SECTIONS = ("run", "data", "target", "problem", "fit", "evaluate")
DENSITIES = ("gaussian", "mixture8")
_EVALUATE = {"n_samples": 2000, "n_exact": 1000, "n_nll": 500, "eval_steps": None, "grid": 64, "frames": 24,
             "n_paths": 200, "sampler": "ode", "sde_steps": 500}
_DATA = {"name": None, "n_train": 20000, "n_val": 2000, "n_test": 2000, "dim": 2, "mean": 0.0, "var": 1.0,
         "radius": 4.0, "standardize": False}
# The quick mode's ceilings: a smoke run of seconds (tests, `--quick`).
QUICK = {"n_train": 512, "n_val": 64, "n_test": 128, "steps": 6, "batch_size": 64, "eval_every": 3,
         "checkpoint_every": 3, "n_samples": 128, "n_exact": 128, "n_nll": 16, "eval_steps": 4, "grid": 12, "frames": 4,
         "n_paths": 16, "sde_steps": 40, "n_jko": 2}

# Defaults per problem (what `mfgx generate --problem P` runs without a file), OT-Flow's / MFGnet's
# settings (science note generative_lab.md §5.5, §6.1) at budgets of minutes on a CPU.
DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "cnf": {"data": {"name": "moons"}, "problem": {"alpha_C": 8.0, "alpha_R": 1.0, "n_steps": 8},
            "fit": {"steps": 1000, "batch_size": 1024, "learning_rate": 0.05, "drop_every": 250, "eval_every": 100},
            "evaluate": {"eval_steps": 12}},
    "ot": {"data": {"name": "mixture8", "var": 0.3}, "target": {"name": "gaussian", "var": 0.3},
           "problem": {"n_steps": 4}, "fit": {"steps": 1000, "batch_size": 1024, "learning_rate": 0.02,
                                              "drop_every": 300, "eval_every": 100}, "evaluate": {"eval_steps": 8}},
    "crowd": {"data": {"name": "gaussian", "mean": [0.0, 3.0], "var": 0.3},
              "target": {"name": "gaussian", "mean": [0.0, -3.0], "var": 0.3},
              "problem": {"n_steps": 4}, "fit": {"steps": 1000, "batch_size": 1024, "learning_rate": 0.02,
                                                 "drop_every": 300, "eval_every": 100}, "evaluate": {"eval_steps": 8}},
    "jko": {"data": {"name": "gaussian", "mean": [2.0, -1.0], "var": 0.25}, "target": {"name": "gaussian"},
            "problem": {"tau": 0.25, "n_jko": 4}, "fit": {"steps": 300, "batch_size": 1024, "learning_rate": 0.02},
            "evaluate": {}},
    "sgm": {"data": {"name": "moons", "standardize": True}, "problem": {"sde": "vp"},
            "fit": {"steps": 2000, "batch_size": 256, "learning_rate": 2e-3, "eval_every": 200, "depth": 2},
            "evaluate": {}},
}


class ConfigError(GenerativeError):
    """A `mfgx generate` configuration that cannot be run, with the file, section and key at fault."""


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """A checked configuration (module docstring): ``problem`` (a name of `PROBLEMS`), ``output``,
    ``seed``, ``quick``, and the sections ``data``, ``target``, ``problem_options``, ``fit``,
    ``evaluate`` as dicts with every default filled in; ``origin`` names where it came from."""

    problem: str
    output: Path
    seed: int = 0
    quick: bool = False
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    target: dict[str, Any] | None = None
    problem_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    fit: dict[str, Any] = dataclasses.field(default_factory=dict)
    evaluate: dict[str, Any] = dataclasses.field(default_factory=dict)
    origin: str = "<dict>"

    def settings(self) -> dict:
        """JSON-able settings (for the report)."""
        out = dataclasses.asdict(self)
        out["output"] = str(self.output)
        return out


def _check_table(table: dict, defaults: dict, where: str) -> dict:
    """``defaults`` updated by ``table``: unknown keys and values of the wrong type (by the default's
    type: bool, int ≥ 0, finite number, string; keys whose default is None or a list are checked
    later) are `ConfigError`s naming ``where`` and the key."""
    out = dict(defaults)
    for key, value in table.items():
        if key not in defaults:
            raise ConfigError(f"{where}: unknown key {key!r}; allowed: {sorted(defaults)}")
        d = defaults[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(d, bool) and not isinstance(value, bool):
            raise ConfigError(f"{where}: {key!r} must be true or false, got {value!r}")
        if isinstance(d, int) and not isinstance(d, bool) and (not number or not isinstance(value, int) or value < 0):
            raise ConfigError(f"{where}: {key!r} must be an integer >= 0, got {value!r}")
        if isinstance(d, float) and key != "mean" and (not number or not math.isfinite(value)):
            raise ConfigError(f"{where}: {key!r} must be a finite number, got {value!r}")
        if isinstance(d, str) and not isinstance(value, str):
            raise ConfigError(f"{where}: {key!r} must be a string, got {value!r}")
        out[key] = value
    return out


def _fit_defaults(problem: str) -> dict:
    """The configurable keywords of `fit` / `fit_sgm` and their defaults."""
    from ._fit import fit
    from ._sgm import fit_sgm

    fn = fit_sgm if problem == "sgm" else fit
    skip = {"problem", "data", "key", "val", "checkpoint_dir", "resume", "progress", "callback", "optimizer", "potential",
            "eval_steps"}  # [evaluate] eval_steps serves training's evaluations too
    out = {k: p.default for k, p in inspect.signature(fn).parameters.items() if k not in skip}
    if problem == "sgm":
        out["model"] = "direct"
    return out


_COUNTS = ("steps", "batch_size", "eval_every", "checkpoint_every", "eval_batch_size", "width", "depth")


def _check_fit(fit: dict, where: str) -> None:
    for k in _COUNTS:
        if k in fit and fit[k] < 1:
            raise ConfigError(f"{where}: {k!r} must be an integer >= 1, got {fit[k]!r}")
    for k in ("patience", "rank"):
        v = fit.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{where}: {k!r} must be an integer >= 1, got {v!r}")
    for k in ("learning_rate", "lr_drop"):
        if k in fit and not fit[k] > 0:
            raise ConfigError(f"{where}: {k!r} must be > 0, got {fit[k]!r}")
    if fit.get("model", "direct") not in ("direct", "potential"):
        raise ConfigError(f"{where}: 'model' must be 'direct' or 'potential', got {fit['model']!r}")


def density(spec: dict, where: str, dtype=None):
    """The known density of a [data] / [target] table: `GaussianMixture` or None (a toy)."""
    from . import datasets

    name, dim = spec["name"], spec["dim"]
    if name not in DENSITIES:
        return None
    if dim < 1:
        raise ConfigError(f"{where}: 'dim' must be an integer >= 1, got {dim}")
    if not spec["var"] > 0:
        raise ConfigError(f"{where}: 'var' must be > 0, got {spec['var']!r}")
    if name == "mixture8":
        if dim < 2:
            raise ConfigError(f"{where}: 'mixture8' needs dim >= 2, got {dim}")
        return datasets.mfgnet_eight_gaussians(dim, radius=float(spec["radius"]), var=float(spec["var"]), dtype=dtype)
    mean = spec["mean"]
    m = np.zeros(dim)
    if isinstance(mean, list):
        if len(mean) > dim or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in mean):
            raise ConfigError(f"{where}: 'mean' must be a number or a list of at most dim = {dim} numbers, got {mean!r}")
        m[: len(mean)] = mean
    elif isinstance(mean, (int, float)) and not isinstance(mean, bool):
        m[:] = mean
    else:
        raise ConfigError(f"{where}: 'mean' must be a number or a list of numbers, got {mean!r}")
    return datasets.gaussian(m, float(spec["var"]), dtype=dtype)


def _check_data(spec: dict, where: str) -> dict:
    from . import datasets

    name = spec["name"]
    if name is None:
        raise ConfigError(f"{where}: missing key 'name' (a toy {sorted(datasets.TOYS)} or one of {list(DENSITIES)})")
    if not isinstance(name, str) or (name not in datasets.TOYS and name not in DENSITIES):
        raise ConfigError(f"{where}: 'name' must be a toy {sorted(datasets.TOYS)} or one of {list(DENSITIES)}, got {name!r}")
    if name in datasets.TOYS and spec["dim"] != 2:
        raise ConfigError(f"{where}: the toy {name!r} is 2-D; 'dim' must be 2, got {spec['dim']}")
    for k in ("n_train", "n_test"):
        if spec.get(k, 2) < 2:
            raise ConfigError(f"{where}: {k!r} must be an integer >= 2, got {spec[k]}")
    density(spec, where)
    return spec


def build_problem(config: "GenerateConfig", dim: int):
    """The problem module of ``config`` for data of dimension ``dim`` (and ``n_jko`` for jko)."""
    from . import _jko, _problems, _score, _sde, _transport

    where = f"{config.origin} [problem]"
    opts = dict(config.problem_options)
    try:
        if config.problem == "cnf":
            return _problems.CNF(**opts), None
        if config.problem == "sgm":
            sdes = {"vp": _sde.VP, "subvp": _sde.SubVP, "ve": _sde.VE}
            name = opts.pop("sde", "vp")
            if name not in sdes:
                raise ConfigError(f"{where}: 'sde' must be one of {list(sdes)}, got {name!r}")
            sde_keys = {k for k in ("beta_min", "beta_max", "sigma_min", "sigma_max") if k in opts}
            fields = {f.name for f in dataclasses.fields(sdes[name])}
            bad = sorted(sde_keys - fields)
            if bad:
                raise ConfigError(f"{where}: {bad} do not apply to sde = {name!r} (it takes {sorted(fields & {'beta_min', 'beta_max', 'sigma_min', 'sigma_max'})})")
            sde = sdes[name](**{k: opts.pop(k) for k in sde_keys})
            return _score.SGM(sde, **opts), None
        target = density(config.target, f"{config.origin} [target]")
        if target.dim != dim:
            raise ConfigError(f"{config.origin} [target]: 'dim' is {target.dim} but the data have dimension {dim}")
        source = density(config.data, f"{config.origin} [data]")
        if config.problem == "jko":
            n_jko = opts.pop("n_jko", 4)
            if isinstance(n_jko, bool) or not isinstance(n_jko, int) or n_jko < 1:
                raise ConfigError(f"{where}: 'n_jko' must be an integer >= 1, got {n_jko!r}")
            return _jko.JKOStep((_jko.KL(target),), **opts), n_jko
        if config.problem == "ot":
            return _transport.DynamicOT(target, source, **opts), None
        ob = opts.pop("obstacle", None)
        if ob is not None:
            if not isinstance(ob, dict) or set(ob) - {"height", "center", "widths"}:
                raise ConfigError(f"{where}: 'obstacle' must be a table with keys height, center, widths, got {ob!r}")
            ob = {k: (tuple(v) if isinstance(v, list) else v) for k, v in ob.items()}
            opts["obstacle"] = _transport.Obstacle(**ob)
        return _transport.CrowdMotion(target, source, **opts), None
    except ConfigError:
        raise
    except GenerativeError as e:
        raise ConfigError(f"{where}: {e}") from None
    except TypeError as e:  # an unknown keyword of the problem's constructor
        cls = {"cnf": _problems.CNF, "sgm": _score.SGM, "jko": _jko.JKOStep, "ot": _transport.DynamicOT,
               "crowd": _transport.CrowdMotion}[config.problem]
        taken = {"sde", "target", "source", "energies", "solver"}
        allowed = sorted({f.name for f in dataclasses.fields(cls)} - taken | ({"n_jko"} if config.problem == "jko" else set())
                         | ({"sde", "beta_min", "beta_max", "sigma_min", "sigma_max"} if config.problem == "sgm" else set()))
        bad = sorted(set(config.problem_options) - set(allowed))
        raise ConfigError(f"{where}: unknown key(s) {bad} for {cls.__name__}; allowed: {allowed}" if bad else f"{where}: {e}") from None


def config_from_dict(raw: dict[str, Any], base: Path = Path("."), origin: str = "<dict>", *, quick: bool | None = None,
                     output: Path | None = None, steps: int | None = None, data: str | None = None) -> GenerateConfig:
    """Check a parsed configuration (module docstring) and fill in the problem's defaults
    (`DEFAULTS`); ``quick``, ``output``, ``steps`` and ``data`` (a [data] name) override the file."""
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"{origin}: unknown section(s) {sorted(unknown)}; expected {list(SECTIONS)}")
    for name in SECTIONS:
        if not isinstance(raw.get(name, {}), dict):
            raise ConfigError(f"{origin}: [{name}] must be a table")
    run = _check_table(raw.get("run", {}), {"problem": "", "output": "", "seed": 0, "quick": False}, f"{origin} [run]")
    problem = run["problem"]
    if problem not in PROBLEMS:
        raise ConfigError(f"{origin} [run]: 'problem' must be one of {list(PROBLEMS)}, got {problem!r}")
    d = DEFAULTS[problem]
    data_defaults = d["data"]
    if data is not None:  # another data set than the problem's default: only its name (and standardize)
        raw = {**raw, "data": {**raw.get("data", {}), "name": data}}
        if data != d["data"]["name"]:
            data_defaults = {k: v for k, v in d["data"].items() if k == "standardize"}
    data_spec = _check_data(_check_table(raw.get("data", {}), {**_DATA, **data_defaults}, f"{origin} [data]"), f"{origin} [data]")
    if data_spec["standardize"] and problem not in ("cnf", "sgm"):
        raise ConfigError(f"{origin} [data]: 'standardize' applies to cnf and sgm only (the {problem} target is in data coordinates)")
    target = None
    if problem in ("ot", "crowd", "jko"):
        tdef = {**_DATA, "dim": data_spec["dim"], **d.get("target", {}), "name": d.get("target", {}).get("name", "gaussian")}
        target = _check_table(raw.get("target", {}), tdef, f"{origin} [target]")
        if target["name"] not in DENSITIES:
            raise ConfigError(f"{origin} [target]: 'name' must be one of {list(DENSITIES)} (a density), got {target['name']!r}")
        density(target, f"{origin} [target]")
    elif raw.get("target"):
        raise ConfigError(f"{origin}: [target] applies to ot, crowd and jko only, not to {problem!r}")
    fit = _check_table(raw.get("fit", {}), {**_fit_defaults(problem), **d["fit"]}, f"{origin} [fit]")
    if steps is not None:
        fit["steps"] = steps
    _check_fit(fit, f"{origin} [fit]")
    ev = _check_table(raw.get("evaluate", {}), {**_EVALUATE, **d["evaluate"]}, f"{origin} [evaluate]")
    for k in ("n_samples", "n_exact", "n_nll", "grid", "frames", "n_paths", "sde_steps"):
        if ev[k] < 2:
            raise ConfigError(f"{origin} [evaluate]: {k!r} must be an integer >= 2, got {ev[k]}")
    if ev["eval_steps"] is not None and (isinstance(ev["eval_steps"], bool) or not isinstance(ev["eval_steps"], int) or ev["eval_steps"] < 1):
        raise ConfigError(f"{origin} [evaluate]: 'eval_steps' must be an integer >= 1, got {ev['eval_steps']!r}")
    if ev["sampler"] not in ("ode", "sde"):
        raise ConfigError(f"{origin} [evaluate]: 'sampler' must be 'ode' or 'sde', got {ev['sampler']!r}")
    quick = run["quick"] if quick is None else quick
    if quick:
        data_spec = _cap(data_spec, ("n_train", "n_val", "n_test"))
        fit = _cap(fit, ("steps", "batch_size", "eval_every", "checkpoint_every")) if steps is None else {
            **_cap(fit, ("batch_size", "eval_every", "checkpoint_every"))}
        ev = _cap(ev, ("n_samples", "n_exact", "n_nll", "eval_steps", "grid", "frames", "n_paths", "sde_steps"))
    options = {**d["problem"], **raw.get("problem", {})}
    if quick and problem == "jko":
        options["n_jko"] = min(options.get("n_jko", 4), QUICK["n_jko"])
    out = Path(output) if output is not None else Path(os.path.normpath(base / (run["output"] or f"outputs/generate/{problem}_{data_spec['name']}")))
    config = GenerateConfig(problem, out, run["seed"], bool(quick), data_spec, target, options, fit, ev, origin)
    build_problem(config, data_spec["dim"])  # every problem option checked now
    return config


def _cap(table: dict, keys) -> dict:
    return {**table, **{k: min(table[k], QUICK[k]) if table.get(k) is not None else QUICK[k] for k in keys}}


def load_config(path, **overrides) -> GenerateConfig:
    """Read and check a TOML configuration; relative paths are taken from its folder."""
    raw, path = read_toml(path, ConfigError)
    return config_from_dict(raw, path.parent, str(path), **overrides)


def default_config(problem: str, data: str | None = None, **overrides) -> GenerateConfig:
    """The configuration of ``mfgx generate --problem P [--data NAME]`` (`DEFAULTS`)."""
    if problem not in PROBLEMS:
        raise ConfigError(f"--problem must be one of {list(PROBLEMS)}, got {problem!r}")
    return config_from_dict({"run": {"problem": problem}}, Path("."), f"--problem {problem}", data=data, **overrides)
