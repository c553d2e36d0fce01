"""`shiftrl demo`: the main job end to end, nothing downloaded, minutes on a 2-core CPU.

Part 1, offline RL: a "medium" Pendulum-v1 dataset from a built-in swing-up controller
with heavy action noise; BC, TD3+BC and IQL trained on it; normalized scores
(random = 0, controller = 100) and learning curves.

Part 2, dynamics shift: little target data (2,000 transitions from the zoo's medium
policy in the base pendulum) and plenty of source data (20,000 transitions from the zoo's
expert for a pendulum twice as heavy, DARA's body-mass shift). TD3+BC trained on the
target only, on target + source naively, and with the DARA and SRPO add-ons, evaluated
in the target dynamics. The numbers are whatever this budget gives; see the README.
"""

from __future__ import annotations

import time
from pathlib import Path

from shiftrl.data.io import save_dataset
from shiftrl.data.registry import make_dataset
from shiftrl.envs.toy import TOY_REFERENCE
from shiftrl.training.rundir import clear_run

ENV_ID = "Pendulum-v1"
DEMO_ALGOS = ("bc", "td3bc", "iql")
SMALL_NETS = {
    "bc": {"actor_hidden": (64, 64)},
    "td3bc": {"actor_hidden": (64, 64), "critic_hidden": (64, 64)},
    "iql": {"hidden": (64, 64)},
    "cql": {"hidden": (64, 64)},
}


def make_demo_dataset(size: int = 20_000, seed: int = 0):
    """The built-in `pendulum/medium-v0` dataset (made fresh, not cached)."""
    return make_dataset("pendulum/medium-v0", size, seed)


SHIFT_TARGET, SHIFT_SOURCE = "pendulum-base/medium-v0", "pendulum-mass-2.0/expert-v0"
SHIFT_CASES = {
    "target only": (False, ()),
    "target + source": (True, ()),
    "target + source, DARA": (True, ({"name": "dara", "hidden": (64, 64)},)),
    "target + source, SRPO": (True, ({"name": "srpo", "hidden": (64, 64)},)),
}


def run_shift_demo(out: Path, steps: int, seed: int, progress: bool, console) -> dict:
    from shiftrl.api import train

    target = make_dataset(SHIFT_TARGET, 2000, seed)
    source = make_dataset(SHIFT_SOURCE, 20_000, seed)
    console.print(
        f"    target {SHIFT_TARGET}: {len(target)} transitions (return {target.episode_returns().mean():.0f}); "
        f"source {SHIFT_SOURCE}: {len(source)} transitions (return {source.episode_returns().mean():.0f})"
    )
    runs = {}
    for name, (with_source, addons) in SHIFT_CASES.items():
        run_dir = out / "runs-shift" / name.replace(" + ", "+").replace(", ", "-").replace(" ", "-")
        # a re-run trains again: shiftrl's files go, the user's stay (resume=True then
        # restarts the cleared folder, which has no checkpoint, from scratch)
        clear_run(run_dir)
        runs[name] = train(
            "td3bc",
            target,
            sources=[source] if with_source else [],
            addons=addons,
            steps=steps,
            seed=seed,
            eval_envs=["Pendulum-v1"],
            out=run_dir,
            resume=True,
            overrides=SMALL_NETS["td3bc"],
            eval_every=max(steps // 4, 1),
            eval_episodes=10,
            progress=progress,
        )
    return runs


def run_demo(
    out: str | Path = "shiftrl-demo",
    steps: int = 6000,
    algos=DEMO_ALGOS,
    seed: int = 0,
    progress: bool = True,
    shift: bool = True,
):
    from rich.console import Console
    from rich.table import Table

    from shiftrl.api import train

    console = Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    console.print("[bold]Part 1: offline RL[/bold]")
    console.print(
        f"[bold]1/3[/bold] collecting a medium Pendulum-v1 dataset ({ENV_ID}, no download)"
    )
    ds = make_demo_dataset(seed=seed)
    save_dataset(ds, out / "pendulum-medium.npz")
    behaviour = float(ds.episode_returns().mean())
    low, high = TOY_REFERENCE[ENV_ID]
    console.print(
        f"    {len(ds)} transitions, {ds.num_episodes} episodes, behaviour return {behaviour:.0f} "
        f"(normalized {100 * (behaviour - low) / (high - low):.1f})"
    )

    console.print(
        f"[bold]2/3[/bold] training {', '.join(algos)} for {steps} steps each (64x64 networks)"
    )
    runs = {}
    for algo in algos:
        run_dir = out / "runs" / algo
        # a re-run trains again: shiftrl's files go, the user's stay (resume=True then
        # restarts the cleared folder, which has no checkpoint, from scratch)
        clear_run(run_dir)
        runs[algo] = train(
            algo,
            ds,
            steps=steps,
            seed=seed,
            out=run_dir,
            resume=True,
            overrides=SMALL_NETS[algo],
            eval_every=max(steps // 4, 1),
            eval_episodes=10,
            progress=progress,
        )

    console.print(
        "[bold]3/3[/bold] results (normalized score: random policy = 0, swing-up controller = 100)"
    )
    table = Table()
    for col in ("learner", "final score", "best score", "final return"):
        table.add_column(col, justify="right" if col != "learner" else "left")
    table.add_row(
        "behaviour data", f"{100 * (behaviour - low) / (high - low):.1f}", "", f"{behaviour:.0f}"
    )
    for algo, run in runs.items():
        table.add_row(
            algo,
            f"{run.score('final'):.1f}",
            f"{run.score('best'):.1f}",
            f"{run.rows[-1]['return']:.0f}",
        )
    console.print(table)
    plot = out / "demo_scores.png"
    plot_runs(runs, plot, behaviour_score=100 * (behaviour - low) / (high - low))
    console.print(
        f"plot: {plot}   run folders: {out / 'runs'}   ({time.perf_counter() - t0:.0f} s)"
    )
    if not shift:
        return runs

    console.print("[bold]Part 2: dynamics shift[/bold] (TD3+BC, evaluated in the target dynamics)")
    shift_runs = run_shift_demo(out, steps, seed, progress, console)
    table = Table()
    for col in ("training data", "final score", "best score"):
        table.add_column(col, justify="right" if col != "training data" else "left")
    for name, run in shift_runs.items():
        table.add_row(name, f"{run.score('final'):.1f}", f"{run.score('best'):.1f}")
    console.print(table)
    plot = out / "demo_shift_scores.png"
    plot_runs(
        shift_runs,
        plot,
        title="shiftrl demo: small target data + source data from heavier dynamics",
    )
    console.print(
        f"plot: {plot}   run folders: {out / 'runs-shift'}   ({time.perf_counter() - t0:.0f} s in all)"
    )
    return {**runs, **shift_runs}


def plot_runs(
    runs: dict,
    path: Path,
    behaviour_score: float | None = None,
    title: str = "shiftrl demo: offline learners on medium Pendulum-v1 data",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for algo, run in runs.items():
        ax.plot(
            [r["step"] for r in run.rows],
            [r["normalized_score"] for r in run.rows],
            marker="o",
            label=algo,
        )
    if behaviour_score is not None:
        ax.axhline(behaviour_score, color="gray", ls="--", label="behaviour data")
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("normalized score")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
