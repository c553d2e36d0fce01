"""How well a dynamics reward separates true next states from perturbed ones."""

from __future__ import annotations

from typing import Any

import numpy as np

from shiftrl.dynamics.reward.model import DynamicsReward, dynamics_reward


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float(np.mean(pos > neg) + 0.5 * np.mean(pos == neg))


def ranking_auc(
    model: DynamicsReward, data: Any, rows: int = 2000, seed: int = 0, scales=(0.5, 1.0, 2.0)
) -> dict[str, Any]:
    """AUC of r_D on `rows` data transitions against the same transitions with Gaussian
    noise on s', per dimension `scale` x the std of that dimension's s' - s."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data), min(rows, len(data)), replace=False)
    obs, act, nxt = data.observations[idx], data.actions[idx], data.next_observations[idx]
    delta_std = np.std(data.next_observations - data.observations, axis=0) + 1e-8
    r_true = np.asarray(dynamics_reward(model, obs, act, nxt))
    out = []
    for scale in scales:
        noisy = (nxt + scale * delta_std * rng.normal(size=nxt.shape)).astype(np.float32)
        r_pert = np.asarray(dynamics_reward(model, obs, act, noisy))
        out.append(
            {
                "scale": float(scale),
                "auc": auc(r_true, r_pert),
                "r_true": float(r_true.mean()),
                "r_perturbed": float(r_pert.mean()),
            }
        )
    return {"rows": len(idx), "perturbations": out}
