"""Train a behaviour policy for one environment variant with online SAC (resumable).

    shiftrl zoo train hopper-base --steps 1000000 --out zoo-runs/hopper-base [--resume]

The run keeps actor snapshots every `snapshot_every` transitions; `zoo export` then picks
expert / medium / replay snapshots and copies them into the package.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from shiftrl.envs import resolve
from shiftrl.learners import SAC, LearnerSpec
from shiftrl.training.online import OnlineConfig, identity_preprocessor, train_online

# Small actors/critics: data quality depends on the return reached, not on width, and
# 2x128 is about 4x cheaper per update than 2x256 (shared/reference/machine.md).
ZOO_SAC = SAC.PRESETS["zoo"]


def zoo_config(env_id: str, steps: int, seed: int = 0, **overrides) -> OnlineConfig:
    config = OnlineConfig(
        env_id=env_id,
        total_steps=steps,
        num_envs=4,
        start_steps=10_000,
        steps_per_iter=1000,
        utd=1.0,
        batch_size=256,
        buffer_size=1_000_000,
        eval_every=10_000,
        eval_episodes=5,
        checkpoint_every=50_000,
        snapshot_every=10_000,
        seed=seed,
    )
    return dataclasses.replace(config, **overrides)


def train_behaviour(
    variant: str,
    steps: int,
    out: str | Path,
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    **schedule,
):
    """`schedule` overrides the online schedule (e.g. snapshot_every for short tasks)."""
    env_id = resolve(variant)
    pre = identity_preprocessor(env_id)
    learner = SAC(ZOO_SAC, LearnerSpec(len(pre.obs_mean), len(pre.action_low), steps))
    config = zoo_config(env_id, steps, seed, **schedule)
    meta = {"variant": variant, "sac": dataclasses.asdict(ZOO_SAC)}
    return train_online(
        learner, config, out, pre=pre, resume=resume, progress=progress, extra_meta=meta
    )
