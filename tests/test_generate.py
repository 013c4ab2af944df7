"""`mfgx generate` and what it adds to the generative lab (issues 14, 15): configurations checked
before work with the file, section and key named; the λ_HJB schedule of `SGM` applied step by
step in `fit_sgm`; the Hutchinson PF-ODE NLL agreeing with the exact-divergence NLL within its
Monte Carlo error on a Gaussian; the command end to end (report, metrics, figures, GIF) resuming
exactly, refusing changed settings and restarting on request (slow)."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from typer.testing import CliRunner

import mfgx  # noqa: F401  (float64)
from mfgx import generative as g
from mfgx.cli import app
from mfgx.generative import datasets

RUN = CliRunner()

# ---------------------------------------------------------------- configurations


@pytest.mark.parametrize(
    "raw, where, what",
    [
        ({"run": {"problem": "flow"}}, "[run]", "'problem' must be one of"),
        ({"run": {"problem": "cnf"}, "fitt": {}}, "unknown section", "fitt"),
        ({"run": {"problem": "cnf"}, "fit": {"stepz": 3}}, "[fit]", "unknown key 'stepz'"),
        ({"run": {"problem": "cnf"}, "fit": {"steps": 0}}, "[fit]", "'steps' must be an integer >= 1"),
        ({"run": {"problem": "cnf"}, "fit": {"learning_rate": "fast"}}, "[fit]", "'learning_rate' must be a finite number"),
        ({"run": {"problem": "sgm"}, "fit": {"lr_drop": 2.0}}, "[fit]", "unknown key 'lr_drop'"),
        ({"run": {"problem": "cnf"}, "data": {"name": "moon"}}, "[data]", "got 'moon'"),
        ({"run": {"problem": "cnf"}, "data": {"name": "moons", "dim": 3}}, "[data]", "'dim' must be 2"),
        ({"run": {"problem": "cnf"}, "problem": {"alpha_C": -1.0}}, "[problem]", "alpha_C must be >= 0"),
        ({"run": {"problem": "cnf"}, "problem": {"alpha": 1.0}}, "[problem]", "unknown key(s) ['alpha'] for CNF"),
        ({"run": {"problem": "sgm"}, "problem": {"sde": "ve", "beta_max": 5.0}}, "[problem]", "do not apply to sde = 've'"),
        ({"run": {"problem": "sgm"}, "problem": {"lambda_hjb": 1.0, "hjb_schedule": "cosine"}}, "[problem]", "needs hjb_warmup >= 1"),
        ({"run": {"problem": "sgm"}, "problem": {"hjb_schedule": "step"}}, "[problem]", "hjb_schedule must be one of"),
        ({"run": {"problem": "ot"}, "target": {"dim": 3}}, "[target]", "the data have dimension 2"),
        ({"run": {"problem": "ot"}, "data": {"standardize": True}}, "[data]", "'standardize' applies to cnf and sgm"),
        ({"run": {"problem": "cnf"}, "target": {"name": "gaussian"}}, "[target] applies to", "not to 'cnf'"),
        ({"run": {"problem": "jko"}, "problem": {"n_jko": 0}}, "[problem]", "'n_jko' must be an integer >= 1"),
        ({"run": {"problem": "cnf"}, "evaluate": {"sampler": "euler"}}, "[evaluate]", "'sampler' must be 'ode' or 'sde'"),
    ],
)
def test_config_errors_name_the_section_and_key(raw, where, what):
    with pytest.raises(g.ConfigError) as err:
        g.config_from_dict(raw, origin="lab.toml")
    msg = str(err.value)
    assert msg.startswith("lab.toml") and where in msg and what in msg, msg


def test_config_defaults_quick_mode_and_files(tmp_path):
    c = g.default_config("sgm", "checkerboard", quick=True, output=tmp_path / "o")
    assert c.data["name"] == "checkerboard" and c.data["standardize"] and c.quick
    assert c.fit["steps"] <= 6 and c.data["n_train"] <= 512 and c.evaluate["frames"] <= 4
    full = g.default_config("crowd")
    assert full.data["mean"] == [0.0, 3.0] and full.target["mean"] == [0.0, -3.0] and not full.quick
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nproblem = 'cnf'\n[fit\n")
    with pytest.raises(g.ConfigError, match="not valid TOML"):
        g.load_config(bad)
    with pytest.raises(g.ConfigError, match="does not exist"):
        g.load_config(tmp_path / "missing.toml")
    ok = tmp_path / "ok.toml"
    ok.write_text("[run]\nproblem = 'cnf'\noutput = 'res'\n[fit]\nsteps = 7\n")
    c = g.load_config(ok)
    assert c.output == tmp_path / "res" and c.fit["steps"] == 7


def test_cli_names_config_errors(tmp_path):
    cfg = tmp_path / "lab.toml"
    cfg.write_text("[run]\nproblem = 'cnf'\n[fit]\nsteps = 'many'\n")
    res = RUN.invoke(app, ["generate", "--config", str(cfg), "--no-progress"])
    assert res.exit_code == 2
    out = " ".join(res.output.split())
    assert "lab.toml [fit]" in out and "'steps' must be an integer" in out
    res = RUN.invoke(app, ["generate"])
    assert res.exit_code == 2 and "--config FILE or --problem" in res.output
    res = RUN.invoke(app, ["generate", "--problem", "gan"])
    assert res.exit_code == 2 and "--problem must be one of" in " ".join(res.output.split())
    assert not (tmp_path / "outputs").exists()


# ---------------------------------------------------------------- the λ_HJB schedule


def test_hjb_schedule_weights_and_training(tmp_path):
    sde = g.VP()
    lam, W = 0.5, 4
    const = g.SGM(sde, lambda_hjb=lam)
    lin = g.SGM(sde, lambda_hjb=lam, hjb_schedule="linear", hjb_warmup=W)
    cos = g.SGM(sde, lambda_hjb=lam, hjb_schedule="cosine", hjb_warmup=W)
    s = np.arange(7)
    np.testing.assert_allclose([const.hjb_weight(k) for k in s], lam)
    np.testing.assert_allclose([float(lin.hjb_weight(k)) for k in s], lam * np.minimum(1, s / W), rtol=1e-12)
    np.testing.assert_allclose([float(cos.hjb_weight(k)) for k in s], lam * 0.5 * (1 - np.cos(np.pi * np.minimum(1, s / W))),
                               rtol=1e-12, atol=1e-15)
    assert lin.hjb_weight(None) == lam and "hjb_schedule" not in const.settings()
    data = datasets.gaussian([1.0, -0.5], [[1.0, 0.3], [0.3, 0.5]]).sample(jr.PRNGKey(3), 128)
    kw = dict(key=jr.PRNGKey(1), model="direct", width=8, depth=1, batch_size=32, steps=6, progress=False)
    fit = g.fit_sgm(lin, data, checkpoint_dir=tmp_path, **kw)
    for k, r in enumerate(fit.history):  # step k+1 weighs the residual by w(k): 0 at the first step
        np.testing.assert_allclose(r["loss"], r["dsm"] + lam * min(1, k / W) * r["hjb"], rtol=1e-10)
    assert fit.history[0]["loss"] == pytest.approx(fit.history[0]["dsm"], rel=1e-12) and fit.history[0]["hjb"] > 0
    with pytest.raises(g.GenerativeError, match="hjb_schedule"):  # a checkpoint of another schedule is refused
        g.fit_sgm(cos, data, checkpoint_dir=tmp_path, **kw)


# ---------------------------------------------------------------- Hutchinson PF-ODE likelihood


def test_hutchinson_nll_agrees_with_exact_within_monte_carlo_error():
    sde = g.VP()
    mu = jnp.array([0.5, -1.0, 0.0])
    cov = jnp.array([[1.0, 0.6, 0.0], [0.6, 0.8, -0.3], [0.0, -0.3, 0.4]])  # ∇s not ∝ I: probes matter
    model = g.GaussianScore(sde, mu, cov)
    x = datasets.gaussian(mu, cov).sample(jr.PRNGKey(0), 64)
    exact = g.log_likelihood(model, sde, x, eps=1e-3)
    hutch = g.log_likelihood(model, sde, x, eps=1e-3, divergence="hutchinson", key=jr.PRNGKey(1))
    diff = np.asarray(hutch - exact)
    se = diff.std(ddof=1) / math.sqrt(diff.size)
    assert 1e-3 < se < 0.3  # a real Monte Carlo error (one probe per sample), resolving a bias of ~1 nat
    assert abs(diff.mean()) < 4 * se
    truth = np.asarray(datasets.gaussian(mu, cov).log_prob(x))
    assert abs(float(exact.mean()) - truth.mean()) < 0.02  # and the exact one is the true likelihood


# ---------------------------------------------------------------- end to end


def _generate(out, *extra):
    res = RUN.invoke(app, ["generate", "--problem", "cnf", "--data", "moons", "--quick", "--no-progress", "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_generate_cli_end_to_end_resumes_exactly(tmp_path):
    out = tmp_path / "cnf"
    full = _generate(out, "--steps", "6")
    for name in ("samples.png", "density.png", "trajectories.png", "losses.png", "flow.gif"):
        assert (out / "figures" / name).stat().st_size > 1000, name
    from PIL import Image

    with Image.open(out / "figures" / "flow.gif") as gif:
        assert gif.n_frames >= 3
    report = (out / "report.md").read_text()
    assert "| nll |" in report and "| w2_exact |" in report and "figures/flow.gif" in report
    held = full["held_out"]
    assert all(math.isfinite(held[k]) for k in ("nll", "mmd2", "sliced_w2", "w2_exact", "R", "inverse_error"))
    # start over for 3 steps, then resume to 6: the same numbers as the uninterrupted run
    part = _generate(out, "--steps", "3", "--restart")
    assert part["training"]["steps_run"] == 3
    resumed = _generate(out, "--steps", "6")
    assert resumed["training"]["resumed_from_step"] == 3 and resumed["training"]["steps_this_run"] == 3
    assert resumed["held_out"] == full["held_out"]
    assert "resumed from step 3" in (out / "report.md").read_text()
    # changed settings are refused, naming the change
    cfg = tmp_path / "changed.toml"
    cfg.write_text(f"[run]\nproblem = 'cnf'\nquick = true\noutput = '{out}'\n[fit]\nlearning_rate = 0.01\nsteps = 6\n")
    res = RUN.invoke(app, ["generate", "--config", str(cfg), "--no-progress"])
    assert res.exit_code == 2 and "other settings" in " ".join(res.output.split())


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["sgm", "ot", "crowd", "jko"])
def test_generate_every_problem_quick(problem, tmp_path):
    res = g.run(g.default_config(problem, quick=True, output=tmp_path), progress=False)
    held = res.metrics["held_out"]
    for k in ("mmd2", "sliced_w2", "energy_distance", "w2_exact"):
        assert math.isfinite(held[k]), k
    assert {"nll", "hjb", "bits_per_dim"} <= set(held) if problem == "sgm" else True
    assert {"L", "G", "R", "kinetic_bound"} <= set(held) if problem in ("ot", "crowd") else True
    assert {"mean_error", "cov_error", "kl_to_target"} <= set(held) if problem == "jko" else True
    assert (tmp_path / "figures" / "flow.gif").exists() and (tmp_path / "report.md").exists()
