"""Session-wide games and solved equilibria, shared so that each is compiled and solved once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import mfgx
from helpers import random_dense_game, solve_md

settings.register_profile(
    "mfgx",
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("mfgx")


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_code():
    """Drop compiled executables after each test module: thousands of XLA executables in one process
    exhaust the kernel's memory-map limit (vm.max_map_count) and crash the compiler. Within a module
    compiled functions are still reused."""
    yield
    import jax

    jax.clear_caches()


@pytest.fixture(scope="session")
def congestion():
    """two_state_congestion with T = 3, θ = (c0, c1) = (1, 2), μ0 = (1/2, 1/2)."""
    return mfgx.games.two_state_congestion(T=3, costs=(1.0, 2.0), mu0=(0.5, 0.5))


@pytest.fixture(scope="session")
def congestion_eq(congestion):
    return solve_md(congestion)


@pytest.fixture(scope="session")
def left_right():
    return mfgx.games.left_right()


@pytest.fixture(scope="session")
def left_right_eq(left_right):
    return solve_md(left_right)


@pytest.fixture(scope="session")
def si_game():
    return mfgx.games.susceptible_infected()


@pytest.fixture(scope="session")
def si_eq(si_game):
    # Undamped FixedPoint cycles on the default horizon T = 50 (it converges for T <= 10);
    # damping 1/2 converges (to exploitability 0) in ~130 steps.
    return mfgx.solve(si_game, mfgx.FixedPoint(damping=0.5), tol=1e-10, max_steps=500)


@pytest.fixture(scope="session")
def dense_game():
    """A random dense game (S, A, T) = (4, 3, 3) with mean-field dependent kernel and reward."""
    return random_dense_game(1234)


@pytest.fixture
def rng():
    return np.random.default_rng(20260101)
