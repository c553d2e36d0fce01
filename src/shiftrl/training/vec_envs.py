"""What the two online loops (`online.py`, `online_context.py`) share about acting in the
environments: vectorized environments with same-step autoreset, the true last observation
of an ended episode, episode returns, and the divergence guard's error."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from shiftrl.core.errors import DivergenceError
from shiftrl.training import checkpoint


class VecEnvs:
    """`num_envs` copies of `env_id`, reset with seeds that depend on the run's seed and the
    step it (re)starts from, so a resumed run does not replay the episodes it already saw."""

    def __init__(
        self, env_id: str, num_envs: int, seed: int, start: int, finished: list | None = None
    ):
        self.envs = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
        )
        self.obs, _ = self.envs.reset(seed=[seed * 1000 + start + i for i in range(num_envs)])
        self.episode_return = np.zeros(num_envs)
        self.finished: list[float] = [] if finished is None else finished
        """Returns of the episodes ended, appended to (a caller's list, which it clears
        when it logs them)."""

    def step(self, env_actions: np.ndarray):
        """One step of every copy: (obs, reward, terminal, done, next_obs). `obs` is the
        observation acted on; `next_obs` is the true one after the action, also where the
        episode ended (same-step autoreset puts the next episode's first one in self.obs)."""
        obs = self.obs
        next_obs, reward, term, trunc, info = self.envs.step(env_actions)
        done = term | trunc
        real_next = next_obs.copy()
        for i in np.flatnonzero(done):
            real_next[i] = info["final_obs"][i]
        self.episode_return += reward
        self.finished += self.episode_return[done].tolist()
        self.episode_return[done] = 0.0
        self.obs = next_obs
        return obs, reward, term, done, real_next

    def close(self) -> None:
        self.envs.close()


def divergence_error(run_dir: Path, steps: int) -> DivergenceError:
    """The online divergence guard's error: non-finite parameters after an update burst stop
    the run before they reach a checkpoint."""
    last = checkpoint.latest(run_dir)
    kept = f"the last finite checkpoint ({last.name}) is kept" if last else "no checkpoint yet"
    return DivergenceError(
        f"online training diverged by environment step {steps}: non-finite parameters "
        f"after the updates; {kept}. Lower the learning rates"
    )
