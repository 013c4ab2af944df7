"""The generative side-by-side and experiment scaffolding (issues 14, 15): peers stay out of mfgx, and
the experiment's verdicts follow its intervals."""

import ast
import importlib.util
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PEERS = {"torchcfm", "torchdiffeq", "torchdyn", "flowjax", "paramax"}  # .venv-gen-peers only


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("folder, banned", [("src/mfgx", PEERS), ("tests", PEERS | {"torch"}), ("src/mfgx/generative", PEERS | {"torch"})])
def test_peers_are_never_imported_by_mfgx_or_its_tests(folder, banned):
    # (torch itself appears in src/mfgx/games/data/make_mfglib_seed0.py, a script run in .venv-peers)
    bad = {(str(p.relative_to(ROOT)), m) for p in (ROOT / folder).rglob("*.py") for m in _imports(p) if m in banned}
    assert not bad, f"peer libraries imported (they live in .venv-gen-peers, driven as subprocesses): {sorted(bad)}"


def _load(rel):
    spec = importlib.util.spec_from_file_location(pathlib.Path(rel).stem, ROOT / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_experiment_verdicts_follow_the_paired_interval():
    exp = _load("experiments/sgm_hjb.py")
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    mean, lo, hi, verdict = exp.interval(a, a + np.array([0.9, 1.1, 1.0, 0.95, 1.05]))
    assert verdict == "reg higher" and lo > 0 and abs(mean - 1.0) < 1e-12
    assert exp.interval(a, a - 1.0 + 0.01 * np.arange(5))[3] == "reg lower"
    # Differences straddling zero are not a verdict, however large the mean difference of the arms.
    assert exp.interval(a, a + np.array([3.0, -2.0, 2.5, -3.0, 0.5]))[3] == "no significant difference"
    # The half-width uses Student's t with n − 1 degrees of freedom (t₀.₉₇₅,₄ = 2.776).
    d = np.array([0.1, 0.3, 0.2, 0.5, 0.4])
    _, lo, hi, _ = exp.interval(np.zeros(5), d)
    assert np.isclose(hi - lo, 2 * 2.776 * d.std(ddof=1) / np.sqrt(5))


def test_experiment_mixture_score_error_vanishes_for_the_exact_score():
    """The known-truth metric of the gmm4 data set: zero for the exact mixture score, positive for a wrong one."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    from mfgx import generative as g

    exp = _load("experiments/sgm_hjb.py")
    gm = exp.gmm4()
    sde = g.VP()
    d = gm.dim

    def log_pt(x, t):  # the mixture pushed by the VP kernel, written independently of the experiment
        m, s = sde.marginal(t)
        comps = [jax.scipy.stats.multivariate_normal.logpdf(x, m * gm.means[k], m**2 * gm.covs[k] + s**2 * jnp.eye(d))
                 for k in range(gm.means.shape[0])]
        return jax.nn.logsumexp(jnp.stack(comps) + gm.log_weights)

    class Scaled(eqx.Module):  # one compilation serves both scales
        scale: jax.Array

        def score(self, x, t):
            return self.scale * jax.grad(log_pt)(x, t)

    exact, wrong = Scaled(jnp.asarray(1.0)), Scaled(jnp.asarray(0.8))
    x0 = gm.sample(jr.PRNGKey(0), 32)
    assert exp.mixture_score_error(exact, sde, gm, x0, jr.PRNGKey(1)) < 1e-16
    assert exp.mixture_score_error(wrong, sde, gm, x0, jr.PRNGKey(1)) > 1e-3
