"""`shiftrl bench SUITE ...` (suites, and `throughput`) and `shiftrl report DIR`.

Registered on the main app by `shiftrl.cli`, which wraps them in its one-line error handler.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from shiftrl.core.errors import ConfigError

THROUGHPUT = "throughput"
MODEL_BASED = ("mopo", "mobile")
"""`bench throughput --algo` values measured phase by phase (`bench/throughput_mb.py`)."""


def bench(
    suite: Annotated[
        str | None,
        typer.Argument(help="suite name (smoke, locomotion, dara, ...) or 'throughput'"),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", help="quick (CPU budget) or paper; or a scaled label such as quick-20k"
        ),
    ] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="local or ray")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="parallel jobs (default: the cores)")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="e.g. 0,1,2 or 0-4 (default: the profile's)")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="glob on job ids / cell names, e.g. 'hopper-*' (repeatable)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="study folder (default runs/bench/SUITE-PROFILE, e.g. smoke-quick or, with "
            "--steps 20000, smoke-quick-20k)",
        ),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster to join (default: start one)")
    ] = None,
    cpus_per_job: Annotated[
        float | None, typer.Option("--cpus-per-job", help="Ray: CPUs each job reserves")
    ] = None,
    gpus_per_job: Annotated[
        float | None, typer.Option("--gpus-per-job", help="Ray: GPUs each job reserves")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="live table of jobs")
    ] = None,
    algo: Annotated[
        str | None,
        typer.Option(
            "--algo", help="throughput: td3bc | iql | cql | bc, or mopo | mobile (cost per phase)"
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            help="suites: run the profile at N gradient steps (evaluation interval and add-on "
            "steps scaled in proportion; study labelled e.g. quick-20k); throughput: updates "
            "(default 2000)",
        ),
    ] = None,
    online_steps: Annotated[
        int | None,
        typer.Option(
            "--online-steps",
            help="suites: every online phase of offline-to-online cells at N environment "
            "steps (online evaluation interval in proportion; label e.g. quick-10k-online20k)",
        ),
    ] = None,
    vmap_seeds: Annotated[
        int,
        typer.Option(
            "--vmap-seeds",
            help="suites: train up to N seeds of a cell as one vmapped program (fast on a GPU; "
            "same run folders); throughput: also time N seeds vmapped",
        ),
    ] = 1,
    reuse: Annotated[
        list[Path] | None,
        typer.Option(
            "--reuse",
            help="suites: copy in the finished runs of this study folder whose configuration "
            "is exactly a job's, instead of training them again (repeatable)",
        ),
    ] = None,
    as_json: Annotated[bool | None, typer.Option("--json", help="throughput: JSON")] = None,
    peers: Annotated[
        bool | None,
        typer.Option("--peers/--no-peers", help="throughput: also measure d3rlpy when installed"),
    ] = None,
) -> None:
    """Run a benchmark suite (resumable, parallel), or `bench throughput`; no SUITE lists them.

    A suite writes one run folder per job under --out, skips finished jobs and resumes interrupted ones; then run `shiftrl report DIR`. `--steps N` runs the profile at N gradient steps instead of its own (e.g. quick at 20,000 on a CPU machine), as its own study (profile `quick-20k`); `--online-steps M` sets the online phases of offline-to-online suites (`o2o`) to M steps (profile `quick-20k-online50k`). `--reuse DIR` copies in DIR's finished runs of identically configured jobs (baseline cells shared between suites).

    `bench throughput` measures gradient updates per second at paper sizes beside d3rlpy and a minimal fused JAX loop (options --algo, --steps, --json, --peers).
    """
    suite_opts = {
        "--profile": profile,
        "--backend": backend,
        "--workers": workers,
        "--seeds": seeds,
        "--only": only,
        "--out": out,
        "--ray-address": ray_address,
        "--cpus-per-job": cpus_per_job,
        "--gpus-per-job": gpus_per_job,
        "--progress": progress,
        "--online-steps": online_steps,
        "--reuse": reuse,
    }
    throughput_opts = {"--algo": algo, "--json": as_json, "--peers": peers}
    if suite == THROUGHPUT:
        _reject(suite_opts, "of suites, not of `bench throughput`")
        if algo in MODEL_BASED:
            _model_based_throughput(algo, steps, vmap_seeds, peers, as_json)
            return
        from shiftrl.bench.throughput import print_report, run_throughput

        report = run_throughput(
            algo or "td3bc",
            steps or 2000,
            with_peers=True if peers is None else peers,
            vmap_seeds=vmap_seeds,
        )
        if as_json:
            typer.echo(json.dumps(report))
        else:
            print_report(report)
        return
    _reject(throughput_opts, "of `bench throughput`, not of suites")
    if suite is None:
        _list_suites()
        return

    from shiftrl.bench.runner import run_suite
    from shiftrl.bench.suites import get_suite

    spec = get_suite(suite)
    if spec.placeholder and spec.cells:
        typer.echo(f"note: suite '{suite}' is a placeholder: {spec.placeholder}", err=True)
    result = run_suite(
        suite,
        profile or "quick",
        backend=backend or "local",
        workers=workers,
        seeds=seeds,
        only=only,
        out=out,
        ray_address=ray_address,
        cpus_per_job=cpus_per_job,
        gpus_per_job=gpus_per_job,
        progress=True if progress is None else progress,
        echo=typer.echo,
        steps=steps,
        online_steps=online_steps,
        vmap_seeds=vmap_seeds,
        reuse=tuple(reuse or ()),
    )
    typer.echo(result.summary())
    if result.failed:
        typer.echo(
            f"{len(result.failed)} job(s) failed (first: {result.failed[0].job.id}: "
            f"{result.failed[0].message}); logs in {result.dir / 'logs'}",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"report: shiftrl report {result.dir}")


def _reject(given: dict, where: str) -> None:
    for flag, value in given.items():
        if value is not None:
            raise ConfigError(f"{flag} is an option {where}")


def _list_suites() -> None:
    from rich.console import Console
    from rich.table import Table

    from shiftrl.bench.suites import get_suite, suite_names

    table = Table(title="benchmark suites (shiftrl bench SUITE)")
    for col in ("suite", "cells", "quick", "paper", "description"):
        table.add_column(col)
    for name in suite_names():
        s = get_suite(name)
        jobs = {p: f"{len(s.cells) * len(s.budget(p).seeds)} jobs" for p in ("quick", "paper")}
        desc = s.description + (f" [yellow](waiting: {s.placeholder})" if s.placeholder else "")
        table.add_row(name, str(len(s.cells)), jobs["quick"], jobs["paper"], desc)
    table.add_row(THROUGHPUT, "", "", "", "updates/s beside d3rlpy and a fused JAX loop")
    Console().print(table)


def report(
    study_dir: Annotated[Path, typer.Argument(help="a study folder written by `shiftrl bench`")],
    fmt: Annotated[str, typer.Option("--format", help="md or html")] = "md",
    reps: Annotated[int, typer.Option("--reps", help="bootstrap resamples for the CIs")] = 10_000,
    runs: Annotated[
        bool, typer.Option("--runs", help="print one line per run instead (progress, scores)")
    ] = False,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="with --runs: a logged key or glob (e.g. 'addon/dara/*'), mean of its last "
            "--window values per run; repeatable",
        ),
    ] = None,
    window: Annotated[int, typer.Option("--window", help="rows averaged per --metric")] = 3,
) -> None:
    """Score tables (final, last three, best, paired by seed), aggregates, plots; or --runs.

    With --runs: one line per run (also mid-sweep), with any logged metric beside its scores.
    """
    if runs:
        if fmt != "md":
            raise ConfigError(
                "--runs prints a table (markdown when piped); --format is for reports"
            )
        _print_runs(study_dir, metric or [], window)
        return
    if metric:
        raise ConfigError("--metric goes with --runs")
    from shiftrl.bench.report import write_report

    if reps < 100:
        raise ConfigError("--reps must be at least 100")
    path = write_report(study_dir, fmt, reps)
    typer.echo(f"wrote {path} (plots in {path.parent / 'plots'})")


def _print_runs(study_dir: Path, patterns: list[str], window: int) -> None:
    from shiftrl.bench.render import to_markdown
    from shiftrl.bench.run_table import run_lines, table

    header, rows = table(run_lines(study_dir, patterns, window))
    if not sys.stdout.isatty():  # piped or redirected: a markdown table
        typer.echo(to_markdown([("table", header, rows)]).rstrip())
        return
    from rich.console import Console
    from rich.table import Table

    out = Table(*header, title=f"{study_dir}: {len(rows)} runs")
    for row in rows:
        out.add_row(*row)
    Console().print(out)


def _model_based_throughput(algo: str, steps, vmap_seeds, peers, as_json) -> None:
    """MOPO's / MOBILE's three phases beside fused loops of the same work."""
    from shiftrl.core.errors import ConfigError

    if vmap_seeds not in (None, 1) or peers:
        raise ConfigError(f"--vmap-seeds and --peers are not measured for {algo}")
    from shiftrl.bench.throughput_mb import print_mb_report, run_mb_throughput

    report = run_mb_throughput(algo, steps or 500)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        print_mb_report(report)
