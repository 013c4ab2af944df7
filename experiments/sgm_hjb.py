"""Plain SGM vs HJB-regularised SGM (issue 15; science note generative_lab.md §3, §8.3).

Both arms: VP SDE (β ∈ [0.1, 20]), direct `ScoreNet`, DSM with λ(t) = σ_t², Adam, the same steps,
batch, seeds and data (equal step budget; wall time and steady-state step time reported). The
regularised arms add λ_HJB E[|R_θ|²] (the score-form residual of the log-density equation) for
λ_HJB on a small grid. Data sets:

- 2-D toys (``8gaussians``, ``moons``, ``checkerboard``), standardised with the training mean/std;
  ScoreNet(64, 2), 1000 steps of batch 256, exact divergence.
- ``gmm4``: a 5-component Gaussian mixture in d = 4 with known density (fixed by `GMM_SEED`), not
  standardised, so the exact KL(data ‖ model) = E[log p − log q] is estimated on the same test
  points (``kl``) and the exact score of every p_t is known (``score_err`` = E_t σ_t² |s_θ − ∇log p_t|²
  at forward samples of test data); ScoreNet(64, 2), 1000 steps, exact divergence.
- ``digits``: scikit-learn's bundled 8×8 digits (d = 64), dequantised ((pixel + U[0,1))/17),
  standardised; 1500 train / 297 test rows; ScoreNet(256, 2), 1000 steps of batch 128, Hutchinson
  divergence in training and in the NLL (one Rademacher probe per test row, the same for all arms);
  the HJB residual of the evaluation is exact.

Metrics on held-out data: NLL (PF-ODE, Dopri5 rtol = atol = 1e-5, nats per sample), MMD² (unbiased,
RBF mixture) and sliced W₂ between PF-ODE samples and test data, the HJB residual E|R|² and the DSM
loss at forward samples of the test data (fixed key). Differences reg − plain are paired by
(data set, seed); intervals are 95 % Student-t over seeds; "better"/"worse" only when the interval
excludes zero (lower is better for every metric).

Each run writes one JSON file and is skipped when it exists (a killed sweep resumes where it
stopped); a file records its settings, and a run whose settings differ is refused.

    nice -n 10 python experiments/sgm_hjb.py --data 8gaussians moons --seeds 0 1 2 3 4 --lambdas 0 0.01 0.1 1
    python experiments/sgm_hjb.py --table      # aggregate experiments/results/sgm_hjb/*.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

import mfgx  # noqa: F401
from mfgx import generative as g
from mfgx.generative import datasets, metrics

OUT = Path(__file__).parent / "results" / "sgm_hjb"
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
TOYS = ("8gaussians", "moons", "checkerboard", "swissroll", "circles", "pinwheel", "2spirals", "rings")
GMM_SEED = 2024

# Per data set: network, budget and divergence. The toy settings are those of the first (λ = 0.1) run.
SETTINGS = {
    "toy": dict(width=64, depth=2, steps=1000, batch=256, lr=2e-3, divergence="exact", n_test=256, n_samples=1000),
    "gmm4": dict(width=64, depth=2, steps=1000, batch=256, lr=2e-3, divergence="exact", n_test=256, n_samples=1000),
    "digits": dict(width=256, depth=2, steps=1000, batch=128, lr=1e-3, divergence="hutchinson", n_test=297, n_samples=297),
}


def settings_for(name):
    return SETTINGS["toy"] if name in TOYS else SETTINGS[name]


def gmm4() -> datasets.GaussianMixture:
    """The known mixture: 5 components in d = 4, means ~ N(0, 1.5² I), covariances A Aᵀ/4 + 0.05 I."""
    rng = np.random.default_rng(GMM_SEED)
    k, d = 5, 4
    means = 1.5 * rng.standard_normal((k, d))
    A = rng.standard_normal((k, d, d))
    covs = A @ np.swapaxes(A, 1, 2) / 4 + 0.05 * np.eye(d)
    return datasets.GaussianMixture(means, covs, rng.dirichlet(3.0 * np.ones(k)))


def digits(seed):
    """(train [1500, 64], test [297, 64]): dequantised, standardised digits, split by ``seed``."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn (mfgx's [data] extra)

    X = load_digits().data.astype(np.float64)
    rng = np.random.default_rng(seed)
    X = (X + rng.uniform(size=X.shape)) / 17.0
    perm = rng.permutation(X.shape[0])
    train, test = X[perm[:1500]], X[perm[1500:]]
    mean, std = train.mean(0), train.std(0)
    return jnp.asarray((train - mean) / std), jnp.asarray((test - mean) / std)


def load(name, seed, n_train=20000):
    """(train, test, log_p_true or None) for a data set and seed."""
    s = settings_for(name)
    kd, kt = jr.split(jr.PRNGKey(1000 * seed + 7))[:2]
    if name in TOYS:
        key = jr.PRNGKey(1000 * seed + 7)
        kd, kt, *_ = jr.split(key, 6)
        raw = datasets.toy(name, kd, n_train)
        mean, std = raw.mean(0), raw.std(0)
        test = (datasets.toy(name, kt, max(s["n_test"], s["n_samples"])) - mean) / std
        return (raw - mean) / std, test, None
    if name == "gmm4":
        gm = gmm4()
        return gm.sample(kd, n_train), gm.sample(kt, max(s["n_test"], s["n_samples"])), gm
    if name == "digits":
        tr, te = digits(seed)
        return tr, te, None
    raise SystemExit(f"unknown data set {name!r}: choose from {TOYS + ('gmm4', 'digits')}")


def mixture_score_error(model, sde, gm, x0, key, eps=1e-5):
    """E_t σ_t² |s_θ(x_t, t) − ∇log p_t(x_t)|², p_t the mixture pushed by the VP kernel (exact)."""
    return float(_mixture_score_error(model, sde, gm, x0, key, eps))


@eqx.filter_jit
def _mixture_score_error(model, sde, gm, x0, key, eps):
    n, d = x0.shape
    kt, kz = jr.split(key)
    t = jr.uniform(kt, (n,), x0.dtype, eps, 1.0)
    z = jr.normal(kz, (n, d), x0.dtype)
    xt = sde.perturb(x0, t[:, None], z)
    mu, covs, lw = gm.means, gm.covs, gm.log_weights

    def log_pt(x, tt):
        m, s = sde.marginal(tt)
        C = m**2 * covs + s**2 * jnp.eye(d)
        L = jnp.linalg.cholesky(C)
        r = jax.vmap(lambda Lk, mk: jax.scipy.linalg.solve_triangular(Lk, x - m * mk, lower=True))(L, mu)
        logdet = jnp.sum(jnp.log(jnp.diagonal(L, axis1=1, axis2=2)), 1)
        return jax.nn.logsumexp(lw - 0.5 * jnp.sum(r**2, 1) - logdet)

    true = jax.vmap(jax.grad(log_pt))(xt, t)
    est = jax.vmap(model.score)(xt, t)
    sigma = sde.marginal(t)[1]
    return jnp.mean(sigma**2 * jnp.sum((est - true) ** 2, -1))


def run(name, seed, lam):
    s = settings_for(name)
    key = jr.PRNGKey(1000 * seed + 7)
    _, _, kf, ks, ke, kw = jr.split(key, 6)
    train, test, truth = load(name, seed)
    sde = g.VP()
    problem = g.SGM(sde, lambda_hjb=lam, divergence=s["divergence"])
    t0 = time.perf_counter()
    fit = g.fit_sgm(problem, train, key=kf, model="direct", width=s["width"], depth=s["depth"], steps=s["steps"],
                    batch_size=s["batch"], learning_rate=s["lr"], progress=False)
    wall = time.perf_counter() - t0
    step_s = float(np.median([r["seconds"] for r in fit.history[1:]]))
    model = fit.model
    xt = test[: s["n_test"]]
    ev = g.evaluate_sgm(model, g.SGM(sde), xt, key=ke)
    if s["divergence"] == "exact":
        logq = g.log_likelihood(model, sde, xt)
    else:
        logq = g.log_likelihood(model, sde, xt, divergence="hutchinson", key=jr.fold_in(ke, 1))
    xs = g.sample_ode(model, sde, ks, s["n_samples"])
    out = {
        "data": name, "seed": seed, "lambda_hjb": lam, "settings": s, "wall_s": wall, "step_s_median": step_s,
        "nll": -float(jnp.mean(logq)), "mmd2": float(metrics.mmd2(xs, test[: s["n_samples"]])),
        "sw2": float(metrics.sliced_wasserstein(xs, test[: s["n_samples"]], key=kw)),
        "hjb": ev["hjb"], "dsm": ev["dsm"],
    }
    if truth is not None:
        out["kl"] = float(jnp.mean(truth.log_prob(xt) - logq))
        out["score_err"] = mixture_score_error(model, sde, truth, xt, jr.fold_in(ke, 2))
    return out


def path(name, seed, lam):
    return OUT / f"{name}_s{seed}_l{float(lam)}_n{settings_for(name)['steps']}.json"


def read(f):
    r = json.loads(f.read_text())
    r.setdefault("data", r.get("toy"))
    return r


METRICS = ["nll", "kl", "score_err", "mmd2", "sw2", "hjb", "dsm", "wall_s", "step_s_median"]


def interval(a, b):
    d = b - a
    half = T975.get(len(d) - 1, 1.96) * d.std(ddof=1) / math.sqrt(len(d))
    lo, hi = d.mean() - half, d.mean() + half
    verdict = "no significant difference" if lo <= 0 <= hi else ("reg lower" if hi < 0 else "reg higher")
    return d.mean(), lo, hi, verdict


def table(rows):
    names = [n for n in list(TOYS) + ["gmm4", "digits"] if any(r["data"] == n for r in rows)]
    lines = [
        "# Plain SGM vs HJB-regularised SGM",
        "",
        "Generated by `experiments/sgm_hjb.py` (settings in its docstring). VP SDE, direct ScoreNet, DSM λ(t) = σ_t², "
        "equal steps per data set (budget below). Cells: mean over seeds; Δ = reg − plain paired by seed with a 95 % "
        "Student-t interval; \"reg lower/higher\" only when the interval excludes zero. Lower is better for every metric "
        "(``kl``: exact-density KL(data ‖ model) estimate on the test points, gmm4 only; ``score_err``: σ²-weighted "
        "error against the exact score, gmm4 only). Several λ and metrics are compared without a multiplicity "
        "correction: read single marginal verdicts with care. wall_s includes compilation; step_s_median is the "
        "steady-state step time; both were measured on a 2-core machine shared with other jobs (noisy).",
        "",
        "| data | d | steps × batch | network | divergence (train) | seeds | λ_HJB |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in names:
        rs = [r for r in rows if r["data"] == n]
        s = settings_for(n)
        d = 2 if n in TOYS else (4 if n == "gmm4" else 64)
        lines.append(f"| {n} | {d} | {s['steps']} × {s['batch']} | ScoreNet({s['width']}, {s['depth']}) | {s['divergence']} | "
                     f"{len({r['seed'] for r in rs})} | {', '.join(str(l) for l in sorted({r['lambda_hjb'] for r in rs}))} |")
    lines.append("")
    summary = []
    for n in names:
        rs = [r for r in rows if r["data"] == n]
        lams = sorted({r["lambda_hjb"] for r in rs if r["lambda_hjb"] > 0})
        base = {r["seed"]: r for r in rs if r["lambda_hjb"] == 0}
        lines += [f"## {n}", "", "| λ_HJB | seeds | metric | plain | reg | Δ (95 % CI) | verdict |", "|---|---|---|---|---|---|---|"]
        for lam in lams:
            reg = {r["seed"]: r for r in rs if r["lambda_hjb"] == lam}
            seeds = sorted(set(base) & set(reg))
            if len(seeds) < 2:
                continue
            for m in METRICS:
                if m not in base[seeds[0]]:
                    continue
                a = np.array([base[k][m] for k in seeds])
                b = np.array([reg[k][m] for k in seeds])
                mean, lo, hi, verdict = interval(a, b)
                lines.append(f"| {lam} | {len(seeds)} | {m} | {a.mean():.4g} | {b.mean():.4g} | {mean:+.3g} [{lo:+.3g}, {hi:+.3g}] | {verdict} |")
                if m in ("nll", "mmd2", "sw2", "kl", "hjb"):
                    summary.append((n, lam, m, verdict))
        lines.append("")
    lines += ["## Verdict by data set and λ_HJB (NLL, MMD², sliced W₂, KL, HJB residual)", "",
              "| data | λ_HJB | nll | kl | mmd2 | sw2 | hjb |", "|---|---|---|---|---|---|---|"]
    keys = sorted({(n, lam) for n, lam, _, _ in summary}, key=lambda k: (names.index(k[0]), k[1]))
    for n, lam in keys:
        v = {m: vv for nn, ll, m, vv in summary if (nn, ll) == (n, lam)}
        short = {"no significant difference": "n.s.", "reg lower": "lower", "reg higher": "higher"}
        lines.append(f"| {n} | {lam} | " + " | ".join(short.get(v.get(m, ""), "–") for m in ("nll", "kl", "mmd2", "sw2", "hjb")) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", nargs="+", default=["8gaussians", "moons"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--lambdas", nargs="+", type=float, default=[0.0, 0.01, 0.1, 1.0])
    p.add_argument("--table", action="store_true")
    a = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if not a.table:
        for name in a.data:
            for seed in a.seeds:
                for lam in a.lambdas:
                    f = path(name, seed, lam)
                    if f.exists():
                        old = read(f)
                        if old.get("settings", settings_for(name)) != settings_for(name):
                            raise SystemExit(f"{f}: written with other settings {old['settings']}; move it away to rerun")
                        continue
                    r = run(name, seed, lam)
                    f.write_text(json.dumps(r, indent=1))
                    print(json.dumps({k: v for k, v in r.items() if k != "settings"}), flush=True)
    rows = [read(f) for f in sorted(OUT.glob("*.json"))]
    md = table(rows)
    (OUT.parent / "sgm_hjb.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
