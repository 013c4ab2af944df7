"""Atomic checkpoints shared by the training loops (`calibrate.fit`, `neural.fit`).

A checkpoint is a magic line naming its kind, a JSON header (step or epoch, history, settings)
and the Equinox-serialised array leaves of a pytree. It is written to a temporary file in the same
folder, flushed and fsync'ed, then moved over the old file with `os.replace`, so a run killed at
any moment leaves either the previous or the new checkpoint.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import equinox as eqx

from ._atomic import atomic_open

FILENAME = "checkpoint.eqx"


def _magic(kind: str) -> bytes:
    return f"MFGX-{kind.upper()}-CHECKPOINT-1\n".encode()


def checkpoint_path(directory) -> Path:
    return Path(directory) / FILENAME


def save(directory, header: dict[str, Any], tree, *, kind: str = "calibration") -> Path:
    """Write ``header`` (JSON-able) and the array leaves of ``tree`` to ``directory``/checkpoint.eqx."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(directory)
    blob = json.dumps(header).encode()
    with atomic_open(target) as f:
        f.write(_magic(kind))
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        eqx.tree_serialise_leaves(f, tree)
    return target


def load(
    directory, like, *, kind: str = "calibration", error: type[Exception] = ValueError, check=None
) -> tuple[dict[str, Any], Any] | None:
    """(header, tree) from ``directory``, with leaves shaped like ``like``; None if no checkpoint.

    ``check(header)`` runs before the arrays are read (e.g. to refuse other settings, whose arrays
    may not fit ``like``). Raises ``error`` if the file is not a checkpoint of this ``kind``, is
    corrupt or truncated, or its leaves do not match ``like``.
    """
    target = checkpoint_path(directory)
    if not target.exists():
        return None
    magic = _magic(kind)
    size = target.stat().st_size
    corrupt = f"checkpoint {target} is corrupt or truncated ({size} bytes)"
    fix = "; delete it, or start over with resume=False (CLI: --restart)"
    with open(target, "rb") as f:
        head = f.read(len(magic))
        if head != magic:
            if magic.startswith(head) or not head:
                raise error(corrupt + ": it ends inside its magic line" + fix)
            raise error(f"{target} is not an mfgx {kind} checkpoint" + fix)
        raw = f.read(8)
        if len(raw) != 8:
            raise error(corrupt + ": no header length" + fix)
        (n,) = struct.unpack("<Q", raw)
        if n > size - len(magic) - 8:
            raise error(corrupt + f": its header claims {n} bytes, more than the file holds" + fix)
        try:
            header = json.loads(f.read(n).decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise error(corrupt + f": unreadable header ({e})" + fix) from None
        if not isinstance(header, dict) or not {"settings", "state"} <= set(header):
            raise error(corrupt + ": its header lacks the settings and state" + fix)
        if check is not None:
            check(header)
        remaining = size - f.tell()
        expected = _leaf_bytes(like)
        if remaining < expected:
            raise error(corrupt + f": {remaining} bytes of arrays where this model needs at least {expected}" + fix)
        try:
            tree = eqx.tree_deserialise_leaves(f, like)
        except Exception as e:  # noqa: BLE001
            if f.tell() >= size or not f.read(1):  # ran out of bytes: truncated
                raise error(corrupt + ": its arrays end early" + fix) from None
            raise error(
                f"checkpoint {target} does not match this model (different model or optimiser?): {e}" + fix
            ) from e
    return header, tree


def _leaf_bytes(like) -> int:
    """The bytes of the array leaves of ``like`` (their data; each also carries a small .npy header)."""
    import jax
    import numpy as np

    return sum(int(np.prod(np.shape(x))) * np.dtype(getattr(x, "dtype", np.float64)).itemsize
               for x in jax.tree_util.tree_leaves(like) if hasattr(x, "shape"))
