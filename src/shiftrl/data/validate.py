"""Check and normalise a `TransitionDataset` before anything trains on it.

Every loader runs `validate` so that learners can rely on: float32 arrays with
consistent shapes, finite values, boolean flags, no row that is both terminal and
timeout, and action bounds recorded in the metadata. Problems raise `DataError`
with a one-line message naming the source and the field, because the CLI shows
that line to the user instead of a traceback.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from shiftrl.core.errors import DataError
from shiftrl.data.dataset import DatasetMetadata, TransitionDataset

FLOAT_FIELDS = ("observations", "actions", "rewards", "next_observations")
FLAG_FIELDS = ("terminals", "timeouts")
BOUNDS_TOL = 1e-4
"""Actions may exceed declared bounds by this much (float32 round-off of clipped actions)."""
UNIT_TOL = 1e-6


def validate(ds: TransitionDataset, *, source: str = "dataset") -> TransitionDataset:
    """Return a checked copy of `ds` (the caller's arrays are never modified in place).

    Arrays that already have the right dtype are shared, not copied, so validating a
    large dataset costs no extra memory unless a conversion or a fix is needed.
    """
    arrays = {k: as_float32(getattr(ds, k), k, source) for k in FLOAT_FIELDS}
    arrays.update({k: as_flags(getattr(ds, k), k, source) for k in FLAG_FIELDS})

    # ---- shapes ------------------------------------------------------------------
    for k in ("observations", "next_observations", "actions"):
        if arrays[k].ndim != 2:
            raise DataError(
                f"{source}: '{k}' must be 2-D [N, dim], got shape {tuple(arrays[k].shape)}"
            )
    for k in ("rewards", *FLAG_FIELDS):
        a = arrays[k]
        if a.ndim == 2 and a.shape[1] == 1:
            arrays[k] = a[:, 0]  # [N, 1] columns are a common export quirk; same data
        elif a.ndim != 1:
            raise DataError(f"{source}: '{k}' must be 1-D [N], got shape {tuple(a.shape)}")
    n = arrays["observations"].shape[0]
    if n == 0:
        raise DataError(f"{source}: dataset is empty (0 transitions)")
    wrong = {k: a.shape[0] for k, a in arrays.items() if a.shape[0] != n}
    if wrong:
        listed = ", ".join(f"'{k}' has {m}" for k, m in wrong.items())
        raise DataError(f"{source}: array lengths differ: 'observations' has {n} rows, {listed}")
    obs_w, next_w = arrays["observations"].shape[1], arrays["next_observations"].shape[1]
    if obs_w != next_w:
        raise DataError(
            f"{source}: 'observations' has width {obs_w} but 'next_observations' has width {next_w}"
        )

    # ---- values ------------------------------------------------------------------
    for k in FLOAT_FIELDS:
        _check_finite(arrays[k], k, source)

    # Gymnasium can report terminated and truncated on the same step (the time limit
    # hits on the step the agent falls). True termination wins: the next state has no
    # value, so bootstrapping through it would be wrong.
    both = arrays["terminals"] & arrays["timeouts"]
    if both.any():
        arrays["timeouts"] = arrays["timeouts"] & ~both  # a new array: caller's untouched

    _check_metadata_types(ds.metadata, source)
    meta = dataclasses.replace(ds.metadata, provenance=dict(ds.metadata.provenance))
    _check_action_bounds(arrays["actions"], meta, source)
    return TransitionDataset(**arrays, metadata=meta)


def as_float32(x: object, field: str, source: str) -> np.ndarray:
    """`x` as a float32 array (no copy when it already is one)."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{source}: '{field}' must be numeric, got dtype {a.dtype}")
    return a.astype(np.float32, copy=False)


def as_flags(x: object, field: str, source: str) -> np.ndarray:
    """`x` as a bool array; numbers are accepted only when every value is 0 or 1."""
    a = np.asarray(x)
    if a.dtype == np.bool_:
        return a
    if a.dtype.kind not in "iuf":
        raise DataError(f"{source}: '{field}' must be boolean or 0/1, got dtype {a.dtype}")
    bad = (a != 0) & (a != 1)  # NaN counts as bad too
    if bad.any():
        flat = np.flatnonzero(bad.reshape(len(a), -1).any(axis=1)) if a.ndim else [0]
        example = a.reshape(-1)[np.flatnonzero(bad.reshape(-1))[0]]
        raise DataError(
            f"{source}: '{field}' must contain only 0/1 (or booleans), found {int(bad.sum())} "
            f"other values (first at row {int(flat[0])}: {example.item()!r})"
        )
    return a != 0


def _check_finite(a: np.ndarray, field: str, source: str) -> None:
    finite = np.isfinite(a)
    if finite.all():
        return
    nan = int(np.isnan(a).sum())
    inf = int(finite.size - finite.sum()) - nan
    what = (
        f"{nan} NaN values"
        if not inf
        else f"{inf} infinite values"
        if not nan
        else f"{nan} NaN and {inf} infinite values"
    )
    rows = ~finite if a.ndim == 1 else ~finite.all(axis=1)
    raise DataError(
        f"{source}: '{field}' contains {what} (first at row {int(np.flatnonzero(rows)[0])})"
    )


def _check_metadata_types(meta: DatasetMetadata, source: str) -> None:
    """Metadata fields of the wrong type (from a hand-edited file) as one line."""

    def number(v: object) -> bool:
        return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)

    problems = []
    if not isinstance(meta.name, str):
        problems.append(f"'name' must be a string, got {meta.name!r}")
    if meta.env_id is not None and not isinstance(meta.env_id, str):
        problems.append(f"'env_id' must be a string, got {meta.env_id!r}")
    for key in ("ref_min_score", "ref_max_score"):
        v = getattr(meta, key)
        if v is not None and not (number(v) and np.isfinite(v)):
            problems.append(f"'{key}' must be a finite number, got {v!r}")
    for key in ("action_low", "action_high"):
        v = getattr(meta, key)
        seq = isinstance(v, list | tuple | np.ndarray) and all(number(x) for x in v)
        if v is not None and not seq:
            problems.append(f"'{key}' must be a list of numbers, got {v!r}")
    if not isinstance(meta.provenance, dict):
        problems.append(f"'provenance' must be a mapping, got {type(meta.provenance).__name__}")
    if problems:
        raise DataError(f"{source}: metadata {problems[0]}")


def _check_action_bounds(actions: np.ndarray, meta: DatasetMetadata, source: str) -> None:
    """Check actions against declared bounds, or infer and record bounds (mutates `meta`)."""
    act_dim = actions.shape[1]
    low, high = meta.action_low, meta.action_high
    if (low is None) != (high is None):
        raise DataError(
            f"{source}: metadata sets only one of 'action_low' / 'action_high'; set both or neither"
        )
    if low is None:
        # Most continuous-control benchmarks use [-1, 1]; prefer that over the data's own
        # range so a dataset that never hits the edge still gets the true bounds.
        if np.all(np.abs(actions) <= 1.0 + UNIT_TOL):
            meta.action_low, meta.action_high = [-1.0] * act_dim, [1.0] * act_dim
        else:
            meta.action_low = [float(v) for v in actions.min(axis=0)]
            meta.action_high = [float(v) for v in actions.max(axis=0)]
        meta.provenance["action_bounds_inferred"] = True
        return
    lo = np.asarray(low, dtype=np.float64).reshape(-1)
    hi = np.asarray(high, dtype=np.float64).reshape(-1)
    if lo.shape != (act_dim,) or hi.shape != (act_dim,):
        raise DataError(
            f"{source}: metadata action bounds have {lo.size}/{hi.size} entries "
            f"but 'actions' has {act_dim} dims"
        )
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)):
        raise DataError(
            f"{source}: metadata action bounds are invalid (need finite low <= high): "
            f"low={lo.tolist()}, high={hi.tolist()}"
        )
    out = (actions < lo - BOUNDS_TOL) | (actions > hi + BOUNDS_TOL)
    if out.any():
        row, dim = (int(i) for i in np.argwhere(out)[0])
        raise DataError(
            f"{source}: 'actions' has {int(out.sum())} values outside the declared bounds "
            f"(first at row {row}, dim {dim}: {float(actions[row, dim]):.6g} not in "
            f"[{lo[dim]:.6g}, {hi[dim]:.6g}])"
        )
    meta.action_low, meta.action_high = [float(v) for v in lo], [float(v) for v in hi]
