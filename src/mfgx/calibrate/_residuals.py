r"""Residuals of a finite-dimensional path, their Jacobians, and a Levenberg–Marquardt polish.

For trajectory k with mask M_k the residuals are

    r_k(q, a_k) = M_k ⊙ (μ̂_k(q, a_k) − y_k) / w_k,

q the path's constrained values (e.g. a `Constant`'s vector). Two options shape them:

- ``initial="fixed"``: μ₀ is read from the first observation (`CalibrationModel.initial`) and the
  first row carries no residual; ``initial="nuisance"``: each trajectory's μ₀ = softmax(0, a_k) is a
  free nuisance parameter a_k ∈ ℝ^{S−1}, fitted with q, and the first row is a residual like the
  others. The second is the right model when y₀ is itself a noisy observation (the paper's protocol):
  an error in y₀ moves the whole predicted trajectory, which the fixed-μ₀ model blames on q.
- ``noise_model="gaussian"``: w ≡ 1; ``"dirichlet"``: w = sqrt(max(μ̂, 1e-6)) (held fixed in the
  derivative), the Pearson weighting of compositional noise y_n ~ Dirichlet(κ μ̄_n), whose covariance
  (diag μ̄ − μ̄μ̄ᵀ)/(κ + 1) makes Σ_x r_x²/μ̄_x the Mahalanobis distance of a row (its residuals sum
  to zero). Then σ̂² = ‖r‖²/ν estimates 1/(κ + 1).

ν, the residual degrees of freedom: the observed entries of the fitted rows, minus one per fully
observed row (the residuals of a row summing to one sum to zero), minus dim q, minus K(S − 1)
nuisance parameters.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..finite import solve
from ._errors import CalibrationError
from ._metrics import _as_model
from ._model import CalibrationModel, check_compatible, covariates_of

INITIAL = ("nuisance", "fixed")
NOISE_MODELS = ("gaussian", "dirichlet")
_WEIGHT_FLOOR = 1e-6


def check_options(initial: str, noise_model: str) -> None:
    if initial not in INITIAL:
        raise CalibrationError(f"initial must be one of {INITIAL}, got {initial!r}")
    if noise_model not in NOISE_MODELS:
        raise CalibrationError(f"noise_model must be one of {NOISE_MODELS}, got {noise_model!r}")


def with_values(model: CalibrationModel, q) -> CalibrationModel:
    return eqx.tree_at(lambda m: m.path, model, model.path.with_values(q))


def _one(model, q, a, y, mask, z, w):
    """(r, converged, flow) of one trajectory; ``w`` [N, S]: fixed residual weights or None."""
    m = with_values(model, q)
    mu0 = None if a is None else jax.nn.softmax(jnp.concatenate([jnp.zeros(1, a.dtype), a]))
    eq = solve(m.game_for(y, mask, z, mu0), m.solver, tol=m.tol, max_steps=m.max_steps, adjoint=m.adjoint,
               diagnostics=False)
    r = jnp.where(mask, eq.flow - y, 0.0)
    if a is None:
        r = r.at[0].set(0.0)
    if w is not None:
        r = r * w
    return r, eq.converged, jax.lax.stop_gradient(eq.flow)


def pearson_weights(flows) -> np.ndarray:
    """w = 1/sqrt(max(μ̂, 1e-6)): the weights of compositional (Dirichlet) noise at the flows μ̂."""
    return 1.0 / np.sqrt(np.maximum(np.asarray(flows), _WEIGHT_FLOOR))


@eqx.filter_jit
def residuals(model, q, A, y, mask, z, W):
    """r[K, N, S] (weights W[K, N, S] or None), whether every solve converged, flows[K, N, S]."""
    r, ok, flow = jax.vmap(lambda a, yy, mm, zz, ww: _one(model, q, a, yy, mm, zz, ww))(A, y, mask, z, W)
    return r, ok.all(), flow


@eqx.filter_jit
def jacobians(model, q, A, y, mask, z, W):
    """(r[K, N, S], J_q[K, N, S, P], J_a[K, N, S, S−1] or None, all converged) by forward mode, the
    weights W held fixed."""

    def one(a, yy, mm, zz, ww):
        def f(qq, aa):
            r, ok, _ = _one(model, qq, aa, yy, mm, zz, ww)
            return r, (r, ok)

        if a is None:
            Jq, (r, ok) = jax.jacfwd(lambda qq: f(qq, None), has_aux=True)(q)
            return r, Jq, None, ok
        (Jq, Ja), (r, ok) = jax.jacfwd(f, argnums=(0, 1), has_aux=True)(q, a)
        return r, Jq, Ja, ok

    r, Jq, Ja, ok = jax.vmap(one)(A, y, mask, z, W)
    return r, Jq, Ja, ok.all()


class Problem(eqx.Module):
    """The least-squares problem of a finite-dimensional path on some observations."""

    model: CalibrationModel
    y: jax.Array
    mask: jax.Array
    z: jax.Array | None
    nuisance: bool = eqx.field(static=True)
    weighted: bool = eqx.field(static=True)

    @property
    def n_params(self) -> int:
        return int(np.size(self.model.path.values))

    def dof(self) -> int:
        m = np.asarray(self.mask)
        rows = m if self.nuisance else m[:, 1:]
        K, S = m.shape[0], m.shape[-1]
        return int(rows.sum() - rows.all(-1).sum() - self.n_params - (K * (S - 1) if self.nuisance else 0))

    def initial_logits(self):
        """a[K, S−1]: the additive log-ratio coordinates of μ₀ read from y₀ (None without nuisance)."""
        if not self.nuisance:
            return None
        mu0 = np.asarray(jax.vmap(self.model.initial)(self.y[:, 0], self.mask[:, 0]))
        logm = np.log(np.maximum(mu0, 1e-12))
        return jnp.asarray(logm[:, 1:] - logm[:, :1])

    def initial_states(self, A) -> np.ndarray | None:
        if A is None:
            return None
        A = np.asarray(A)
        return np.asarray(jax.nn.softmax(np.concatenate([np.zeros((A.shape[0], 1)), A], 1), axis=-1))


def problem(obj, observations, initial: str, noise_model: str) -> tuple[Problem, jax.Array]:
    check_options(initial, noise_model)
    model = _as_model(obj)
    check_compatible(model, observations)
    if not hasattr(model.path, "with_values"):
        raise CalibrationError(
            f"a {type(model.path).__name__} path has no finite-dimensional values: use Constant or PiecewiseConstant"
        )
    prob = Problem(model, jnp.asarray(observations.values), jnp.asarray(observations.mask),
                   covariates_of(observations), initial == "nuisance", noise_model == "dirichlet")
    return prob, jnp.ravel(model.path.values)


def evaluate(prob: Problem, q, A, W=None):
    """(r, all converged, flows) at (q, A) with the weights W (None: unweighted)."""
    r, ok, flow = residuals(prob.model, q, A, prob.y, prob.mask, prob.z, None if W is None else jnp.asarray(W))
    return np.asarray(r), bool(ok), np.asarray(flow)


def weights_at(prob: Problem, q, A):
    """The Pearson weights at (q, A) for a weighted problem (None otherwise), and convergence."""
    if not prob.weighted:
        return None, True
    _, ok, flow = evaluate(prob, q, A)
    return pearson_weights(flow), ok


def linearise(prob: Problem, q, A, W=None):
    r, Jq, Ja, ok = jacobians(prob.model, q, A, prob.y, prob.mask, prob.z, None if W is None else jnp.asarray(W))
    return Blocks(np.asarray(r), np.asarray(Jq), None if Ja is None else np.asarray(Ja)), bool(ok)


class Blocks:
    """Gradient and Gauss–Newton matrix of ½‖r‖² in (q, a₁…a_K), kept in block form: the a_k blocks
    are per trajectory, so the cost grows linearly in K (Schur complement onto q)."""

    def __init__(self, r, Jq, Ja):
        K, P = r.shape[0], Jq.shape[-1]
        self.r = r
        self.rk = r.reshape(K, -1)
        self.Jqk = Jq.reshape(K, -1, P)
        self.gq = np.einsum("kip,ki->p", self.Jqk, self.rk)
        self.Hqq = np.einsum("kip,kiq->pq", self.Jqk, self.Jqk)
        self.Jak = None if Ja is None else Ja.reshape(K, -1, Ja.shape[-1])
        if self.Jak is not None:
            self.ga = np.einsum("kia,ki->ka", self.Jak, self.rk)
            self.Hqa = np.einsum("kip,kia->kpa", self.Jqk, self.Jak)
            self.Haa = np.einsum("kia,kib->kab", self.Jak, self.Jak)

    @property
    def rss(self) -> float:
        return float((self.r**2).sum())

    def _aa_inverse(self, lam: float):
        Haa = self.Haa
        if lam > 0:
            d = np.einsum("kaa->ka", Haa)
            Haa = Haa + lam * np.einsum("ka,ab->kab", d, np.eye(d.shape[1]))
        return np.linalg.pinv(Haa, hermitian=True)

    def schur(self, lam: float = 0.0):
        """(S, Haa⁻¹): S = Hqq − Σ_k Hqa_k Haa_k⁻¹ Haq_k, the Gauss–Newton matrix of q with the
        nuisance parameters profiled out (Hqq itself without them)."""
        Hqq = self.Hqq + lam * np.diag(np.diag(self.Hqq))
        if self.Jak is None:
            return Hqq, None
        inv = self._aa_inverse(lam)
        return Hqq - np.einsum("kpa,kab,kqb->pq", self.Hqa, inv, self.Hqa), inv

    def scores(self, inv) -> np.ndarray:
        """Per-trajectory profiled scores s_k = J_qkᵀ r_k − Hqa_k Haa_k⁻¹ J_akᵀ r_k [K, P]."""
        s = np.einsum("kip,ki->kp", self.Jqk, self.rk)
        if self.Jak is not None:
            s = s - np.einsum("kpa,kab,kb->kp", self.Hqa, inv, self.ga)
        return s

    def step(self, lam: float, free):
        """The damped Gauss–Newton step (Δq, ΔA); ``free`` [P] bool marks the components of q that
        move (the others are held: Δq = 0 there)."""
        P = self.gq.size
        free = np.broadcast_to(np.asarray(free, bool), (P,))
        dq = np.zeros(P)
        if not free.any():
            return dq, -np.einsum("kab,kb->ka", self._aa_inverse(lam), self.ga)
        S, inv = self.schur(lam)
        S = S[np.ix_(free, free)] + 1e-300 * np.eye(int(free.sum()))
        if inv is None:
            dq[free] = -np.linalg.solve(S, self.gq[free])
            return dq, None
        ya = np.einsum("kab,kb->ka", inv, self.ga)
        X = np.einsum("kab,kpb->kap", inv, self.Hqa)
        dq[free] = -np.linalg.solve(S, (self.gq - np.einsum("kpa,ka->p", self.Hqa, ya))[free])
        return dq, -ya - np.einsum("kap,p->ka", X, dq)


def polish(prob: Problem, q, A, *, free_q, steps: int, rtol: float):
    """Levenberg–Marquardt on ½‖r(q, A)‖² from (q, A) (A alone when ``free_q`` is False; a bool
    mask [P] frees those components of q only, as in a profile likelihood). With
    Pearson weights it is iteratively reweighted: each step holds the weights of the current point
    (a candidate is accepted if it lowers the residual under them; the weights are then recomputed),
    so it converges to the quasi-likelihood equations Σ_k J_kᵀ W_k r_k = 0. Steps are shortened to
    keep at least half the distance to the path's floor/ceiling; candidates whose solves do not
    converge are rejected like those that raise the residual. Returns (q, A, Blocks at (q, A))."""
    lo, hi = prob.model.path.floor, prob.model.path.upper
    q, A = np.asarray(q), None if A is None else np.asarray(A)

    def at(q, A):
        W, ok = weights_at(prob, jnp.asarray(q), None if A is None else jnp.asarray(A))
        blocks, ok2 = linearise(prob, jnp.asarray(q), None if A is None else jnp.asarray(A), W)
        return W, blocks, ok and ok2

    free = np.broadcast_to(np.asarray(free_q, bool), q.shape)
    W, blocks, ok = at(q, A)
    if not ok:
        raise CalibrationError("the equilibrium did not converge at the starting values of the polish")
    if A is None and not free.any():
        return q, A, blocks
    lam, fresh = 1e-3, True
    for _ in range(steps):
        dq, dA = blocks.step(lam, free)
        cq = np.maximum(q + dq, lo + 0.5 * (q - lo))
        if hi is not None:
            cq = np.minimum(cq, hi - 0.5 * (hi - q))
        cA = None if A is None else A + dA
        r_new, ok, _ = evaluate(prob, jnp.asarray(cq), None if cA is None else jnp.asarray(cA), W)
        if ok and float((r_new**2).sum()) <= blocks.rss:
            small = np.max(np.abs(cq - q), initial=0.0) <= rtol * max(1.0, np.max(np.abs(q)))
            if cA is not None:
                small = small and np.max(np.abs(cA - A)) <= max(rtol, 1e-8) * max(1.0, np.max(np.abs(A)))
            q, A, lam = cq, cA, max(lam / 10, 1e-12)
            fresh = False
            if small:
                break
            W, blocks, _ = at(q, A)
            fresh = True
        else:
            lam *= 10
            if lam > 1e12:
                break
    if not fresh:
        W, blocks, _ = at(q, A)
    return q, A, blocks


def fit_nuisance(prob: Problem, q, steps: int = 20):
    """The nuisance μ₀ fitted at fixed q (nothing to do without nuisance): (A, Blocks at (q, A))."""
    _, A, blocks = polish(prob, q, prob.initial_logits(), free_q=False, steps=steps, rtol=1e-10)
    return A, blocks
