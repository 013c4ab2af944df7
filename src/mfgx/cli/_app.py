"""The ``mfgx`` command line: a thin Typer/Rich layer over `mfgx.solve`'s building blocks.

No game logic lives here: games come from `mfgx.games.REGISTRY`, solvers from `mfgx`, and the
iteration is the solvers' own ``init``/``step``/``policy``, run in a Python loop so that progress
can be shown and stopped early.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import math
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import mfgx
from mfgx.games import REGISTRY

MAX_ROWS = 25  # default --every prints at most about this many rows

app = typer.Typer(
    name="mfgx",
    help=(
        "Differentiable mean-field games in JAX.\n\n"
        "Solve a game from the zoo and watch it converge, or run the demo. "
        "Games: " + ", ".join(sorted(REGISTRY)) + "."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


# --------------------------------------------------------------------------------------------
# Solvers and games from command-line names


class SolverName(str, Enum):
    fixed_point = "fixed-point"
    softmax = "softmax"
    fictitious_play = "fictitious-play"
    mirror_descent = "mirror-descent"
    prior_descent = "prior-descent"


# Which hyperparameter options each solver takes (CLI option name -> constructor argument).
_SOLVERS: dict[SolverName, tuple[type[mfgx.AbstractSolver], dict[str, str]]] = {
    SolverName.fixed_point: (mfgx.FixedPoint, {"--damping": "damping"}),
    SolverName.softmax: (mfgx.Softmax, {"--temperature": "temperature", "--damping": "damping"}),
    SolverName.fictitious_play: (mfgx.FictitiousPlay, {"--learning-rate": "learning_rate"}),
    SolverName.mirror_descent: (mfgx.MirrorDescent, {"--learning-rate": "learning_rate", "--temperature": "temperature"}),
    SolverName.prior_descent: (mfgx.PriorDescent, {"--temperature": "temperature", "--n-inner": "n_inner"}),
}


def make_solver(name: SolverName | str, **options: Any) -> mfgx.AbstractSolver:
    """Build a solver from its CLI name; ``options`` maps CLI option names (``"--damping"``) to
    values, None meaning "not given" (the solver's default). Raises `typer.BadParameter` for an
    option the solver does not take or a value it rejects."""
    name = SolverName(name)
    cls, accepted = _SOLVERS[name]
    given = {opt: v for opt, v in options.items() if v is not None}
    unused = sorted(set(given) - set(accepted))
    if unused:
        takes = ", ".join(accepted) or "no options"
        raise typer.BadParameter(
            f"does not apply to --solver {name.value} (it takes {takes})",
            param_hint=", ".join(f"'{opt}'" for opt in unused),
        )
    try:
        return cls(**{accepted[opt]: v for opt, v in given.items()})
    except ValueError as e:
        hint = ", ".join(f"'{opt}'" for opt in given) or "'--solver'"
        raise typer.BadParameter(str(e), param_hint=hint) from e


def _game_name(value: str) -> str:
    if value not in REGISTRY:
        raise typer.BadParameter(f"unknown game {value!r}; choose one of: {', '.join(sorted(REGISTRY))}")
    return value


def _parse_params(items: list[str] | None) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="'--param'")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        out[key.strip()] = value
    return out


def make_game(name: str, params: dict[str, Any] | None = None) -> mfgx.FiniteGame:
    """Build ``REGISTRY[name](**params)``; raises `typer.BadParameter` on a bad name or argument."""
    ctor = REGISTRY[_game_name(name)]
    params = params or {}
    allowed = list(inspect.signature(ctor).parameters)
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise typer.BadParameter(
            f"{name} has no argument {', '.join(bad)}; it takes: {', '.join(allowed) or 'none'}",
            param_hint="'--param'",
        )
    try:
        return ctor(**params)
    except (TypeError, ValueError) as e:
        raise typer.BadParameter(f"{name}({_fmt_kwargs(params)}): {e}", param_hint="'--param'") from e


def _fmt_kwargs(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


# --------------------------------------------------------------------------------------------
# The loop


@eqx.filter_jit
def _iterate(solver, game, state):
    """One solver step and the exploitability of the policy it reaches, in one compiled call."""
    state, residual = solver.step(game, state)
    return state, residual, mfgx.exploitability(game, solver.policy(game, state))


@eqx.filter_jit
def _init(solver, game):
    return solver.init(game)


def _equilibrium(solver, game, state, steps: int, residual, tol) -> mfgx.Equilibrium:
    """`mfgx.Equilibrium` of the loop's final state, equal to what `mfgx.solve` returns after the
    same number of steps."""
    return mfgx.equilibrium_from_state(game, solver, state, steps, residual, tol)


@dataclass
class RunResult:
    """What `run_solver` returns: the equilibrium and the per-iteration history."""

    equilibrium: mfgx.Equilibrium
    exploitability: np.ndarray  # [steps], after each iteration
    residual: np.ndarray  # [steps]
    wall_time: float  # seconds, compilation included
    first_step_time: float  # seconds for init + the first step (mostly JIT compilation)
    interrupted: bool = False

    @property
    def steps(self) -> int:
        return int(self.residual.size)

    @property
    def converged(self) -> bool:
        return bool(np.asarray(self.equilibrium.converged))


def default_every(steps: int) -> int:
    return max(1, math.ceil(steps / MAX_ROWS))


def run_solver(
    game: mfgx.FiniteGame,
    solver: mfgx.AbstractSolver,
    *,
    steps: int,
    tol: float = 1e-8,
    every: int | None = None,
    console: Console | None = None,
    table: bool = True,
    description: str = "solving",
) -> RunResult:
    """Iterate ``solver.step`` up to ``steps`` times, stopping once the residual is ≤ ``tol`` (or
    NaN, as `mfgx.solve` does), with a Rich progress bar and, if ``table``, a table of
    exploitability and residual every ``every`` iterations (and at the last one)."""
    console = console or Console()
    every = every or default_every(steps)
    rows = Table(title=None, show_edge=False, header_style="bold")
    rows.add_column("iteration", justify="right")
    rows.add_column("exploitability", justify="right")
    rows.add_column("residual", justify="right")
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("expl {task.fields[expl]}"),
        console=console,
    )
    task = progress.add_task(description, total=steps, expl="-")
    expl_hist: list[float] = []
    res_hist: list[float] = []
    interrupted = False

    t0 = time.perf_counter()
    state = _init(solver, game)
    residual = jnp.asarray(jnp.inf, game.mu0.dtype)
    first_step_time = 0.0
    if console.is_terminal:
        display = Live(Group(rows, progress) if table else progress, console=console, refresh_per_second=8)
    else:  # piped or captured output: no live redraws, the table is printed once at the end
        display = contextlib.nullcontext()
    with display:
        try:
            for k in range(1, steps + 1):
                state, residual, expl = _iterate(solver, game, state)
                r, e = float(residual), float(expl)
                if k == 1:
                    first_step_time = time.perf_counter() - t0
                res_hist.append(r)
                expl_hist.append(e)
                stop = not r > tol  # as in mfgx.solve: stop at residual <= tol, or NaN
                if table and (k % every == 0 or stop or k == steps):
                    rows.add_row(str(k), f"{e:.4e}", f"{r:.4e}")
                progress.update(task, completed=k, expl=f"{e:.3e}")
                if stop:
                    break
        except KeyboardInterrupt:
            interrupted = True
    if table and not console.is_terminal:
        console.print(rows)
    n = len(res_hist)
    eq = _equilibrium(solver, game, state, n, residual, tol)
    eq = jax.block_until_ready(eq)
    wall = time.perf_counter() - t0
    return RunResult(eq, np.asarray(expl_hist), np.asarray(res_hist), wall, first_step_time, interrupted)


def summary_line(result: RunResult) -> str:
    eq = result.equilibrium
    if result.interrupted:
        status = "[bold yellow]interrupted[/]"
    elif result.converged:
        status = "[bold green]converged[/]"
    else:
        status = "[bold red]not converged[/]"
    reg = getattr(eq, "regularised_exploitability", None)
    if reg is not None and float(reg) != float(eq.exploitability):
        status += f" (regularised exploitability {float(reg):.4e})"
    return (
        f"{status} after {result.steps} steps: exploitability {float(eq.exploitability):.4e}, "
        f"residual {float(eq.residual):.4e}, wall time {result.wall_time:.2f} s "
        f"(first step incl. JIT compile {result.first_step_time:.2f} s)"
    )


# --------------------------------------------------------------------------------------------
# Commands


@app.command()
def solve(
    game: Annotated[
        str,
        typer.Argument(
            help="Game from the zoo: " + ", ".join(sorted(REGISTRY)) + ".",
            callback=_game_name,
            metavar="GAME",
            show_default=False,
        ),
    ],
    solver: Annotated[
        SolverName,
        typer.Option("--solver", "-s", help="Solver.", case_sensitive=False),
    ] = SolverName.mirror_descent,
    steps: Annotated[int, typer.Option("--steps", "-n", min=1, help="Maximum number of iterations.")] = 200,
    tol: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Stop once the solver's residual is ≤ TOL (fixed-point solvers: ‖Φ(m) − m‖∞; "
            "policy solvers: the exploitability).",
        ),
    ] = 1e-8,
    damping: Annotated[
        float | None, typer.Option(help="Damping λ ∈ [0, 1) of fixed-point and softmax.", show_default=False)
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Temperature τ > 0 of softmax, prior-descent and (regularised) mirror-descent.", show_default=False)
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            "--learning-rate",
            "--lr",
            help="Step size of mirror-descent (> 0), or constant weight ∈ (0, 1] of "
            "fictitious-play (default 1/(k+2)).",
            show_default=False,
        ),
    ] = None,
    n_inner: Annotated[
        int | None,
        typer.Option(min=1, help="prior-descent: reset the prior every N iterations.", show_default=False),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="KEY=VALUE",
            help="Argument of the game's constructor (repeatable), e.g. -p n=40 -p T=20.",
            show_default=False,
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            dir_okay=False,
            help="Save a plot of the final flow, policy and exploitability history (PNG, PDF, SVG).",
            show_default=False,
        ),
    ] = None,
    every: Annotated[
        int | None,
        typer.Option(min=1, metavar="K", help=f"Print a row every K iterations (default: so that at most ~{MAX_ROWS} rows are printed; the last iteration is always printed).", show_default=False),
    ] = None,
) -> None:
    """Solve GAME with a solver, printing exploitability and residual as it converges.

    Solver options that do not apply to the chosen solver are rejected; unset ones keep the solver's defaults. The run stops early once the residual is ≤ --tol. The exploitability is that of the solver's current policy after each iteration.

    Example: [bold]mfgx solve beach_bar --solver mirror-descent --steps 200 --plot flow.png[/]
    """
    console = Console()
    params = _parse_params(param)
    g = make_game(game, params)
    s = make_solver(
        solver, **{"--damping": damping, "--temperature": temperature, "--learning-rate": learning_rate, "--n-inner": n_inner}
    )
    console.print(
        f"[bold]{game}[/]({_fmt_kwargs(params)}): {g.n_states} states, {g.n_actions} actions, "
        f"T = {g.horizon}; solver {s!r}"
    )
    result = run_solver(g, s, steps=steps, tol=tol, every=every, console=console)
    console.print(summary_line(result))
    if plot is not None:
        from mfgx.plot import plot_equilibrium

        plot_equilibrium(
            result.equilibrium,
            path=plot,
            title=f"{game} — {solver.value}: " + _plot_title(result),
            history={"exploitability": result.exploitability},
        )
        console.print(f"plot saved to [bold]{plot}[/]")
    if result.interrupted:
        raise typer.Exit(130)
    if not result.converged:
        reason = "the residual is NaN" if not np.isfinite(float(result.equilibrium.residual)) else (
            "the solution is not a valid population flow" if not bool(result.equilibrium.valid)
            else f"the residual did not reach --tol {tol:g} in {result.steps} steps")
        console.print(f"[red]not converged:[/] {reason} (exit status 1)")
        raise typer.Exit(1)


def _plot_title(result: RunResult) -> str:
    state = "converged" if result.converged else "not converged"
    return f"exploitability {float(result.equilibrium.exploitability):.3g} after {result.steps} steps ({state})"


# --------------------------------------------------------------------------------------------
# Demo


def _run_study(config, out: Path | None, epochs: int | None, progress: bool, console: Console,
               restart: bool = False) -> Path:
    import dataclasses

    from mfgx import studies
    from mfgx.calibrate import CalibrationError

    if out is not None:
        config = dataclasses.replace(config, output=out)
    if epochs is not None:
        config = dataclasses.replace(config, fit={**config.fit, "steps" if config.kind == "covid" else "epochs": epochs})
    if restart:
        config = dataclasses.replace(config, fit={**config.fit, "resume": False})
    console.print(f"[bold]{config.kind} study[/] on [bold]{config.source}[/] → {config.output}")
    try:
        result = studies.run(config, progress=progress, console=console)
    except (CalibrationError, studies.CovidStudyError) as err:
        console.print(f"[red]error:[/] {err}", soft_wrap=True)
        raise typer.Exit(2) from None
    if config.kind == "covid":  # a verdict table: model vs peer, with its interval
        table = Table(title="COVID first wave: verdicts (95 % intervals over seeds and countries)")
        for col in ("comparison", "verdict", "mean", "interval"):
            table.add_column(col, justify="left" if col in ("comparison", "verdict") else "right")
        for name, v in result.verdicts.items():
            table.add_row(name, v.label, f"{v.mean:+.3g}", f"[{v.low:+.3g}, {v.high:+.3g}]")
        console.print(table)
        report = result.out / "report.md"
        console.print(f"report: [bold]{report.resolve()}[/] (figures in {(result.out / 'figures').resolve()})")
        return report
    table = Table(title=f"{config.kind}: baseline vs MFG", show_lines=False)
    for col in ("split", "model", "L2", "rel. L2", "vs baseline"):
        table.add_column(col, justify="right" if col not in ("split", "model") else "left")
    for split in result.metrics["mfg"]:
        for name, per in result.metrics.items():
            imp = f"{result.improvement(split):+.1f} %" if name == "mfg" else ""
            table.add_row(split, name, f"{per[split]['l2']:.3e}", f"{per[split]['rel_l2']:.4f}", imp)
    console.print(table)
    report = result.out / "report.md"
    console.print(f"report: [bold]{report.resolve()}[/] (figures in {(result.out / 'figures').resolve()})")
    return report


_EPOCHS = typer.Option("--epochs", min=1, help="Override [fit] epochs (more epochs resume from checkpoints).")
_PROGRESS = typer.Option("--progress/--no-progress", help="Show a progress bar per fit.")
_RESTART = typer.Option(
    "--restart", help="Start the fits over, overwriting checkpoints (a rerun with changed settings is refused without it)."
)


@app.command()
def calibrate(
    config: Annotated[Path, typer.Option("--config", "-c", help="TOML study configuration (see mfgx.studies).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", file_okay=False, help="Override [study] output.")] = None,
    epochs: Annotated[int | None, _EPOCHS] = None,
    progress: Annotated[bool, _PROGRESS] = True,
    restart: Annotated[bool, _RESTART] = False,
) -> None:
    """Calibrate an MFG and its forward-ODE baseline on data named by a TOML configuration; write
    report.md, metrics.json, figures, fitted models and checkpoints (a rerun resumes)."""
    from mfgx import studies

    console = Console()
    try:
        cfg = studies.load_config(config)
    except (studies.ConfigError, ValueError) as err:
        console.print(f"[red]error:[/] {err}", soft_wrap=True)
        raise typer.Exit(2) from None
    _run_study(cfg, out, epochs, progress, console, restart)


@app.command()
def demo(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", file_okay=False, help="Folder for report.md, figures and checkpoints."),
    ] = Path("outputs/demo"),
    epochs: Annotated[int | None, _EPOCHS] = None,
    progress: Annotated[bool, _PROGRESS] = True,
    restart: Annotated[bool, _RESTART] = False,
) -> None:
    """The COVID first-wave study in its quick setting (bundled WHO data, offline; about a minute):
    SIR without behaviour, with free β(t), and the anticipatory and myopic SIR MFGs, judged on
    3-week forecasts of held-out countries; the report leads with the verdict and its interval.
    --epochs overrides the optimiser steps."""
    from mfgx import studies

    console = Console()
    _run_study(studies.load_config(studies.DEMO_CONFIG), out, epochs, progress, console, restart)


@app.command()
def generate(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML configuration (see mfgx.generative._config).", show_default=False)
    ] = None,
    problem: Annotated[
        str | None, typer.Option("--problem", "-p", help="Without --config: cnf, ot, crowd, jko or sgm, with its defaults.", show_default=False)
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Data: a 2-D toy (moons, 8gaussians, checkerboard, …), gaussian or mixture8.", show_default=False)
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", file_okay=False, help="Override [run] output.", show_default=False)] = None,
    steps: Annotated[int | None, typer.Option("--steps", min=1, help="Override [fit] steps (more steps resume from the checkpoint).", show_default=False)] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Tiny sizes and a few steps: a smoke run.")] = False,
    progress: Annotated[bool, _PROGRESS] = True,
    restart: Annotated[bool, _RESTART] = False,
) -> None:
    """Train a generative flow or diffusion model as a mean-field game (mfgx.generative) and write
    report.md (held-out metrics), metrics.json, figures (samples, density, trajectories, flow.gif,
    losses) and checkpoints into the output folder; a rerun resumes.

    Example: [bold]mfgx generate --problem cnf --data moons --quick[/]
    """
    from mfgx import generative

    console = Console()
    overrides = {"quick": True if quick else None, "output": out, "steps": steps, "data": data}
    try:
        if config is not None:
            if problem is not None:
                raise generative.ConfigError("give --config or --problem, not both (the file names its problem)")
            cfg = generative.load_config(config, **overrides)
        elif problem is not None:
            cfg = generative.default_config(problem, **overrides)
        else:
            raise generative.ConfigError("give --config FILE or --problem cnf|ot|crowd|jko|sgm")
        console.print(f"[bold]generate {cfg.problem}[/] on [bold]{cfg.data['name']}[/] → {cfg.output}"
                      + (" [yellow](quick mode)[/]" if cfg.quick else ""))
        result = generative.run(cfg, progress=progress, restart=restart, console=console)
    except generative.GenerativeError as err:
        from rich.markup import escape

        console.print(f"[red]error:[/] {escape(str(err))}", soft_wrap=True)
        raise typer.Exit(2) from None
    table = Table(title=f"{cfg.problem}: held-out metrics", show_lines=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result.metrics["held_out"].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            table.add_row(k, f"{v:.4g}")
    console.print(table)
    tr = result.metrics["training"]
    if tr["resumed_from_step"]:
        console.print(f"resumed from step {tr['resumed_from_step']} of {tr['steps_run']}")
    console.print(f"report: [bold]{(result.out / 'report.md').resolve()}[/] (figures in {(result.out / 'figures').resolve()})")


def main() -> None:
    """Entry point of the ``mfgx`` script."""
    app()


# --------------------------------------------------------------------------------------------
# Sweeps (mfgx.sweep)


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="TOML sweep file (see mfgx.sweep).", show_default=False)],
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to run on (e.g. 'auto' or 'ray://head:10001'); default: a new local Ray.",
                     show_default=False),
    ] = None,
    num_cpus: Annotated[
        int | None, typer.Option("--num-cpus", min=1, help="CPUs of the local Ray (default: all).", show_default=False)
    ] = None,
    restart: Annotated[bool, typer.Option("--restart", help="Discard every earlier trial and run all again.")] = False,
    collect: Annotated[bool, typer.Option("--collect", help="Only aggregate the finished trials; run nothing.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the live table of trials.")] = True,
) -> None:
    """Run every trial of a sweep (a base configuration over axes and seeds) as a Ray task, then write
    sweep.json, sweep.md (mean ± sd and 95 % t-intervals over seeds) and figures. A rerun skips
    finished trials, resumes interrupted ones from their checkpoints and reruns changed ones.

    Example: [bold]mfgx sweep experiments/sweeps/calibration_paper_smoke.toml --num-cpus 2[/]
    """
    from mfgx import sweep as sweeps

    console = Console()
    try:
        spec = sweeps.load_spec(config)
        result = sweeps.collect(spec) if collect else sweeps.run(
            spec, address=address, num_cpus=num_cpus, restart=restart, progress=progress, console=console)
    except sweeps.SweepError as err:
        console.print(f"[red]error:[/] {err}", soft_wrap=True)
        raise typer.Exit(2) from None
    console.print((result.out / "sweep.md").read_text(encoding="utf-8"), markup=False, soft_wrap=True)
    reused = sum(r["reused"] for r in result.records)
    console.print(f"{len(result.records)} trials ({reused} reused from earlier runs) in {result.seconds:.0f} s; "
                  f"results in [bold]{result.out.resolve()}[/] (sweep.json, sweep.md, figures/)")
    if result.n_failed:
        for r in result.records:
            if r["status"] != "done":
                console.print(f"[red]{r['status']}[/] {r['id']}: {r['error']}", soft_wrap=True)
        raise typer.Exit(1)
