"""`srpo`: SRPO's offline protocol (Xue et al., NeurIPS 2023), model-free.

Data, as SRPO's `load_d4rl_st_buffer`: one robot's data from several dynamics, each
contributing equally: the target `<robot>/<level>-v0` (unshifted dynamics) plus the
sources `<robot>-mass-2.0/<level>-v0` (body mass x2, SRPO's `body_mass`) and
`<robot>-friction-0.5/<level>-v0` (a second shift the zoo ships, in place of SRPO's
`density_10`, which shiftrl has no environment for). Robots hopper, walker2d, halfcheetah;
levels medium, medium-replay, medium-expert.

Equal shares: the loop draws `1 - source_fraction` of every batch from the target and
lets the sources share `source_fraction` in proportion to their sizes
(`training.loop.batch_counts`). Every cell sets `source_fraction = 2/3` (the number of
sources over the number of datasets, through the learner's overrides), so each of the three
datasets gives a third of every batch: 85 / 86 / 85 rows of 256 where the two sources are
the same size (medium 1M, medium-expert 2M transitions by default). The medium-replay
sources are the SAC replays up to each variant's medium snapshot, which differ in length,
so there the two sources split their two thirds by size, as SRPO's concatenated buffer does.

Learners (columns): CQL, TD3+BC and IQL, each without and with the `srpo` add-on at
lambda = 0.1, rho = 0.5 (the official README command and code defaults; the paper also
uses lambda = 0.3 and rho = 0.2) in the released code's form r + lambda * log(clip(logit,
0.1, 10)) on raw rewards (the add-on's defaults: the code behind SRPO's published numbers;
at most 0.23 per step, about 8% of a hopper reward, whatever the learner's reward
scaling). The paper's r + lambda * log(D / (1 - D)) is `srpo.form=paper`. The +SRPO
columns carry ↑ / ↓ against their base learner.

Control, per learner: `+SRPO shuffled`, the discriminator trained on the same number of
high-value labels at random positions (`srpo.labels_from=shuffled`): a bonus of the same
form without value information. Its arrow compares it with `+SRPO`; a gain SRPO keeps
over it is the state regularization's.

Evaluation, as SRPO's: in every dynamics of the mix (base, mass-2.0, friction-0.5); a
cell's normalized score is the mean over the three, and the report adds a second table
with the score in the base dynamics alone (the layout's `per_env_tables`, read from each
run's `eval/<env>/normalized_score`).

MAPLE block (SRPO's official offline runs: the released `maple_st` on MAPLE, with
`maple_dara` as its DARA baseline): `--algo maple` (context-conditioned SAC with GRU
context encoders on real and model-rollout segments, H 10, lambda 0.25, penalty clip 40,
20 models / 14 elites, one elite per rollout; its ensemble trained on the whole mix), then
`+SRPO` (the same add-on and settings as above, which is what `maple_st` adds) and `+DARA`
in the released MAPLE baseline's form (`dara.correction=maple_dara`: + eta * log(clip(-delta_r,
0.1, 10)) on every row, eta 0.1, the value the README uses for `maple_st`; `maple_dara`'s own
eta is not stated), on hopper and walker2d, medium and medium-replay, with the same data
shares and evaluation. Its arrows compare each with MAPLE. Profiles: `paper` 1M steps, evaluation every 5k steps x 10 episodes
per dynamics (SRPO: 40 per dynamics every MAPLE epoch), 5 seeds; `quick` the declared
CPU budget, 100k steps, every 10k x 10, 3 seeds. The walker2d and friction-0.5 datasets
come with the dataset zoo; until it ships a variant, its jobs fail with the data error and
the sweep goes on.

Online block (`_online_cells`, SRPO-like: the paper's online protocol, environments and
ranges are not public): context SAC (`sac-context`) vs context SAC + SRPO (lambda 0.1, rho
0.5, as offline), trained from scratch on `pendulum-randomized-gravity` (g x0.5 / 1 / 2
drawn per episode) and `hopper-randomized-mass` (body mass x0.5 / 1 / 2), no data, with the
shuffled-label control as offline (the discriminator's high/low labels drawn at random in
the same count: is a gain SRPO's value ranking, or any extra reward shaping?). A cell's
score is the mean normalized score over the three dynamics, its curve that score against
environment steps (sample efficiency); the arrows compare +SRPO with its base and the
control with +SRPO, as offline.
Budgets: `paper` 100k (pendulum) / 1M (hopper) environment steps, evaluation every 10k x 10
episodes per dynamics; `quick` 20% of those (20k / 200k), every 5k x 5; seeds as the
profile's (quick: 0-2).
"""

from dataclasses import replace

from shiftrl.bench.suites.common import ENVS, LEVELS, PAPER_1M, QUICK_100K, dataset_id, env_id
from shiftrl.bench.suites.spec import Cell, Learner, Online, OnlineBudget, Suite, TableLayout

SHIFTS = ("mass-2.0", "friction-0.5")
"""The source dynamics, beside the target's (unshifted) ones."""
SOURCE_FRACTION = len(SHIFTS) / (1 + len(SHIFTS))
"""2/3: with the target's third, every dataset gives an equal share of each batch."""
SRPO = {"name": "srpo", "lam": 0.1, "rho": 0.5}
SRPO_SHUFFLED = {**SRPO, "labels_from": "shuffled"}
VARIANTS = {
    # column suffix: (cell-name suffix, add-ons)
    "": ("", ()),
    "+SRPO": ("-srpo", (SRPO,)),
    "+SRPO shuffled": ("-srpo-shuffled", (SRPO_SHUFFLED,)),
}
BASES = {
    "CQL": Learner("cql", preset="default"),
    "TD3+BC": Learner("td3bc"),
    "IQL": Learner("iql", preset="locomotion"),
}
BASE_ONLY = "base dynamics only"

MODEL_FREE = "model-free learners"
MAPLE_BLOCK = "MAPLE (model-based, SRPO's released base)"
MAPLE_ROBOTS = ("hopper", "walker2d")
MAPLE_LEVELS = ("medium", "medium-replay")
MAPLE_DARA = {"name": "dara", "eta": 0.1, "correction": "maple_dara"}
MAPLE_VARIANTS = {
    # column: (cell-name suffix, add-ons)
    "MAPLE": ("", ()),
    "MAPLE+DARA": ("-dara", (MAPLE_DARA,)),
    "MAPLE+SRPO": ("-srpo", (SRPO,)),
}


def _cells():
    for robot, env in ENVS.items():
        for level in LEVELS:
            for label, base in BASES.items():
                for column, (suffix, addons) in VARIANTS.items():
                    yield Cell(
                        name=f"{robot}-{level}.{base.algo}{suffix}",
                        learner=replace(
                            base,
                            overrides={**base.overrides, "source_fraction": SOURCE_FRACTION},
                            addons=tuple(dict(a) for a in addons),
                        ),
                        target=dataset_id(robot, level),
                        sources=tuple(dataset_id(robot, level, s) for s in SHIFTS),
                        eval_envs=(env, *(env_id(robot, s) for s in SHIFTS)),
                        row=f"{robot}-{level}",
                        column=f"{label}{column}",
                        block=MODEL_FREE,
                    )
    for robot in MAPLE_ROBOTS:
        for level in MAPLE_LEVELS:
            for column, (suffix, addons) in MAPLE_VARIANTS.items():
                yield Cell(
                    name=f"{robot}-{level}.maple{suffix}",
                    learner=Learner(
                        "maple",
                        overrides={"source_fraction": SOURCE_FRACTION},
                        addons=tuple(dict(a) for a in addons),
                    ),
                    target=dataset_id(robot, level),
                    sources=tuple(dataset_id(robot, level, s) for s in SHIFTS),
                    eval_envs=(ENVS[robot], *(env_id(robot, s) for s in SHIFTS)),
                    row=f"{robot}-{level}",
                    column=column,
                    block=MAPLE_BLOCK,
                )


# -- online block (SRPO-like): context SAC with and without SRPO, from scratch -------------
ONLINE_BLOCK = "online, SRPO-like: context SAC on dynamics-randomized envs"
ONLINE_ENVS = {
    # randomized env: (its online steps under `paper`, learner overrides)
    "pendulum-randomized-gravity": (100_000, {"start_steps": 2000}),
    "hopper-randomized-mass": (1_000_000, {"start_steps": 10_000}),
}
ONLINE_VARIANTS = {
    # column: (cell-name suffix, add-ons)
    "context SAC": ("", ()),
    "context SAC+SRPO": ("-srpo", (SRPO,)),
    "context SAC+SRPO shuffled": ("-srpo-shuffled", (SRPO_SHUFFLED,)),
}
ONLINE_QUICK = OnlineBudget(fraction=0.2, eval_every=5000, eval_episodes=5)
"""20% of each env's online steps (pendulum 20k, hopper 200k), evaluated every 5k steps with
5 episodes in each of the three dynamics."""
ONLINE_PAPER = OnlineBudget(eval_every=10_000, eval_episodes=10)


def _online_cells():
    """SRPO's online claim, SRPO-like (its online protocol is not public; model-based.md 4):
    context SAC (`sac-context`: SAC + MAPLE's GRU context encoders) with and without SRPO's
    value-ranked state regularizer, trained online from scratch on envs whose dynamics are
    drawn per episode (pendulum gravity x0.5 / 1 / 2, SRPO's first illustration; hopper body
    mass x0.5 / 1 / 2). Each evaluation scores the policy in every dynamics; the cell's
    score is their mean, and its curve (score vs environment steps) the sample efficiency."""
    for env, (steps, overrides) in ONLINE_ENVS.items():
        for column, (suffix, addons) in ONLINE_VARIANTS.items():
            yield Cell(
                name=f"{env}.sac-context{suffix}",
                learner=Learner(
                    "sac-context", overrides=overrides, addons=tuple(dict(a) for a in addons)
                ),
                target="",
                online=Online(steps=steps, env=f"shiftrl/{env}-v0", from_scratch=True),
                row=env,
                column=column,
                block=ONLINE_BLOCK,
            )


SUITE = Suite(
    name="srpo",
    description=(
        "SRPO's protocol: CQL, TD3+BC and IQL without and with SRPO's state regularizer (and "
        "its shuffled-label control), and MAPLE, MAPLE+DARA and MAPLE+SRPO (SRPO's released "
        "base, hopper and walker2d, two levels), on equal parts of base, mass-2.0 and "
        "friction-0.5 data, scored in all three dynamics (mean) and in the base dynamics alone; "
        "online block (SRPO-like): context SAC without and with SRPO from scratch on "
        "pendulum and hopper with dynamics drawn per episode."
    ),
    cells=(*_cells(), *_online_cells()),
    profiles={
        "paper": replace(
            PAPER_1M,
            online=ONLINE_PAPER,
            note=(
                "1M steps, eval every 5k steps x 10 episodes in each dynamics (SRPO's "
                "maple_st README runs MAPLE for 200 epochs of 1000 steps)"
            ),
        ),
        "quick": replace(QUICK_100K, online=ONLINE_QUICK),
    },
    layout=TableLayout(
        title="SRPO: base + mass-2.0 + friction-0.5 data, one third each",
        rows=(*(f"{r}-{lvl}" for r in ENVS for lvl in LEVELS), *ONLINE_ENVS),
        columns=(
            *(f"{label}{column}" for label in BASES for column in VARIANTS),
            *MAPLE_VARIANTS,
            *ONLINE_VARIANTS,
        ),
        blocks=(MODEL_FREE, MAPLE_BLOCK, ONLINE_BLOCK),
        block_titles={
            ONLINE_BLOCK: "SRPO online (SRPO-like): context SAC from scratch on envs whose "
            "dynamics are drawn per episode, mean over those dynamics"
        },
        arrows={
            "context SAC+SRPO": "context SAC",
            "context SAC+SRPO shuffled": "context SAC+SRPO",
            **{f"{label}+SRPO": label for label in BASES},
            **{f"{label}+SRPO shuffled": f"{label}+SRPO" for label in BASES},
            "MAPLE+DARA": "MAPLE",
            "MAPLE+SRPO": "MAPLE",
        },
        note=(
            "Main tables: mean normalized score over the three dynamics (SRPO's metric); "
            "↑ / ↓: +SRPO's mean above / below its base learner (+SRPO shuffled, the "
            "shuffled-label control: against +SRPO)."
        ),
        per_env_tables={BASE_ONLY: tuple(ENVS.values())},
    ),
    references=(
        "Xue et al., State Regularized Policy Optimization on Data with Dynamics Shift, NeurIPS 2023",
    ),
)
