"""Checkpoints as msgpack (flax.serialization): arrays and numbers only, nothing executes on load.

Writes are atomic (temporary file + rename), so a kill leaves the previous checkpoint or the
new one, never half of one. A checkpoint holding non-finite values (written only when the
divergence guard is switched off) gets a `step_*.nonfinite` note beside it, and rotation
never deletes the newest finite checkpoint. Rotation also keeps the checkpoint of the best
evaluation (highest mean normalized score, `checkpoints/best.json`), so the policy behind
`score("best")` can be loaded (`load_policy(run, step="best")`, `shiftrl eval --step best`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization

from shiftrl.core.errors import ShiftRLError

FORMAT_VERSION = 1
BEST_FILE = "best.json"


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:010d}.msgpack"


def _nonfinite_note(path: Path) -> Path:
    return path.with_suffix(".nonfinite")


def is_finite(tree: Any) -> bool:
    """Every floating-point leaf of a (host or device) pytree is finite."""
    for x in jax.tree.leaves(tree):
        a = np.asarray(x)
        if np.issubdtype(a.dtype, np.inexact) and not np.isfinite(a).all():
            return False
    return True


def best_step(run_dir: Path) -> int | None:
    """The step of the best evaluation so far whose checkpoint exists, or None."""
    best = Path(run_dir) / "checkpoints" / BEST_FILE
    try:
        step = int(json.loads(best.read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return step if checkpoint_path(run_dir, step).exists() else None


def _note_best(run_dir: Path, step: int, score: float | None) -> None:
    if score is None or not math.isfinite(score):
        return
    best = Path(run_dir) / "checkpoints" / BEST_FILE
    try:
        old = json.loads(best.read_text())
        if best_step(run_dir) is not None and float(old["normalized_score"]) >= score:
            return
    except (OSError, ValueError, KeyError, TypeError):
        pass
    tmp = best.with_suffix(".tmp")
    tmp.write_text(json.dumps({"step": step, "normalized_score": score}) + "\n")
    os.replace(tmp, best)


def save(
    run_dir: Path,
    step: int,
    carry: Any,
    keep: int = 2,
    finite: bool = True,
    score: float | None = None,
    extra: dict | None = None,
) -> Path:
    """Write the checkpoint of `step` (its evaluation's mean normalized `score`, if any),
    then rotate: the newest `keep` stay, and so do the newest finite one and the best one.
    `extra`: JSON-able host state the loop resumes with (an interrupted pretraining phase's
    progress, the training-metric sums since the last evaluation; `load_extra`)."""
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "carry": serialization.to_state_dict(carry),
    }
    if extra:
        payload["extra"] = json.dumps(extra)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(serialization.msgpack_serialize(payload))
    note = _nonfinite_note(path)
    if finite:
        note.unlink(missing_ok=True)
    else:
        note.write_text("this checkpoint holds inf / NaN values (the run diverged)\n")
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written checkpoint
    if finite:
        _note_best(run_dir, step, score)
    ckpts = list_checkpoints(run_dir)
    good = [p for p in ckpts if not _nonfinite_note(p).exists()]
    protected = {good[-1]} if good else set()  # the last finite one is never rotated away
    best = best_step(run_dir)
    if best is not None:
        protected.add(checkpoint_path(run_dir, best))
    for old in ckpts[:-keep]:
        if old not in protected:
            old.unlink(missing_ok=True)
            _nonfinite_note(old).unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / "checkpoints").glob("step_*.msgpack"))


def latest(run_dir: Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def load(path: Path, template: Any) -> tuple[int, Any]:
    """Restore into a template pytree of the same structure (built from the run's config)."""
    try:
        payload = serialization.msgpack_restore(Path(path).read_bytes())
        state = payload["carry"]
        if isinstance(state, dict):  # fields added later with an empty default read as empty
            for key, value in serialization.to_state_dict(template).items():
                if key not in state and value == {}:
                    state[key] = {}
        carry = serialization.from_state_dict(template, state)
        step = int(payload["step"])
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as e:
        raise ShiftRLError(
            f"{path}: not a readable shiftrl checkpoint ({type(e).__name__})"
        ) from None
    want = [np.shape(x) for x in jax.tree.leaves(template)]
    got = [np.shape(x) for x in jax.tree.leaves(carry)]
    if want != got:
        diff = next((w, g) for w, g in zip(want, got, strict=True) if w != g)
        raise ShiftRLError(
            f"{path}: written by a network of another size (array of shape {diff[1]} where "
            f"the run's config builds {diff[0]}); the run's config.json and checkpoints disagree"
        )
    return step, carry


def load_extra(path: Path) -> dict:
    """The `extra` a checkpoint was saved with ({} when none, or unreadable)."""
    try:
        payload = serialization.msgpack_restore(Path(path).read_bytes())
        extra = json.loads(payload.get("extra") or "{}")
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        return {}
    return extra if isinstance(extra, dict) else {}


def load_latest(run_dir: Path, template: Any, move_aside: bool = True) -> tuple[int, Any]:
    """The newest checkpoint that loads; an unreadable newer one (a damaged file) is skipped,
    saying so on stderr, and (`move_aside`, when resuming) renamed `*.corrupt` so the
    resumed run neither trips over it again nor deletes it."""
    ckpts = list_checkpoints(run_dir)
    if not ckpts:
        raise ShiftRLError(f"{run_dir}: no checkpoint to load")
    for i, path in enumerate(reversed(ckpts)):
        try:
            return load(path, template)
        except ShiftRLError as e:
            if i == len(ckpts) - 1 or "another size" in str(e):
                raise
            older = ckpts[-2 - i]
            aside = f"moved it aside as {path.name}.corrupt and " if move_aside else ""
            print(
                f"shiftrl: warning: {path.name} is unreadable; {aside}using {older.name}",
                file=sys.stderr,
            )
            if move_aside:
                os.replace(path, path.with_name(path.name + ".corrupt"))
    raise AssertionError("unreachable")
