"""Local Minari datasets: write ours, read any flat-Box one (never downloads).

Minari stores episodes (T+1 observations each) while we store flat transitions, so
writing requires whole, contiguous episodes and reading flattens them. Our full
`DatasetMetadata` rides along in Minari's metadata.json under `shiftrl_metadata`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from shiftrl.core.errors import DataError
from shiftrl.data.dataset import ARRAY_FIELDS, DatasetMetadata, TransitionDataset
from shiftrl.data.io import (
    METADATA_KEY,
    as_str,
    metadata_from_json,
    metadata_to_json,
    one_line,
)
from shiftrl.data.validate import as_flags, validate

MINARI_ENV_VAR = "MINARI_DATASETS_PATH"


def save_minari(
    ds: TransitionDataset, dataset_id: str, *, root: str | os.PathLike | None = None
) -> Path:
    """Write a local Minari dataset (hdf5 backend); returns its directory.

    Minari stores each episode as one observation sequence of T+1 rows, so `ds` must hold
    whole, unbroken episodes (next_obs[i] == obs[i+1] inside each episode). Our full
    `DatasetMetadata` goes into Minari's metadata.json under `shiftrl_metadata`.
    """
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)  # also rules out '..' and absolute paths
    except ValueError as e:
        raise DataError(f"{dataset_id}: not a valid Minari dataset id ({one_line(e)})") from e
    ds = validate(ds, source=dataset_id)
    meta = ds.metadata
    buffers = [
        EpisodeBuffer(
            observations=np.concatenate(
                [ds.observations[s : e + 1], ds.next_observations[e : e + 1]]
            ),
            actions=ds.actions[s : e + 1],
            rewards=ds.rewards[s : e + 1],
            terminations=ds.terminals[s : e + 1],
            truncations=ds.timeouts[s : e + 1],
        )
        for s, e in _contiguous_episodes(ds, dataset_id)
    ]
    obs_space = gym.spaces.Box(-np.inf, np.inf, (ds.obs_dim,), np.float32)
    act_space = gym.spaces.Box(
        np.asarray(meta.action_low, np.float32),
        np.asarray(meta.action_high, np.float32),
        dtype=np.float32,
    )
    with _minari_root(root):
        target = _minari_root_dir() / dataset_id
        if target.exists():
            raise DataError(
                f"{dataset_id}: a Minari dataset already exists at {target}; choose another id or delete it"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # minari warns about every unset author/url field
                mds = minari.create_dataset_from_buffers(
                    dataset_id,
                    buffers,
                    env=None,  # an env would be instantiated (and could trigger reference rollouts)
                    observation_space=obs_space,
                    action_space=act_space,
                    description=f"shiftrl dataset '{meta.name}' (env {meta.env_id}, dynamics {meta.dynamics})",
                )
            # With env=None minari silently drops ref scores, so write them (and ours) directly.
            extra: dict[str, Any] = {METADATA_KEY: metadata_to_json(meta)}
            if meta.ref_min_score is not None and meta.ref_max_score is not None:
                extra["ref_min_score"] = float(meta.ref_min_score)
                extra["ref_max_score"] = float(meta.ref_max_score)
            spec = _env_spec_json(meta)
            if spec is not None:
                extra["env_spec"] = spec
            mds.storage.update_metadata(extra)
        except DataError:
            raise
        except Exception as e:
            shutil.rmtree(target, ignore_errors=True)  # don't leave a half-written dataset behind
            raise DataError(f"{dataset_id}: could not write Minari dataset ({one_line(e)})") from e
        return target


def load_minari(dataset_id: str, *, root: str | os.PathLike | None = None) -> TransitionDataset:
    """Read a local Minari dataset by id (never downloads)."""
    if not _MINARI_ID_RE.match(dataset_id):  # keeps '..' and absolute paths out of the root
        raise DataError(f"{dataset_id}: not a valid Minari dataset id")
    with _minari_root(root):
        data_dir = minari_data_dir(_minari_root_dir() / dataset_id)
        if data_dir is None:
            raise DataError(f"no such dataset file or local Minari dataset: {dataset_id}")
        return load_minari_data_dir(data_dir, source=dataset_id)


def _check_minari_metadata(data_dir: Path, source: str) -> None:
    """Name what Minari's metadata.json lacks (Minari itself only fails an assert)."""
    path = Path(data_dir) / "metadata.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{source}: {path} is not readable JSON ({one_line(e)})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{source}: {path} is not a JSON object")
    spaces = all(isinstance(raw.get(k), str) for k in ("observation_space", "action_space"))
    missing = [k for k in ("dataset_id", "minari_version") if not isinstance(raw.get(k), str)]
    if not spaces and not isinstance(raw.get("env_spec"), str):
        missing.append("observation_space/action_space (or env_spec)")
    if missing:
        raise DataError(f"{source}: {path} lacks Minari's required metadata: {', '.join(missing)}")


def load_minari_data_dir(data_dir: Path, *, source: str) -> TransitionDataset:
    from minari import MinariDataset

    _check_minari_metadata(data_dir, source)
    try:
        mds = MinariDataset(data_dir)  # what minari.load_dataset(id, download=False) does
        raw_meta = mds.storage.metadata
        parts: list[tuple[np.ndarray, ...]] = []
        for ep in mds.iterate_episodes():
            if not (isinstance(ep.observations, np.ndarray) and isinstance(ep.actions, np.ndarray)):
                raise DataError(
                    f"{source}: episode {ep.id} has Dict/Tuple observations or actions; only flat Box arrays are supported"
                )
            steps = len(ep.rewards)
            if steps == 0:
                continue
            o = ep.observations.reshape(len(ep.observations), -1)
            if len(o) != steps + 1:
                raise DataError(
                    f"{source}: episode {ep.id} has {len(o)} observations for {steps} steps (expected {steps + 1})"
                )
            term = as_flags(ep.terminations, "terminations", source)
            trunc = as_flags(ep.truncations, "truncations", source).copy()
            parts.append((o[:-1], ep.actions.reshape(steps, -1), ep.rewards, o[1:], term, trunc))
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{source}: not a readable Minari dataset ({one_line(e)})") from e
    if not parts:
        raise DataError(f"{source}: Minari dataset has no steps")
    for *_, term, trunc in parts[:-1]:
        if not (term[-1] or trunc[-1]):
            trunc[-1] = True  # an episode stopped without a flag: keep it separate from the next
    cols = [np.concatenate(c) for c in zip(*parts, strict=True)]

    if METADATA_KEY in raw_meta:
        meta = metadata_from_json(as_str(raw_meta[METADATA_KEY]), source)
    else:
        meta = _metadata_from_minari(mds, raw_meta)
    if meta.name in ("", "unnamed"):
        meta.name = mds.id
    ds = TransitionDataset(**dict(zip(ARRAY_FIELDS, cols, strict=True)), metadata=meta)
    return validate(ds, source=source)


def _metadata_from_minari(mds: Any, raw_meta: dict[str, Any]) -> DatasetMetadata:
    """Best-effort metadata for a Minari dataset not written by us."""
    meta = DatasetMetadata(
        name=mds.id,
        env_id=mds.env_spec.id if mds.env_spec is not None else None,
        ref_min_score=raw_meta.get("ref_min_score"),
        ref_max_score=raw_meta.get("ref_max_score"),
        provenance={"minari_id": mds.id, "minari_version": raw_meta.get("minari_version")},
    )
    space = mds.action_space
    low, high = getattr(space, "low", None), getattr(space, "high", None)
    if (
        low is not None
        and high is not None
        and np.all(np.isfinite(low))
        and np.all(np.isfinite(high))
    ):
        meta.action_low = [float(v) for v in np.ravel(low)]
        meta.action_high = [float(v) for v in np.ravel(high)]
    return meta


def _contiguous_episodes(ds: TransitionDataset, source: str) -> list[tuple[int, int]]:
    """(start, end inclusive) per episode; raise unless every episode is one unbroken sequence."""
    out = []
    for k, (s, e) in enumerate(zip(ds.episode_starts, ds.episode_ends, strict=True)):
        s, e = int(s), int(e)
        same = np.all(ds.next_observations[s:e] == ds.observations[s + 1 : e + 1], axis=1)
        if not same.all():
            i = s + int(np.flatnonzero(~same)[0])
            raise DataError(
                f"{source}: Minari requires contiguous episodes, but in episode {k} "
                f"next_observations[{i}] != observations[{i + 1}] (data built by concatenation "
                "or with dropped rows); save it as .npz or .hdf5 instead"
            )
        out.append((s, e))
    return out


def _env_spec_json(meta: DatasetMetadata) -> str | None:
    """The registered gymnasium spec of the env the data came from: `env_id` when the data's
    dynamics are that env's own (base dynamics, or the shiftrl variant `env_id` names); None
    when they differ (data from another dynamics labelled with the base env's id)."""
    if meta.env_id is None:
        return None
    import gymnasium as gym

    from shiftrl.envs import variant_of  # importing shiftrl.envs registers the variants

    variant = variant_of(meta.env_id)
    own = "base" if variant is None else variant.dynamics
    if meta.dynamics != own:
        return None

    try:
        return gym.spec(meta.env_id).to_json()
    except Exception:  # not registered / not serialisable: minari works without it
        return None


def _minari_root_dir() -> Path:
    # same rule as minari's get_dataset_path, without its side effect of creating the dir
    env = os.environ.get(MINARI_ENV_VAR)
    return Path(env) if env else Path.home() / ".minari" / "datasets"


@contextmanager
def _minari_root(root: str | os.PathLike | None) -> Iterator[None]:
    """Point minari at `root` for the duration (minari reads only the env var; not thread-safe)."""
    if root is None:
        yield
        return
    old = os.environ.get(MINARI_ENV_VAR)
    os.environ[MINARI_ENV_VAR] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(MINARI_ENV_VAR, None)
        else:
            os.environ[MINARI_ENV_VAR] = old


def minari_data_dir(p: Path) -> Path | None:
    for d in (p / "data", p):
        if (d / "metadata.json").is_file():
            return d
    return None


_MINARI_ID_RE = re.compile(r"^[-_\w]+(/[-_\w]+)*$")


def is_local_minari_id(s: str) -> bool:
    return bool(_MINARI_ID_RE.match(s)) and minari_data_dir(_minari_root_dir() / s) is not None
