"""`shiftrl demo`: the main job end to end, nothing downloaded, minutes on a 2-core CPU.

1. make a "medium" Pendulum-v1 dataset from a built-in swing-up controller with
   heavy action noise (so the data is mediocre, as D4RL's medium data is);
2. train several offline learners on it with small networks;
3. evaluate each in the environment and print normalized scores (random = 0,
   controller = 100); write a learning-curve plot and the run folders.
"""

from __future__ import annotations

import time
from pathlib import Path

from shiftrl.data.io import save_dataset
from shiftrl.data.registry import make_dataset
from shiftrl.envs.toy import TOY_REFERENCE

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


def run_demo(
    out: str | Path = "shiftrl-demo",
    steps: int = 6000,
    algos=DEMO_ALGOS,
    seed: int = 0,
    progress: bool = True,
):
    from rich.console import Console
    from rich.table import Table

    from shiftrl.api import train

    console = Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
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
        if (run_dir / "config.json").exists():
            import shutil

            shutil.rmtree(run_dir)
        runs[algo] = train(
            algo,
            ds,
            steps=steps,
            seed=seed,
            out=run_dir,
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
    return runs


def plot_runs(runs: dict, path: Path, behaviour_score: float | None = None) -> None:
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
    ax.set_title("shiftrl demo: offline learners on medium Pendulum-v1 data")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
