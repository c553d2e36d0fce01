"""Deterministic evaluation in vectorized Gymnasium environments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from shiftrl.core.errors import ConfigError
from shiftrl.data.preprocess import Preprocessor
from shiftrl.envs.reference import normalized_score, reference_scores

PolicyFn = Callable[[np.ndarray], np.ndarray]  # normalized obs [n, d] -> unit actions [n, a]


class RecurrentPolicy:
    """A recurrent policy as a `PolicyFn` with a carry (context encoders): `reset(n)` starts n
    episodes (`run_episodes` calls it at every episode start), each call acts on one step of
    all n and carries the encoders' states and the action to the next. `step` is a jitted
    `learner.act_step`, `(learner_state, carry, obs, prev_action, reset) -> (carry, action)`,
    `initial` is `learner.initial_carry`."""

    def __init__(self, step: Callable, initial: Callable, learner_state: Any, act_dim: int):
        self.step, self.initial, self.state, self.act_dim = step, initial, learner_state, act_dim
        self.carry: Any = None
        self.prev_action = np.zeros((0, act_dim), np.float32)
        self.first = np.zeros(0, bool)

    def reset(self, n: int) -> None:
        """n new episodes: zero states, a_{-1} = 0, and the first step flagged as a reset."""
        self.carry = self.initial(n)
        self.prev_action = np.zeros((n, self.act_dim), np.float32)
        self.first = np.ones(n, bool)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if len(self.first) != len(obs):
            self.reset(len(obs))
        self.carry, action = self.step(self.state, self.carry, obs, self.prev_action, self.first)
        self.prev_action, self.first = np.asarray(action), np.zeros(len(obs), bool)
        return self.prev_action


@dataclass
class EvalResult:
    env_id: str
    returns: np.ndarray
    reference: tuple[float, float] | None

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def normalized(self) -> float:
        """Normalized score x100 of the mean return (NaN without reference scores)."""
        return normalized_score(self.mean_return, self.reference)

    def to_json(self) -> dict:
        return {
            "env": self.env_id,
            "return": self.mean_return,
            "return_std": float(self.returns.std()),
            # None, not NaN, without reference scores: strict JSON readers reject NaN
            "normalized_score": None if np.isnan(self.normalized) else self.normalized,
            "returns": [float(r) for r in self.returns],
        }


def eval_seed(run_seed: int) -> int:
    """The first environment seed of a run's evaluations (episode i uses eval_seed + i).

    One rule for offline evaluations, online evaluations and a fine-tune's "before" score,
    so a run's scores at every stage start from the same states and differences between
    them are the policy's, not the start states'."""
    return 10_000 + 1_000 * int(run_seed)


def ensure_envs_registered() -> None:
    """Register the project's environments (toy tasks, shifted MuJoCo variants)."""
    from shiftrl.envs.toy import register_toy_envs

    register_toy_envs()
    try:
        from shiftrl.envs.registry import register_all
    except ImportError:  # shifted variants not available in this build
        return
    register_all()


def check_env_id(env_id: str) -> str:
    """Resolve a user-given env name to a registered Gymnasium id, or raise one clear line."""
    ensure_envs_registered()
    if env_id in gym.registry:
        return env_id
    try:
        from shiftrl.envs.registry import resolve_env_id
    except ImportError:
        resolve_env_id = None
    if resolve_env_id is not None:
        resolved = resolve_env_id(env_id)
        if resolved is not None:
            return resolved
    import difflib

    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.75)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `shiftrl envs` lists variants"
    raise ConfigError(
        f"unknown evaluation environment '{env_id}' (not a registered Gymnasium id){hint}"
    )


def check_env_shape(env_id: str, obs_dim: int, act_dim: int) -> str:
    """`env_id` resolved, or one clear line when its observation / action sizes are not the
    policy's (which would otherwise fail deep inside the network)."""
    env_id = check_env_id(env_id)
    env = gym.make(env_id)
    try:
        shape = (int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape)))
    finally:
        env.close()
    if shape != (obs_dim, act_dim):
        raise ConfigError(
            f"evaluation env {env_id} has obs dim {shape[0]} / action dim {shape[1]} but the "
            f"policy was trained on {obs_dim} / {act_dim}"
        )
    return env_id


def run_episodes(
    policy: PolicyFn, pre: Preprocessor, env_id: str, episodes: int, seed: int
) -> np.ndarray:
    """One episode in each of `episodes` parallel environments; returns their returns."""
    env_id = check_env_id(env_id)
    envs = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="sync")
    try:
        obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
        if isinstance(policy, RecurrentPolicy):  # a recurrent policy starts each episode afresh
            policy.reset(episodes)
        returns = np.zeros(episodes)
        done = np.zeros(episodes, bool)
        while not done.all():
            action = pre.action_to_env(np.asarray(policy(pre.obs(obs))))
            obs, reward, term, trunc, _ = envs.step(action)
            returns += np.where(done, 0.0, reward)  # finished envs auto-reset: ignore them
            done |= term | trunc
        return returns
    finally:
        envs.close()


def evaluate(
    policy: PolicyFn,
    pre: Preprocessor,
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    reference: tuple[float, float] | None = None,
) -> EvalResult:
    returns = run_episodes(policy, pre, env_id, episodes, seed)
    return EvalResult(env_id, returns, reference or reference_scores(env_id))
