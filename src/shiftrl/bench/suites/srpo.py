"""`srpo`: placeholder for SRPO (Xue et al., NeurIPS 2023), filled by the SRPO issue.

Data as in SRPO's offline experiments: the target dataset plus a shifted-dynamics source
of the same level (here body mass x2); evaluation averages the normalized score over the
target and the shifted environment. Columns: each base learner without and with the
`srpo` add-on (↑ / ↓ against the base). The SRPO issue sets the add-on's settings
(eta, rho), the shifts and the learners; without the add-on those jobs fail with
"unknown add-on 'srpo'".
"""

from shiftrl.bench.suites.common import ENVS, LEVELS, PAPER_1M, QUICK_100K, dataset_id, env_id
from shiftrl.bench.suites.spec import Cell, Learner, Suite, TableLayout

SHIFT = "mass-2.0"
BASES = {"IQL": Learner("iql", preset="locomotion"), "TD3+BC": Learner("td3bc")}


def _cells():
    for robot, env in ENVS.items():
        for level in LEVELS:
            for label, base in BASES.items():
                for with_srpo in (False, True):
                    yield Cell(
                        name=f"{robot}-{level}.{base.algo}{'-srpo' if with_srpo else ''}",
                        learner=Learner(
                            base.algo, base.preset, addons=({"name": "srpo"},) if with_srpo else ()
                        ),
                        target=dataset_id(robot, level),
                        sources=(dataset_id(robot, level, SHIFT),),
                        eval_envs=(env, env_id(robot, SHIFT)),
                        row=f"{robot}-{level}",
                        column=f"{label}+SRPO" if with_srpo else label,
                    )


SUITE = Suite(
    name="srpo",
    description="SRPO's reward augmentation on target + shifted-source data.",
    cells=tuple(_cells()),
    profiles={"paper": PAPER_1M, "quick": QUICK_100K},
    layout=TableLayout(
        title="SRPO: target + body-mass x2 source, mean score over both dynamics",
        rows=tuple(f"{r}-{lvl}" for r in ENVS for lvl in LEVELS),
        columns=tuple(c for label in BASES for c in (label, f"{label}+SRPO")),
        arrows={f"{label}+SRPO": label for label in BASES},
    ),
    placeholder=(
        "the SRPO issue sets the add-on's settings and learners; the MuJoCo datasets and "
        "their mass-2.0 sources come with the dataset zoo"
    ),
    references=(
        "Xue et al., State Regularized Policy Optimization on Data with Dynamics Shift, NeurIPS 2023",
    ),
)
