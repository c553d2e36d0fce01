"""Collect a transition dataset by running a batched policy in several environments.

Episodes are stored contiguously (one after another, in the order they finish; ties
within a step by env index), with `terminals` for true terminations and `timeouts` for
time-limit truncations, D4RL-style. Deterministic given the seed: env `i` is reset with
seed `seed * 1000 + i` once, and the policy's noise comes from `np.random.default_rng(seed)`.

Speed: the environments are stepped in one Python loop (Gymnasium's sync vector env
semantics with same-step autoreset, without its per-step info merging), the policy is
called once per step for all envs, and every step is written into preallocated
per-env episode buffers with one vectorised write per field; a finished episode is
copied once into the preallocated output. Policy calls, not env steps, are what the
batch amortises, so more envs (16-32) help policies with a fixed per-call cost (jit).
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

_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


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
    """Roll out `policy` until `num_transitions` transitions from completed or cut episodes.

    The last episode is cut at `num_transitions` (its last row becomes a timeout).
    `progress(n)` is called with the number of transitions stored so far whenever an
    episode is stored.
    """
    from shiftrl.training.evaluation import check_env_id

    env_id = check_env_id(env_id)
    if num_transitions <= 0:
        from shiftrl.core.errors import ConfigError

        raise ConfigError(f"num_transitions must be positive, got {num_transitions}")
    envs = [gym.make(env_id, disable_env_checker=True) for _ in range(num_envs)]
    try:
        space = envs[0].action_space
        low, high = space.low, space.high
        obs_dim = int(np.prod(envs[0].observation_space.shape))
        act_dim = int(np.prod(space.shape))
        horizon = envs[0].spec.max_episode_steps if envs[0].spec is not None else None
        rng = np.random.default_rng(seed)
        buf = _Buffers(num_envs, obs_dim, act_dim, horizon or 1000)
        out = {
            "observations": np.empty((num_transitions, obs_dim), np.float32),
            "actions": np.empty((num_transitions, act_dim), np.float32),
            "rewards": np.empty(num_transitions, np.float32),
            "next_observations": np.empty((num_transitions, obs_dim), np.float32),
            "terminals": np.empty(num_transitions, bool),
            "timeouts": np.empty(num_transitions, bool),
        }
        first = [env.reset(seed=seed * 1000 + i)[0] for i, env in enumerate(envs)]
        obs = np.stack([np.asarray(o).reshape(-1) for o in first])
        next_obs = np.empty_like(obs)
        reward = np.empty(num_envs, np.float64)
        term = np.empty(num_envs, bool)
        trunc = np.empty(num_envs, bool)
        rows = np.arange(num_envs)
        total = 0
        while total < num_transitions:
            action = np.clip(policy(obs, rng), low, high).astype(np.float32)
            finished = []
            for i, env in enumerate(envs):
                o, r, te, tr, _ = env.step(action[i])
                next_obs[i], reward[i], term[i], trunc[i] = np.asarray(o).reshape(-1), r, te, tr
                if te or tr:
                    finished.append(i)
            # next_obs holds the true last observations of finished episodes; store, then reset
            buf.write(rows, obs, action, reward, next_obs, term, trunc)
            for i in finished:
                if total < num_transitions:
                    total = buf.flush(i, out, total)
                    if progress is not None:
                        progress(total)
                else:
                    buf.drop(i)
                next_obs[i] = np.asarray(envs[i].reset()[0]).reshape(-1)
            obs, next_obs = next_obs, obs
    finally:
        for env in envs:
            env.close()
    out["timeouts"][-1] = out["timeouts"][-1] or not out["terminals"][-1]
    meta = metadata or DatasetMetadata(name=env_id)
    if meta.env_id is None:
        meta.env_id = env_id
    if meta.action_low is None:
        meta.action_low, meta.action_high = low.tolist(), high.tolist()
    return validate(TransitionDataset(**out, metadata=meta), source=meta.name)


class _Buffers:
    """Per-env episode buffers [num_envs, capacity, ...]; capacity doubles when needed."""

    def __init__(self, n: int, obs_dim: int, act_dim: int, capacity: int):
        self.t = np.zeros(n, np.int64)
        self.arrays = {
            "observations": np.empty((n, capacity, obs_dim), np.float32),
            "actions": np.empty((n, capacity, act_dim), np.float32),
            "rewards": np.empty((n, capacity), np.float32),
            "next_observations": np.empty((n, capacity, obs_dim), np.float32),
            "terminals": np.empty((n, capacity), bool),
            "timeouts": np.empty((n, capacity), bool),
        }

    def write(self, rows, obs, action, reward, next_obs, term, trunc) -> None:
        cap = self.arrays["rewards"].shape[1]
        if self.t.max() >= cap:  # an episode longer than the time limit (or none set)
            self.arrays = {
                k: np.concatenate([a, np.empty_like(a)], axis=1) for k, a in self.arrays.items()
            }
        t, a = self.t, self.arrays
        a["observations"][rows, t] = obs
        a["actions"][rows, t] = action
        a["rewards"][rows, t] = reward
        a["next_observations"][rows, t] = next_obs
        a["terminals"][rows, t] = term
        a["timeouts"][rows, t] = trunc & ~term
        self.t += 1

    def flush(self, i: int, out: dict[str, np.ndarray], total: int) -> int:
        """Copy env i's finished episode into `out` at `total` (cut to fit); returns new total."""
        n = min(int(self.t[i]), len(out["rewards"]) - total)
        for k in _FIELDS:
            out[k][total : total + n] = self.arrays[k][i, :n]
        self.t[i] = 0
        return total + n

    def drop(self, i: int) -> None:
        self.t[i] = 0
