"""The one registry of shifted-dynamics environments.

Every variant is named `{robot}-{kind}-{level}` after ODRL (`hopper-gravity-0.5`,
`hopper-friction-2.0`, `hopper-kinematic-legjnt-easy`, `hopper-morph-foot-hard`),
plus `hopper-mass-2.0`, `hopper-mass-torso-2.0`, `hopper-damping-2.0` and the
unshifted `hopper-base`. Each is registered with Gymnasium as
`shiftrl/{name}-v0` by `register_all()` (idempotent; run when `shiftrl.envs` is
imported, and again by `make_env`), so `gymnasium.make("shiftrl/hopper-gravity-0.5-v0")` works and the
env carries a JSON-serialisable `env.spec` (Minari recovers environments from it).

The entry point builds the *stock* env class of the base id (e.g.
`HopperEnv` for `Hopper-v5`, with that spec's kwargs), applies the variant's
shifts to its compiled model (see `shifts.py`), and returns the raw env;
`gymnasium.make` then adds the usual `PassiveEnvChecker`, `OrderEnforcing` and
`TimeLimit` (the base env's `max_episode_steps`: 1000 for MuJoCo, 200 for the
pendulum). Nothing here imports gymnasium or mujoco at module import.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from shiftrl.core.errors import ConfigError
from shiftrl.envs.shifts import (
    DampingShift,
    FrictionShift,
    GravityShift,
    KinematicShift,
    LengthShift,
    MassShift,
    MorphShift,
    ShiftSpec,
    apply_shifts,
)

__all__ = [
    "NAMESPACE",
    "NEORL_VARIANTS",
    "ROBOTS",
    "VARIANTS",
    "Robot",
    "Variant",
    "list_variants",
    "make_env",
    "make_variant_env",
    "register_all",
    "resolve",
    "resolve_env_id",
    "variant_of",
]

NAMESPACE = "shiftrl"
VERSION = 0
ENTRY_POINT = "shiftrl.envs.registry:make_variant_env"
VARIANT_KWARG = "shiftrl_variant"


@dataclass(frozen=True)
class Robot:
    """A base env and the named joint groups its kinematic/morph shifts act on."""

    name: str
    base_env_id: str
    max_episode_steps: int
    kinematic_groups: dict[str, tuple[str, ...]]
    morph_groups: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Variant:
    """One registered environment: a base env plus zero or more shifts."""

    name: str
    robot: str
    base_env_id: str
    shifts: tuple[ShiftSpec, ...]
    description: str
    kind: str = "base"
    level: str = ""
    max_episode_steps: int | None = None
    observation: str = "standard"
    """'standard' (Gymnasium v5's default observation) or 'neorl' (NeoRL's layout: the
    x-position first, and NeoRL's reward; see `NEORL_VARIANTS`)."""

    @property
    def gym_id(self) -> str:
        return f"{NAMESPACE}/{self.name}-v{VERSION}"

    @property
    def physics(self) -> str:
        """The standard-observation variant with the same dynamics: 'hopper-mass-2.0' for
        both 'hopper-mass-2.0' and 'hopper-mass-2.0-neorl' (its zoo policies, references)."""
        return self.name.removesuffix(NEORL_SUFFIX) if self.observation == "neorl" else self.name

    @property
    def dynamics(self) -> str:
        """The physics without the robot: 'mass-2.0', 'base' (a dataset's `dynamics` field)."""
        return self.physics[len(self.robot) + 1 :]


# Joint names are the compiled models' names in Gymnasium's v5 XMLs.
ROBOTS: dict[str, Robot] = {
    "hopper": Robot(
        "hopper",
        "Hopper-v5",
        1000,
        kinematic_groups={"legjnt": ("leg_joint",), "footjnt": ("foot_joint",)},
        morph_groups={"foot": ("foot_joint",), "leg": ("leg_joint",)},
    ),
    "walker2d": Robot(
        "walker2d",
        "Walker2d-v5",
        1000,
        kinematic_groups={
            "footjnt": ("foot_joint", "foot_left_joint"),
            "thighjnt": ("thigh_joint", "thigh_left_joint"),
        },
        morph_groups={
            "leg": ("leg_joint", "leg_left_joint"),
            "foot": ("foot_joint", "foot_left_joint"),
        },
    ),
    "halfcheetah": Robot(
        "halfcheetah",
        "HalfCheetah-v5",
        1000,
        kinematic_groups={"thighjnt": ("bthigh", "fthigh"), "footjnt": ("bfoot", "ffoot")},
        morph_groups={"thigh": ("bthigh", "fthigh"), "foot": ("bfoot", "ffoot")},
    ),
    "ant": Robot(
        "ant",
        "Ant-v5",
        1000,
        kinematic_groups={
            "hipjnt": ("hip_1", "hip_2", "hip_3", "hip_4"),
            "anklejnt": ("ankle_1", "ankle_2", "ankle_3", "ankle_4"),
        },
        morph_groups={
            # the leg below the fixed hip stub: upper segment (hip_i) and lower (ankle_i)
            "alllegs": tuple(f"{j}_{i}" for i in (1, 2, 3, 4) for j in ("hip", "ankle")),
            "halflegs": ("hip_1", "ankle_1", "hip_2", "ankle_2"),
        },
    ),
    "pendulum": Robot("pendulum", "Pendulum-v1", 200, kinematic_groups={}, morph_groups={}),
}

MUJOCO_ROBOTS = ("hopper", "walker2d", "halfcheetah", "ant")
NEORL_ROBOTS = ("hopper", "walker2d", "halfcheetah")
"""The robots of NeoRL's MuJoCo tasks (HalfCheetah-v3, Hopper-v3, Walker2d-v3)."""
NEORL_SUFFIX = "-neorl"
GRAVITY_LEVELS = (0.1, 0.5, 2.0, 5.0)
FRICTION_LEVELS = (0.1, 0.5, 2.0, 5.0)
MASS_LEVELS = (0.5, 2.0)
TORSO_MASS_LEVELS = (2.0,)
DAMPING_LEVELS = (0.5, 2.0)
# fraction of the joint range kept (toward the rest pose)
KINEMATIC_LEVELS = {"easy": 0.75, "medium": 0.5, "hard": 0.25}
# linear scale of the limb segment
MORPH_LEVELS = {"easy": 0.75, "medium": 0.5, "hard": 0.25}
PENDULUM_GRAVITY_LEVELS = (0.5, 2.0)
PENDULUM_MASS_LEVELS = (0.5, 2.0)
PENDULUM_LENGTH_LEVELS = (0.5, 2.0)


_PENDULUM_WORDS = {"gravity": "gravity g", "mass": "pole mass m", "length": "pole length l"}


def _variant(robot: Robot, suffix: str, kind: str, level: str, *shifts: ShiftSpec) -> Variant:
    name = f"{robot.name}-{suffix}"
    if shifts and robot.name == "pendulum":
        description = f"{robot.base_env_id} with " + "; ".join(
            f"{_PENDULUM_WORDS[s.kind]} x{s.scale}" for s in shifts
        )
    elif shifts:
        description = f"{robot.base_env_id} with " + "; ".join(s.describe() for s in shifts)
    else:
        description = f"{robot.base_env_id}, unchanged"
    return Variant(
        name=name,
        robot=robot.name,
        base_env_id=robot.base_env_id,
        shifts=tuple(shifts),
        description=description,
        kind=kind,
        level=level,
        max_episode_steps=robot.max_episode_steps,
    )


def _build_variants() -> dict[str, Variant]:
    out: list[Variant] = []
    for rname in MUJOCO_ROBOTS:
        r = ROBOTS[rname]
        out.append(_variant(r, "base", "base", ""))
        for x in MASS_LEVELS:
            out.append(_variant(r, f"mass-{x}", "mass", str(x), MassShift(x)))
        for x in TORSO_MASS_LEVELS:
            out.append(
                _variant(r, f"mass-torso-{x}", "mass", f"torso-{x}", MassShift(x, ("torso",)))
            )
        for x in GRAVITY_LEVELS:
            out.append(_variant(r, f"gravity-{x}", "gravity", str(x), GravityShift(x)))
        for x in FRICTION_LEVELS:
            out.append(_variant(r, f"friction-{x}", "friction", str(x), FrictionShift(x)))
        for x in DAMPING_LEVELS:
            out.append(_variant(r, f"damping-{x}", "damping", str(x), DampingShift(x)))
        for group, joints in r.kinematic_groups.items():
            for lvl, frac in KINEMATIC_LEVELS.items():
                out.append(
                    _variant(
                        r,
                        f"kinematic-{group}-{lvl}",
                        "kinematic",
                        f"{group}-{lvl}",
                        KinematicShift(frac, joints),
                    )
                )
        for group, joints in r.morph_groups.items():
            for lvl, s in MORPH_LEVELS.items():
                out.append(
                    _variant(
                        r, f"morph-{group}-{lvl}", "morph", f"{group}-{lvl}", MorphShift(s, joints)
                    )
                )
    p = ROBOTS["pendulum"]
    out.append(_variant(p, "base", "base", ""))
    for x in PENDULUM_GRAVITY_LEVELS:
        out.append(_variant(p, f"gravity-{x}", "gravity", str(x), GravityShift(x)))
    for x in PENDULUM_MASS_LEVELS:
        out.append(_variant(p, f"mass-{x}", "mass", str(x), MassShift(x)))
    for x in PENDULUM_LENGTH_LEVELS:
        out.append(_variant(p, f"length-{x}", "length", str(x), LengthShift(x)))
    variants = {v.name: v for v in out}
    assert len(variants) == len(out), "duplicate variant name"
    return variants


VARIANTS: dict[str, Variant] = _build_variants()
"""Every dynamics variant, with Gymnasium's standard observation."""


def _build_neorl_variants() -> dict[str, Variant]:
    out = {}
    for v in VARIANTS.values():
        if v.robot in NEORL_ROBOTS:
            name = v.name + NEORL_SUFFIX
            description = f"{v.description}; NeoRL observation (x-position first) and reward"
            out[name] = replace(v, name=name, description=description, observation="neorl")
    return out


NEORL_VARIANTS: dict[str, Variant] = _build_neorl_variants()
"""NeoRL's observation over every hopper/walker2d/halfcheetah variant:
`shiftrl/hopper-gravity-0.5-neorl-v0` has the dynamics of `hopper-gravity-0.5`, the
observation `exclude_current_positions_from_observation=False` (x-position at index 0, as
NeoRL's `gym.make(task, exclude_current_positions_from_observation=False)`: 12 / 18 / 18
dims), and NeoRL's reward: on hopper and walker2d the healthy bonus 1 on every step, also
the step that terminates (Gymnasium v5 gives 0 there; NeoRL, built on v3, gives 1), so the
reward is (x' - x)/dt + 1 - 1e-3 ||a||^2 exactly; halfcheetah's v5 reward already is NeoRL's.
Kept apart from `VARIANTS` (the dynamics) so listings and per-variant tables stay one row
per dynamics."""


# --------------------------------------------------------------------------- lookup


def _strip_id(env_id: str) -> str | None:
    """'shiftrl/hopper-base-v0' -> 'hopper-base'; None if not in our namespace."""
    prefix = f"{NAMESPACE}/"
    if not env_id.startswith(prefix):
        return None
    name = env_id[len(prefix) :]
    suffix = f"-v{VERSION}"
    return name[: -len(suffix)] if name.endswith(suffix) else name


def variant_of(env_id: str) -> Variant | None:
    """The variant behind a name ('hopper-gravity-0.5') or id ('shiftrl/...-v0'); else None."""
    for table in (VARIANTS, NEORL_VARIANTS):
        if env_id in table:
            return table[env_id]
    name = _strip_id(env_id)
    if name is None:
        return None
    return VARIANTS.get(name) or NEORL_VARIANTS.get(name)


def _unknown(name: str) -> ConfigError:
    stripped = _strip_id(name)
    query = stripped if stripped is not None else name
    from shiftrl.envs.randomized import RANDOMIZED

    close = difflib.get_close_matches(
        query, [*VARIANTS, *NEORL_VARIANTS, *RANDOMIZED], n=4, cutoff=0.6
    )
    if close:
        hint = "did you mean " + ", ".join(close) + "?"
    else:
        hint = f"robots: {', '.join(ROBOTS)}; list all with `shiftrl envs`"
    return ConfigError(f"unknown environment {name!r}; {hint}")


def resolve(name_or_id: str) -> str:
    """The Gymnasium id to make for a variant name, a `shiftrl/...` id (fixed or randomized
    dynamics) or a plain Gymnasium id.

    Raises `ConfigError` (with close matches) when it is none of these.
    """
    v = variant_of(name_or_id)
    if v is not None:
        return v.gym_id
    from shiftrl.envs.randomized import randomized_of  # imports gymnasium: only when needed

    r = randomized_of(name_or_id)
    if r is not None:
        return r.gym_id
    if _strip_id(name_or_id) is None:
        import gymnasium

        if name_or_id in gymnasium.registry:
            return name_or_id
    raise _unknown(name_or_id)


def resolve_env_id(name_or_id: str) -> str | None:
    """Like `resolve`, but returns None instead of raising for an unknown name."""
    try:
        return resolve(name_or_id)
    except ConfigError:
        return None


# --------------------------------------------------------------------------- gymnasium


@contextlib.contextmanager
def _no_mujoco_logfile(active: bool) -> Iterator[None]:
    """While building the env, keep MuJoCo from appending to ./MUJOCO_LOG.TXT.

    With mujoco 4.0 the stock `half_cheetah.xml` (compiler `settotalmass`) logs a
    deprecation warning on every compile, and MuJoCo's default log config writes
    each warning to `MUJOCO_LOG.TXT` in the working directory as well as to the
    console. Users cannot act on it, so during construction only we switch the file
    sink off and drop that one message (any other MuJoCo warning goes to Python's
    `warnings`), then restore the previous config and handler.
    """
    if not active:
        yield
        return
    import mujoco

    previous = mujoco.MjLogConfig.get()
    quiet = mujoco.MjLogConfig.get()
    quiet.logto_file = False
    quiet.set()
    previous_handler = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(_mujoco_warning)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous_handler)
        previous.set()


_KNOWN_HARMLESS = ("compiler attribute 'settotalmass' is deprecated",)


def _mujoco_warning(message: str) -> None:
    if not any(m in message for m in _KNOWN_HARMLESS):
        import warnings

        warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


def make_variant_env(**kwargs: Any) -> Any:
    """Gymnasium entry point: the stock base env with the variant's shifts applied.

    Called by `gymnasium.make` with `shiftrl_variant=<name>` plus the caller's
    kwargs, which go to the base env's constructor (e.g. `render_mode`,
    `frame_skip`, `reset_noise_scale`).
    """
    from gymnasium.envs.registration import load_env_creator
    from gymnasium.envs.registration import spec as gym_spec

    name = kwargs.pop(VARIANT_KWARG, None)
    if name is None:
        raise ConfigError(f"make_variant_env needs {VARIANT_KWARG}=<variant name>")
    variant = variant_of(name)
    if variant is None:
        raise _unknown(name)
    base = gym_spec(variant.base_env_id)
    creator = base.entry_point if callable(base.entry_point) else load_env_creator(base.entry_point)
    if variant.observation == "neorl":
        kwargs = {"exclude_current_positions_from_observation": False, **kwargs}
    with _no_mujoco_logfile(variant.robot != "pendulum"):
        env = creator(**{**base.kwargs, **kwargs})
    apply_shifts(env, variant.shifts)
    env.unwrapped.shiftrl_variant = variant.name
    if variant.observation == "neorl" and variant.robot in ("hopper", "walker2d"):
        from shiftrl.envs.neorl import NeoRLHealthyReward

        env = NeoRLHealthyReward(env)
    return env


def register_all() -> list[str]:
    """Register every variant, fixed and randomized (`randomized.py`), with Gymnasium
    (idempotent, cheap to repeat). Returns the ids."""
    import gymnasium

    from shiftrl.envs.randomized import register_randomized

    ids = register_randomized()
    for v in [*VARIANTS.values(), *NEORL_VARIANTS.values()]:
        ids.append(v.gym_id)
        if v.gym_id in gymnasium.registry:
            continue
        base = gymnasium.spec(v.base_env_id)
        gymnasium.register(
            id=v.gym_id,
            entry_point=ENTRY_POINT,
            kwargs={VARIANT_KWARG: v.name},
            max_episode_steps=base.max_episode_steps,
            reward_threshold=base.reward_threshold,
        )
    return ids


def make_env(name_or_id: str, **kwargs: Any) -> Any:
    """`gymnasium.make` for a variant name, a `shiftrl/...-v0` id, or a plain Gymnasium id.

    kwargs go to `gymnasium.make` (and from there to the env constructor).
    """
    import gymnasium

    register_all()
    return gymnasium.make(resolve(name_or_id), **kwargs)


def list_variants() -> list[dict[str, Any]]:
    """One row per variant: name, gym id, robot, base env, kind, level, and the change in words."""
    return [
        {
            "name": v.name,
            "id": v.gym_id,
            "robot": v.robot,
            "base_env_id": v.base_env_id,
            "kind": v.kind,
            "level": v.level,
            "changes": v.description,
        }
        for v in VARIANTS.values()
    ]
