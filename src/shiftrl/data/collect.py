"""Collect a transition dataset by running a batched policy in vectorized environments.

Episodes are stored contiguously (one after another), with `terminals` for true
terminations and `timeouts` for time-limit truncations, D4RL-style. Deterministic
given the seed: env seeds and the noise generator derive from it.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from shiftrl.data.dataset import DatasetMetadata, TransitionDataset
from shiftrl.data.validate import validate

BatchPolicy = Callable[
    [np.ndarray, np.random.Generator], np.ndarray
]  # obs [n, d] -> actions [n, a]


def collect(
    env_id: str,
    policy: BatchPolicy,
    num_transitions: int,
    *,
    num_envs: int = 8,
    seed: int = 0,
    metadata: DatasetMetadata | None = None,
    progress: Callable[[int], None] | None = None,
) -> TransitionDataset:
    """Roll out `policy` until `num_transitions` transitions from completed or cut episodes."""
    from shiftrl.training.evaluation import check_env_id

    env_id = check_env_id(env_id)
    # same-step autoreset: a finished env returns its reset obs now and its last obs in info
    envs = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    rng = np.random.default_rng(seed)
    low, high = envs.single_action_space.low, envs.single_action_space.high
    per_env: list[dict[str, list]] = [_empty() for _ in range(num_envs)]
    episodes: list[dict[str, np.ndarray]] = []
    total = 0
    try:
        obs, _ = envs.reset(seed=[seed * 1000 + i for i in range(num_envs)])
        while total < num_transitions:
            action = np.clip(policy(obs, rng), low, high).astype(np.float32)
            next_obs, reward, term, trunc, info = envs.step(action)
            for i in range(num_envs):
                buf = per_env[i]
                done = term[i] or trunc[i]
                real_next = info["final_obs"][i] if done else next_obs[i]
                buf["observations"].append(obs[i])
                buf["actions"].append(action[i])
                buf["rewards"].append(reward[i])
                buf["next_observations"].append(real_next)
                buf["terminals"].append(bool(term[i]))
                buf["timeouts"].append(bool(trunc[i]) and not bool(term[i]))
                if done:
                    episodes.append(_stack(buf))
                    total += len(buf["rewards"])
                    per_env[i] = _empty()
                    if progress is not None:
                        progress(total)
            obs = next_obs
    finally:
        envs.close()
    arrays = {k: np.concatenate([e[k] for e in episodes])[:num_transitions] for k in episodes[0]}
    arrays["timeouts"][-1] = arrays["timeouts"][-1] or not arrays["terminals"][-1]
    meta = metadata or DatasetMetadata(name=env_id)
    if meta.env_id is None:
        meta.env_id = env_id
    if meta.action_low is None:
        meta.action_low, meta.action_high = low.tolist(), high.tolist()
    return validate(TransitionDataset(**arrays, metadata=meta), source=meta.name)


def _empty() -> dict[str, list]:
    return {
        k: []
        for k in (
            "observations",
            "actions",
            "rewards",
            "next_observations",
            "terminals",
            "timeouts",
        )
    }


def _stack(buf: dict[str, list]) -> dict[str, np.ndarray]:
    return {
        "observations": np.asarray(buf["observations"], np.float32),
        "actions": np.asarray(buf["actions"], np.float32),
        "rewards": np.asarray(buf["rewards"], np.float32),
        "next_observations": np.asarray(buf["next_observations"], np.float32),
        "terminals": np.asarray(buf["terminals"], bool),
        "timeouts": np.asarray(buf["timeouts"], bool),
    }
