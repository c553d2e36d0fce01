"""Tiny built-in tasks for tests and the demo, with known optimal behaviour.

- `shiftrl/PointReach-v0`: a point on a line, x' = clip(x + 0.3 a, -2, 2), reward -|x'|,
  10-step episodes ending by time limit (a timeout, never a terminal). The optimal
  policy moves straight to 0; bootstrapping across steps matters.
- `shiftrl/PointReach-flipped-v0`: the same point with the actuator reversed, x' = clip(x -
  0.3 a, -2, 2): a second dynamics for context-based learners (MAPLE), where the best
  action depends on which of the two a policy acts in, which only the history shows.
- `shiftrl/PointReach-thrusters-v0`: the same point with four more actuators u_1..u_4,
  faulty thrusters that push it away from 0 whichever way they fire:
  x' = clip(x + 0.3 a + 0.3 sign(x) sum_i |u_i|, -2, 2). The best policy leaves them off;
  data from a behaviour that never fires them say nothing about them, so a learner that
  trusts its critic off the data (SAC offline) fires them, and one that penalises model
  uncertainty (MOPO, MOBILE) does not (tests/test_mopo.py).
- Pendulum swing-up controller: an energy-pumping + PD expert for `Pendulum-v1`,
  used to make the demo's dataset without training anything.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

POINT_REACH_ID = "shiftrl/PointReach-v0"
POINT_REACH_FLIPPED_ID = "shiftrl/PointReach-flipped-v0"
POINT_REACH_THRUSTERS_ID = "shiftrl/PointReach-thrusters-v0"
POINT_REACH_HORIZON = 10


class PointReachEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, step_size: float = 0.3, direction: float = 1.0, thrusters: int = 0):
        self.step_size = step_size
        self.direction = direction
        """+1, or -1 for the flipped actuator."""
        self.thrusters = thrusters
        """Faulty actuators after the first: each pushes x away from 0 by step_size |u_i|."""
        self.observation_space = spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1 + thrusters,), np.float32)
        self.x = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = float(self.np_random.uniform(-2.0, 2.0))
        return np.array([self.x], np.float32), {}

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64).reshape(-1), -1.0, 1.0)
        away = np.abs(action[1:]).sum() * (1.0 if self.x >= 0 else -1.0)
        move = self.direction * action[0] + away
        self.x = float(np.clip(self.x + self.step_size * move, -2.0, 2.0))
        return np.array([self.x], np.float32), -abs(self.x), False, False, {}


def point_reach_optimal(obs: np.ndarray) -> np.ndarray:
    """Move towards 0 as fast as allowed, without overshooting."""
    return np.clip(-obs / 0.3, -1.0, 1.0).astype(np.float32)


def pendulum_expert(obs: np.ndarray) -> np.ndarray:
    """Energy-pumping swing-up, then PD balance near the top. obs = [cos th, sin th, th_dot].

    Pendulum-v1 is a rod (inertia m l^2 / 3): E = th_dot^2 / 6 + 5 cos th, upright at rest
    E = 5; torque u changes E at rate u * th_dot, so pump with sign(th_dot) while E < 5.
    Mean return -139 over 30 seeded episodes (random actions: -1206).
    """
    obs = np.atleast_2d(obs)
    cos, sin, vel = obs[:, 0], obs[:, 1], obs[:, 2]
    theta = np.arctan2(sin, cos)  # 0 = upright
    energy = vel**2 / 6.0 + 5.0 * cos
    pump = np.clip(2.0 * (5.0 - energy) * np.sign(vel + 1e-6), -2.0, 2.0)
    balance = np.clip(-10.0 * theta - 2.0 * vel, -2.0, 2.0)
    return np.where(cos > 0.8, balance, pump)[:, None].astype(np.float32)


# (random return, expert return), measured: PointReach over 1000 seeded starts (uniform
# random actions / `point_reach_optimal`); Pendulum over 50 / 30 seeded episodes
# (uniform random / `pendulum_expert`).
TOY_REFERENCE: dict[str, tuple[float, float]] = {
    POINT_REACH_ID: (-10.09, -1.72),
    POINT_REACH_FLIPPED_ID: (-10.09, -1.72),  # the mirror image: the same returns
    # thrusters off (random a / point_reach_optimal): PointReach's returns
    POINT_REACH_THRUSTERS_ID: (-10.09, -1.72),
    "Pendulum-v1": (-1205.6, -139.3),
}


def register_toy_envs() -> None:
    if POINT_REACH_ID not in gym.registry:
        gym.register(
            POINT_REACH_ID,
            entry_point="shiftrl.envs.toy:PointReachEnv",
            max_episode_steps=POINT_REACH_HORIZON,
        )
    if POINT_REACH_FLIPPED_ID not in gym.registry:
        gym.register(
            POINT_REACH_FLIPPED_ID,
            entry_point="shiftrl.envs.toy:PointReachEnv",
            kwargs={"direction": -1.0},
            max_episode_steps=POINT_REACH_HORIZON,
        )
    if POINT_REACH_THRUSTERS_ID not in gym.registry:
        gym.register(
            POINT_REACH_THRUSTERS_ID,
            entry_point="shiftrl.envs.toy:PointReachEnv",
            kwargs={"thrusters": 4},
            max_episode_steps=POINT_REACH_HORIZON,
        )
