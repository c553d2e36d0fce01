"""`morec`: MOREC's transition filter against its base methods (Luo et al., ICLR 2024).

Rows: hopper / walker2d / halfcheetah x medium / medium-replay, on the project's own
datasets, evaluated in the unshifted variants. Columns:
- `MOPO` (the `mopo` recipe: MOPO's per-task horizon and lambda) against `MOREC-MOPO`
  (`morec-mopo`: rollouts of 100 from 2,000 starts, 10 candidates per step chosen by the
  learned dynamics reward, ended below r_D 0.6, MOREC's per-task lambda and rule);
- `MOBILE` (`mobile`) against `MOREC-MOBILE` (`morec-mobile`: softmax selection over 10 of
  the reward's 40 snapshots, MOREC's per-task beta).
MOREC's entries carry ↑ / ↓ against their base. The dynamics ensemble and the dynamics
reward are learned once per dataset (cached: `$SHIFTRL_DATA/dynamics`, `dynamics-reward`)
and shared by every seed and column that uses them.

NeoRL-style rows (MOREC's largest reported gains): the same columns on the project's
NeoRL-like data (`<robot>/neorl-low|medium|high-v0`, 1,000 trajectories of a behaviour
policy near 25 / 50 / 75% of the best zoo snapshot's return acting with its mean 80% of the
time; docs/datasets.md), evaluated in the matching x-position environments
(`shiftrl/<robot>-base-neorl-v0`). MOBILE, MOREC-MOPO and MOREC-MOBILE take their released
NeoRL rows (docs/methods.md); MOPO has none released and runs its defaults there.

Budgets: `paper` 1M SAC steps (MOREC trains 3M: 3,000 epochs x 1,000), seeds 0-4; `quick`
(declared) 100k steps, the dynamics ensemble capped at 20 epochs as in `mb`, seeds 0-2
(180 jobs). Measured so far (docs/benchmarks/morec.md): a MOREC-MOPO job runs 6-7 updates/s
on the shared 2-core CPU, about 4.5 hours (rollouts of 100 steps x 10 candidates x 40
snapshots every 1,000 steps), against MOPO's ~1 hour: the suite is for an accelerator.
"""

from dataclasses import replace

from shiftrl.bench.suites.common import ENVS, PAPER_1M, QUICK_100K, QUICK_MODEL_CAP, dataset_id
from shiftrl.bench.suites.spec import Cell, Learner, Suite, TableLayout

LEVELS = ("medium", "medium-replay")
NEORL_LEVELS = ("neorl-low", "neorl-medium", "neorl-high")
LEARNERS = {
    "MOPO": Learner("mopo"),
    "MOREC-MOPO": Learner("morec-mopo"),
    "MOBILE": Learner("mobile"),
    "MOREC-MOBILE": Learner("morec-mobile"),
}
ROWS = tuple(f"{robot}-{level}" for robot in ENVS for level in (*LEVELS, *NEORL_LEVELS))


def cells():
    for robot, env in ENVS.items():
        for level in (*LEVELS, *NEORL_LEVELS):
            row = f"{robot}-{level}"
            neorl = level in NEORL_LEVELS
            for column, learner in LEARNERS.items():
                yield Cell(
                    name=f"{row}.{learner.algo}",
                    learner=learner,
                    target=dataset_id(robot, level),
                    eval_envs=(f"shiftrl/{robot}-base-neorl-v0" if neorl else env,),
                    row=row,
                    column=column,
                )


SUITE = Suite(
    name="morec",
    description="MOREC's dynamics-reward filter on MOPO and MOBILE, D4RL-style locomotion.",
    cells=tuple(cells()),
    profiles={
        "paper": replace(PAPER_1M, note="1M SAC steps (MOREC: 3M), eval every 5k x 10 episodes"),
        "quick": replace(
            QUICK_100K,
            note="declared budget: 100k SAC steps; dynamics ensemble capped at 20 epochs, "
            "reward at full size",
            addon_settings=QUICK_MODEL_CAP,
        ),
    },
    layout=TableLayout(
        title="MOREC on locomotion",
        rows=ROWS,
        columns=tuple(LEARNERS),
        arrows={"MOREC-MOPO": "MOPO", "MOREC-MOBILE": "MOBILE"},
        note="MOREC-*: the base method's rollouts filtered by the learned dynamics reward "
        "(MOREC's per-task settings); ↑ / ↓: above / below its base.",
    ),
    references=(
        "Luo, Xu, Cao & Yu, Reward-Consistent Dynamics Models are Strongly Generalizable for "
        "Offline Reinforcement Learning, ICLR 2024",
    ),
)
