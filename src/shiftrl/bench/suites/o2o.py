"""`o2o`: offline-to-online fine-tuning (CORL's offline -> online tables; SPOT, SSAR, IQL).

Each job trains a method offline, then fine-tunes it online (`shiftrl.training.finetune`)
into `<job>/online`, with the method's own online schedule: the add-ons carry theirs (SPOT
anneals lambda to 20%; SSAR scales its frozen beta(s) down) and their replay at the switch
(SPOT, IQL, TD3+BC: all offline data; SSAR: its 50 best offline trajectories, plus SSAR's
5,000 policy steps before the first online update).

Block `same dynamics` (CORL's table): rows hopper / walker2d / halfcheetah x medium /
medium-replay / medium-expert; columns IQL (its `locomotion` preset), SPOT (`spot`
recipe), TD3+BC+SSAR and CQL+SSAR (`ssar-td3bc`, `ssar-cql` recipes); offline on the
dataset, online in the unshifted environment.

Block `cross dynamics` (the users' main setting): offline on the body-mass x2 data
(`<robot>-mass-2.0/medium-v0`), evaluated offline and fine-tuned online in the base
dynamics (`shiftrl/<robot>-base-v0`), for TD3+BC (replay at the switch: all offline data,
or `half`: half of each online batch from the offline data), SPOT (all) and TD3+BC+SSAR
(its own: the 50 best offline trajectories, 5,000 policy steps before the first update).

The report shows offline score -> online score per cell and the regret (CORL: mean over
the online evaluations of 1 - score / 100), with an online learning curve per cell.

Budgets (offline steps as the offline suites; add-on step counts scaled with them):
- `paper`: 1M offline steps (SPOT's VAE 100k pretraining steps, as under every budget;
  SSAR's IQL critic 1M and n schedule every 50k), then each method's online steps from
  its paper: 1M for IQL (CORL), SPOT and TD3+BC (SPOT's), 250k for SSAR; offline
  evaluation every 5,000 steps, online every 10,000 environment steps, 10 episodes each;
  the papers' networks; seeds 0-4.
- `quick` (the declared CPU budget): 100k offline steps (SSAR's steps at 10%, SPOT's VAE
  100k), then 50k online steps for every method; evaluation every 10,000 steps (offline)
  and 10,000 environment steps (online) with 10 episodes; the same networks; seeds 0-2
  (144 jobs). Estimated from the offline rates measured on the 2-core CPU machine (the
  online phase is an update plus an environment step per step; not measured as a
  sweep): about 20 minutes a job for IQL and TD3+BC, 90 for SPOT (half of it the VAE's
  100k steps), 60 for TD3+BC+SSAR, so about 100 core-hours (some 50 hours on the 2
  cores) without CQL+SSAR, whose jobs (CQL at 3x256, 150k updates at 2-5 per second)
  take 8-20 hours each: run that column on a GPU or a Ray cluster, or leave it out with
  `--only`.
"""

from dataclasses import replace

from shiftrl.bench.suites.common import (
    ENVS,
    LEVELS,
    PAPER_1M,
    QUICK_100K,
    addon_steps,
    dataset_id,
    locomotion_cells,
)
from shiftrl.bench.suites.spec import Cell, Learner, Online, OnlineBudget, Suite, TableLayout

SAME, CROSS = (
    "same dynamics",
    "cross dynamics: offline on body mass x2, online in the base dynamics",
)
SOURCE_SHIFT = "mass-2.0"
SSAR_ONLINE = Online(steps=250_000, warmup=5000)  # replay: the add-on's ("part", 50 best)
METHODS = {
    # column: (cell suffix, learner, online phase as in the method's paper)
    "IQL": ("iql", Learner("iql", preset="locomotion"), Online(steps=1_000_000, replay="all")),
    "SPOT": ("spot", Learner("spot"), Online(steps=1_000_000)),
    "TD3+BC+SSAR": ("ssar-td3bc", Learner("ssar-td3bc"), SSAR_ONLINE),
    "CQL+SSAR": ("ssar-cql", Learner("ssar-cql"), SSAR_ONLINE),
}
CROSS_METHODS = {
    # column: (cell suffix, learner, online phase; its env is set per robot)
    "TD3+BC": ("td3bc", Learner("td3bc"), Online(steps=1_000_000, replay="all")),
    "TD3+BC, replay half": ("td3bc-half", Learner("td3bc"), Online(steps=1_000_000, replay="half")),
    "SPOT": ("spot", Learner("spot"), Online(steps=1_000_000, replay="all")),
    "TD3+BC+SSAR": ("ssar-td3bc", Learner("ssar-td3bc"), SSAR_ONLINE),
}
ROWS = tuple(f"{robot}-{level}" for robot in ENVS for level in LEVELS)


def _cells():
    yield from locomotion_cells(METHODS, block=SAME)
    for robot, env in ENVS.items():
        for column, (suffix, learner, online) in CROSS_METHODS.items():
            yield Cell(
                name=f"{robot}-{SOURCE_SHIFT}-medium.{suffix}.to-base",
                learner=learner,
                target=dataset_id(robot, "medium", SOURCE_SHIFT),
                eval_envs=(env,),
                row=f"{robot}-medium",
                column=column,
                block=CROSS,
                online=replace(online, env=env),
            )


ADDONS = ("ssar",)  # SPOT's VAE keeps its 100k steps at every budget
SUITE = Suite(
    name="o2o",
    description=(
        "Offline-to-online fine-tuning: IQL, SPOT, TD3+BC+SSAR, CQL+SSAR on locomotion, and "
        "TD3+BC (all or half replay), SPOT, TD3+BC+SSAR from body-mass x2 data to the base "
        "dynamics."
    ),
    cells=tuple(_cells()),
    profiles={
        "paper": replace(
            PAPER_1M,
            addon_settings=addon_steps(PAPER_1M.steps, *ADDONS),
            online=OnlineBudget(steps=None, eval_every=10_000, eval_episodes=10),
            note="the papers' budgets: 1M offline steps, then each method's online steps "
            "(IQL, SPOT, TD3+BC 1M; SSAR 250k)",
        ),
        "quick": replace(
            QUICK_100K,
            addon_settings=addon_steps(QUICK_100K.steps, *ADDONS),
            online=OnlineBudget(steps=50_000, eval_every=10_000, eval_episodes=10),
            note="declared CPU budget: 100k offline steps (SSAR's steps at 10%, SPOT's VAE "
            "100k) + 50k online steps for every method, same networks",
        ),
    },
    layout=TableLayout(
        title="Offline-to-online: offline score -> online score",
        rows=ROWS,
        columns=("IQL", "TD3+BC", "TD3+BC, replay half", "SPOT", "TD3+BC+SSAR", "CQL+SSAR"),
        blocks=(SAME, CROSS),
    ),
    references=(
        "Tarasov et al., CORL (offline-to-online tables), NeurIPS 2023 D&B",
        "Wu et al., Supported Policy Optimization for Offline RL, NeurIPS 2022",
        "Luo et al., Selective State-Adaptive Regularization for Offline RL, ICML 2025",
    ),
)
