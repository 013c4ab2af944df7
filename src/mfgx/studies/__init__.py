"""Real-data studies: an MFG against a forward-ODE baseline fitted the same way, on held-out data.

- `load_config` / `config_from_dict` → `StudyConfig` (TOML, see `mfgx.studies._config`), `run` →
  `StudyResult` with report.md, metrics.json, figures, fitted models and checkpoints (resumable).
- Epidemics: `epidemic_models` (SIR MFG with contact-factor control vs SIR ODE, β(t, covariates)).
- Mobility: `mobility_models` (bike-share MFG vs forward ODE of base rates), `mobility_metrics`,
  counterfactual station closures `closure` (reactive baseline vs anticipatory MFG).
- COVID first wave (`configs/covid.toml`): SIR without behaviour, with free β(t), and the
  anticipatory (HJB) and myopic SIR MFGs on `data.covid3month`, 3-week forecasts of held-out
  countries over seeds (`run_covid`, `covid_data`, `CovidModel`, `CovidResult`).
- Building blocks: `run_study`, `flow_metrics`, `split_by` (whole towns/regions/seasons per split),
  `verdict` (the one rule: "better" only when the 95 % interval over seeds and held-out regions
  excludes zero).

The demo configuration (`mfgx demo`) is `DEMO_CONFIG`: the COVID study's quick setting
(`configs/covid_quick.toml`). The measles configuration (`configs/measles.toml`) stays runnable;
its report says why it is no evidence for strategic behaviour.
"""

from importlib.resources import files as _files

from ._config import ConfigError, StudyConfig, config_from_dict, load_config, load_splits
from ._covid import CovidModel
from ._covid_study import CovidResult, CovidStudyError, covid_data, run_covid, split_countries
from ._epidemic import epidemic_models, epidemic_parameters
from ._mobility import BikeSharePath, closed_game, closure, fitted_params, improvement, mobility_metrics, mobility_models
from ._run import run
from ._runner import StudyResult, flow_metrics, run_study
from ._splits import split_by
from ._verdict import Verdict, verdict

DEMO_CONFIG = _files(__name__) / "configs" / "covid_quick.toml"
COVID_CONFIG = _files(__name__) / "configs" / "covid.toml"
MEASLES_CONFIG = _files(__name__) / "configs" / "measles.toml"

__all__ = [
    "BikeSharePath",
    "COVID_CONFIG",
    "DEMO_CONFIG",
    "MEASLES_CONFIG",
    "ConfigError",
    "CovidModel",
    "CovidResult",
    "CovidStudyError",
    "Verdict",
    "StudyConfig",
    "StudyResult",
    "closed_game",
    "closure",
    "config_from_dict",
    "covid_data",
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
    "run_covid",
    "run_study",
    "split_by",
    "split_countries",
    "verdict",
]
