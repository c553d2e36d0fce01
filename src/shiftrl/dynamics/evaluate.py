"""How good is a dynamics ensemble on a dataset: one-step error per member and k-step
rollout error against the dataset's real trajectories.

- One-step: each member's MSE of its mean [s' - s, r] (the metric that chose the elites),
  also split into state and reward parts. On the data the model was trained on (same
  sha256), only the held-out rows count; on other data, a sample of all rows.
- k-step: windows of k consecutive transitions inside one episode (a termination only at
  the window's last step); from the window's first real state, each member rolls forward
  with its own mean prediction under the dataset's actions, and so does the elites'
  average ("elite mean"). Reported: the state MSE at every horizon 1..k, averaged over
  windows and state dimensions.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shiftrl.core.errors import DataError
from shiftrl.data.dataset import TransitionDataset
from shiftrl.dynamics.ensemble import DynamicsModel, forward, model_io


@jax.jit
def one_step_errors(model: DynamicsModel, inputs: jax.Array, targets: jax.Array):
    """Per member: (MSE over all outputs, state part, reward part), each [E]."""
    mean, _ = forward(model.params, (inputs - model.input_mean) / model.input_std)
    err = (mean - targets) ** 2
    return err.mean(axis=(1, 2)), err[..., :-1].mean(axis=(1, 2)), err[..., -1].mean(axis=1)


@jax.jit
def rollout_means(model: DynamicsModel, obs0: jax.Array, actions: jax.Array):
    """Deterministic rollouts from obs0 [W, d] under actions [W, k, a]: every member on its
    own, and the elites' average. Returns states [E, k, W, d] and [k, W, d]."""
    members = model.config.members

    def member_step(state, act):  # state [E, W, d]
        x = jnp.concatenate([state, jnp.broadcast_to(act, (members, *act.shape))], axis=-1)
        mean, _ = forward(model.params, (x - model.input_mean) / model.input_std, False)
        nxt = state + mean[..., :-1]
        return nxt, nxt

    def elite_step(state, act):  # state [W, d]
        x = jnp.concatenate([state, act], axis=-1)
        mean, _ = forward(model.params, (x - model.input_mean) / model.input_std)
        nxt = state + mean[model.elites, :, :-1].mean(axis=0)
        return nxt, nxt

    steps = jnp.swapaxes(actions, 0, 1)
    start = jnp.broadcast_to(obs0, (members, *obs0.shape))
    _, per_member = jax.lax.scan(member_step, start, steps)
    _, elite_mean = jax.lax.scan(elite_step, obs0, steps)
    return jnp.swapaxes(per_member, 0, 1), elite_mean


def rollout_windows(dataset: TransitionDataset, horizon: int) -> np.ndarray:
    """Start indices i such that rows i .. i+horizon-1 lie in one episode."""
    if horizon < 1:
        raise DataError("horizon must be at least 1")
    ids = dataset.episode_ids()
    if len(ids) < horizon:
        return np.zeros(0, np.int64)
    return np.flatnonzero(ids[: len(ids) - horizon + 1] == ids[horizon - 1 :])


def evaluate_model(
    model: DynamicsModel,
    dataset: TransitionDataset,
    record: dict[str, Any] | None = None,
    *,
    horizon: int = 10,
    windows: int = 256,
    max_rows: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """One-step and k-step errors of `model` on `dataset` (see the module docstring)."""
    if (dataset.obs_dim, dataset.act_dim) != (model.obs_dim, model.act_dim):
        raise DataError(
            f"dataset {dataset.metadata.name} has obs dim {dataset.obs_dim} / act dim "
            f"{dataset.act_dim}; the model was trained on {model.obs_dim} / {model.act_dim}"
        )
    rng = np.random.default_rng(seed)
    trained_on = (record or {}).get("dataset", {}).get("checksum")
    if trained_on is not None and trained_on == dataset.checksum():
        rows, split = np.asarray(record["holdout_indices"], np.int64), "held-out"
    else:
        n = len(dataset)
        rows = np.sort(rng.choice(n, min(n, max_rows), replace=False))
        split = "not trained on"
    inputs, targets = model_io(
        dataset.observations[rows],
        dataset.actions[rows],
        dataset.rewards[rows],
        dataset.next_observations[rows],
    )
    total, state, reward = (np.asarray(x) for x in one_step_errors(model, inputs, targets))

    starts = rollout_windows(dataset, horizon)
    if len(starts) == 0:
        raise DataError(
            f"no episode of {dataset.metadata.name} has {horizon} transitions; "
            "choose a shorter --horizon"
        )
    starts = np.sort(rng.choice(starts, min(windows, len(starts)), replace=False))
    steps = starts[:, None] + np.arange(horizon)[None, :]
    per_member, elite_mean = rollout_means(
        model,
        jnp.asarray(dataset.observations[starts], jnp.float32),
        jnp.asarray(dataset.actions[steps], jnp.float32),
    )
    real = np.swapaxes(dataset.next_observations[steps], 0, 1)  # [k, W, d]
    member_k = ((np.asarray(per_member) - real[None]) ** 2).mean(axis=(2, 3))  # [E, k]
    elite_k = ((np.asarray(elite_mean) - real) ** 2).mean(axis=(1, 2))  # [k]
    elites = [int(e) for e in np.asarray(model.elites)]
    return {
        "dataset": dataset.metadata.name,
        "one_step": {
            "split": split,
            "rows": len(rows),
            "mse": total.tolist(),
            "state_mse": state.tolist(),
            "reward_mse": reward.tolist(),
        },
        "rollout": {
            "horizon": horizon,
            "windows": len(starts),
            "member_state_mse": member_k.tolist(),
            "elite_mean_state_mse": elite_k.tolist(),
        },
        "elites": elites,
    }
