"""Run a study configuration end to end: data → models → fits → held-out comparison → report."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import _atomic
from ._config import ConfigError, StudyConfig, load_splits
from ._runner import StudyResult, metrics_table, run_study

FLOORS = {"epidemic": None, "mobility": 1e-4}  # rel. L2: scale-free for epidemics, the paper's for mobility


def build_models(config: StudyConfig, train) -> dict:
    """The baseline and the MFG of ``config.kind`` on the grid of ``train``."""
    try:
        if config.kind == "epidemic":
            from ._epidemic import epidemic_models

            return epidemic_models(train, seed=config.seed, **config.model)
        from ._mobility import mobility_models

        return mobility_models(train.n_states, train.n_times, seed=config.seed, **config.model)
    except TypeError as err:  # an unknown [model] key
        raise ConfigError(f"{config.origin} [model]: {err}") from None


def run(config: StudyConfig, *, progress: bool = True, console=None) -> StudyResult:
    """Fit the baseline and the MFG of ``config``, compare them on the held-out splits and write
    ``report.md``, ``metrics.json``, figures, fitted models and checkpoints into ``config.output``.
    Rerunning the same configuration resumes from the checkpoints."""
    start = time.perf_counter()
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(config)
    models = build_models(config, splits["train"])
    result = run_study(models, splits, out, fit_options=config.fit, floor=FLOORS[config.kind],
                       progress=progress, console=console)
    result.files.extend(_figures(config, splits, result))
    result.files.append(_report(config, splits, result, time.perf_counter() - start))
    return result


def _figures(config, splits, result: StudyResult) -> list[Path]:
    import matplotlib.pyplot as plt

    from .. import plot

    fig_dir = result.out / "figures"
    held_out = next(s for s in ("test", "test_id", "val") if splits.get(s) is not None)
    obs = splits[held_out]
    titles = [_title(m) for m in obs.metadata.get("trajectories", [])] or None
    preds = {name: p[held_out] for name, p in result.predictions.items()}
    files = [fig_dir / "fits.png", fig_dir / "losses.png", fig_dir / "comparison.png"]
    plot.plot_fits(obs, preds, titles=titles, path=files[0])
    plot.plot_losses({k: c.history for k, c in result.calibrations.items()}, path=files[1])
    plot.plot_comparison(result.metrics, path=files[2])
    if config.kind == "epidemic":
        from ._epidemic import epidemic_parameters

        params = epidemic_parameters(result.calibrations["mfg"], obs)
        cov = None if obs.covariates is None else np.asarray(obs.covariates)[..., 0]
        label = obs.covariate_labels[0] if obs.covariate_labels else "covariate"
        files.append(fig_dir / "parameters.png")
        plot.plot_parameters(obs.times, {"β (MFG)": params["beta"], "γ (MFG)": params["gamma"],
                                         "c_I (MFG)": params["c_infected"]},
                             covariate=cov, covariate_label=label, path=files[-1])
    if config.kind == "mobility":
        from ._mobility import closure

        # Counterfactual: close the busiest zone for the morning (steps 5–15) on the first held-out day.
        cf = closure(result.calibrations["baseline"], result.calibrations["mfg"], np.asarray(obs.values)[0, 0],
                     station=0, window=(5, 15))
        files.append(fig_dir / "closure.png")
        plot.plot_counterfactual(cf, obs.labels, path=files[-1])
    plt.close("all")
    return files


def _title(meta: dict) -> str:
    if "town" in meta:
        return f"{meta['town']} {meta.get('onset', '')}"
    return " ".join(str(v) for v in list(meta.values())[:2])


def _report(config: StudyConfig, splits, result: StudyResult, seconds: float) -> Path:
    held = [s for s in ("test", "test_id", "test_ood") if s in result.metrics["mfg"]]
    verdict = []
    for s in held:
        imp = result.improvement(s)
        verdict.append(f"- **{s}**: the MFG {'beats' if imp > 0 else 'does not beat'} the baseline "
                       f"(relative L2 {imp:+.1f} %).")
    sizes = ", ".join(f"{k} {v.n_trajectories}" for k, v in splits.items() if v is not None)
    fig_names = [p.name for p in result.files if p.suffix == ".png"]
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    lines = [
        f"# mfgx {config.kind} study",
        "",
        f"Data: `{config.source}`" + (f" (`{config.file}`)" if config.file else "") + f"; trajectories: {sizes}.",
        f"Models: `baseline` (forward ODE, no game) and `mfg`, fitted the same way; seed {config.seed}; "
        f"wall time {seconds:.0f} s ({platform.machine()}, JIT compilation included).",
        "",
        *metrics_table(result),
        "",
        "Model selection used the validation split only; the test splits were not seen during fitting.",
        *verdict,
        "",
        *[f"![{n}](figures/{n})" for n in fig_names],
        "",
        "Settings:",
        "",
        "```json",
        json.dumps(settings, indent=2, default=str),
        "```",
        "",
    ]
    return _atomic.write_text(result.out / "report.md", "\n".join(lines))
