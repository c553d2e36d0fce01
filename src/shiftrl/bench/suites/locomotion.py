"""`locomotion`: the D4RL-style single-dynamics table (CORL's layout).

Rows: hopper / walker2d / halfcheetah x medium / medium-replay / medium-expert, on the
project's own datasets (`hopper/medium-v0`, ...); columns: BC, TD3+BC, IQL, CQL with
their paper (CORL) hyperparameters. Evaluated in the unshifted variants
(`shiftrl/hopper-base-v0`, ...), scored with the zoo's reference returns for them.

Budgets:
- `paper`: 1M gradient steps, evaluation every 5,000 steps with 10 episodes, the papers'
  networks (2x256; CQL 3x256), 5 seeds.
- `quick` (the declared CPU budget): 100k steps (10% of the papers'), evaluation every
  10,000 steps with 10 episodes, the same networks, 3 seeds. On the 2-core CPU machine
  this is about 15 core-hours without CQL and about 120 more for CQL at 3x256
  (docs/benchmarks/README.md).
"""

from shiftrl.bench.suites.common import (
    ENVS,
    LEVELS,
    PAPER_1M,
    QUICK_100K,
    locomotion_cells,
)
from shiftrl.bench.suites.spec import Learner, Suite, TableLayout

LEARNERS = {
    "BC": Learner("bc"),
    "TD3+BC": Learner("td3bc"),
    "IQL": Learner("iql", preset="locomotion"),
    "CQL": Learner("cql", preset="default"),
}
ROWS = tuple(f"{robot}-{level}" for robot in ENVS for level in LEVELS)

SUITE = Suite(
    name="locomotion",
    description=(
        "Single-dynamics MuJoCo locomotion (hopper, walker2d, halfcheetah at medium, "
        "medium-replay, medium-expert) with BC, TD3+BC, IQL and CQL, as in CORL's tables."
    ),
    cells=tuple(locomotion_cells({c: (lrn.algo, lrn) for c, lrn in LEARNERS.items()})),
    profiles={"paper": PAPER_1M, "quick": QUICK_100K},
    layout=TableLayout(
        title="D4RL-style locomotion (normalized score)",
        rows=ROWS,
        columns=tuple(LEARNERS),
    ),
    references=(
        "Tarasov et al., CORL: Research-oriented Deep Offline RL Library, NeurIPS 2023 D&B",
    ),
)
