"""Saving, loading and reusing trained dynamics ensembles.

A model folder holds `ensemble.msgpack` (flax.serialization msgpack: arrays, numbers and
strings only, nothing executes on load) and a readable copy of its record,
`dynamics.json` (settings, the data's sha256, the held-out split, per-epoch history,
throughput). `fit_dynamics` keeps a cache under `$SHIFTRL_DATA/dynamics/<key>`, keyed by
the dataset's checksum, the model settings and the seed, so MOPO, MOBILE, MOREC and MAPLE
runs on the same data reuse one trained ensemble instead of training it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from shiftrl.core.errors import ConfigError, DataError
from shiftrl.core.progress import ProgressArg
from shiftrl.data.dataset import TransitionDataset
from shiftrl.dynamics.ensemble import (
    DynamicsModel,
    EnsembleConfig,
    TrainReport,
    init_params,
    train_ensemble,
)

FORMAT = "shiftrl-dynamics"
FORMAT_VERSION = 1
MODEL_FILE = "ensemble.msgpack"
RECORD_FILE = "dynamics.json"


def settings_key(checksum: str, settings: dict[str, Any], seed: int, version: int) -> str:
    """A cache key for something trained on data: the data's checksum, every setting, the
    seed and the file format's version (the dynamics ensemble's and the dynamics reward's)."""
    blob = json.dumps(
        {"data": checksum, "config": settings, "seed": seed, "format": version}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_key(checksum: str, config: EnsembleConfig, seed: int) -> str:
    """What identifies a trained ensemble: the data, every model setting and the seed."""
    return settings_key(checksum, config.to_json(), seed, FORMAT_VERSION)


def publish(folder: Path, model_file: str, write: Callable[[Path], Any]) -> None:
    """Make `folder` the cache entry `write(dir)` writes: into a temporary sibling first, then
    moved in place, unless another process published the same entry (`model_file` there)
    meanwhile; a leftover folder without its model file is replaced."""
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
    write(tmp)
    if (folder / model_file).exists():  # another process finished the same training first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)  # a leftover without a model file
        os.replace(tmp, folder)


def cache_root() -> Path:
    from shiftrl.data.registry import data_root

    return data_root() / "dynamics"


# -- the file format shared with the dynamics reward's store ------------------------------
def write_files(
    directory: str | Path, model_name: str, record_name: str, payload: dict, record: dict
) -> Path:
    """Write the msgpack `payload` and a readable copy of `record` into `directory`, each
    atomically (a killed write leaves the previous file, never half of one)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (
        (model_name, serialization.msgpack_serialize(payload)),
        (record_name, (json.dumps(record, indent=1) + "\n").encode()),
    ):
        tmp = directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, directory / name)
    return directory / model_name


def model_file(path: str | Path, model_name: str, what: str) -> Path:
    """The model file a user named (its folder or the file), or one clear error."""
    path = Path(path)
    file = path / model_name if path.is_dir() else path
    if not file.exists():
        raise DataError(f"{path}: no {what} here (expected {model_name})")
    return file


def read_payload(file: Path, fmt: str, version: int, what: str) -> dict:
    """The msgpack payload of `file` (plain data: nothing executes); ValueError when it is
    not a `fmt` file or was written by a newer format version."""
    payload = serialization.msgpack_restore(file.read_bytes())
    if payload.get("format") != fmt:
        raise ValueError(f"not a {what}")
    if int(payload["format_version"]) > version:
        raise ValueError("written by a newer shiftrl")
    return payload


def restore_params(template: Any, state_dict: dict) -> Any:
    """Parameters restored into `template`'s structure, their shapes checked against it."""
    params = serialization.from_state_dict(template, state_dict)
    for want, got in zip(jax.tree.leaves(template), jax.tree.leaves(params), strict=True):
        if tuple(want.shape) != tuple(np.shape(got)):
            raise ValueError("parameter shapes do not match the recorded settings")
    return params


def save_model(model: DynamicsModel, directory: str | Path, record: dict[str, Any]) -> Path:
    """Write `ensemble.msgpack` and `dynamics.json` into `directory` (atomically per file)."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(model.config.to_json()),
        "obs_dim": model.obs_dim,
        "act_dim": model.act_dim,
        "params": serialization.to_state_dict(jax.device_get(model.params)),
        "input_mean": np.asarray(model.input_mean),
        "input_std": np.asarray(model.input_std),
        "elites": np.asarray(model.elites),
        "holdout_mse": np.asarray(model.holdout_mse),
        "record": json.dumps(record),
    }
    return write_files(directory, MODEL_FILE, RECORD_FILE, payload, record)


def load_model(path: str | Path) -> tuple[DynamicsModel, dict[str, Any]]:
    """A saved ensemble (its folder or its `ensemble.msgpack`) and its record."""
    file = model_file(path, MODEL_FILE, "trained dynamics model")
    try:
        payload = read_payload(file, FORMAT, FORMAT_VERSION, "dynamics model")
        config = EnsembleConfig.from_json(json.loads(payload["config"]))
        obs_dim, act_dim = int(payload["obs_dim"]), int(payload["act_dim"])
        template = jax.eval_shape(
            lambda: init_params(config, obs_dim, act_dim, jax.random.PRNGKey(0))
        )
        params = restore_params(template, payload["params"])
        model = DynamicsModel(
            params=jax.tree.map(jnp.asarray, params),
            input_mean=jnp.asarray(payload["input_mean"]),
            input_std=jnp.asarray(payload["input_std"]),
            elites=jnp.asarray(payload["elites"], jnp.int32),
            holdout_mse=jnp.asarray(payload["holdout_mse"]),
            config=config,
            obs_dim=obs_dim,
            act_dim=act_dim,
        )
        return model, json.loads(payload["record"])
    except (ValueError, KeyError, TypeError, ConfigError) as e:
        raise DataError(f"{file}: not a readable shiftrl dynamics model ({e})") from None


def make_record(
    dataset: TransitionDataset, config: EnsembleConfig, seed: int, report: TrainReport, key: str
) -> dict[str, Any]:
    from shiftrl.dynamics.termination import robot_of_env

    meta = dataset.metadata
    return {
        "key": key,
        "config": config.to_json(),
        "seed": seed,
        "dataset": {
            "name": meta.name,
            "env_id": meta.env_id,
            "robot": robot_of_env(meta.env_id) if meta.env_id else None,
            "checksum": dataset.checksum(),
            "transitions": len(dataset),
        },
        "epochs": report.epochs,
        "stopped_early": report.stopped_early,
        "train_size": report.train_size,
        "holdout_indices": [int(i) for i in report.holdout_indices],
        "seconds": round(report.seconds, 3),
        "samples_per_second": round(report.samples_per_second, 1),
        "device": jax.devices()[0].platform,
        "history": report.history,
    }


def fit_dynamics(
    dataset: TransitionDataset,
    config: EnsembleConfig = EnsembleConfig(),
    *,
    seed: int = 0,
    cache: bool = True,
    progress: ProgressArg = True,
) -> tuple[DynamicsModel, dict[str, Any]]:
    """A trained ensemble for `dataset`: from the cache when the same data, settings and seed
    were trained before (record["reused"] is True), else trained now and cached."""
    checksum = dataset.checksum()
    key = cache_key(checksum, config, seed)
    folder = cache_root() / key
    if cache and (folder / MODEL_FILE).exists():
        model, record = load_model(folder)
        return model, {**record, "reused": True, "cache_dir": str(folder)}

    from shiftrl.dynamics.progress import EpochProgress

    # a killed training resumes from here (same data, settings and seed: same key)
    partial = cache_root() / f".{key}.partial" if cache else None
    with EpochProgress(config, enabled=progress) as bar:
        model, report = train_ensemble(
            dataset.observations,
            dataset.actions,
            dataset.rewards,
            dataset.next_observations,
            config,
            seed=seed,
            on_epoch=bar.report,
            resume_dir=partial,
        )
    record = make_record(dataset, config, seed, report, key)
    if cache:
        publish(folder, MODEL_FILE, lambda tmp: save_model(model, tmp, record))
        shutil.rmtree(partial, ignore_errors=True)
    return model, {**record, "reused": False, "cache_dir": str(folder) if cache else None}
