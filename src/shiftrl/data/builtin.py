"""Built-in datasets that need no behaviour-policy zoo: toy tasks with scripted experts.

- `pointreach/mixed-v0`: half noisy-optimal, half uniform-random actions (tests, smoke suite).
- `pendulum/{random,medium,expert}-v0`: the swing-up controller with no / heavy noise.
"""

from __future__ import annotations

import numpy as np

from shiftrl.data.collect import collect
from shiftrl.data.dataset import DatasetMetadata
from shiftrl.data.registry import DatasetSpec, register
from shiftrl.envs.toy import POINT_REACH_ID, TOY_REFERENCE, pendulum_expert, point_reach_optimal


def _meta(name: str, env_id: str, behaviour: str) -> DatasetMetadata:
    low, high = TOY_REFERENCE[env_id]
    return DatasetMetadata(
        name=name,
        env_id=env_id,
        ref_min_score=low,
        ref_max_score=high,
        provenance={"behaviour": behaviour},
    )


def point_reach_mixed(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    good = point_reach_optimal(obs) + rng.normal(0.0, 0.5, (len(obs), 1))
    rand = rng.uniform(-1.0, 1.0, (len(obs), 1))
    return np.where(rng.random((len(obs), 1)) < 0.5, rand, good)


def pendulum_policy(noise_std: float, random_prob: float):
    def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = pendulum_expert(obs) + rng.normal(0.0, noise_std, (len(obs), 1))
        rand = rng.uniform(-2.0, 2.0, (len(obs), 1))
        return np.where(rng.random((len(obs), 1)) < random_prob, rand, a)

    return policy


PENDULUM_LEVELS = {
    "random": (0.0, 1.0, "uniform random torques"),
    "medium": (1.0, 0.3, "swing-up controller + N(0, 1) noise, 30% uniform random actions"),
    "expert": (0.0, 0.0, "swing-up controller, noiseless"),
}

register(
    DatasetSpec(
        "pointreach/mixed-v0",
        lambda size, seed, progress: collect(
            POINT_REACH_ID,
            point_reach_mixed,
            size,
            seed=seed,
            metadata=_meta(
                "pointreach/mixed-v0", POINT_REACH_ID, "50% noisy optimal, 50% uniform random"
            ),
            progress=progress,
        ),
        4000,
        "toy 1-D reaching task, mixed-quality data (tests, smoke suite)",
        env_id=POINT_REACH_ID,
        info={
            "variant": "pointreach",
            "level": "mixed",
            "behaviour": "50% noisy optimal, 50% uniform random",
        },
    )
)
for _level, (_noise, _rand, _desc) in PENDULUM_LEVELS.items():
    _id = f"pendulum/{_level}-v0"
    register(
        DatasetSpec(
            _id,
            lambda size, seed, progress, n=_noise, r=_rand, i=_id, d=_desc: collect(
                "Pendulum-v1",
                pendulum_policy(n, r),
                size,
                seed=seed,
                metadata=_meta(i, "Pendulum-v1", d),
                progress=progress,
            ),
            20_000,
            f"Pendulum-v1, {_desc}",
            env_id="Pendulum-v1",
            info={"variant": "pendulum", "level": _level, "behaviour": _desc},
        )
    )
