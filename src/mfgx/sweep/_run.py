"""Running a sweep: every trial a Ray task, skipped when finished, resumed when interrupted,
rerun when its settings changed; then the table over seeds.

Layout of the output folder:

    trials/<grid>/<axis values>/trial.json   the trial's resolved configuration and fingerprint
                               /result.json  its metrics (written when it finishes)
                               /checkpoint/  the fit's checkpoint (resumed by a retried task)
    sweep.json, sweep.md, figures/           the aggregate (see `mfgx.sweep._aggregate`)

A trial's task runs with Ray's ``max_retries`` (a worker that dies, e.g. killed or out of memory,
is replaced and the trial restarts from its checkpoint) and no retry on Python exceptions (a trial
that raises is reported as failed; a later run of the sweep retries it from its checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _atomic
from . import _aggregate
from ._spec import SweepError, SweepSpec, load_spec

DEFAULT_METRICS = {
    "synthetic": ["gamma_mae", "gamma_mse", "mu_error", "max_rel_error", "n_nonconverged", "seconds"],
}


@dataclass
class SweepResult:
    """What `run` produced: every trial's record, the table over seeds and the files written.

    ``records``: one per trial: ``id``, ``grid``, ``values``, ``status`` ("done" or "failed"),
    ``metrics``, ``fingerprint``, ``attempts`` (starts of its task, retries included), ``reused``
    (finished by an earlier run), ``rerun`` (why an earlier result was discarded, if it was) and
    ``error``. ``table``: the rows of `_aggregate.summarise`."""

    spec: SweepSpec
    records: list[dict[str, Any]]
    table: list[dict[str, Any]]
    out: Path
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        return sum(r["status"] != "done" for r in self.records)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _changes(old: dict, new: dict) -> str:
    a, b = _flat(old), _flat(new)
    keys = sorted(k for k in set(a) | set(b) if a.get(k, "(absent)") != b.get(k, "(absent)"))
    return ", ".join(f"{k} ({a.get(k, '(absent)')!r} → {b.get(k, '(absent)')!r})" for k in keys) or "target or code"


def _start_ray(address, kwargs, attempts: int = 2):
    """``ray.init``, retried once: a local Ray gives its raylet 30 s to register, which an overloaded
    machine can miss. A second failure is a `SweepError` that says what to do."""
    import ray

    for attempt in range(attempts):
        try:
            ray.init(address=address, **kwargs)
            return
        except Exception as err:  # noqa: BLE001  (Ray raises bare Exception/ConnectionError here)
            ray.shutdown()
            if attempt == attempts - 1:
                where = f"connect to the Ray cluster at {address!r}" if address else "start a local Ray instance"
                raise SweepError(
                    f"could not {where} ({type(err).__name__}: {err}) after {attempts} attempts. On a busy "
                    "machine start Ray once yourself (`ray start --head --num-cpus N`) and pass --address auto; "
                    "finished trials are kept, so rerunning the same command resumes the sweep."
                ) from err


def run_trial(target: str, config: dict, trial_dir: str, context: dict, fingerprint: str) -> dict[str, Any]:
    """One trial, as a Ray task runs it: count the attempt, call the target, write result.json."""
    from ._targets import resolve_target

    folder = Path(trial_dir)
    folder.mkdir(parents=True, exist_ok=True)
    attempts_file = folder / "attempts"
    attempts = int(attempts_file.read_text() or 0) + 1 if attempts_file.exists() else 1
    _atomic.write_text(attempts_file, str(attempts))
    _atomic.write_text(folder / "pid", str(os.getpid()))
    start = time.perf_counter()
    metrics = resolve_target(target)(config, folder, {**context, "progress_file": str(folder / "progress.json")})
    record = {"fingerprint": fingerprint, "metrics": metrics, "attempts": attempts,
              "task_seconds": time.perf_counter() - start, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    _aggregate.write_json(folder / "result.json", record)
    return record


def _error_text(err: BaseException) -> str:
    cause = getattr(err, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"[:500]
    text = str(err).strip().splitlines()
    return (f"{type(err).__name__}: " + (text[-1] if text else ""))[:500]


def _display(spec, states, done, failed, started):
    from rich.console import Group
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold", title=None)
    for col in ("trial", "state", "epoch", "attempt"):
        table.add_column(col, justify="left" if col in ("trial", "state") else "right")
    shown = 0
    for tid, st in states.items():
        if st["state"] in ("done", "reused") or shown >= 12:
            continue
        shown += 1
        prog = _read_json(st["dir"] / "progress.json") or {}
        attempts = (st["dir"] / "attempts").read_text() if (st["dir"] / "attempts").exists() else "-"
        state = st["state"] if attempts == "-" else ("running" if st["state"] == "queued" else st["state"])
        colour = {"failed": "red", "running": "yellow"}.get(state, "dim")
        epoch = f"{prog.get('done', 0)}/{prog.get('total', '?')}" if prog else "-"
        table.add_row(tid, f"[{colour}]{state}[/]", epoch, attempts)
    n = len(spec.trials)
    head = (f"[bold]sweep {spec.name}[/]: {done}/{n} done" + (f", [red]{failed} failed[/]" if failed else "")
            + f", {n - done - failed} to go · {time.perf_counter() - started:.0f} s")
    return Group(head, table)


def run(spec: SweepSpec | str | Path, *, address: str | None = None, num_cpus: int | None = None, restart: bool = False,
        progress: bool = True, console=None, max_retries: int | None = None) -> SweepResult:
    """Run every trial of ``spec`` (a `SweepSpec` or a sweep file) as a Ray task and aggregate.

    Ray: the running Ray session if there is one, else ``ray.init(address)``: a new local instance
    (``num_cpus`` CPUs, default all) when ``address`` is None, an existing cluster otherwise (the
    output folder must then be on a file system every node sees). A trial already finished with the
    same fingerprint is reused; one whose settings changed is discarded (the changed keys are
    recorded in its ``rerun``) and run again; an unfinished one resumes from its checkpoint.
    ``restart`` discards every earlier trial. Returns a `SweepResult`; trials that failed are
    reported in it (status "failed" with the error), never dropped."""
    import ray

    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    if console is None:
        from rich.console import Console

        console = Console()
    started = time.perf_counter()
    out = Path(spec.output)
    (out / "trials").mkdir(parents=True, exist_ok=True)
    records: dict[str, dict] = {}
    pending = []
    for t in spec.trials:
        folder = out / "trials" / t.id
        meta, result = _read_json(folder / "trial.json"), _read_json(folder / "result.json")
        rerun = None
        if folder.exists() and restart:
            shutil.rmtree(folder)
            rerun = "restart"
        elif meta is not None and meta.get("fingerprint") != t.fingerprint:
            rerun = "settings changed: " + _changes(meta.get("config", {}), t.config)
            shutil.rmtree(folder)
        elif result is not None and result.get("fingerprint") == t.fingerprint:
            records[t.id] = {"id": t.id, "grid": t.grid, "values": t.values, "status": "done", "metrics": result["metrics"],
                             "fingerprint": t.fingerprint, "attempts": result.get("attempts", 1), "reused": True,
                             "rerun": None, "error": None}
            continue
        folder.mkdir(parents=True, exist_ok=True)
        _aggregate.write_json(folder / "trial.json", {"id": t.id, "grid": t.grid, "values": t.values, "target": t.target,
                                                     "fingerprint": t.fingerprint, "config": t.config})
        pending.append((t, folder, rerun))

    started_ray = False
    if pending and not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None and num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        _start_ray(address, kwargs)
        started_ray = True
    try:
        task = ray.remote(run_trial).options(
            num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial, max_retries=spec.max_retries if max_retries is None else max_retries,
            retry_exceptions=False,
        )
        context = {"base_dir": str(spec.base_dir)}
        refs = {task.remote(t.target, t.config, str(folder), context, t.fingerprint): (t, folder, rerun)
                for t, folder, rerun in pending}
        states = {t.id: {"state": "reused" if t.id in records else "queued", "dir": out / "trials" / t.id} for t in spec.trials}
        n_done = len(records)
        n_failed = 0
        live = None
        if progress and console.is_terminal and refs:
            from rich.live import Live

            live = Live(_display(spec, states, n_done, n_failed, started), console=console, refresh_per_second=4)
            live.__enter__()
        elif progress and refs:
            console.print(f"sweep {spec.name}: {len(refs)} trial(s) to run, {len(records)} reused")
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
                for ref in ready:
                    t, folder, rerun = refs.pop(ref)
                    rec = {"id": t.id, "grid": t.grid, "values": t.values, "fingerprint": t.fingerprint, "reused": False,
                           "rerun": rerun}
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as err:
                        attempts = (folder / "attempts").read_text() if (folder / "attempts").exists() else "0"
                        rec.update(status="failed", metrics={}, attempts=int(attempts or 0), error=_error_text(err))
                        n_failed += 1
                    else:
                        rec.update(status="done", metrics=result["metrics"], attempts=result["attempts"], error=None)
                        n_done += 1
                    records[t.id] = rec
                    states[t.id]["state"] = rec["status"]
                    if live is None and progress:
                        tag = "[green]done[/]" if rec["status"] == "done" else f"[red]failed[/]: {rec['error']}"
                        console.print(f"  {t.id}: {tag} (attempts {rec['attempts']}) [{n_done + n_failed}/{len(spec.trials)}]")
                if live is not None:
                    live.update(_display(spec, states, n_done, n_failed, started), refresh=True)
        finally:
            if live is not None:
                live.__exit__(None, None, None)
    finally:
        if started_ray:
            ray.shutdown()
    ordered = [records[t.id] for t in spec.trials]
    return _finish(spec, ordered, time.perf_counter() - started)


def _finish(spec: SweepSpec, records: list[dict], seconds: float) -> SweepResult:
    out = Path(spec.output)
    out.mkdir(parents=True, exist_ok=True)  # `collect` may run before any trial has
    table = _aggregate.summarise(records, spec.axes)
    names = sorted({k for r in table for k in r["metrics"]})
    wanted = spec.raw.get("sweep", {}).get("metrics") or DEFAULT_METRICS.get(spec.target)
    metrics = [m for m in wanted if m in names] if wanted else names[:8]
    files = [_aggregate.write_json(out / "sweep.json", {
        "name": spec.name, "origin": spec.origin, "target": spec.target, "mode": spec.mode, "axes": list(spec.axes),
        "seconds": seconds, "n_trials": len(records), "n_failed": sum(r["status"] != "done" for r in records),
        "trials": records, "table": table, "spec": spec.raw,
    })]
    notes = spec.raw.get("sweep", {}).get("notes", [])
    files.append(_atomic.write_text(out / "sweep.md", _aggregate.markdown(table, spec.axes, metrics, f"Sweep {spec.name}",
                                                                         [notes] if isinstance(notes, str) else list(notes))))
    files += _aggregate.figures(table, spec.axes, [m for m in metrics if m != "seconds"][:6], out / "figures")
    return SweepResult(spec, records, table, out, files, seconds)


def collect(spec: SweepSpec | str | Path) -> SweepResult:
    """Aggregate the finished trials of a sweep without running anything: trials never run are
    reported as "not run", trials whose settings changed since they ran as "stale" (neither counts
    in the statistics)."""
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    records = []
    for t in spec.trials:
        folder = Path(spec.output) / "trials" / t.id
        result = _read_json(folder / "result.json")
        ok = result is not None and result.get("fingerprint") == t.fingerprint
        records.append({"id": t.id, "grid": t.grid, "values": t.values, "fingerprint": t.fingerprint, "reused": ok,
                        "rerun": None, "status": "done" if ok else ("not run" if result is None else "stale"),
                        "metrics": result["metrics"] if ok else {},
                        "attempts": result.get("attempts", 0) if ok else 0,
                        "error": None if ok else ("not run yet" if result is None else "settings changed since it ran")})
    if not records:
        raise SweepError(f"{spec.origin}: no trials")
    return _finish(spec, records, 0.0)
