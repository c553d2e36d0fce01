"""shiftrl: offline reinforcement learning under dynamics shift, on a compiled JAX core."""

from __future__ import annotations

__version__ = "0.1.0"

from shiftrl import envs  # noqa: E402  (registers the shifted variants with Gymnasium)
from shiftrl.api import (  # noqa: E402
    algos,
    evaluate,
    evaluate_dynamics,
    load_dataset,
    load_dynamics,
    load_dynamics_reward,
    load_policy,
    policy_transitions,
    train,
    train_dynamics,
    train_dynamics_reward,
    train_online,
    train_seeds,
)
from shiftrl.data.dataset import DatasetMetadata, TransitionDataset  # noqa: E402
from shiftrl.training.finetune import finetune  # noqa: E402

__all__ = [
    "DatasetMetadata",
    "TransitionDataset",
    "__version__",
    "algos",
    "envs",
    "evaluate",
    "evaluate_dynamics",
    "finetune",
    "load_dataset",
    "load_dynamics",
    "load_dynamics_reward",
    "load_policy",
    "policy_transitions",
    "train",
    "train_dynamics",
    "train_dynamics_reward",
    "train_online",
    "train_seeds",
]
