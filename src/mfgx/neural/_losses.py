r"""Distances between particle clouds (empirical measures with weights), used as exchangeable
training losses: agents are compared as distributions, never by index.

- `mmd`: squared maximum mean discrepancy with a (sum of) Gaussian kernel(s)
  k(x, y) = Σ_h exp(−|x − y|² / (2h²)).
- `sinkhorn` / `sinkhorn_divergence`: entropic optimal transport with cost |x − y|², solved in the
  log domain; gradients by the envelope theorem (no backprop through the iterations).
- `wasserstein_1d`: the exact squared 2-Wasserstein distance between 1-D empirical measures
  (quantile functions), summed over coordinates for d > 1.

The distance modules `MMD`, `Sinkhorn` and `Wasserstein1D` wrap them for `PathLoss`.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._errors import NeuralError


def _weights(w, n, dtype):
    if w is None:
        return jnp.full((n,), 1.0 / n, dtype)
    w = jnp.asarray(w, dtype)
    return w / jnp.sum(w)


def _check_clouds(x, y, what):
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise NeuralError(f"{what}: clouds must have shapes [n, d] and [m, d] with the same d, got {x.shape} and {y.shape}")


def _sqdist(x, y):
    return jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)


def _bandwidths(bandwidth) -> tuple[float, ...]:
    hs = (bandwidth,) if isinstance(bandwidth, (int, float)) else tuple(bandwidth)
    hs = tuple(float(h) for h in hs)
    if not hs or not all(h > 0 for h in hs):
        raise NeuralError(f"MMD bandwidths must be positive, got {bandwidth!r}")
    return hs


def _gauss(d2, hs):
    return sum(jnp.exp(-0.5 * d2 / h**2) for h in hs)


def _kernel_mean(x, y, wx, wy, hs, chunk):
    """Σ_ij wx_i wy_j k(x_i, y_j), in row blocks of ``chunk`` (rematerialised under autodiff) if given."""
    if chunk is None or x.shape[0] <= chunk:
        return wx @ _gauss(_sqdist(x, y), hs) @ wy

    @jax.checkpoint
    def row(xi):
        return _gauss(jnp.sum((xi[None, :] - y) ** 2, axis=-1), hs) @ wy

    return wx @ jax.lax.map(row, x, batch_size=chunk)


def mmd(
    x: Float[Array, "n d"],
    y: Float[Array, "m d"],
    bandwidth=1.0,
    *,
    x_weights=None,
    y_weights=None,
    unbiased: bool = False,
    chunk: int | None = None,
) -> Float[Array, ""]:
    r"""MMD²(μ, ν) = E k(X, X′) + E k(Y, Y′) − 2 E k(X, Y) between the weighted empirical measures
    μ = Σ aᵢ δ_{xᵢ} and ν = Σ bⱼ δ_{yⱼ} (uniform weights by default; they are normalised).

    ``bandwidth``: h or several (the kernels are summed). ``unbiased=True`` drops the i = i′
    terms (the U-statistic; uniform weights only), an unbiased estimate of the population MMD²
    that can be negative. ``chunk``: evaluate the n×m kernel in blocks of that many rows (memory
    O(chunk·m) under autodiff, for large clouds).
    """
    _check_clouds(x, y, "mmd")
    hs = _bandwidths(bandwidth)
    n, m = x.shape[0], y.shape[0]
    if unbiased:
        if x_weights is not None or y_weights is not None:
            raise NeuralError("mmd: the unbiased estimate needs uniform weights")
        if n < 2 or m < 2:
            raise NeuralError("mmd: the unbiased estimate needs at least 2 points per cloud")
        k = len(hs)
        kxx = (_kernel_mean(x, x, jnp.ones(n, x.dtype), jnp.ones(n, x.dtype), hs, chunk) - n * k) / (n * (n - 1))
        kyy = (_kernel_mean(y, y, jnp.ones(m, y.dtype), jnp.ones(m, y.dtype), hs, chunk) - m * k) / (m * (m - 1))
        kxy = _kernel_mean(x, y, jnp.full(n, 1.0 / n, x.dtype), jnp.full(m, 1.0 / m, x.dtype), hs, chunk)
        return kxx + kyy - 2 * kxy
    a, b = _weights(x_weights, n, x.dtype), _weights(y_weights, m, x.dtype)
    return _kernel_mean(x, x, a, a, hs, chunk) + _kernel_mean(y, y, b, b, hs, chunk) - 2 * _kernel_mean(x, y, a, b, hs, chunk)


def _log(w):
    return jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf)


def sinkhorn_potentials(x, y, epsilon, a, b, n_iter, scaling: float = 0.8):
    r"""The log-domain Sinkhorn potentials (f, g) after ``n_iter`` iterations of
    f = −ε_k log Σⱼ bⱼ e^{(gⱼ − Cᵢⱼ)/ε_k}, g = −ε_k log Σᵢ aᵢ e^{(fᵢ − Cᵢⱼ)/ε_k}, C = |x − y|²,
    with ε-scaling ε_k = max(ε, max C · scaling^k) (annealing from the cloud's diameter, which
    speeds convergence at small ε), and the marginal error ‖π1 − a‖₁ of the final plan."""
    C = _sqdist(x, y)
    la, lb = _log(a), _log(b)
    eps0 = jnp.maximum(jnp.max(C), epsilon)

    def update(g, eps):
        f = -eps * jax.nn.logsumexp(lb[None, :] + (g[None, :] - C) / eps, axis=1)
        g = -eps * jax.nn.logsumexp(la[:, None] + (f[:, None] - C) / eps, axis=0)
        return f, g

    def body(k, g):
        return update(g, jnp.maximum(epsilon, eps0 * scaling**k))[1]

    g = jax.lax.fori_loop(0, n_iter, body, jnp.zeros_like(b))
    f, g = update(g, epsilon)
    log_pi = la[:, None] + lb[None, :] + (f[:, None] + g[None, :] - C) / epsilon
    err = jnp.sum(jnp.abs(jnp.sum(jnp.exp(log_pi), axis=1) - a))
    return f, g, err


def sinkhorn(
    x: Float[Array, "n d"],
    y: Float[Array, "m d"],
    epsilon: float = 0.1,
    *,
    x_weights=None,
    y_weights=None,
    n_iter: int = 100,
) -> Float[Array, ""]:
    r"""Entropic optimal transport OT_ε(μ, ν) = min_π ⟨π, C⟩ + ε KL(π ‖ μ⊗ν), C = |x − y|²,
    between weighted empirical measures, by ``n_iter`` log-domain Sinkhorn iterations with
    ε-scaling (see `sinkhorn_potentials`).

    The value is the dual ⟨a, f⟩ + ⟨b, g⟩ − ε⟨a⊗b, e^{(f⊕g−C)/ε} − 1⟩ at the (stopped-gradient)
    potentials, so gradients follow the envelope theorem (∂OT/∂Cᵢⱼ = πᵢⱼ) at O(nm) memory,
    without backprop through the iterations. OT_ε → W₂² as ε → 0 (ε in squared state units).
    """
    _check_clouds(x, y, "sinkhorn")
    if not isinstance(epsilon, jax.core.Tracer) and not epsilon > 0:
        raise NeuralError(f"sinkhorn: epsilon must be > 0, got {epsilon}")
    a, b = _weights(x_weights, x.shape[0], x.dtype), _weights(y_weights, y.shape[0], x.dtype)
    f, g, _ = sinkhorn_potentials(jax.lax.stop_gradient(x), jax.lax.stop_gradient(y), epsilon, a, b, n_iter)
    f, g = jax.lax.stop_gradient(f), jax.lax.stop_gradient(g)
    C = _sqdist(x, y)
    la, lb = _log(a), _log(b)
    mass = jnp.sum(jnp.exp(la[:, None] + lb[None, :] + (f[:, None] + g[None, :] - C) / epsilon))
    fa = jnp.sum(jnp.where(a > 0, a * f, 0.0))
    gb = jnp.sum(jnp.where(b > 0, b * g, 0.0))
    return fa + gb - epsilon * (mass - 1.0)


def sinkhorn_divergence(x, y, epsilon: float = 0.1, *, x_weights=None, y_weights=None, n_iter: int = 100):
    r"""The debiased Sinkhorn divergence S_ε = OT_ε(μ, ν) − ½OT_ε(μ, μ) − ½OT_ε(ν, ν) ≥ 0,
    zero iff μ = ν (Feydy et al. 2019)."""
    kw = dict(epsilon=epsilon, n_iter=n_iter)
    return (
        sinkhorn(x, y, x_weights=x_weights, y_weights=y_weights, **kw)
        - 0.5 * sinkhorn(x, x, x_weights=x_weights, y_weights=x_weights, **kw)
        - 0.5 * sinkhorn(y, y, x_weights=y_weights, y_weights=y_weights, **kw)
    )


def wasserstein_1d(x: Float[Array, "n d"], y: Float[Array, "m d"], *, x_weights=None, y_weights=None) -> Float[Array, ""]:
    r"""W₂²(μ, ν) = ∫₀¹ |F_μ⁻¹(u) − F_ν⁻¹(u)|² du, exact for weighted 1-D empirical measures
    (the quantile functions are step functions; the integral runs over the union of their
    breakpoints). For d > 1 the sum over coordinates of the marginal W₂² (a lower bound of W₂²)."""
    _check_clouds(x, y, "wasserstein_1d")
    a, b = _weights(x_weights, x.shape[0], x.dtype), _weights(y_weights, y.shape[0], x.dtype)

    def one(xc, yc):
        ix, iy = jnp.argsort(xc), jnp.argsort(yc)
        xs, ys = xc[ix], yc[iy]
        ca, cb = jnp.cumsum(a[ix]), jnp.cumsum(b[iy])
        ca, cb = ca / ca[-1], cb / cb[-1]
        u = jnp.sort(jnp.concatenate([ca, cb]))
        widths = jnp.diff(jnp.concatenate([jnp.zeros((1,), u.dtype), u]))
        mid = u - 0.5 * widths
        qx = xs[jnp.clip(jnp.searchsorted(ca, mid, side="left"), 0, xs.shape[0] - 1)]
        qy = ys[jnp.clip(jnp.searchsorted(cb, mid, side="left"), 0, ys.shape[0] - 1)]
        return jnp.sum(widths * (qx - qy) ** 2)

    return jnp.sum(jax.vmap(one, in_axes=(1, 1))(x, y))


# ---------------------------------------------------------------------------------------------
# distance modules for PathLoss


class AbstractDistance(eqx.Module):
    """A discrepancy D(μ, ν) ≥ 0 between a simulated cloud x[n, d] and an observed one y[m, d]
    (with weights b over y's points)."""

    @abc.abstractmethod
    def __call__(self, x, y, y_weights=None) -> Float[Array, ""]:
        """The discrepancy."""


class MMD(AbstractDistance):
    """`mmd` with Gaussian bandwidth(s) ``bandwidth`` (biased V-statistic, ≥ 0); ``chunk`` rows per
    block for large clouds."""

    bandwidth: tuple[float, ...] = eqx.field(static=True)
    chunk: int | None = eqx.field(static=True, default=None)

    def __init__(self, bandwidth=1.0, chunk: int | None = None):
        self.bandwidth = _bandwidths(bandwidth)
        if chunk is not None and not (isinstance(chunk, int) and chunk >= 1):
            raise NeuralError(f"MMD: chunk must be a positive int or None, got {chunk!r}")
        self.chunk = chunk

    def __call__(self, x, y, y_weights=None):
        return mmd(x, y, self.bandwidth, y_weights=y_weights, chunk=self.chunk)


class Sinkhorn(AbstractDistance):
    """`sinkhorn_divergence` (``debias=True``) or `sinkhorn` with entropic regularisation ε."""

    epsilon: float = eqx.field(static=True)
    n_iter: int = eqx.field(static=True, default=100)
    debias: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if not self.epsilon > 0:
            raise NeuralError(f"Sinkhorn: epsilon must be > 0, got {self.epsilon}")
        if not (isinstance(self.n_iter, int) and self.n_iter >= 1):
            raise NeuralError(f"Sinkhorn: n_iter must be a positive int, got {self.n_iter!r}")

    def __call__(self, x, y, y_weights=None):
        fn = sinkhorn_divergence if self.debias else sinkhorn
        return fn(x, y, self.epsilon, y_weights=y_weights, n_iter=self.n_iter)


class Wasserstein1D(AbstractDistance):
    """`wasserstein_1d`: exact W₂² per coordinate, summed."""

    def __call__(self, x, y, y_weights=None):
        return wasserstein_1d(x, y, y_weights=y_weights)
