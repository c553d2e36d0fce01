"""Preprocessing a run applies to its data, and inverts for its policy.

Learners see: standardised observations, actions scaled to [-1, 1], and rewards
after the learner's reward scaling. The same `Preprocessor` is stored with every
checkpoint so a saved policy acts correctly in the raw environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shiftrl.core.errors import DataError
from shiftrl.data.dataset import TransitionDataset

OBS_STD_EPS = 1e-3  # TD3+BC / CORL: std + 1e-3 keeps constant features finite


@dataclass(frozen=True)
class Preprocessor:
    obs_mean: np.ndarray
    obs_std: np.ndarray
    action_low: np.ndarray
    action_high: np.ndarray
    reward_scale: float = 1.0
    reward_bias: float = 0.0

    # -- observations ---------------------------------------------------------------
    def obs(self, obs: np.ndarray) -> np.ndarray:
        return ((obs - self.obs_mean) / self.obs_std).astype(np.float32)

    # -- actions ----------------------------------------------------------------------
    def action_to_unit(self, action: np.ndarray) -> np.ndarray:
        """Environment action -> [-1, 1]."""
        center, half = (
            (self.action_high + self.action_low) / 2,
            (self.action_high - self.action_low) / 2,
        )
        return np.clip((action - center) / half, -1.0, 1.0).astype(np.float32)

    def action_to_env(self, unit_action: np.ndarray) -> np.ndarray:
        """[-1, 1] -> environment action."""
        center, half = (
            (self.action_high + self.action_low) / 2,
            (self.action_high - self.action_low) / 2,
        )
        return (center + half * np.clip(unit_action, -1.0, 1.0)).astype(np.float32)

    # -- rewards ------------------------------------------------------------------------
    def reward(self, reward: np.ndarray) -> np.ndarray:
        return (reward * self.reward_scale + self.reward_bias).astype(np.float32)

    # -- (de)serialisation: plain JSON, no pickle --------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "obs_mean": self.obs_mean.tolist(),
            "obs_std": self.obs_std.tolist(),
            "action_low": self.action_low.tolist(),
            "action_high": self.action_high.tolist(),
            "reward_scale": float(self.reward_scale),
            "reward_bias": float(self.reward_bias),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Preprocessor:
        arr = lambda k: np.asarray(d[k], np.float32)  # noqa: E731
        return cls(
            arr("obs_mean"),
            arr("obs_std"),
            arr("action_low"),
            arr("action_high"),
            float(d["reward_scale"]),
            float(d["reward_bias"]),
        )


def action_bounds(ds: TransitionDataset) -> tuple[np.ndarray, np.ndarray]:
    m = ds.metadata
    if m.action_low is not None and m.action_high is not None:
        return np.asarray(m.action_low, np.float32), np.asarray(m.action_high, np.float32)
    return -np.ones(ds.act_dim, np.float32), np.ones(ds.act_dim, np.float32)


def fit_preprocessor(datasets: list[TransitionDataset], learner_config: Any) -> Preprocessor:
    """Statistics over all training data (target and source alike)."""
    obs = np.concatenate([d.observations for d in datasets])
    if getattr(learner_config, "normalize_states", True):
        # float64: float32 squares overflow for observations beyond ~1e19
        mean, std = obs.mean(0, dtype=np.float64), obs.std(0, dtype=np.float64) + OBS_STD_EPS
        big = np.flatnonzero(~np.isfinite(std.astype(np.float32)) | (std > 1e18))
        if big.size:
            raise DataError(
                f"observations reach {float(np.abs(obs[:, big[0]]).max()):.3g} in dim "
                f"{int(big[0])}, too large to standardise in float32; rescale the data"
            )
    else:
        mean, std = np.zeros(obs.shape[1]), np.ones(obs.shape[1])
    low, high = action_bounds(datasets[0])
    scale = float(getattr(learner_config, "reward_scale", 1.0))
    bias = float(getattr(learner_config, "reward_bias", 0.0))
    if getattr(learner_config, "normalize_reward_by_returns", False):
        returns = np.concatenate([d.episode_returns() for d in datasets])
        spread = float(returns.max() - returns.min())
        if spread > 0:
            scale *= 1000.0 / spread
    return Preprocessor(mean.astype(np.float32), std.astype(np.float32), low, high, scale, bias)


def apply(ds: TransitionDataset, pre: Preprocessor) -> dict[str, np.ndarray]:
    """Arrays as the learner sees them: keys obs, action, reward, next_obs, terminal."""
    return {
        "obs": pre.obs(ds.observations),
        "action": pre.action_to_unit(ds.actions),
        "reward": pre.reward(ds.rewards),
        "next_obs": pre.obs(ds.next_observations),
        "terminal": ds.terminals.astype(np.float32),
    }
