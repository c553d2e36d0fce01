"""`ssar`: placeholder for SSAR (Luo et al., ICML 2025), filled by the SSAR issue.

D4RL-style locomotion; TD3+BC and CQL without and with the `ssar` add-on (state-wise
coefficient beta(s)). The SSAR issue adds its per-task settings (selection method,
ref_return / iql_tau); until the add-on exists its jobs fail with "unknown add-on 'ssar'".
"""

from shiftrl.bench.suites.common import ENVS, LEVELS, PAPER_1M, QUICK_100K, dataset_id
from shiftrl.bench.suites.spec import Cell, Learner, Suite, TableLayout

BASES = {"TD3+BC": Learner("td3bc"), "CQL": Learner("cql", preset="default")}


def _cells():
    for robot, env in ENVS.items():
        for level in LEVELS:
            for label, base in BASES.items():
                for with_ssar in (False, True):
                    yield Cell(
                        name=f"{robot}-{level}.{base.algo}{'-ssar' if with_ssar else ''}",
                        learner=Learner(
                            base.algo, base.preset, addons=({"name": "ssar"},) if with_ssar else ()
                        ),
                        target=dataset_id(robot, level),
                        eval_envs=(env,),
                        row=f"{robot}-{level}",
                        column=f"{label}+SSAR" if with_ssar else label,
                    )


SUITE = Suite(
    name="ssar",
    description="SSAR's state-adaptive regularization on TD3+BC and CQL.",
    cells=tuple(_cells()),
    profiles={"paper": PAPER_1M, "quick": QUICK_100K},
    layout=TableLayout(
        title="SSAR on locomotion",
        rows=tuple(f"{r}-{lvl}" for r in ENVS for lvl in LEVELS),
        columns=tuple(c for label in BASES for c in (label, f"{label}+SSAR")),
        arrows={f"{label}+SSAR": label for label in BASES},
    ),
    placeholder="the SSAR add-on is not in shiftrl yet",
    references=("Luo et al., Selective State-Adaptive Regularization for Offline RL, ICML 2025",),
)
