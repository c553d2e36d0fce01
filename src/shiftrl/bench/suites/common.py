"""Pieces several suites share: the MuJoCo robots, data levels and the D4RL budgets."""

from shiftrl.bench.suites.spec import Budget

ROBOTS = ("hopper", "walker2d", "halfcheetah")
LEVELS = ("medium", "medium-replay", "medium-expert")


def env_id(robot: str, shift: str | None = None) -> str:
    """`shiftrl/hopper-base-v0`, or `shiftrl/hopper-mass-2.0-v0` for a shifted variant."""
    return f"shiftrl/{robot}-{shift or 'base'}-v0"


def dataset_id(robot: str, level: str, shift: str | None = None) -> str:
    """`hopper/medium-v0`, or `hopper-mass-2.0/medium-v0` for a shifted variant."""
    return f"{robot}{'-' + shift if shift else ''}/{level}-v0"


ENVS = {robot: env_id(robot) for robot in ROBOTS}
"""Evaluation envs: the unshifted variants, scored with the zoo's reference returns for
them (D4RL's where the zoo has not measured the variant)."""

PAPER_1M = Budget(
    steps=1_000_000,
    eval_every=5000,
    eval_episodes=10,
    seeds=(0, 1, 2, 3, 4),
    note="the papers' budget (CORL): 1M steps, eval every 5k steps x 10 episodes",
)
QUICK_100K = Budget(
    steps=100_000,
    eval_every=10_000,
    eval_episodes=10,
    seeds=(0, 1, 2),
    note="declared CPU budget: 10% of the papers' steps, same networks",
)

QUICK_MODEL_EPOCHS = 20
"""The quick profiles' cap on a dynamics ensemble's training epochs (early stopping still
applies): about 40 minutes on 1M hopper transitions on the 2-core CPU machine."""
QUICK_MODEL_CAP = {
    name: {"model_max_epochs": QUICK_MODEL_EPOCHS}
    for name in ("mopo", "mobile", "morec-mopo", "morec-mobile")
}
"""Budget `addon_settings` capping the model-based add-ons' ensembles (runs without them
ignore it)."""

PAPER_STEPS = 1_000_000
ADDON_STEPS = {
    # SSAR's official configs; beta's learning rate is set for 1M steps (`beta_lr_steps`:
    # scaled with the run, the rate grows as the run shortens, so beta moves as far)
    "ssar": {"iql_steps": 1_000_000, "update_period": 50_000, "beta_lr_steps": 1_000_000},
}
"""The add-ons' own step counts in their papers, which run the learner for 1M steps.
SPOT's VAE is not here: it pretrains its official 1e5 steps under every budget (cheap next
to the learner; 10x fewer left the density estimate undertrained), the add-on's default."""
LEARNER_STEPS = {
    "bracp": {"behavior_steps": 300_000},  # BRAC: behaviour cloning first, within the run
    "bear": {"warmup_steps": 20_000},  # BEAR: MMD-only actor updates first
}
"""The learners' own phase lengths in their papers' 1M-step runs."""


def _in_proportion(table, steps: int, names) -> dict[str, dict[str, int]]:
    return {
        name: {k: max(1, v * steps // PAPER_STEPS) for k, v in table[name].items()}
        for name in names
        if name in table
    }


def addon_steps(steps: int, *names: str) -> dict[str, dict[str, int]]:
    """Budget `addon_settings` scaling the add-ons' own step counts with the learner's steps:
    the papers' values at 1M learner steps, in proportion otherwise (100k learner steps ->
    SSAR's IQL critic 100k steps, n schedule every 5k steps, beta's rate for 100k steps).
    Add-ons without scaled steps (SPOT: its VAE's 1e5 steps at every budget) get none."""
    return _in_proportion(ADDON_STEPS, steps, names)


def learner_steps(steps: int, *names: str) -> dict[str, dict[str, int]]:
    """Budget `learner_settings` scaling the learners' own phases the same way (100k steps
    -> BRAC-p's behaviour cloning 30k steps, BEAR's warm-up 2k): a 100k-step run cannot
    hold BRAC-p's 300k cloning steps."""
    return _in_proportion(LEARNER_STEPS, steps, names)


def locomotion_cells(columns, block: str = ""):
    """One cell per (robot, level, column) of the single-dynamics locomotion table.

    `columns` maps a column label to (cell-name suffix, Learner) or, for offline-to-online
    cells, (suffix, Learner, Online)."""
    from shiftrl.bench.suites.spec import Cell

    for robot, env in ENVS.items():
        for level in LEVELS:
            row = f"{robot}-{level}"
            for column, (suffix, learner, *online) in columns.items():
                yield Cell(
                    name=f"{row}.{suffix}",
                    learner=learner,
                    target=dataset_id(robot, level),
                    eval_envs=(env,),
                    row=row,
                    column=column,
                    block=block,
                    online=online[0] if online else None,
                )
