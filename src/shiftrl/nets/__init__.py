"""Networks shared by learners: MLPs, critic ensembles, policies, the conditional VAE."""

from shiftrl.nets.mlp import MLP, CriticEnsemble, DeterministicActor, PerturbationActor, ValueNet
from shiftrl.nets.policies import (
    GaussianActor,
    SquashedGaussianActor,
    TanhGaussianActor,
    tanh_normal_log_prob,
)
from shiftrl.nets.vae import VAE

__all__ = [
    "MLP",
    "CriticEnsemble",
    "DeterministicActor",
    "GaussianActor",
    "PerturbationActor",
    "SquashedGaussianActor",
    "TanhGaussianActor",
    "VAE",
    "ValueNet",
    "tanh_normal_log_prob",
]
