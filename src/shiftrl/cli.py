"""The `shiftrl` command line: thin, it parses, calls the library and prints.

A user mistake surfaces as one line `shiftrl: error: ...` and a non-zero exit code.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from shiftrl.core.cli_errors import user_errors
from shiftrl.core.errors import ConfigError
from shiftrl.core.progress import PROGRESS_HELP, from_flag
from shiftrl.online_cli import score_text

app = typer.Typer(
    name="shiftrl",
    help="Offline RL under dynamics shift: train, evaluate, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"shiftrl {version('shiftrl')}")
        raise typer.Exit()


@app.callback()
def _app_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Offline RL under dynamics shift: train, evaluate, benchmark."""


@app.command()
@user_errors
def train(
    algo: Annotated[
        str | None,
        typer.Option("--algo", help="learner or recipe, e.g. iql, cql, spot (`shiftrl algos`)"),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="target data: a built-in ID such as hopper/medium-v0 (all: `shiftrl data "
            "list`; another size or seed: hopper/medium-n100000-s1-v0), a .npz or .hdf5 file, "
            "or a local Minari id",
        ),
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="source-dynamics data (repeatable)")
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="gradient steps [default: 1,000,000]")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="random seed [default: 0]")] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="train these seeds together as one vmapped program (e.g. 0,1,2 or 0-4); "
            "--out is then the folder of their seed<k> run folders",
        ),
    ] = None,
    eval_env: Annotated[
        list[str] | None,
        typer.Option(
            "--eval-env",
            help="Gymnasium id to evaluate in (repeatable) [default: the dataset's own env]",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="run folder [default: runs/<algo>-<data>-s<seed>]"),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option("--preset", help="named hyperparameter preset [default: the paper's]"),
    ] = None,
    addon: Annotated[
        list[str] | None,
        typer.Option("--addon", help="shift add-on, e.g. dara or srpo (repeatable)"),
    ] = None,
    target_fraction: Annotated[
        float | None,
        typer.Option("--target-fraction", help="keep this fraction of target episodes (1T = 0.1)"),
    ] = None,
    target_count: Annotated[
        int | None,
        typer.Option("--target-count", help="keep whole target episodes up to N transitions"),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="override a setting, key=value (repeatable), e.g. eval_every=10000, "
            "alpha=2.5, dara.eta=0.2",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the run in --out from its last checkpoint")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help=PROGRESS_HELP)] = True,
) -> None:
    """Train an offline learner; writes a run folder with metrics, checkpoints and a plot."""
    progress = from_flag(progress)
    from shiftrl.bench.runner import parse_seeds
    from shiftrl.data.io import data_reference, load_recorded
    from shiftrl.training.config import apply_overrides, make_config
    from shiftrl.training.run import train as run_train
    from shiftrl.training.run import train_seeds
    from shiftrl.training.rundir import check_target, check_unlocked, read_meta, run_config

    group = parse_seeds(seeds)
    if group is not None and seed is not None:
        raise ConfigError("pass --seed or --seeds, not both")
    if resume:
        first = out / f"seed{group[0]}" if group is not None and out is not None else out
        if first is None or not (first / "config.json").exists():
            raise ConfigError("--resume needs --out pointing at an existing run folder")
        recorded = run_config(read_meta(first), first)
        from shiftrl.recipes import get_recipe

        wanted = get_recipe(algo).learner if algo and get_recipe(algo) else algo
        if wanted is not None and recorded.algo != wanted.lower().replace("+", "").replace("-", ""):
            raise ConfigError(f"--algo {algo} differs from the run's algorithm {recorded.algo}")
        config = recorded
    else:
        if algo is None or dataset is None:
            raise ConfigError("train needs --algo and --dataset (or --resume --out RUN_DIR)")
        kwargs = {
            "dataset": dataset,
            "sources": tuple(source or ()),
            "eval_envs": tuple(eval_env or ()),
            "addons": tuple(addon or ()),
            "target_fraction": target_fraction,
            "target_count": target_count,
        }
        if steps is not None:
            kwargs["steps"] = steps
        if seed is not None:
            kwargs["seed"] = seed
        config = apply_overrides(make_config(algo, preset, **kwargs), list(set_ or []))
    if out is not None:  # before loading (or building) any data
        check_target(out)
        for d in [out] if group is None else [out / f"seed{s}" for s in group]:
            check_unlocked(d)
    hint = "resume it from Python, passing the data again: shiftrl.train(..., resume=True)"
    target = load_recorded(config.dataset, f"the run in {out}", hint, progress)
    sources = [load_recorded(s, f"the run in {out}", hint, progress) for s in config.sources]
    if not resume:  # record exactly what was loaded: canonical IDs, absolute paths
        config = dataclasses.replace(
            config,
            dataset=data_reference(target),
            sources=tuple(data_reference(s) for s in sources),
        )
    if group is not None:
        runs = train_seeds(config, target, sources, group, out, resume, progress)
    else:
        runs = [run_train(config, target, sources, out=out, resume=resume, progress=progress)]
    for run in runs:
        final, best = score_text(run.score("final")), score_text(run.score("best"))
        typer.echo(f"done: {run.dir}  final score {final}  best score {best}")


@app.command("eval")
@user_errors
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `shiftrl train`")],
    env: Annotated[
        list[str] | None, typer.Option("--env", help="Gymnasium id (default: the run's eval envs)")
    ] = None,
    episodes: Annotated[int, typer.Option("--episodes", help="evaluation episodes per env")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="seed of the start states")] = 0,
    step: Annotated[
        str,
        typer.Option("--step", help="checkpoint: latest, best (best evaluation) or a step"),
    ] = "latest",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Evaluate a trained policy: mean return and normalized score."""
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from shiftrl.api import load_policy

    if episodes <= 0:
        raise ConfigError("--episodes must be positive")
    from shiftrl.training.rundir import read_meta

    policy = load_policy(run_dir, step=step)
    meta = read_meta(run_dir)
    envs = list(env or meta.get("eval_envs") or [])
    if not envs:
        raise ConfigError("the run has no evaluation environment; pass --env ENV_ID")
    results = [
        policy.evaluate(e, episodes, seed)
        for e in track(envs, description="evaluating", disable=as_json)
    ]
    if as_json:
        typer.echo(json.dumps([{**r.to_json(), "step": policy.step} for r in results]))
        return
    table = Table(title=f"{run_dir}, checkpoint of step {policy.step} ({step})")
    for col in ("env", "episodes", "mean return", "std", "normalized score"):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.env_id,
            str(len(r.returns)),
            f"{r.mean_return:.1f}",
            f"{r.returns.std():.1f}",
            score_text(r.normalized),
        )
    Console().print(table)


@app.command()
@user_errors
def algos() -> None:
    """List learners, their papers and presets."""
    from rich.console import Console
    from rich.table import Table

    from shiftrl.api import algos as list_algos

    table = Table(title="shiftrl learners")
    for col in ("name", "description", "paper", "presets"):
        table.add_column(col)
    for a in list_algos():
        table.add_row(a["name"], a["description"], a["paper"], ", ".join(a["presets"]))
    Console().print(table)
    from shiftrl.learners import ONLINE_LEARNERS

    online = Table(title="online context learners (shiftrl train-online --algo NAME)")
    for col in ("name", "description", "paper", "presets"):
        online.add_column(col)
    for name, cls in ONLINE_LEARNERS.items():
        online.add_row(name, cls.description, cls.paper, ", ".join(cls.PRESETS))
    Console().print(online)
    from shiftrl.addons import ADDONS

    addons = Table(title="shift add-ons (--addon NAME, on any learner they fit)")
    for col in ("name", "what it does"):
        addons.add_column(col)
    for name, cls in sorted(ADDONS.items()):
        addons.add_row(name, " ".join(str(cls.description).split()))
    Console().print(addons)
    typer.echo(
        "Override any hyperparameter with --set key=value, an add-on's with --set "
        "ADDON.key=value (docs/learners.md and docs/methods.md list them)."
    )


@app.command()
@user_errors
def envs(
    robot: Annotated[
        str | None, typer.Argument(help="only this robot (hopper, walker2d, halfcheetah, ...)")
    ] = None,
    shift: Annotated[
        str | None,
        typer.Option("--shift", help="only this kind of shift: mass, gravity, friction, ..."),
    ] = None,
    wide: Annotated[
        bool, typer.Option("--wide", help="full descriptions and reference sources")
    ] = False,
) -> None:
    """List the dynamics variants (gymnasium id: shiftrl/NAME-v0), one robot or shift at a time."""
    from rich.console import Console
    from rich.table import Table

    from shiftrl.core.errors import ConfigError
    from shiftrl.envs import list_variants
    from shiftrl.envs.randomized import list_randomized
    from shiftrl.envs.reference import reference_scores, reference_source

    rows = list_variants() + list_randomized()
    robots = sorted({r["robot"] for r in rows})
    kinds = sorted({r["kind"] for r in rows})
    if robot is not None and robot not in robots:
        raise ConfigError(f"unknown robot '{robot}'; robots: {', '.join(robots)}")
    if shift is not None and shift not in kinds:
        raise ConfigError(f"unknown kind of shift '{shift}'; kinds: {', '.join(kinds)}")
    rows = [
        r
        for r in rows
        if (robot is None or r["robot"] == robot) and (shift is None or r["kind"] == shift)
    ]
    if not rows:
        raise ConfigError(f"no variant of {robot} with a {shift} shift; kinds: {', '.join(kinds)}")
    table = Table(title=f"{len(rows)} dynamics variants (gymnasium id: shiftrl/NAME-v0)")
    # names and returns whole; the description takes what width is left (10: borders, padding)
    console = Console()
    name_w = max(len(r["name"]) for r in rows)
    table.add_column("name", no_wrap=True, min_width=name_w)
    if wide:
        table.add_column("changes", overflow="fold")
    else:
        room = max(16, console.width - name_w - 13 - 10)
        table.add_column("changes", overflow="ellipsis", no_wrap=True, max_width=room)
    table.add_column("random/expert", no_wrap=True, min_width=13)
    if wide:
        table.add_column("references")
    for r in rows:
        ref = reference_scores(r["id"])
        refs = "-" if ref is None else f"{ref[0]:.0f} / {ref[1]:.0f}"
        changes = r["changes"].removeprefix(f"{r['base_env_id']} with ")
        cells = [r["name"], changes, refs] + ([reference_source(r["id"])] if wide else [])
        table.add_row(*cells)
    console.print(table)
    if robot is None and shift is None:
        typer.echo(
            f"robots: {', '.join(robots)}; shifts: {', '.join(kinds)} "
            "(`shiftrl envs hopper --shift mass`; --wide for full descriptions)"
        )
        typer.echo(
            "hopper, walker2d and halfcheetah variants also come with NeoRL's observation "
            "(x-position first) and reward: shiftrl/NAME-neorl-v0 (docs/datasets.md)"
        )


@app.command()
@user_errors
def demo(
    which: Annotated[
        str,
        typer.Argument(
            help="'offline' (the default): offline RL and a dynamics-shift study on the "
            "pendulum; 'morec': MOREC's refrigerator experiment"
        ),
    ] = "offline",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="folder of the demo's data and runs [default: shiftrl-demo, or "
            "shiftrl-demo-morec for morec]",
        ),
    ] = None,
    steps: Annotated[
        int, typer.Option("--steps", help="offline demo: gradient steps per learner")
    ] = 10_000,
    quick: Annotated[
        bool, typer.Option("--quick", help="morec: small networks, short rollouts (~1-2 min)")
    ] = False,
) -> None:
    """Make a dataset, train learners, evaluate them, print scores and write a plot."""
    if which == "morec":
        from shiftrl.demo_morec import QUICK, DemoSettings, run_morec_demo

        run_morec_demo(out or Path("shiftrl-demo-morec"), QUICK if quick else DemoSettings())
        return
    if which != "offline":
        raise ConfigError(f"unknown demo '{which}'; choose offline or morec")
    from shiftrl.demo import run_demo

    run_demo(out or Path("shiftrl-demo"), steps=steps)


def _register_subcommands() -> None:
    from shiftrl.bench import cli as bench_cli
    from shiftrl.data.cli import data_app
    from shiftrl.dynamics.cli import dynamics_app
    from shiftrl.dynamics.reward.cli import reward_app
    from shiftrl.online_cli import finetune, train_online
    from shiftrl.zoo.cli import zoo_app

    app.command()(user_errors(finetune))
    app.command("train-online")(user_errors(train_online))
    app.add_typer(zoo_app, name="zoo")
    app.add_typer(data_app, name="data")
    app.add_typer(dynamics_app, name="dynamics")
    app.add_typer(reward_app, name="dynamics-reward")
    app.command("bench")(user_errors(bench_cli.bench))
    app.command("report")(user_errors(bench_cli.report))


_register_subcommands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point. Typer's own parse errors (`--steps abc`) get the same one
    line and exit code 2 as every other user mistake, not a box."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except Exception as e:
        # typer ships its own click: match its exceptions by class name
        kinds = {c.__name__ for c in type(e).__mro__}
        if "NoArgsIsHelpError" in kinds:  # `shiftrl` alone: Typer printed the help
            sys.exit(2)
        if "ClickException" in kinds:
            message = " ".join(e.format_message().split())  # type: ignore[attr-defined]
            typer.echo(f"shiftrl: error: {message}", err=True)
            sys.exit(2)
        if "Abort" in kinds:
            typer.echo("shiftrl: interrupted", err=True)
            sys.exit(130)
        raise
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
