"""`dara`: DARA's main table (Liu et al., ICLR 2022).

Rows: hopper / walker2d x random / medium / medium-replay / medium-expert; columns:
- `10T`: the full target dataset;
- `1T`: 10% of the target data (whole episodes, drawn with the run's seed);
- `1T+10S w/o aug`: 10% target + the full body-mass-shifted source dataset;
- `1T+10S DARA`: the same data with DARA's reward augmentation (add-on `dara`).
The DARA column carries ↑ / ↓ against `1T+10S w/o aug`, as the paper's table does.

Base learners, one sub-table each: the paper's model-free ones (BEAR, BRAC-p, BCQ, CQL,
AWR) with their reference defaults (a per-robot preset where the learner has one), and
IQL, ODRL's DARA baseline. Every setting draws half of each batch from the source data
when there is one (ODRL: 128 target + 128 source rows). The DARA column runs the `dara`
add-on at its defaults (eta 0.1, clip 10, classifiers trained alongside the learner as in
ODRL; see docs/methods.md); the source is the body-mass x2 dataset of the same level
(`<robot>-mass-2.0/<level>-v0`).
"""

from dataclasses import replace

from shiftrl.bench.suites.common import ENVS, QUICK_100K, dataset_id
from shiftrl.bench.suites.spec import Cell, Learner, Suite, TableLayout

ROBOTS = {r: ENVS[r] for r in ("hopper", "walker2d")}
LEVELS = ("random", "medium", "medium-replay", "medium-expert")
SOURCE_SHIFT = "mass-2.0"
BASES = {
    "BEAR": "bear",
    "BRAC-p": "bracp",
    "BCQ": "bcq",
    "CQL": "cql",
    "AWR": "awr",
    "IQL": "iql",
}
DARA = {"name": "dara"}
COLUMNS = {
    # column: (cell suffix, target fraction, with source, add-ons)
    "10T": ("10T", None, False, ()),
    "1T": ("1T", 0.1, False, ()),
    "1T+10S w/o aug": ("1T+10S", 0.1, True, ()),
    "1T+10S DARA": ("1T+10S-dara", 0.1, True, (DARA,)),
}


def base_preset(algo: str, robot: str) -> str | None:
    """The learner's preset for this robot if it has one (AWR, BEAR), else its default."""
    from shiftrl.learners import get_learner

    presets = get_learner(algo).PRESETS
    for name in (robot, "locomotion", "default"):
        if name in presets:
            return name
    return None


def _cells():
    for block, algo in BASES.items():
        for robot, env in ROBOTS.items():
            preset = base_preset(algo, robot)
            for level in LEVELS:
                for column, (suffix, fraction, with_source, addons) in COLUMNS.items():
                    yield Cell(
                        name=f"{robot}-{level}.{algo}.{suffix}",
                        learner=Learner(algo, preset, addons=addons),
                        target=dataset_id(robot, level),
                        sources=(dataset_id(robot, level, SOURCE_SHIFT),) if with_source else (),
                        target_fraction=fraction,
                        eval_envs=(env,),
                        row=f"{robot}-{level}",
                        column=column,
                        block=block,
                    )


SUITE = Suite(
    name="dara",
    description=(
        "DARA's table: 10T / 1T / 1T+10S without and with dynamics-aware reward "
        "augmentation, hopper and walker2d at four data levels."
    ),
    cells=tuple(_cells()),
    profiles={
        "paper": replace(
            QUICK_100K,
            steps=1_000_000,
            seeds=(0, 1, 2, 3, 4),
            note="ODRL's DARA protocol: 1M steps, eval every 10k steps x 10 episodes",
        ),
        "quick": QUICK_100K,
    },
    layout=TableLayout(
        title="DARA (target: unshifted dynamics; source: body mass x2)",
        rows=tuple(f"{r}-{lvl}" for r in ROBOTS for lvl in LEVELS),
        columns=tuple(COLUMNS),
        blocks=tuple(BASES),
        arrows={"1T+10S DARA": "1T+10S w/o aug"},
        note="↑ / ↓: DARA's mean above / below 1T+10S without augmentation.",
    ),
    references=("Liu et al., DARA: Dynamics-Aware Reward Augmentation in Offline RL, ICLR 2022",),
)
