"""What a trial runs: a target ``fn(config, trial_dir, context) -> dict of metrics``.

- ``"synthetic"``: `run_synthetic`, the calibration paper's protocol on a zoo game;
- ``"study"``: an `mfgx calibrate --config` study (`mfgx.studies`), written into the trial folder;
  its metrics are flattened to ``<model>.<split>.<metric>`` and ``improvement.<split>``;
- ``"module:function"``: any importable function with that signature (how other kinds of run, e.g.
  `mfgx generate` configurations, plug in).

A target checkpoints into ``trial_dir`` and resumes from there when called again (Ray reruns a
trial whose worker died). ``context`` holds ``base_dir`` (the folder of the base configuration, for
its relative paths) and ``progress_file`` (a JSON file the target may update with ``{"done", "total"}``).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _atomic
from ._spec import SweepError
from ._synthetic import run_synthetic


def _progress_callback(context: dict, total: int | None):
    path = context.get("progress_file")
    if path is None:
        return None

    def callback(record: dict):
        _atomic.write_text(path, json.dumps({"done": record.get("epoch", record.get("step")), "total": total}))

    return callback


def synthetic_target(config: dict, trial_dir: Path, context: dict) -> dict[str, Any]:
    epochs = config.get("fit", {}).get("epochs", 40)
    return run_synthetic(config, trial_dir, callback=_progress_callback(context, epochs))


def study_target(config: dict, trial_dir: Path, context: dict) -> dict[str, Any]:
    from .. import studies

    try:
        cfg = studies.config_from_dict(config, Path(context.get("base_dir", ".")), "sweep trial")
    except studies.ConfigError as err:
        raise SweepError(str(err)) from None
    cfg = dataclasses.replace(cfg, output=Path(trial_dir) / "study")
    result = studies.run(cfg, progress=False)
    row: dict[str, Any] = {}
    for model, per in result.metrics.items():
        for split, m in per.items():
            for k, v in m.items():
                if isinstance(v, (int, float)):
                    row[f"{model}.{split}.{k}"] = v
    if {"baseline", "mfg"} <= set(result.metrics):
        for split in result.metrics["mfg"]:
            row[f"improvement.{split}"] = result.improvement(split)
    row["seconds"] = float(sum(result.wall_time.values()))
    return row


TARGETS: dict[str, Callable] = {"synthetic": synthetic_target, "study": study_target}


def resolve_target(name: str) -> Callable:
    """The target function of a name in `TARGETS` or a ``"module:function"`` path."""
    if name in TARGETS:
        return TARGETS[name]
    module, sep, attr = name.partition(":")
    if not sep or not module or not attr:
        raise SweepError(f"unknown target {name!r}: use one of {sorted(TARGETS)} or \"module:function\"")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise SweepError(f"target {name!r} cannot be imported: {err}") from None
    if not callable(fn):
        raise SweepError(f"target {name!r} is not a function")
    return fn
