"""Real-data studies: configuration errors, splits by group, metrics, and `mfgx calibrate` end to end."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import mfgx
from mfgx import studies
from mfgx.cli import app
from mfgx.data import Observations


def _sir_ode(beta, gamma, mu0, n):
    """Implicit-Euler SIR flow with Δt = 1 (the study's grid), written out by hand."""
    flow = [np.asarray(mu0, float)]
    for _ in range(n - 1):
        s, i, r = flow[-1]
        Q = np.array([[-beta * i, beta * i, 0.0], [0.0, -gamma, gamma], [0.0, 0.0, 0.0]])
        flow.append(np.linalg.solve((np.eye(3) - Q).T, flow[-1]))
    return np.array(flow)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Eight I-only trajectories of a known SIR ODE (β = 12, γ = 0.8) in four "towns", saved as .npz."""
    N, K = 10, 8
    rng = np.random.default_rng(0)
    values = []
    for k in range(K):
        i0 = 1e-3 * (1 + k % 3)
        y = _sir_ode(12.0, 0.8, (0.1, i0, 0.9 - i0), N)
        y[:, [0, 2]] = np.nan
        values.append(y)
    values = np.array(values)
    obs = Observations(
        values, np.isfinite(values), times=np.arange(N, dtype=float), labels=("S", "I", "R"),
        covariates=rng.integers(0, 2, (K, N, 1)).astype(float), covariate_labels=("term",),
        metadata={"trajectories": [{"town": f"town{k // 2}"} for k in range(K)]},
    )
    folder = tmp_path_factory.mktemp("study")
    obs.save(folder / "sir.npz")
    return folder, obs


def test_flow_metrics_match_hand_computation():
    y = np.array([[[0.5, 0.5], [0.2, 0.8]]])
    mask = np.array([[[True, False], [True, True]]])
    pred = np.array([[[0.4, 0.6], [0.3, 0.7]]])
    obs = Observations(y, mask)
    m = studies.flow_metrics(pred, obs)
    assert m["l2"] == pytest.approx((0.01 + 0.01 + 0.01) / 3)
    assert m["rel_l2"] == pytest.approx(0.03 / (0.25 + 0.04 + 0.64))
    paper = studies.flow_metrics(pred, obs, floor=1e-4)
    assert paper["rel_l2"] == pytest.approx((0.01 / (0.25 + 1e-4) + 0.01 / (0.04 + 1e-4) + 0.01 / (0.64 + 1e-4)) / 3)


def test_split_by_keeps_groups_whole(synthetic):
    _, obs = synthetic
    parts = studies.split_by(obs, "town", val=0.25, test=0.25, seed=3)
    towns = {k: {m["town"] for m in v.metadata["trajectories"]} for k, v in parts.items()}
    assert sum(v.n_trajectories for v in parts.values()) == obs.n_trajectories
    assert not (towns["train"] & towns["test"] or towns["train"] & towns["val"] or towns["val"] & towns["test"])
    assert [len(towns[k]) for k in ("train", "val", "test")] == [2, 1, 1]
    again = studies.split_by(obs, "town", val=0.25, test=0.25, seed=3)
    assert np.array_equal(again["test"].values, parts["test"].values, equal_nan=True)
    with pytest.raises(ValueError, match="lack that key"):
        studies.split_by(obs, "region")
    with pytest.raises(ValueError, match="too few"):
        studies.split_by(obs, "town", val=0.4, test=0.5)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"study": {}}, "missing key 'kind'"),
        ({"study": {"kind": "weather"}}, "kind must be one of"),
        ({"study": {"kind": "epidemic"}, "data": {"source": "flights"}}, "source for a epidemic study"),
        ({"study": {"kind": "epidemic"}, "data": {"source": "fluview"}}, "needs file"),
        ({"study": {"kind": "epidemic"}, "data": {"source": "fluview", "file": "nope.csv"}}, "does not exist"),
        ({"study": {"kind": "epidemic"}, "fit": {"epochz": 3}}, r"unknown key\(s\) \['epochz'\]"),
        ({"study": {"kind": "epidemic", "seed": "0"}}, "'seed' must be int"),
        ({"study": {"kind": "epidemic"}, "extra": {}}, "unknown section"),
        ({"study": {"kind": "mobility"}, "data": {"file": "x.csv"}}, "bundled and takes no file"),
    ],
)
def test_config_errors_name_the_key(raw, message, tmp_path):
    with pytest.raises(studies.ConfigError, match=message):
        studies.config_from_dict(raw, tmp_path, "cfg.toml")


def test_config_file_errors(tmp_path):
    with pytest.raises(studies.ConfigError, match="does not exist"):
        studies.load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nkind = 1")
    with pytest.raises(studies.ConfigError, match="not valid TOML"):
        studies.load_config(bad)
    result = CliRunner().invoke(app, ["calibrate", "--config", str(bad)])
    assert result.exit_code == 2 and "not valid TOML" in result.output


def test_demo_config_is_valid():
    cfg = studies.load_config(studies.MEASLES_CONFIG)
    assert (cfg.kind, cfg.source, cfg.split_by) == ("epidemic", "measles", "town")
    demo = studies.load_config(studies.DEMO_CONFIG)  # the demo is the quick COVID study
    assert (demo.kind, demo.source) == ("covid", "covid3month")


@pytest.mark.slow
def test_calibrate_cli_end_to_end(synthetic):
    """`mfgx calibrate --config` on I-only data of a known SIR ODE: the baseline (the true model
    class) fits it, every output is written, and a rerun with more epochs resumes."""
    folder, obs = synthetic
    (folder / "study.toml").write_text(
        """
[study]
kind = "epidemic"
output = "out"
[data]
source = "observations"
file = "sir.npz"
split_by = "town"
val = 0.25
test = 0.25
[model]
width = 4
depth = 0
n_alpha = 3
susceptible = 0.1
[fit]
epochs = 150
batch_size = 4
learning_rate = 0.1
eval_every = 50
"""
    )
    runner = CliRunner()
    result = runner.invoke(app, ["calibrate", "--config", str(folder / "study.toml"), "--no-progress"])
    assert result.exit_code == 0, result.output
    out = folder / "out"
    record = json.loads((out / "metrics.json").read_text())
    for name in ("fits", "losses", "comparison", "parameters"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert (out / "models" / "mfg.eqx").exists() and "| test | mfg |" in (out / "report.md").read_text()
    # The data come from the baseline's model class with a path it can represent: the fit is close.
    assert record["metrics"]["baseline"]["test"]["rel_l2"] < 0.05
    assert set(record["improvement_pct"]) == {"train", "val", "test"}
    # Resume: 5 more epochs continue from the checkpoint (epochs_run counts all of them).
    result = runner.invoke(app, ["calibrate", "--config", str(folder / "study.toml"), "--epochs", "155", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["epochs_run"]["baseline"] == 155
    # Changed settings into the same folder: refused (exit 2, naming what changed), nothing rewritten.
    before = (out / "metrics.json").read_text()
    toml = (folder / "study.toml").read_text()
    (folder / "study.toml").write_text(toml.replace("learning_rate = 0.1", "learning_rate = 0.3"))
    result = runner.invoke(app, ["calibrate", "--config", str(folder / "study.toml"), "--epochs", "155", "--no-progress"])
    assert result.exit_code == 2 and "changed: optimizer" in result.output and "--restart" in result.output, result.output
    assert (out / "metrics.json").read_text() == before
    result = runner.invoke(app, ["calibrate", "--config", str(folder / "study.toml"), "--epochs", "3", "--restart",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["epochs_run"]["baseline"] == 3
