"""How `solve` differentiates: through the equilibrium (implicit function theorem) or through the loop."""

from __future__ import annotations

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import lineax as lx

from ._neumann import default_tolerances

# The default adjoint solve is matrix-free GMRES at every size. Not a dense factorisation: with
# lineax 0.1.1, materialising the Jacobian operator for LU or QR under jit + grad + vmap returned
# wrong values (even NaN) for some batches, where GMRES agrees with unrolled differentiation.


class AbstractAdjoint(eqx.Module):
    pass


class ImplicitAdjoint(AbstractAdjoint):
    r"""Differentiate the equilibrium by the implicit function theorem (the default).

    At the fixed point m* = Φ_θ(m*) of the solver's best-response map, for a loss L,

        (I − ∂Φ/∂m)ᵀ w = ∂L/∂m*,     ∂L/∂θ = (∂Φ/∂θ)ᵀ w,

    solved matrix-free (JVPs and VJPs of Φ, never the Jacobian) by ``linear_solver``. Default:
    GMRES with restart 5 (lineax runs every Arnoldi step of a restart cycle, and these contractive
    systems converge in ~10, see benchmarks/results/calibration.md), at the tolerances the dtype
    can reach. `mfgx.Neumann` is the damped Neumann series (one VJP per step, cheapest when Φ is
    contractive; the default of `mfgx.calibrate`); any lineax solver, e.g. ``lx.BiCGStab(...)``,
    may be passed. A solve that does not converge raises an error instead of returning a wrong
    gradient. Cost: about one Krylov solve of VJPs of Φ, independent of the number of forward
    iterations.

    Φ is smooth for `Softmax`; for exact (argmax) best responses ∂Φ/∂m and ∂Φ/∂θ miss the control
    channel (the argmax is piecewise constant), so gradients flow only through the explicit
    dependence of transitions and rewards on m and θ.
    """

    linear_solver: lx.AbstractLinearSolver | None = None

    def solver_for(self, size: int, dtype=float) -> lx.AbstractLinearSolver:
        """The linear solver: ``linear_solver``, else GMRES at the tolerances ``dtype`` can reach."""
        if self.linear_solver is not None:
            return self.linear_solver
        rtol, atol = default_tolerances(dtype)
        return lx.GMRES(rtol=rtol, atol=atol, restart=5, max_steps=20 * size)


class UnrolledAdjoint(AbstractAdjoint):
    """Differentiate through every solver iteration (reverse mode through the loop). For comparison
    and for solutions that are not fixed points; memory grows with the number of iterations run."""


def implicit_jvp(fn_primal, fn_rewrite, inputs, linear_solver: lx.AbstractLinearSolver):
    """`optimistix.internal.implicit_jvp` with one linearisation: returns ``fn_primal(inputs) =
    (root, residual)``, the root with tangent −(∂F/∂root)⁻¹ (∂F/∂inputs)·ṫ, F = ``fn_rewrite``.

    Optimistix evaluates F twice for this (one `jax.jvp` in the inputs and one linearisation in the
    root); here a single `jax.linearize` in (root, inputs) serves both, so differentiating a solve
    costs one evaluation of F fewer (and compiles a smaller program)."""
    root, residual = _implicit(fn_primal, fn_rewrite, inputs, linear_solver)
    return root, jtu.tree_map(eqxi.nondifferentiable_backward, residual)


@eqx.filter_custom_jvp
def _implicit(fn_primal, fn_rewrite, inputs, linear_solver):
    del fn_rewrite, linear_solver
    return jtu.tree_map(jnp.asarray, fn_primal(inputs))


@_implicit.def_jvp
def _implicit_jvp(primals, tangents):
    fn_primal, fn_rewrite, inputs, linear_solver = primals
    t_inputs = tangents[2]
    no_tangent = jtu.tree_map(lambda t: t is None, t_inputs, is_leaf=lambda t: t is None)
    nondiff, diff = eqx.partition(inputs, no_tangent, is_leaf=lambda t: t is None)
    root, residual = implicit_jvp(fn_primal, fn_rewrite, inputs, linear_solver)

    def F(r, d):
        return fn_rewrite(r, residual, eqx.combine(d, nondiff))

    _, lin = jax.linearize(F, root, diff)
    zero_root = jtu.tree_map(jnp.zeros_like, root)
    zero_diff = jtu.tree_map(jnp.zeros_like, diff)
    operator = lx.FunctionLinearOperator(lambda v: lin(v, zero_diff), jax.eval_shape(lambda: root))
    rhs = lin(zero_root, jtu.tree_map(lambda t, d: t, t_inputs, diff, is_leaf=lambda t: t is None))
    t_root = jtu.tree_map(jnp.negative, lx.linear_solve(operator, rhs, linear_solver).value)
    t_residual = jax.custom_derivatives.zero_from_primal(residual, symbolic_zeros=True)
    return (root, residual), (t_root, t_residual)
