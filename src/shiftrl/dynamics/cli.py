"""`shiftrl dynamics ...`: train, save and evaluate a dynamics ensemble on its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from shiftrl.core.cli_errors import user_errors
from shiftrl.core.progress import PROGRESS_HELP, from_flag

dynamics_app = typer.Typer(
    help="Dynamics ensembles for model-based offline RL (MOPO, MOBILE): train, evaluate.",
    no_args_is_help=True,
)


@dynamics_app.command("train")
@user_errors
def train(
    dataset: Annotated[str, typer.Argument(help="dataset ID (e.g. hopper/medium-v0) or file")],
    out: Annotated[Path, typer.Option("--out", help="folder to save the trained model in")],
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    max_epochs: Annotated[
        int | None, typer.Option("--max-epochs", help="stop after N epochs at the latest")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="model setting key=value, e.g. hidden=64,64 (repeatable)"),
    ] = None,
    cache: Annotated[
        bool, typer.Option("--cache/--no-cache", help="reuse / store under $SHIFTRL_DATA")
    ] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help=PROGRESS_HELP)] = True,
) -> None:
    """Train a dynamics ensemble on DATASET and save it in --out (reused if cached)."""
    from shiftrl.api import load_dataset
    from shiftrl.dynamics.ensemble import EnsembleConfig
    from shiftrl.dynamics.store import MODEL_FILE, cache_key, fit_dynamics, load_model, save_model

    overrides = list(set_ or [])
    if max_epochs is not None:
        overrides.append(f"max_epochs={max_epochs}")
    config = EnsembleConfig().with_overrides(overrides)
    data = load_dataset(dataset)
    key = cache_key(data.checksum(), config, seed)
    if holds_this_training(out, MODEL_FILE, key, load_model, "dynamics model"):
        return
    model, record = fit_dynamics(data, config, seed=seed, cache=cache, progress=from_flag(progress))
    save_model(model, out, saved_record(record))
    mse = ", ".join(f"{x:.4g}" for x in record_mse(model))
    how = f"trained {record['epochs']} epochs"
    if record["reused"]:
        how = f"reused the cached model from {record['cache_dir']}, {how}"
    typer.echo(
        f"{how} ({record['train_size']} training transitions, "
        f"{record['samples_per_second']:.0f} samples/s on {record['device']}); "
        f"held-out MSE per member: {mse}; elites {[int(e) for e in model.elites]}; saved {out}"
    )


def holds_this_training(out: Path, model_file: str, key: str, load, what: str) -> bool:
    """Whether --out already holds this training (same data, settings and seed: say so and
    stop); a different one there is refused, never overwritten."""
    from shiftrl.core.errors import ConfigError

    if not (out / model_file).exists():
        return False
    _, record = load(out)
    if record.get("key") != key:
        raise ConfigError(
            f"{out} already holds a {what} trained on other data or settings; choose another --out"
        )
    typer.echo(f"{out}: already trained on this data with these settings")
    return True


def saved_record(record: dict) -> dict:
    """The record saved beside a model in --out: without where this process found it."""
    return {k: v for k, v in record.items() if k not in ("reused", "cache_dir")}


def record_mse(model) -> list[float]:
    import numpy as np

    return [float(x) for x in np.asarray(model.holdout_mse)]


@dynamics_app.command("eval")
@user_errors
def eval_(
    model_dir: Annotated[Path, typer.Argument(help="a folder written by `dynamics train`")],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="dataset ID or file to test on")
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="a run folder: test on its policy's own transitions instead of a dataset "
            "(where a model-based learner's policy may exploit the model)",
        ),
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", help="with --policy: env to act in (the run's)")
    ] = None,
    transitions: Annotated[
        int, typer.Option("--transitions", help="with --policy: transitions to collect")
    ] = 5_000,
    horizon: Annotated[int, typer.Option("--horizon", help="k for the k-step rollout error")] = 10,
    windows: Annotated[int, typer.Option("--windows", help="rollout start points")] = 256,
    seed: Annotated[int, typer.Option("--seed", help="random seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """One-step MSE per member and k-step rollout error on a dataset or a policy's episodes."""
    from rich.console import Console
    from rich.table import Table

    from shiftrl.api import load_dataset
    from shiftrl.core.errors import ConfigError
    from shiftrl.dynamics.evaluate import evaluate_model
    from shiftrl.dynamics.store import load_model

    if horizon < 1 or windows < 1 or transitions < 1:
        raise ConfigError("--horizon, --windows and --transitions must be positive")
    if (dataset is None) == (policy is None):
        raise ConfigError("give --dataset or --policy (one of them)")
    model, record = load_model(model_dir)
    if policy is not None:
        from shiftrl.api import policy_transitions

        data = policy_transitions(policy, env, transitions, seed)
    else:
        data = load_dataset(dataset)
    result = evaluate_model(model, data, record, horizon=horizon, windows=windows, seed=seed)
    if as_json:
        typer.echo(json.dumps(result))
        return
    one, roll = result["one_step"], result["rollout"]
    shown = sorted({h for h in (1, 5, 10, 25, 50, 100) if h <= horizon} | {horizon})
    table = Table(
        title=f"{model_dir} on {result['dataset']}: one-step MSE on {one['rows']} rows "
        f"({one['split']}); state MSE after h steps ({roll['windows']} rollouts)"
    )
    for col in ("#", "elite", "1-step", "state", "reward", *[f"h={h}" for h in shown]):
        table.add_column(col, justify="right")
    for m in range(len(one["mse"])):
        table.add_row(
            str(m),
            "*" if m in result["elites"] else "",
            f"{one['mse'][m]:.3g}",
            f"{one['state_mse'][m]:.3g}",
            f"{one['reward_mse'][m]:.3g}",
            *[f"{roll['member_state_mse'][m][h - 1]:.3g}" for h in shown],
        )
    table.add_row(
        "mean", "elites", "", "", "", *[f"{roll['elite_mean_state_mse'][h - 1]:.3g}" for h in shown]
    )
    Console().print(table)
