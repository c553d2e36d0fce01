"""Dynamics shifts: small frozen specs, and `apply_shift` to put one on a built env.

Every shift edits the *compiled* simulator in place: the `mujoco.MjModel` a
Gymnasium MuJoCo env builds in its constructor (`env.unwrapped.model`), or the
physical constants of the classic-control `PendulumEnv` (`g`, `m`, `l`).
`MujocoEnv.reset` only resets `MjData` (`mj_resetData`), never the model, and
`PendulumEnv.reset` only redraws the state, so a shift applied once at
construction holds for the life of the env (the tests check this).

Shifts are *relative*: each multiplies the model's current values. Apply a spec
once, to a freshly built model; applying it twice compounds it.

How each kind edits an `MjModel`:

* `MassShift(scale, bodies)`: `body_mass[b] *= scale` and `body_inertia[b] *= scale`
  for the named bodies (all bodies when `bodies` is empty). A body of the same
  shape and `scale` times the density has exactly `scale` times the inertia, so
  the centre of mass and principal axes are unchanged. Then `_set_const`
  (`mj_setConst` plus `stat.meaninertia`/`stat.meanmass`).
* `GravityShift(scale)`: `opt.gravity *= scale`.
* `FrictionShift(scale)`: `geom_friction *= scale` for *every* geom, floor
  included (all three columns: sliding, torsional, rolling), and `pair_friction`
  when the model has explicit contact pairs. MuJoCo's default contact mixing
  takes the element-wise max of the two geoms' friction, so scaling every geom
  scales every contact's friction by exactly `scale`.
* `DampingShift(scale)`: `dof_damping *= scale` (joints with zero damping, such as
  the free/root joints, stay at zero).
* `KinematicShift(scale, joints)`: each named hinge/slide joint's range
  `[lo, hi]` shrinks by `scale` toward its rest position
  `a = clip(qpos0, lo, hi)`: `range = a + scale * ([lo, hi] - a)`, and
  `jnt_limited = 1`. For hopper, walker2d and halfcheetah every limited joint
  contains its rest angle 0, so this is `scale * [lo, hi]` (the ODRL-style
  "limit the rotation range"). The Ant's ankles rest at 0, outside their stock
  range (|angle| in 30..70 deg; the stock env already starts them there and the
  limit pushes them in), so there the anchor is the nearer bound (30 deg). Where
  the rest pose is inside the stock range it stays inside the new one, and the
  shift only bites when a joint reaches its new limit. MuJoCo limits are soft: a
  full-torque push overshoots a limit by ~0.1 rad.
* `MorphShift(scale, joints)`: the limb segments (bodies) that carry the named
  joints are scaled as a rigid similarity by `scale` about the joint's anchor
  (`jnt_pos`, in the body frame): every geom of the body gets
  `geom_pos = p + scale * (geom_pos - p)`, `geom_size *= scale`,
  `geom_rbound *= scale`, `geom_aabb *= scale`; the body's centre of mass moves
  the same way (`body_ipos`), its mass scales by `scale**3` and its inertia by
  `scale**5` (same density, uniformly scaled shape: exact for any primitive);
  child bodies attached to it are moved with it (`body_pos` of children) so the
  chain stays connected and a shrunk thigh really is a shorter thigh; sites of
  the body move and scale too. Then `_set_const`. A capsule's `geom_size` is
  (radius, half-length): both are scaled. Apart from `stat.meansize` (a
  visualisation scale, not recomputed), the result equals the model MuJoCo
  compiles from the XML edited the same way (tested for the hopper's leg).
  Limits, honestly: only the named segments change; their children keep their
  own size (hopper-morph-leg shortens the shin and moves the foot up to it, but
  the foot is stock-sized); actuator gears, joint armature, damping, stiffness
  and ranges are not adapted; the reset pose (`init_qpos`, e.g. the torso
  height) is not adapted, so a shrunk leg starts a little in the air and drops
  on the first steps; cameras and lights are not touched; mesh/height-field
  geoms are refused. ODRL instead ships hand-edited XML files; our levels are
  not numerically the same as theirs.
* `LengthShift(scale)`: pendulum only, `l *= scale`.

On the pendulum (`gymnasium.envs.classic_control.PendulumEnv`): gravity is
`g *= scale`, mass (all bodies) is `m *= scale`, length is `l *= scale`; other
kinds raise `ConfigError`.

Field names used (as exposed by mujoco 4.0's Python bindings): `body_mass`,
`body_inertia`, `body_ipos`, `body_pos`, `body_parentid`, `opt.gravity`,
`geom_friction`, `pair_friction`, `dof_damping`, `jnt_range`, `jnt_limited`,
`jnt_pos`, `jnt_bodyid`, `jnt_type`, `jnt_qposadr`, `qpos0`, `geom_size`,
`geom_pos`, `geom_rbound`, `geom_aabb` (centre and half-sizes, 6 per geom),
`geom_bodyid`, `geom_type`, `site_pos`, `site_size`, `site_bodyid`.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from shiftrl.core.errors import ConfigError

__all__ = [
    "DampingShift",
    "FrictionShift",
    "GravityShift",
    "KinematicShift",
    "LengthShift",
    "MassShift",
    "MorphShift",
    "ShiftSpec",
    "apply_shift",
    "apply_shifts",
]


def _check_scale(kind: str, scale: float, *, at_most_one: bool = False) -> None:
    if not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
        raise ConfigError(f"{kind} shift scale must be a positive finite number, got {scale!r}")
    if at_most_one and scale > 1:
        raise ConfigError(f"{kind} shift scale must be in (0, 1], got {scale!r}")


def _names(names: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    if isinstance(names, str):
        return (names,)
    return tuple(names)


@dataclass(frozen=True)
class ShiftSpec:
    """Base of all shift specs. `kind` names the family; `scale` is the factor."""

    kind: ClassVar[str] = "shift"
    scale: float

    def __post_init__(self) -> None:
        _check_scale(self.kind, self.scale)

    def describe(self) -> str:
        """The change in words, e.g. 'gravity x0.5'."""
        return f"{self.kind} x{self.scale}"


@dataclass(frozen=True)
class MassShift(ShiftSpec):
    """Multiply body mass (and inertia by the same factor) of `bodies` (empty: all)."""

    kind: ClassVar[str] = "mass"
    bodies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "bodies", _names(self.bodies))

    def describe(self) -> str:
        which = "all bodies" if not self.bodies else "body " + ", ".join(self.bodies)
        return f"mass (and inertia) of {which} x{self.scale}"


@dataclass(frozen=True)
class GravityShift(ShiftSpec):
    """Multiply the gravity vector."""

    kind: ClassVar[str] = "gravity"

    def describe(self) -> str:
        return f"gravity x{self.scale}"


@dataclass(frozen=True)
class FrictionShift(ShiftSpec):
    """Multiply the friction coefficients of every geom (floor included)."""

    kind: ClassVar[str] = "friction"

    def describe(self) -> str:
        return f"friction of every geom (floor included) x{self.scale}"


@dataclass(frozen=True)
class DampingShift(ShiftSpec):
    """Multiply the passive damping of every degree of freedom."""

    kind: ClassVar[str] = "damping"

    def describe(self) -> str:
        return f"joint damping x{self.scale}"


@dataclass(frozen=True)
class KinematicShift(ShiftSpec):
    """Shrink the range of `joints` to `scale` of its width, toward the rest pose."""

    kind: ClassVar[str] = "kinematic"
    joints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_scale(self.kind, self.scale, at_most_one=True)
        object.__setattr__(self, "joints", _names(self.joints))
        if not self.joints:
            raise ConfigError("kinematic shift needs at least one joint name")

    def describe(self) -> str:
        joints = ("joint " if len(self.joints) == 1 else "joints ") + ", ".join(self.joints)
        return f"range of {joints} shrunk to {self.scale:.0%} of its width, toward the rest pose"


@dataclass(frozen=True)
class MorphShift(ShiftSpec):
    """Scale the limb segments carrying `joints` (geometry, mass, children) by `scale`."""

    kind: ClassVar[str] = "morph"
    joints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "joints", _names(self.joints))
        if not self.joints:
            raise ConfigError("morph shift needs at least one joint name")

    def describe(self) -> str:
        s = self.scale
        joints = ("joint " if len(self.joints) == 1 else "joints ") + ", ".join(self.joints)
        return (
            f"limb segments carrying {joints} scaled x{s} about their joint (geoms, centre "
            f"of mass, child attachment points; mass x{s**3:.3g}, inertia x{s**5:.3g})"
        )


@dataclass(frozen=True)
class LengthShift(ShiftSpec):
    """Pendulum only: multiply the pole length `l`."""

    kind: ClassVar[str] = "length"

    def describe(self) -> str:
        return f"pole length x{self.scale}"


# --------------------------------------------------------------------------- MuJoCo


def _lookup(model: Any, obj: Any, names: tuple[str, ...], what: str) -> list[int]:
    import mujoco

    ids = []
    for name in names:
        idx = mujoco.mj_name2id(model, obj, name)
        if idx < 0:
            known = [mujoco.mj_id2name(model, obj, i) for i in range(_count(model, what))]
            known = [k for k in known if k]
            close = difflib.get_close_matches(name, known, n=3)
            hint = (
                f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known)}"
            )
            raise ConfigError(f"no {what} named {name!r} in this model{hint}")
        ids.append(idx)
    return ids


def _count(model: Any, what: str) -> int:
    return {"body": model.nbody, "joint": model.njnt}[what]


def _set_const(model: Any) -> None:
    """Recompute the constants MuJoCo derives from masses and geometry at qpos0.

    `mj_setConst` redoes `body_subtreemass`, `dof_M0`, `dof_invweight0` and
    `body_invweight0` (these set the constraint regularisation), ... but in
    mujoco 4.0 it leaves `stat.meaninertia` (the solver's tolerance scale) and
    `stat.meanmass` alone; the compiler sets them to the mean of `dof_M0` and of
    the non-world body masses, so we do the same. The result matches a model
    re-compiled from an edited XML exactly (checked in the tests). Idempotent on
    an unedited model.
    """
    import mujoco

    mujoco.mj_setConst(model, mujoco.MjData(model))
    if model.nv:
        model.stat.meaninertia = float(np.mean(model.dof_M0))
    if model.nbody > 1:
        model.stat.meanmass = float(np.mean(model.body_mass[1:]))


def _apply_mass(model: Any, spec: MassShift) -> None:
    import mujoco

    if spec.bodies:
        ids = _lookup(model, mujoco.mjtObj.mjOBJ_BODY, spec.bodies, "body")
    else:
        ids = list(range(model.nbody))
    model.body_mass[ids] *= spec.scale
    model.body_inertia[ids] *= spec.scale
    _set_const(model)


def _apply_kinematic(model: Any, spec: KinematicShift) -> None:
    import mujoco

    ids = _lookup(model, mujoco.mjtObj.mjOBJ_JOINT, spec.joints, "joint")
    hinge_or_slide = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    for j, name in zip(ids, spec.joints, strict=True):
        if int(model.jnt_type[j]) not in hinge_or_slide:
            raise ConfigError(f"kinematic shift: joint {name!r} is not a hinge or slide joint")
        lo, hi = (float(x) for x in model.jnt_range[j])
        if not model.jnt_limited[j] or not lo < hi:
            raise ConfigError(f"kinematic shift: joint {name!r} has no range to shrink")
        anchor = min(max(float(model.qpos0[model.jnt_qposadr[j]]), lo), hi)
        model.jnt_range[j] = anchor + spec.scale * (np.array([lo, hi]) - anchor)
        model.jnt_limited[j] = 1


_SCALABLE_GEOMS = (
    "mjGEOM_SPHERE",
    "mjGEOM_CAPSULE",
    "mjGEOM_ELLIPSOID",
    "mjGEOM_CYLINDER",
    "mjGEOM_BOX",
)


def _apply_morph(model: Any, spec: MorphShift) -> None:
    import mujoco

    s = spec.scale
    ok_types = {int(getattr(mujoco.mjtGeom, t)) for t in _SCALABLE_GEOMS}
    jids = _lookup(model, mujoco.mjtObj.mjOBJ_JOINT, spec.joints, "joint")
    pivots: dict[int, np.ndarray] = {}
    for j in jids:  # first named joint of a body is its pivot
        pivots.setdefault(int(model.jnt_bodyid[j]), model.jnt_pos[j].copy())
    for b, p in pivots.items():
        if b == 0:
            raise ConfigError("morph shift cannot scale the world body")
        geoms = np.flatnonzero(model.geom_bodyid == b)
        for g in geoms:
            if int(model.geom_type[g]) not in ok_types:
                raise ConfigError(
                    "morph shift: only primitive geoms (sphere, capsule, ellipsoid, "
                    "cylinder, box) can be scaled"
                )
        model.geom_pos[geoms] = p + s * (model.geom_pos[geoms] - p)
        model.geom_size[geoms] *= s
        model.geom_rbound[geoms] *= s
        model.geom_aabb[geoms] *= s
        sites = np.flatnonzero(model.site_bodyid == b)
        model.site_pos[sites] = p + s * (model.site_pos[sites] - p)
        model.site_size[sites] *= s
        model.body_ipos[b] = p + s * (model.body_ipos[b] - p)
        model.body_mass[b] *= s**3
        model.body_inertia[b] *= s**5
        children = [c for c in np.flatnonzero(model.body_parentid == b) if c != b]
        model.body_pos[children] = p + s * (model.body_pos[children] - p)
    _set_const(model)


def _apply_to_mjmodel(model: Any, spec: ShiftSpec) -> None:
    if isinstance(spec, MassShift):
        _apply_mass(model, spec)
    elif isinstance(spec, GravityShift):
        model.opt.gravity[:] = model.opt.gravity * spec.scale
    elif isinstance(spec, FrictionShift):
        model.geom_friction[:] *= spec.scale
        if model.npair:
            model.pair_friction[:] *= spec.scale
    elif isinstance(spec, DampingShift):
        model.dof_damping[:] *= spec.scale
    elif isinstance(spec, KinematicShift):
        _apply_kinematic(model, spec)
    elif isinstance(spec, MorphShift):
        _apply_morph(model, spec)
    else:
        raise ConfigError(f"a {spec.kind} shift cannot be applied to a MuJoCo model")


# --------------------------------------------------------------------------- pendulum


def _is_pendulum(target: Any) -> bool:
    return all(hasattr(target, a) for a in ("g", "m", "l", "max_torque"))


def _apply_to_pendulum(env: Any, spec: ShiftSpec) -> None:
    if isinstance(spec, GravityShift):
        env.g = float(env.g) * spec.scale
    elif isinstance(spec, MassShift) and not spec.bodies:
        env.m = float(env.m) * spec.scale
    elif isinstance(spec, LengthShift):
        env.l = float(env.l) * spec.scale
    else:
        raise ConfigError(
            f"the pendulum supports gravity, mass (all) and length shifts, not {spec.describe()}"
        )


# --------------------------------------------------------------------------- public


def apply_shift(model: Any, spec: ShiftSpec) -> None:
    """Apply one shift in place.

    `model` is a compiled `mujoco.MjModel` (`env.unwrapped.model`) or a
    classic-control `PendulumEnv` (`env.unwrapped`). The edit is relative to the
    current values: apply once to a freshly built model.
    """
    if not isinstance(spec, ShiftSpec):
        raise TypeError(f"expected a ShiftSpec, got {type(spec).__name__}")
    if _is_pendulum(model):
        _apply_to_pendulum(model, spec)
        return
    import mujoco

    if not isinstance(model, mujoco.MjModel):
        raise TypeError(f"expected a mujoco.MjModel or a PendulumEnv, got {type(model).__name__}")
    _apply_to_mjmodel(model, spec)


def apply_shifts(env: Any, shifts: tuple[ShiftSpec, ...] | list[ShiftSpec]) -> None:
    """Apply `shifts` in order to a built env (its MjModel, or the pendulum itself)."""
    raw = getattr(env, "unwrapped", env)
    target = raw if _is_pendulum(raw) else raw.model
    for spec in shifts:
        apply_shift(target, spec)
