"""Learned dynamics for model-based offline RL: a reusable component, not part of a learner.

    from shiftrl.dynamics import EnsembleConfig, fit_dynamics, load_model, termination_fn
    model, record = fit_dynamics(dataset, EnsembleConfig())   # cached by data + settings
    next_obs, reward, uncertainty = sample_step(model, obs, action, rng)
    done = termination_fn("hopper")(obs, action, next_obs)

- `ensemble`     the Gaussian ensemble (vmapped members), its training and sampling;
- `termination`  when a transition ends its episode, per robot, as the real environments;
- `store`        save / load (msgpack) and the cache keyed by data checksum + settings;
- `evaluate`     one-step and k-step errors against a dataset's trajectories.
Learners and add-ons (MOPO's rollouts) import from here; this package imports only
`core`, `data` and `envs`.
"""

from shiftrl.dynamics.ensemble import (
    DynamicsModel,
    EnsembleConfig,
    predict,
    sample_step,
    train_ensemble,
    uncertainty,
)
from shiftrl.dynamics.evaluate import evaluate_model
from shiftrl.dynamics.store import fit_dynamics, load_model, save_model
from shiftrl.dynamics.termination import TERMINATION_FNS, termination_fn

__all__ = [
    "TERMINATION_FNS",
    "DynamicsModel",
    "EnsembleConfig",
    "evaluate_model",
    "fit_dynamics",
    "load_model",
    "predict",
    "sample_step",
    "save_model",
    "termination_fn",
    "train_ensemble",
    "uncertainty",
]
