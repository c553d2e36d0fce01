"""Resuming dynamics-ensemble training after a kill.

Training an ensemble on a million transitions takes many minutes on a CPU, so
`train_ensemble` saves its loop state every `save_every_s` seconds into a partial folder
(`fit_dynamics`: `$SHIFTRL_DATA/dynamics/.<key>.partial`, beside the cache entry it will
become) and a later call with the same data, settings and seed continues from it. The held-
out split and the bootstrap rows are drawn again from the seed (the same ones), so the
state is what changes per epoch: parameters, optimizer state, the members' snapshots and
their held-out MSE, the epoch counters, the JAX key and the history. It is written with
flax.serialization msgpack (arrays, numbers and strings only; nothing executes on load),
atomically, so a kill while writing leaves the previous state.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

STATE_FILE = "state.msgpack"


@dataclass
class LoopState:
    """Everything `train_ensemble` carries from one epoch to the next."""

    params: Any
    opt_state: Any
    best_layers: Any
    best_mse: np.ndarray
    since_update: int
    epoch: int
    key: jax.Array
    history: list[dict[str, float]]

    def to_payload(self) -> dict[str, Any]:
        return {
            "params": serialization.to_state_dict(self.params),
            "opt_state": serialization.to_state_dict(self.opt_state),
            "best_layers": serialization.to_state_dict(self.best_layers),
            "best_mse": np.asarray(self.best_mse, np.float64),
            "since_update": self.since_update,
            "epoch": self.epoch,
            "key": np.asarray(self.key),  # a legacy uint32 PRNGKey
            "history": json.dumps(self.history),
        }


def save_state(folder: Path, state: LoopState) -> None:
    """Write `state` into `folder` (created), replacing the previous one atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_bytes(serialization.msgpack_serialize(state.to_payload()))
    os.replace(tmp, folder / STATE_FILE)


def load_state(folder: Path | None, template: LoopState) -> LoopState | None:
    """The state saved in `folder`, shaped like `template` (the freshly initialized one);
    None when there is none or it does not fit (another format: training starts over)."""
    if folder is None or not (folder / STATE_FILE).exists():
        return None
    try:
        raw = serialization.msgpack_restore((folder / STATE_FILE).read_bytes())
        return LoopState(
            params=serialization.from_state_dict(template.params, raw["params"]),
            opt_state=serialization.from_state_dict(template.opt_state, raw["opt_state"]),
            best_layers=serialization.from_state_dict(template.best_layers, raw["best_layers"]),
            best_mse=np.asarray(raw["best_mse"], np.float64),
            since_update=int(raw["since_update"]),
            epoch=int(raw["epoch"]),
            key=jax.numpy.asarray(raw["key"], template.key.dtype),
            history=json.loads(raw["history"]),
        )
    except (KeyError, ValueError, TypeError):
        return None
