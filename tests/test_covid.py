"""The COVID first-wave study: the vendored loader, country splits, the shared verdict rule, and
the SIR MFG's contact response on a synthetic outbreak."""

from __future__ import annotations

import numpy as np
import pytest

import jax.numpy as jnp

from mfgx.data import DataError, covid3month, read_ts
from mfgx.data._covid import FILES, FOLDER
from mfgx.studies import (
    ConfigError, CovidModel, config_from_dict, covid_data, split_countries, verdict,
)
from mfgx.studies._covid import simulate


def _independent_read():
    """The files parsed a second, independent way: every data line split at ':' and ','."""
    rows = []
    for name in FILES:
        lines = (FOLDER / name).read_text().splitlines()
        start = [i for i, line in enumerate(lines) if line.strip().lower() == "@data"][0]
        rows += [line for line in lines[start + 1 :] if line.strip()]
    values = np.array([[float(v) for v in r.split(":")[0].split(",")] for r in rows])
    target = np.array([float(r.split(":")[1]) for r in rows])
    return values, target, len(rows)


def test_loader_reads_the_files_exactly():
    c = covid3month()
    values, target, n_lines = _independent_read()
    assert c.daily.shape == (201, 84) == (n_lines, 84)
    assert np.array_equal(c.daily, values) and np.array_equal(c.death_rate, target)
    assert c.daily.sum() == values.sum() and np.isfinite(c.daily).all() and (c.daily >= 0).all()
    assert np.array_equal(c.daily, np.round(c.daily))  # daily new counts, not cumulative or normalised
    assert (np.diff(c.daily.cumsum(1), axis=1) >= 0).all()
    assert c.aeon_split.count("train") == 140 and c.aeon_split.count("test") == 61
    assert c.weekly().shape == (201, 12) and c.weekly().sum() == c.daily.sum()
    assert (FOLDER / "LICENSE").read_text().startswith("BSD 3-Clause License")


def test_read_ts_names_the_bad_line(tmp_path):
    f = tmp_path / "bad.ts"
    f.write_text("# c\n@problemname x\n@data\n1,2,3:0.5\n1,2:0.1\n")
    with pytest.raises(DataError, match="line 5"):
        read_ts(f)
    f.write_text("@data\n1,x,3:0.5\n")
    with pytest.raises(DataError, match="line 2"):
        read_ts(f)


def test_splits_keep_countries_whole():
    data = covid_data()
    n = len(data.country)
    seen = set()
    for seed in range(5):
        train, held = split_countries(n, test=0.25, seed=seed)
        assert set(train).isdisjoint(held) and set(train) | set(held) == set(range(n))
        tr, ho = data.subset(train), data.subset(held)
        assert set(tr.country).isdisjoint(ho.country)
        # a country's whole series (fit and forecast window) goes to one side
        for part, idx in ((tr, train), (ho, held)):
            assert np.array_equal(part.y, data.y[idx]) and part.y.shape[1] == 84
        seen |= set(ho.country)
    assert len(seen) > len(held)  # seeds draw different held-out countries


def test_study_windows():
    data = covid_data(min_cases=20, last_onset=55, fit_days=63)
    cum = data.y.cumsum(1)
    assert (cum[np.arange(len(data.onset)), data.onset] >= 20).all()
    assert (data.onset <= 55).all()
    assert (data.fit_mask[:, 63:] == 0).all() and (data.forecast_mask[:, :63] == 0).all()
    assert (data.forecast_mask[:, 63:] == 1).all()


def test_verdict_identical_models_and_seed_tie():
    rng = np.random.default_rng(0)
    score = rng.normal(10, 3, size=(5, 8))
    assert verdict(score - score).label == "no significant difference"  # two identical models
    tie = np.array([[1.0, 1.2, 0.8], [-1.0, -1.2, -0.8]] * 3)  # half the seeds for, half against
    assert verdict(tie).label == "no significant difference"
    one_seed = verdict(np.array([[2.0, 2.5, 1.5, 2.2]]))
    assert one_seed.label == "no significant difference" and one_seed.n_seeds == 1
    clear = verdict(1.0 + 0.1 * rng.normal(size=(5, 8)))
    assert clear.label == "better" and clear.low > 0
    assert verdict(-1.0 + 0.1 * rng.normal(size=(5, 8))).label == "worse"


def test_config_rejects_bad_keys():
    base = {"study": {"kind": "covid"}, "data": {"source": "covid3month"}}
    assert config_from_dict(base).kind == "covid"
    with pytest.raises(ConfigError, match="steps"):
        config_from_dict({**base, "fit": {"steps": 0}})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({**base, "model": {"width": 3}})
    with pytest.raises(ConfigError, match="split_by"):
        config_from_dict({**base, "data": {"source": "covid3month", "split_by": "town"}})


def _outbreak(kind, beta, c_i, m, H=112):
    u = jnp.array([np.log(beta), np.log(10.0), np.log(1e5 / 10.0 - 1.0)])  # N0 = 10 of P = 1e5
    shared = {"log_k": jnp.array(0.0), "log_c": jnp.array(np.log(c_i))}
    path = simulate(kind, u, shared, jnp.zeros(H, int), m)
    return path, np.asarray(path.policy) @ np.asarray(m.alphas), np.asarray(path.prevalence)


@pytest.mark.parametrize("kind", ["mfg", "mfg_myopic"])
def test_contact_policy_responds_to_prevalence(kind):
    m = CovidModel()
    a0 = m.temperature_only()
    path, abar, prev = _outbreak(kind, 0.5, 20.0, m)
    assert bool(path.converged)
    assert np.all(abar <= a0 + 1e-9)  # an infection cost only ever lowers contact
    assert abar.min() < a0 - 0.1  # … and visibly, during the outbreak
    # contact falls as prevalence rises: lowest near the prevalence peak, back up when it is gone
    peak = int(np.argmax(prev))
    assert abs(int(np.argmin(abar)) - peak) <= 10
    assert abar[0] > abar[peak] and abar[-1] > abar[peak]
    low = prev < 0.1 * prev.max()
    assert np.corrcoef(prev, abar)[0, 1] < -0.5 and abar[low].mean() > abar[~low].mean()
    # a higher cost of infection gives less contact at the same prevalence; none gives the temperature-only response
    _, abar_more, _ = _outbreak(kind, 0.5, 60.0, m)
    assert abar_more.min() < abar.min()
    _, abar_none, _ = _outbreak(kind, 0.5, 1e-9, m)
    np.testing.assert_allclose(abar_none, a0, atol=1e-6)


def test_anticipation_is_the_fixed_point():
    """The anticipatory MFG's values are those of the flow its responses produce (a Nash fixed point),
    and they differ from the myopic agents' (V_S ≡ 0)."""
    from mfgx.studies._covid import _continuation, unpack

    m = CovidModel()
    path, abar, prev = _outbreak("mfg", 0.5, 20.0, m)
    u = jnp.array([np.log(0.5), np.log(10.0), np.log(1e5 / 10.0 - 1.0)])
    beta, _, _, _ = unpack("mfg", u, jnp.zeros(112, int))
    v = _continuation(beta, path.prevalence, 20.0, m)
    np.testing.assert_allclose(np.asarray(v), np.asarray(path.fixed), rtol=1e-4, atol=1e-8)
    _, abar_myopic, _ = _outbreak("mfg_myopic", 0.5, 20.0, m)
    assert np.max(np.abs(abar - abar_myopic)) > 1e-3


@pytest.mark.slow
def test_cli_quick_study_runs_resumes_and_refuses_changed_settings(tmp_path):
    """`mfgx calibrate --config` on the committed quick configuration (fewer steps), a resume that
    reuses every unit, and a refusal when the settings change."""
    import json

    from typer.testing import CliRunner

    from mfgx.cli._app import app
    from mfgx.studies import DEMO_CONFIG

    runner = CliRunner()
    args = ["calibrate", "--config", str(DEMO_CONFIG), "--out", str(tmp_path), "--epochs", "20", "--no-progress"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = (tmp_path / "report.md").read_text()
    assert report.index("## Verdict") < report.index("## Scores")
    assert "no significant difference" in report or "better" in report or "worse" in report
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["units"]) == 2 * 4 and (tmp_path / "figures" / "contact_policy.png").is_file()
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "fitting" not in again.output  # every unit resumed
    assert json.loads((tmp_path / "metrics.json").read_text())["verdicts"] == metrics["verdicts"]
    changed = runner.invoke(app, args[:-2] + ["21", "--no-progress"])
    assert changed.exit_code == 2 and "other settings" in changed.output
