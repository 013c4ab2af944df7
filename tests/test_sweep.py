"""mfgx.sweep: trials on local Ray, aggregation over seeds, skip/rerun/resume, killed workers, sharding.

The Ray tests share one local Ray (2 CPUs, no dashboard) per module and xdist worker and run in one
xdist group (`make test` uses ``--dist loadgroup``); under plain ``-n 2`` they pass too (each xdist
worker starting its own Ray). The fast ones run `sweep_plugin.line`, a small checkpointed training
loop, so that they time the sweep machinery and not XLA; the real calibration trial
(`run_synthetic`) runs on Ray in the slow tests and in experiments/sweeps/.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from scipy import stats

from mfgx import sweep

TESTS = Path(__file__).parent


def tiny(output, **sweep_keys) -> dict:
    """A sweep of tiny synthetic LQ calibrations (d = 3, N = 10, constant γ, 2 epochs)."""
    return {
        "sweep": {"output": str(output), "max_retries": 2, **sweep_keys},
        "base": {
            "study": {"kind": "synthetic"},
            "game": {"name": "lq", "d": 3, "n_points": 10},
            "truth": {"kind": "constant"},
            "data": {"n_train": 6, "n_val": 0, "n_test": 3, "noise": 1e-3},
            "fit": {"epochs": 2, "batch_size": 3, "learning_rate": 0.05, "refine_steps": 0},
        },
        "axes": {"seed": [0, 1]},
        "grid": [{"name": "a"}, {"name": "b", "set": {"data.noise": 1e-2}}],
    }


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    import ray  # a dependency of mfgx: missing, the tests fail rather than skip
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # inherited by the raylet and its workers
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 2**20)
        yield ray
    finally:
        ray.shutdown()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------- spec (no Ray)


def test_spec_expands_grids_and_seeds(tmp_path):
    spec = sweep.spec_from_dict(tiny(tmp_path))
    assert [t.id for t in spec.trials] == ["a/seed=0", "a/seed=1", "b/seed=0", "b/seed=1"]
    assert spec.target == "synthetic" and spec.axes == ("seed",)
    b0 = spec.trials[2]
    assert b0.config["data"]["noise"] == 1e-2 and b0.config["study"]["seed"] == 0
    assert len({t.fingerprint for t in spec.trials}) == 4
    again = sweep.spec_from_dict(tiny(tmp_path))
    assert [t.fingerprint for t in again.trials] == [t.fingerprint for t in spec.trials]
    raw = tiny(tmp_path, mode="random", samples=3, seed=1)
    raw["axes"]["fit.learning_rate"] = {"low": 1e-3, "high": 1e-1, "log": True}
    rnd = sweep.spec_from_dict(raw)
    assert len(rnd.trials) == 2 * 3 * 2
    lrs = {t.values["fit.learning_rate"] for t in rnd.trials}
    assert len(lrs) == 6 and all(1e-3 <= v <= 1e-1 for v in lrs)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["sweep"].update(mode="spiral"), "mode"),
    (lambda r: r["axes"].update(seed=[0, 0]), "repeats"),
    (lambda r: r["axes"].update({"fit.epochs": {"low": 1, "high": 3}}), "ranges need mode"),
    (lambda r: r.pop("base"), "no base configuration"),
    (lambda r: r["base"]["study"].update(kind="mystery"), "cannot tell"),
    (lambda r: r["grid"].append({"name": "a"}), "unique"),
    (lambda r: r["sweep"].update(cpus_per_trial=0), "cpus_per_trial"),
])
def test_bad_spec_is_named(tmp_path, change, message):
    raw = tiny(tmp_path)
    change(raw)
    with pytest.raises(sweep.SweepError, match=message):
        sweep.spec_from_dict(raw)


def test_study_base_file_and_targets(tmp_path):
    from mfgx import studies

    base = tmp_path / "study.toml"
    base.write_text(studies.MEASLES_CONFIG.read_text())
    sw = tmp_path / "sweep.toml"
    sw.write_text('[sweep]\nbase = "study.toml"\n[axes]\nseed = [0, 1]\n"fit.epochs" = [1]\n')
    spec = sweep.load_spec(sw)
    assert spec.target == "study" and [t.config["study"]["seed"] for t in spec.trials] == [0, 1]
    assert spec.trials[0].config["fit"]["epochs"] == 1
    assert sweep.resolve_target("study") is sweep.TARGETS["study"]
    with pytest.raises(sweep.SweepError, match="cannot be imported"):
        sweep.resolve_target("no_such_module_xyz:fn")
    with pytest.raises(sweep.SweepError, match="unknown target"):
        sweep.resolve_target("nothing")


def test_cli_names_a_missing_sweep_file(tmp_path):
    from typer.testing import CliRunner

    from mfgx.cli._app import app

    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_t_interval_closed_form():
    x = [1.0, 2.0, 4.0]
    s = sweep.t_interval(x)
    sd = np.std(x, ddof=1)
    assert s["mean"] == pytest.approx(7 / 3) and s["sd"] == pytest.approx(sd)
    assert s["half"] == pytest.approx(4.302652729911275 * sd / math.sqrt(3))  # t_{0.975, 2}
    assert math.isnan(sweep.t_interval([3.0])["sd"])


# ----------------------------------------------------------------------------- on Ray


def line_sweep(output, **sweep_keys) -> dict:
    """A sweep of the small checkpointed training loop `sweep_plugin.line` (compiles in < 1 s)."""
    return {
        "sweep": {"output": str(output), "max_retries": 2, "target": "sweep_plugin:line", "metrics": ["loss"], **sweep_keys},
        "base": {"study": {"seed": 0}, "fit": {"epochs": 3, "learning_rate": 0.1}, "data": {"noise": 0.1}},
        "axes": {"seed": [0, 1]},
        "grid": [{"name": "a"}, {"name": "b", "set": {"data.noise": 0.5}}],
    }


def check_table(res, metric: str) -> dict:
    """The table's rows are the t-intervals of the trials' own numbers; returns the rows by grid."""
    rows = {r["grid"]: r for r in res.table}
    for grid, row in rows.items():
        vals = [r["metrics"][metric] for r in res.records if r["grid"] == grid]
        st = row["metrics"][metric]
        assert st["n"] == len(vals) == 2 and st["mean"] == pytest.approx(np.mean(vals))
        assert st["half"] == pytest.approx(stats.t.ppf(0.975, 1) * np.std(vals, ddof=1) / math.sqrt(2))
    return rows


@pytest.mark.xdist_group("ray")
def test_sweep_runs_aggregates_skips_and_reruns_changed(ray_session, tmp_path):
    raw = line_sweep(tmp_path / "out")
    res = sweep.run(sweep.spec_from_dict(raw), progress=False)
    assert res.n_failed == 0 and len(res.records) == 4
    assert all(r["status"] == "done" and not r["reused"] and r["attempts"] == 1 for r in res.records)
    rows = check_table(res, "loss")
    assert set(rows) == {"a", "b"}
    # the residual mean square is about noise²: 0.25 (grid b) against 0.01 (grid a)
    assert rows["b"]["metrics"]["loss"]["mean"] > 5 * rows["a"]["metrics"]["loss"]["mean"]
    out = tmp_path / "out"
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["n_trials"] == 4 and len(saved["table"]) == 2
    assert "| a | 2 |" in (out / "sweep.md").read_text()
    assert (out / "figures" / "loss.png").stat().st_size > 0

    again = sweep.run(sweep.spec_from_dict(raw), progress=False)  # finished trials are reused
    assert all(r["reused"] for r in again.records)
    assert [r["metrics"] for r in again.records] == [r["metrics"] for r in res.records]

    raw["grid"][1]["set"]["data.noise"] = 0.3  # grid b's settings change: its trials rerun, a's are reused
    screen = Console(file=io.StringIO(), force_terminal=True, force_interactive=True, width=140)  # the live table of trials
    changed = sweep.run(sweep.spec_from_dict(raw), console=screen)
    assert "4/4 done" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.file.getvalue())
    by, before = {r["id"]: r for r in changed.records}, {r["id"]: r for r in res.records}
    assert by["a/seed=0"]["reused"] and by["a/seed=1"]["reused"]
    for tid in ("b/seed=0", "b/seed=1"):
        assert not by[tid]["reused"] and "data.noise (0.5 → 0.3)" in by[tid]["rerun"]
        assert by[tid]["metrics"]["resumed_from_epoch"] == 0  # the old checkpoint was not reused
        assert by[tid]["metrics"]["loss"] < before[tid]["metrics"]["loss"]

    bad = line_sweep(tmp_path / "bad")
    del bad["base"]["fit"]["learning_rate"]
    bad["axes"], bad["grid"] = {"seed": [0]}, [{"name": "x"}]
    failed = sweep.run(sweep.spec_from_dict(bad), progress=False)  # a failing trial is reported, not dropped
    assert failed.n_failed == 1 and "KeyError" in failed.records[0]["error"]
    assert "1 failed" in (tmp_path / "bad" / "sweep.md").read_text()


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_synthetic_calibration_sweep(ray_session, tmp_path):
    """End to end with the real trial (`run_synthetic`): 4 tiny LQ calibrations on Ray."""
    res = sweep.run(sweep.spec_from_dict(tiny(tmp_path / "out")), progress=False)
    assert res.n_failed == 0
    rows = check_table(res, "mu_error")
    # noisier data fit worse: the μ-error grows with the noise level (1e-2 vs 1e-3, ~10× larger)
    assert rows["b"]["metrics"]["mu_error"]["mean"] > 3 * rows["a"]["metrics"]["mu_error"]["mean"]


@pytest.mark.xdist_group("ray")
@pytest.mark.parametrize("target, metrics", [
    ("line", ("loss", "a", "b")),
    pytest.param("gated", ("final_train_loss", "mu_error", "gamma_mae"), marks=pytest.mark.slow),
])
def test_killed_worker_resumes_from_checkpoint(ray_session, tmp_path, target, metrics):
    gate = tmp_path / "gate"
    raw = line_sweep(tmp_path / "out") if target == "line" else tiny(tmp_path / "out", target="sweep_plugin:gated")
    raw["base"]["fit"]["epochs"] = 3
    raw["base"]["test"] = {"gate": str(gate)}
    raw["axes"] = {"test.tag": ["killed", "clean"]}  # the same run twice; one of them is killed
    raw["grid"] = [{"name": "k"}]
    spec = sweep.spec_from_dict(raw)
    box = {}
    thread = threading.Thread(target=lambda: box.update(result=sweep.run(spec, progress=False)))
    thread.start()
    folder = tmp_path / "out" / "trials" / "k" / "tag=killed"
    deadline = time.time() + 300
    while not (folder / "waiting").exists() and thread.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    assert (folder / "waiting").exists(), "the trial never reached its gate"
    assert (folder / "checkpoint" / "checkpoint.eqx").exists()
    os.kill(int((folder / "pid").read_text()), signal.SIGKILL)
    gate.write_text("open")
    thread.join(timeout=300)
    res = box["result"]
    assert res.n_failed == 0 and len(res.table) == 2
    killed, clean = res.records
    assert killed["attempts"] == 2 and clean["attempts"] == 1
    assert killed["metrics"]["resumed_from_epoch"] == 1 and clean["metrics"]["resumed_from_epoch"] == 0
    assert killed["metrics"]["epochs_run"] == 3
    for k in metrics:  # resume is exact: the same numbers as the run that was not interrupted
        assert killed["metrics"][k] == pytest.approx(clean["metrics"][k], rel=1e-12, abs=0)


# ----------------------------------------------------------------------------- sharding

SHARD_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, jax
    sys.path.insert(0, sys.argv[1])
    from test_sweep import shard_case
    from mfgx._sharding import n_shards, shard_batch
    out = shard_case()
    out["devices"] = jax.device_count()
    out["shards"] = n_shards(4)
    out["placed"] = len(shard_batch(jax.numpy.ones((4, 3))).sharding.device_set)
    print(json.dumps(out))
""")


def shard_case() -> dict:
    """One epoch of `calibrate.fit` (batches of 4) and `calibrate.evaluate` on 8 trajectories, and the
    flows of a batch of 4 equilibria solved at once: what the sharding test compares."""
    import jax.numpy as jnp

    import mfgx
    from mfgx import calibrate as cal
    from mfgx._sharding import shard_batch

    game = mfgx.games.lq_rates(d=3, n_points=10, T=2.0, scheme="implicit")
    rng = np.random.default_rng(0)
    y = rng.dirichlet(np.ones(3) * 20, size=(8, 10))
    obs = cal.Observations(y, times=np.asarray(cal._model.game_times(game)))
    model = cal.CalibrationModel(game, cal.Constant(2.0, floor=0.05))
    fit = cal.fit(model, obs, epochs=1, batch_size=4, progress=False, identify=False, eval_train=False)
    flows, conv, _ = cal._model._predict(fit.model, *shard_batch((jnp.asarray(y[:4]), jnp.ones((4, 10, 3), bool), None)))
    return {"gamma": np.asarray(fit.path.values).tolist(), "loss": fit.losses().tolist(),
            "mu_error": cal.evaluate(fit, obs, batch_size=4)["mu_error"], "flows": np.asarray(flows).tolist(),
            "flow_devices": len(flows.sharding.device_set)}


def test_sharded_batch_equals_unsharded():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", SHARD_SCRIPT, str(TESTS)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ref = shard_case()  # this process: one device, nothing sharded (computed while the subprocess runs)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    got = json.loads(stdout.strip().splitlines()[-1])
    assert got["devices"] == 4 and got["shards"] == 4 and got["placed"] == 4 and got["flow_devices"] == 4
    assert ref["flow_devices"] == 1
    # the same numbers up to rounding (XLA vectorises a batch of 1 per device differently from 4: ≤ 1 ulp)
    np.testing.assert_allclose(got["flows"], ref["flows"], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got["gamma"], ref["gamma"], rtol=1e-13)
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-12)
    assert got["mu_error"] == pytest.approx(ref["mu_error"], rel=1e-12)


def test_ray_that_cannot_start_is_a_named_error(monkeypatch):
    """Ray's local start-up can time out on an overloaded machine: retried once, then a SweepError
    that names the cause and the way out (not Ray's raw traceback)."""
    import ray

    from mfgx.sweep import _run

    calls = []

    def fail(**kwargs):
        calls.append(kwargs)
        raise Exception("The current node timed out during startup.")

    monkeypatch.setattr(ray, "init", fail)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with pytest.raises(sweep.SweepError, match="could not start a local Ray instance.*timed out.*--address auto"):
        _run._start_ray(None, {"num_cpus": 1})
    assert len(calls) == 2


def test_collect_reports_trials_not_run(tmp_path):
    """`collect` on a sweep that never ran: every trial "not run" (not "failed"), nothing in the
    statistics, and the table says so."""
    res = sweep.collect(sweep.spec_from_dict(line_sweep(tmp_path / "out")))
    assert [r["status"] for r in res.records] == ["not run"] * 4
    assert all(row["n_failed"] == 0 and row["n_not_done"] == 2 for row in res.table)
    text = (tmp_path / "out" / "sweep.md").read_text()
    assert "| a | 0 (2 not run) |" in text and "| b | 0 (2 not run) |" in text
