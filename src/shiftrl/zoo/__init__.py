"""The behaviour-policy zoo: small SAC actors shipped with the package, and their manifest.

`weights/manifest.json` lists, per environment variant, the snapshots kept from one SAC
training run: `expert` (best return reached within the declared budget), `medium` (the
snapshot closest to one third of the expert's return, as D4RL's medium), and
`replay-<steps>` snapshots (every one up to medium) from which medium-replay data is
regenerated. Weights are msgpack (flax.serialization): arrays only, no code on load.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from shiftrl.core.errors import ConfigError

WEIGHTS = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS / "manifest.json"
ZOO_DIR_ENV = "SHIFTRL_ZOO_DIR"
"""Environment variable naming another weights directory (tests, or a zoo being built)."""


def weights_dir() -> Path:
    """The directory holding `manifest.json` and the snapshots: $SHIFTRL_ZOO_DIR or the package's."""
    override = os.environ.get(ZOO_DIR_ENV)
    return Path(override).expanduser() if override else WEIGHTS


def manifest_path() -> Path:
    return weights_dir() / "manifest.json"


def manifest() -> dict[str, Any]:
    path = manifest_path()
    if not path.exists():
        return {"format": 1, "policies": {}}
    return json.loads(path.read_text())


def variants() -> list[str]:
    return sorted(manifest()["policies"])


@dataclass
class BehaviourPolicy:
    """A shipped SAC actor; acts by sampling its tanh-Gaussian (D4RL's behaviour policies
    were stochastic), or deterministically with `deterministic=True`."""

    variant: str
    snapshot: dict[str, Any]
    entry: dict[str, Any]
    deterministic: bool = False

    @cached_property
    def _fns(self):
        from shiftrl.nets import TanhGaussianActor

        net = TanhGaussianActor(self.entry["act_dim"], tuple(self.entry["hidden"]))
        template = net.init(
            jax.random.PRNGKey(0),
            np.zeros((1, self.entry["obs_dim"]), np.float32),
            jax.random.PRNGKey(0),
        )
        params = serialization.from_bytes(
            template["params"], (weights_dir() / self.snapshot["file"]).read_bytes()
        )

        @jax.jit
        def sample(obs, key):
            return net.apply({"params": params}, obs, key)[0]

        @jax.jit
        def mean(obs):
            return net.apply({"params": params}, obs, method=TanhGaussianActor.deterministic)

        return sample, mean

    def __call__(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        sample, mean = self._fns
        obs = np.asarray(obs, np.float32)
        if self.deterministic:
            unit = np.asarray(mean(obs))
        else:
            unit = np.asarray(sample(obs, jax.random.PRNGKey(int(rng.integers(2**31)))))
        low, high = np.asarray(self.entry["action_low"]), np.asarray(self.entry["action_high"])
        return (low + (unit + 1.0) * 0.5 * (high - low)).astype(np.float32)


def load_behaviour(variant: str, snapshot: str, deterministic: bool = False) -> BehaviourPolicy:
    entries = manifest()["policies"]
    if variant not in entries:
        raise ConfigError(
            f"no behaviour policy for '{variant}'; the zoo has: {', '.join(sorted(entries)) or 'none'}"
        )
    snaps = {s["name"]: s for s in entries[variant]["snapshots"]}
    if snapshot not in snaps:
        raise ConfigError(f"no snapshot '{snapshot}' for {variant}; available: {', '.join(snaps)}")
    return BehaviourPolicy(variant, snaps[snapshot], entries[variant], deterministic)
