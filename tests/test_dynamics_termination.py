"""Termination functions reproduce the real environments' `terminated` flag on real
transitions (random actions, so the robots fall often), for every robot and for shifted
variants, which share their robot's function."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import shiftrl  # noqa: F401  (registers the variants)
from shiftrl.core.errors import ConfigError
from shiftrl.dynamics.termination import termination_fn
from shiftrl.envs import ROBOTS, VARIANTS
from shiftrl.envs.toy import POINT_REACH_ID

# (env id, steps, least number of terminations the random policy must produce)
ENVS = [
    ("Hopper-v5", 300, 5),
    ("Walker2d-v5", 300, 3),
    ("HalfCheetah-v5", 100, 0),
    ("Ant-v5", 100, 0),
    ("Pendulum-v1", 100, 0),
    (POINT_REACH_ID, 100, 0),
    ("shiftrl/hopper-gravity-0.5-v0", 300, 3),
    ("shiftrl/hopper-morph-foot-hard-v0", 200, 3),
    ("shiftrl/walker2d-mass-2.0-v0", 300, 3),
]


def real_transitions(env_id: str, steps: int, seed: int = 0):
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        action = env.action_space.sample()
        next_obs, _, terminated, truncated, _ = env.step(action)
        rows.append((obs, action, next_obs, terminated))
        obs = env.reset()[0] if terminated or truncated else next_obs
    env.close()
    return [np.stack(x) for x in zip(*rows, strict=True)]


@pytest.mark.parametrize(("env_id", "steps", "least"), ENVS, ids=[e[0] for e in ENVS])
def test_termination_matches_the_environment(env_id, steps, least):
    obs, action, next_obs, terminated = real_transitions(env_id, steps)
    predicted = np.asarray(termination_fn(env_id)(obs, action, next_obs))
    assert predicted.shape == terminated.shape
    np.testing.assert_array_equal(predicted, terminated)
    assert terminated.sum() >= least  # the check saw both outcomes where the robot can fall


def test_every_robot_and_variant_has_a_termination_function():
    for robot in ROBOTS.values():
        assert termination_fn(robot.base_env_id) is termination_fn(robot.name)
    for variant in VARIANTS.values():
        assert termination_fn(variant.gym_id) is termination_fn(variant.robot)
        assert termination_fn(variant.name) is termination_fn(variant.robot)


def test_unknown_environment_is_a_user_error():
    with pytest.raises(ConfigError, match="no termination function for 'Humanoid-v5'"):
        termination_fn("Humanoid-v5")


def test_diverged_model_states_terminate():
    bad = np.array([[np.nan] + [0.0] * 10, [1.25, 0.0] + [150.0] * 9], np.float32)
    assert np.asarray(termination_fn("hopper")(bad, None, bad)).all()
    assert np.asarray(termination_fn("walker2d")(bad[:1, :], None, bad[:1, :])).all()
