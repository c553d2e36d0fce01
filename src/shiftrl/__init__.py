"""shiftrl: offline reinforcement learning under dynamics shift, on a compiled JAX core."""

from __future__ import annotations

__version__ = "0.1.0"

from shiftrl import envs  # noqa: E402  (registers the shifted variants with Gymnasium)
from shiftrl.api import algos, evaluate, load_dataset, load_policy, train, train_seeds  # noqa: E402
from shiftrl.data.dataset import DatasetMetadata, TransitionDataset  # noqa: E402
from shiftrl.training.finetune import finetune  # noqa: E402

__all__ = [
    "DatasetMetadata",
    "TransitionDataset",
    "__version__",
    "algos",
    "envs",
    "evaluate",
    "finetune",
    "load_dataset",
    "load_policy",
    "train",
    "train_seeds",
]
