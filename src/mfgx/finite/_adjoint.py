"""How `solve` differentiates: through the equilibrium (implicit function theorem) or through the loop."""

from __future__ import annotations

import equinox as eqx
import lineax as lx

# The default adjoint solve is matrix-free GMRES at every size. Not a dense factorisation: with
# lineax 0.1.1, materialising the Jacobian operator for LU or QR under jit + grad + vmap returned
# wrong values (even NaN) for some batches, where GMRES agrees with unrolled differentiation.


class AbstractAdjoint(eqx.Module):
    pass


class ImplicitAdjoint(AbstractAdjoint):
    r"""Differentiate the equilibrium by the implicit function theorem (the default).

    At the fixed point m* = Φ_θ(m*) of the solver's best-response map, for a loss L,

        (I − ∂Φ/∂m)ᵀ w = ∂L/∂m*,     ∂L/∂θ = (∂Φ/∂θ)ᵀ w,

    solved matrix-free (JVPs and VJPs of Φ, never the Jacobian) by ``linear_solver`` (GMRES with
    restart 5 by default: lineax runs every Arnoldi step of a restart cycle, and these contractive
    systems converge in ~10, see benchmarks/results/calibration.md; pass e.g. ``lx.BiCGStab(...)``). A solve that does not
    converge raises an error instead of returning a wrong gradient. Cost: about one Krylov solve of
    VJPs of Φ, independent of the number of forward iterations.

    Φ is smooth for `Softmax`; for exact (argmax) best responses ∂Φ/∂m and ∂Φ/∂θ miss the control
    channel (the argmax is piecewise constant), so gradients flow only through the explicit
    dependence of transitions and rewards on m and θ.
    """

    linear_solver: lx.AbstractLinearSolver | None = None

    def solver_for(self, size: int) -> lx.AbstractLinearSolver:
        if self.linear_solver is not None:
            return self.linear_solver
        return lx.GMRES(rtol=1e-10, atol=1e-12, restart=5, max_steps=20 * size)


class UnrolledAdjoint(AbstractAdjoint):
    """Differentiate through every solver iteration (reverse mode through the loop). For comparison
    and for solutions that are not fixed points; memory grows with the number of iterations run."""
