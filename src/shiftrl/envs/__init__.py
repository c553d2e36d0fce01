"""Shifted-dynamics Gymnasium environments (MuJoCo v5 locomotion and the pendulum).

    from shiftrl.envs import make_env, list_variants
    env = make_env("hopper-gravity-0.5")      # or "shiftrl/hopper-gravity-0.5-v0"

Importing this package is cheap: it only builds the `VARIANTS` table (plain
dataclasses). Gymnasium registration happens on the first `make_env` or on an
explicit `register_all()`; MuJoCo models are built only when an env is made.
All registrations live in `shiftrl.envs.registry`.
"""

from shiftrl.envs.registry import (
    ROBOTS,
    VARIANTS,
    Robot,
    Variant,
    list_variants,
    make_env,
    register_all,
    resolve,
    resolve_env_id,
    variant_of,
)
from shiftrl.envs.shifts import (
    DampingShift,
    FrictionShift,
    GravityShift,
    KinematicShift,
    LengthShift,
    MassShift,
    MorphShift,
    ShiftSpec,
    apply_shift,
    apply_shifts,
)

__all__ = [
    "ROBOTS",
    "VARIANTS",
    "DampingShift",
    "FrictionShift",
    "GravityShift",
    "KinematicShift",
    "LengthShift",
    "MassShift",
    "MorphShift",
    "Robot",
    "ShiftSpec",
    "Variant",
    "apply_shift",
    "apply_shifts",
    "list_variants",
    "make_env",
    "register_all",
    "resolve",
    "resolve_env_id",
    "variant_of",
]
