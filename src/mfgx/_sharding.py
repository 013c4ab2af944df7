"""Sharding a vmapped batch over the local devices with `jax.sharding`, results unchanged.

A batch of games or trajectories (leading axis B) is split over a one-axis `Mesh` of the k local
devices, k the largest divisor of B that is at most the device count, so each device solves B/k
items of the same vmapped computation: per-item results do not depend on the split (a vmapped
while loop freezes finished items), and reductions over the batch differ at most by summation order.
On one device (k = 1) nothing is done, so single-device runs compile exactly as before.
``MFGX_SHARD=0`` in the environment turns sharding off.
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "batch"


def enabled() -> bool:
    """Whether batches are sharded (unless ``MFGX_SHARD=0``)."""
    return os.environ.get("MFGX_SHARD", "1") != "0"


@functools.lru_cache(maxsize=None)
def _mesh(k: int) -> Mesh:
    return Mesh(np.asarray(jax.local_devices()[:k]), (AXIS,))


def n_shards(size: int) -> int:
    """k: the largest divisor of ``size`` that is at most the number of local devices (1 if disabled)."""
    n_dev = jax.local_device_count() if enabled() else 1
    return max(k for k in range(1, min(n_dev, max(int(size), 1)) + 1) if size % k == 0)


def batch_sharding(size: int) -> NamedSharding | None:
    """The `NamedSharding` splitting a leading axis of ``size`` over `n_shards` devices, or None (k = 1)."""
    k = n_shards(size)
    return None if k == 1 else NamedSharding(_mesh(k), PartitionSpec(AXIS))


def shard_batch(tree):
    """``tree`` with every array leaf split along its leading (batch) axis over the local devices:
    `jax.device_put` for concrete arrays, `jax.lax.with_sharding_constraint` under `jit`. Scalars,
    None and non-array leaves are left alone; on one device the tree is returned unchanged."""
    if not enabled() or jax.local_device_count() == 1:
        return tree

    def one(x):
        if not hasattr(x, "shape") or not hasattr(x, "dtype") or np.ndim(x) == 0:
            return x
        sharding = batch_sharding(x.shape[0])
        if sharding is None:
            return x
        if isinstance(x, jax.core.Tracer):
            return jax.lax.with_sharding_constraint(x, sharding)
        return jax.device_put(x, sharding)

    return jax.tree_util.tree_map(one, tree)
