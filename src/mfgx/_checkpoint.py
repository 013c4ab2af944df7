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
    directory, like, *, kind: str = "calibration", error: type[Exception] = ValueError
) -> tuple[dict[str, Any], Any] | None:
    """(header, tree) from ``directory``, with leaves shaped like ``like``; None if no checkpoint.

    Raises ``error`` if the file is not a checkpoint of this ``kind`` or its leaves do not match ``like``.
    """
    target = checkpoint_path(directory)
    if not target.exists():
        return None
    magic = _magic(kind)
    with open(target, "rb") as f:
        if f.read(len(magic)) != magic:
            raise error(f"{target} is not an mfgx {kind} checkpoint")
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode())
        try:
            tree = eqx.tree_deserialise_leaves(f, like)
        except Exception as e:  # noqa: BLE001
            raise error(
                f"checkpoint {target} does not match this model (different model or optimiser?): {e}"
            ) from e
    return header, tree
