"""The transition dataset: flat arrays plus metadata, with episode structure.

Layout follows D4RL's flat convention (one row per transition) because that is
what offline learners sample from; episode boundaries are derived from
`terminals | timeouts` (plus the final row), so whole-episode operations such as
"10% of the target episodes" or "trajectory returns" need no extra index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shiftrl.core.errors import DataError

ARRAY_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


@dataclass
class DatasetMetadata:
    """What a dataset is and where it came from.

    `ref_min_score` / `ref_max_score` are the random and expert returns used for
    the normalized score 100 * (R - min) / (max - min); they belong to the
    environment variant the data was collected in.
    """

    name: str = "unnamed"
    env_id: str | None = None
    """Gymnasium id of the environment the data was collected in (e.g. 'Hopper-v5')."""
    dynamics: str = "base"
    """Name of the dynamics variant ('base', 'mass-2.0', ...)."""
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    action_low: list[float] | None = None
    action_high: list[float] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    """Free-form record of how the data was made: behaviour policy, seed, source file, ..."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetMetadata:
        known = {f.name for f in dataclasses.fields(cls)}
        meta = cls(**{k: v for k, v in data.items() if k in known})
        extra = {k: v for k, v in data.items() if k not in known}
        if extra:
            meta.provenance = {**meta.provenance, "extra_metadata": extra}
        return meta


@dataclass
class TransitionDataset:
    """Flat transitions. `terminals` = true environment termination; `timeouts` =
    episode cut by a time limit (or by the end of logging). A timeout is NOT a
    terminal: learners bootstrap through it."""

    observations: np.ndarray  # [N, obs_dim] float32
    actions: np.ndarray  # [N, act_dim] float32
    rewards: np.ndarray  # [N] float32
    next_observations: np.ndarray  # [N, obs_dim] float32
    terminals: np.ndarray  # [N] bool
    timeouts: np.ndarray  # [N] bool
    metadata: DatasetMetadata = field(default_factory=DatasetMetadata)
    loaded_from: str | None = field(default=None, compare=False, repr=False)
    """The file (absolute path) or Minari id `load_dataset` read this exact data from, on this
    machine; never saved with the data, and not carried over to subsets or concatenations."""

    # ---- shape -----------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    # ---- episodes --------------------------------------------------------------
    @property
    def episode_ends(self) -> np.ndarray:
        """Indices (inclusive) of the last transition of each episode."""
        done = np.asarray(self.terminals, bool) | np.asarray(self.timeouts, bool)
        if len(self) and not done[-1]:
            done = done.copy()
            done[-1] = True  # the log stopped mid-episode: treat as the end of that episode
        return np.flatnonzero(done)

    @property
    def episode_starts(self) -> np.ndarray:
        ends = self.episode_ends
        return np.concatenate([[0], ends[:-1] + 1]).astype(np.int64) if len(ends) else ends

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)

    def episode_ids(self) -> np.ndarray:
        """Episode index of every transition, [N] int64."""
        ids = np.zeros(len(self), np.int64)
        ends = self.episode_ends
        if len(ends) > 1:
            ids[ends[:-1] + 1] = 1
        return np.cumsum(ids)

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, [num_episodes] float64."""
        return np.bincount(self.episode_ids(), weights=self.rewards.astype(np.float64))

    def episode_lengths(self) -> np.ndarray:
        return np.bincount(self.episode_ids())

    def select_episodes(self, episodes: np.ndarray) -> TransitionDataset:
        """A new dataset holding only the given episode indices (in that order)."""
        starts, ends = self.episode_starts, self.episode_ends
        idx = np.concatenate([np.arange(starts[e], ends[e] + 1) for e in episodes])
        out = self.take(idx)
        # the kept episodes still end where they ended; make sure a trailing partial one is closed
        return out

    def take(self, idx: np.ndarray) -> TransitionDataset:
        """Rows `idx` as a new dataset (metadata shared by copy)."""
        arrays = {k: getattr(self, k)[idx] for k in ARRAY_FIELDS}
        return TransitionDataset(**arrays, metadata=dataclasses.replace(self.metadata))

    # ---- helpers -----------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ARRAY_FIELDS}

    def checksum(self) -> str:
        """sha256 over every array's bytes in a fixed order (metadata excluded)."""
        h = hashlib.sha256()
        for k in ARRAY_FIELDS:
            a = np.ascontiguousarray(getattr(self, k))
            h.update(k.encode())
            h.update(str(a.dtype).encode())
            h.update(json.dumps(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        rets = self.episode_returns()
        return {
            "name": self.metadata.name,
            "env_id": self.metadata.env_id,
            "dynamics": self.metadata.dynamics,
            "transitions": len(self),
            "episodes": self.num_episodes,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "return_mean": float(rets.mean()) if len(rets) else float("nan"),
            "return_min": float(rets.min()) if len(rets) else float("nan"),
            "return_max": float(rets.max()) if len(rets) else float("nan"),
            "terminals": int(np.sum(self.terminals)),
            "timeouts": int(np.sum(self.timeouts)),
        }

    @staticmethod
    def from_arrays(
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_observations: np.ndarray,
        terminals: np.ndarray,
        timeouts: np.ndarray | None = None,
        metadata: DatasetMetadata | None = None,
    ) -> TransitionDataset:
        """Build and validate a dataset from the user's own arrays."""
        from shiftrl.data.validate import validate

        obs = np.asarray(observations)
        ds = TransitionDataset(
            observations=obs,
            actions=np.asarray(actions),
            rewards=np.asarray(rewards),
            next_observations=np.asarray(next_observations),
            terminals=np.asarray(terminals),
            timeouts=np.zeros(len(obs), bool) if timeouts is None else np.asarray(timeouts),
            metadata=metadata or DatasetMetadata(),
        )
        return validate(ds)


def concatenate(datasets: list[TransitionDataset], name: str | None = None) -> TransitionDataset:
    """Stack datasets with identical shapes (episodes stay separate)."""
    if not datasets:
        raise DataError("nothing to concatenate")
    first = datasets[0]
    for d in datasets[1:]:
        if (d.obs_dim, d.act_dim) != (first.obs_dim, first.act_dim):
            raise DataError(
                f"cannot combine datasets with different shapes: {first.metadata.name} has "
                f"obs {first.obs_dim} / act {first.act_dim}, {d.metadata.name} has obs {d.obs_dim} / act {d.act_dim}"
            )
    parts = []
    for d in datasets:
        timeouts = d.timeouts.copy()
        if len(d) and not (d.terminals[-1] or d.timeouts[-1]):
            timeouts[-1] = True  # keep episodes from running into the next dataset
        parts.append((d, timeouts))
    arrays = {
        k: np.concatenate([getattr(d, k) for d, _ in parts])
        for k in ARRAY_FIELDS
        if k != "timeouts"
    }
    arrays["timeouts"] = np.concatenate([t for _, t in parts])
    meta = dataclasses.replace(
        first.metadata, name=name or "+".join(d.metadata.name for d in datasets)
    )
    return TransitionDataset(**arrays, metadata=meta)
