"""`shiftrl zoo ...`: train behaviour policies, export snapshots into the package, list them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

zoo_app = typer.Typer(
    help="The behaviour-policy zoo behind the built-in datasets.", no_args_is_help=True
)


@zoo_app.command("train")
def zoo_train(
    variant: Annotated[
        str, typer.Argument(help="environment variant, e.g. hopper-base (see `shiftrl envs`)")
    ],
    steps: Annotated[int, typer.Option("--steps", help="environment transitions")] = 1_000_000,
    out: Annotated[Path | None, typer.Option("--out", help="run folder")] = None,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out")] = False,
) -> None:
    """Train a behaviour policy with online SAC (checkpointed, resumable)."""
    from shiftrl.core.cli_errors import user_errors
    from shiftrl.zoo.train import train_behaviour

    user_errors(train_behaviour)(
        variant, steps, out or Path("zoo-runs") / variant, seed=seed, resume=resume
    )


@zoo_app.command("export")
def zoo_export(
    run_dir: Annotated[Path, typer.Argument(help="a `shiftrl zoo train` run folder")],
) -> None:
    """Pick expert / medium / replay snapshots and write them into the package manifest."""
    from shiftrl.zoo.export import export

    entry = export(run_dir)
    for s in entry["snapshots"]:
        if "return_mean" in s:
            typer.echo(
                f"{s['name']}: step {s['train_steps']}, return {s['return_mean']:.1f} +- {s['return_std']:.1f}"
            )
    typer.echo(
        f"random return {entry['random_return']:.1f}; {len(entry['snapshots'])} snapshots shipped"
    )


@zoo_app.command("measure")
def zoo_measure(
    variants: Annotated[
        list[str] | None, typer.Argument(help="variants (default: every one in the zoo)")
    ] = None,
    episodes: Annotated[int, typer.Option("--episodes", help="episodes per snapshot")] = 10,
) -> None:
    """Measure the return of every shipped snapshot that has none yet (replay snapshots)."""
    from shiftrl.core.cli_errors import user_errors
    from shiftrl.zoo.export import measure_snapshots

    filled = user_errors(measure_snapshots)(variants, episodes)
    for variant, snaps in filled.items():
        rets = ", ".join(f"{s['train_steps']}: {s['return_mean']:.0f}" for s in snaps)
        typer.echo(f"{variant}: {rets}")
    if not filled:
        typer.echo("every snapshot already has its return")


@zoo_app.command("list")
def zoo_list() -> None:
    """The shipped behaviour policies and their returns."""
    from rich.console import Console
    from rich.table import Table

    from shiftrl.zoo import manifest

    table = Table(title="behaviour-policy zoo: mean return (SAC training step)")
    variants = manifest()["policies"]
    # whole variant names; the returns are short enough to fit 80 columns beside them
    table.add_column("variant", no_wrap=True, min_width=max((len(v) for v in variants), default=7))
    for col in ("random", "medium", "expert", "steps"):
        table.add_column(col, no_wrap=True)
    for variant, e in sorted(manifest()["policies"].items()):
        snaps = {s["name"]: s for s in e["snapshots"]}

        def fmt(name, snaps=snaps):
            s = snaps.get(name)
            return f"{s['return_mean']:.0f} ({s['train_steps'] // 1000}k)" if s else "-"

        table.add_row(
            variant,
            f"{e.get('random_return', float('nan')):.0f}",
            fmt("medium"),
            fmt("expert"),
            f"{e['train_steps_total'] // 1000}k",
        )
    Console().print(table)
