"""`smoke`: two learners on the toy reaching task, tiny networks, two seeds.

It exists for tests and for checking an installation: the whole sweep (4 jobs) runs in
well under a minute on 2 CPU cores, on either backend.
"""

from shiftrl.bench.suites.spec import Budget, Cell, Learner, Suite, TableLayout

DATASET = "pointreach/mixed-v0"
ENV = "shiftrl/PointReach-v0"
TINY = (32, 32)
FAST = {"batch_size": 64, "log_every": 100}

SUITE = Suite(
    name="smoke",
    description="BC and TD3+BC on the toy PointReach data with tiny networks (tests, installs).",
    cells=tuple(
        Cell(
            name=f"pointreach-mixed.{algo}",
            learner=Learner(algo),
            target=DATASET,
            eval_envs=(ENV,),
            row="pointreach-mixed",
            column=algo,
        )
        for algo in ("bc", "td3bc")
    ),
    profiles={
        "quick": Budget(
            steps=200,
            eval_every=100,
            eval_episodes=5,
            seeds=(0, 1),
            hidden=TINY,
            settings=FAST,
            note="a few seconds per job on one CPU core",
        ),
        "paper": Budget(
            steps=2000,
            eval_every=500,
            eval_episodes=20,
            seeds=(0, 1),
            hidden=TINY,
            settings=FAST,
            note="the toy task has no paper; a longer run of the same jobs",
        ),
    },
    layout=TableLayout(title="Smoke test: toy reaching task", columns=("bc", "td3bc")),
)
