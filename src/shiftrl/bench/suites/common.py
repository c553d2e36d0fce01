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
