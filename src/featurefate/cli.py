"""Command-line interface: ``featurefate theory|simulate|sweep|verify|export|figure|reproduce``.

Thin wiring only: each command parses its options and calls the library. Invalid values are left
to the library, whose ``ValueError`` names the parameter, the value and the valid range;
:func:`main` prints it as one line, ``error: <message>``, with the parameter named by the flag
the user typed (:mod:`featurefate._usage`), and exits with status 2.
"""

from __future__ import annotations

import json
import math
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from rich.text import Text

import featurefate
from featurefate import _usage
from featurefate import _validation as v
from featurefate._text import count

try:  # recent typer vendors its own copy of click
    from typer._click.exceptions import BadParameter, MissingParameter, UsageError
except ImportError:  # pragma: no cover - typer built on the click package
    from click.exceptions import BadParameter, MissingParameter, UsageError

# Heavy modules (matplotlib, Zarr, Dask, JAX) are imported by the commands that use them, so
# `featurefate --help` and the theory commands start fast.
# the names of featurefate.reproduce.FIGURES (importing it takes seconds; a test keeps them equal)
FIGURE_NAMES = (
    "fig1",
    "fig2",
    "fig3",
    "fig4",
    "fig5",
    "fig6",
    "fig7",
    "mechanism",
    "init_scale",
    "finite_source",
)

app = typer.Typer(
    name="featurefate",
    help="Transfer learning in high-dimensional regression (Features are fate): closed forms, "
    "simulations, sweeps and the paper's figures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
theory_app = typer.Typer(
    help="Closed forms of the paper's Section 3 (the limit D → ∞ unless --dim is given).",
    no_args_is_help=True,
)
app.add_typer(theory_app, name="theory")

Method = Annotated[
    str,
    typer.Option(
        "--method",
        metavar="[linear|ridge|finetune]",
        help="Transfer method: linear transfer (eq. 12), ridge linear transfer (eqs. 14-15) "
        "or fine-tuning (eq. 16).",
    ),
]
Sigma = Annotated[float, typer.Option("--sigma", help="Label-noise standard deviation σ >= 0.")]
Lam = Annotated[
    float | None,
    typer.Option(
        "--lam", help="Ridge penalty λ >= 0; required for --method ridge, and only for it."
    ),
]
Variant = Annotated[
    str | None,
    typer.Option(
        "--variant",
        metavar="[paper|exact]",
        help="Fine-tuning endpoint, for --method finetune only: 'paper' (eq. 16, the default) "
        "or 'exact' (the corrected endpoint X⁺y + c(I-P)β_s, docs/theory.md, Fine-tuning).",
    ),
]
Dim = Annotated[
    int | None,
    typer.Option(
        "--dim", help="Input dimension D for the exact finite-size forms; default the limit D → ∞."
    ),
]
NumAlpha = Annotated[
    int,
    typer.Option("--num-alpha", help="Number of α grid points, α = k α_max / N for k = 1 .. N."),
]
NumTheta = Annotated[
    int, typer.Option("--num-theta", help="Number of θ grid points from 0 to π/2 inclusive.")
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"featurefate {featurefate.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="On an error, show the full traceback instead of one line (also accepted "
            "after the command).",
        ),
    ] = False,
) -> None:
    """Transfer learning in high-dimensional regression (Features are fate)."""


@theory_app.command("phase-diagram")
def phase_diagram_command(
    method: Method,
    sigma: Sigma,
    out: Annotated[
        Path, typer.Option("--out", help="Output directory (created if missing).", metavar="DIR")
    ],
    lam: Lam = None,
    variant: Variant = None,
    alpha_max: Annotated[
        float, typer.Option("--alpha-max", help="Largest α = n / D on the grid.")
    ] = 2.0,
    num_alpha: NumAlpha = 400,
    num_theta: NumTheta = 300,
    dim: Dim = None,
) -> None:
    """Transferability over (α, θ): write <stem>.nc, <stem>.png and <stem>.pdf into --out.

    The stem names the configuration, e.g. phase_ridge_sigma0.2_lam0.1. Prints the paths written.
    """
    from featurefate.experiments.theory_phase import phase_stem
    from featurefate.reproduce import write_phase_diagram

    _usage.check_out_dir(out)
    _usage.check_phase_grid(alpha_max=alpha_max, num_alpha=num_alpha, dim=dim)
    stem = phase_stem(method, sigma, lam=lam, variant=variant, dim=dim)
    paths = write_phase_diagram(
        out,
        stem,
        method,
        sigma,
        lam=lam,
        variant=variant,
        dim=dim,
        alpha_max=alpha_max,
        num_alpha=num_alpha,
        num_theta=num_theta,
    )
    for path in paths:
        typer.echo(path)


def _json_safe(value):
    """JSON has no inf or NaN: write them as the strings 'inf', '-inf' and 'nan'."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _point_table(result: dict) -> Table:
    angle = f"{result['theta']:.6g} rad ({math.degrees(result['theta']):.4g}°)"
    table = Table(
        title=f"{result['method']} at α = {result['alpha']:g}, θ = {angle}, σ = {result['sigma']:g}",
        show_header=True,
    )
    table.add_column("quantity")
    table.add_column("value", justify="right")
    settings = [
        f"{key} = {result[key]}" for key in ("lam", "variant", "dim") if result[key] is not None
    ]
    settings.append("D → ∞" if result["dim"] is None else "finite D")
    table.add_row("setting", ", ".join(settings))
    table.add_row("scratch error R_scratch (eq. 10)", f"{result['scratch_error']:.6g}")
    table.add_row("transfer error R_transfer", f"{result['transfer_error']:.6g}")
    t = result["transferability"]
    sign = "positive" if t > 0 else "negative" if t < 0 else "none" if t == 0 else "undefined"
    table.add_row("transferability T (eq. 7)", f"{t:.6g} ({sign})")
    if "negative_transfer" in result:
        regions = result["negative_transfer"]
        lower, upper = regions["alpha_lower"], regions["alpha_upper"]
        below = "empty" if math.isnan(lower) else f"({lower:.6g}, {upper:.6g})"
        table.add_row("negative-transfer interval of α (D → ∞)", below)
        table.add_row("negative for every α above (D → ∞)", f"{regions['alpha_threshold']:.6g}")
        table.add_row("negative at this α", "yes" if regions["is_negative"] else "no")
    if "break_even_angle" in result:
        table.add_row(
            f"break-even angle θ* ({result['variant']}, D → ∞)",
            f"{result['break_even_angle']:.6g} rad ({result['break_even_angle_deg']:.4g}°)",
        )
    return table


@theory_app.command("point")
def point_command(
    method: Method,
    alpha: Annotated[float, typer.Option("--alpha", help="Samples per dimension α = n / D > 0.")],
    theta: Annotated[
        float,
        typer.Option("--theta", help="Angle between source and target, radians in [0, π]."),
    ],
    sigma: Sigma,
    lam: Lam = None,
    variant: Variant = None,
    dim: Dim = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object instead of a table. JSON has no inf or NaN: they are "
            'written as the strings "inf", "-inf" and "nan" (Python\'s float() reads them back).',
        ),
    ] = False,
) -> None:
    """Errors and transferability at one point, with negative-transfer regions or break-even angle.

    For linear transfer: the negative-transfer regions in α at this θ and σ; for fine-tuning:
    its break-even angle.
    """
    from featurefate.experiments.theory_phase import theory_point

    result = theory_point(method, alpha, theta, sigma, lam=lam, variant=variant, dim=dim)
    if as_json:
        typer.echo(json.dumps(_json_safe(result), allow_nan=False))
    else:
        Console().print(_point_table(result))


simulate_app = typer.Typer(
    help="Simulate deep linear networks trained by gradient descent, with the theory alongside.",
    no_args_is_help=True,
)
app.add_typer(simulate_app, name="simulate")


def _simulation_table(summary: list[dict], cell: dict) -> Table:
    table = Table(
        title=f"D = {cell['dim']}, L = {cell['depth']}, α = {cell['alpha']:g} (n = {cell['n']}), "
        f"θ = {cell['theta']:.4g}, σ = {cell['sigma']:g}, {cell['instances']} instances"
        + (
            ""
            if cell.get("alpha_source") is None
            else f", pretrained on α_s = {cell['alpha_source']:g} source samples per dimension "
            f"(σ_s = {cell['sigma_source']:g})"
        ),
    )
    for name in ("method", "error", "theory", "T", "theory T", "conv.", "steps", "gap"):
        table.add_column(name, justify="left" if name == "method" else "right", no_wrap=True)

    def fmt(value, se=None):
        if value is None:
            return "-"
        return f"{value:.4f}" if se is None else f"{value:.4f}±{se:.4f}"

    for row in summary:
        table.add_row(
            row["method"],
            fmt(row["mean_error"], row["stderr"]),
            fmt(row["theory_error"]),
            fmt(row["transferability"], row["transferability_stderr"]),
            fmt(row["theory_transferability"]),
            row.get("converged", "-"),
            str(row.get("max_steps_taken", "-")),
            f"{row['max_endpoint_gap']:.1e}" if "max_endpoint_gap" in row else "-",
        )
    table.caption = (
        "error: mean |w - β_t|² ± standard error; T = R_scratch - R_method (paired over "
        "instances); theory: exact finite-size forms at this D; gap: largest distance of a "
        "trained endpoint from its exact gradient-flow endpoint"
    )
    return table


@simulate_app.command("point")
def simulate_point_command(
    alpha: Annotated[float, typer.Option("--alpha", help="Samples per dimension α = n / D > 0.")],
    theta: Annotated[
        float, typer.Option("--theta", help="Angle between source and target, radians in [0, π].")
    ],
    sigma: Sigma,
    dim: Annotated[int, typer.Option("--dim", help="Width = input dimension D.")] = 100,
    depth: Annotated[int, typer.Option("--depth", help="Number of layers L >= 2.")] = 2,
    lam: Annotated[
        list[float] | None,
        typer.Option(
            "--lam",
            metavar="LAM",
            help="Ridge penalty λ >= 0 for ridge transfer; repeat for several (default: 0.1).",
        ),
    ] = None,
    instances: Annotated[
        int, typer.Option("--instances", help="Independent random instances K >= 2.")
    ] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Root seed of all randomness.")] = 0,
    init_scale: Annotated[
        float, typer.Option("--init-scale", help="Initialisation scale (the paper: 1e-5).")
    ] = 1e-5,
    init: Annotated[
        str,
        typer.Option(
            "--init",
            help="random (the authors'), balanced (assumption 22), or rank_one (an exactly "
            "balanced rank-one chain, trained in O(D) per step: fast at large D).",
        ),
    ] = "random",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    alpha_source: Annotated[
        float | None,
        typer.Option(
            "--alpha-source",
            help="Pretrain on n_s = α_s D noisy source samples (α_s > 0) instead of the source "
            "population; the theory is then the finite-source form (docs/theory.md, Finite "
            "source data).",
        ),
    ] = None,
    sigma_source: Annotated[
        float,
        typer.Option("--sigma-source", help="Label noise σ_s >= 0 of the source samples."),
    ] = 0.0,
) -> None:
    """Pretrain, then scratch / linear / ridge / fine-tune at one (α, θ, σ); compare with theory."""
    from featurefate.experiments.linear_phase import LinearPhaseConfig, run_cell, summarize

    v.integer("--seed", seed, low=0)
    _usage.check_simulation_size(
        dim=dim, depth=depth, instances=instances, alpha=alpha, rank_one=init == "rank_one"
    )
    config = LinearPhaseConfig(
        dim=dim,
        depth=depth,
        init_scale=init_scale,
        init=init,
        n_instances=instances,
        lam=tuple(lam) if lam else (0.1,),
        alpha_source=alpha_source,
        sigma_source=sigma_source,
    )
    cell = {"alpha": alpha, "theta": theta, "sigma": sigma}
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("step {task.completed:>6.0f} (limit {task.total:.0f})"),
        TimeElapsedColumn(),
    )
    with _LazyProgress(*columns, console=Console(stderr=True), transient=True) as bar:
        tasks = {}

        def progress(stage, steps, max_steps):
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max_steps)
            bar.update(tasks[stage], completed=steps)

        ds = run_cell(config, cell, seed, progress=progress)
    summary = summarize(ds)
    info = {
        "dim": dim,
        "depth": depth,
        "alpha": float(ds.alpha),
        "n": int(ds.n),
        "theta": theta,
        "sigma": sigma,
        "instances": instances,
        "seed": seed,
        "init_scale": init_scale,
        "init": init,
        "alpha_source": alpha_source,
        "sigma_source": sigma_source,
    }
    if as_json:
        typer.echo(json.dumps(_json_safe({**info, "methods": summary}), allow_nan=False))
    else:
        Console(width=max(Console().width, 110)).print(_simulation_table(summary, info))


Workers = Annotated[
    int | None,
    typer.Option("--workers", help="Local worker processes (default: one per core)."),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        metavar="tcp|tls://HOST:PORT",
        help="Run the cells on this running Dask scheduler instead of local processes "
        "(tls:// with the --tls-* options or Dask's TLS config).",
    ),
]


class _TaskColumn(ProgressColumn):
    """A progress column whose text is ``render(task)``, recomputed at every refresh."""

    def __init__(self, render) -> None:
        self._render = render
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task) -> Text:
        return Text(self._render(task))


class _LazyProgress(Progress):
    """A progress display that starts with its first task: an error before it (a bad value
    found by the library) leaves nothing on the terminal but its own line, where a started
    display would leave a blank line."""

    def __enter__(self) -> _LazyProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self.live.is_started:
            self.stop()

    def add_task(self, *args, **kwargs):
        if not self.live.is_started:
            self.start()
        return super().add_task(*args, **kwargs)


def _cell_progress(console: Console) -> Progress:
    return _LazyProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _TaskColumn(_rate),
        TextColumn("ETA"),
        _TaskColumn(_eta),
        TimeElapsedColumn(),
        console=console,
    )


def _elapsed(task) -> float | None:
    """Seconds since the task was added (its sweep started); frozen when it finished."""
    return task.finished_time if task.finished else task.elapsed


def _rate(task) -> str:
    """Mean rate since the task was added: units done / seconds elapsed (figures or cells).

    Not rich's ``task.speed``: that one divides the completions of the last 30 s, less the
    first, by the time between the first and the last, so cells finishing together on parallel
    workers read as hundreds per second, and the time to the first finished cell is not counted.
    """
    unit = "figures" if task.description == "figures" else "cells"
    elapsed = _elapsed(task)
    if not task.completed or not elapsed:
        return f"  -   {unit}/s"
    rate = task.completed / elapsed
    return f"{rate:5.2f} {unit}/s" if rate >= 0.1 else f"{60 * rate:5.2f} {unit}/min"


def _eta(task) -> str:
    """Time left at the mean rate of :func:`_rate`, h:mm:ss; 0:00:00 when finished."""
    if task.finished:
        return "0:00:00"
    elapsed = _elapsed(task)
    if not task.completed or not elapsed or task.total is None:
        return "-:--:--"
    left = math.ceil((task.total - task.completed) * elapsed / task.completed)
    minutes, seconds = divmod(left, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{seconds:02d}"


def _advance(progress: Progress, tasks: dict, name: str, done: int, total: int) -> None:
    if name not in tasks:
        tasks[name] = progress.add_task(name, total=total)
    progress.update(tasks[name], completed=done, total=total)


@contextmanager
def _sigterm_as_interrupt():
    """A SIGTERM stops a sweep like Ctrl-C: finished cells are kept, nothing else is lost."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. under a test runner)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command("sweep")
def sweep_command(
    config: Annotated[
        Path,
        typer.Argument(
            help="Sweep configuration: a TOML file, or a bundled config's name "
            "(`featurefate configs` lists them).",
            metavar="CONFIG",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Result store (a Zarr directory).", metavar="STORE")
    ],
    workers: Workers = None,
    scheduler: Scheduler = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Finish an interrupted sweep of the same config in STORE."),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Remove the featurefate store at STORE and start it afresh."
        ),
    ] = False,
    tls_ca_file: Annotated[
        Path | None,
        typer.Option(
            "--tls-ca-file",
            metavar="FILE",
            help="The cluster's CA certificate (PEM), for a tls:// scheduler "
            "(`featurefate cluster-certs` makes one). Without the --tls-* options, Dask's "
            "config distributed.comm.tls.* names the files.",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", metavar="FILE", help="This client's certificate (PEM)."),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", metavar="FILE", help="This client's private key (PEM)."),
    ] = None,
    connect_timeout: Annotated[
        float,
        typer.Option(
            "--connect-timeout",
            metavar="SECONDS",
            help="Give up on an unreachable --scheduler after this long (exit status 2).",
        ),
    ] = 10.0,
) -> None:
    """Run an experiment over the grid of CONFIG into the store --out.

    Everything is checked before anything starts: the config (every cell's parameters and
    training options) and the store (one sweep at a time writes it: a second is refused while
    STORE.lock names a live holder). Each finished cell is written at once. A failing cell is
    reported with its parameters and the others go on; the exit status is 1 when any cell
    failed or the cluster was lost, 130 when interrupted (resume with --resume).
    """
    from featurefate import sweep as sweeps
    from featurefate.sweep.executors import check_executor

    v.real_array("--connect-timeout", connect_timeout, low=0.0, low_open=True)
    check_executor(workers=workers, scheduler=scheduler, timeout=connect_timeout)
    sweep_config = sweeps.load_config(config)
    sweeps.check_sweep(sweep_config, out, resume=resume, overwrite=overwrite)
    security = sweeps.cluster_security(scheduler, ca_file=tls_ca_file, cert=tls_cert, key=tls_key)
    console = Console(stderr=True)
    tasks: dict = {}
    report = None
    try:
        with (
            _sigterm_as_interrupt(),
            sweeps.executor(
                workers=workers, scheduler=scheduler, security=security, timeout=connect_timeout
            ) as pool,
            _cell_progress(console) as progress,
        ):
            report = sweeps.run_sweep(
                sweep_config,
                out,
                executor=pool,
                resume=resume,
                overwrite=overwrite,
                progress=lambda done, total: _advance(progress, tasks, "cells", done, total),
                log=lambda message: console.print(f"note: {message}", markup=False, soft_wrap=True),
            )
            if report.interrupted:  # leave the pool without waiting for the cells in flight
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        if report is None:  # before the sweep began: nothing was written
            raise
    except sweeps.SchedulerUnreachable as err:
        _fail(err, 2)
    for failure in report.failed:
        print(f"error: {failure.describe()}", file=sys.stderr)
    summary = (
        f"{out}: {count(report.completed, 'cell')} computed, {report.skipped} already done, "
        f"{len(report.failed)} failed, of {report.total}, in {report.wall_time:.1f} s"
    )
    typer.echo(summary)
    if report.interrupted:
        print(f"interrupted: resume with --resume --out {out}", file=sys.stderr)
        raise SystemExit(130)
    if report.failed:
        raise SystemExit(1)


@app.command("cluster-certs")
def cluster_certs_command(
    directory: Annotated[
        Path, typer.Argument(help="Directory for the files (created if missing).", metavar="DIR")
    ],
    hosts: Annotated[
        list[str] | None,
        typer.Option(
            "--hosts",
            metavar="HOST[,HOST...]",
            help="Names and IP addresses of the cluster's machines, the scheduler's first "
            "(default: this machine, localhost, 127.0.0.1); repeat or separate by commas.",
        ),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", help="Days the certificates are valid.", metavar="N")
    ] = 365,
    port: Annotated[
        int, typer.Option("--port", help="The scheduler's port, for the commands printed.")
    ] = 8786,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the files of an earlier run.")
    ] = False,
) -> None:
    """Make TLS certificates for a lab cluster and print the commands that use them.

    A CA, and a certificate and key each for the scheduler, the workers and the client. Keys
    are readable by their owner only. Copy ca.pem and a role's two files to each machine of
    that role; keep ca-key.pem where it is.
    """
    from featurefate.sweep import certs as cluster_certs

    # everything checked before the first file is written
    v.integer("--days", days, low=1)
    v.integer("--port", port, low=1, high=65535)
    names = [name for item in hosts or [] for name in item.split(",") if name.strip()]
    made = cluster_certs.make_cluster_certs(directory, hosts=names, days=days, force=force)
    for path in made.files():
        typer.echo(f"wrote {path}")
    commands = cluster_certs.command_lines(made, port=port)
    typer.echo("\nscheduler (one machine):")
    typer.echo(f"  {commands['scheduler']}")
    typer.echo("workers (each worker machine; one single-threaded process per core):")
    typer.echo(f"  {commands['worker']}")
    typer.echo("sweep (the machine that holds the store):")
    typer.echo(f"  {commands['sweep']}")


@app.command("configs")
def configs_command() -> None:
    """List the bundled sweep configs: name, experiment, cells and description.

    Name one in `featurefate sweep NAME --out STORE` from any directory; the files are under the
    path printed last, to copy and edit.
    """
    from featurefate import sweep as sweeps

    table = Table(box=None, pad_edge=False)
    for column in ("name", "experiment", "cells", "description"):
        table.add_column(column, justify="right" if column == "cells" else "left")
    bundled = sweeps.bundled_configs()
    for name, path in bundled.items():
        config = sweeps.load_config(path)
        cells = math.prod(config.shape)
        table.add_row(name, config.experiment, str(cells), config.description)
    Console(width=max(Console().width, 120)).print(table)
    folder = next(iter(bundled.values())).parent if bundled else None
    typer.echo(f"files: {folder}")


@app.command("export")
def export_command(
    store: Annotated[Path, typer.Argument(help="Result store of a sweep.", metavar="STORE")],
    netcdf: Annotated[Path, typer.Option("--netcdf", help="NetCDF file to write.", metavar="FILE")],
) -> None:
    """Write a sweep's results to one NetCDF file (cells not done are NaN)."""
    from featurefate import sweep as sweeps

    finished, total = sweeps.require_cells(store, what="export")
    _note(sweeps.partial_note(store, finished, total))
    typer.echo(sweeps.export_netcdf(store, netcdf))


def _note(message: str) -> None:
    if message:
        print(f"note: {message}", file=sys.stderr)


@app.command("verify")
def verify_command(
    store: Annotated[Path, typer.Argument(help="Result store of a sweep.", metavar="STORE")],
) -> None:
    """Check a store's integrity and count its cells.

    Checks that every finished cell is readable and complete in every variable, that the
    recorded config identity is consistent and the grid matches; counts the finished and the
    half-written cells (recomputed by --resume). Prints one line of counts, then one per
    problem; exit status 1 when there is a problem.
    """
    from featurefate import sweep as sweeps

    check = sweeps.verify_store(store)
    for line in check.lines():
        typer.echo(line)
    if not check.ok:
        raise SystemExit(1)


@app.command("figure")
def figure_command(
    name: Annotated[
        str, typer.Argument(help=f"One of: {', '.join(FIGURE_NAMES)}.", metavar="NAME")
    ],
    data: Annotated[Path, typer.Option("--data", help="Result store of a sweep.", metavar="STORE")],
    out: Annotated[
        Path, typer.Option("--out", help="Output directory (created if missing).", metavar="DIR")
    ] = Path("figures"),
) -> None:
    """Draw one figure from a sweep's store; prints the files written (PNG and PDF)."""
    import featurefate.reproduce as paper
    from featurefate import sweep as sweeps

    v.choice("figure", name, paper.FIGURES)
    _usage.check_out_dir(out)
    finished, total = sweeps.require_cells(data, what="draw")
    _note(sweeps.partial_note(data, finished, total))
    ds = sweeps.open_results(data)
    paths = paper.make_figure(name, ds, out)
    if not paths:
        raise ValueError(f"the store {data} cannot make figure {name}: {_figure_needs(name, ds)}")
    for path in paths:
        typer.echo(path)


def _figure_needs(name: str, ds) -> str:
    """What figure ``name`` needs that the store's dataset ``ds`` lacks, in words."""
    sigmas = ", ".join(f"{s:g}" for s in ds.sigma.values) if "sigma" in ds.coords else "none"
    if name == "finite_source":
        return "it needs a store pretrained on finite source data (an alpha_source grid axis)"
    if "alpha_source" in ds.dims:
        return "the store pretrains on finite source data (alpha_source): draw finite_source"
    if name in ("fig6", "fig7"):
        return f"it needs sigma = 0 in the store; the store's sigma: {sigmas}"
    if name in ("fig1", "fig2", "fig3"):
        return f"it needs a sigma > 0 in the store; the store's sigma: {sigmas}"
    return "the store lacks the data it draws"


@app.command("explore")
def explore_command(
    out: Annotated[
        Path, typer.Option("--out", help="Output directory (created if missing).", metavar="DIR")
    ] = Path("explorer"),
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            metavar="STORE",
            help="A linear_phase result store whose simulated signs the page overlays.",
        ),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Serve DIR on 127.0.0.1 and open the page in the browser."),
    ] = False,
    port: Annotated[
        int, typer.Option("--port", help="Port for --serve in [0, 65535] (0: a free one).")
    ] = 0,
) -> None:
    """Write the interactive phase-diagram explorer: DIR/index.html and DIR/theory.mjs.

    The page computes the closed forms in the browser (sliders for σ, λ, the norms, the depth
    and D) and works from file:// without network. Prints the files written.
    """
    import threading
    import webbrowser

    from featurefate import explore

    v.integer("--port", port, low=0, high=65535)
    _usage.check_out_dir(out)
    for path in explore.write_explorer(out, data=data):
        typer.echo(path)
    if not serve:
        return
    server = explore.serve(out, port=port, background=True)
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    print(f"serving {out} at {url} (Ctrl-C stops)", file=sys.stderr)
    try:
        webbrowser.open(url)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


@app.command("reproduce")
def reproduce_command(
    out: Annotated[
        Path, typer.Option("--out", help="Output directory (created if missing).", metavar="DIR")
    ] = Path("results"),
    scale: Annotated[
        str,
        typer.Option(
            "--scale",
            metavar="[quick|paper]",
            help="quick: small sizes, 1-2 minutes on 2 cores; paper: the authors' sizes, "
            "measured 1 h 48 min for all paper configs on a loaded 2-core machine "
            "(docs/paper-scale/index.md).",
        ),
    ] = "quick",
    workers: Workers = None,
    scheduler: Scheduler = None,
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="Run this sweep config instead of the scale's bundled ones; repeat for several.",
        ),
    ] = None,
    num_alpha: NumAlpha = 400,
    num_theta: NumTheta = 300,
) -> None:
    """Run the sweeps of --scale, draw every figure and write DIR/report.md.

    Stores go to DIR/data (rerunning resumes them), figures to DIR/figures as PNG and PDF.
    Prints the report's path.
    """
    import featurefate.reproduce as paper

    paper.grid(num_alpha=num_alpha, num_theta=num_theta)  # checked before anything starts
    _usage.check_out_dir(out)
    console = Console(stderr=True)
    tasks: dict = {}
    with _sigterm_as_interrupt(), _cell_progress(console) as progress:
        result = paper.reproduce(
            scale,
            out,
            workers=workers,
            scheduler=scheduler,
            configs=config or None,
            theory_resolution=(num_alpha, num_theta),
            progress=lambda name, done, total: _advance(progress, tasks, name, done, total),
        )
    for failure in result.failures:
        print(f"error: {failure}", file=sys.stderr)
    if result.interrupted:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        raise SystemExit(130)
    typer.echo(result.report)
    if result.failures:
        raise SystemExit(1)


@app.command("diagnose")
def diagnose_command(
    data: Annotated[
        Path,
        typer.Argument(
            help="Your data: a .npz with arrays X (n, D), y (n,) or (n, c) and features (n, k); "
            "or X.npy with --y and --features; or a .csv/.parquet table whose columns x_* are X, "
            "y or y_* the targets and f_* the features.",
            metavar="DATA",
        ),
    ],
    y_path: Annotated[
        Path | None, typer.Option("--y", help="Targets .npy, when DATA is X.npy.", metavar="FILE")
    ] = None,
    features_path: Annotated[
        Path | None,
        typer.Option("--features", help="Features .npy, when DATA is X.npy.", metavar="FILE"),
    ] = None,
    scratch: Annotated[
        str,
        typer.Option(
            "--scratch",
            metavar="[min-norm|ridge|mlp]",
            help="Scratch learner: the minimum-norm fit on X (deep linear theory, eq. 10), ridge "
            "on X, or scikit-learn's MLPRegressor (power law plus floor).",
        ),
    ] = "min-norm",
    repeats: Annotated[int, typer.Option("--repeats", help="Random splits per size.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the splits and bootstrap.")] = 0,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object (n, transferability, verdict, crossover_n, "
            'irreducible_error, parameters, logme, curves); inf and NaN as strings "inf", "nan".',
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the figure diagnose.png/.pdf to this directory.", metavar="DIR"
        ),
    ] = None,
) -> None:
    """Will pretrained features help on my data? Predicts linear transfer against scratch
    training at your n from learning curves on your data (docs/diagnose.md)."""
    from featurefate import diagnosis

    choice = v.choice("scratch", scratch, ("min-norm", "ridge", "mlp"))
    if out is not None:
        _usage.check_out_dir(out)
    if choice == "mlp":
        from sklearn.neural_network import MLPRegressor

        learner = MLPRegressor(max_iter=500, random_state=seed)
    else:
        learner = choice.replace("-", "_")
    X, y, features = diagnosis.load_data(data, y=y_path, features=features_path)
    result = diagnosis.diagnose(X, y, features, scratch=learner, repeats=repeats, seed=seed)
    paths = []
    if out is not None:
        from featurefate.figures.diagnose import plot_diagnosis
        from featurefate.figures.phase import save_figure

        paths = save_figure(plot_diagnosis(result.curves, title=str(data)), out, "diagnose")
    if as_json:
        typer.echo(json.dumps(diagnosis.json_ready(result), allow_nan=False))
    else:
        t, r = result.transferability, result.irreducible_error
        level = f"{100 * result.settings['confidence']:.0f}%"
        cross = "none in range" if result.crossover_n is None else f"{result.crossover_n:.4g}"
        table = Table(title=f"diagnose {data} (n = {result.n})", show_header=False)
        table.add_row(
            "transferability T at n", f"{t.estimate:.4g}  [{t.low:.4g}, {t.high:.4g}] ({level})"
        )
        table.add_row("verdict", result.verdict)
        table.add_row("crossover n (scratch wins beyond)", cross)
        table.add_row("irreducible error", f"{r.estimate:.4g}  [{r.low:.4g}, {r.high:.4g}]")
        table.add_row("LogME (You et al., 2021)", f"{result.logme:.4g}")
        Console().print(table)
    for path in paths:
        typer.echo(path, err=as_json)


def _fail(err: Exception | str, code: int) -> None:
    message = " ".join(str(err).split())
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _one_line_paragraphs(text: str | None) -> str | None:
    """``text`` with each paragraph on one line: the help rewraps it to the terminal's width
    (the source's line breaks would stay, and break lines mid-sentence at 80 columns)."""
    if not text:
        return text
    paragraphs = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "\n\n".join(paragraphs)


def _for_the_terminal(command, ctx=None):
    """``command`` (and its subcommands) with help that reads well at 80 columns: paragraphs
    rewrapped (:func:`_one_line_paragraphs`), and no type shown for an on/off flag (typer's
    help shows ``--resume <bool>``, which reads as if the flag took a value)."""
    command.help = _one_line_paragraphs(command.help)
    ctx = typer.Context(command, parent=ctx, info_name=command.name)
    for param in command.get_params(ctx):  # with the --help option
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _for_the_terminal(sub, ctx)
    return command


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    Every bad input ends in one line on stderr, ``error: <message>``, and no traceback: usage
    errors (a missing, unknown or malformed option, a value the parser cannot read), a
    ``ValueError`` from the library (an out-of-range or unknown value, named by the flag the
    user typed) and a scheduler that cannot be reached exit with status 2; an ``OSError``
    (e.g. an unwritable --out, a scheduler lost mid-sweep) with status 1; so do a
    diverged training run, running out of memory and any other error (a bug: its type and
    message, and a pointer to ``--debug``). With ``--debug`` (before or after the command)
    the error propagates with its traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    command_name = _usage.command_of(argv)
    command = _for_the_terminal(typer.main.get_command(app))
    try:
        code = command.main(args=argv, prog_name="featurefate", standalone_mode=False)
    except UsageError as err:
        if not err.format_message():  # no arguments at all: the help was printed
            raise SystemExit(0) from None
        param = getattr(err, "param", None)
        unreadable = isinstance(err, BadParameter) and not isinstance(err, MissingParameter)
        if unreadable and getattr(param, "opts", None):
            _fail(_usage.unreadable_value(param.opts, err.message, argv), 2)
        _fail(err.format_message(), 2)
    except typer.Abort:
        _fail("aborted", 1)
    except typer.Exit:
        raise
    except Exception as err:
        if debug:
            raise
        if isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in str(err):
            _fail(f"out of memory ({type(err).__name__}): choose smaller sizes", 1)
        if isinstance(err, ValueError):
            _fail(_usage.in_flags(str(err), command_name), 2)
        if isinstance(err, OSError | FloatingPointError):  # FloatingPointError: diverged
            _fail(err, 1)
        _fail(
            f"unexpected {type(err).__name__}: {err} (a bug; `featurefate --debug ...` shows "
            "the traceback)",
            1,
        )
    except KeyboardInterrupt:
        if debug:
            raise
        _fail("interrupted", 130)
    raise SystemExit(code if isinstance(code, int) else 0)
