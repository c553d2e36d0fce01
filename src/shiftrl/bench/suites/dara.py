"""`dara`: DARA's main table (Liu et al., ICLR 2022).

Rows: hopper / walker2d / halfcheetah x random / medium / medium-replay / medium-expert;
columns:
- `10T`: the full target dataset;
- `1T`: 10% of the target data (whole episodes, drawn with the run's seed);
- `1T+10S w/o aug`: 10% target + the full shifted source dataset;
- `1T+10S DARA`: the same data with DARA's reward augmentation (add-on `dara`).
The DARA column carries ↑ / ↓ against `1T+10S w/o aug`, as the paper's table does.

Base learners, one sub-table each: the paper's model-free ones (BEAR, BRAC-p, BCQ, CQL,
AWR) with their reference defaults (a per-robot preset where the learner has one), and
IQL, ODRL's DARA baseline. Every setting draws half of each batch from the source data
when there is one (ODRL: 128 target + 128 source rows). The DARA column runs the `dara`
add-on at its defaults (eta 0.1, clip 10, classifiers trained alongside the learner as in
ODRL; see docs/methods.md).

The source is the same level's dataset in shifted dynamics: body mass x2 as in the paper
(`<robot>-mass-2.0/<level>-v0`; these blocks hold all four columns), and our gravity x0.5
and friction x0.5 shifts (cells `<row>.<algo>.<column>.<shift>`, only the two 1T+10S
columns: 10T and 1T use no source data, so they are the body-mass blocks' cells).
"""

from dataclasses import replace

from shiftrl.bench.suites.common import ENVS, QUICK_100K, dataset_id, learner_steps
from shiftrl.bench.suites.spec import Cell, Learner, Suite, TableLayout

ROBOTS = {r: ENVS[r] for r in ("hopper", "walker2d", "halfcheetah")}
LEVELS = ("random", "medium", "medium-replay", "medium-expert")
SOURCE_SHIFTS = {
    "body mass x2": "mass-2.0",  # the paper's
    "gravity x0.5": "gravity-0.5",
    "friction x0.5": "friction-0.5",
}
PAPER_SHIFT = "mass-2.0"
BASES = {
    "BEAR": "bear",
    "BRAC-p": "bracp",
    "BCQ": "bcq",
    "CQL": "cql",
    "AWR": "awr",
    "IQL": "iql",
}
PHASED = ("bracp", "bear")
"""Learners with a first phase of their own (BRAC-p's behaviour cloning, BEAR's warm-up),
kept at the papers' share of the run: 30% and 2% (`common.learner_steps`)."""
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


def block_name(base: str, shift_label: str) -> str:
    return f"{base}, source {shift_label}"


def _cells():
    for shift_label, shift in SOURCE_SHIFTS.items():
        tag = "" if shift == PAPER_SHIFT else f".{shift}"
        for base, algo in BASES.items():
            for robot, env in ROBOTS.items():
                preset = base_preset(algo, robot)
                for level in LEVELS:
                    for column, (suffix, fraction, with_source, addons) in COLUMNS.items():
                        if tag and not with_source:
                            continue  # 10T / 1T: one cell, in the paper's (body-mass) block
                        yield Cell(
                            name=f"{robot}-{level}.{algo}.{suffix}{tag}",
                            learner=Learner(algo, preset, addons=addons),
                            target=dataset_id(robot, level),
                            sources=(dataset_id(robot, level, shift),) if with_source else (),
                            target_fraction=fraction,
                            eval_envs=(env,),
                            row=f"{robot}-{level}",
                            column=column,
                            block=block_name(base, shift_label),
                        )


SUITE = Suite(
    name="dara",
    description=(
        "DARA's table: 10T / 1T / 1T+10S without and with dynamics-aware reward "
        "augmentation, hopper, walker2d and halfcheetah at four data levels; body-mass x2 "
        "sources as in the paper, gravity x0.5 and friction x0.5 sources too."
    ),
    cells=tuple(_cells()),
    profiles={
        "paper": replace(
            QUICK_100K,
            steps=1_000_000,
            seeds=(0, 1, 2, 3, 4),
            note="ODRL's DARA protocol: 1M steps, eval every 10k steps x 10 episodes",
            learner_settings=learner_steps(1_000_000, *PHASED),
        ),
        "quick": replace(QUICK_100K, learner_settings=learner_steps(QUICK_100K.steps, *PHASED)),
    },
    layout=TableLayout(
        title="DARA (target: unshifted dynamics)",
        rows=tuple(f"{r}-{lvl}" for r in ROBOTS for lvl in LEVELS),
        columns=tuple(COLUMNS),
        blocks=tuple(block_name(b, s) for s in SOURCE_SHIFTS for b in BASES),
        arrows={"1T+10S DARA": "1T+10S w/o aug"},
        note=(
            "↑ / ↓: DARA's mean above / below 1T+10S without augmentation. The gravity and "
            "friction blocks have no 10T and 1T columns: those use no source data (see the "
            "body-mass block)."
        ),
    ),
    references=("Liu et al., DARA: Dynamics-Aware Reward Augmentation in Offline RL, ICLR 2022",),
)
