r"""`run`: a `mfgx generate` configuration end to end — data, training (progress, checkpoints,
exact resume), held-out metrics, figures, ``metrics.json`` and ``report.md``.

Keys: the seed's key is split into (train data, validation data, test data, fit, evaluation);
the evaluation key is split into one key per metric, so a resumed run reports exactly the numbers
of an uninterrupted one. Held-out metrics (`metrics`, science note generative_lab.md §7), on the
test split (``n_test``) or samples of the model (``n_samples``):

- every problem: MMD² (unbiased, RBF mixture; and OT-Flow's biased single kernel), sliced W₂,
  energy distance and exact W₂ (POT, ``n_exact`` rows) between the model's samples and a
  reference (cnf, sgm: test data; ot, crowd: the target; jko: the exact JKO chain when the data are
  Gaussian, else the target);
- cnf: NLL (exact trace) and bits/dim, kinetic cost L, HJB residual R = ∫|−∂ₜΦ + |∇Φ|²/(2α_L)| dt,
  inverse error, path straightness E[L] / E[½|x(T) − x(0)|²/T] (1 for straight paths), the entropy
  floor's gap KL(data ‖ model) when the data density is known;
- ot, crowd: L, G (= KL(ρ_T ‖ ρ₁) with the source density), R, RT, F and straightness, and the
  kinetic bound W₂²(ρ₀, ρ₁)/(2T) (closed form for two Gaussians, else POT);
- jko: per JKO step L and the energy term, KL(ρ_K ‖ π) of the training particles (known initial
  density), mean and covariance errors against the closed-form chain (Gaussian data);
- sgm: PF-ODE NLL (exact divergence for d ≤ 10, Hutchinson above) and bits/dim, DSM loss and the
  HJB residual E|R_θ|² (exact divergence) at forward samples of the test data, the entropy gap.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .. import _atomic
from . import datasets, metrics
from ._config import GenerateConfig, build_problem, density

_EXACT_DIVERGENCE_MAX_DIM = 10


@dataclasses.dataclass(frozen=True)
class GenerateResult:
    """What `run` returns: the ``config``, the output folder ``out``, the trained ``model`` (a
    `Flow`, a score model, or a `WassersteinGradientFlow`), ``metrics`` (as in metrics.json),
    the training ``history`` and the ``files`` written."""

    config: GenerateConfig
    out: Path
    model: Any
    metrics: dict
    history: list
    files: list


# ---------------------------------------------------------------- data


def _draw(spec, key, n):
    d = density(spec, "[data]")
    if d is None:
        return np.asarray(datasets.toy(spec["name"], key, n), np.float64)
    return np.asarray(d.sample(key, n), np.float64)


def load_data(config: GenerateConfig, key) -> dict:
    """{"train", "val" (or None), "test"} [n, d] arrays (standardised by the training mean and
    std with ``standardize``), ``"log_prob"`` (the data's log-density in those coordinates, or
    None for a toy) and ``"shift"``, ``"scale"`` of the standardisation."""
    spec = config.data
    kt, kv, ks = jr.split(key, 3)
    train = _draw(spec, kt, spec["n_train"])
    val = _draw(spec, kv, spec["n_val"]) if spec["n_val"] > 0 else None
    test = _draw(spec, ks, spec["n_test"])
    dens = density(spec, "[data]")
    shift, scale = np.zeros(train.shape[1]), np.ones(train.shape[1])
    if spec["standardize"]:
        shift, scale = train.mean(0), train.std(0)
        train, test = (train - shift) / scale, (test - shift) / scale
        val = None if val is None else (val - shift) / scale
    log_prob = None
    if dens is not None:
        logdet = float(np.sum(np.log(scale)))

        def log_prob(z):
            return np.asarray(dens.log_prob(jnp.asarray(z) * scale + shift)) + logdet

    return {"train": train, "val": val, "test": test, "log_prob": log_prob, "shift": shift, "scale": scale}


# ---------------------------------------------------------------- training


def _train(config, problem, n_jko, data, key, progress, restart):
    from ._fit import fit
    from ._jko import gradient_flow
    from ._sgm import fit_sgm

    ckpt = Path(config.output) / "checkpoints"
    ran = []
    kw = dict(key=key, checkpoint_dir=ckpt, resume=not restart, progress=progress, callback=lambda r: ran.append(r["step"]) and None)
    if config.problem == "sgm":
        res = fit_sgm(problem, data["train"], val=data["val"], **kw, **config.fit)
        return res, res.history, len(ran)
    if config.problem == "jko":
        logp0 = None if data["log_prob"] is None else data["log_prob"](data["train"])
        gf = gradient_flow(problem, data["train"], n_jko=n_jko, logp0=logp0, eval_steps=config.evaluate["eval_steps"],
                           **kw, **config.fit)
        history = [dict(r, jko_step=k) for k, f in enumerate(gf.fits) for r in f.history]
        for i, r in enumerate(history):
            r["step"] = i + 1
        return gf, history, len(ran)
    res = fit(problem, data["train"], val=data["val"], eval_steps=config.evaluate["eval_steps"], **kw, **config.fit)
    return res, res.history, len(ran)


# ---------------------------------------------------------------- metrics


def sample_metrics(samples, reference, key, n_exact: int) -> dict:
    """MMD² (unbiased mixture; OT-Flow's biased), sliced W₂, energy distance and exact W₂ (POT, the
    first ``n_exact`` rows of each) between ``samples`` and ``reference``."""
    x, y = jnp.asarray(samples), jnp.asarray(reference)
    return {
        "mmd2": float(metrics.mmd2(x, y)),
        "mmd2_otflow": float(metrics.mmd2_otflow(x, y)),
        "sliced_w2": float(metrics.sliced_wasserstein(x, y, key=key)),
        "energy_distance": float(metrics.energy_distance(x, y)),
        "w2_exact": metrics.wasserstein(x[:n_exact], y[:n_exact], p=2.0),
        "n_exact": int(min(n_exact, x.shape[0], y.shape[0])),
    }


def _straightness(flow, x, n_steps):
    from ._characteristics import characteristics

    p = flow.problem
    c = characteristics(flow.potential, x, alpha=float(p.alpha_L), t0=0.0, t1=float(p.T), n_steps=n_steps)
    disp = 0.5 * jnp.sum((c.x - x) ** 2, -1) / float(p.T)
    return float(jnp.mean(c.kinetic) / jnp.mean(disp))


def _flow_paths(flow, x, n_steps, t0, t1):
    from ._characteristics import characteristics

    p = flow.problem
    c = characteristics(flow.potential, x, alpha=float(p.alpha_L), t0=t0, t1=t1, n_steps=n_steps, path=True)
    return np.asarray(c.ts), np.moveaxis(np.asarray(c.x), 1, 0)


def _evaluate_flow(config, fitted, data, keys):
    from ._fit import evaluate
    from ._problems import CNF, inverse_error, log_density, sample, transport

    flow, ev, test = fitted.model, config.evaluate, data["test"]
    p = flow.problem
    n = ev["eval_steps"] or p.n_steps
    out = {k: v for k, v in evaluate(flow, test, n_steps=n).items()}
    out["eval_steps"] = int(n)
    out["straightness"] = _straightness(flow, test[: ev["n_exact"]], n)
    d = test.shape[1]
    if isinstance(p, CNF):
        out["bits_per_dim"] = out["nll"] / (d * math.log(2.0))
        out["inverse_error"] = inverse_error(flow, test[: ev["n_exact"]], n_steps=n)
        samples = np.asarray(sample(flow, keys[0], ev["n_samples"], n_steps=n))
        reference = test
        z = jr.normal(keys[1], (ev["n_paths"], d), jnp.float64)
        ts, paths = _flow_paths(flow, z, n, float(p.T), 0.0)
        if data["log_prob"] is not None:
            out["kl_gap"], out["kl_gap_se"] = metrics.kl_gap(data["log_prob"](test), log_density(flow, test, n_steps=n))
        logp = (lambda pts: np.asarray(log_density(flow, pts, n_steps=n))) if d == 2 else None  # noqa: E731
    else:
        samples = np.asarray(transport(flow, test[: ev["n_samples"]], n_steps=n))
        reference = np.asarray(p.target.sample(keys[0], ev["n_samples"]))
        ts, paths = _flow_paths(flow, test[: ev["n_paths"]], n, 0.0, float(p.T))
        out["kinetic_bound"] = _kinetic_bound(config, data, reference, ev["n_exact"], float(p.T))
        out["kinetic_over_bound"] = out["L"] / out["kinetic_bound"]
        logp = None
    return out, samples, reference, ts, paths, logp


def _kinetic_bound(config, data, reference, n_exact, T):
    """W₂²(ρ₀, ρ₁)/(2T): Gaussian closed form when both are one Gaussian, else POT on samples."""
    src, tgt = density(config.data, "[data]"), density(config.target, "[target]")
    if src is not None and src.means.shape[0] == 1 and tgt.means.shape[0] == 1:
        w2 = metrics.gaussian_w2(src.means[0], src.covs[0], tgt.means[0], tgt.covs[0])
    else:
        w2 = metrics.wasserstein(data["test"][:n_exact], reference[:n_exact]) ** 2
    return w2 / (2.0 * T)


def _evaluate_jko(config, gf, data, keys):
    from ._characteristics import characteristics
    from ._fit import evaluate
    from ._jko import gaussian_jko_step

    ev, test = config.evaluate, data["test"]
    step = gf.flows[0].problem
    n = ev["eval_steps"] or step.n_steps
    x = jnp.asarray(test[: ev["n_samples"]])
    frames, times = [np.asarray(x)], [0.0]
    out: dict[str, Any] = {"n_jko": len(gf.flows), "tau": float(step.tau), "eval_steps": int(n), "L_per_step": [], "E_per_step": []}
    for k, flow in enumerate(gf.flows):
        e = evaluate(flow, x, n_steps=n)
        out["L_per_step"].append(e["L"])
        out["E_per_step"].append(e["E"])
        c = characteristics(flow.potential, x, alpha=1.0, t0=0.0, t1=float(step.tau), n_steps=n, path=True)
        frames += list(np.moveaxis(np.asarray(c.x), 1, 0)[1:])
        times += list(k * float(step.tau) + np.asarray(c.ts)[1:])
        x = c.x[:, -1]
    samples = np.asarray(x)
    target = step.energies[0].target
    if gf.log_density is not None:
        z = gf.particles[-1]
        out["kl_to_target"] = float(np.mean(gf.log_density[-1] - np.asarray(target.log_prob(jnp.asarray(z)))))
    src = density(config.data, "[data]")
    tgt_std = target.means.shape[0] == 1 and np.allclose(target.means[0], 0) and np.allclose(target.covs[0], np.eye(target.dim))
    if src is not None and src.means.shape[0] == 1 and tgt_std:
        m, S = np.asarray(src.means[0]), np.asarray(src.covs[0])
        for _ in gf.flows:
            m, S = gaussian_jko_step(m, S, float(step.tau))
        out["mean_error"] = float(np.linalg.norm(samples.mean(0) - m))
        out["cov_error"] = float(np.linalg.norm(np.cov(samples.T) - S) / np.linalg.norm(S))
        reference = np.asarray(datasets.gaussian(m, S).sample(keys[0], ev["n_samples"]))
        out["reference"] = "exact JKO chain (Gaussian closed form)"
    else:
        reference = np.asarray(target.sample(keys[0], ev["n_samples"]))
        out["reference"] = "target density"
    pick = ev["n_paths"]
    return out, samples, reference, np.asarray(times), np.stack(frames)[:, :pick], None


def _evaluate_sgm(config, fitted, problem, data, keys):
    from ._score import SGM
    from ._sgm import evaluate_sgm, log_likelihood, reverse_trajectories, sample_ode, sample_sde

    model, sde, ev, test = fitted.model, problem.sde, config.evaluate, data["test"]
    d = test.shape[1]
    exact = d <= _EXACT_DIVERGENCE_MAX_DIM
    judge = SGM(sde, weighting=problem.weighting, hjb_weighting=problem.hjb_weighting, eps=problem.eps)
    e = evaluate_sgm(model, judge, test, key=keys[3])
    out: dict[str, Any] = {"dsm": e["dsm"], "hjb": e["hjb"]}
    x = test[: ev["n_nll"]]
    ll = np.asarray(log_likelihood(model, sde, x, divergence="exact" if exact else "hutchinson", key=keys[4]))
    out["nll"] = float(-ll.mean())
    out["nll_se"] = float(ll.std(ddof=1) / math.sqrt(ll.size))
    out["nll_divergence"] = "exact" if exact else "hutchinson"
    out["n_nll"] = int(ll.size)
    out["bits_per_dim"] = out["nll"] / (d * math.log(2.0))
    if data["log_prob"] is not None:
        out["kl_gap"], out["kl_gap_se"] = metrics.kl_gap(data["log_prob"](x), ll)
    if ev["sampler"] == "ode":
        samples = np.asarray(sample_ode(model, sde, keys[0], ev["n_samples"]))
    else:
        samples = np.asarray(sample_sde(model, sde, keys[0], ev["n_samples"], n_steps=ev["sde_steps"]))
    out["sampler"] = ev["sampler"]
    ts, paths = reverse_trajectories(model, sde, keys[1], ev["n_paths"], n_frames=ev["frames"], n_steps=ev["sde_steps"])
    logp = (lambda pts: np.asarray(log_likelihood(model, sde, pts))) if d == 2 else None  # noqa: E731
    return out, samples, test, np.asarray(ts), np.asarray(paths), logp


# ---------------------------------------------------------------- figures


def _figures(config, data, samples, reference, ts, paths, logp, history, fig_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    from .. import plot

    ev = config.evaluate
    name = f"{config.problem} on {config.data['name']}"
    files = []
    ref_label = "data (test)" if config.problem in ("cnf", "sgm") else "reference"
    plot.plot_samples(reference, samples, labels=(ref_label, "model"), title=name, path=fig_dir / "samples.png")
    files.append(fig_dir / "samples.png")
    lims = plot.sample_limits(reference, samples)
    g = ev["grid"]
    panels = {}
    xs, ys, H = plot.histogram_density(reference, lims, g)
    with np.errstate(divide="ignore"):
        panels[f"{ref_label}: histogram"] = (xs, ys, np.where(H > 0, np.log(np.maximum(H, 1e-300)), np.nan))
        if logp is not None:
            gx, gy, pts = plot.density_grid(lims, g)
            panels["model: log-density"] = (gx, gy, logp(pts).reshape(g, g))
        else:
            xs, ys, H = plot.histogram_density(samples, lims, g)
            panels["model samples: histogram"] = (xs, ys, np.where(H > 0, np.log(np.maximum(H, 1e-300)), np.nan))
    plot.plot_density(panels, log=True, title=name + (" (first two coordinates)" if samples.shape[1] > 2 else ""),
                      path=fig_dir / "density.png")
    files.append(fig_dir / "density.png")
    what = "reverse diffusion (SDE)" if config.problem == "sgm" else "characteristics"
    plot.plot_trajectories(ts, paths, background=reference[: ev["n_samples"]], title=f"{name}: {what}",
                           path=fig_dir / "trajectories.png")
    files.append(fig_dir / "trajectories.png")
    k = np.unique(np.linspace(0, len(ts) - 1, min(ev["frames"], len(ts))).round().astype(int))
    plot.animate_flow(np.asarray(ts)[k], np.asarray(paths)[k], path=fig_dir / "flow.gif", title=config.problem)
    files.append(fig_dir / "flow.gif")
    plot.plot_training(history, title=name, path=fig_dir / "losses.png")
    files.append(fig_dir / "losses.png")
    plt.close("all")
    return files


# ---------------------------------------------------------------- the run


def run(config: GenerateConfig, *, progress: bool = True, restart: bool = False, console=None) -> GenerateResult:
    """Train ``config``'s problem on its data and write ``report.md``, ``metrics.json`` and
    ``figures/`` (samples, density, trajectories, flow.gif, losses) into ``config.output``.
    Checkpoints go to ``output/checkpoints``: a rerun resumes exactly (more ``steps`` train further)
    and refuses a checkpoint written with other settings unless ``restart``. ``console`` (a Rich
    console) announces the phases after training."""
    from ._report import write_report

    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    k_data, k_fit, k_eval = jr.split(jr.PRNGKey(config.seed), 3)
    data = load_data(config, k_data)
    problem, n_jko = build_problem(config, data["train"].shape[1])
    t0 = time.perf_counter()
    fitted, history, ran = _train(config, problem, n_jko, data, k_fit, progress, restart)
    train_s = time.perf_counter() - t0
    say = console.print if console is not None else (lambda *a, **k: None)
    say("evaluating on held-out data (compiles the evaluation functions) …")
    t1 = time.perf_counter()
    keys = jr.split(k_eval, 6)
    if config.problem == "sgm":
        held, samples, reference, ts, paths, logp = _evaluate_sgm(config, fitted, problem, data, keys)
    elif config.problem == "jko":
        held, samples, reference, ts, paths, logp = _evaluate_jko(config, fitted, data, keys)
    else:
        held, samples, reference, ts, paths, logp = _evaluate_flow(config, fitted, data, keys)
    held.update(sample_metrics(samples, reference, keys[2], config.evaluate["n_exact"]))
    eval_s = time.perf_counter() - t1
    say("writing figures and the report …")
    files = _figures(config, data, samples, np.asarray(reference), ts, paths, logp, history, out / "figures")
    secs = [r["seconds"] for r in history]
    steps_total = len(history)
    summary = {
        "held_out": held,
        "training": {
            "steps_run": steps_total, "steps_this_run": ran, "resumed_from_step": steps_total - ran,
            "final_loss": history[-1]["loss"] if history else None,
            **({} if config.problem == "jko" else {"best_step": fitted.best_step, "selected_on": fitted.selected_on,
                                                   "stopped_early": fitted.stopped_early}),
        },
        "timing": {
            "train_wall_s_this_run": train_s, "evaluation_s": eval_s,
            "first_step_s": secs[0] if secs else None,
            "step_s_median": float(np.median(secs[1:])) if len(secs) > 1 else None,
            "machine": "shared CPU; timings are noisy",
        },
        "data": {"n_train": int(data["train"].shape[0]), "n_val": 0 if data["val"] is None else int(data["val"].shape[0]),
                 "n_test": int(data["test"].shape[0]), "dim": int(data["train"].shape[1]),
                 "standardized": bool(config.data["standardize"])},
    }
    files.append(_atomic.write_text(out / "metrics.json", json.dumps(_jsonable(summary), indent=1)))
    files.append(write_report(config, summary, files, out))
    model = fitted if config.problem == "jko" else fitted.model
    return GenerateResult(config, out, model, summary, history, files)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic, jax.Array)):
        return np.asarray(obj).item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    return obj
