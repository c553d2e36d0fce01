"""Built-in datasets by ID, made on first use and cached.

An ID names an environment variant and a level, e.g. `pendulum/medium-v0` or (with the
behaviour-policy zoo) `hopper-mass-2.0/medium-v0`. `get_dataset(id)` returns the cached
copy under $SHIFTRL_DATA (default ~/.shiftrl/data) or makes it, deterministically from
the seed, and caches it. `load_dataset` in `data.io` falls back to this registry, so
every command that takes a dataset path also takes an ID.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shiftrl.core.errors import DataError
from shiftrl.data.dataset import TransitionDataset

Maker = Callable[[int, int], TransitionDataset]  # (size, seed) -> dataset


@dataclass(frozen=True)
class DatasetSpec:
    dataset_id: str
    maker: Maker
    default_size: int
    description: str


REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> None:
    REGISTRY[spec.dataset_id] = spec


def data_root() -> Path:
    return Path(os.environ.get("SHIFTRL_DATA", Path.home() / ".shiftrl" / "data"))


def cache_path(dataset_id: str, size: int, seed: int) -> Path:
    return data_root() / dataset_id / f"size{size}-seed{seed}.npz"


def _ensure_builtins() -> None:
    if not REGISTRY:
        from shiftrl.data import builtin  # noqa: F401  (registers the toy datasets)


def dataset_ids() -> list[str]:
    _ensure_builtins()
    return sorted(REGISTRY)


def is_registered(dataset_id: str) -> bool:
    _ensure_builtins()
    return dataset_id in REGISTRY


def make_dataset(dataset_id: str, size: int | None = None, seed: int = 0) -> TransitionDataset:
    """Build a registered dataset from scratch (no cache)."""
    _ensure_builtins()
    if dataset_id not in REGISTRY:
        import difflib

        close = difflib.get_close_matches(dataset_id, REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"unknown dataset id '{dataset_id}'{hint}")
    spec = REGISTRY[dataset_id]
    ds = spec.maker(size or spec.default_size, seed)
    ds.metadata.name = dataset_id
    ds.metadata.provenance = {**ds.metadata.provenance, "dataset_id": dataset_id, "seed": seed}
    return ds


def get_dataset(dataset_id: str, size: int | None = None, seed: int = 0) -> TransitionDataset:
    """The cached dataset, made (and cached) on first use."""
    from shiftrl.data.io import load_npz, save_npz

    _ensure_builtins()
    spec = REGISTRY.get(dataset_id)
    n = size or (spec.default_size if spec else 0)
    path = cache_path(dataset_id, n, seed)
    if path.exists():
        return load_npz(path)
    ds = make_dataset(dataset_id, size, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npz(ds, path)
    return ds
