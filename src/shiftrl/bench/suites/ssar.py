"""`ssar`: SSAR's locomotion table (Luo et al., ICML 2025) on TD3+BC and CQL.

Rows: hopper / walker2d / halfcheetah x medium / medium-replay / medium-expert, on the
project's own datasets, evaluated in the unshifted variants. Columns: each backbone with
its paper (CORL) hyperparameters, then with SSAR (↑ / ↓ against the backbone):
- `TD3+BC (LayerNorm)` (the backbone control): TD3+BC with SSAR's LayerNorm critics
  (the learner's `ssar` preset) and no add-on, so a gain of +SSAR over TD3+BC can be split
  into what LayerNorm does and what SSAR's regularizer does. The +SSAR columns' arrows
  compare with it; its own arrow with TD3+BC. (CQL has no such column yet: a CQL job is
  5-11 hours on the CPU machine.)
- `TD3+BC+SSAR`, `CQL+SSAR`: the `ssar-td3bc` / `ssar-cql` recipes (`shiftrl.recipes`):
  the learner's `ssar` preset (LayerNorm critics) plus the `ssar` add-on with the official
  per-dataset settings (`shiftrl.addons.ssar.preset_settings`: trusted-data selection by
  trajectory return or by a pretrained IQL critic, max_n, loosen_bound).
- `TD3+BC+SSAR uniform`, `CQL+SSAR uniform` (the control): the same, but every trusted
  sample gets the batch's mean of beta(s) (`ssar.beta_form=uniform`): SSAR's level of
  regularization without its state dependence. Its arrow compares it with +SSAR.
- `TD3+BC+SSAR top-half trust` (the trusted-data control, on the rows whose official
  config trusts by return: the medium rows): trajectories above the dataset's median return
  are trusted instead of the official D4RL threshold. Its arrow compares it with the
  LayerNorm backbone.

Budgets (the add-on's own steps scale with the learner's through the budget's
`addon_settings`, which only jobs with the `ssar` add-on take):
- `paper`: 1M gradient steps; SSAR's IQL critic (where `select=iql`) pretrains 1M steps
  first, the tolerance schedule is checked every 50k steps and beta(s) learns at the
  official rate (the official configs);
  evaluation every 5,000 steps with 10 episodes, the papers' networks (TD3+BC 2x256, CQL
  3x256, beta(s) 3x512), seeds 0-4.
- `quick` (the declared CPU budget): 10% of the steps: 100k learner steps, 100k IQL
  pretraining steps, the n schedule every 5k steps and beta(s)'s learning rate 10x the
  official (`ssar.beta_lr_steps=100000`: Adam moves a weight about lr per step, so beta
  moves as far in 10x fewer steps); evaluation every 10,000 steps with 10
  episodes, the same networks, seeds 0-2 (198 jobs). On the 2-core CPU machine (rates
  measured there, see docs/benchmarks/README.md: TD3+BC ~170 updates/s, TD3+BC+SSAR ~50,
  SSAR's IQL pretraining ~165, CQL at 3x256 2.5-6, CQL+SSAR ~0.75x CQL) the TD3+BC
  columns take about 52 core-hours (54 TD3+BC jobs ~11 minutes each; 63 TD3+BC+SSAR and
  control jobs ~40 minutes each), but
  a CQL job takes 5-11 hours and a CQL+SSAR job 6-15, several hundred core-hours for the
  CQL columns: run those on a GPU or a Ray cluster, or leave them out with
  `--only '*.td3bc*'`.
"""

from dataclasses import replace

from shiftrl.addons.ssar import preset_settings
from shiftrl.bench.suites.common import (
    ENVS,
    LEVELS,
    PAPER_1M,
    QUICK_100K,
    addon_steps,
    locomotion_cells,
)
from shiftrl.bench.suites.spec import Learner, Suite, TableLayout

MEDIAN_TRUST = "TD3+BC+SSAR top-half trust"
"""The trusted-data control, on rows whose official config trusts trajectories above a
return (hopper/walker2d/halfcheetah-medium): the same SSAR trusting the trajectories above
the dataset's median return (`trust_quantile` 0.5) instead. The official D4RL thresholds,
mapped through our reference scores, trust 3-6% of our hopper-medium; is that, rather than
beta(s), what decides +SSAR's score?"""

BACKBONE = "TD3+BC (LayerNorm)"
"""SSAR's own backbone without SSAR: the official SSAR code's critics carry LayerNorm,
CORL's TD3+BC's do not, and LayerNorm alone is known to lift offline TD3+BC."""

# column: (cell suffix, learner)
COLUMNS = {
    "TD3+BC": ("td3bc", Learner("td3bc")),
    BACKBONE: ("td3bc-ln", Learner("td3bc", preset="ssar")),
    "TD3+BC+SSAR": ("td3bc-ssar", Learner("ssar-td3bc")),
    "TD3+BC+SSAR uniform": (
        "td3bc-ssar-uniform",
        Learner("ssar-td3bc", overrides={"ssar.beta_form": "uniform"}),
    ),
    MEDIAN_TRUST: (
        "td3bc-ssar-top-half",
        Learner("ssar-td3bc", overrides={"ssar.trust_score": None, "ssar.trust_return": None}),
    ),
    "CQL": ("cql", Learner("cql", preset="default")),
    "CQL+SSAR": ("cql-ssar", Learner("ssar-cql")),
    "CQL+SSAR uniform": (
        "cql-ssar-uniform",
        Learner("ssar-cql", overrides={"ssar.beta_form": "uniform"}),
    ),
}
ROWS = tuple(f"{robot}-{level}" for robot in ENVS for level in LEVELS)


def _cells():
    for cell in locomotion_cells(COLUMNS):
        official = preset_settings("td3bc", cell.target)
        if cell.column == MEDIAN_TRUST and official.get("select") != "traj":
            continue  # rows whose trusted data come from an IQL critic: nothing to vary
        yield cell


SUITE = Suite(
    name="ssar",
    description="SSAR's state-adaptive regularization on TD3+BC and CQL, D4RL-style locomotion.",
    cells=tuple(_cells()),
    profiles={
        "paper": replace(
            PAPER_1M,
            addon_settings=addon_steps(PAPER_1M.steps, "ssar"),
            note="SSAR's budget: 1M steps (IQL critic 1M pretraining steps, n checked every "
            "50k), eval every 5k steps x 10 episodes",
        ),
        "quick": replace(
            QUICK_100K,
            addon_settings=addon_steps(QUICK_100K.steps, "ssar"),
            note="declared CPU budget: 10% of SSAR's learner, IQL and schedule steps, "
            "same networks",
        ),
    },
    layout=TableLayout(
        title="SSAR on locomotion",
        rows=ROWS,
        columns=tuple(COLUMNS),
        arrows={
            BACKBONE: "TD3+BC",
            "TD3+BC+SSAR": BACKBONE,
            "CQL+SSAR": "CQL",
            "TD3+BC+SSAR uniform": "TD3+BC+SSAR",
            MEDIAN_TRUST: BACKBONE,
            "CQL+SSAR uniform": "CQL+SSAR",
        },
        note="+SSAR: the learner's `ssar` preset (LayerNorm critics) + the `ssar` add-on with "
        "the official per-dataset settings; ↑ / ↓: above / below the backbone's mean (TD3+BC "
        "variants: against TD3+BC (LayerNorm), the same critics without SSAR; that one "
        "against TD3+BC; the uniform-beta control: against +SSAR).",
    ),
    references=("Luo et al., Selective State-Adaptive Regularization for Offline RL, ICML 2025",),
)
