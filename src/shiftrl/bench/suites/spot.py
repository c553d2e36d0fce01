"""`spot`: SPOT's locomotion table (Wu et al., NeurIPS 2022): TD3+BC against SPOT.

Rows: hopper / walker2d / halfcheetah x medium / medium-replay / medium-expert, on the
project's own datasets, evaluated in the unshifted variants. Columns:
- `TD3+BC`: TD3+BC with its paper (CORL) hyperparameters;
- `SPOT`: the `spot` recipe (`shiftrl.recipes`): TD3+BC's `spot` preset (alpha 1, no BC
  term, actor dropout 0.1: TD3 with Q normalization) plus the `spot` add-on (a behaviour
  CVAE pretrained and frozen, then lambda * -log pi_beta(pi(s)|s) in the actor loss) with
  the dataset's lambda from SPOT's configs (`shiftrl.addons.spot.LAMBDA_PRESETS`).
SPOT's entries carry ↑ / ↓ against TD3+BC.

Budgets (the VAE pretrains SPOT's official 100k steps under every budget: cheap next to
the learner, and the density estimate needs them; an earlier version scaled them with the
learner, 1k steps at 10k learner steps):
- `paper`: 1M gradient steps after the VAE's 100k pretraining steps (SPOT's), evaluation
  every 5,000 steps with 10 episodes, the papers' networks (2x256; VAE 750x750), seeds 0-4.
- `quick` (the declared CPU budget): 100k steps after the same 100k VAE steps, evaluation
  every 10,000 steps with 10 episodes, the same networks, seeds 0-2 (54 jobs).
  On the 2-core CPU machine (one single-threaded job per core; rates measured there, see
  docs/benchmarks/README.md: TD3+BC ~170 updates/s, SPOT ~76, the 750x750 VAE ~37
  pretraining steps/s) a TD3+BC job is about 12 minutes and a SPOT job about 70 (45 of
  them the VAE), so the sweep is about 40 core-hours.
"""

from dataclasses import replace

from shiftrl.bench.suites.common import ENVS, LEVELS, PAPER_1M, QUICK_100K, locomotion_cells
from shiftrl.bench.suites.spec import Learner, Suite, TableLayout

LEARNERS = {"TD3+BC": Learner("td3bc"), "SPOT": Learner("spot")}
ROWS = tuple(f"{robot}-{level}" for robot in ENVS for level in LEVELS)


SUITE = Suite(
    name="spot",
    description="SPOT's support constraint against TD3+BC, D4RL-style locomotion.",
    cells=tuple(locomotion_cells({c: (lrn.algo, lrn) for c, lrn in LEARNERS.items()})),
    profiles={
        "paper": replace(
            PAPER_1M,
            note="SPOT's budget: 1M steps after 100k VAE steps, eval every 5k steps x 10 episodes",
        ),
        "quick": replace(
            QUICK_100K,
            note="declared CPU budget: 10% of SPOT's learner steps after its full 100k VAE "
            "steps, same networks",
        ),
    },
    layout=TableLayout(
        title="SPOT on locomotion",
        rows=ROWS,
        columns=tuple(LEARNERS),
        arrows={"SPOT": "TD3+BC"},
        note="SPOT: TD3+BC's `spot` preset + the `spot` add-on at the paper's per-task lambda; "
        "↑ / ↓: SPOT's mean above / below TD3+BC's.",
    ),
    references=("Wu et al., Supported Policy Optimization for Offline RL, NeurIPS 2022",),
)
