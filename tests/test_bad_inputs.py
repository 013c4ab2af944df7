"""A catalogue of bad inputs: each gets a clear error naming the problem (type and message), never a
silent wrong answer or an obscure crash. Cheap cases only (each well under a second after imports)."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import mfgx
from mfgx import _checkpoint
from mfgx.cli import app
from mfgx.finite._precision import resolve_tol

G = mfgx.games.two_state_congestion()
PI = mfgx.uniform_policy(G)

CASES = [
    # (id, callable, exception type, message regex)
    ("exploitability negative temperature", lambda: mfgx.exploitability(G, PI, temperature=-1.0), ValueError, "temperature must be positive"),
    ("exploitability nan temperature", lambda: mfgx.exploitability(G, PI, temperature=float("nan")), ValueError, "temperature must be positive"),
    ("exploitability zero temperature", lambda: mfgx.exploitability(G, PI, temperature=0.0), ValueError, "temperature"),
    ("evaluate negative temperature", lambda: mfgx.evaluate(G, PI, mfgx.propagate(G, PI), temperature=-2.0), ValueError, "temperature"),
    ("Softmax numpy negative", lambda: mfgx.Softmax(np.float32(-1)), ValueError, "temperature must be positive"),
    ("Softmax jax negative", lambda: mfgx.Softmax(jnp.asarray(-0.5)), ValueError, "temperature must be positive"),
    ("FixedPoint numpy damping 1.5", lambda: mfgx.FixedPoint(np.float64(1.5)), ValueError, "damping must be in"),
    ("FixedPoint damping 1", lambda: mfgx.FixedPoint(1.0), ValueError, "damping must be in"),
    ("MirrorDescent numpy negative rate", lambda: mfgx.MirrorDescent(np.float32(-1)), ValueError, "must be positive"),
    ("crowd_ring n=0", lambda: mfgx.games.crowd_ring(n=0), mfgx.GameError, r"crowd_ring: n must be an integer ≥ 1, got 0"),
    ("crowd_ring n=-3", lambda: mfgx.games.crowd_ring(n=-3), mfgx.GameError, "n must be an integer"),
    ("crowd_ring T=True", lambda: mfgx.games.crowd_ring(T=True), mfgx.GameError, "T must be an integer"),
    ("sir n_points=1", lambda: mfgx.games.sir(n_points=1), mfgx.GameError, r"sir: n_points must be an integer ≥ 2"),
    ("sir T=nan", lambda: mfgx.games.sir(T=float("nan")), mfgx.GameError, "T must be finite"),
    ("sir T=0", lambda: mfgx.games.sir(T=0.0), mfgx.GameError, "T must be positive"),
    ("sir n_alpha=2.5", lambda: mfgx.games.sir(n_alpha=2.5), mfgx.GameError, "n_alpha must be an integer"),
    ("beach_bar n string", lambda: mfgx.games.beach_bar(n="4"), mfgx.GameError, "n must be an integer"),
    ("lq_rates d=0", lambda: mfgx.games.lq_rates(d=0), mfgx.GameError, "d must be an integer ≥ 1"),
    ("lq_rates T=inf", lambda: mfgx.games.lq_rates(T=float("inf")), mfgx.GameError, "T must be finite"),
    ("garnet horizon=0", lambda: mfgx.games.garnet(horizon=0), mfgx.GameError, "horizon must be an integer ≥ 1"),
    ("solve negative tol", lambda: mfgx.solve(G, mfgx.FixedPoint(), tol=-1.0), ValueError, "tol must be non-negative"),
    ("solve max_steps 0", lambda: mfgx.solve(G, mfgx.FixedPoint(), max_steps=0), ValueError, "max_steps must be a positive int"),
    ("solve non-game", lambda: mfgx.solve("beach_bar", mfgx.FixedPoint()), TypeError, "expects a FiniteGame"),
    ("solve non-solver", lambda: mfgx.solve(G, "fixed_point"), TypeError, "expects a solver"),
    ("solve guess wrong shape", lambda: mfgx.solve(G, mfgx.FixedPoint(), guess=jnp.zeros(3)), ValueError, "guess must be a mean-field flow"),
    ("observations all NaN", lambda: _obs(np.full((2, 3, 3), np.nan)), mfgx.data.DataError, "mask observes nothing"),
    ("observations 1-D", lambda: _obs(np.ones(3) / 3), mfgx.data.DataError, "values must have shape"),
    ("observations mass > 1", lambda: _obs(np.full((1, 2, 3), 0.5)), mfgx.data.DataError, "sums to 1.5, not 1"),
    ("observations negative", lambda: _obs(np.array([[[1.2, -0.2, 0.0]]])), mfgx.data.DataError, "negative"),
    ("observations infinite", lambda: _obs(np.array([[[np.inf, 0.0, 0.0]]])), mfgx.data.DataError, "not finite"),
    ("observations times not increasing", lambda: mfgx.data.Observations(np.full((1, 2, 3), 1 / 3), times=[1.0, 0.0]),
     mfgx.data.DataError, "strictly increasing"),
    ("observations negative noise", lambda: mfgx.data.Observations(np.full((1, 2, 3), 1 / 3), noise=-1.0),
     mfgx.data.DataError, "noise must be a non-negative"),
    ("split fractions", lambda: _obs(np.full((4, 2, 3), 1 / 3)).split(0.5, 0.5, 0.5), mfgx.data.DataError, "must sum to 1"),
    ("calibration model stationary game", lambda: mfgx.calibrate.CalibrationModel(_stationary(), mfgx.calibrate.Constant(1.0)),
     mfgx.calibrate.CalibrationError, "must not be stationary"),
    ("calibration model negative tol", lambda: mfgx.calibrate.CalibrationModel(mfgx.games.lq_rates(n_points=10),
     mfgx.calibrate.Constant(1.0), tol=-1.0), mfgx.calibrate.CalibrationError, "tol must be ≥ 0"),
    ("laplace unknown kind", lambda: mfgx.calibrate.laplace(_lq_model(), _lq_obs(), kind="fisher"),
     mfgx.calibrate.CalibrationError, "kind must be one of"),
    ("refine unknown initial", lambda: mfgx.calibrate.refine(_lq_model(), _lq_obs(), initial="clean"),
     mfgx.calibrate.CalibrationError, "initial must be one of"),
]


def _obs(values):
    return mfgx.data.Observations(values)


def _stationary():
    return mfgx.FiniteGame(jnp.ones(2) / 2, lambda t, m, p: jnp.broadcast_to(jnp.eye(2)[:, None], (2, 1, 2)),
                           lambda t, m, p: jnp.zeros((2, 1)), None, discount=0.9)


def _lq_model():
    return mfgx.calibrate.CalibrationModel(mfgx.games.lq_rates(n_points=10), mfgx.calibrate.Constant(1.5))


def _lq_obs():
    return mfgx.data.Observations(np.full((2, 10, 3), 1 / 3))


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(call, exc, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(exc, match=match):
            call()


def test_tolerance_below_the_dtype_is_raised_with_a_warning():
    with pytest.warns(mfgx.PrecisionWarning, match="below what float32 can resolve"):
        assert resolve_tol(1e-12, jnp.float32) == pytest.approx(10 * np.finfo(np.float32).eps)
    assert resolve_tol(None, jnp.float32) == pytest.approx(10 * np.finfo(np.float32).eps)
    assert resolve_tol(None, jnp.float64) == 1e-8 and resolve_tol(1e-12, jnp.float64) == 1e-12


@pytest.mark.parametrize("cut", ["empty", "magic", "length", "header", "arrays"])
def test_corrupt_checkpoints_are_named_as_such(tmp_path, cut):
    tree = (jnp.arange(50.0), {"w": jnp.ones((4, 4))})
    path = _checkpoint.save(tmp_path, {"settings": {"a": 1}, "state": {"epoch": 3}}, tree)
    raw = path.read_bytes()
    magic_len = len(_checkpoint._magic("calibration"))
    keep = {"empty": 0, "magic": magic_len - 3, "length": magic_len + 4, "header": magic_len + 12, "arrays": len(raw) - 100}[cut]
    path.write_bytes(raw[:keep])
    with pytest.raises(ValueError, match="corrupt or truncated.*resume=False"):
        _checkpoint.load(tmp_path, tree)
    assert _checkpoint.load(tmp_path.parent, tree) is None  # no checkpoint there: nothing to resume


def test_checkpoint_with_a_huge_declared_header(tmp_path):
    tree = (jnp.arange(5.0),)
    path = _checkpoint.save(tmp_path, {"settings": {}, "state": {}}, tree)
    raw = bytearray(path.read_bytes())
    m = len(_checkpoint._magic("calibration"))
    raw[m:m + 8] = (2**40).to_bytes(8, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="claims 1099511627776 bytes"):
        _checkpoint.load(tmp_path, tree)


def test_checkpoint_of_another_kind(tmp_path):
    _checkpoint.save(tmp_path, {"settings": {}, "state": {}}, (jnp.ones(3),), kind="neural")
    with pytest.raises(ValueError, match="not an mfgx calibration checkpoint"):
        _checkpoint.load(tmp_path, (jnp.ones(3),))


RUN = CliRunner()


def _plain(text: str) -> str:
    """CLI output without Rich's box drawing, whitespace collapsed (messages wrap inside boxes)."""
    return " ".join(text.translate({ord(c): " " for c in "│╭╮╰╯─"}).split())


@pytest.mark.parametrize("args,match", [
    (["solve", "crowd_ring", "-p", "n=0"], "n must be an integer ≥ 1"),
    (["solve", "sir", "-p", "n_points=1"], "n_points must be an integer ≥ 2"),
    (["solve", "beach_bar", "-p", "nope=3"], "has no argument nope"),
    (["solve", "no_such_game"], "no_such_game"),
    (["solve", "beach_bar", "--solver", "fixed-point", "--temperature", "0.1"], "does not apply"),
    (["solve", "beach_bar", "--solver", "softmax", "--temperature", "-1"], "temperature must be positive"),
])
def test_cli_bad_arguments_exit_2_with_the_reason(args, match):
    result = RUN.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert match in _plain(result.output), result.output


def test_cli_solve_exit_status_follows_convergence():
    ok = RUN.invoke(app, ["solve", "two_state_congestion", "--solver", "softmax", "--temperature", "0.5",
                          "--damping", "0.5", "--steps", "300"])
    assert ok.exit_code == 0 and "converged" in ok.output, ok.output
    bad = RUN.invoke(app, ["solve", "two_state_congestion", "--solver", "fixed-point", "--steps", "2"])
    assert bad.exit_code == 1 and "not converged" in bad.output, bad.output


# --- configs: every value checked before any work ------------------------------------------------

def _demo_raw():
    import tomllib

    from mfgx.studies import MEASLES_CONFIG

    return tomllib.loads(open(MEASLES_CONFIG).read())


@pytest.mark.parametrize("section,key,value,match", [
    ("fit", "epochs", "ten", "'epochs' must be an integer, got 'ten'"),
    ("fit", "epochs", 0, "'epochs' must be an integer ≥ 1"),
    ("fit", "learning_rate", float("nan"), "'learning_rate' must be finite"),
    ("fit", "learning_rate", -0.1, "'learning_rate' must be > 0"),
    ("fit", "batch_size", 2.5, "'batch_size' must be an integer"),
    ("fit", "window", 1.5, r"'window' must be in \(0, 1\]"),
    ("fit", "eval_train", 1, "must be true or false"),
    ("model", "width", -3, "'width' must be an integer ≥ 1, got -3"),
    ("model", "depth", -1, "'depth' must be an integer ≥ 0"),
    ("model", "temperature", 0.0, "'temperature' must be > 0"),
    ("model", "damping", 1.0, r"'damping' must be in \(0, 1\)"),
    ("model", "widht", 3, "unknown key 'widht'"),
    ("data", "val", 0.9, "val and test must be fractions"),
])
def test_config_values_are_checked_before_work(section, key, value, match):
    from mfgx.studies import ConfigError, config_from_dict

    raw = {s: dict(t) for s, t in _demo_raw().items()}
    raw[section][key] = value
    with pytest.raises(ConfigError, match=match):
        config_from_dict(raw, origin="study.toml")


# --- hostile files: refused before decompression ------------------------------------------------

def test_zip_bomb_is_refused_before_decompression(tmp_path):
    import zipfile

    from mfgx import data

    bomb = tmp_path / "trips.csv.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z, z.open("trips.csv", "w") as f:
        for _ in range(8):
            f.write(b"0" * 2**20)
    with pytest.raises(data.DataError, match="compression ratio .* decompression bomb"):
        data.read_citibike(bomb)


def test_npz_with_an_implausible_array_is_refused(tmp_path):
    from mfgx import data

    big = np.zeros((64, 64, 64))
    np.savez_compressed(tmp_path / "obs.npz", values=big, mask=big > 0, header=np.array("{}"))
    with pytest.raises(data.DataError, match="not plausible data"):
        data.Observations.load(tmp_path / "obs.npz")


def test_euler_rates_growing_with_the_population_are_caught():
    """Jump rates that grow with μ push an explicit Euler flow off the simplex (the probe at μ₀ is
    fine): reported as invalid, never as a converged equilibrium."""
    S = 3

    def rates(t, m, p):  # every state jumps to state 2 at rate 30 μ(2): fine at μ₀, explosive later
        return jnp.zeros((S, 1, S)).at[:, :, 2].set(30.0 * m[2])

    game = mfgx.rate_game(jnp.array([0.45, 0.45, 0.1]), rates, lambda t, m, p: jnp.zeros((S, 1)),
                          lambda m, p: jnp.zeros(S), 6, 0.05, scheme="euler")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        eq = mfgx.solve(game, mfgx.FixedPoint(0.0), max_steps=20)
    assert not bool(eq.valid) and not bool(eq.converged)


def test_float32_readme_gradient_example_runs(tmp_path):
    """With MFGX_X64=0 the README's gradient example converges (dtype-aware tolerance) and its
    gradient is finite."""
    import os
    import subprocess
    import sys

    code = (
        "import warnings, jax, jax.numpy as jnp, mfgx\n"
        "game = mfgx.games.two_state_congestion()\n"
        "loss = lambda c: mfgx.solve(game.with_params(c), mfgx.Softmax(0.5, 0.5)).flow[-1, 0]\n"
        "g = jax.grad(loss)(jnp.array([1.0, 2.0]))\n"
        "eq = mfgx.solve(game, mfgx.Softmax(0.5, 0.5))\n"
        "assert g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g))), g\n"
        "assert bool(eq.converged), eq.residual\n"
        "print('ok', g)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "MFGX_X64": "0"}, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
