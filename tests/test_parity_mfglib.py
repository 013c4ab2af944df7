"""Exact parity of mfgx's mfglib zoo with mfglib 0.3.0 (``mfgx.games._mfglib``).

For every environment in ``tests/fixtures/peers/mfglib.json`` (all ten of mfglib 0.3.0, default
parameters) mfgx's exploitability of

* the uniform policy, and
* each saved solver policy (FictitiousPlay and OnlineMirrorDescent after 10 iterations; npz layout
  ``pi[t, *S, *A]``, flattened here to [T+1, S, A] in C order and normalised as mfglib's
  ``postprocess_policy`` does),

equals the fixture's ``exploitability_float64`` (mfglib's own scoring code run in float64) to
``REL = 1e-5`` relative. The numbers come from mfglib itself (``benchmarks/peers/reference_numbers.py``);
nothing here is copied from mfgx. Observed agreement: ≤ 5e-7 relative everywhere (most ≤ 6e-8; the
residual is mfglib's float32 constants, e.g. μ₀ = float32(1/n) or float32(0.4), cast to float64).

Games that cannot match, and what is compared instead:

* ``equilibrium_price``: mfglib's FictitiousPlay crashes on its 2-D action space (fixture status
  "failed"), so only the uniform and OnlineMirrorDescent policies exist; both match. Its action
  (q, h) is flattened to a = q·(H+1) + h (A = 9).
* ``linear_quadratic``: mfglib's *float32* numbers for the two solver policies (0.1944 and 0.1007)
  are not those of the game's float64 definition (0.2064 and 0.2193). Moves land exactly on
  half-integers when m_t = 0 (x = 5, u = 0 → 4.5 + 0.1 m_t) and are rounded half-to-even, so their
  direction follows the sign of m_t. The saved float32 policies are symmetric only up to ~1e-7;
  in float64 the resulting m_t ≈ 1e-9 decides the ties, in float32 it is absorbed (4.5 + 1e-10 =
  4.5 → 4). mfgx is the float64 definition and matches ``exploitability_float64``; the float32
  numbers are reproduced (to float32 accuracy) by the *symmetrised* policy, for which m_t = 0 and
  every tie is an exact tie — tested below, with the tie semantics of the kernel itself.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfgx
from mfgx.games import _mfglib

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "peers"
GAMES = json.loads((FIXTURES / "mfglib.json").read_text())["games"]
REL = 1e-5

# One compilation per game: the uniform and solver policies are scored in one vmapped call.
_expl = eqx.filter_jit(jax.vmap(mfgx.exploitability, in_axes=(None, 0)))

SOLVER_CASES = [
    (name, s["name"]) for name, entry in GAMES.items() for s in entry["solvers"] if s["status"] == "ok"
]


def _as_mfgx_policy(pi, T, S, A):
    """mfglib's pi[t, *S, *A] → [T+1, S, A] float64, made feasible like ``postprocess_policy``."""
    pi = np.maximum(np.asarray(pi, dtype=np.float64).reshape(T + 1, S, A), 0.0)
    return pi / pi.sum(-1, keepdims=True)


def _load_policy(name, solver):
    entry = GAMES[name]
    (rec,) = [s for s in entry["solvers"] if s["name"] == solver]
    with np.load(FIXTURES / rec["policy_file"]) as f:
        return f["pi"], rec


@functools.cache
def game(name):
    return mfgx.games.REGISTRY[name]()


@functools.cache
def scores(name):
    """{label: (mfgx, fixture float64)} for the uniform policy and every saved solver policy."""
    g, entry = game(name), GAMES[name]
    T, S, A = g.horizon, g.n_states, g.n_actions
    labels, pols, refs = ["uniform"], [np.full((T + 1, S, A), 1.0 / A)], [entry["uniform"]["exploitability_float64"]]
    for s in entry["solvers"]:
        if s["status"] != "ok":
            continue
        pi, rec = _load_policy(name, s["name"])
        labels.append(s["name"])
        pols.append(_as_mfgx_policy(pi, T, S, A))
        refs.append(rec["exploitability_float64"])
    ours = np.asarray(_expl(g, jnp.asarray(np.stack(pols))))
    return {lab: (float(o), r) for lab, o, r in zip(labels, ours, refs)}


def _rel(ours, ref):
    return abs(ours - ref) / abs(ref)


def test_every_mfglib_environment_is_in_the_zoo():
    assert set(GAMES) == set(_mfglib.MFGLIB_GAMES)
    for name in GAMES:
        assert mfgx.games.REGISTRY[name] is _mfglib.MFGLIB_GAMES[name]


@pytest.mark.parametrize("name", list(GAMES))
def test_shapes_and_initial_distribution(name):
    g, entry = game(name), GAMES[name]
    assert g.n_states == math.prod(entry["S"])
    assert g.n_actions == math.prod(entry["A"])
    assert g.horizon == entry["T"]
    # mfglib's μ₀ is float32: equal to ours up to float32 rounding, in C order.
    np.testing.assert_allclose(np.asarray(g.mu0), np.asarray(entry["mu0"], dtype=np.float64).reshape(-1), rtol=1e-7)
    expected = "state_action" if name in ("conservative_treasure_hunting", "random_linear", "equilibrium_price") else "state"
    assert g.mean_field == expected


@pytest.mark.parametrize("name", list(GAMES))
def test_uniform_policy_exploitability(name):
    ours, ref = scores(name)["uniform"]
    assert _rel(ours, ref) <= REL, (name, ours, ref)


@pytest.mark.parametrize("name, solver", SOLVER_CASES)
def test_solver_policy_exploitability(name, solver):
    ours, ref = scores(name)[solver]
    assert _rel(ours, ref) <= REL, (name, solver, ours, ref)


def test_equilibrium_price_fictitious_play_is_the_only_missing_policy():
    missing = [(n, s["name"]) for n, e in GAMES.items() for s in e["solvers"] if s["status"] != "ok"]
    assert missing == [("equilibrium_price", "FictitiousPlay")]
    assert "RuntimeError" in GAMES["equilibrium_price"]["solvers"][0]["error"]


def test_grid_games_use_sparse_kernels():
    for name, S in (("crowd_motion", 400), ("building_evacuation", 500)):
        g = game(name)
        assert isinstance(g.kernel, mfgx.NeighbourKernel), name
        assert g.kernel.dest.shape[:2] == (S, g.n_actions)
        assert g.kernel.dest.shape[2] <= 5


def test_seeded_draws_are_mfglib_s():
    """The stored seed-0 draws rebuild the bar path mfglib's own environment held."""
    data = json.loads(_mfglib.DATA.read_text())
    assert [list(b) for b in mfgx.games.mfglib_bar_path()] == data["crowd_motion"]["default_bar_path"]
    with pytest.raises(mfgx.GameError):
        mfgx.games.random_linear(seed=1)
    with pytest.raises(mfgx.GameError):
        mfgx.games.crowd_motion(seed=1)


# --- linear_quadratic: rounding ties ------------------------------------------------------------


def _lq_reference(m_t, el=5, m=2, sigma=3.0, delta=0.1, k=1.0):
    """mfglib's LQ transition loop (``linear_quadratic.TransitionFn``) in float64, P[x, a, x′]."""
    eps = np.arange(-3, 4) * sigma
    w = np.exp(-0.5 * eps**2)
    w /= w.sum()
    n_s, n_a = 2 * el + 1, 2 * m + 1
    P = np.zeros((n_s, n_a, n_s))
    for s in range(n_s):
        for a in range(n_a):
            for e, pr in zip(eps, w):
                nxt = s - el + (k * (m_t - s + el) + a - m) * delta + sigma * e * math.sqrt(delta)
                nxt = min(max(-el, int(np.round(nxt))), el)  # np.round: half to even, like torch.round
                P[s, a, nxt + el] += pr
    return P


@pytest.mark.parametrize("m_t", [0.0, 1e-9, -1e-9, 0.3])
def test_linear_quadratic_kernel_rounds_ties_half_to_even(m_t):
    g = game("linear_quadratic")
    x = np.arange(-5, 6)
    # a state distribution with mean exactly m_t (two-point mass)
    mu = np.zeros(11)
    mu[5], mu[6 if m_t >= 0 else 4] = 1 - abs(m_t), abs(m_t)
    assert float(np.dot(x, mu)) == m_t
    P = np.asarray(g.kernel.matrix(0, jnp.asarray(mu), None))
    np.testing.assert_allclose(P, _lq_reference(m_t), rtol=0, atol=1e-15)
    # x = 5, u = 0, no noise: 4.5 + 0.1 m_t → 4 at an exact tie (half to even) or below, 5 above.
    top = np.argmax(P[10, 2]) - 5
    assert top == (5 if m_t > 0 else 4)
    assert np.argmax(P[0, 2]) - 5 == (-5 if m_t < 0 else -4)


def test_linear_quadratic_float32_numbers_are_the_symmetrised_policies():
    """mfglib's float32 exploitabilities = mfgx's for the policy made exactly symmetric.

    π_sym(u|x) = (π(u|x) + π(−u|−x))/2 keeps m_t = 0 exactly, so every half-integer move is an exact
    tie (rounded half to even, symmetrically), which is what float32 sees for the saved policies.
    """
    g, entry = game("linear_quadratic"), GAMES["linear_quadratic"]
    T, S, A = g.horizon, g.n_states, g.n_actions
    pols, f32, f64 = [np.full((T + 1, S, A), 1.0 / A)], [entry["uniform"]["exploitability"]], []
    for solver in ("FictitiousPlay", "OnlineMirrorDescent"):
        pi, rec = _load_policy("linear_quadratic", solver)
        pi = _as_mfgx_policy(pi, T, S, A)
        pols.append(0.5 * (pi + pi[:, ::-1, ::-1]))
        f32.append(rec["exploitability"])
        f64.append(rec["exploitability_float64"])
        assert abs(rec["exploitability"] - rec["exploitability_float64"]) > 1e-2  # the ambiguity is real
    flows = np.asarray(jax.vmap(mfgx.propagate, in_axes=(None, 0))(g, jnp.asarray(np.stack(pols))))
    assert np.abs(flows @ np.arange(-5, 6)).max() < 1e-15  # m_t = 0 up to summation rounding
    ours = np.asarray(_expl(g, jnp.asarray(np.stack(pols))))  # same shapes as `scores`: no recompile
    for o, r in zip(ours, f32):
        assert _rel(o, r) <= REL, (o, r)  # float32 accuracy of mfglib's own number
    # and the unsymmetrised policies give the float64 numbers (test_solver_policy_exploitability)
    for solver, r in zip(("FictitiousPlay", "OnlineMirrorDescent"), f64):
        assert _rel(scores("linear_quadratic")[solver][0], r) <= REL
