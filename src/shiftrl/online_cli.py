"""`shiftrl finetune` and `shiftrl train-online`: the online commands (registered on the
main app by `shiftrl.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shiftrl.core.errors import ConfigError
from shiftrl.core.progress import PROGRESS_HELP, from_flag


def score_text(value: float) -> str:
    """A normalized score for printing; n/a without reference scores (never 'nan')."""
    return "n/a" if value != value else f"{value:.1f}"


def finetune(
    run_dir: Annotated[Path, typer.Argument(help="a run folder written by `shiftrl train`")],
    online_steps: Annotated[
        int, typer.Option("--online-steps", help="environment steps online")
    ] = 100_000,
    env: Annotated[
        str | None, typer.Option("--env", help="Gymnasium id (default: the run's eval env)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="fine-tuning run folder")] = None,
    prefill: Annotated[
        bool, typer.Option("--prefill/--no-prefill", help="start the buffer with the offline data")
    ] = True,
    replay: Annotated[
        str | None,
        typer.Option(
            "--replay",
            help="buffer at the switch: all | part (top trajectories) | half | none "
            "(default: the method's own, else all)",
        ),
    ] = None,
    top: Annotated[
        int | None, typer.Option("--top", help="trajectories kept by --replay part (50)")
    ] = None,
    warmup: Annotated[
        int | None,
        typer.Option(
            "--warmup",
            help="policy steps collected before the first update (default: the method's "
            "own, SSAR 5,000; else 0)",
        ),
    ] = None,
    eval_every: Annotated[
        int, typer.Option("--eval-every", help="evaluate every N environment steps")
    ] = 10_000,
    eval_episodes: Annotated[
        int, typer.Option("--eval-episodes", help="episodes per evaluation")
    ] = 10,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the fine-tuning run in --out")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help=PROGRESS_HELP)] = True,
) -> None:
    """Fine-tune a trained policy online (its own dynamics or a shifted one)."""
    progress = from_flag(progress)
    from shiftrl.training.finetune import finetune as run_finetune

    res = run_finetune(
        run_dir,
        online_steps,
        env,
        out,
        prefill,
        eval_every,
        eval_episodes,
        resume=resume,
        progress=progress,
        replay=replay,
        top=top,
        warmup=warmup,
    )
    typer.echo(
        f"done: {res.out}  score before {score_text(res.score_before)}  after "
        f"{score_text(res.score_after)}  regret {'n/a' if res.regret != res.regret else f'{res.regret:.3f}'}"
    )


def train_online(
    algo: Annotated[
        str | None, typer.Option("--algo", help="online context learner: sac-context")
    ] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="Gymnasium id or variant, e.g. shiftrl/hopper-randomized-mass-v0 "
            "(`shiftrl envs --shift randomized`)",
        ),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", help="environment steps")] = 1_000_000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="run folder")] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="named hyperparameter preset")
    ] = None,
    addon: Annotated[
        list[str] | None, typer.Option("--addon", help="add-on, e.g. srpo (repeatable)")
    ] = None,
    eval_env: Annotated[
        list[str] | None,
        typer.Option(
            "--eval-env", help="evaluate here (repeatable; default: every dynamics of --env)"
        ),
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override: key=value (repeatable)")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the run in --out from its last checkpoint")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help=PROGRESS_HELP)] = True,
) -> None:
    """Train a context learner online on an env whose dynamics change per episode."""
    from shiftrl.training.context_run import train_online as run_online
    from shiftrl.training.rundir import check_target, check_unlocked

    if out is None:
        raise ConfigError("train-online needs --out RUN_DIR")
    check_target(out)
    check_unlocked(out)
    resuming = resume and (out / "config.json").exists()
    if resume and not resuming and (algo is None or env is None):
        raise ConfigError("--resume needs --out pointing at an existing online run folder")
    if not resuming and (algo is None or env is None):
        raise ConfigError("train-online needs --algo and --env (or --resume --out RUN_DIR)")
    rows = run_online(
        algo or "",
        env or "",
        out,
        steps=steps,
        seed=seed,
        preset=preset,
        addons=tuple(addon or ()),
        overrides=list(set_ or []),
        eval_envs=tuple(eval_env or ()) or None,
        resume=resume,
        progress=from_flag(progress),
    )
    last = rows[-1] if rows else {}
    score = last.get("normalized_score")
    typer.echo(
        f"done: {out}  step {last.get('step', 0):,}  mean return over the dynamics "
        f"{last.get('return', float('nan')):.1f}  mean normalized score "
        f"{score_text(score if score is not None else float('nan'))}"
    )
