"""NeoRL's reward on the `-neorl` variants (`shiftrl.envs.registry.NEORL_VARIANTS`).

NeoRL (Qin et al., 2022) runs Gym's v3 MuJoCo envs with the x-position in the observation
and ships reward functions that recompute each reward from (obs, action, next_obs):

| robot       | NeoRL reward                                  | Gymnasium v5 reward                       |
|-------------|-----------------------------------------------|-------------------------------------------|
| halfcheetah | (x' - x)/0.05 - 0.1 ||a||^2                   | the same (dt = 5 x 0.01)                  |
| hopper      | (x' - x)/0.008 + 1 - 1e-3 ||a||^2             | the same, but + 0 on the terminating step |
| walker2d    | (x' - x)/0.008 + 1 - 1e-3 ||a||^2             | the same, but + 0 on the terminating step |

(x is qpos[0]; dt = frame_skip 4 x timestep 0.002 for hopper and walker2d.) Gymnasium v5
gives the healthy bonus only while healthy (`is_healthy * healthy_reward`, a v5 fix), v3
on every step, so the only difference is -1 on the last step of a terminated episode.
`NeoRLHealthyReward` puts it back; `neorl_reward` is the same function of the arrays, for
checks and for models that recompute rewards.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

HEALTHY_REWARD = 1.0
NEORL_REWARD = {
    # robot: (dt, control cost weight, healthy bonus)
    "halfcheetah": (0.05, 0.1, 0.0),
    "hopper": (0.008, 1e-3, HEALTHY_REWARD),
    "walker2d": (0.008, 1e-3, HEALTHY_REWARD),
}


class NeoRLHealthyReward(gymnasium.Wrapper):
    """Hopper/walker2d reward with the healthy bonus on every step, as NeoRL's (v3's)."""

    def step(self, action: Any):
        obs, _, terminated, truncated, info = self.env.step(action)
        reward = info["reward_forward"] + info["reward_ctrl"] + HEALTHY_REWARD
        return obs, reward, terminated, truncated, info


def neorl_reward(
    robot: str, obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray
) -> np.ndarray:
    """NeoRL's reward function of a batch in the NeoRL observation (x-position at index 0)."""
    dt, ctrl, healthy = NEORL_REWARD[robot]
    obs, action, next_obs = (np.asarray(a, np.float64) for a in (obs, action, next_obs))
    return (next_obs[..., 0] - obs[..., 0]) / dt + healthy - ctrl * np.sum(action**2, axis=-1)
