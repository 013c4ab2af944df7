"""Shared parameter transforms."""

from __future__ import annotations

import jax.numpy as jnp


def inverse_softplus(x):
    """z with softplus(z) = x > 0, i.e. log(expm1(x)), and z = x above 30 (where they agree to
    round-off and expm1 would overflow in float32). Works on NumPy values and traced arrays."""
    x = jnp.asarray(x, dtype=jnp.result_type(float))
    return jnp.where(x > 30, x, jnp.log(jnp.expm1(jnp.minimum(x, 30))))
