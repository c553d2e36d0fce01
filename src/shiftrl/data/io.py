"""Reading and writing datasets: `.npz`, D4RL-style `.hdf5`, and local Minari datasets.

Every loader ends in `validate`, so whatever comes back is safe to train on, and
every failure a user can cause (missing, corrupt or malformed file) is a one-line
`DataError` rather than an h5py / zipfile traceback. No pickle is ever used for
user files, and Minari datasets are only read from disk, never downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from shiftrl.core.errors import DataError
from shiftrl.data.dataset import ARRAY_FIELDS, DatasetMetadata, TransitionDataset
from shiftrl.data.validate import validate

SUPPORTED = ".npz, .hdf5 / .h5, or a local Minari dataset (id or directory)"
REQUIRED = ("observations", "actions", "rewards", "terminals")
"""`next_observations` and `timeouts` may be missing (raw D4RL files); they are derived."""
METADATA_KEY = "shiftrl_metadata"
"""Attribute (hdf5) / metadata.json key (Minari) that holds our `DatasetMetadata` as JSON."""
NPZ_METADATA_KEY = "metadata_json"
_MAX_HDF5_METADATA = 50  # D4RL 'metadata/' also holds policy weights; keep only a few scalars


# ---- dispatch -----------------------------------------------------------------------
IN_MEMORY = "in-memory:"
"""How a run records data it was handed as an object that no file or ID can give back."""


def load_dataset(id_or_path: str, progress: bool = True) -> TransitionDataset:
    """Load a `.npz` / `.hdf5` file, a Minari dataset directory, a built-in dataset ID
    (`shiftrl data list`, size-qualified or not), or a local Minari id. The dataset remembers
    where it came from (`data_reference`), so a run trained on it can load it again."""
    ds = _load(id_or_path, progress)
    p = Path(id_or_path).expanduser()
    if p.exists():
        ds.loaded_from = str(p.resolve())
    elif "dataset_id" not in ds.metadata.provenance:
        ds.loaded_from = id_or_path  # a local Minari id
    return ds


def data_reference(ds: TransitionDataset) -> str:
    """What a run records as the data it trained on, so resume and fine-tuning load exactly
    that again: a built-in build's (size-qualified) ID, the file or Minari id it was loaded
    from, or `in-memory:NAME` for data that exists only as an object."""
    prov = ds.metadata.provenance
    if {"dataset_id", "size", "seed"} <= set(prov):
        from shiftrl.data.registry import is_registered, qualified_id

        if is_registered(prov["dataset_id"]):
            return qualified_id(prov["dataset_id"], int(prov["size"]), int(prov["seed"]))
    if ds.loaded_from:
        return ds.loaded_from
    return f"{IN_MEMORY}{ds.metadata.name}"


def load_recorded(reference: str, what: str, hint: str, progress: bool = True) -> TransitionDataset:
    """Load the data a run recorded (`data_reference`), or say in one line why it cannot be."""
    if reference.startswith(IN_MEMORY):
        raise DataError(
            f"{what} trained on an in-memory dataset ('{reference[len(IN_MEMORY) :]}') that no "
            f"file or ID gives back; {hint}"
        )
    try:
        return load_dataset(reference, progress)
    except DataError as e:
        raise DataError(f"{what}: the data it trained on cannot be loaded ({e})") from None


def _load(id_or_path: str, progress: bool) -> TransitionDataset:
    p = Path(id_or_path).expanduser()
    suffix = p.suffix.lower()
    if p.is_dir():
        from shiftrl.data import minari_io  # lazy: minari is only needed for Minari data

        data_dir = minari_io.minari_data_dir(p)
        if data_dir is None:
            raise DataError(f"{p}: is a directory but not a Minari dataset; supported: {SUPPORTED}")
        return minari_io.load_minari_data_dir(data_dir, source=str(p))
    if p.is_file():
        if suffix == ".npz":
            return load_npz(p)
        if suffix in (".hdf5", ".h5"):
            return load_hdf5(p)
        raise DataError(
            f"{p}: unsupported dataset format '{suffix or '(no suffix)'}'; supported: {SUPPORTED}"
        )
    if suffix not in (".npz", ".hdf5", ".h5"):
        from shiftrl.data import minari_io, registry

        if registry.is_registered(id_or_path):  # a built-in ID: cached, or made now
            return registry.get_dataset(id_or_path, progress=progress)
        if minari_io.is_local_minari_id(id_or_path):
            return minari_io.load_minari(id_or_path)
        if re.fullmatch(r"[^/\s]+/[-\w]+-v\d+", id_or_path):  # looks like a built-in ID
            raise DataError(registry.unknown_id_message(id_or_path))
    raise DataError(
        f"no such dataset file, built-in dataset id or local Minari dataset: {id_or_path}"
    )


def save_dataset(ds: TransitionDataset, path: str | os.PathLike) -> Path:
    """Save by suffix (`.npz` or `.hdf5`/`.h5`); returns the path written."""
    p = Path(path)
    if p.suffix.lower() == ".npz":
        return save_npz(ds, p)
    if p.suffix.lower() in (".hdf5", ".h5"):
        return save_hdf5(ds, p)
    raise DataError(
        f"cannot save to {p}: unsupported suffix '{p.suffix or '(none)'}'; use .npz or .hdf5 "
        "(or save_minari for a Minari dataset)"
    )


# ---- npz --------------------------------------------------------------------------------
def save_npz(ds: TransitionDataset, path: str | os.PathLike) -> Path:
    """Compressed `.npz` with the six arrays and a `metadata_json` string (no pickle)."""
    p = Path(path)
    ds = validate(ds, source=str(p))
    meta = np.array(metadata_to_json(ds.metadata))  # a unicode array: loads without pickle

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append '.npz'
            np.savez_compressed(f, **ds.arrays(), **{NPZ_METADATA_KEY: meta})

    _atomic_write(p, write)
    return p


def load_npz(path: str | os.PathLike) -> TransitionDataset:
    p = _existing_file(path)
    try:
        z = np.load(p, allow_pickle=False)  # never unpickle user files
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DataError(f"{p}: holds a single array, not an .npz archive of named arrays")
        with z:
            _require_keys(p, set(z.files))
            raw = {k: z[k] for k in ARRAY_FIELDS if k in z.files}
            meta_text = as_str(z[NPZ_METADATA_KEY]) if NPZ_METADATA_KEY in z.files else None
    except DataError:
        raise
    except Exception as e:  # zipfile / zlib / numpy format errors all mean a bad file
        raise DataError(f"{p}: not a readable .npz file ({one_line(e)})") from e
    meta = metadata_from_json(meta_text, str(p))
    return _assemble(raw, meta, source=str(p), default_name=p.stem)


# ---- hdf5 -------------------------------------------------------------------------------
def save_hdf5(ds: TransitionDataset, path: str | os.PathLike) -> Path:
    """D4RL-style keys at the root, metadata as JSON in the root attribute `shiftrl_metadata`."""
    p = Path(path)
    ds = validate(ds, source=str(p))

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            for k, a in ds.arrays().items():
                f.create_dataset(k, data=a, compression="gzip", compression_opts=4)
            f.attrs[METADATA_KEY] = metadata_to_json(ds.metadata)

    _atomic_write(p, write)
    return p


def load_hdf5(path: str | os.PathLike) -> TransitionDataset:
    """Read our own files and real D4RL files (see `_derive_next_observations`)."""
    p = _existing_file(path)
    try:
        with h5py.File(p, "r") as f:
            _require_keys(p, set(f.keys()))
            raw = {}
            for k in ARRAY_FIELDS:
                if k in f:
                    obj = f[k]
                    if not isinstance(obj, h5py.Dataset):
                        raise DataError(
                            f"{p}: '{k}' is a group, not an array (nested observations are not supported)"
                        )
                    raw[k] = obj[()]
            meta_text = as_str(f.attrs[METADATA_KEY]) if METADATA_KEY in f.attrs else None
            extra = _hdf5_scalar_metadata(f)
    except DataError:
        raise
    except Exception as e:  # truncated / not HDF5 / unreadable chunk
        raise DataError(f"{p}: not a readable HDF5 file ({one_line(e)})") from e
    meta = metadata_from_json(meta_text, str(p))
    if extra and meta_text is None:
        meta.provenance["hdf5_metadata"] = extra
    return _assemble(raw, meta, source=str(p), default_name=p.stem)


def _hdf5_scalar_metadata(f: h5py.File) -> dict[str, Any]:
    """Scalar entries of a D4RL `metadata/` group (algorithm, iteration, ...); arrays skipped."""
    grp = f.get("metadata")
    if not isinstance(grp, h5py.Group):
        return {}
    out: dict[str, Any] = {k: _to_py(v) for k, v in list(grp.attrs.items())[:_MAX_HDF5_METADATA]}

    def visit(name: str, obj: object) -> None:
        if len(out) < _MAX_HDF5_METADATA and isinstance(obj, h5py.Dataset) and obj.shape == ():
            out[name] = _to_py(obj[()])

    grp.visititems(visit)
    return out


# ---- assembling loaded arrays -------------------------------------------------------------
def _assemble(
    raw: dict[str, np.ndarray], meta: DatasetMetadata, *, source: str, default_name: str
) -> TransitionDataset:
    if meta.name in ("", "unnamed"):
        meta.name = default_name
    obs = raw["observations"]
    n = np.shape(obs)[0] if np.ndim(obs) else 0
    timeouts = raw.get("timeouts")
    if timeouts is None:
        # No time-limit flags recorded: episodes split only at terminals, and the last row
        # is where logging stopped (a timeout; `validate` clears it if it is terminal).
        timeouts = np.zeros(n, bool)
        timeouts[-1:] = True
    derive = "next_observations" not in raw
    ds = TransitionDataset(
        observations=obs,
        actions=raw["actions"],
        rewards=raw["rewards"],
        next_observations=obs if derive else raw["next_observations"],  # placeholder if derived
        terminals=raw["terminals"],
        timeouts=timeouts,
        metadata=meta,
    )
    ds = validate(ds, source=source)
    return _derive_next_observations(ds, source) if derive else ds


def _derive_next_observations(ds: TransitionDataset, source: str) -> TransitionDataset:
    """Fill next_obs[i] = obs[i+1] within each episode, as D4RL's `qlearning_dataset` does.

    - The last row of an episode that ends by timeout (or where logging stopped) has no
      recorded next observation, so it is DROPPED; the row before it becomes the
      episode's last row and is marked as a timeout (still bootstrapped, its next_obs
      is real), so the episode stays separate from the next one.
    - The last row of an episode that ends by a terminal is kept with next_obs = obs[i]:
      a terminal transition is never bootstrapped, so its next_obs is never used, and
      obs[i+1] would belong to the next episode.
    """
    obs, term, tout = ds.observations, ds.terminals, ds.timeouts
    ends = term | tout
    ends[-1] = True
    next_obs = np.empty_like(obs)
    next_obs[:-1] = obs[1:]
    next_obs[term] = obs[term]
    drop = ends & ~term
    new_tout = np.zeros(len(ds), bool)
    new_tout[:-1] = drop[1:] & ~ends[:-1]
    keep = np.flatnonzero(~drop)
    if keep.size == 0:
        raise DataError(
            f"{source}: no usable transitions: without 'next_observations', the last row of "
            "every episode not ending in a terminal must be dropped, and that was every row"
        )
    prov = {**ds.metadata.provenance, "next_observations_derived": True}
    prov["rows_dropped"] = int(drop.sum())
    return TransitionDataset(
        observations=obs[keep],
        actions=ds.actions[keep],
        rewards=ds.rewards[keep],
        next_observations=next_obs[keep],
        terminals=term[keep],
        timeouts=new_tout[keep],
        metadata=dataclasses.replace(ds.metadata, provenance=prov),
    )


# ---- Minari (implemented in minari_io; thin wrappers keep one import point) ---------------
def save_minari(
    ds: TransitionDataset, dataset_id: str, *, root: str | os.PathLike | None = None
) -> Path:
    """Write a local Minari dataset; see `shiftrl.data.minari_io.save_minari`."""
    from shiftrl.data import minari_io

    return minari_io.save_minari(ds, dataset_id, root=root)


def load_minari(dataset_id: str, *, root: str | os.PathLike | None = None) -> TransitionDataset:
    """Read a local Minari dataset by id (never downloads)."""
    from shiftrl.data import minari_io

    return minari_io.load_minari(dataset_id, root=root)


# ---- small helpers ---------------------------------------------------------------------------
def _existing_file(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"no such dataset file: {p}")
    return p


def _require_keys(p: Path, keys: set[str]) -> None:
    missing = [k for k in REQUIRED if k not in keys]
    if missing:
        found = ", ".join(sorted(keys)) or "nothing"
        raise DataError(f"{p}: missing required array(s) {', '.join(missing)} (found: {found})")


def _atomic_write(p: Path, write: Callable[[Path], None]) -> None:
    """Write to a temp file then rename, so a crash never leaves a truncated dataset."""
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, p)
    except OSError as e:
        raise DataError(f"cannot write {p}: {one_line(e)}") from e
    finally:
        tmp.unlink(missing_ok=True)


def metadata_to_json(meta: DatasetMetadata) -> str:
    return json.dumps(meta.to_json(), default=_to_py)


def metadata_from_json(text: str | None, source: str) -> DatasetMetadata:
    if text is None:
        return DatasetMetadata()
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return DatasetMetadata.from_json(data)
    except (ValueError, TypeError) as e:
        raise DataError(f"{source}: stored metadata is not valid ({one_line(e)})") from e


def as_str(v: Any) -> str:
    v = v.item() if isinstance(v, np.ndarray | np.generic) else v
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _to_py(v: Any) -> Any:
    """JSON-friendly version of numpy / bytes / set values (also the json `default`)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.generic):
        return _to_py(v.item())
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 64 else f"<array {v.shape} {v.dtype}>"
    if isinstance(v, set | frozenset):
        return sorted(v, key=str)
    if isinstance(v, str | int | float | bool | list | dict | tuple) or v is None:
        return v
    return str(v)


def one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or "no details"
    msg = msg if len(msg) <= 200 else msg[:197] + "..."
    return f"{type(e).__name__}: {msg}"
