"""`mb`: model-based offline RL, MOPO and MOBILE beside the model-free TD3+BC and IQL.

Rows: hopper / walker2d / halfcheetah x medium / medium-replay, on the project's own
datasets, evaluated in the unshifted variants. Columns:
- `MOPO`: the `mopo` recipe (SAC's `mopo` preset + the `mopo` add-on with the dataset's
  horizon and penalty from MOPO's configs, `addons.rollouts.MOPO_PRESETS`);
- `MOBILE`: the `mobile` recipe (SAC's `mobile` preset + the `mobile` add-on with the
  dataset's horizon, beta and real ratio from MOBILE's configs, `MOBILE_PRESETS`);
- `TD3+BC`, `IQL`: the locomotion suite's learners on the same data, the model-free
  reference a reader compares with (the same cells as `locomotion`, run again here so the
  table's columns share one budget).
MOPO and MOBILE carry ↑ / ↓ against TD3+BC.

Every MOPO / MOBILE cell of a dataset uses one dynamics ensemble (model seed 0, cached by
the data's checksum and the model settings: trained by the first job that needs it, reused
by the others, resumed if that job is killed), so a sweep trains 6 ensembles.

Budgets:
- `paper`: the references' 3,000 epochs x 1,000 steps are out of reach here; the profile is
  1M policy steps, evaluation every 5k steps x 10 episodes, 5 seeds, the ensemble trained
  to early stopping (no epoch cap), as MOPO and MOBILE train it.
- `quick` (the declared CPU budget): 100k policy steps (a rollout round every 1,000, as the
  references), evaluation every 10k steps x 10 episodes, 3 seeds, and the ensemble capped at
  `QUICK_MODEL_EPOCHS` epochs (about 40 minutes on 1M hopper transitions at the ~8,600
  samples/s `bench throughput --algo mopo` measured on the 2-core CPU machine). The
  cost per phase of one job (docs/benchmarks/mb.md): MOPO about 30 minutes of policy
  updates and rollouts, MOBILE about 2 hours (its penalty evaluates the target critics at
  N x K = 50 sampled next states per model row).
"""

from dataclasses import replace

from shiftrl.bench.suites.common import (
    ENVS,
    PAPER_1M,
    QUICK_100K,
    QUICK_MODEL_CAP,
    QUICK_MODEL_EPOCHS,
    dataset_id,
)
from shiftrl.bench.suites.spec import Cell, Learner, Suite, TableLayout

LEVELS = ("medium", "medium-replay")
LEARNERS = {
    "MOPO": Learner("mopo"),
    "MOBILE": Learner("mobile"),
    "TD3+BC": Learner("td3bc"),
    "IQL": Learner("iql", preset="locomotion"),
}
ROWS = tuple(f"{robot}-{level}" for robot in ENVS for level in LEVELS)


def _cells():
    for robot, env in ENVS.items():
        for level in LEVELS:
            for column, learner in LEARNERS.items():
                yield Cell(
                    name=f"{robot}-{level}.{learner.algo}",
                    learner=learner,
                    target=dataset_id(robot, level),
                    eval_envs=(env,),
                    row=f"{robot}-{level}",
                    column=column,
                )


SUITE = Suite(
    name="mb",
    description=(
        "Model-based offline RL: MOPO and MOBILE beside TD3+BC and IQL on hopper, walker2d "
        "and halfcheetah medium / medium-replay."
    ),
    cells=tuple(_cells()),
    profiles={
        "paper": replace(
            PAPER_1M,
            note="1M policy steps (the references: 3M), ensemble trained to early stopping",
        ),
        "quick": replace(
            QUICK_100K,
            note=(
                f"declared CPU budget: 100k policy steps, ensemble capped at "
                f"{QUICK_MODEL_EPOCHS} epochs, same networks"
            ),
            addon_settings=QUICK_MODEL_CAP,
        ),
    },
    layout=TableLayout(
        title="Model-based offline RL (normalized score)",
        rows=ROWS,
        columns=tuple(LEARNERS),
        arrows={"MOPO": "TD3+BC", "MOBILE": "TD3+BC"},
        note="↑ / ↓: MOPO's / MOBILE's mean above / below TD3+BC's on the same data.",
    ),
    references=(
        "Yu et al., MOPO: Model-based Offline Policy Optimization, NeurIPS 2020",
        "Sun et al., Model-Bellman Inconsistency for Model-based Offline RL, ICML 2023",
    ),
)
