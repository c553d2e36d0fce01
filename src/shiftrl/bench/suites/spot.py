"""`spot`: placeholder for SPOT (Wu et al., NeurIPS 2022), filled by the SPOT issue.

D4RL-style locomotion, TD3+BC against TD3+BC with the `spot` add-on (VAE density
regularizer) at the paper's per-task lambda. Until the add-on exists its jobs fail with
"unknown add-on 'spot'".
"""

from shiftrl.bench.suites.common import ENVS, LEVELS, PAPER_1M, QUICK_100K, dataset_id
from shiftrl.bench.suites.spec import Cell, Learner, Suite, TableLayout

# SPOT's configs/offline/*.yml
LAMBDA = {
    "halfcheetah-medium": 0.05,
    "halfcheetah-medium-replay": 0.05,
    "halfcheetah-medium-expert": 1.0,
    "hopper-medium": 0.1,
    "hopper-medium-replay": 0.1,
    "hopper-medium-expert": 0.2,
    "walker2d-medium": 0.2,
    "walker2d-medium-replay": 0.2,
    "walker2d-medium-expert": 0.5,
}


def _cells():
    for robot, env in ENVS.items():
        for level in LEVELS:
            row = f"{robot}-{level}"
            common = {"target": dataset_id(robot, level), "eval_envs": (env,), "row": row}
            yield Cell(name=f"{row}.td3bc", learner=Learner("td3bc"), column="TD3+BC", **common)
            yield Cell(
                name=f"{row}.td3bc-spot",
                learner=Learner("td3bc", addons=({"name": "spot", "lambd": LAMBDA[row]},)),
                column="SPOT",
                **common,
            )


SUITE = Suite(
    name="spot",
    description="SPOT's support constraint on TD3+BC, D4RL-style locomotion.",
    cells=tuple(_cells()),
    profiles={"paper": PAPER_1M, "quick": QUICK_100K},
    layout=TableLayout(
        title="SPOT on locomotion",
        rows=tuple(LAMBDA),
        columns=("TD3+BC", "SPOT"),
        arrows={"SPOT": "TD3+BC"},
    ),
    placeholder="the SPOT add-on is not in shiftrl yet",
    references=("Wu et al., Supported Policy Optimization for Offline RL, NeurIPS 2022",),
)
