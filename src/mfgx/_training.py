"""Bookkeeping shared by the training loops (`calibrate.fit`, `neural.fit`): resume from a
checkpoint, evaluation with best-validation selection and patience, the callback, the history,
the checkpoint cadence, the progress line and the final selection.

``counter`` names the unit of a loop ("epoch" or "step"). The loop's state (JSON, saved in the
checkpoint header) holds ``counter`` (units done), ``"history"`` (one record per unit, its
``counter`` entry 1-based), ``"best_" + counter``, ``"best_val"``, ``"bad_evals"`` and ``"stopped"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from . import _checkpoint


class StepHistory:
    """Reading a step loop's ``history`` (records with ``"step"``, ``"loss"`` and on evaluation steps
    ``"val"``): mixed into the results of `neural.fit` and the generative fits."""

    history: list

    def losses(self):
        """The training loss of every step."""
        import numpy as np

        return np.array([r["loss"] for r in self.history])

    def val_losses(self):
        """(steps, validation losses) of the evaluation steps."""
        import numpy as np

        rows = [(r["step"], r["val"]["loss"]) for r in self.history if r.get("val")]
        return np.array([s for s, _ in rows], int), np.array([v for _, v in rows])


def new_state(counter: str) -> dict[str, Any]:
    """The state of a loop that has not started."""
    return {counter: 0, "history": [], f"best_{counter}": 0, "best_val": math.inf, "bad_evals": 0, "stopped": False}


def resume(checkpoint_dir, like, settings: dict, *, kind: str, error: type[Exception]):
    """(state, tree) from the checkpoint in ``checkpoint_dir``, None if there is none; raises
    ``error`` naming the settings that differ if it was written with other ``settings``."""
    def check(header):
        old = header.get("settings", {})
        if old != settings:
            changed = sorted(k for k in set(old) | set(settings) if old.get(k, "(absent)") != settings.get(k, "(absent)"))
            what = ", ".join(f"{k} ({_show(old.get(k, '(absent)'))} → {_show(settings.get(k, '(absent)'))})" for k in changed)
            raise error(
                f"the checkpoint in {checkpoint_dir} was written by a run with other settings; changed: {what}. "
                "Nothing was reused: use another checkpoint_dir (or output folder), or resume=False (CLI: --restart) "
                "to start over"
            )

    loaded = _checkpoint.load(checkpoint_dir, like, kind=kind, error=error, check=check)
    if loaded is None:
        return None
    header, tree = loaded
    return header["state"], tree


def _show(v) -> str:
    return f"fingerprint {v}" if isinstance(v, str) and len(v) == 16 else repr(v)


def remaining(state: dict[str, Any], counter: str, total: int) -> range:
    """The 0-based units left to run (none once the loop has stopped)."""
    return range(state[counter], state[counter] if state.get("stopped") else total)


def end_unit(
    state: dict[str, Any],
    record: dict[str, Any],
    *,
    counter: str,
    total: int,
    eval_every: int,
    checkpoint_every: int,
    evaluate: Callable[[Any], dict[str, float]],
    train,
    val,
    eval_train: bool,
    patience: int | None,
    callback: Callable[[dict], bool | None] | None,
) -> tuple[bool, bool, bool]:
    """Close the unit ``record[counter]`` (1-based) and return (improved, stopped, save).

    On evaluation units (every ``eval_every`` and the last of ``total``) ``record["train"]`` (if
    ``eval_train``) and ``record["val"]`` (if ``val`` is given) are ``evaluate(data)``; a validation
    loss below the best so far makes this unit the best one (``improved``: the caller keeps its
    parameters), else counts a bad evaluation, and ``patience`` of them stop the loop. Then
    ``callback(record)`` (True stops), the record joins the history and the state advances.
    ``save``: a checkpoint is due (every ``checkpoint_every``, the last unit, or stopping)."""
    done = record[counter]
    improved = stopped = False
    if done % eval_every == 0 or done == total:
        if eval_train:
            record["train"] = evaluate(train)
        if val is not None:
            record["val"] = evaluate(val)
            if record["val"]["loss"] < state["best_val"]:
                state["best_val"], state[f"best_{counter}"], state["bad_evals"] = record["val"]["loss"], done, 0
                improved = True
            else:
                state["bad_evals"] += 1
                stopped = patience is not None and state["bad_evals"] >= patience
    if callback is not None and callback(record):
        stopped = True
    state["history"].append(record)
    state[counter], state["stopped"] = done, stopped
    save = done % checkpoint_every == 0 or done == total or stopped
    return improved, stopped, save


def info(loss: float, record: dict[str, Any]) -> str:
    """The progress-bar line: the training loss, and the validation loss on evaluation units."""
    return f"loss {loss:.3e}" + (f"  val {record['val']['loss']:.3e}" if "val" in record else "")


def select(state: dict[str, Any], counter: str, final, best, has_val: bool):
    """(model, selected_on): ``best`` when validated and some evaluation improved, else ``final``
    (the last unit then counts as the best one)."""
    if has_val and state[f"best_{counter}"] > 0:
        return best, "validation"
    state[f"best_{counter}"] = state[counter]
    return final, f"last {counter}"
