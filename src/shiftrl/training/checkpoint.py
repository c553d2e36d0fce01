"""Checkpoints as msgpack (flax.serialization): arrays and numbers only, nothing executes on load."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flax import serialization

from shiftrl.core.errors import ShiftRLError

FORMAT_VERSION = 1


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:010d}.msgpack"


def save(run_dir: Path, step: int, carry: Any, keep: int = 2) -> Path:
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "step": step,
        "carry": serialization.to_state_dict(carry),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(serialization.msgpack_serialize(payload))
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written checkpoint
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
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
        return int(payload["step"]), carry
    except (ValueError, KeyError, TypeError) as e:
        raise ShiftRLError(
            f"{path}: not a readable shiftrl checkpoint ({type(e).__name__})"
        ) from None
