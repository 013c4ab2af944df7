r"""The COVID first-wave study: four SIR models fitted the same way, judged out of sample.

Data (`mfgx.data.covid3month`): daily new confirmed cases, days 0–83. A country enters when its
cumulative count reaches ``min_cases`` by day ``last_onset`` (its *onset*); its likelihood runs from
the onset. Fit window: days < ``fit_days`` (9 weeks); forecast window: the rest (3 weeks).

For each seed: the countries are split (whole countries) into training and held-out ones. Each
model is fitted on the training countries' fit window (per-country parameters and the shared ones:
the NegBin size k, and c_I for the MFGs). On the held-out countries the shared parameters are frozen
and only the per-country ones are fitted, on the fit window. Scores:

- forecast: mean NegBin negative log-likelihood per day on the forecast window (never fitted), for
  the training countries (out of sample in time) and the held-out ones (in time and across countries);
- fit: AIC = 2 n_par − 2 log L and BIC = n_par log n − 2 log L of the training fit, with n_par the
  per-country parameters of every training country (for the free β(t): one β per week from the
  onset week) plus the shared ones.

Verdicts (`_verdict.verdict`) on paired per-country differences over seeds × countries.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .. import _atomic, _checkpoint, _fingerprint, _training
from ._covid import LABELS, MODELS, CovidModel, fit, initial_params, n_country_params, nb_nll, predict
from ._verdict import verdict

COMPARISONS = (("mfg", "sir"), ("mfg_myopic", "sir"), ("mfg", "mfg_myopic"), ("sir_free_beta", "sir"),
               ("mfg", "sir_free_beta"))


class CovidStudyError(ValueError):
    """A COVID study that cannot run as configured (or a checkpoint from other settings)."""


@dataclasses.dataclass(frozen=True)
class CovidData:
    """Selected countries: counts y[K, D], onset day, masks of the fit and forecast windows, and each
    day's β index for the free-β model (calendar week, clipped to [onset week, last fitted week])."""

    y: np.ndarray
    country: tuple[str, ...]
    onset: np.ndarray
    fit_mask: np.ndarray
    forecast_mask: np.ndarray
    weeks: np.ndarray
    fit_days: int

    @property
    def n_weeks(self) -> int:
        return self.fit_days // 7

    def subset(self, idx) -> "CovidData":
        idx = np.asarray(idx, int)
        return CovidData(self.y[idx], tuple(self.country[i] for i in idx), self.onset[idx], self.fit_mask[idx],
                         self.forecast_mask[idx], self.weeks[idx], self.fit_days)


def covid_data(counts=None, *, min_cases: int = 20, last_onset: int = 55, fit_days: int = 63,
               extra_days: int = 28, countries: int | None = None) -> CovidData:
    """The study's countries (see the module docstring); ``countries`` keeps only that many with the
    most cases in the fit window (a quick mode)."""
    from ..data import covid3month

    counts = covid3month() if counts is None else counts
    D = counts.n_days
    if not (7 <= fit_days < D and fit_days % 7 == 0):
        raise CovidStudyError(f"fit_days must be a multiple of 7 in [7, {D}), got {fit_days}")
    if not (0 <= last_onset < fit_days - 2):
        raise CovidStudyError(f"last_onset must be in [0, fit_days − 2), got {last_onset}")
    cum = np.cumsum(counts.daily, axis=1)
    reached = cum >= min_cases
    onset = np.where(reached.any(1), reached.argmax(1), D)
    keep = np.flatnonzero(onset <= last_onset)
    if countries is not None:
        keep = keep[np.argsort(-cum[keep, fit_days - 1], kind="stable")[:countries]]
        keep.sort()
    if keep.size < 4:
        raise CovidStudyError(f"only {keep.size} countries reach {min_cases} cases by day {last_onset}: too few")
    t = np.arange(D)
    on = onset[keep]
    fit_mask = ((t[None] >= on[:, None]) & (t[None] < fit_days)).astype(float)
    forecast_mask = np.broadcast_to((t >= fit_days).astype(float), fit_mask.shape).copy()
    H = D + extra_days
    weeks = np.clip(np.arange(H)[None] // 7, (on // 7)[:, None], fit_days // 7 - 1)
    return CovidData(counts.daily[keep].astype(float), tuple(counts.country[i] for i in keep), on, fit_mask,
                     forecast_mask, weeks, fit_days)


def split_countries(n: int, *, test: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices of n countries: round(test·n) (at least 2) held out, drawn by seed."""
    n_test = max(2, int(round(test * n)))
    if n_test >= n - 1:
        raise CovidStudyError(f"{n} countries are too few to hold out {n_test}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _n_params(kind: str, data: CovidData) -> int:
    """Per-country parameters that reach the likelihood, summed over countries."""
    if kind == "sir_free_beta":
        return int(np.sum(data.n_weeks - data.onset // 7 + 2))
    return 3 * len(data.country)


def _scores(kind, U, shared, data: CovidData, m: CovidModel):
    paths = predict(kind, jnp.asarray(U), shared, jnp.asarray(data.weeks), m)
    D = data.y.shape[1]
    nll = np.asarray(nb_nll(jnp.asarray(data.y), paths.mean[:, :D], shared["log_k"]))
    fit_ll = -float(np.sum(nll * data.fit_mask))
    fc = np.sum(nll * data.forecast_mask, 1) / np.sum(data.forecast_mask, 1)
    return {
        "forecast_nll": fc.tolist(),
        "fit_loglik": fit_ll,
        "fit_nll_per_day": (np.sum(nll * data.fit_mask, 1) / np.sum(data.fit_mask, 1)).tolist(),
        "n_nonconverged": int(np.sum(~np.asarray(paths.converged))),
        "mean_contact_min": np.min(np.asarray(paths.policy) @ np.asarray(m.alphas), axis=1).tolist(),
    }, paths


def run_unit(kind, data: CovidData, train, held, m: CovidModel, seed: int, steps: int, learning_rate: float):
    """Fit ``kind`` for one seed; the scores and the fitted parameters (JSON-able). Training and
    held-out countries are fitted in one run, the shared parameters informed by the training ones only."""
    is_train = np.zeros(len(data.country), bool)
    is_train[train] = True
    shared0 = {"log_k": 0.0, **({"log_c": float(np.log(5.0))} if kind.startswith("mfg") else {})}
    U0 = initial_params(kind, data.y, data.onset, data.fit_days, data.weeks, m, data.n_weeks, jax.random.PRNGKey(seed))
    start = time.perf_counter()
    U, shared, losses, bad = fit(kind, data.y, data.fit_mask, data.weeks, m, U0, shared0, is_train, steps=steps,
                                 learning_rate=learning_rate)
    wall = time.perf_counter() - start
    scores, _ = _scores(kind, U, shared, data, m)
    part = {name: {k: ([v[i] for i in idx] if isinstance(v, list) else None) for k, v in scores.items()}
            for name, idx in (("train", train), ("held", held))}
    nll_fit = np.asarray(scores["fit_nll_per_day"]) * data.fit_mask.sum(1)
    fit_ll = -float(nll_fit[train].sum())
    tr = data.subset(train)
    n_obs = float(tr.fit_mask.sum())
    k = _n_params(kind, tr) + len(shared)
    return {
        "kind": kind, "seed": seed, "train_countries": list(tr.country),
        "held_countries": [data.country[i] for i in held],
        "train": {**part["train"], "fit_loglik": fit_ll}, "held": part["held"],
        "aic": 2 * k - 2 * fit_ll, "bic": k * np.log(n_obs) - 2 * fit_ll, "n_params": k, "n_obs": n_obs,
        "shared": {n: float(v) for n, v in shared.items()}, "final_loss": float(losses[-1]),
        "n_nonconverged": scores["n_nonconverged"], "n_nonconverged_during_fit": int(bad), "wall_s": wall,
        "U": np.asarray(U).tolist(),
    }


@dataclasses.dataclass
class CovidResult:
    """What `run_covid` produced: per-(seed, model) units, verdicts, and the files written."""

    units: dict
    verdicts: dict
    summary: dict
    out: Path
    files: list = dataclasses.field(default_factory=list)


def run_covid(config, *, progress: bool = True, console=None) -> CovidResult:
    """Run the study of ``config`` (kind "covid"): every (seed, model) unit, resumable (a unit done is
    kept in ``out/checkpoints/covid``; other settings are refused), then verdicts, figures, report."""
    start = time.perf_counter()
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    opts = dict(config.fit)
    seeds = list(range(config.seed, config.seed + int(opts.get("seeds", 5))))
    steps, lr = int(opts.get("steps", 400)), float(opts.get("learning_rate", 0.05))
    resume = bool(opts.get("resume", True))
    m = CovidModel(**config.model)
    loader = dict(config.loader)
    data = covid_data(extra_days=m.extra_days, **loader)
    settings = {"model": _fingerprint.digest(dataclasses.asdict(m)), "data": loader, "steps": steps, "lr": lr,
                "test": config.test, "y": _fingerprint.digest(data.y)}
    ckpt = out / "checkpoints" / "covid"
    state = {"units": {}}
    dummy = jnp.zeros(1)
    if resume:
        loaded = _training.resume(ckpt, dummy, settings, kind="covid", error=CovidStudyError)
        if loaded is not None:
            state = loaded[0]
    for seed in seeds:
        train, held = split_countries(len(data.country), test=config.test, seed=seed)
        for kind in MODELS:
            name = f"seed{seed}/{kind}"
            if name in state["units"]:
                continue
            if console is not None:
                console.print(f"fitting [bold]{kind}[/] (seed {seed}): {len(train)} countries, {len(held)} held out")
            state["units"][name] = run_unit(kind, data, train, held, m, seed, steps, lr)
            _checkpoint.save(ckpt, {"settings": settings, "state": state}, dummy, kind="covid")
    units = {k: v for k, v in state["units"].items() if int(k.split("/")[0][4:]) in seeds}
    verdicts, summary = _judge(units, seeds, data)
    result = CovidResult(units, verdicts, summary, out)
    record = {"settings": {**settings, "seeds": seeds, "model_settings": dataclasses.asdict(m)},
              "countries": list(data.country), "summary": summary,
              "verdicts": {k: v.as_dict() for k, v in verdicts.items()},
              "units": {k: {kk: vv for kk, vv in u.items() if kk != "U"} for k, u in units.items()}}
    result.files.append(_atomic.write_text(out / "metrics.json", json.dumps(record, indent=2)))
    result.files.extend(_figures(result, data, m, seeds[0]))
    result.files.append(_report(config, result, data, m, seeds, time.perf_counter() - start))
    return result


def _table(units, seeds, data, part: str) -> np.ndarray:
    """forecast NLL[model][S, K] over all study countries (NaN where the country is not in ``part``)."""
    idx = {c: i for i, c in enumerate(data.country)}
    out = {}
    for kind in MODELS:
        t = np.full((len(seeds), len(data.country)), np.nan)
        for s, seed in enumerate(seeds):
            u = units[f"seed{seed}/{kind}"]
            for c, v in zip(u[f"{part}_countries"], u[part]["forecast_nll"]):
                t[s, idx[c]] = v
        out[kind] = t
    return out


def _judge(units, seeds, data):
    verdicts, summary = {}, {}
    for part in ("held", "train"):
        t = _table(units, seeds, data, part)
        for model, peer in COMPARISONS:
            verdicts[f"{part}:{model}-vs-{peer}"] = verdict(t[peer] - t[model])
        summary[part] = {k: {"mean": float(np.nanmean(v)), "median": float(np.nanmedian(v))} for k, v in t.items()}
    aic = {k: np.array([units[f"seed{s}/{k}"]["aic"] for s in seeds]) for k in MODELS}
    bic = {k: np.array([units[f"seed{s}/{k}"]["bic"] for s in seeds]) for k in MODELS}
    for model, peer in COMPARISONS:
        verdicts[f"aic:{model}-vs-{peer}"] = verdict(aic[peer] - aic[model])
    summary["aic"] = {k: float(v.mean()) for k, v in aic.items()}
    summary["bic"] = {k: float(v.mean()) for k, v in bic.items()}
    summary["c_I"] = {k: [float(np.exp(units[f"seed{s}/{k}"]["shared"]["log_c"])) for s in seeds]
                      for k in ("mfg", "mfg_myopic")}
    summary["k"] = {k: [float(np.exp(units[f"seed{s}/{k}"]["shared"]["log_k"])) for s in seeds] for k in MODELS}
    summary["nonconverged"] = int(sum(u["n_nonconverged_during_fit"] + u["n_nonconverged"] for u in units.values()))
    return verdicts, summary


def _figures(result: CovidResult, data: CovidData, m: CovidModel, seed: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir = result.out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    units = {k: result.units[f"seed{seed}/{k}"] for k in MODELS}
    held = [data.country.index(c) for c in units["sir"]["held_countries"]]
    ho = data.subset(held)
    paths = {k: jax.tree_util.tree_map(
        lambda a: np.asarray(a)[held],
        predict(k, jnp.asarray(u["U"]), {n: jnp.asarray(v) for n, v in u["shared"].items()}, jnp.asarray(data.weeks), m))
        for k, u in units.items()}
    D = data.y.shape[1]
    n = len(held)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for j, ax in enumerate(axes.ravel()):
        if j >= n:
            ax.axis("off")
            continue
        ax.plot(np.arange(D), ho.y[j], "k.", ms=3, label="observed")
        for k in MODELS:
            ax.plot(np.arange(D), np.asarray(paths[k].mean)[j, :D], lw=1.2, label=LABELS[k])
        ax.axvspan(data.fit_days - 0.5, D - 0.5, color="0.9", zorder=0)
        ax.set_yscale("symlog", linthresh=10)
        ax.set_title(f"{ho.country[j]} (held out)", fontsize=9)
        ax.set_xlabel("day")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"Held-out countries, seed {seed}: daily cases; grey = 3-week forecast window (not fitted)", fontsize=10)
    fig.tight_layout()
    files = [fig_dir / "forecasts.png"]
    fig.savefig(files[0], dpi=110)
    plt.close(fig)

    # The strategic part: equilibrium mean contact next to the temperature-only response.
    a0 = m.temperature_only()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    alphas = np.asarray(m.alphas)
    order = np.argsort(-ho.y[:, : data.fit_days].sum(1))[:4]
    for n, j in enumerate(order):
        for k, ls in (("mfg", "-"), ("mfg_myopic", "--")):
            abar = np.asarray(paths[k].policy)[j] @ alphas
            axes[0].plot(abar[:D], ls, color=f"C{n}", lw=1.3,
                         label=f"{ho.country[j]} {'anticipatory' if k == 'mfg' else 'myopic'}")
        axes[1].plot(np.asarray(paths["mfg"].prevalence)[j, :D], color=f"C{n}", label=ho.country[j])
    axes[0].axhline(a0, color="k", lw=2, label=f"temperature only (c_I = 0): {a0:.3f}")
    axes[0].axvline(data.fit_days - 0.5, color="0.6", lw=0.8)
    axes[0].set_xlabel("day")
    axes[0].set_ylabel("mean contact factor of susceptibles")
    axes[0].set_title("equilibrium contact vs the temperature-only response", fontsize=9)
    axes[0].legend(fontsize=6)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("day")
    axes[1].set_ylabel("prevalence I (fraction of effective population)")
    axes[1].set_title("the prevalence the agents respond to (anticipatory MFG)", fontsize=9)
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    files.append(fig_dir / "contact_policy.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)
    return files


def _fmt(v) -> str:
    return f"{v.label} ({v.mean:+.3g}; 95 % [{v.low:+.3g}, {v.high:+.3g}])"


def _report(config, result: CovidResult, data: CovidData, m: CovidModel, seeds, seconds: float) -> Path:
    V, S = result.verdicts, result.summary
    head = V["held:mfg-vs-sir"]
    lines = [
        "# COVID-19 first wave: does strategic behaviour explain the bent curves?",
        "",
        "## Verdict",
        "",
        f"- **Anticipatory SIR MFG vs SIR without behaviour, 3-week forecast on held-out countries: "
        f"{_fmt(head)}** (difference in NegBin negative log-likelihood per day, positive = MFG better; "
        f"interval over {head.n_seeds} seeds × {head.n_regions} held-out countries).",
    ]
    for key in ("held:mfg_myopic-vs-sir", "held:mfg-vs-mfg_myopic", "held:sir_free_beta-vs-sir", "held:mfg-vs-sir_free_beta"):
        model, peer = key.split(":")[1].split("-vs-")
        lines.append(f"- {LABELS[model]} vs {LABELS[peer]}, held-out forecast: {_fmt(V[key])}.")
    for key in ("train:mfg-vs-sir", "train:mfg-vs-mfg_myopic"):
        model, peer = key.split(":")[1].split("-vs-")
        lines.append(f"- Same, training countries' forecast window (out of sample in time only), {model} vs {peer}: {_fmt(V[key])}.")
    for key in ("aic:mfg-vs-sir", "aic:mfg-vs-mfg_myopic", "aic:sir_free_beta-vs-sir"):
        model, peer = key.split(":")[1].split("-vs-")
        lines.append(f"- AIC on the fit window (training countries), {model} vs {peer}: {_fmt(V[key])} (positive = lower AIC for {model}).")
    lines += [
        "",
        "\"better\" only when the 95 % interval (over seeds and over held-out countries, the wider) excludes zero; "
        "otherwise \"no significant difference\".",
        "",
        "## Scores (mean over seeds and countries)",
        "",
        "| model | forecast NLL/day, held-out countries | forecast NLL/day, training countries | AIC (fit) | BIC (fit) | NegBin size k |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in MODELS:
        lines.append(f"| {LABELS[k]} | {S['held'][k]['mean']:.2f} (median {S['held'][k]['median']:.2f}) | "
                     f"{S['train'][k]['mean']:.2f} (median {S['train'][k]['median']:.2f}) | {S['aic'][k]:.0f} | {S['bic'][k]:.0f} | "
                     f"{np.mean(S['k'][k]):.2f} |")
    a0 = m.temperature_only()
    lines += [
        "",
        f"Fitted cost of infection c_I per seed: anticipatory {', '.join(f'{c:.3g}' for c in S['c_I']['mfg'])}; "
        f"myopic {', '.join(f'{c:.3g}' for c in S['c_I']['mfg_myopic'])}. Temperature-only mean contact (c_I = 0): {a0:.3f}. "
        f"Equilibrium solves that missed the tolerance (all fits and predictions): {S['nonconverged']}.",
        "",
        "## What the data are and what this can and cannot show",
        "",
        f"- `Covid3Month` (WHO via the Monash/UEA archive, vendored from aeon 1.6.0, BSD-3): **daily new** confirmed "
        f"cases, 201 countries × 84 days to about 1 April 2020, no country names, no dates, no populations. "
        f"{len(data.country)} countries reach {config.loader.get('min_cases', 20)} cases by day "
        f"{config.loader.get('last_onset', 55)} and enter; likelihood from each country's onset.",
        "- Without populations every model fits an *effective population* P_c per country (population × "
        "ascertainment), so prevalence is a fraction of P_c and the depletion of susceptibles can bend a curve as well "
        "as behaviour can. β is constant per country in (a), (c), (d).",
        "- Confirmed cases mix transmission with testing capacity and policy (lockdowns), which no model here "
        "separates from voluntary behaviour: a better forecast by the MFG says that a prevalence-dependent contact "
        "reduction describes the bending, not that it was voluntary or strategic.",
        f"- Held-out countries are few ({len(result.units[f'seed{seeds[0]}/sir']['held_countries'])} per seed), "
        "so intervals are wide; the forecast NLL is dominated by countries whose growth slowed sharply.",
        "",
        "![forecasts](figures/forecasts.png)",
        "",
        "![contact policy](figures/contact_policy.png)",
        "",
        f"Settings: seeds {seeds}, {config.fit.get('steps', 400)} Adam steps (learning rate {config.fit.get('learning_rate', 0.05)}, "
        f"cosine decay) per fit, held-out fraction {config.test}; model {dataclasses.asdict(m)}; data {dict(config.loader)}. "
        f"Fit time of all units {sum(u['wall_s'] for u in result.units.values()):.0f} s, this run's wall time {seconds:.0f} s "
        "(shared, heavily loaded 2-core machine; compilation included; units resumed from the checkpoint keep their first fit time).",
        "",
    ]
    return _atomic.write_text(result.out / "report.md", "\n".join(lines))


def covid_options(*, seeds: int = 5, steps: int = 400, learning_rate: float = 0.05, resume: bool = True):
    """The [fit] keys of a COVID study (validated by `_config`)."""


def model_options(**kwargs):
    """The [model] keys of a COVID study: the fields of `CovidModel`."""


model_options.__signature__ = inspect.Signature(
    [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default) for f in dataclasses.fields(CovidModel)])


def data_options(*, min_cases: int = 20, last_onset: int = 55, fit_days: int = 63, countries: int | None = None):
    """The [data] loader keys of a COVID study."""
