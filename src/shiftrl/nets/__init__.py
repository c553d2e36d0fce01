"""Networks shared by learners: MLPs, critic ensembles, policies."""

from shiftrl.nets.mlp import MLP, CriticEnsemble, DeterministicActor, ValueNet
from shiftrl.nets.policies import GaussianActor, TanhGaussianActor

__all__ = [
    "MLP",
    "CriticEnsemble",
    "DeterministicActor",
    "GaussianActor",
    "TanhGaussianActor",
    "ValueNet",
]
