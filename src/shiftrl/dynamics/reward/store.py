"""Saving, loading and reusing learned dynamics rewards (as `dynamics/store.py` does for
ensembles): a folder holds `reward.msgpack` (flax msgpack: arrays, numbers, strings; nothing
executes on load) and `dynamics_reward.json`, its readable record. `fit_dynamics_reward`
caches under `$SHIFTRL_DATA/dynamics-reward/<key>`, keyed by the data's checksum, every
setting and the seed, so MOREC-MOPO and MOREC-MOBILE runs on the same data share one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from shiftrl.core.errors import ConfigError, DataError
from shiftrl.data.dataset import TransitionDataset
from shiftrl.dynamics.reward.model import (
    DynamicsReward,
    RewardConfig,
    Scaling,
    init_discriminator,
)
from shiftrl.dynamics.reward.train import train_dynamics_reward
from shiftrl.dynamics.store import (
    model_file,
    publish,
    read_payload,
    restore_params,
    settings_key,
    write_files,
)

FORMAT = "shiftrl-dynamics-reward"
FORMAT_VERSION = 1
MODEL_FILE = "reward.msgpack"
RECORD_FILE = "dynamics_reward.json"


def cache_key(checksum: str, config: RewardConfig, seed: int) -> str:
    """What identifies a learned dynamics reward: the data, every setting and the seed."""
    return settings_key(checksum, config.to_json(), seed, FORMAT_VERSION)


def cache_root() -> Path:
    from shiftrl.data.registry import data_root

    return data_root() / "dynamics-reward"


def save_reward(model: DynamicsReward, directory: str | Path, record: dict[str, Any]) -> Path:
    sc = model.scaling
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(model.config.to_json()),
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "snapshots": serialization.to_state_dict(jax.device_get(model.snapshots)),
        "expert": np.asarray(model.expert),
        "learner": np.asarray(model.learner),
        "scaling": {
            k: np.asarray(getattr(sc, k)) for k in ("obs_low", "obs_high", "act_low", "act_high")
        },
        "record": json.dumps(record),
    }
    return write_files(directory, MODEL_FILE, RECORD_FILE, payload, record)


def load_reward(path: str | Path) -> tuple[DynamicsReward, dict[str, Any]]:
    """A saved dynamics reward (its folder or its `reward.msgpack`) and its record."""
    file = model_file(path, MODEL_FILE, "learned dynamics reward")
    try:
        payload = read_payload(file, FORMAT, FORMAT_VERSION, "dynamics reward")
        config = RewardConfig.from_json(json.loads(payload["config"]))
        obs_dim, act_dim = int(payload["obs_dim"]), int(payload["act_dim"])
        k = len(np.atleast_1d(payload["expert"]))
        one = jax.eval_shape(
            lambda: init_discriminator(jax.random.PRNGKey(0), config, obs_dim, act_dim)
        )
        template = jax.tree.map(lambda x: jax.ShapeDtypeStruct((k, *x.shape), x.dtype), one)
        snapshots = restore_params(template, payload["snapshots"])
        scaling = Scaling(
            **{k: jnp.asarray(v, jnp.float32) for k, v in payload["scaling"].items()},
            obs_scale=config.obs_scale,
        )
        model = DynamicsReward(
            snapshots=jax.tree.map(jnp.asarray, snapshots),
            expert=jnp.asarray(np.atleast_1d(payload["expert"]), jnp.float32),
            learner=jnp.asarray(np.atleast_1d(payload["learner"]), jnp.float32),
            scaling=scaling,
            config=config,
            obs_dim=obs_dim,
            act_dim=act_dim,
        )
        return model, json.loads(payload["record"])
    except (ValueError, KeyError, TypeError, ConfigError) as e:
        raise DataError(f"{file}: not a readable shiftrl dynamics reward ({e})") from None


def fit_dynamics_reward(
    dataset: TransitionDataset,
    config: RewardConfig = RewardConfig(),
    *,
    seed: int = 0,
    cache: bool = True,
    progress: bool | str = True,
) -> tuple[DynamicsReward, dict[str, Any]]:
    """A dynamics reward for `dataset`: from the cache when the same data, settings and seed
    were learned before (record["reused"] is True), else learned now and cached."""
    if config.z_dim:
        raise ConfigError(
            "dynamics-reward: datasets carry no hidden factor z; train with z_dim=0, or call "
            "train_dynamics_reward with z for your own data"
        )
    checksum = dataset.checksum()
    key = cache_key(checksum, config, seed)
    folder = cache_root() / key
    if cache and (folder / MODEL_FILE).exists():
        model, record = load_reward(folder)
        return model, {**record, "reused": True, "cache_dir": str(folder)}

    from shiftrl.dynamics.reward.progress import RewardProgress

    with RewardProgress(config, enabled=progress) as bar:
        model, report = train_dynamics_reward(
            dataset.observations,
            dataset.actions,
            dataset.next_observations,
            config,
            seed=seed,
            on_chunk=bar.report,
        )
    meta = dataset.metadata
    record = {
        "key": key,
        "config": config.to_json(),
        "seed": seed,
        "dataset": {
            "name": meta.name,
            "env_id": meta.env_id,
            "checksum": checksum,
            "transitions": len(dataset),
        },
        "iterations": report.iterations,
        "snapshots": report.snapshots,
        "calibrated": report.calibrated,
        "seconds": round(report.seconds, 3),
        "iterations_per_second": round(report.iterations_per_second, 1),
        "device": jax.devices()[0].platform,
        "history": report.history,
    }
    if cache:
        publish(folder, MODEL_FILE, lambda tmp: save_reward(model, tmp, record))
    return model, {**record, "reused": False, "cache_dir": str(folder) if cache else None}
