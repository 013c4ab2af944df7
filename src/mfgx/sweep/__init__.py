"""Sweeps: any configuration over axes and seeds, every trial a Ray task; tables over seeds.

- `load_spec` / `spec_from_dict` → `SweepSpec` (a TOML sweep file: base configuration, axes, grids;
  see `mfgx.sweep._spec`), `run` → `SweepResult` (trials on local Ray or a cluster by address,
  per-trial checkpoints and resume, skipping of finished trials, rerun of changed ones; ``sweep.json``,
  ``sweep.md``, figures), `collect` (aggregate without running).
- Targets (what a trial runs): ``"synthetic"`` (`run_synthetic`: the calibration paper's protocol on
  the LQ, cybersecurity and SIR games), ``"study"`` (an `mfgx calibrate` study configuration), or any
  ``"module:function"``; `TARGETS`.
- `t_interval`, `summarise`: mean ± sd and 95 % t-intervals over seeds.
- `shard_batch`, `batch_sharding`: a vmapped batch split over the local devices (`jax.sharding`),
  used by `calibrate.fit` and `calibrate.evaluate` on multi-device hosts.
"""

from .._sharding import batch_sharding, shard_batch
from ._aggregate import summarise, t_interval
from ._run import SweepResult, collect, run, run_trial
from ._spec import SweepError, SweepSpec, Trial, load_spec, spec_from_dict, trial_fingerprint
from ._synthetic import Truth, run_synthetic
from ._targets import TARGETS, resolve_target

__all__ = [
    "SweepError",
    "SweepResult",
    "SweepSpec",
    "TARGETS",
    "Trial",
    "Truth",
    "batch_sharding",
    "collect",
    "load_spec",
    "resolve_target",
    "run",
    "run_synthetic",
    "run_trial",
    "shard_batch",
    "spec_from_dict",
    "summarise",
    "t_interval",
    "trial_fingerprint",
]
