"""`shiftrl dynamics-reward ...`: learn and check MOREC's dynamics reward on its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shiftrl.core.cli_errors import user_errors
from shiftrl.core.progress import PROGRESS_HELP, from_flag

reward_app = typer.Typer(
    help="MOREC's dynamics reward r_D(s, a, s') (a transition filter): train, evaluate.",
    no_args_is_help=True,
)


@reward_app.command("train")
@user_errors
def train(
    dataset: Annotated[str, typer.Argument(help="dataset ID (e.g. hopper/medium-v0) or file")],
    out: Annotated[Path, typer.Option("--out", help="folder to save the dynamics reward in")],
    seed: Annotated[int, typer.Option("--seed")] = 0,
    iterations: Annotated[
        int | None, typer.Option("--iterations", help="adversarial iterations")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="setting key=value, e.g. discriminator=64,64 (repeatable)"),
    ] = None,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="reuse / store under $SHIFTRL_DATA")
    ] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help=PROGRESS_HELP)] = True,
) -> None:
    """Learn a dynamics reward on DATASET and save it in --out (reused if cached)."""
    from shiftrl.api import load_dataset
    from shiftrl.dynamics.cli import holds_this_training, saved_record
    from shiftrl.dynamics.reward.model import RewardConfig
    from shiftrl.dynamics.reward.store import (
        MODEL_FILE,
        cache_key,
        fit_dynamics_reward,
        load_reward,
        save_reward,
    )

    overrides = list(set_ or [])
    if iterations is not None:
        overrides.append(f"iterations={iterations}")
    config = RewardConfig().with_overrides(overrides)
    data = load_dataset(dataset)
    key = cache_key(data.checksum(), config, seed)
    if holds_this_training(out, MODEL_FILE, key, load_reward, "dynamics reward"):
        return
    model, record = fit_dynamics_reward(
        data, config, seed=seed, cache=cache, progress=from_flag(progress)
    )
    save_reward(model, out, saved_record(record))
    how = f"learned {record['iterations']} iterations in {record['seconds']:.0f} s"
    if record["reused"]:
        how = f"reused the cached dynamics reward from {record['cache_dir']} ({how})"
    typer.echo(
        f"{how} ({record['iterations_per_second']:.0f} iterations/s on {record['device']}); "
        f"{record['calibrated']} of {record['snapshots']} snapshots calibrated; saved {out}"
    )


@reward_app.command("eval")
@user_errors
def eval_(
    reward_dir: Annotated[Path, typer.Argument(help="a folder written by `dynamics-reward train`")],
    dataset: Annotated[str, typer.Option("--dataset", help="dataset ID or file to test on")],
    rows: Annotated[int, typer.Option("--rows", help="transitions to score")] = 2000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """How well r_D ranks the data's next states above perturbed ones (AUC per size)."""
    from rich.console import Console
    from rich.table import Table

    from shiftrl.api import load_dataset
    from shiftrl.core.errors import ConfigError
    from shiftrl.dynamics.reward.evaluate import ranking_auc
    from shiftrl.dynamics.reward.store import load_reward

    if rows < 2:
        raise ConfigError("--rows must be at least 2")
    model, _ = load_reward(reward_dir)
    data = load_dataset(dataset)
    if (data.obs_dim, data.act_dim) != (model.obs_dim, model.act_dim):
        raise ConfigError(
            f"the dynamics reward is for obs dim {model.obs_dim} / act dim {model.act_dim}; "
            f"{dataset} has {data.obs_dim} / {data.act_dim}"
        )
    result = ranking_auc(model, data, rows=rows, seed=seed)
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(
        title=f"r_D of {reward_dir} on {rows} rows of {dataset}: next state vs next state + "
        "noise (per dimension, in units of the data's |s' - s| std)"
    )
    for col in ("noise", "AUC", "r_D data", "r_D perturbed"):
        table.add_column(col, justify="right")
    for row in result["perturbations"]:
        table.add_row(
            f"{row['scale']:g}",
            f"{row['auc']:.3f}",
            f"{row['r_true']:.3f}",
            f"{row['r_perturbed']:.3f}",
        )
    Console().print(table)
