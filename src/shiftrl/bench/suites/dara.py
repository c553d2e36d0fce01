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
and friction x0.5 shifts (cells `<row>.<algo>.<column>.<shift>`, only the 1T+10S columns:
10T and 1T use no source data, so they are the body-mass blocks' cells).

Controls (on `CONTROL_BASES`: IQL, ODRL's DARA learner and the published rows'), the
columns a reviewer asks for to tell a dynamics-aware gain from another one:
- `1T+10S DARA const` (every shift): DARA's penalty replaced by a constant, the batch's
  mean delta_r over its source rows (`dara.correction=constant`): same size, no
  dependence on (s, a, s'). Its arrow compares it with `1T+10S DARA`.
- `1T+10S w/o aug, D∪D'` and `1T+10S DARA, D∪D'` (every shift): the paper's data mixing,
  rows drawn uniformly from the union of the 10% target and the source (about 9% target
  rows; `source_mixing=union`), beside ODRL's 50/50 batches of the main columns.
- `same-dyn S w/o aug` and `same-dyn S DARA` (body-mass block): the source is data from
  the *target* dynamics collected by another behaviour policy (`SAME_DYNAMICS_SOURCE`:
  medium -> expert, medium-replay -> medium, ...). A dynamics-aware correction should
  leave it almost untouched (delta_r near 0 on its rows: `addon/dara/delta_r_source`).
"""

from dataclasses import replace

from shiftrl.bench.suites.common import (
    ENVS,
    QUICK_100K,
    QUICK_MODEL_CAP,
    dataset_id,
    learner_steps,
)
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
MODEL_BASED = {"MOPO": "mopo"}
"""The paper's model-based block: the `mopo` recipe (SAC + MOPO's rollouts, the dataset's
horizon and penalty), body-mass sources only. With a source, the dynamics ensemble is
trained on the target and source data together (`mopo.model_data=all`; with 10% of the
target, the source carries most of the coverage) and DARA corrects the source rows of
every batch; model rows are left alone. DARA's MOPO code is not public: this is our reading
of "reward augmentation on the source data" for a model-based learner (docs/methods.md)."""
PHASED = ("bracp", "bear")
"""Learners with a first phase of their own (BRAC-p's behaviour cloning, BEAR's warm-up),
kept at the papers' share of the run: 30% and 2% (`common.learner_steps`)."""
DARA = {"name": "dara"}
DARA_CONSTANT = {"name": "dara", "correction": "constant"}
UNION = {"source_mixing": "union"}
CONTROL_BASES = ("IQL",)
"""Base learners with the control columns (the published DARA rows are IQL's)."""
SAME_DYNAMICS_SOURCE = {
    "random": "medium",
    "medium": "expert",
    "medium-replay": "medium",
    "medium-expert": "medium-replay",
}
"""Another behaviour policy's data in the target dynamics, per level (the same-dynamics
source control)."""
COLUMNS = {
    # column: (cell suffix, target fraction, with source, add-ons)
    "10T": ("10T", None, False, ()),
    "1T": ("1T", 0.1, False, ()),
    "1T+10S w/o aug": ("1T+10S", 0.1, True, ()),
    "1T+10S DARA": ("1T+10S-dara", 0.1, True, (DARA,)),
}
CONTROLS = {
    # column: (cell suffix, add-ons, run overrides); target 1T, the shift's source
    "1T+10S DARA const": ("1T+10S-dara-const", (DARA_CONSTANT,), {}),
    "1T+10S w/o aug, D∪D'": ("1T+10S-union", (), UNION),
    "1T+10S DARA, D∪D'": ("1T+10S-dara-union", (DARA,), UNION),
}
SAME_DYNAMICS = {
    # column: (cell suffix, add-ons); target 1T, source: another policy, target dynamics
    "same-dyn S w/o aug": ("1T+S-same-dyn", ()),
    "same-dyn S DARA": ("1T+S-same-dyn-dara", (DARA,)),
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


def _cell(template: Cell, suffix: str, column: str, addons=(), overrides=None, **kw) -> Cell:
    """A cell of `template`'s row and block: its learner with these add-ons and overrides."""
    algo, preset = template.learner.algo, template.learner.preset
    return replace(
        template,
        name=f"{template.row}.{algo}.{suffix}",
        learner=Learner(algo, preset, overrides=overrides or {}, addons=addons),
        column=column,
        **kw,
    )


def _cells():
    for shift_label, shift in SOURCE_SHIFTS.items():
        tag = "" if shift == PAPER_SHIFT else f".{shift}"
        for base, algo in BASES.items():
            for robot, env in ROBOTS.items():
                preset = base_preset(algo, robot)
                for level in LEVELS:
                    template = Cell(
                        name="template",
                        learner=Learner(algo, preset),
                        target=dataset_id(robot, level),
                        eval_envs=(env,),
                        row=f"{robot}-{level}",
                        block=block_name(base, shift_label),
                    )
                    source = (dataset_id(robot, level, shift),)
                    for column, (suffix, fraction, with_source, addons) in COLUMNS.items():
                        if tag and not with_source:
                            continue  # 10T / 1T: one cell, in the paper's (body-mass) block
                        yield _cell(
                            template,
                            f"{suffix}{tag}",
                            column,
                            addons,
                            sources=source if with_source else (),
                            target_fraction=fraction,
                        )
                    if base not in CONTROL_BASES:
                        continue
                    for column, (suffix, addons, overrides) in CONTROLS.items():
                        yield _cell(
                            template,
                            f"{suffix}{tag}",
                            column,
                            addons,
                            overrides,
                            sources=source,
                            target_fraction=0.1,
                        )
                    if tag:
                        continue  # the same-dynamics source has no shift: the body-mass block's
                    same = (dataset_id(robot, SAME_DYNAMICS_SOURCE[level]),)
                    for column, (suffix, addons) in SAME_DYNAMICS.items():
                        yield _cell(
                            template, suffix, column, addons, sources=same, target_fraction=0.1
                        )


def _model_based_cells():
    for base, algo in MODEL_BASED.items():
        for robot, env in ROBOTS.items():
            for level in LEVELS:
                template = Cell(
                    name="template",
                    learner=Learner(algo),
                    target=dataset_id(robot, level),
                    eval_envs=(env,),
                    row=f"{robot}-{level}",
                    block=block_name(base, "body mass x2"),
                )
                source = (dataset_id(robot, level, PAPER_SHIFT),)
                for column, (suffix, fraction, with_source, addons) in COLUMNS.items():
                    yield _cell(
                        template,
                        suffix,
                        column,
                        addons,
                        {"mopo.model_data": "all"} if with_source else None,
                        sources=source if with_source else (),
                        target_fraction=fraction,
                    )


SUITE = Suite(
    name="dara",
    description=(
        "DARA's table: 10T / 1T / 1T+10S without and with dynamics-aware reward "
        "augmentation, hopper, walker2d and halfcheetah at four data levels; body-mass x2 "
        "sources as in the paper, gravity x0.5 and friction x0.5 sources too; controls on "
        "IQL: a constant penalty, D∪D' mixing, a same-dynamics source."
    ),
    cells=(*_cells(), *_model_based_cells()),
    profiles={
        "paper": replace(
            QUICK_100K,
            steps=1_000_000,
            seeds=(0, 1, 2, 3, 4),
            note="ODRL's DARA protocol: 1M steps, eval every 10k steps x 10 episodes",
            learner_settings=learner_steps(1_000_000, *PHASED),
        ),
        "quick": replace(
            QUICK_100K,
            learner_settings=learner_steps(QUICK_100K.steps, *PHASED),
            addon_settings=QUICK_MODEL_CAP,
        ),
    },
    layout=TableLayout(
        title="DARA (target: unshifted dynamics)",
        rows=tuple(f"{r}-{lvl}" for r in ROBOTS for lvl in LEVELS),
        columns=(*COLUMNS, *CONTROLS, *SAME_DYNAMICS),
        blocks=(
            *(block_name(b, s) for s in SOURCE_SHIFTS for b in BASES),
            *(block_name(b, "body mass x2") for b in MODEL_BASED),
        ),
        arrows={
            "1T+10S DARA": "1T+10S w/o aug",
            "1T+10S DARA const": "1T+10S DARA",
            "1T+10S DARA, D∪D'": "1T+10S w/o aug, D∪D'",
            "same-dyn S DARA": "same-dyn S w/o aug",
        },
        note=(
            "↑ / ↓: DARA's mean above / below 1T+10S without augmentation (the constant-"
            "penalty control: against DARA; D∪D' and same-dynamics DARA: against the same "
            "data without augmentation). The gravity and friction blocks have no 10T, 1T and "
            "same-dynamics columns: those use no shifted data (see the body-mass block). "
            "Controls run on IQL."
        ),
    ),
    references=("Liu et al., DARA: Dynamics-Aware Reward Augmentation in Offline RL, ICLR 2022",),
)
