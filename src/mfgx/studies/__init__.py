"""Real-data studies: an MFG against a forward-ODE baseline fitted the same way, on held-out data.

- `load_config` / `config_from_dict` → `StudyConfig` (TOML, see `mfgx.studies._config`), `run` →
  `StudyResult` with report.md, metrics.json, figures, fitted models and checkpoints (resumable).
- Epidemics: `epidemic_models` (SIR MFG with contact-factor control vs SIR ODE, β(t, covariates)).
- Mobility: `mobility_models` (bike-share MFG vs forward ODE of base rates), `mobility_metrics`,
  counterfactual station closures `closure` (reactive baseline vs anticipatory MFG).
- Building blocks: `run_study`, `flow_metrics`, `split_by` (whole towns/regions/seasons per split).

The demo configuration (`mfgx demo`) is `DEMO_CONFIG`: measles waves in the 20 towns of England
and Wales of He, Ionides & King (2010) (bundled with pypomp; 13 of them have waves), split by town.
"""

from importlib.resources import files as _files

from ._config import ConfigError, StudyConfig, config_from_dict, load_config, load_splits
from ._epidemic import epidemic_models, epidemic_parameters
from ._mobility import BikeSharePath, closed_game, closure, fitted_params, improvement, mobility_metrics, mobility_models
from ._run import run
from ._runner import StudyResult, flow_metrics, run_study
from ._splits import split_by

DEMO_CONFIG = _files(__name__) / "configs" / "measles.toml"

__all__ = [
    "BikeSharePath",
    "DEMO_CONFIG",
    "ConfigError",
    "StudyConfig",
    "StudyResult",
    "closed_game",
    "closure",
    "config_from_dict",
    "epidemic_models",
    "epidemic_parameters",
    "fitted_params",
    "flow_metrics",
    "improvement",
    "load_config",
    "load_splits",
    "mobility_metrics",
    "mobility_models",
    "run",
    "run_study",
    "split_by",
]
