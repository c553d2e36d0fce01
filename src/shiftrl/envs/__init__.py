"""Shifted-dynamics Gymnasium environments (MuJoCo v5 locomotion and the pendulum).

    from shiftrl.envs import make_env, list_variants
    env = make_env("hopper-gravity-0.5")      # or "shiftrl/hopper-gravity-0.5-v0"
    env = make_env("hopper-gravity-0.5-neorl")  # NeoRL's observation (x first) and reward

Importing this package (which `import shiftrl` does) registers every variant and the toy
tasks with Gymnasium, so `gymnasium.make("shiftrl/hopper-gravity-0.5-v0")` works after
`import shiftrl` (or with the id `shiftrl.envs:shiftrl/hopper-gravity-0.5-v0`, which
Gymnasium imports first). Registration is cheap (registry entries, about 20 ms); MuJoCo
models are built only when an env is made. All registrations live in
`shiftrl.envs.registry`.
"""

from shiftrl.envs.registry import (
    NEORL_VARIANTS,
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
from shiftrl.envs.toy import register_toy_envs

register_toy_envs()  # shiftrl/PointReach-v0
register_all()

__all__ = [
    "NEORL_VARIANTS",
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
