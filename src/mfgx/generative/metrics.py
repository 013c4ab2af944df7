r"""Sample-based and closed-form metrics for the generative lab (science note generative_lab.md §7).

Between samples x ~ μ ([n, d]) and y ~ ν ([m, d]):

- `mmd2`: MMD² with k(x, y) = Σ_h exp(−‖x − y‖²/(2h²)) over bandwidths h; unbiased U-statistic
  (1/(n(n−1)))Σ_{i≠j}k(xᵢ,xⱼ) + (1/(m(m−1)))Σ_{i≠j}k(yᵢ,yⱼ) − (2/(nm))Σ_{i,j}k(xᵢ,yⱼ) by default,
  or the biased V-statistic; `mmd2_otflow` is OT-Flow's biased single kernel exp(−‖x − y‖²).
- `energy_distance`: 2E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ (U-statistics within samples).
- `sliced_wasserstein`: SW_p = (E_θ W_pᵖ(θ#μ, θ#ν))^{1/p} over directions θ ~ U(S^{d−1}); the 1-D
  W_pᵖ = ∫₀¹|F⁻¹(u) − G⁻¹(u)|ᵖ du is exact for empirical measures of any sizes.
- `wasserstein`: exact W_p = (min_γ Σ γᵢⱼ‖xᵢ − yⱼ‖ᵖ)^{1/p} by network simplex (POT's `ot.emd2`).

Closed forms: `gaussian_w2` (W₂² = |m₀ − m₁|² + tr(Σ₀ + Σ₁ − 2(Σ₀^{1/2}Σ₁Σ₀^{1/2})^{1/2})),
`gaussian_ot_map` (x ↦ m₁ + A(x − m₀), A = Σ₀^{−1/2}(Σ₀^{1/2}Σ₁Σ₀^{1/2})^{1/2}Σ₀^{−1/2}),
`gaussian_entropy` (½ log det(2πeΣ)). Likelihood: `nll` (−mean log p of a CNF `Flow`, nats) and
`kl_gap` (the entropy floor: mean(log p_true − log p_model) = KL(data ‖ model) ≥ 0, with its
standard error).

The JAX metrics are jitted once per shape and setting; pairwise sums are taken in row blocks, so
memory is O(block · m), not O(n · m).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._errors import GenerativeError

_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def _pair(name, x, y):
    """x, y as float arrays [n, d], [m, d] of a common float dtype; errors name the problem."""
    xs = []
    for label, a in (("x", x), ("y", y)):
        a = jnp.asarray(a)
        if a.ndim != 2:
            raise GenerativeError(f"{name}: {label} must have shape [n, d] (samples by dimension), got shape {a.shape}")
        if a.shape[0] < 2:
            raise GenerativeError(f"{name}: {label} needs at least 2 samples, got {a.shape[0]}")
        xs.append(a)
    if xs[0].shape[1] != xs[1].shape[1]:
        raise GenerativeError(f"{name}: x has dimension {xs[0].shape[1]} but y has dimension {xs[1].shape[1]}")
    dtype = jnp.result_type(xs[0], xs[1], jnp.float32)
    return xs[0].astype(dtype), xs[1].astype(dtype)


def _sqdist(x, y):
    """‖xᵢ − yⱼ‖² [n, m], clipped at 0."""
    d2 = jnp.sum(x**2, 1)[:, None] + jnp.sum(y**2, 1)[None, :] - 2.0 * x @ y.T
    return jnp.maximum(d2, 0.0)


def _block_sum(fn, x, y, block):
    """Σᵢⱼ fn(‖xᵢ − yⱼ‖²) over row blocks of x (padded rows weigh 0)."""
    n = x.shape[0]
    nb = -(-n // block)
    pad = nb * block - n
    xp = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)]).reshape(nb, block, -1)
    wp = jnp.concatenate([jnp.ones(n, x.dtype), jnp.zeros(pad, x.dtype)]).reshape(nb, block)

    def one(args):
        xb, wb = args
        return jnp.sum(wb[:, None] * fn(_sqdist(xb, y)))

    return jnp.sum(jax.lax.map(one, (xp, wp)))


def _rbf(bandwidths):
    def k(d2):
        return sum(jnp.exp(-d2 / (2.0 * h**2)) for h in bandwidths)

    return k


@functools.partial(jax.jit, static_argnames=("bandwidths", "unbiased", "block"))
def _mmd2(x, y, bandwidths, unbiased, block):
    k = _rbf(bandwidths)
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = _block_sum(k, x, x, block), _block_sum(k, y, y, block), _block_sum(k, x, y, block)
    if unbiased:  # k(x, x) = number of bandwidths
        nb = len(bandwidths)
        return (kxx - n * nb) / (n * (n - 1)) + (kyy - m * nb) / (m * (m - 1)) - 2.0 * kxy / (n * m)
    return kxx / n**2 + kyy / m**2 - 2.0 * kxy / (n * m)


def _bandwidths(bandwidths):
    try:
        bw = tuple(float(h) for h in np.atleast_1d(np.asarray(bandwidths, dtype=float)))
    except (TypeError, ValueError) as e:
        raise GenerativeError(f"mmd2: bandwidths must be positive numbers, got {bandwidths!r}") from e
    if not bw or not all(math.isfinite(h) and h > 0 for h in bw):
        raise GenerativeError(f"mmd2: bandwidths must be positive numbers, got {bandwidths!r}")
    return bw


def mmd2(
    x: Float[Array, "n d"],
    y: Float[Array, "m d"],
    *,
    bandwidths=_BANDWIDTHS,
    unbiased: bool = True,
    block: int = 1024,
) -> Array:
    r"""MMD²(μ, ν) with the Gaussian kernel mixture Σ_h exp(−‖x − y‖²/(2h²)) over ``bandwidths``
    (default 0.1 … 5); the unbiased U-statistic (can be slightly negative) or, with
    ``unbiased=False``, the biased V-statistic (≥ 0)."""
    x, y = _pair("mmd2", x, y)
    return _mmd2(x, y, _bandwidths(bandwidths), bool(unbiased), int(block))


def mmd2_otflow(x: Float[Array, "n d"], y: Float[Array, "m d"], *, block: int = 1024) -> Array:
    """OT-Flow's MMD²: biased, single kernel exp(−‖x − y‖²) (bandwidth h = 1/√2)."""
    x, y = _pair("mmd2_otflow", x, y)
    return _mmd2(x, y, (math.sqrt(0.5),), False, int(block))


def _safe_norm(d2):
    pos = d2 > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, d2, 1.0)), 0.0)


@functools.partial(jax.jit, static_argnames=("block",))
def _energy(x, y, block):
    n, m = x.shape[0], y.shape[0]
    exy = _block_sum(_safe_norm, x, y, block) / (n * m)
    exx = _block_sum(_safe_norm, x, x, block) / (n * (n - 1))
    eyy = _block_sum(_safe_norm, y, y, block) / (m * (m - 1))
    return 2.0 * exy - exx - eyy


def energy_distance(x: Float[Array, "n d"], y: Float[Array, "m d"], *, block: int = 1024) -> Array:
    """Energy distance 2E‖X − Y‖ − E‖X − X′‖ − E‖Y − Y′‖ (zero iff μ = ν; U-statistics within
    samples, so unbiased)."""
    x, y = _pair("energy_distance", x, y)
    return _energy(x, y, int(block))


def _wp1d(a, b, p):
    """W_pᵖ between the empirical measures of 1-D samples a [n], b [m], exactly: the quantile
    functions are step functions, compared on the merged grid of their jumps."""
    n, m = a.shape[0], b.shape[0]
    a, b = jnp.sort(a), jnp.sort(b)
    u = jnp.sort(jnp.concatenate([jnp.arange(1, n + 1) / n, jnp.arange(1, m + 1) / m]))
    w = jnp.diff(jnp.concatenate([jnp.zeros(1, u.dtype), u]))
    mid = (u - 0.5 * w).astype(a.dtype)
    ia = jnp.clip(jnp.floor(mid * n).astype(int), 0, n - 1)
    ib = jnp.clip(jnp.floor(mid * m).astype(int), 0, m - 1)
    return jnp.sum(w * jnp.abs(a[ia] - b[ib]) ** p)


@functools.partial(jax.jit, static_argnames=("n_projections", "p"))
def _sliced(x, y, key, n_projections, p):
    theta = jr.normal(key, (n_projections, x.shape[1]), x.dtype)
    theta = theta / jnp.linalg.norm(theta, axis=1, keepdims=True)
    wpp = jax.vmap(lambda th: _wp1d(x @ th, y @ th, p))(theta)
    return jnp.mean(wpp) ** (1.0 / p)


def sliced_wasserstein(
    x: Float[Array, "n d"], y: Float[Array, "m d"], *, key: PRNGKeyArray, n_projections: int = 256, p: float = 2.0
) -> Array:
    r"""Sliced Wasserstein SW_p = (mean over ``n_projections`` random directions θ of
    W_pᵖ(θ·x, θ·y))^{1/p}; the 1-D distances are exact for any sample sizes."""
    x, y = _pair("sliced_wasserstein", x, y)
    if isinstance(n_projections, bool) or not isinstance(n_projections, (int, np.integer)) or n_projections < 1:
        raise GenerativeError(f"sliced_wasserstein: n_projections must be an int >= 1, got {n_projections!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (math.isfinite(p) and p >= 1):
        raise GenerativeError(f"sliced_wasserstein: p must be a number >= 1, got {p!r}")
    return _sliced(x, y, key, int(n_projections), float(p))


def wasserstein(
    x: Float[Array, "n d"], y: Float[Array, "m d"], *, p: float = 2.0, max_samples: int = 5000
) -> float:
    r"""Exact W_p between the empirical measures of ``x`` and ``y`` (uniform weights): the discrete
    optimal transport cost with ground cost ‖xᵢ − yⱼ‖ᵖ, solved by POT's network simplex
    (``ot.emd2``), to the power 1/p. O(n m) memory and about O(n³) time: at most ``max_samples``
    rows each."""
    try:
        import ot
    except ImportError as e:  # pragma: no cover
        raise GenerativeError("wasserstein needs the POT package (pip install pot)") from e
    x, y = _pair("wasserstein", x, y)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (math.isfinite(p) and p >= 1):
        raise GenerativeError(f"wasserstein: p must be a number >= 1, got {p!r}")
    if max(x.shape[0], y.shape[0]) > max_samples:
        raise GenerativeError(
            f"wasserstein: {x.shape[0]} and {y.shape[0]} samples exceed max_samples={max_samples} "
            "(exact OT is O(n^3)); subsample, raise max_samples or use sliced_wasserstein"
        )
    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
    M = ot.dist(xn, yn, metric="euclidean") ** p if p != 2 else ot.dist(xn, yn, metric="sqeuclidean")
    a = np.full(xn.shape[0], 1.0 / xn.shape[0])
    b = np.full(yn.shape[0], 1.0 / yn.shape[0])
    cost = float(ot.emd2(a, b, M, numItermax=10_000_000))
    return max(cost, 0.0) ** (1.0 / p)


# ---------------------------------------------------------------- closed forms


def _spd(name, S, d=None):
    S = np.asarray(S, dtype=float)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or (d is not None and S.shape[0] != d):
        raise GenerativeError(f"{name} must be a square [d, d] covariance{'' if d is None else f' with d = {d}'}, got shape {S.shape}")
    if not np.allclose(S, S.T, atol=1e-10 * max(1.0, np.abs(S).max())):
        raise GenerativeError(f"{name} must be symmetric")
    w = np.linalg.eigvalsh(S)
    if w.min() <= 0:
        raise GenerativeError(f"{name} must be positive definite (smallest eigenvalue {w.min():.3g})")
    return 0.5 * (S + S.T)


def _sqrtm(S):
    w, V = np.linalg.eigh(S)
    return (V * np.sqrt(np.maximum(w, 0.0))) @ V.T


def _gaussians(m0, cov0, m1, cov1):
    m0, m1 = np.atleast_1d(np.asarray(m0, float)), np.atleast_1d(np.asarray(m1, float))
    if m0.ndim != 1 or m0.shape != m1.shape:
        raise GenerativeError(f"the means must be vectors of one length, got shapes {m0.shape} and {m1.shape}")
    d = m0.shape[0]
    return m0, _spd("cov0", cov0, d), m1, _spd("cov1", cov1, d)


def gaussian_w2(m0, cov0, m1, cov1) -> float:
    r"""W₂²(N(m₀, Σ₀), N(m₁, Σ₁)) = |m₀ − m₁|² + tr(Σ₀ + Σ₁ − 2(Σ₀^{1/2}Σ₁Σ₀^{1/2})^{1/2}) (squared!)."""
    m0, S0, m1, S1 = _gaussians(m0, cov0, m1, cov1)
    r0 = _sqrtm(S0)
    cross = _sqrtm(r0 @ S1 @ r0)
    return float(np.sum((m0 - m1) ** 2) + np.trace(S0 + S1 - 2.0 * cross))


def gaussian_ot_map(m0, cov0, m1, cov1) -> tuple[np.ndarray, np.ndarray]:
    r"""(A, b) of the optimal (Brenier) map x ↦ Ax + b from N(m₀, Σ₀) to N(m₁, Σ₁):
    A = Σ₀^{−1/2}(Σ₀^{1/2}Σ₁Σ₀^{1/2})^{1/2}Σ₀^{−1/2} (symmetric positive definite), b = m₁ − Am₀."""
    m0, S0, m1, S1 = _gaussians(m0, cov0, m1, cov1)
    r0 = _sqrtm(S0)
    ir0 = np.linalg.inv(r0)
    A = ir0 @ _sqrtm(r0 @ S1 @ r0) @ ir0
    A = 0.5 * (A + A.T)
    return A, m1 - A @ m0


def gaussian_entropy(cov) -> float:
    """Differential entropy of N(m, Σ) in nats: ½ log det(2πeΣ)."""
    S = _spd("cov", np.atleast_2d(np.asarray(cov, float)))
    return float(0.5 * np.linalg.slogdet(2 * np.pi * np.e * S)[1])


# ---------------------------------------------------------------- likelihood


def nll(flow, x: Float[Array, "n d"], *, n_steps: int | None = None) -> float:
    """Mean negative log-likelihood −(1/n)Σ log p(xᵢ) of a CNF `Flow` in nats (exact trace)."""
    from ._problems import log_density

    return float(-jnp.mean(log_density(flow, x, n_steps=n_steps)))


def kl_gap(log_p_true, log_p_model) -> tuple[float, float]:
    r"""The entropy floor's gap on samples xᵢ ~ p: (mean(log p(xᵢ) − log q(xᵢ)), its standard error).
    Its expectation is KL(p ‖ q) ≥ 0, the excess of the model's NLL over the entropy H(p)."""
    a, b = np.asarray(log_p_true, float), np.asarray(log_p_model, float)
    if a.ndim != 1 or a.shape != b.shape or a.size < 2:
        raise GenerativeError(f"kl_gap: expected two vectors of one length >= 2, got shapes {a.shape} and {b.shape}")
    diff = a - b
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(diff.size))


__all__ = [
    "energy_distance",
    "gaussian_entropy",
    "gaussian_ot_map",
    "gaussian_w2",
    "kl_gap",
    "mmd2",
    "mmd2_otflow",
    "nll",
    "sliced_wasserstein",
    "wasserstein",
]
