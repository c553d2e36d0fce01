"""MOREC's dynamics reward r_D(s, a, s'): learned from offline data by adversarial IRL,
used as a transition filter on model rollouts (`shiftrl.addons.morec`).

    from shiftrl.dynamics.reward import RewardConfig, fit_dynamics_reward, dynamics_reward
    reward, record = fit_dynamics_reward(dataset, RewardConfig())   # cached by data + settings
    r = dynamics_reward(reward, obs, action, next_obs)              # [B], in [0.31, 1.31]

- `model`   networks, scaling, the calibrated snapshot merge, the selection rules;
- `train`   the adversarial training (a reconstruction; the released code has none);
- `store`   save / load (msgpack + json) and the cache.
"""

from shiftrl.dynamics.reward.model import (
    SELECTION_RULES,
    DynamicsReward,
    RewardConfig,
    dynamics_reward,
    merge_logits,
    select_candidates,
    snapshot_logits,
)
from shiftrl.dynamics.reward.store import fit_dynamics_reward, load_reward, save_reward
from shiftrl.dynamics.reward.train import train_dynamics_reward

__all__ = [
    "SELECTION_RULES",
    "DynamicsReward",
    "RewardConfig",
    "dynamics_reward",
    "fit_dynamics_reward",
    "load_reward",
    "merge_logits",
    "save_reward",
    "select_candidates",
    "snapshot_logits",
    "train_dynamics_reward",
]
