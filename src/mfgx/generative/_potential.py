r"""`Potential`: the OT-Flow potential (Onken, Wu Fung, Li & Ruthotto, AAAI 2021) with its
gradient and the exact Laplacian in x in closed form (science note generative_lab.md §5.1–5.2).

With s = (x, t) ∈ ℝ^{d+1},

    Φ(s) = wᵀ N(s) + ½ sᵀ(AᵀA)s + bᵀs + c,          A ∈ ℝ^{r×(d+1)},

and N a ResNet of depth M ≥ 2 and width m with step h = 1/(M−1):

    a₀ = K₀s + b₀,  u₀ = σ(a₀);   aᵢ = Kᵢu_{i−1} + bᵢ,  uᵢ = u_{i−1} + h σ(aᵢ),  i = 1..M−1;   N(s) = u_{M−1},

σ(z) = log(eᶻ + e⁻ᶻ), σ′ = tanh, σ″ = 1 − tanh². Backward (reverse-mode by hand):

    z_M = w,   zᵢ = z_{i+1} + h Kᵢᵀ(σ′(aᵢ) ⊙ z_{i+1}),   z₀ = K₀ᵀ(σ′(a₀) ⊙ z₁),   ∇_sΦ = z₀ + AᵀA s + b.

Exact trace of the x-block of the Hessian (forward recursion, O(m²d) per sample): with
E = K₀[:, :d] and J₀ = diag(σ′(a₀))E = ∂u₀/∂x,

    tr ∇ₓ²Φ = Σⱼ σ″(a₀)ⱼ z₁ⱼ Σₖ Eⱼₖ²  +  h Σᵢ Σⱼ σ″(aᵢ)ⱼ z_{i+1,j} Σₖ (KᵢJ_{i−1})ⱼₖ²  +  tr (AᵀA)ₓₓ,
    Jᵢ = J_{i−1} + h diag(σ′(aᵢ)) Kᵢ J_{i−1}.

No autodiff Hessian is formed; `hutchinson_laplacian` gives the unbiased one-probe estimate
εᵀ∇ₓ²Φ ε (a forward-mode product through the closed-form gradient) for comparison.
"""

from __future__ import annotations

import functools
import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray, Scalar

from ._errors import GenerativeError


def logcosh(z):
    """σ(z) = log(eᶻ + e⁻ᶻ) = |z| + log(1 + e^{−2|z|}), evaluated stably."""
    a = jnp.abs(z)
    return a + jnp.log1p(jnp.exp(-2.0 * a))


def _int(name, v, lo):
    if isinstance(v, bool) or not (isinstance(v, int) and v >= lo):
        raise GenerativeError(f"Potential: {name} must be an int >= {lo}, got {v!r}")
    return v


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _init(key, d, m, M, r, dtype):
    """OT-Flow's initialisation, compiled once per shape, from one uniform draw (random-bit
    generation dominates compile time, so it is done once)."""
    shapes = [(m, d + 1), (m,), (M - 1, m, m), (M - 1, m), (r, d + 1)]
    bounds = [1 / math.sqrt(d + 1), 1 / math.sqrt(d + 1), 1 / math.sqrt(m), 1 / math.sqrt(m), math.sqrt(6 / (r + d + 1))]
    sizes = [math.prod(sh) for sh in shapes]
    u = jr.uniform(key, (sum(sizes),), dtype, -1.0, 1.0)
    parts = jnp.split(u, list(itertools.accumulate(sizes))[:-1])
    K0, b0, K, bK, A = (bound * p.reshape(sh) for p, sh, bound in zip(parts, shapes, bounds))
    return K0, b0, K, bK, jnp.ones((m,), dtype), A, jnp.zeros((d + 1,), dtype), jnp.zeros((), dtype)


class Potential(eqx.Module):
    r"""Φ(x, t) = wᵀN(x, t) + ½ sᵀ(AᵀA)s + bᵀs + c (see the module docstring).

    ``Potential(dim, width=32, depth=2, rank=None, *, key, dtype=None)``: ``dim`` = d, ``width`` =
    m, ``depth`` = M ≥ 2 ResNet layers, ``rank`` = r (default min(10, d+1)). OT-Flow's
    initialisation: K, b PyTorch-uniform ±1/√fan_in, w = 1, A Xavier-uniform, b = 0, c = 0.
    ``dtype`` defaults to JAX's default float (float64 under mfgx's default x64 mode).

    Methods act on one sample (x of shape [d], t a scalar); `jax.vmap` them over samples.
    """

    K0: Float[Array, "m d1"]
    b0: Float[Array, " m"]
    K: Float[Array, "M1 m m"]
    bK: Float[Array, "M1 m"]
    w: Float[Array, " m"]
    A: Float[Array, "r d1"]
    b: Float[Array, " d1"]
    c: Float[Array, ""]
    dim: int = eqx.field(static=True)

    def __init__(self, dim: int, width: int = 32, depth: int = 2, rank: int | None = None, *, key: PRNGKeyArray, dtype=None):
        d = _int("dim", dim, 1)
        m = _int("width", width, 1)
        M = _int("depth", depth, 2)
        r = min(10, d + 1) if rank is None else _int("rank", rank, 1)
        if r > d + 1:
            raise GenerativeError(f"Potential: rank must be <= dim + 1 = {d + 1}, got {r}")
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64 if dtype is None else dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise GenerativeError(f"Potential: dtype must be a floating type, got {dtype}")
        (self.K0, self.b0, self.K, self.bK, self.w, self.A, self.b, self.c) = _init(key, d, m, M, r, dtype)
        self.dim = d

    @property
    def width(self) -> int:
        return self.K0.shape[0]

    @property
    def depth(self) -> int:
        return self.K.shape[0] + 1

    @property
    def rank(self) -> int:
        return self.A.shape[0]

    @property
    def h(self) -> float:
        return 1.0 / (self.depth - 1)

    def _s(self, x, t):
        x = jnp.asarray(x)
        if x.shape != (self.dim,):
            raise GenerativeError(f"Potential: x must have shape ({self.dim},) (one sample; vmap over samples), got {x.shape}")
        if jnp.shape(t) != ():
            raise GenerativeError(f"Potential: t must be a scalar, got shape {jnp.shape(t)}")
        dtype = jnp.result_type(x, self.K0)
        return jnp.concatenate([x.astype(dtype), jnp.reshape(t, (1,)).astype(dtype)])

    def _resnet(self, s):
        """(a₀, [aᵢ for i = 1..M−1], u_{M−1}); the (few) layers are unrolled."""
        a0 = self.K0 @ s + self.b0
        u, a = logcosh(a0), []
        for i in range(self.depth - 1):
            a.append(self.K[i] @ u + self.bK[i])
            u = u + self.h * logcosh(a[-1])
        return a0, a, u

    def _backward(self, s, a0, a):
        """(∇_sΦ, [z_{i+1} for layers i = 1..M−1], z₁)."""
        z, zterm = self.w, [None] * len(a)
        for i in reversed(range(len(a))):
            zterm[i] = z
            z = z + self.h * (self.K[i].T @ (jnp.tanh(a[i]) * z))
        grad = self.K0.T @ (jnp.tanh(a0) * z) + self.A.T @ (self.A @ s) + self.b
        return grad, zterm, z

    def __call__(self, x: Float[Array, " d"], t: Scalar | float) -> Scalar:
        """Φ(x, t)."""
        s = self._s(x, t)
        _, _, u = self._resnet(s)
        As = self.A @ s
        return self.w @ u + 0.5 * As @ As + self.b @ s + self.c

    def gradient(self, x: Float[Array, " d"], t: Scalar | float) -> Float[Array, " d1"]:
        """∇_sΦ = (∇ₓΦ, ∂ₜΦ), shape [d + 1], in closed form."""
        s = self._s(x, t)
        a0, a, _ = self._resnet(s)
        return self._backward(s, a0, a)[0]

    def gradient_and_laplacian(self, x: Float[Array, " d"], t: Scalar | float) -> tuple[Float[Array, " d1"], Scalar]:
        """(∇_sΦ [d + 1], Δₓ Φ = tr ∇ₓ²Φ) by the exact forward recursion (module docstring)."""
        s = self._s(x, t)
        a0, a, _ = self._resnet(s)
        grad, zterm, z1 = self._backward(s, a0, a)
        d, h = self.dim, self.h
        E = self.K0[:, :d]
        th0 = jnp.tanh(a0)
        tr0 = jnp.sum((1 - th0**2) * z1 * jnp.sum(E**2, axis=1))
        J, tr = th0[:, None] * E, tr0
        for i in range(len(a)):
            KJ = self.K[i] @ J
            th = jnp.tanh(a[i])
            tr = tr + h * jnp.sum((1 - th**2) * zterm[i] * jnp.sum(KJ**2, axis=1))
            J = J + h * th[:, None] * KJ
        return grad, tr + jnp.sum(self.A[:, :d] ** 2)

    def hutchinson_laplacian(
        self, x: Float[Array, " d"], t: Scalar | float, probe: Float[Array, " d"]
    ) -> tuple[Float[Array, " d1"], Scalar]:
        """(∇_sΦ, εᵀ∇ₓ²Φ ε) for a probe ε (Rademacher or N(0, I): unbiased for Δₓ Φ), by one
        forward-mode product through the closed-form gradient."""
        probe = jnp.asarray(probe)
        if probe.shape != (self.dim,):
            raise GenerativeError(f"Potential: the probe must have shape ({self.dim},), got {probe.shape}")
        d = self.dim

        def gx(y):
            return self.gradient(y, t)

        grad, hv = jax.jvp(gx, (x,), (probe.astype(jnp.result_type(x, self.K0)),))
        return grad, probe @ hv[:d]
